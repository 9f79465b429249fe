/**
 * The Redis breaker store against a real `redis-server` each test starts on a free port:
 * the contract, fleet-wide push, the single probe across stores, key layout and TTLs, and
 * Redis dying, hanging and coming back.
 */
import assert from "node:assert/strict";
import { createClient } from "redis";
import type { BreakerStore, BreakerTiming } from "../../src/breaker/store.ts";
import { createBreaker } from "../../src/breaker/mod.ts";
import { parseConfigText } from "../../src/config/mod.ts";
import { createRedisBreakerStore } from "../../src/state/redis_breaker_store.ts";
import type { Logger } from "../../src/telemetry/mod.ts";
import { CONTRACT_TIMING, runBreakerStoreContract } from "../contract/breaker_store.ts";
import { type RedisServer, startRedisServer } from "../helpers/redis_server.ts";
import { freePort } from "../integration/daemon.ts";
import { captureLogger } from "./support.ts";

/** Poll a local condition (no Redis involved) until true; returns how long it took. */
async function waitFor(what: string, cond: () => boolean, timeoutMs = 5_000): Promise<number> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - start;
}

const synced = (s: BreakerStore) => !s.describe().fallback;

let prefixSeq = 0;
const freshPrefix = () => `pftest:${crypto.randomUUID().slice(0, 8)}:${++prefixSeq}:`;

async function makeStore(
  url: string,
  opts: {
    prefix?: string;
    timing?: BreakerTiming;
    logger?: Logger;
    commandTimeoutMs?: number;
    heartbeatMs?: number;
  } = {},
): Promise<BreakerStore> {
  const store = createRedisBreakerStore({
    url,
    prefix: opts.prefix ?? freshPrefix(),
    timing: opts.timing ?? CONTRACT_TIMING,
    logger: opts.logger ?? captureLogger().logger,
    ...(opts.commandTimeoutMs ? { commandTimeoutMs: opts.commandTimeoutMs } : {}),
    ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}),
  });
  await waitFor("the store to sync with Redis", () => synced(store));
  return store;
}

/** Open `key` through `store` by reaching the threshold; returns the open-until. */
async function trip(
  store: BreakerStore,
  key: string,
  provider: string,
  at: number,
  threshold = CONTRACT_TIMING.failureThreshold,
) {
  for (let i = 0; i < threshold; i++) {
    await store.recordFailure(key, provider, at + i);
  }
  const until = store.openUntil(key);
  assert.notEqual(until, null);
  return until;
}

// ---- the contract, on Redis and on the memory fallback --------------------------------------

let contractServer: RedisServer | null = null;
runBreakerStoreContract("redis", (timing) => {
  assert.ok(contractServer);
  return makeStore(contractServer.url, { timing });
}, {
  before: async () => {
    contractServer = await startRedisServer();
  },
  after: async () => {
    await contractServer?.stop();
    contractServer = null;
  },
});

// Nothing listens on this port: every store runs on its local fallback from the start.
const deadUrl = `redis://127.0.0.1:${freePort()}`;
runBreakerStoreContract("redis with Redis unreachable (memory fallback)", (timing) => {
  const store = createRedisBreakerStore({
    url: deadUrl,
    timing,
    logger: captureLogger().logger,
  });
  assert.equal(store.describe().fallback, true);
  return store;
});

// ---- fleet behaviour ------------------------------------------------------------------------

Deno.test("redis: two stores see each other's transitions by push within 250 ms", async () => {
  const server = await startRedisServer();
  const prefix = freshPrefix();
  const a = await makeStore(server.url, { prefix });
  const b = await makeStore(server.url, { prefix });
  try {
    const t0 = Date.now();
    // A opens: B has seen no failure at all, yet learns it is open.
    assert.equal(b.failures("openai:gpt", t0), 0);
    const until = await trip(a, "openai:gpt", "openai", t0);
    const openMs = await waitFor("B to see the open", () => b.openUntil("openai:gpt") !== null);
    assert.ok(openMs < 250, `took ${openMs} ms`);
    assert.equal(b.openUntil("openai:gpt"), until);
    assert.deepEqual(b.rollupKeys("openai", t0 + 10), ["openai:gpt"]);

    // B's failed probe re-opens: A sees the new cooldown.
    const probeAt = t0 + CONTRACT_TIMING.cooldownMs + 10;
    assert.equal(await b.tryAcquireProbe("openai:gpt", probeAt), true);
    await b.reopen("openai:gpt", "openai", probeAt + 1);
    const reopenMs = await waitFor(
      "A to see the reopen",
      () => a.openUntil("openai:gpt") === probeAt + 1 + CONTRACT_TIMING.cooldownMs,
    );
    assert.ok(reopenMs < 250, `took ${reopenMs} ms`);

    // A second key opened by B joins A's rollup.
    await trip(b, "openai:mini", "openai", t0 + 20);
    await waitFor("A to see the rollup", () => a.rollupKeys("openai", t0 + 30).length === 2);

    // A's successful probe closes: B sees it closed and out of the rollup.
    await a.closeKey("openai:gpt", "openai");
    const closeMs = await waitFor("B to see the close", () => b.openUntil("openai:gpt") === null);
    assert.ok(closeMs < 250, `took ${closeMs} ms`);
    assert.deepEqual(b.rollupKeys("openai", t0 + 30), ["openai:mini"]);

    // A store that joins later loads the state by resync.
    const c = await makeStore(server.url, { prefix });
    try {
      assert.equal(c.openUntil("openai:gpt"), null);
      assert.notEqual(c.openUntil("openai:mini"), null);
      assert.deepEqual(c.rollupKeys("openai", t0 + 30), ["openai:mini"]);
    } finally {
      await c.close();
    }
  } finally {
    await a.close();
    await b.close();
    await server.stop();
  }
});

Deno.test("redis: the threshold is fleet-wide and opens exactly once", async () => {
  const server = await startRedisServer();
  const prefix = freshPrefix();
  const a = await makeStore(server.url, { prefix });
  const b = await makeStore(server.url, { prefix });
  try {
    const t0 = Date.now();
    // Neither store alone reaches the threshold; together they do, and only one call opens.
    const results = await Promise.all([
      a.recordFailure("p:m", "p", t0),
      b.recordFailure("p:m", "p", t0 + 1),
      a.recordFailure("p:m", "p", t0 + 2),
      b.recordFailure("p:m", "p", t0 + 3),
      a.recordFailure("p:m", "p", t0 + 4),
    ]);
    assert.equal(results.filter(Boolean).length, 1);
    await waitFor("both to see it open", () => a.openUntil("p:m") !== null);
    await waitFor("both to see it open", () => b.openUntil("p:m") !== null);
    assert.equal(a.openUntil("p:m"), b.openUntil("p:m"));
  } finally {
    await a.close();
    await b.close();
    await server.stop();
  }
});

Deno.test("redis: exactly one of N concurrent probes across two stores wins", async () => {
  const server = await startRedisServer();
  const prefix = freshPrefix();
  const a = await makeStore(server.url, { prefix });
  const b = await makeStore(server.url, { prefix });
  try {
    const t0 = Date.now();
    for (let round = 0; round < 5; round++) {
      const key = `p:m${round}`;
      const attempts = Array.from(
        { length: 20 },
        (_, i) => (i % 2 === 0 ? a : b).tryAcquireProbe(key, t0),
      );
      const wins = (await Promise.all(attempts)).filter(Boolean).length;
      assert.equal(wins, 1, `round ${round}: ${wins} winners`);
    }
    // Only the holder can give a slot back.
    assert.equal(await a.tryAcquireProbe("p:held", t0), true);
    await b.releaseProbe("p:held");
    assert.equal(await b.tryAcquireProbe("p:held", t0 + 1), false);
    await a.releaseProbe("p:held");
    assert.equal(await b.tryAcquireProbe("p:held", t0 + 2), true);
    // A probe that failed re-opens the key and frees the slot: another sidecar whose view
    // is still half-open (the event not seen yet) gets no second probe in the new cooldown.
    const probeAt = t0 + CONTRACT_TIMING.cooldownMs + 10;
    assert.equal(await a.tryAcquireProbe("p:again", probeAt), true);
    await a.reopen("p:again", "p", probeAt + 1);
    assert.equal(await b.tryAcquireProbe("p:again", probeAt + 2), false);
    // Once that cooldown is over, the next probe goes out.
    const next = probeAt + 1 + CONTRACT_TIMING.cooldownMs;
    assert.equal(await b.tryAcquireProbe("p:again", next + 1), true);
  } finally {
    await a.close();
    await b.close();
    await server.stop();
  }
});

Deno.test("redis: keys are prefixed, registered and TTL'd as documented", async () => {
  const server = await startRedisServer();
  const prefix = "{pilotfish:cb}:";
  const timing: BreakerTiming = {
    failureThreshold: 2,
    windowMs: 120_000,
    cooldownMs: 300_000,
    rollupWindowMs: 200_000,
  };
  const store = createRedisBreakerStore({
    url: server.url,
    timing,
    logger: captureLogger().logger,
  });
  const raw = createClient({ url: server.url, maintNotifications: "disabled" });
  raw.on("error", () => {});
  await raw.connect();
  try {
    await waitFor("sync", () => synced(store));
    const t0 = Date.now();
    await trip(store, "openai:gpt-4o", "openai", t0, timing.failureThreshold);
    await store.tryAcquireProbe("anthropic:claude", t0);
    const pttl = (key: string) => raw.pTTL(key);
    const near = async (key: string, expected: number) => {
      const left = await pttl(key);
      assert.ok(
        left > expected - 5_000 && left <= expected,
        `${key}: PTTL ${left}, want ~${expected}`,
      );
    };
    await near(`${prefix}fail:openai:gpt-4o`, 600_000); // max(2 × cooldown, window)
    await near(`${prefix}open:openai:gpt-4o`, 600_000); // cooldown + half-open cooldown
    await near(`${prefix}probe:anthropic:claude`, 300_000); // cooldown
    await near(`${prefix}rollup:openai`, 200_000); // rollup window
    await near(`${prefix}open_keys`, 600_000);
    await near(`${prefix}rollup_providers`, 200_000);
    assert.equal(await raw.get(`${prefix}open:openai:gpt-4o`), String(t0 + 1 + 300_000));
    assert.deepEqual(await raw.hGetAll(`${prefix}open_keys`), { "openai:gpt-4o": "openai" });
    assert.deepEqual(await raw.zRange(`${prefix}rollup:openai`, 0, -1), ["openai:gpt-4o"]);
    assert.equal(await raw.zCard(`${prefix}fail:openai:gpt-4o`), 2);

    await store.closeKey("openai:gpt-4o", "openai");
    assert.equal(await raw.exists(`${prefix}open:openai:gpt-4o`), 0);
    assert.equal(await raw.exists(`${prefix}fail:openai:gpt-4o`), 0);
    assert.deepEqual(await raw.hGetAll(`${prefix}open_keys`), {});
    await near(`${prefix}closed:openai:gpt-4o`, 600_000);
    // Nothing unprefixed, and no key without a TTL but the dataset's epoch.
    for (const key of await raw.keys("*")) {
      assert.ok(key.startsWith(prefix), key);
      if (key !== `${prefix}epoch`) assert.ok((await pttl(key)) > 0, `${key} has no TTL`);
    }
  } finally {
    await raw.close();
    await store.close();
    await server.stop();
  }
});

// ---- Redis going away -----------------------------------------------------------------------

Deno.test("redis: dies → stores carry on locally; returns → they reconnect and converge", async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: PromiseRejectionEvent) => unhandled.push(e.reason);
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  const server = await startRedisServer();
  const prefix = freshPrefix();
  const logA = captureLogger();
  const logB = captureLogger();
  const a = await makeStore(server.url, { prefix, logger: logA.logger });
  const b = await makeStore(server.url, { prefix, logger: logB.logger });
  try {
    const t0 = Date.now();
    await trip(a, "p:before", "p", t0);
    await waitFor("B to see p:before", () => b.openUntil("p:before") !== null);

    await server.stop();
    await waitFor("A to notice", () => a.describe().fallback);
    await waitFor("B to notice", () => b.describe().fallback);
    assert.deepEqual(a.describe(), { backend: "redis", fallback: true });

    // Every method answers, at once, from local state.
    const started = performance.now();
    assert.equal(await a.recordFailure("p:during", "p", t0 + 100), false);
    assert.equal(await a.recordFailure("p:during", "p", t0 + 101), false);
    assert.equal(await a.recordFailure("p:during", "p", t0 + 102), true);
    assert.equal(a.openUntil("p:during"), t0 + 102 + CONTRACT_TIMING.cooldownMs);
    assert.equal(b.openUntil("p:during"), null); // no Redis, no push
    const probeAt = t0 + 1 + CONTRACT_TIMING.cooldownMs + 5;
    assert.equal(await b.tryAcquireProbe("p:before", probeAt), true);
    assert.equal(await b.tryAcquireProbe("p:before", probeAt), false);
    await b.closeKey("p:before", "p"); // B's probe succeeded while Redis was away
    await b.releaseProbe("p:other");
    await a.reopen("p:again", "p", t0 + 200);
    assert.ok(performance.now() - started < 200, "local calls must not wait on Redis");
    assert.deepEqual(a.rollupKeys("p", t0 + 300).sort(), ["p:again", "p:before", "p:during"]);

    // Several reconnect attempts fail meanwhile; the outage is logged once: the stores share
    // the process's link to this Redis, which logs through one member's logger.
    await new Promise((r) => setTimeout(r, 400));
    const both = () => [...logA.lines, ...logB.lines];
    assert.equal(both().filter((l) => l.level === "warn").length, 1);

    await server.restart();
    await waitFor("A to resync", () => synced(a), 10_000);
    await waitFor("B to resync", () => synced(b), 10_000);
    assert.ok(both().some((l) => l.level === "info" && l.msg.includes("resynchronised")));

    // Converged: Redis came back empty and was re-seeded; the later close wins over the
    // earlier open, whichever store resynced first.
    const converged = () =>
      [a, b].every((s) =>
        s.openUntil("p:before") === null &&
        s.openUntil("p:during") === t0 + 102 + CONTRACT_TIMING.cooldownMs &&
        s.openUntil("p:again") === t0 + 200 + CONTRACT_TIMING.cooldownMs
      );
    await waitFor("both stores to converge", converged, 2_000);
    assert.deepEqual(b.rollupKeys("p", t0 + 300).sort(), ["p:again", "p:during"]);

    // And push works again.
    await trip(b, "p:after", "p", t0 + 400);
    const ms = await waitFor("A to see p:after", () => a.openUntil("p:after") !== null);
    assert.ok(ms < 250, `took ${ms} ms`);
    assert.deepEqual(unhandled, []);
  } finally {
    globalThis.removeEventListener("unhandledrejection", onUnhandled);
    await a.close();
    await b.close();
    await server.stop();
  }
});

Deno.test("redis: a hung Redis times out into the fallback and recovers when it answers", async () => {
  const server = await startRedisServer();
  const a = await makeStore(server.url, { commandTimeoutMs: 100 });
  try {
    const t0 = Date.now();
    server.pause();
    const started = performance.now();
    // The first call waits for its deadline and then answers locally; the rest are local.
    assert.equal(await a.tryAcquireProbe("p:m", t0), true);
    assert.ok(performance.now() - started < 1_000);
    assert.equal(a.describe().fallback, true);
    assert.equal(await a.tryAcquireProbe("p:m", t0 + 1), false);
    assert.equal(await a.recordFailure("p:m", "p", t0), false);
    server.resume();
    await waitFor("A to resync", () => synced(a), 10_000);
    assert.equal(await a.recordFailure("p:m", "p", t0 + 1), false);
  } finally {
    server.resume();
    await a.close();
    await server.stop();
  }
});

Deno.test("redis: while Redis hangs, reaching the threshold opens the key at once, not after the deadline", async () => {
  const server = await startRedisServer();
  const a = await makeStore(server.url, { commandTimeoutMs: 2_000 });
  try {
    const t0 = Date.now();
    server.pause();
    const n = CONTRACT_TIMING.failureThreshold;
    // Each failure's script waits on the hung Redis; the local view must not.
    const recorded = Array.from({ length: n }, (_, i) => a.recordFailure("p:hung", "p", t0 + i));
    assert.ok(a.openUntil("p:hung") !== null, "open before Redis answered");
    server.resume();
    const results = await Promise.all(recorded);
    assert.equal(results.filter((r) => r).length, 1, "one failure opened it");
  } finally {
    server.resume();
    await a.close();
    await server.stop();
  }
});

Deno.test("redis: a key opened on failures Redis missed (it was away) reaches the fleet", async () => {
  const server = await startRedisServer();
  const prefix = freshPrefix();
  const a = await makeStore(server.url, { prefix, commandTimeoutMs: 100 });
  const b = await makeStore(server.url, { prefix });
  try {
    const t0 = Date.now();
    const n = CONTRACT_TIMING.failureThreshold;
    server.pause();
    // Counted by A alone: Redis never hears of these.
    for (let i = 0; i < n - 1; i++) {
      assert.equal(await a.recordFailure("p:lost", "p", t0 + i), false);
    }
    server.resume();
    await waitFor("A to resync", () => synced(a), 10_000);
    assert.equal(await a.recordFailure("p:lost", "p", t0 + n), true);
    await waitFor("B to see it open", () => b.openUntil("p:lost") !== null);
  } finally {
    server.resume();
    await a.close();
    await b.close();
    await server.stop();
  }
});

Deno.test("redis: an idle store notices a hung Redis by heartbeat", async () => {
  const server = await startRedisServer();
  const a = await makeStore(server.url, { commandTimeoutMs: 100, heartbeatMs: 50 });
  try {
    server.pause();
    // No call is made: only the heartbeat can tell the subscriber is deaf now.
    const ms = await waitFor("the heartbeat to notice", () => a.describe().fallback, 2_000);
    assert.ok(ms < 1_000, `took ${ms} ms`);
    server.resume();
    await waitFor("A to resync", () => synced(a), 10_000);
  } finally {
    server.resume();
    await a.close();
    await server.stop();
  }
});

Deno.test("redis: an invalid URL is refused at construction", () => {
  assert.throws(
    () =>
      createRedisBreakerStore({
        url: "http://127.0.0.1:6379",
        timing: CONTRACT_TIMING,
        logger: captureLogger().logger,
      }),
    TypeError,
  );
});

Deno.test("redis: /health and a keyless reset on one sidecar see the keys another opened", async () => {
  const server = await startRedisServer();
  const prefix = freshPrefix();
  const a = await makeStore(server.url, { prefix });
  const b = await makeStore(server.url, { prefix });
  const { config } = parseConfigText(
    "features: { circuit_breaker: { enabled: true, failure_threshold: 2 } }",
    () => undefined,
    "cb.yaml",
  );
  const cb = config.features.circuit_breaker;
  const breakerA = createBreaker(cb, a, () => {});
  const breakerB = createBreaker(cb, b, () => {});
  try {
    const t0 = Date.now();
    await trip(a, "upb:y", "upb", t0);
    await waitFor("B to see the open", () => b.openUntil("upb:y") !== null);
    // B never saw a request for it, yet reports it as the fleet has it.
    assert.deepEqual(b.openKeys("upb"), ["upb:y"]);
    assert.equal(breakerB.health("upb", t0 + 10).keys?.["upb:y"]?.state, "open");
    assert.equal(breakerA.health("upb", t0 + 10).keys?.["upb:y"]?.state, "open");
    // A reset with no key on B closes it for the fleet.
    assert.deepEqual(await breakerB.reset(), ["upb:y"]);
    await waitFor("A to see the close", () => a.openUntil("upb:y") === null);
    assert.equal(breakerA.health("upb", t0 + 20).keys?.["upb:y"], undefined);
  } finally {
    await a.close();
    await b.close();
    await server.stop();
  }
});
