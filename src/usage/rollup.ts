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
  /**
   * Answered from the response cache (`hit`) or not (`miss`: looked up and missed, or not
   * cacheable), so hits and misses add up to the requests, as llm-gateway's usage shows them.
   */
  readonly cache: "hit" | "miss";
  /** Some of its tokens are estimates (a stream cut short with no upstream count). */
  readonly estimated: boolean;
  /**
   * Not a request of its own: what a hedge loser that answered used, added to its provider's
   * and model's tokens and cost while the request (and its cache verdict) counts once, under
   * the winner's record.
   */
  readonly extra?: boolean;
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

/** One counter row: a period's bucket (its start, ms) x a dimension value. */
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
  into.requests += from.requests;
  into.prompt_tokens += from.prompt_tokens;
  into.completion_tokens += from.completion_tokens;
  into.cached_tokens += from.cached_tokens;
  into.cache_write_tokens += from.cache_write_tokens;
  into.reasoning_tokens += from.reasoning_tokens;
  into.cost_nanos += from.cost_nanos;
  into.cache_hits += from.cache_hits;
  into.cache_misses += from.cache_misses;
  into.estimated += from.estimated;
}

export function bucketOf(at: number, period: Period): number {
  return Math.floor(at / PERIODS[period]) * PERIODS[period];
}

/** The rows one record adds to (every period x every dimension it has a value for). */
export function rowsOf(rec: UsageRecord): RollupRow[] {
  const once = rec.extra === true ? 0 : 1;
  const counters: Counters = {
    requests: once,
    prompt_tokens: rec.promptTokens,
    completion_tokens: rec.completionTokens,
    cached_tokens: rec.cachedTokens,
    cache_write_tokens: rec.cacheWriteTokens,
    reasoning_tokens: rec.reasoningTokens,
    cost_nanos: rec.costNanos,
    cache_hits: rec.cache === "hit" ? once : 0,
    cache_misses: rec.cache === "hit" ? 0 : once,
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

const DIM_INDEX = Object.fromEntries(DIMENSIONS.map((d, i) => [d, i])) as Record<Dimension, number>;

/** One bucket's rows: a map from dimension value to row, per dimension (DIMENSIONS order). */
type BucketRows = Map<string, RollupRow>[];

/**
 * Rows by period, bucket, dimension and value. A record finds its rows through three map
 * reads each, with no key string built and no intermediate rows (this runs per request).
 */
export class RowTable {
  readonly #periods: Record<Period, Map<number, BucketRows>> = {
    hour: new Map(),
    day: new Map(),
  };
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Add one request's contribution to every row it counts in. */
  addRecord(rec: UsageRecord): void {
    this.#addTo("hour", rec);
    this.#addTo("day", rec);
  }

  /** Merge rows (a failed write put back, or deltas from elsewhere). */
  addRows(rows: readonly RollupRow[]): void {
    for (const r of rows) {
      const row = this.#row(this.#bucket(r.period, r.bucket), r.period, r.bucket, r.dim, r.value);
      addCounters(row.counters, r.counters);
    }
  }

  /** Every row (of `period`, with a bucket in [since, until) when given). */
  rows(q?: UsageQuery): RollupRow[] {
    const out: RollupRow[] = [];
    for (const period of q ? [q.period] : (["hour", "day"] as const)) {
      for (const [bucket, dims] of this.#periods[period]) {
        if (q && (bucket < q.since || bucket >= q.until)) continue;
        for (const m of dims) for (const r of m.values()) out.push(r);
      }
    }
    return out;
  }

  /** Drop the buckets that start before `before[period]`. */
  prune(before: Readonly<Record<Period, number>>): void {
    for (const period of ["hour", "day"] as const) {
      for (const [bucket, dims] of this.#periods[period]) {
        if (bucket >= before[period]) continue;
        for (const m of dims) this.#size -= m.size;
        this.#periods[period].delete(bucket);
      }
    }
  }

  clear(): void {
    this.#periods.hour.clear();
    this.#periods.day.clear();
    this.#size = 0;
  }

  #bucket(period: Period, bucket: number): BucketRows {
    const buckets = this.#periods[period];
    let dims = buckets.get(bucket);
    if (dims === undefined) buckets.set(bucket, dims = DIMENSIONS.map(() => new Map()));
    return dims;
  }

  #row(dims: BucketRows, period: Period, bucket: number, dim: Dimension, value: string) {
    const m = dims[DIM_INDEX[dim]] as Map<string, RollupRow>;
    let row = m.get(value);
    if (row === undefined) {
      m.set(value, row = { period, bucket, dim, value, counters: zeroCounters() });
      this.#size++;
    }
    return row;
  }

  #addTo(period: Period, rec: UsageRecord): void {
    const bucket = bucketOf(rec.at, period);
    const dims = this.#bucket(period, bucket);
    const { appKey, user, provider, model, feature } = rec;
    count(this.#row(dims, period, bucket, "all", ""), rec);
    if (appKey !== null) count(this.#row(dims, period, bucket, "app_key", appKey), rec);
    if (user !== null) count(this.#row(dims, period, bucket, "user", user), rec);
    if (provider !== null) count(this.#row(dims, period, bucket, "provider", provider), rec);
    if (model !== null) count(this.#row(dims, period, bucket, "model", model), rec);
    if (feature !== null) count(this.#row(dims, period, bucket, "feature", feature), rec);
  }
}

/** One record added to a row's counters (what `rowsOf` + `addCounters` do, without objects). */
function count(row: RollupRow, rec: UsageRecord): void {
  const c = row.counters;
  // A hedge loser's record adds its tokens and cost; the request counts once, elsewhere.
  if (rec.extra !== true) {
    c.requests += 1;
    if (rec.cache === "hit") c.cache_hits += 1;
    else c.cache_misses += 1;
  }
  c.prompt_tokens += rec.promptTokens;
  c.completion_tokens += rec.completionTokens;
  c.cached_tokens += rec.cachedTokens;
  c.cache_write_tokens += rec.cacheWriteTokens;
  c.reasoning_tokens += rec.reasoningTokens;
  c.cost_nanos += rec.costNanos;
  if (rec.estimated) c.estimated += 1;
}

/** Deltas merged per row until they are written (one write per row per flush). */
export class PendingRows {
  #rows = new RowTable();

  add(rows: readonly RollupRow[]): void {
    this.#rows.addRows(rows);
  }

  /** One request's contribution (the per-request path: no intermediate rows). */
  addRecord(rec: UsageRecord): void {
    this.#rows.addRecord(rec);
  }

  get size(): number {
    return this.#rows.size;
  }

  /** Everything pending, and empty again. */
  take(): RollupRow[] {
    const out = this.#rows.rows();
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
/** One flush's identity: the same rows are sent again under it until a write is known. */
export interface RollupBatch {
  readonly writer: string;
  readonly seq: number;
}

export interface RollupBackend {
  readonly kind: "memory" | "sqlite" | "redis";
  /**
   * Add `rows`. `batch` names them (the writer and its batch number, rising): a backend whose
   * write may succeed unseen (a Redis reply that timed out) applies one batch at most once.
   */
  apply(rows: readonly RollupRow[], now: number, batch?: RollupBatch): Promise<void> | void;
  /** One record added at once (backends in memory: the ledger skips its pending rows). */
  record?(rec: UsageRecord): void;
  rows(q: UsageQuery): Promise<RollupRow[]> | RollupRow[];
  clear?(): Promise<void> | void;
  close(): Promise<void> | void;
  /** Resolves once the backend can take writes (Redis connected). */
  ready?(): Promise<void>;
}

/** Rows in this process only (lost on restart); old buckets pruned as new ones arrive. */
export function createMemoryRollups(): RollupBackend {
  const table = new RowTable();
  let pruned = 0;
  const prune = (now: number) => {
    if (now - pruned <= PERIODS.hour) return;
    pruned = now;
    table.prune({ hour: now - RETENTION_MS.hour, day: now - RETENTION_MS.day });
  };
  return {
    kind: "memory",
    apply(delta, now) {
      table.addRows(delta);
      prune(now);
    },
    record(rec) {
      table.addRecord(rec);
      prune(rec.at);
    },
    rows: (q) => table.rows(q),
    clear() {
      table.clear();
    },
    close() {
      table.clear();
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
