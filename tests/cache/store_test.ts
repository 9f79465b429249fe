import assert from "node:assert/strict";
import {
  cacheKeyText,
  createMemoryCache,
  digestKey,
  entryBytes,
  memoryKey,
  skipReason,
} from "../../src/cache/mod.ts";

/** The key a shared (Redis) cache stores an answer under. */
const sharedKey = (...args: Parameters<typeof cacheKeyText>) => digestKey(cacheKeyText(...args));

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
  // The ASCII fast path ends at U+007F.
  assert.equal(entryBytes("", "a\x7f"), 2);
  assert.equal(entryBytes("", "a\x80"), 3);
});

Deno.test("the cache key is scoped per app key and per target; skipReason() needs a key for scope key", () => {
  const body = { model: "m", messages: [{ role: "user" as const, content: "hi" }] };
  const targets = [{ provider: "p", model: "m" }];
  const key = sharedKey(targets, "", body);
  assert.equal(key, sharedKey(targets, "", { messages: body.messages, model: "m" }));
  // The model as typed (bare, prefixed, an alias) is the same request once routed.
  assert.equal(key, sharedKey(targets, "", { ...body, model: "p/m" }));
  assert.notEqual(sharedKey(targets, "key-a", body), sharedKey(targets, "key-b", body));
  assert.notEqual(key, sharedKey([{ provider: "q", model: "m" }], "", body));
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
  assert.equal(skipReason(policy, { ...facts, appKey: "k", schema: "embeddings" }), null);
  assert.equal(skipReason(policy, { ...facts, appKey: "k", schema: "responses" }), "schema");
  assert.equal(skipReason({ ...policy, enabled: false }, facts), "disabled");
  assert.equal(
    skipReason({ ...policy, scope: "global" }, { ...facts, cacheControl: "max-age=0, no-store" }),
    "cache-control",
  );
});

/** The documented key, computed the plain way: SHA-256 (WebCrypto) of the normalised text. */
async function documentedKey(
  targets: { provider: string; model: string }[],
  scope: string,
  body: Record<string, unknown>,
): Promise<string> {
  const sorted = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sorted) : v !== null && typeof v === "object"
      ? Object.fromEntries(
        Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined)
          .map((k) => [k, sorted((v as Record<string, unknown>)[k])]),
      )
      : v;
  const fields = Object.fromEntries(
    Object.entries(body).filter(([k]) =>
      !["stream", "stream_options", "user", "metadata", "store", "model"].includes(k)
    ),
  );
  const text = `pilotfish-cache-v2\n${
    targets.map((t) => `${t.provider}/${t.model}\n`).join("")
  }scope:${scope}\n${JSON.stringify(sorted(fields))}`;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("the shared key is the documented SHA-256 of the normalised request", async () => {
  const body = {
    stream: false,
    user: "u1",
    metadata: { a: "1" },
    model: "m",
    temperature: 0,
    seed: 7,
    stop: ["\n", undefined],
    messages: [{ role: "user", content: 'h\u00e9 \ud83d\ude00 "q"', name: undefined }],
    // Nested fields named like the ones left out of the key stay in it.
    tools: [{
      type: "function",
      function: {
        name: "f",
        parameters: { type: "object", properties: { user: { type: "string" }, store: {} } },
      },
    }],
    response_format: { type: "json_object" },
  };
  const targets = [{ provider: "p", model: "m" }, { provider: "q", model: "m2" }];
  for (const scope of ["", "key_1"]) {
    assert.equal(
      sharedKey(targets, scope, body as never),
      await documentedKey(targets, scope, body),
    );
  }
});

Deno.test("memoryKey() is the request's text while V8 hashes all of it, its digest beyond", () => {
  const targets = [{ provider: "p", model: "m" }];
  const short = cacheKeyText(targets, "", {
    model: "m",
    messages: [{ role: "user", content: "hi" }],
  });
  assert.equal(memoryKey(short), short);
  assert.ok(short.startsWith("pilotfish-cache-v2\n"));
  const body = { model: "m", messages: [{ role: "user", content: "x".repeat(16_400) }] };
  const long = cacheKeyText(targets, "", body);
  assert.ok(long.length > 16_383);
  assert.equal(memoryKey(long), digestKey(long));
  assert.equal(memoryKey(long), sharedKey(targets, "", body));
  assert.match(memoryKey(long), /^[0-9a-f]{64}$/);
});
