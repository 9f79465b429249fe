import assert from "node:assert/strict";
import { captureRequestBody, redactBody } from "../../src/telemetry/mod.ts";

Deno.test("redactBody() replaces secret-looking JSON values, whole or cut", () => {
  assert.equal(
    redactBody(
      '{"model":"m","api_key":"abc","nested":{"password":"p","tokens":3},"auth":{"token":"t"}}',
    ),
    '{"model":"m","api_key":"[REDACTED]","nested":{"password":"[REDACTED]","tokens":3},"auth":{"token":"[REDACTED]"}}',
  );
  assert.equal(
    redactBody('{"model":"m","client_secret":"abc","x":"tail-cut', false),
    '{"model":"m","client_secret":"[REDACTED]","x":"tail-cut',
  );
  assert.equal(redactBody('{"password":"cut-in-the-mid', false), '{"password":"[REDACTED]"');
  assert.equal(redactBody("plain text body"), "plain text body");
});

Deno.test("captureRequestBody() reads a copy up to the limit; the original stays whole", async () => {
  const body = JSON.stringify({ model: "m", content: "x".repeat(100) });
  const req = new Request("http://x/", { method: "POST", body });
  const captured = captureRequestBody(req, 20)!;
  assert.equal(await req.text(), body, "the route still reads every byte");
  const got = await captured;
  assert.equal(got.truncated, true);
  assert.equal(got.text, body.slice(0, 20));
  assert.equal(captureRequestBody(new Request("http://x/"), 20), null);
  const whole = await captureRequestBody(
    new Request("http://x/", { method: "POST", body: "{}" }),
    20,
  )!;
  assert.deepEqual(whole, { text: "{}", truncated: false });
});
