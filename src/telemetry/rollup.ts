/**
 * The status page's numbers: today's requests, errors by class, tokens, cost, cache hit
 * rate, rate-limit usage, and latency/overhead percentiles over the last requests. Fed by
 * telemetry events, no OpenTelemetry (the page works with metrics off). Pure state, O(1)
 * per event; percentiles are computed when the page asks.
 * @module
 */
import type { TelemetryEvent } from "../pipeline/events.ts";
import { errorClass } from "./labels.ts";
import { toNanos } from "../usage/cost.ts";

/** How many recent requests the percentiles look at. */
const WINDOW = 1024;

export interface RollupSnapshot {
  /** UTC date (`YYYY-MM-DD`) the counters are for. */
  readonly day: string;
  readonly requests: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly tokens: { readonly input: number; readonly output: number };
  readonly cost_usd: number;
  readonly cache: {
    readonly hits: number;
    readonly misses: number;
    readonly hit_rate: number | null;
  };
  readonly by_provider: Readonly<Record<string, { requests: number; errors: number }>>;
  readonly latency_ms: { readonly p50: number | null; readonly p99: number | null };
  readonly overhead_ms: { readonly p50: number | null; readonly p99: number | null };
  /**
   * One row per rule (a minute and a day limit are two rows, as are two dialects' limits of one
   * scope); every user's or key's counter of one rule shares its row, which shows the last one
   * decided.
   */
  readonly rate_limits: readonly {
    scope: string;
    metric: string;
    window: string;
    used: number;
    limit: number;
    denied: number;
  }[];
  readonly active_streams: number;
}

export interface Rollup {
  listener(event: TelemetryEvent): void;
  snapshot(): RollupSnapshot;
}

/** A ring of recent samples. */
function ring() {
  const values = new Float64Array(WINDOW);
  let n = 0;
  return {
    push(v: number) {
      values[n++ % WINDOW] = v;
    },
    percentiles(): { p50: number | null; p99: number | null } {
      const count = Math.min(n, WINDOW);
      if (count === 0) return { p50: null, p99: null };
      const sorted = values.slice(0, count).sort();
      const at = (q: number) =>
        Math.round((sorted[Math.min(count - 1, Math.floor(q * count))] as number) * 100) / 100;
      return { p50: at(0.5), p99: at(0.99) };
    },
  };
}

function utcDay(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, 10);
}

const DAY_MS = 86_400_000;

function nextUtcMidnight(epochMs: number): number {
  return (Math.floor(epochMs / DAY_MS) + 1) * DAY_MS;
}

export function createRollup(now: () => number): Rollup {
  let day = utcDay(now());
  /** When the current UTC day ends: one number compared per event, no Date built. */
  let dayEnds = nextUtcMidnight(now());
  let requests = 0;
  let errors: Record<string, number> = {};
  let input = 0;
  let output = 0;
  /** Today's cost in nano-dollars: summed exactly, as /api/v1/usage sums it. */
  let costNanos = 0;
  let hits = 0;
  let misses = 0;
  let byProvider: Record<string, { requests: number; errors: number }> = {};
  const limits = new Map<string, RollupSnapshot["rate_limits"][number]>();
  const latency = ring();
  const overhead = ring();
  const streams = new Set<object>();

  const rollover = () => {
    const t = now();
    if (t < dayEnds) return;
    day = utcDay(t);
    dayEnds = nextUtcMidnight(t);
    requests =
      input =
      output =
      costNanos =
      hits =
      misses =
        0;
    errors = {};
    byProvider = {};
    for (const l of limits.values()) l.denied = 0;
  };

  return {
    listener(e) {
      switch (e.type) {
        case "request_end": {
          rollover();
          const ex = e.exchange;
          streams.delete(ex);
          if (ex.schema === null) return; // health checks, metrics, the page itself
          requests++;
          const cls = errorClass(e.status, e.outcome);
          if (cls !== null) errors[cls] = (errors[cls] ?? 0) + 1;
          if (ex.provider !== undefined) {
            const p = byProvider[ex.provider] ??= { requests: 0, errors: 0 };
            p.requests++;
            if (cls !== null) p.errors++;
          }
          // What was billed (the meter runs first), as /api/v1/usage counts it.
          const u = ex.billedUsage ?? e.usage;
          if (u !== null) {
            input += u.prompt_tokens ?? 0;
            output += u.completion_tokens ?? 0;
          }
          costNanos += toNanos(ex.cost ?? 0);
          latency.push(e.duration_ms);
          if (ex.overheadMs !== null) overhead.push(ex.overheadMs);
          return;
        }
        case "first_chunk":
          if (!e.exchange.ended) streams.add(e.exchange);
          return;
        case "cache":
          rollover();
          if (e.result === "hit") hits++;
          else misses++;
          return;
        case "rate_limit": {
          rollover();
          for (const { check: { label }, limit, remaining } of e.limits) {
            let l = limits.get(label.row);
            if (l === undefined) {
              l = {
                scope: label.scope,
                metric: label.metric,
                window: label.window,
                used: 0,
                limit: 0,
                denied: 0,
              };
              limits.set(label.row, l);
            }
            l.used = limit - remaining;
            l.limit = limit;
            if (e.decision === "deny") l.denied++;
          }
          return;
        }
      }
    },
    snapshot() {
      rollover();
      const looked = hits + misses;
      return {
        day,
        requests,
        errors: { ...errors },
        tokens: { input, output },
        cost_usd: costNanos / 1e9,
        cache: { hits, misses, hit_rate: looked === 0 ? null : hits / looked },
        by_provider: structuredClone(byProvider),
        latency_ms: latency.percentiles(),
        overhead_ms: overhead.percentiles(),
        rate_limits: [...limits.values()].map((l) => ({ ...l })),
        active_streams: streams.size,
      };
    },
  };
}

export const ROLLUP_EVENTS = ["request_end", "first_chunk", "cache", "rate_limit"] as const;
