import assert from "node:assert/strict";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { breakerTiming } from "../../src/breaker/mod.ts";
import { createRedisBreakerStore } from "../../src/state/redis_breaker_store.ts";
import { type InProcessGateway, startGateway, testClock } from "../helpers/in_process.ts";
import { chatBody } from "./daemon.ts";

/** The pause between two looks of a bounded poll (`within`). */
const POLL_MS = 20;

async function ask(d: InProcessGateway, model: string): Promise<number> {
  const res = await d.request("/v1/chat/completions", { method: "POST", body: chatBody(model) });
  await res.body?.cancel();
  return res.status;
}

async function health(d: InProcessGateway) {
  return await (await d.request("/health")).json();
}

/** Poll until `check` holds or `ms` runs out; returns how long it took. */
async function within(
  ms: number,
  check: () => Promise<boolean>,
  what = "condition",
): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < ms) {
    if (await check()) return performance.now() - started;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

/** The Redis the fleet shares: one server or a cluster, stoppable and restartable. */
export interface SharedRedis {
  readonly url: string;
  /** A port of it (the config's `redis.address`; the stores connect by `url`). */
  readonly port: number;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

/**
 * Three sidecars share breaker state through `redis` and survive losing it (run against one
 * Redis by fleet_test.ts and against a three-node Redis Cluster by
 * tests/state/redis_cluster_test.ts).
 */
export async function runBreakerFleet(t: Deno.TestContext, redis: SharedRedis): Promise<void> {
  const up = startFakeUpstream();
  const config = `
providers:
  up: { base_url: "${up.url}/v1" }
routing:
  failover: { backoff: { initial: 5ms, max: 10ms } }
features:
  circuit_breaker:
    enabled: true
    backend: redis
    redis: { address: "127.0.0.1:${redis.port}" }
    failure_threshold: 2
    cooldown_seconds: 1
    max_transient_retries: 0
    per_provider_rollup_threshold: 2
`;
  // Three sidecars in this process, each with its own Redis connections and local view,
  // on one clock: the cooldowns pass by moving it, not by waiting them out.
  const clock = testClock();
  const sidecar = () =>
    startGateway(config, {}, {
      now: clock.now,
      breakerStore: (cfg, logger) =>
        createRedisBreakerStore({
          url: redis.url,
          timing: breakerTiming(cfg.features.circuit_breaker),
          logger,
          now: clock.now,
        }),
    });
  const [a, b, c] = [sidecar(), sidecar(), sidecar()];
  const fleet = [a, b, c];
  try {
    // Every sidecar has connected and synchronised before A's first failure, so the test
    // starts from one shared view rather than racing the connections.
    for (const d of fleet) {
      await within(6_000, async () => (await health(d)).circuit_breaker.redis_fallback === false);
    }
    await t.step(
      "failures through A open the breaker; B and C fast-fail within 250 ms",
      async () => {
        up.script({ kind: "json", status: 500, body: { error: { message: "boom" } } });
        assert.equal(await ask(a, "up/gpt-4o"), 503);
        assert.equal(await ask(a, "up/gpt-4o"), 503);
        const calls = up.requests.length;
        // The transition reaches B and C by Redis pub/sub: wait for it in their /health.
        for (const d of [b, c]) {
          await within(
            250,
            async () =>
              (await health(d)).circuit_breaker.providers.up.keys?.["up:gpt-4o"]?.state === "open",
            "open on B and C",
          );
        }
        assert.equal(await ask(b, "up/gpt-4o"), 503);
        assert.equal(await ask(c, "up/gpt-4o"), 503);
        assert.equal(up.requests.length, calls, "B and C never called the upstream");
        const h = await health(c);
        assert.equal(h.circuit_breaker.backend, "redis");
        assert.equal(h.circuit_breaker.redis_fallback, false);
        assert.equal(h.circuit_breaker.providers.up.keys["up:gpt-4o"].state, "open");
      },
    );

    await t.step("at half-open exactly one probe is sent across the three", async () => {
      clock.advance(1_100);
      // A slow probe on purpose: the other five requests arrive while it is in flight.
      up.script({ kind: "json", delayMs: 200 });
      const calls = up.requests.length;
      const statuses = await Promise.all(
        fleet.flatMap((d) => [ask(d, "up/gpt-4o"), ask(d, "up/gpt-4o")]),
      );
      assert.equal(up.requests.length - calls, 1, "one probe fleet-wide");
      assert.deepEqual(statuses.filter((s) => s === 200).length, 1);
      // The probe succeeded: closed everywhere.
      await within(1_000, async () => (await ask(c, "up/gpt-4o")) === 200);
      assert.equal(await ask(b, "up/gpt-4o"), 200);
    });

    await t.step(
      "the rollup is shared: two open models on A fast-fail a fresh model on B",
      async () => {
        up.script({ kind: "json", status: 502, body: { error: { message: "bad" } } });
        for (const model of ["m1", "m1", "m2", "m2"]) await ask(a, `up/${model}`);
        up.script({ kind: "json" });
        // Within 250 ms B fast-fails a model it never saw fail: a 503 with no upstream call.
        await within(250, async () => {
          const calls = up.requests.length;
          return (await ask(b, "up/fresh")) === 503 && up.requests.length === calls;
        }, "B fast-fails under the shared rollup");
      },
    );

    await t.step(
      "Redis dies: every sidecar keeps serving; it returns: they converge again",
      async () => {
        // Recover m1 and m2 first (their probes succeed), so the rollup no longer holds "up".
        clock.advance(1_100);
        assert.equal(await ask(a, "up/m1"), 200);
        assert.equal(await ask(a, "up/m2"), 200);
        await within(
          1_000,
          async () => (await ask(b, "up/healthy-model")) === 200,
          "B sees the rollup clear",
        );
        await redis.stop();
        for (const d of fleet) {
          assert.equal(await ask(d, "up/healthy-model"), 200, "no request fails for Redis");
        }
        await within(3_000, async () => {
          const h = await health(b);
          return h.circuit_breaker.redis_fallback === true;
        });
        await redis.restart();
        // Every sidecar reconnects (with backoff) and resynchronises.
        for (const d of fleet) {
          await within(6_000, async () => {
            const h = await health(d);
            return h.circuit_breaker.redis_fallback === false;
          }, "reconnected");
        }
        up.script({ kind: "json", status: 500, body: { error: { message: "boom" } } });
        assert.equal(await ask(a, "up/after-outage"), 503);
        assert.equal(await ask(a, "up/after-outage"), 503);
        await within(1_000, async () => {
          // Fast-failed: a 503 that made no upstream call.
          const calls = up.requests.length;
          return (await ask(c, "up/after-outage")) === 503 && up.requests.length === calls;
        }, "C fast-fails after the outage");
      },
    );
  } finally {
    await Promise.all(fleet.map((d) => d.close()));
    await up.close();
  }
}
