import assert from "node:assert/strict";
import { createRollup } from "../../src/telemetry/rollup.ts";
import type { Exchange } from "../../src/pipeline/exchange.ts";
import type { TelemetryEvent } from "../../src/pipeline/events.ts";

/** Just what the rollup reads of an exchange. */
const exchange = (over: Partial<Exchange> = {}) =>
  ({
    schema: "openai_chat",
    provider: "up",
    cost: 0.5,
    overheadMs: 0.25,
    ended: false,
    response: null,
    ...over,
  }) as unknown as Exchange;

const end = (ex: Exchange, status = 200): TelemetryEvent => ({
  type: "request_end",
  exchange: ex,
  status,
  outcome: "complete",
  duration_ms: 10,
  usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
});

Deno.test("createRollup(): today's cost sums exactly, as /api/v1/usage sums it", () => {
  const r = createRollup(() => Date.UTC(2026, 0, 1, 12));
  for (let i = 0; i < 400; i++) r.listener(end(exchange({ cost: 0.0031925 })));
  assert.equal(r.snapshot().cost_usd, 1.277);
  const one = createRollup(() => Date.UTC(2026, 0, 1, 12));
  one.listener(end(exchange({ cost: 0.0000475 })));
  assert.equal(one.snapshot().cost_usd, 0.0000475, "not rounded to the micro-dollar");
});

Deno.test("createRollup(): today's counters reset at UTC midnight; percentiles over recent requests", () => {
  let t = Date.UTC(2026, 0, 1, 23, 59, 0);
  const r = createRollup(() => t);
  r.listener(end(exchange()));
  r.listener(end(exchange(), 502));
  r.listener(end(exchange({ schema: null }))); // /health, /metrics: not counted
  let s = r.snapshot();
  assert.equal(s.day, "2026-01-01");
  assert.equal(s.requests, 2);
  assert.deepEqual(s.errors, { "5xx": 1 });
  assert.deepEqual(s.tokens, { input: 6, output: 4 });
  assert.equal(s.cost_usd, 1);
  assert.deepEqual(s.latency_ms, { p50: 10, p99: 10 });
  assert.deepEqual(s.overhead_ms, { p50: 0.25, p99: 0.25 });
  t += 120_000; // past midnight
  s = r.snapshot();
  assert.equal(s.day, "2026-01-02");
  assert.equal(s.requests, 0);
  assert.deepEqual(s.errors, {});
});

Deno.test("createRollup(): a minute and a day limit of one scope are two rows, each with its own limit", () => {
  const r = createRollup(() => Date.UTC(2026, 0, 1, 12));
  const label = (window: string) => ({
    scope: "global",
    metric: "requests",
    window,
    key: "global:requests",
    row: `global:requests:${window}`,
  });
  r.listener({
    type: "rate_limit",
    exchange: exchange(),
    decision: "allow",
    limits: [
      { check: { label: label("minute") }, limit: 5, remaining: 2 },
      { check: { label: label("day") }, limit: 10, remaining: 7 },
    ],
  });
  assert.deepEqual(r.snapshot().rate_limits, [
    { scope: "global", metric: "requests", window: "minute", used: 3, limit: 5, denied: 0 },
    { scope: "global", metric: "requests", window: "day", used: 3, limit: 10, denied: 0 },
  ]);
  // Another rule of the same scope, metric and window (another dialect's): a row of its own.
  r.listener({
    type: "rate_limit",
    exchange: exchange(),
    decision: "allow",
    limits: [{ check: { label: { ...label("minute"), row: "other" } }, limit: 100, remaining: 99 }],
  });
  assert.equal(r.snapshot().rate_limits.length, 3);
});
