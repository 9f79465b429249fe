import assert from "node:assert/strict";
import { cacheKey, createMemoryCache, entryBytes, skipReason } from "../../src/cache/mod.ts";

Deno.test("createMemoryCache() evicts the least recently used entries to stay under its bytes", () => {
  let now = 0;
  const cache = createMemoryCache({ maxBytes: 300, maxEntries: 100, now: () => now });
  const value = "x".repeat(90); // + 2-byte key = 92 bytes an entry
  cache.set("k1", value, 1_000);
  cache.set("k2", value, 1_000);
  cache.set("k3", value, 1_000);
  assert.equal(cache.bytes, 276);
  assert.equal(cache.get("k1"), value, "k1 is now the most recently used");
  cache.set("k4", value, 1_000); // 368 > 300: the LRU entry (k2) goes
  assert.equal(cache.get("k2"), null);
  assert.equal(cache.get("k1"), value);
  assert.equal(cache.get("k3"), value);
  assert.ok(cache.bytes <= 300);
  // An entry larger than the whole budget is not stored (and evicts nothing).
  cache.set("big", "y".repeat(400), 1_000);
  assert.equal(cache.get("big"), null);
  assert.equal(cache.size, 3);
  // TTL
  now = 1_000;
  assert.equal(cache.get("k1"), null);
});

Deno.test("createMemoryCache() caps the number of entries (Butter's max_entries)", () => {
  const cache = createMemoryCache({ maxBytes: 1e9, maxEntries: 2, now: () => 0 });
  cache.set("a", "1", 10);
  cache.set("b", "2", 10);
  cache.set("c", "3", 10);
  assert.equal(cache.get("a"), null);
  assert.equal(cache.size, 2);
  assert.equal(cache.clear(), 2);
  assert.equal(cache.bytes, 0);
});

Deno.test("entryBytes() counts UTF-8 bytes", () => {
  assert.equal(entryBytes("", "abc"), 3);
  assert.equal(entryBytes("", "é"), 2);
  assert.equal(entryBytes("", "€"), 3);
  assert.equal(entryBytes("", "😀"), 4);
  assert.equal(entryBytes("k", "😀é"), 7);
});

Deno.test("cacheKey() is scoped per app key and per target; skipReason() needs a key for scope key", async () => {
  const body = { model: "m", messages: [{ role: "user" as const, content: "hi" }] };
  const targets = [{ provider: "p", model: "m" }];
  const key = await cacheKey(targets, "", body);
  assert.equal(key, await cacheKey(targets, "", { messages: body.messages, model: "m" }));
  assert.notEqual(await cacheKey(targets, "key-a", body), await cacheKey(targets, "key-b", body));
  assert.notEqual(key, await cacheKey([{ provider: "q", model: "m" }], "", body));
  assert.match(key, /^[0-9a-f]{64}$/);
  const facts = {
    schema: "openai_chat",
    stream: false,
    gatewayCache: undefined,
    cacheControl: null,
    body,
    appKey: undefined,
  };
  const policy = { enabled: true, scope: "key" as const, streaming: false };
  assert.equal(skipReason(policy, facts), "no_key");
  assert.equal(skipReason(policy, { ...facts, appKey: "key_1" }), null);
  assert.equal(skipReason(policy, { ...facts, appKey: "k", schema: "embeddings" }), "schema");
  assert.equal(skipReason({ ...policy, enabled: false }, facts), "disabled");
  assert.equal(
    skipReason({ ...policy, scope: "global" }, { ...facts, cacheControl: "max-age=0, no-store" }),
    "cache-control",
  );
});
