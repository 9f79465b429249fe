/**
 * Usage rollups: every request adds one record to counters per hour and per day (UTC),
 * overall and by app key, user, provider, model and `x-gateway.metadata.feature`. The
 * arithmetic here is pure; where the rows live (memory, SQLite, Redis) is a `RollupBackend`.
 * Money is summed in whole nano-dollars so that totals are exact.
 * @module
 */

/** One request's contribution. */
export interface UsageRecord {
  /** Wall-clock ms when the request ended. */
  readonly at: number;
  readonly appKey: string | null;
  readonly user: string | null;
  readonly provider: string | null;
  readonly model: string | null;
  readonly feature: string | null;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly cachedTokens: number;
  readonly cacheWriteTokens: number;
  readonly reasoningTokens: number;
  readonly costNanos: number;
  /** Answered from the response cache (`hit`), looked up and missed (`miss`), or neither. */
  readonly cache: "hit" | "miss" | null;
  /** Some of its tokens are estimates (a stream cut short with no upstream count). */
  readonly estimated: boolean;
}

/** The counters of one row, in this order everywhere (SQLite columns, Redis hash fields). */
export const COUNTERS = [
  "requests",
  "prompt_tokens",
  "completion_tokens",
  "cached_tokens",
  "cache_write_tokens",
  "reasoning_tokens",
  "cost_nanos",
  "cache_hits",
  "cache_misses",
  "estimated",
] as const;
export type Counter = (typeof COUNTERS)[number];
export type Counters = Record<Counter, number>;

export const PERIODS = { hour: 3_600_000, day: 86_400_000 } as const;
export type Period = keyof typeof PERIODS;

/** The breakdowns (`all` is the total). */
export const DIMENSIONS = ["all", "app_key", "user", "provider", "model", "feature"] as const;
export type Dimension = (typeof DIMENSIONS)[number];

/** One counter row: a period's bucket (its start, ms) × a dimension value. */
export interface RollupRow {
  readonly period: Period;
  readonly bucket: number;
  readonly dim: Dimension;
  readonly value: string;
  readonly counters: Counters;
}

/** How long rows are kept: hours for 35 days, days for 400. */
export const RETENTION_MS: Readonly<Record<Period, number>> = {
  hour: 35 * PERIODS.day,
  day: 400 * PERIODS.day,
};

export function zeroCounters(): Counters {
  return {
    requests: 0,
    prompt_tokens: 0,
    completion_tokens: 0,
    cached_tokens: 0,
    cache_write_tokens: 0,
    reasoning_tokens: 0,
    cost_nanos: 0,
    cache_hits: 0,
    cache_misses: 0,
    estimated: 0,
  };
}

export function addCounters(into: Counters, from: Counters): void {
  for (const c of COUNTERS) into[c] += from[c];
}

export function bucketOf(at: number, period: Period): number {
  return Math.floor(at / PERIODS[period]) * PERIODS[period];
}

/** The rows one record adds to (every period × every dimension it has a value for). */
export function rowsOf(rec: UsageRecord): RollupRow[] {
  const counters: Counters = {
    requests: 1,
    prompt_tokens: rec.promptTokens,
    completion_tokens: rec.completionTokens,
    cached_tokens: rec.cachedTokens,
    cache_write_tokens: rec.cacheWriteTokens,
    reasoning_tokens: rec.reasoningTokens,
    cost_nanos: rec.costNanos,
    cache_hits: rec.cache === "hit" ? 1 : 0,
    cache_misses: rec.cache === "miss" ? 1 : 0,
    estimated: rec.estimated ? 1 : 0,
  };
  const values: [Dimension, string | null][] = [
    ["all", ""],
    ["app_key", rec.appKey],
    ["user", rec.user],
    ["provider", rec.provider],
    ["model", rec.model],
    ["feature", rec.feature],
  ];
  const out: RollupRow[] = [];
  for (const period of ["hour", "day"] as const) {
    const bucket = bucketOf(rec.at, period);
    for (const [dim, value] of values) {
      if (value !== null) out.push({ period, bucket, dim, value, counters });
    }
  }
  return out;
}

export function rowKey(period: Period, bucket: number, dim: Dimension, value: string): string {
  return `${period}\u001f${bucket}\u001f${dim}\u001f${value}`;
}

/** Deltas merged per row until they are written (one write per row per flush). */
export class PendingRows {
  #rows = new Map<string, RollupRow>();

  add(rows: readonly RollupRow[]): void {
    for (const r of rows) {
      const key = rowKey(r.period, r.bucket, r.dim, r.value);
      const mine = this.#rows.get(key);
      if (mine) addCounters(mine.counters, r.counters);
      else this.#rows.set(key, { ...r, counters: { ...r.counters } });
    }
  }

  get size(): number {
    return this.#rows.size;
  }

  /** Everything pending, and empty again. */
  take(): RollupRow[] {
    const out = [...this.#rows.values()];
    this.#rows.clear();
    return out;
  }
}

/** A query: buckets of `period` starting in [since, until). */
export interface UsageQuery {
  readonly period: Period;
  readonly since: number;
  readonly until: number;
}

/** Where rows live. `apply` adds deltas; `rows` reads those a query covers. */
export interface RollupBackend {
  readonly kind: "memory" | "sqlite" | "redis";
  apply(rows: readonly RollupRow[], now: number): Promise<void> | void;
  rows(q: UsageQuery): Promise<RollupRow[]> | RollupRow[];
  clear?(): Promise<void> | void;
  close(): Promise<void> | void;
  /** Resolves once the backend can take writes (Redis connected). */
  ready?(): Promise<void>;
}

/** Rows in this process only (lost on restart); old buckets pruned as new ones arrive. */
export function createMemoryRollups(): RollupBackend {
  const rows = new Map<string, RollupRow>();
  let pruned = 0;
  return {
    kind: "memory",
    apply(delta, now) {
      for (const r of delta) {
        const key = rowKey(r.period, r.bucket, r.dim, r.value);
        const mine = rows.get(key);
        if (mine) addCounters(mine.counters, r.counters);
        else rows.set(key, { ...r, counters: { ...r.counters } });
      }
      if (now - pruned > PERIODS.hour) {
        pruned = now;
        for (const [key, r] of rows) {
          if (r.bucket < now - RETENTION_MS[r.period]) rows.delete(key);
        }
      }
    },
    rows(q) {
      const out: RollupRow[] = [];
      for (const r of rows.values()) {
        if (r.period === q.period && r.bucket >= q.since && r.bucket < q.until) out.push(r);
      }
      return out;
    },
    clear() {
      rows.clear();
    },
    close() {
      rows.clear();
    },
  };
}

/** A dimension's totals as the usage API shows them. */
export interface UsageTotals {
  requests: number;
  total_tokens: number;
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
  cache_write_tokens: number;
  reasoning_tokens: number;
  cost: number;
  cache_hits: number;
  cache_misses: number;
  estimated_requests: number;
}

/** `GET /api/v1/usage`: llm-gateway's fields first, then ours. */
export interface UsageReport {
  total_requests: number;
  total_tokens: number;
  total_cost: number;
  cache_hits: number;
  cache_misses: number;
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
  cache_write_tokens: number;
  reasoning_tokens: number;
  estimated_requests: number;
  since: string;
  until: string;
  period: Period;
  by_app_key: Record<string, UsageTotals>;
  by_user: Record<string, UsageTotals>;
  by_provider: Record<string, UsageTotals>;
  by_model: Record<string, UsageTotals>;
  by_feature: Record<string, UsageTotals>;
  /** One entry per bucket with traffic, oldest first. */
  buckets: ({ start: string } & UsageTotals)[];
}

function totalsOf(c: Counters): UsageTotals {
  return {
    requests: c.requests,
    total_tokens: c.prompt_tokens + c.completion_tokens,
    prompt_tokens: c.prompt_tokens,
    completion_tokens: c.completion_tokens,
    cached_tokens: c.cached_tokens,
    cache_write_tokens: c.cache_write_tokens,
    reasoning_tokens: c.reasoning_tokens,
    cost: c.cost_nanos / 1e9,
    cache_hits: c.cache_hits,
    cache_misses: c.cache_misses,
    estimated_requests: c.estimated,
  };
}

/** Sum the rows of a query into the report. */
export function summarise(q: UsageQuery, rows: readonly RollupRow[]): UsageReport {
  const total = zeroCounters();
  const by: Record<Exclude<Dimension, "all">, Map<string, Counters>> = {
    app_key: new Map(),
    user: new Map(),
    provider: new Map(),
    model: new Map(),
    feature: new Map(),
  };
  const buckets = new Map<number, Counters>();
  for (const r of rows) {
    if (r.dim === "all") {
      addCounters(total, r.counters);
      let b = buckets.get(r.bucket);
      if (!b) buckets.set(r.bucket, b = zeroCounters());
      addCounters(b, r.counters);
      continue;
    }
    const map = by[r.dim];
    let c = map.get(r.value);
    if (!c) map.set(r.value, c = zeroCounters());
    addCounters(c, r.counters);
  }
  const t = totalsOf(total);
  const table = (m: Map<string, Counters>) =>
    Object.fromEntries(
      [...m].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map((
        [k, c],
      ) => [k, totalsOf(c)]),
    );
  return {
    total_requests: t.requests,
    total_tokens: t.total_tokens,
    total_cost: t.cost,
    cache_hits: t.cache_hits,
    cache_misses: t.cache_misses,
    prompt_tokens: t.prompt_tokens,
    completion_tokens: t.completion_tokens,
    cached_tokens: t.cached_tokens,
    cache_write_tokens: t.cache_write_tokens,
    reasoning_tokens: t.reasoning_tokens,
    estimated_requests: t.estimated_requests,
    since: new Date(q.since).toISOString(),
    until: new Date(q.until).toISOString(),
    period: q.period,
    by_app_key: table(by.app_key),
    by_user: table(by.user),
    by_provider: table(by.provider),
    by_model: table(by.model),
    by_feature: table(by.feature),
    buckets: [...buckets].sort(([a], [b]) => a - b).map(([start, c]) => ({
      start: new Date(start).toISOString(),
      ...totalsOf(c),
    })),
  };
}
