// deno-lint-ignore-file no-console -- the fleet test prints the admitted counts.
/**
 * The limits' fleet scenario (run against one Redis by fleet_test.ts and against a
 * three-node Redis Cluster by fleet_cluster_test.ts): three sidecars (in-process gateways) share 300 requests/minute and 20,000
 * tokens/minute through one redis-server; 1,000 requests spread unevenly over them. Then
 * Redis is killed mid-window (each falls back to its share, nothing fails for it) and
 * restarted (they converge without a burst).
 */
import assert from "node:assert/strict";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { type InProcessGateway, startGateway, testClock } from "../helpers/in_process.ts";

const POLL_MS = 20;

async function within(ms: number, check: () => Promise<boolean>, what: string): Promise<void> {
  const started = performance.now();
  while (performance.now() - started < ms) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

const mode = async (d: InProcessGateway): Promise<string> =>
  (await (await d.request("/health")).json()).rate_limiting.mode;

/** `chars` of message text: the estimate is chars / 4 tokens (chars_per_token default). */
function body(chars: number): string {
  return JSON.stringify({
    model: "up/gpt-4o",
    messages: [{ role: "user", content: "x".repeat(chars) }],
  });
}

/** Send `n` requests over the fleet by `weights`, `parallel` at a time; returns statuses. */
async function spread(
  fleet: readonly InProcessGateway[],
  weights: readonly number[],
  n: number,
  chars: number,
  parallel = 8,
): Promise<{ statuses: number[]; perSidecar: number[] }> {
  const total = weights.reduce((a, b) => a + b, 0);
  const statuses: number[] = [];
  const perSidecar = fleet.map(() => 0);
  let sent = 0;
  const pick = (i: number) => {
    let x = (i * 7919) % total;
    for (let s = 0; s < weights.length; s++) {
      x -= weights[s] as number;
      if (x < 0) return s;
    }
    return weights.length - 1;
  };
  const worker = async () => {
    while (sent < n) {
      const i = sent++;
      const s = pick(i);
      const res = await (fleet[s] as InProcessGateway).request("/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: body(chars),
      });
      await res.body?.cancel();
      statuses.push(res.status);
      if (res.status === 200) perSidecar[s]!++;
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return { statuses, perSidecar };
}

export async function runLimitsFleet(
  t: Deno.TestContext,
  redisUrl: string,
  outage?: { stop(): Promise<void>; restart(): Promise<void> },
): Promise<void> {
  const up = startFakeUpstream();
  const clock = testClock();
  // Start at the beginning of a minute: every phase fits in one window.
  clock.advance(60_000 - (Date.now() % 60_000) + 500);
  const config = `
providers:
  up: { base_url: "${up.url}/v1" }
state:
  backend: redis
  redis: { url: "${redisUrl}" }
features:
  rate_limiting:
    enabled: true
    fleet_size: 3
    limits: { requests_per_minute: 300, tokens_per_minute: 20000 }
`;
  const fleet = [0, 1, 2].map(() => startGateway(config, {}, { now: clock.now }));
  const weights = [6, 3, 1];
  try {
    for (const d of fleet) await d.runtime.limits!.shared();
    // Shared, and caught up: a sidecar whose link came back (a Sentinel's failover in an
    // earlier step) keeps to its share while it settles, which /health says as `fallback`.
    const modes = () => Promise.all(fleet.map(mode));
    await within(
      15_000,
      async () => (await modes()).every((m) => m === "shared"),
      "every sidecar sharing through Redis",
    );
    await t.step("requests bind: 1,000 requests, 300/minute admitted fleet-wide", async () => {
      up.script({ kind: "json" }); // usage: 7 prompt tokens; 40 chars estimate 10
      const { statuses, perSidecar } = await spread(fleet, weights, 1000, 40);
      const admitted = statuses.filter((s) => s === 200).length;
      console.log(
        `  requests/minute limit 300: admitted ${admitted} (per sidecar ${perSidecar.join(" / ")})`,
      );
      assert.ok(statuses.every((s) => s === 200 || s === 429), `statuses ${new Set(statuses)}`);
      assert.ok(
        Math.abs(admitted - 300) <= 6,
        `admitted ${admitted}, not within 2 % of 300 (modes now: ${(await modes()).join(" / ")})`,
      );
      assert.equal(up.requests.length, admitted, "limited requests reach no upstream");
    });
    await t.step("tokens bind: 1,000 requests of ~100 tokens, 20,000/minute admitted", async () => {
      clock.advance(60_000);
      const before = up.requests.length;
      // The upstream reports what was estimated: 400 chars = 100 tokens.
      up.script({
        kind: "json",
        body: {
          id: "x",
          object: "chat.completion",
          created: 1,
          model: "gpt-4o",
          choices: [{
            index: 0,
            message: { role: "assistant", content: "ok" },
            finish_reason: "stop",
          }],
          usage: { prompt_tokens: 100, completion_tokens: 1, total_tokens: 101 },
        },
      });
      const { statuses, perSidecar } = await spread(fleet, weights, 1000, 400);
      const admitted = statuses.filter((s) => s === 200).length;
      const tokens = admitted * 100;
      console.log(
        `  tokens/minute limit 20000: admitted ${tokens} tokens in ${admitted} requests (per sidecar ${
          perSidecar.join(" / ")
        })`,
      );
      assert.ok(Math.abs(tokens - 20_000) <= 400, `admitted ${tokens} tokens, not within 2 %`);
      assert.equal(up.requests.length - before, admitted);
    });
    if (!outage) return;
    await t.step(
      "Redis killed mid-window: each sidecar on its share, nothing fails for it; back: converge",
      async () => {
        clock.advance(60_000);
        up.script({ kind: "json" });
        const first = await spread(fleet, weights, 90, 40);
        assert.ok(first.statuses.every((s) => s === 200));
        await outage.stop();
        for (const d of fleet) {
          await within(5_000, async () => (await mode(d)) === "fallback", "fallback");
        }
        const h = await (await fleet[0]!.request("/health")).json();
        assert.match(h.rate_limiting.notice, /Redis unreachable/);
        const during = await spread(fleet, weights, 300, 40);
        assert.ok(
          during.statuses.every((s) => s === 200 || s === 429),
          "nothing fails for the outage",
        );
        await outage.restart();
        for (const d of fleet) {
          await within(10_000, async () => (await mode(d)) === "shared", "shared");
        }
        const after = await spread(fleet, weights, 300, 40);
        assert.ok(after.statuses.every((s) => s === 200 || s === 429));
        const sum = (r: { perSidecar: number[] }) => r.perSidecar.reduce((a, b) => a + b, 0);
        const total = sum(first) + sum(during) + sum(after);
        console.log(
          `  outage window: ${sum(first)} before, ${sum(during)} on shares (${
            during.perSidecar.join(" / ")
          }), ${sum(after)} after; total ${total} of 300`,
        );
        for (const n of first.perSidecar.map((b, i) => b + during.perSidecar[i]!)) {
          assert.ok(
            n <= 100 + 1,
            `a sidecar admitted ${n} before the restart, over its share of 100`,
          );
        }
        assert.ok(total <= 306, `converged without a burst: ${total} admitted of 300`);
      },
    );
  } finally {
    for (const d of fleet) await d.close();
    await up.close();
  }
}
