import assert from "node:assert/strict";
import {
  addCounters,
  createMemoryRollups,
  PendingRows,
  PERIODS,
  type RollupRow,
  rowKey,
  rowsOf,
  type UsageRecord,
} from "../../src/usage/rollup.ts";

const HOUR = PERIODS.hour;

function record(at: number, over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    at,
    appKey: "key_1",
    user: null,
    provider: "up",
    model: "gpt-4o-mini",
    feature: null,
    promptTokens: 9,
    completionTokens: 7,
    cachedTokens: 2,
    cacheWriteTokens: 1,
    reasoningTokens: 3,
    costNanos: 1234,
    cache: "miss",
    estimated: false,
    ...over,
  };
}

/** The reference: every record's `rowsOf`, merged by `rowKey`. */
function merged(recs: readonly UsageRecord[]): Map<string, RollupRow> {
  const out = new Map<string, RollupRow>();
  for (const r of recs.flatMap(rowsOf)) {
    const k = rowKey(r.period, r.bucket, r.dim, r.value);
    const mine = out.get(k);
    if (mine) addCounters(mine.counters, r.counters);
    else out.set(k, { ...r, counters: { ...r.counters } });
  }
  return out;
}

const byKey = (rows: readonly RollupRow[]) =>
  new Map(rows.map((r) => [rowKey(r.period, r.bucket, r.dim, r.value), r]));

const RECORDS = [
  record(10),
  record(20, { cache: "hit", costNanos: 0, user: "u1", feature: "search" }),
  record(HOUR + 5, { appKey: null, estimated: true, model: "other" }),
  record(30 * HOUR, { provider: null, model: null, cache: "miss" }),
];

Deno.test("PendingRows.addRecord() adds what rowsOf() + addCounters() add, row for row", () => {
  const pending = new PendingRows();
  for (const r of RECORDS) pending.addRecord(r);
  const want = merged(RECORDS);
  assert.equal(pending.size, want.size);
  assert.deepEqual(byKey(pending.take()), want);
  assert.equal(pending.size, 0);
  // A failed write put back merges with what came since.
  pending.add([...want.values()]);
  pending.addRecord(RECORDS[0]!);
  assert.deepEqual(byKey(pending.take()), merged([...RECORDS, RECORDS[0]!]));
});

Deno.test("memory rollups: record() and apply() agree; queries and pruning by bucket", () => {
  const a = createMemoryRollups();
  const b = createMemoryRollups();
  for (const r of RECORDS) {
    a.record!(r);
    b.apply(rowsOf(r), r.at);
  }
  const q = { period: "hour" as const, since: 0, until: 2 * HOUR };
  assert.deepEqual(byKey(a.rows(q) as RollupRow[]), byKey(b.rows(q) as RollupRow[]));
  assert.equal((a.rows(q) as RollupRow[]).filter((r) => r.dim === "all").length, 2);
  // 36 days later the first hours are gone, their days are not.
  a.record!(record(36 * 24 * HOUR));
  assert.equal((a.rows(q) as RollupRow[]).length, 0);
  assert.ok((a.rows({ period: "day", since: 0, until: HOUR }) as RollupRow[]).length > 0);
});
