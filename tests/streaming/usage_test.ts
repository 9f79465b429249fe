import assert from "node:assert/strict";
import { textChars } from "../../src/streaming/usage.ts";

Deno.test("textChars(): every character but runs of 512+ base64 characters and their padding", () => {
  // What the definition says, as a regex: the reference the one-pass scan must agree with.
  const reference = (text: string) =>
    text.length -
    [...text.matchAll(/[A-Za-z0-9+/_-]{512,}={0,2}/g)].reduce((n, m) => n + m[0].length, 0);
  const b64 = (n: number) => "QUJD".repeat(Math.ceil(n / 4)).slice(0, n);
  const cases = [
    "",
    "plain prose, with words and punctuation. ".repeat(40),
    b64(511),
    b64(512),
    `${b64(600)}==`,
    `${b64(600)}===x`,
    `"data:image/png;base64,${b64(2000)}=","next":"${b64(100)}"`,
    `${b64(700)}=`,
    `a ${b64(512)}= b ${b64(513)} c`,
    `${b64(600)}é${b64(600)}`,
    `x${b64(600)}`,
  ];
  for (const text of cases) assert.equal(textChars(text), reference(text), text.slice(0, 40));
  assert.equal(textChars(`"${b64(4000)}=="`), 2, "only the quotes are left of an image");
});
