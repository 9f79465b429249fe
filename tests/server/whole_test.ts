import assert from "node:assert/strict";
import { bodyBytes, utf8Length, wholeResponse } from "../../src/server/whole.ts";
import type { Exchange } from "../../src/pipeline/exchange.ts";

Deno.test("bodyBytes(): a whole body's UTF-8 length, as Deno sends it", async () => {
  for (const body of ['{"a":"ascii"}', '{"a":"é ü 日本 🐟"}', new Uint8Array([1, 2, 3])]) {
    const ex = { wholeBody: null, method: "POST" } as unknown as Exchange;
    const res = wholeResponse(ex, body, 200, {});
    const sent = (await res.arrayBuffer()).byteLength;
    assert.equal(bodyBytes(ex, res), sent);
  }
  const none = { wholeBody: null, method: "GET" } as unknown as Exchange;
  assert.equal(bodyBytes(none, new Response("x", { headers: { "content-length": "1" } })), 1);
  assert.equal(bodyBytes(none, new Response("unknown")), null);
});

Deno.test("utf8Length() counts as TextEncoder encodes, lone surrogates included", () => {
  const enc = new TextEncoder();
  for (const s of ["", "ascii", "é", "日本語", "🐟 fish", "a\ud800b", "\udc00", "x\ud83d", "ß€𝄞"]) {
    assert.equal(utf8Length(s), enc.encode(s).byteLength, JSON.stringify(s));
  }
});

Deno.test("bodyBytes(): a HEAD answer sent no body; the body is let go of once read", () => {
  const head = { wholeBody: null, method: "HEAD" } as unknown as Exchange;
  const res = wholeResponse(head, '{"a":1}', 200, {});
  assert.equal(bodyBytes(head, res), 0);
  assert.equal(head.wholeBody, null);
});
