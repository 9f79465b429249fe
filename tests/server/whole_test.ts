import assert from "node:assert/strict";
import { bodyBytes, wholeResponse } from "../../src/server/whole.ts";
import type { Exchange } from "../../src/pipeline/exchange.ts";

Deno.test("bodyBytes(): a whole body's UTF-8 length, as Deno sends it", async () => {
  for (const body of ['{"a":"ascii"}', '{"a":"é ü 日本 🐟"}', new Uint8Array([1, 2, 3])]) {
    const ex = { wholeBody: null } as Exchange;
    const res = wholeResponse(ex, body, 200, {});
    const sent = (await res.arrayBuffer()).byteLength;
    assert.equal(bodyBytes(ex, res), sent);
  }
  const none = { wholeBody: null } as Exchange;
  assert.equal(bodyBytes(none, new Response("x", { headers: { "content-length": "1" } })), 1);
  assert.equal(bodyBytes(none, new Response("unknown")), null);
});
