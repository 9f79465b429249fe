import assert from "node:assert/strict";
import { createLedger } from "../../src/usage/ledger.ts";
import { createRedisRollups } from "../../src/usage/redis.ts";
import {
  PERIODS,
  type RollupBackend,
  type RollupRow,
  type UsageRecord,
} from "../../src/usage/rollup.ts";
import { createRedisLink, type RedisLink } from "../../src/state/redis_link.ts";
import { startRedisServer } from "../helpers/redis_server.ts";
import { captureLogger, waitFor } from "../state/support.ts";

const AT = 1_000 * PERIODS.hour;

function record(over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    at: AT,
    appKey: null,
    user: null,
    provider: "up",
    model: "gpt-4o-mini",
    feature: null,
    promptTokens: 10,
    completionTokens: 5,
    cachedTokens: 0,
    cacheWriteTokens: 0,
    reasoningTokens: 0,
    costNanos: 1000,
    cache: "miss",
    estimated: false,
    ...over,
  };
}

const requestsIn = (rows: readonly RollupRow[]) =>
  rows.filter((r) => r.period === "hour" && r.dim === "all")
    .reduce((n, r) => n + r.counters.requests, 0);

Deno.test("a flush whose Redis reply was lost is sent again and counted once", async () => {
  const redis = await startRedisServer();
  const link = createRedisLink({ url: redis.url, name: "usage", logger: captureLogger().logger });
  // The write lands but its reply does not reach the sidecar (a timeout): the ledger cannot
  // tell, so it sends the batch again.
  let lose = 1;
  const lossy: RedisLink = {
    ...link,
    async eval(script, keys, args) {
      const reply = await link.eval(script, keys, args);
      if (lose-- > 0) throw new Error("Redis command timed out after 500 ms");
      return reply;
    },
  };
  const backend = createRedisRollups(lossy);
  const errors: unknown[] = [];
  const ledger = createLedger(backend, {
    now: () => AT,
    flushMs: 60_000,
    onError: (e) => errors.push(e),
  });
  try {
    await ledger.ready();
    for (let i = 0; i < 3; i++) ledger.record(record());
    await assert.rejects(ledger.flush(), /timed out/);
    ledger.record(record());
    await ledger.flush();
    const rows = await backend.rows({ period: "hour", since: 0, until: AT + PERIODS.hour });
    assert.equal(requestsIn(rows), 4);
  } finally {
    await ledger.close();
    await redis.stop();
  }
});

Deno.test("after a failed flush the ledger writes on its timer, without another request", async () => {
  let fail = true;
  const applied: RollupRow[] = [];
  const backend: RollupBackend = {
    kind: "redis",
    apply(rows) {
      if (fail) throw new Error("Redis unreachable");
      applied.push(...rows);
    },
    rows: () => applied,
    close() {},
  };
  const errors: unknown[] = [];
  const ledger = createLedger(backend, {
    now: () => AT,
    flushMs: 10,
    onError: (e) => errors.push(e),
  });
  try {
    ledger.record(record());
    await waitFor("the failed flush", () => errors.length > 0);
    fail = false;
    await waitFor("the retry on the timer", () => requestsIn(applied) === 1);
  } finally {
    await ledger.close();
  }
});
