import assert from "node:assert/strict";
import { bodyBytes, wholeResponse } from "../../src/server/whole.ts";

Deno.test("bodyBytes(): a whole body's UTF-8 length, as Deno sends it", async () => {
  for (const body of ['{"a":"ascii"}', '{"a":"é ü 日本 🐟"}', new Uint8Array([1, 2, 3])]) {
    const res = wholeResponse(body, 200, {});
    const sent = (await res.clone().arrayBuffer()).byteLength;
    assert.equal(bodyBytes(res), sent);
    await res.body?.cancel();
  }
  assert.equal(bodyBytes(new Response("x", { headers: { "content-length": "1" } })), 1);
  assert.equal(bodyBytes(new Response("unknown")), null);
});
