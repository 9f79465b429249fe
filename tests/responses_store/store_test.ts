/**
 * The Responses API store: the memory LRU bounded by bytes (recency, TTL, deletion), and
 * the Redis backend shared by a fleet (a conversation started on one sidecar continues on
 * another; keys expire after `responses.store.ttl`).
 */
import assert from "node:assert/strict";
import { createClient } from "redis";
import OpenAI from "openai";
import { parseConfigText } from "../../src/config/mod.ts";
import {
  createMemoryResponsesStore,
  createResponsesStore,
  type StoredResponse,
} from "../../src/responses_store/mod.ts";
import type { ResponsesObject } from "../../src/schema/responses.ts";
import { createLogger } from "../../src/telemetry/mod.ts";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway } from "../helpers/in_process.ts";
import { startRedisServer } from "../helpers/redis_server.ts";
import { waitFor } from "../state/support.ts";

function record(id: string, text = "x"): StoredResponse {
  return {
    response: {
      id,
      object: "response",
      output: [{ type: "message", id: `msg_of_${id}`, text }],
    } as unknown as ResponsesObject,
    items: [{ role: "user", content: text }],
  };
}

const size = (r: StoredResponse) => JSON.stringify(r).length;

Deno.test("memory responses store: LRU by bytes, TTL, delete", async (t) => {
  let now = 1_000;
  const one = size(record("resp_a"));
  const store = createMemoryResponsesStore({ maxBytes: one * 2, ttlMs: 60_000, now: () => now });
  await t.step("the least recently used record goes first when the bytes run out", async () => {
    await store.put(record("resp_a"));
    await store.put(record("resp_b"));
    assert.ok(await store.get("resp_a", null)); // a is now the most recent
    await store.put(record("resp_c"));
    assert.equal(await store.get("resp_b", null), null);
    assert.equal((await store.get("resp_a", null))?.response.id, "resp_a");
    assert.equal((await store.get("resp_c", null))?.response.id, "resp_c");
  });
  await t.step("output items are found by their own id while their response is kept", async () => {
    assert.equal((await store.getItem("msg_of_resp_a", null))?.id, "msg_of_resp_a");
    assert.equal(await store.getItem("msg_of_resp_b", null), null, "evicted with its response");
    assert.equal(await store.getItem("msg_unknown", null), null);
  });
  await t.step(
    "a record larger than the whole budget is not kept (and evicts nothing); the put says why",
    async () => {
      await assert.rejects(
        store.put(record("resp_big", "y".repeat(one * 3))),
        /larger than responses\.store\.max_bytes/,
      );
      assert.equal(await store.get("resp_big", null), null);
      assert.ok(await store.get("resp_a", null));
    },
  );
  await t.step("records expire after the TTL", async () => {
    now += 60_000;
    assert.equal(await store.get("resp_a", null), null);
    await store.put(record("resp_d"));
    assert.ok(await store.get("resp_d", null));
  });
  await t.step("delete says whether the id was kept", async () => {
    assert.equal(await store.delete("resp_d", null), true);
    assert.equal(await store.delete("resp_d", null), false);
    assert.equal(await store.get("resp_d", null), null);
  });
  await t.step(
    "a stored record is a copy: changing what get() returned changes nothing",
    async () => {
      await store.put(record("resp_e"));
      const got = await store.get("resp_e", null);
      (got!.items as unknown[]).length = 0;
      assert.equal((await store.get("resp_e", null))?.items.length, 1);
    },
  );
});

Deno.test("memory responses store: native response owners expire after the TTL", async () => {
  let now = 0;
  const store = createMemoryResponsesStore({ maxBytes: 1000, ttlMs: 60_000, now: () => now });
  await store.claim("resp_n", "key_a");
  assert.equal(await store.claimant("resp_n"), "key_a");
  assert.equal(await store.claimant("resp_other"), null);
  now += 60_000;
  assert.equal(await store.claimant("resp_n"), null, "expired: unknown, as a lost record");
});

Deno.test("memory responses store: a kept response's creator is its claimant, so no other caller reaches it through a native provider", async () => {
  const store = createMemoryResponsesStore({ maxBytes: 10_000, ttlMs: 60_000, now: () => 0 });
  await store.put({ ...record("resp_kept"), owner: "key_alice" });
  await store.put(record("resp_open"));
  assert.equal(await store.claimant("resp_kept"), "key_alice");
  assert.equal(await store.claimant("resp_open"), null, "kept without a key: anyone's");
  assert.equal(await store.get("resp_kept", null), null);
});

/** The Responses store `yaml` configures, logging nowhere. */
function storeOf(yaml: string) {
  const { config } = parseConfigText(yaml, () => undefined, "redis.yaml");
  const logger = createLogger({
    level: "error",
    format: "json",
    redact: (s) => s,
    write: () => {},
  });
  return createResponsesStore(config, logger);
}

Deno.test("redis responses store: shared by the fleet, keys expire after responses.store.ttl", async () => {
  const redis = await startRedisServer();
  const up = startFakeUpstream();
  const yaml = `
state:
  backend: redis
  redis: { url: "${redis.url}" }
responses:
  store: { ttl: 2h }
providers:
  compat: { base_url: "${up.url}/v1", keys: [{ key: sk-compat-0001 }] }
`;
  const storeA = await storeOf(yaml);
  // Puts are not awaited by the route (the answer does not wait for the store): watch them.
  const kept = new Set<string>();
  const put = storeA.put.bind(storeA);
  (storeA as { put: typeof put }).put = (r) => put(r).then(() => void kept.add(r.response.id));
  const storeB = await storeOf(yaml);
  const a = startGateway(yaml, {}, { responses: storeA });
  const b = startGateway(yaml, {}, { responses: storeB });
  const client = createClient({ url: redis.url });
  await client.connect();
  try {
    assert.equal(storeA.backend, "redis");
    const sdkA = new OpenAI({ baseURL: a.url("/v1"), apiKey: "x", maxRetries: 0 });
    const sdkB = new OpenAI({ baseURL: b.url("/v1"), apiKey: "x", maxRetries: 0 });
    // The links connect in the background.
    await waitFor("the Redis links", () => storeA.available() && storeB.available());
    const first = await sdkA.responses.create({ model: "compat/gpt-4o-mini", input: "Hi" });
    await waitFor("the response kept", () => kept.has(first.id));
    const next = await sdkB.responses.create({
      model: "compat/gpt-4o-mini",
      input: "And again",
      previous_response_id: first.id,
    });
    assert.equal(next.previous_response_id, first.id);
    const sent = JSON.parse(up.requests.at(-1)!.body);
    assert.deepEqual(sent.messages.map((m: { role: string }) => m.role), [
      "user",
      "assistant",
      "user",
    ]);
    const ttl = await client.pTTL(`pilotfish:state:responses:${first.id}`);
    assert.ok(ttl > 7_100_000 && ttl <= 7_200_000, `ttl ${ttl}`);
    assert.equal((await sdkB.responses.retrieve(first.id)).id, first.id);
    const itemId = first.output[0]!.id!;
    assert.equal((await storeB.getItem(itemId, null))?.id, itemId);
    await sdkB.responses.delete(first.id);
    assert.equal(await storeA.get(first.id, null), null);
    assert.equal(await client.exists(`pilotfish:state:responses:item:${itemId}`), 0);
    // A native response's owner, claimed on one sidecar, is known to the other, with the TTL.
    await storeA.claim("resp_native_1", "key_a");
    assert.equal(await storeB.claimant("resp_native_1"), "key_a");
    assert.equal(await storeB.claimant("resp_native_2"), null);
    // A kept response's creator is its claimant on every sidecar (here: made without a key).
    const mine = await sdkA.responses.create({ model: "compat/gpt-4o-mini", input: "Kept?" });
    await waitFor("the response kept", () => kept.has(mine.id));
    assert.equal(await storeB.claimant(mine.id), null);
    await storeA.put({ response: mine as never, items: [], owner: "key_b" });
    assert.equal(await storeB.claimant(mine.id), "key_b");
    const claimTtl = await client.pTTL("pilotfish:state:responses:native:resp_native_1");
    assert.ok(claimTtl > 7_100_000 && claimTtl <= 7_200_000, `ttl ${claimTtl}`);
  } finally {
    await client.quit();
    await a.close();
    await b.close();
    await storeA.close();
    await storeB.close();
    await up.close();
    await redis.stop();
  }
});

Deno.test("redis responses store away: retrieve, input_items and delete answer 503, not a 500", async () => {
  const redis = await startRedisServer();
  const yaml = `
state:
  backend: redis
  redis: { url: "${redis.url}" }
providers:
  mock: {}
`;
  const store = await storeOf(yaml);
  const gw = startGateway(yaml, {}, { responses: store });
  try {
    await waitFor("the Redis link", () => store.available());
    await redis.stop();
    await waitFor("the outage seen", () => !store.available());
    for (
      const [method, path] of [
        ["GET", "/v1/responses/resp_abc"],
        ["GET", "/v1/responses/resp_abc/input_items"],
        ["DELETE", "/v1/responses/resp_abc"],
      ] as const
    ) {
      const res = await gw.request(path, { method });
      assert.equal(res.status, 503, `${method} ${path}`);
      const { error } = await res.json();
      assert.equal(error.code, "unavailable");
      assert.match(error.message, /responses store is unavailable/);
    }
  } finally {
    await gw.close();
    await store.close();
    await redis.stop();
  }
});
