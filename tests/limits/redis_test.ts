/**
 * The Redis backend's details against a real redis-server: Butter's bucket shared by two
 * sidecars, token reconciliation over leases, unused permits given back when a sidecar goes
 * quiet, and the per-sidecar fields a restart is resynchronised from.
 */
import assert from "node:assert/strict";
import { createClient } from "redis";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { type InProcessGateway, startGateway, testClock } from "../helpers/in_process.ts";
import { startRedisServer } from "../helpers/redis_server.ts";
import { createRedisBackend } from "../../src/limits/redis.ts";
import { type Check, checksFor, type Rule } from "../../src/limits/policy.ts";
import { createRedisLink, type RedisLink } from "../../src/state/redis_link.ts";
import { StateUnavailable } from "../../src/state/store.ts";
import { captureLogger, waitFor } from "../state/support.ts";
import { buildRuntime, type Runtime } from "../../src/runtime.ts";
import { breakerTiming, createMemoryBreakerStore } from "../../src/breaker/mod.ts";
import { createApp } from "../../src/server/app.ts";
import { closeLimits, createLimiter } from "../../src/limits/mod.ts";
import { parseConfigText } from "../../src/config/mod.ts";

const chat = () => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ model: "up/gpt-4o", messages: [{ role: "user", content: "hi" }] }),
});

async function status(gw: InProcessGateway): Promise<number> {
  const res = await gw.request("/v1/chat/completions", chat());
  await res.body?.cancel();
  return res.status;
}

Deno.test("Butter's bucket on Redis: two sidecars share one burst", async () => {
  const redis = await startRedisServer();
  const up = startFakeUpstream();
  const yaml = `
providers:
  up: { base_url: "${up.url}/v1" }
state: { backend: redis, redis: { url: "${redis.url}" } }
features: { rate_limiting: { fleet_size: 2 } }
plugins:
  ratelimit: { requests_per_minute: 6 }
`;
  const a = startGateway(yaml);
  const b = startGateway(yaml);
  try {
    await a.runtime.limits!.shared();
    await b.runtime.limits!.shared();
    const statuses: number[] = [];
    const remaining: string[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await (i % 2 ? b : a).request("/v1/chat/completions", chat());
      await res.body?.cancel();
      statuses.push(res.status);
      remaining.push(res.headers.get("x-ratelimit-remaining") ?? "none");
    }
    // A bucket refills by fractions; the header counts whole requests, as on the memory backend.
    assert.ok(remaining.every((r) => /^\d+$/.test(r)), remaining.join(" "));
    // A bucket of 6 refills one a ten seconds: the burst is 6 across both, not 12.
    const admitted = statuses.filter((s) => s === 200).length;
    assert.ok(admitted >= 6 && admitted <= 7, `admitted ${admitted} of a bucket of 6`);
    assert.equal(up.requests.length, admitted);
  } finally {
    await a.close();
    await b.close();
    await up.close();
    await redis.stop();
  }
});

Deno.test("leases: reconciliation moves the fleet's count both ways; quiet sidecars give back", async () => {
  const redis = await startRedisServer();
  const raw = createClient({ url: redis.url, maintNotifications: "disabled" });
  raw.on("error", () => {});
  await raw.connect();
  const link = createRedisLink({ url: redis.url, name: "t", logger: captureLogger().logger });
  let now = 60_000 * 1_000; // a minute's start
  const backend = createRedisBackend({
    logger: captureLogger().logger,
    fleetSize: 1,
    fallbackShare: 1,
    now: () => now,
    idleMs: 100,
    sidecarId: "s1",
  });
  backend.attach(link);
  const rule: Rule = {
    id: "t",
    scope: "global",
    metric: "tokens",
    algorithm: "window",
    limit: 1000,
    windowMs: 60_000,
    windowName: "minute",
    failMode: "open",
  };
  const [check] = checksFor([rule], { models: [] });
  const key = `pilotfish:rl:{t|global}:${now}`;
  const field = async () => Number(await raw.hGet(key, "s1") ?? 0);
  try {
    await waitFor("the link", () => link.ready());
    const a = await backend.admit([check!], [100], now);
    assert.ok(a.ok);
    // The first borrow leased the cost plus a quarter of what was left.
    assert.equal(await field(), 100 + 250);
    assert.equal(a.states[0]!.remaining, 900);
    // Real usage above the estimate comes out of the lease first: no Redis call needed.
    backend.adjust(a.states[0]!, 200, now);
    assert.equal(await field(), 350);
    assert.equal(backend.usage(now)[0]!.remaining, 700);
    // Beyond the lease it is added to the sidecar's field.
    backend.adjust(a.states[0]!, 100, now);
    for (let i = 0; i < 50 && (await field()) !== 400; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(await field(), 400);
    assert.equal(backend.usage(now)[0]!.remaining, 600);
    // Below the estimate: the difference is this sidecar's to use again.
    backend.adjust(a.states[0]!, -150, now);
    assert.equal(backend.usage(now)[0]!.remaining, 750);
    // Quiet for the idle time: the unused permits go back to the fleet.
    now += 500;
    for (let i = 0; i < 100 && (await field()) !== 250; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(await field(), 250, "only what was used stays counted");
  } finally {
    await backend.close();
    await raw.close();
    await redis.stop();
  }
});

Deno.test("refresh(): a sidecar's usage shows the permits another gave back since it last heard", async () => {
  const redis = await startRedisServer();
  const link1 = createRedisLink({ url: redis.url, name: "t1", logger: captureLogger().logger });
  const link2 = createRedisLink({ url: redis.url, name: "t2", logger: captureLogger().logger });
  let now = 60_000 * 1_000;
  const backend = (sidecarId: string, idleMs: number) =>
    createRedisBackend({
      logger: captureLogger().logger,
      fleetSize: 2,
      fallbackShare: 0.5,
      now: () => now,
      idleMs,
      sidecarId,
    });
  const raw = createClient({ url: redis.url, maintNotifications: "disabled" });
  raw.on("error", () => {});
  await raw.connect();
  const s1 = backend("s1", 100);
  const s2 = backend("s2", 3_600_000);
  s1.attach(link1);
  s2.attach(link2);
  const rule: Rule = {
    id: "t",
    scope: "global",
    metric: "tokens",
    algorithm: "window",
    limit: 1000,
    windowMs: 60_000,
    windowName: "minute",
    failMode: "open",
  };
  const [check] = checksFor([rule], { models: [] });
  try {
    await waitFor("the links", () => link1.ready() && link2.ready());
    assert.ok((await s1.admit([check!], [100], now)).ok);
    assert.ok((await s2.admit([check!], [100], now)).ok);
    // s2 heard the total while s1 still held its unused lease.
    const stale = s2.usage(now)[0]!.used;
    assert.ok(stale > 200, `used ${stale}`);
    // s1 goes quiet and gives its unused permits back; s2 has not talked to Redis since.
    now += 500;
    const key = `pilotfish:rl:{t|global}:${60_000 * 1_000}`;
    for (let i = 0; i < 100 && Number(await raw.hGet(key, "s1") ?? 0) !== 100; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(Number(await raw.hGet(key, "s1")), 100, "s1 gave its unused permits back");
    assert.equal(s2.usage(now)[0]!.used, stale);
    await s2.refresh!();
    assert.equal(s2.usage(now)[0]!.used, 200);
  } finally {
    await s1.close();
    await s2.close();
    await raw.close();
    await redis.stop();
  }
});

Deno.test("over the limit: refused locally for 100 ms after Redis said no, then asked again", async () => {
  const redis = await startRedisServer();
  const link = createRedisLink({ url: redis.url, name: "t", logger: captureLogger().logger });
  let now = 60_000 * 2_000;
  const backend = createRedisBackend({
    logger: captureLogger().logger,
    fleetSize: 1,
    fallbackShare: 1,
    now: () => now,
  });
  backend.attach(link);
  const rule: Rule = {
    id: "n",
    scope: "global",
    metric: "requests",
    algorithm: "window",
    limit: 1,
    windowMs: 60_000,
    windowName: "minute",
    failMode: "open",
  };
  const [check] = checksFor([rule], { models: [] });
  try {
    await waitFor("the link", () => link.ready());
    assert.ok((await backend.admit([check!], [1], now)).ok);
    const asked = backend.admit([check!], [1], now);
    assert.ok(asked instanceof Promise, "the first refusal asks Redis");
    assert.equal((await asked).ok, false);
    const local = backend.admit([check!], [1], now + 50);
    assert.ok(!(local instanceof Promise), "within 100 ms: no round trip");
    assert.equal(local.ok, false);
    now += 150;
    const again = backend.admit([check!], [1], now);
    assert.ok(again instanceof Promise, "then Redis is asked again");
    assert.equal((await again).ok, false);
  } finally {
    await backend.close();
    await redis.stop();
  }
});

Deno.test("steady state: no request waits for Redis, the next window's lease is borrowed ahead", async () => {
  const redis = await startRedisServer();
  const raw = createClient({ url: redis.url, maintNotifications: "disabled" });
  raw.on("error", () => {});
  await raw.connect();
  const link = createRedisLink({ url: redis.url, name: "t", logger: captureLogger().logger });
  const start = 60_000 * 3_000;
  let now = start;
  const backend = createRedisBackend({
    logger: captureLogger().logger,
    fleetSize: 2,
    fallbackShare: 0.5,
    now: () => now,
    sidecarId: "s1",
  });
  backend.attach(link);
  const rule: Rule = {
    id: "p",
    scope: "global",
    metric: "requests",
    algorithm: "window",
    limit: 800,
    windowMs: 60_000,
    windowName: "minute",
    failMode: "open",
  };
  const [check] = checksFor([rule], { models: [] });
  const yieldIo = () => new Promise((r) => setTimeout(r, 5));
  try {
    await waitFor("the link", () => link.ready());
    // Only the very first request borrows on the request path.
    const opening = backend.admit([check!], [1], now);
    assert.ok(opening instanceof Promise);
    assert.ok((await opening).ok);
    await raw.configResetStat();
    let waited = 0;
    for (let i = 0; i < 300; i++) {
      now += 100; // 300 requests over 30 s: leases refill in the background
      const a = backend.admit([check!], [1], now);
      if (a instanceof Promise) waited++;
      assert.ok((await a).ok);
      await yieldIo();
    }
    assert.equal(waited, 0, "top-ups arrive before the lease runs out");
    const stats = await raw.info("commandstats");
    const scripts = Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1] ?? 0);
    // deno-lint-ignore no-console -- the figure the bench budget asks for
    console.log(
      `  300 requests: ${scripts} Redis scripts (${(scripts / 300).toFixed(3)} per request)`,
    );
    assert.ok(scripts >= 1 && scripts <= 10, `${scripts} scripts for 300 requests`);
    // Within the window's last second the next window's lease is borrowed.
    now = start + 59_500;
    assert.ok((await backend.admit([check!], [1], now)).ok);
    const nextKey = `pilotfish:rl:{p|global}:${start + 60_000}`;
    for (let i = 0; i < 50 && (await raw.hGet(nextKey, "s1")) === null; i++) await yieldIo();
    assert.equal(Number(await raw.hGet(nextKey, "s1")), 1 + 100, "need + 800 / (4 x 2)");
    await yieldIo(); // the grant's reply reaches this sidecar
    now = start + 60_001;
    const first = backend.admit([check!], [1], now);
    assert.ok(!(first instanceof Promise), "the new window's first request is local");
    assert.ok(first.ok);
    assert.equal(first.states[0]!.remaining, 800 - 1);
  } finally {
    await backend.close();
    await raw.close();
    await redis.stop();
  }
});

Deno.test("a burst on a cold lease is admitted up to the limit, not cut at a few borrows", async (t) => {
  const redis = await startRedisServer();
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  up: { base_url: "${up.url}/v1" }
state: { backend: redis, redis: { url: "${redis.url}" } }
features:
  rate_limiting:
    enabled: true
    fleet_size: 3
    limits: { requests_per_minute: 100 }
`);
  try {
    await gw.runtime.limits!.shared();
    await t.step("100 at once against 100 a minute: all admitted", async () => {
      const statuses = await Promise.all(Array.from({ length: 100 }, () => status(gw)));
      assert.equal(statuses.filter((s) => s === 200).length, 100);
    });
    await t.step("and not one more", async () => {
      const statuses = await Promise.all(Array.from({ length: 10 }, () => status(gw)));
      assert.deepEqual(statuses.filter((s) => s === 200), []);
    });
  } finally {
    await gw.close();
    await up.close();
    await redis.stop();
  }
});

/** A global limit of 100 requests a minute, open on an outage, as its check. */
function hundredPerMinute(id: string): Check {
  const rule: Rule = {
    id,
    scope: "global",
    metric: "requests",
    algorithm: "window",
    limit: 100,
    windowMs: 60_000,
    windowName: "minute",
    failMode: "open",
  };
  return checksFor([rule], { models: [] })[0]!;
}

/** A sidecar's link and backend on `url` (links reconnect within 50 ms). */
function sidecarOn(
  url: string,
  id: string,
  opts: { now: () => number; fleetSize: number; settleMs?: number },
) {
  const link = createRedisLink({
    url,
    name: id,
    logger: captureLogger().logger,
    backoff: { minMs: 20, maxMs: 50 },
  });
  const backend = createRedisBackend({
    logger: captureLogger().logger,
    fleetSize: opts.fleetSize,
    fallbackShare: 1 / opts.fleetSize,
    now: opts.now,
    sidecarId: id,
    ...(opts.settleMs !== undefined ? { settleMs: opts.settleMs } : {}),
  });
  backend.attach(link);
  return { link, backend };
}

/**
 * Sidecars "a" and "b" on `url` sharing a limit of 100 a minute (`rule`) at `now`; `ask` sends
 * `n` requests to one and says how many it admitted.
 */
function pairOn(url: string, rule: string, now: number, settleMs?: number) {
  const check = hundredPerMinute(rule);
  const opts = { now: () => now, fleetSize: 2, ...(settleMs !== undefined ? { settleMs } : {}) };
  const a = sidecarOn(url, "a", opts);
  const b = sidecarOn(url, "b", opts);
  const ask = async (s: typeof a, n: number) => {
    let ok = 0;
    for (let i = 0; i < n; i++) if ((await s.backend.admit([check], [1], now)).ok) ok++;
    return ok;
  };
  const close = async () => {
    await a.backend.close();
    await b.backend.close();
  };
  return { a, b, ask, close };
}

Deno.test("back from an outage: a sidecar that reconnects first keeps to its share until the others have written theirs", async () => {
  const redis = await startRedisServer();
  const raw = createClient({ url: redis.url, maintNotifications: "disabled" });
  raw.on("error", () => {});
  const now = 60_000 * 2_000;
  const check = hundredPerMinute("r");
  // B's reconnection is held back by the test: it stands for a sidecar whose backoff timer
  // fires later than A's.
  let holdB = false;
  const heldB: (() => void)[] = [];
  type Box = { h?: ReturnType<typeof setTimeout>; cancelled: boolean };
  const timersB = {
    setTimeout(fn: () => void, ms: number): Box {
      const box: Box = { cancelled: false };
      const arm = () => {
        if (!box.cancelled) box.h = setTimeout(fn, ms);
      };
      if (holdB) heldB.push(arm);
      else arm();
      return box;
    },
    clearTimeout(handle: unknown) {
      const box = handle as Box | undefined;
      if (box === undefined) return;
      box.cancelled = true;
      clearTimeout(box.h);
    },
  };
  const sidecar = (id: string, timers?: typeof timersB) => {
    const link = createRedisLink({
      url: redis.url,
      name: id,
      logger: captureLogger().logger,
      backoff: { minMs: 20, maxMs: 50 },
      heartbeatMs: 100,
      ...(timers ? { timers } : {}),
    });
    const backend = createRedisBackend({
      logger: captureLogger().logger,
      fleetSize: 2,
      fallbackShare: 0.5,
      now: () => now,
      sidecarId: id,
      settleMs: 1_500,
    });
    backend.attach(link);
    return { link, backend };
  };
  const a = sidecar("a");
  const b = sidecar("b", timersB);
  const admitted = { a: 0, b: 0 };
  const ask = async (s: "a" | "b", n: number) => {
    for (let i = 0; i < n; i++) {
      if ((await (s === "a" ? a : b).backend.admit([check!], [1], now)).ok) admitted[s]++;
    }
  };
  try {
    await waitFor("both links", () => a.link.ready() && b.link.ready());
    await ask("a", 10);
    await ask("b", 10);
    holdB = true; // from here B arms no timer (its reconnection included) until released
    await redis.stop();
    await waitFor("the outage", () => !a.link.ready() && !b.link.ready());
    // Each on its share: 50 of 100, counted with what it took before, and no more than half
    // of what the fleet had left when it last heard from Redis (B heard after A borrowed).
    await ask("a", 60);
    await ask("b", 60);
    assert.equal(admitted.a, 50);
    assert.ok(admitted.b >= 40 && admitted.b <= 50, `B admitted ${admitted.b}`);
    await redis.restart(); // empty
    await waitFor("A back", () => a.link.ready());
    assert.equal(b.link.ready(), false);
    // B's field is not written yet: A must not borrow B's share from the emptied window.
    await ask("a", 30);
    assert.equal(admitted.a, 50, "A admitted past its share before B wrote its field");
    assert.equal(a.backend.health().mode, "fallback");
    holdB = false;
    for (const run of heldB.splice(0)) run();
    await waitFor("B back", () => b.link.ready());
    await waitFor("A shared again", () => a.backend.health().mode === "shared", 5_000);
    await waitFor("B shared again", () => b.backend.health().mode === "shared", 5_000);
    await ask("a", 30);
    await ask("b", 30);
    assert.equal(admitted.a + admitted.b, 100);
    await raw.connect();
    const fields = await raw.hGetAll(`pilotfish:rl:{r|global}:${now}`);
    assert.deepEqual(fields, { a: String(admitted.a), b: String(admitted.b) });
  } finally {
    await a.backend.close();
    await b.backend.close();
    if (raw.isOpen) await raw.close();
    await redis.stop();
  }
});

Deno.test("a link lost late in a busy window: the share is of what the fleet had left, not of the limit", async () => {
  const redis = await startRedisServer();
  const { a, b, ask, close } = pairOn(redis.url, "late", 60_000 * 4_000);
  let admitted = 0;
  try {
    await waitFor("both links", () => a.link.ready() && b.link.ready());
    // A takes most of the window; B, quiet, borrows once after it and sees that.
    admitted += await ask(a, 80);
    admitted += await ask(b, 2);
    await redis.stop();
    await waitFor("the outage", () => !a.link.ready() && !b.link.ready());
    admitted += await ask(a, 50);
    admitted += await ask(b, 50);
    // The old share (50 each, counted with what each took) let B admit 48 more: 130 in all.
    assert.ok(admitted <= 100, `the fleet admitted ${admitted} of 100`);
  } finally {
    await close();
    await redis.stop();
  }
});

Deno.test("back into an emptied Redis before the others: the share is of what the fleet had left, not of the empty window", async () => {
  const redis = await startRedisServer();
  // Settling lasts the whole test: B never comes back to write its field.
  const { a, b, ask, close } = pairOn(redis.url, "emptied", 60_000 * 5_000, 60_000);
  let admitted = 0;
  try {
    await waitFor("both links", () => a.link.ready() && b.link.ready());
    admitted += await ask(a, 10);
    admitted += await ask(b, 80);
    await a.backend.refresh!(); // A has heard the fleet's 90
    await redis.stop();
    await waitFor("the outage", () => !a.link.ready() && !b.link.ready());
    await b.backend.close(); // B is gone for good
    await redis.restart(); // empty
    await waitFor("A back", () => a.link.ready());
    assert.equal(a.backend.health().mode, "fallback", "settling");
    admitted += await ask(a, 50);
    // A's own field alone said 10-odd used: its share of that let A admit 40 more.
    assert.ok(admitted <= 100, `the fleet admitted ${admitted} of 100`);
  } finally {
    await close();
    await redis.stop();
  }
});

Deno.test("back into an emptied Redis: the share already paid out during the outage is not paid again while settling", async () => {
  const redis = await startRedisServer();
  const { a, b, ask, close } = pairOn(redis.url, "paid", 60_000 * 7_000, 60_000);
  try {
    await waitFor("both links", () => a.link.ready() && b.link.ready());
    await ask(a, 10);
    await ask(b, 60);
    await a.backend.refresh!(); // A has heard the fleet's 70
    await redis.stop();
    await waitFor("the outage", () => !a.link.ready() && !b.link.ready());
    const alone = await ask(a, 50); // its share of the 30 left, and what its lease held
    assert.ok(alone > 0 && 10 + 60 + alone <= 100, `A admitted ${alone} alone`);
    await b.backend.close();
    await redis.restart(); // empty
    await waitFor("A back", () => a.link.ready());
    assert.equal(a.backend.health().mode, "fallback", "settling");
    assert.equal(await ask(a, 50), 0, "the share was paid out again");
  } finally {
    await close();
    await redis.stop();
  }
});

Deno.test("fail_mode closed: a link that is up but failing (a full queue) refuses, not the share", async () => {
  const T = 60_000 * 8_000;
  const check = checksFor([{ ...hundredPerMinute("failing").rule, failMode: "closed" }], {
    models: [],
  })[0]!;
  const full = () => Promise.reject(new StateUnavailable("The queue is full"));
  const link = {
    ready: () => true,
    onStateChange: () => () => {},
    onConnect: () => () => {},
    command: full,
    eval: full,
    publish: () => Promise.resolve(),
    subscribe: () => Promise.resolve(() => Promise.resolve()),
    close: () => Promise.resolve(),
  } as unknown as RedisLink;
  const backend = createRedisBackend({
    logger: captureLogger().logger,
    fleetSize: 2,
    fallbackShare: 0.5,
    now: () => T,
  });
  backend.attach(link);
  try {
    let admitted = 0;
    for (let i = 0; i < 20; i++) if ((await backend.admit([check], [1], T)).ok) admitted++;
    assert.equal(admitted, 0);
  } finally {
    await backend.close();
  }
});

Deno.test("fail_mode closed: refused while Redis is away, admitted on the share once it is back and the fleet settles", async () => {
  const redis = await startRedisServer();
  const now = 60_000 * 6_000;
  const check = checksFor([{ ...hundredPerMinute("closed").rule, failMode: "closed" }], {
    models: [],
  })[0]!;
  const { link, backend } = sidecarOn(redis.url, "c", {
    now: () => now,
    fleetSize: 2,
    settleMs: 60_000,
  });
  try {
    await waitFor("the link", () => link.ready());
    assert.ok((await backend.admit([check], [1], now)).ok);
    await redis.stop();
    await waitFor("the outage", () => !link.ready());
    // The permits it held first (Redis granted them), then refusals naming the store.
    let refusal: Awaited<ReturnType<typeof backend.admit>> | undefined;
    const shown: string[] = [];
    for (let i = 0; i < 100 && refusal === undefined; i++) {
      const r = await backend.admit([check], [1], now);
      if (!r.ok) refusal = r;
      else shown.push(`${r.states[0]!.remaining}/${r.states[0]!.limit}`);
    }
    assert.equal(refusal?.unavailable, true);
    // Those answers' headers: the real limit, counting down (not a share that stands still).
    assert.ok(shown.length >= 2, shown.join(" "));
    assert.ok(shown.every((x) => x.endsWith("/100")), shown.join(" "));
    const left = shown.map((x) => Number(x.split("/")[0]));
    assert.ok(left.every((n, i) => i === 0 || n === left[i - 1]! - 1), shown.join(" "));
    await redis.restart();
    await waitFor("back", () => link.ready());
    assert.equal(backend.health().mode, "fallback", "settling");
    const r = await backend.admit([check], [1], now);
    assert.ok(r.ok, "refused as if the store were away while it is there");
    assert.equal(r.states[0]!.limit, 50, "the share's limit in the headers");
    assert.equal(backend.usage(now)[0]!.limit, 50);
  } finally {
    await backend.close();
    await redis.stop();
  }
});

Deno.test("a sidecar that started during an outage and admitted alone settles at its first connection too", async () => {
  const redis = await startRedisServer();
  await redis.stop();
  const now = 60_000 * 3_000;
  const check = hundredPerMinute("s");
  const link = createRedisLink({
    url: redis.url,
    name: "late",
    logger: captureLogger().logger,
    backoff: { minMs: 20, maxMs: 50 },
  });
  const backend = createRedisBackend({
    logger: captureLogger().logger,
    fleetSize: 2,
    fallbackShare: 0.5,
    now: () => now,
    sidecarId: "late",
    settleMs: 300,
  });
  backend.attach(link);
  try {
    for (let i = 0; i < 10; i++) assert.ok((await backend.admit([check!], [1], now)).ok);
    await redis.restart();
    await waitFor("the first connection", () => link.ready());
    assert.equal(backend.health().mode, "fallback", "settling, as after an outage");
    await waitFor("shared", () => backend.health().mode === "shared", 5_000);
  } finally {
    await backend.close();
    await redis.stop();
  }
});

Deno.test("a reload during an outage keeps the share already taken: the fleet stays within the limit", async () => {
  const redis = await startRedisServer();
  const up = startFakeUpstream();
  const clock = testClock();
  clock.advance(60_000 - (Date.now() % 60_000) + 500); // one window for the whole test
  const yaml = `
providers:
  up: { base_url: "${up.url}/v1" }
features:
  rate_limiting:
    enabled: true
    backend: redis
    redis: { url: "${redis.url}" }
    fleet_size: 2
    limits: { requests_per_minute: 20 }
`;
  const gw = startGateway(yaml, {}, { now: clock.now });
  let next: Runtime | null = null;
  try {
    await gw.runtime.limits!.shared();
    await redis.stop();
    await waitFor("the outage", () => gw.runtime.limits!.health().mode === "fallback", 5_000);
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push(await status(gw));
    assert.equal(statuses.filter((s) => s === 200).length, 10, "the share: half of 20");
    // The same config again (a reload of an edited file): a new generation on the same owner.
    const generation = buildRuntime(gw.runtime.config, 2, {
      fetch,
      random: Math.random,
      now: clock.now,
      routing: gw.runtime.routing,
      breakerStore: createMemoryBreakerStore(
        breakerTiming(gw.runtime.config.features.circuit_breaker),
      ),
      write: () => {},
    });
    next = generation;
    gw.runtime.retire();
    const app = createApp({ runtime: () => generation, isReady: () => true });
    const res = await app.fetch(new Request("http://localhost/v1/chat/completions", chat()));
    await res.body?.cancel();
    assert.equal(res.status, 429, "the share was handed out again after the reload");
    assert.equal(generation.limits!.health().mode, "fallback");
  } finally {
    if (next !== null) {
      next.retire();
      await next.dispose();
    }
    await gw.close();
    await up.close();
    await redis.stop();
  }
});

Deno.test("a limit lowered mid-window (a reload) is the fleet's limit at once: leased permits go back", async () => {
  const redis = await startRedisServer();
  const now = 60_000 * 3_000;
  const sidecars = ["a", "b", "c"].map((id) =>
    sidecarOn(redis.url, id, { now: () => now, fleetSize: 3 })
  );
  const before = hundredPerMinute("lowered");
  const after = checksFor([{ ...before.rule, limit: 5 }], { models: [] })[0]!;
  const higher = checksFor([{ ...before.rule, limit: 200 }], { models: [] })[0]!;
  try {
    await waitFor("the links", () => sidecars.every((s) => s.link.ready()));
    // One request each: each sidecar now holds a lease of several permits.
    for (const s of sidecars) assert.ok((await s.backend.admit([before], [1], now)).ok);
    assert.ok(sidecars.every((s) => s.backend.usage(now)[0]!.remaining > 5));
    // Raised (another reload): the leases hold, nothing is given back or refused.
    assert.ok((await sidecars[0]!.backend.admit([higher], [1], now)).ok);
    // What /health reads after the reload, before any request: the new limit.
    const row = sidecars[1]!.backend.usage(now, () => after.rule)[0]!;
    assert.equal(row.limit, 5);
    assert.ok(row.remaining <= 1, `remaining ${row.remaining} of 5 with 4 taken`);
    // Lowered to 5 with 4 taken: the fleet admits one more, not what the leases held.
    let admitted = 0;
    for (let i = 0; i < 10; i++) {
      for (const s of sidecars) if ((await s.backend.admit([after], [1], now)).ok) admitted++;
    }
    assert.equal(admitted, 1, `admitted ${admitted} after the limit went down to 5 with 4 taken`);
  } finally {
    for (const s of sidecars) await s.backend.close();
    await redis.stop();
  }
});

Deno.test("the first connection says limits are shared; only a reconnection says again", async () => {
  const redis = await startRedisServer();
  const log = captureLogger();
  const link = createRedisLink({
    url: redis.url,
    name: "first",
    logger: captureLogger().logger,
    backoff: { minMs: 20, maxMs: 50 },
  });
  const backend = createRedisBackend({
    logger: log.logger,
    fleetSize: 1,
    fallbackShare: 1,
    now: () => Date.now(),
    settleMs: 50,
  });
  backend.attach(link);
  const said = () => log.lines.filter((l) => l.msg.startsWith("rate limits: Redis reachable"));
  try {
    await waitFor("the first connection", () => said().length === 1);
    assert.equal(said()[0]!.msg, "rate limits: Redis reachable, limits shared by the fleet");
    await redis.stop();
    await waitFor("the outage", () => !link.ready());
    await redis.restart();
    await waitFor("back", () => said().length === 2, 5_000);
    assert.equal(said()[1]!.msg, "rate limits: Redis reachable, limits shared by the fleet again");
  } finally {
    await backend.close();
    await redis.stop();
  }
});

Deno.test("a reload that turns Redis limits off and on again keeps the backend; other settings or shutdown close it", async () => {
  const redis = await startRedisServer();
  const other = await startRedisServer();
  const owner = {};
  const { logger } = captureLogger();
  const deps = { logger, now: Date.now, owner };
  const config = (url: string) =>
    parseConfigText(
      `features:\n  rate_limiting:\n    enabled: true\n    backend: redis\n    redis: { url: "${url}" }\n    limits: { requests_per_minute: 5 }\n`,
      () => undefined,
      "t.yaml",
    ).config;
  const until = async (cond: () => Promise<boolean>, what: string) => {
    for (let i = 0; i < 100 && !(await cond()); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(await cond(), what);
  };
  const clients = async (url: string) => {
    const c = createClient({ url });
    await c.connect();
    try {
      // The link's connections, named by it; not this probe.
      return String(await c.sendCommand(["CLIENT", "LIST"])).split("\n")
        .filter((l) => l.includes("name=pilotfish-")).length;
    } finally {
      await c.close();
    }
  };
  try {
    const first = createLimiter(config(redis.url), deps)!;
    await first.shared();
    await first.stage.dispose?.();
    // No generation uses it (limits off): it lingers, link up.
    assert.ok(await clients(redis.url) > 0);
    const again = createLimiter(config(redis.url), deps)!;
    assert.equal(again.shared(), first.shared(), "the same backend, taken up again");
    await again.stage.dispose?.();
    // A reload to another Redis: the lingering one closes at once.
    const moved = createLimiter(config(other.url), deps)!;
    await moved.shared();
    await until(async () => (await clients(redis.url)) === 0, "the old link closed");
    await moved.stage.dispose?.();
    assert.ok(await clients(other.url) > 0);
    // Shutdown: nothing lingers.
    await closeLimits(owner);
    await until(async () => (await clients(other.url)) === 0, "closed at shutdown");
  } finally {
    await closeLimits(owner);
    await redis.stop();
    await other.stop();
  }
});
