/**
 * The meter's ledger records: what a request adds to the rollups, a hedge loser that
 * answered included (its tokens and cost at its own provider; the request counted once).
 */
import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import type { Exchange } from "../../src/pipeline/exchange.ts";
import { knownUsage } from "../../src/streaming/usage.ts";
import { createMeter } from "../../src/usage/meter.ts";
import { createPriceBook } from "../../src/usage/pricing.ts";
import { createMemoryRollups, type UsageRecord } from "../../src/usage/rollup.ts";
import { createLedger, type UsageLedger } from "../../src/usage/ledger.ts";

const { config } = parseConfigText(
  `
providers:
  a: { base_url: "http://127.0.0.1:9/v1" }
  b: { base_url: "http://127.0.0.1:9/v1" }
pricing:
  models:
    a/m: { input: 1, output: 2 }
    b/m: { input: 10, output: 20 }
`,
  () => undefined,
  "meter.yaml",
);

function meterWith(records: UsageRecord[]) {
  const ledger = { record: (r: UsageRecord) => records.push(r) } as unknown as UsageLedger;
  return createMeter({ prices: createPriceBook(config), ledger, now: () => 0 });
}

const usage = (n: number) =>
  knownUsage({ prompt_tokens: n, completion_tokens: n, total_tokens: 2 * n });

function exchange(attempts: { provider: string; outcome: string; tokens: number }[]): Exchange {
  return {
    cacheStatus: null,
    billedUsage: null,
    provider: "b",
    model: "m",
    principal: {},
    gateway: {},
    request: null,
    attempts: attempts.map((a) => ({
      provider: a.provider,
      model: "m",
      outcome: a.outcome,
      usage: usage(a.tokens),
    })),
  } as unknown as Exchange;
}

Deno.test("a hedge loser that answered is billed at its own provider; the request counts once", () => {
  const records: UsageRecord[] = [];
  const ex = exchange([
    { provider: "a", outcome: "cancelled", tokens: 100 },
    { provider: "b", outcome: "ok", tokens: 1 },
  ]);
  meterWith(records).onRequestEnd(
    { exchange: ex } as Parameters<ReturnType<typeof createMeter>["onRequestEnd"]>[0],
  );
  // The whole bill covers both answers: 100 × (1 + 2) + 1 × (10 + 20) micro-dollars.
  assert.equal(ex.cost, 330e-6);
  assert.equal(records.length, 2);
  const [winner, loser] = records;
  assert.equal(winner?.provider, "b");
  assert.equal(winner?.extra, undefined);
  assert.equal(winner?.promptTokens, 1);
  assert.equal(winner?.costNanos, 30_000);
  assert.equal(loser?.provider, "a");
  assert.equal(loser?.extra, true);
  assert.equal(loser?.promptTokens, 100);
  assert.equal(loser?.costNanos, 300_000);
});

Deno.test("one provider's attempts make one record", () => {
  const records: UsageRecord[] = [];
  const ex = exchange([{ provider: "b", outcome: "ok", tokens: 2 }]);
  meterWith(records).onRequestEnd(
    { exchange: ex } as Parameters<ReturnType<typeof createMeter>["onRequestEnd"]>[0],
  );
  assert.equal(records.length, 1);
  assert.equal(records[0]?.promptTokens, 2);
  assert.equal(records[0]?.costNanos, 60_000);
});

Deno.test("the rollups: the loser's tokens and cost under its provider, one request in all", async () => {
  const records: UsageRecord[] = [];
  meterWith(records).onRequestEnd(
    {
      exchange: exchange([
        { provider: "a", outcome: "cancelled", tokens: 100 },
        { provider: "b", outcome: "ok", tokens: 1 },
      ]),
    } as Parameters<ReturnType<typeof createMeter>["onRequestEnd"]>[0],
  );
  const ledger = createLedger(createMemoryRollups(), { now: () => 0, onError: () => {} });
  try {
    for (const r of records) ledger.record(r);
    const report = await ledger.report({ period: "day", since: 0, until: 86_400_000 });
    assert.equal(report.total_requests, 1);
    assert.equal(report.cache_misses, 1);
    assert.equal(report.total_tokens, 202);
    assert.equal(report.total_cost, 330e-6);
    assert.equal(report.by_provider.a?.requests, 0);
    assert.equal(report.by_provider.a?.total_tokens, 200);
    assert.equal(report.by_provider.b?.requests, 1);
    assert.equal(report.by_provider.b?.total_tokens, 2);
  } finally {
    await ledger.close();
  }
});
