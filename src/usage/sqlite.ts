/**
 * Rollups in the embedded SQLite file (`state.path`, Deno's built-in `node:sqlite`): one
 * table of its own, rows upserted in one transaction per flush, so counters survive a
 * restart. The ledger calls this off the request path (a timer and before each report).
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import {
  COUNTERS,
  type Counters,
  type Dimension,
  type Period,
  PERIODS,
  RETENTION_MS,
  type RollupBackend,
  type RollupRow,
  zeroCounters,
} from "./rollup.ts";

const TABLE = "pilotfish_usage_rollup";

export function createSqliteRollups(path: string): RollupBackend {
  const db = new DatabaseSync(path);
  // WAL: a reader (the usage API) never blocks the flush; NORMAL is durable enough for
  // counters and keeps a flush to one fsync at checkpoints.
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = NORMAL");
  db.exec("PRAGMA busy_timeout = 2000");
  db.exec(`CREATE TABLE IF NOT EXISTS ${TABLE} (
    period TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    dim TEXT NOT NULL,
    value TEXT NOT NULL,
    ${COUNTERS.map((c) => `${c} INTEGER NOT NULL DEFAULT 0`).join(",\n    ")},
    PRIMARY KEY (period, bucket, dim, value)
  )`);
  const upsert: StatementSync = db.prepare(
    `INSERT INTO ${TABLE} (period, bucket, dim, value, ${COUNTERS.join(", ")})
     VALUES (?, ?, ?, ?, ${COUNTERS.map(() => "?").join(", ")})
     ON CONFLICT (period, bucket, dim, value) DO UPDATE SET ${
      COUNTERS.map((c) => `${c} = ${c} + excluded.${c}`).join(", ")
    }`,
  );
  const select = db.prepare(
    `SELECT period, bucket, dim, value, ${COUNTERS.join(", ")} FROM ${TABLE}
     WHERE period = ? AND bucket >= ? AND bucket < ?`,
  );
  const prune = db.prepare(`DELETE FROM ${TABLE} WHERE period = ? AND bucket < ?`);
  let pruned = 0;
  return {
    kind: "sqlite",
    apply(rows, now) {
      if (rows.length === 0) return;
      db.exec("BEGIN");
      try {
        for (const r of rows) {
          upsert.run(r.period, r.bucket, r.dim, r.value, ...COUNTERS.map((c) => r.counters[c]));
        }
        if (now - pruned > PERIODS.hour) {
          pruned = now;
          for (const p of ["hour", "day"] as const) prune.run(p, now - RETENTION_MS[p]);
        }
        db.exec("COMMIT");
      } catch (err) {
        db.exec("ROLLBACK");
        throw err;
      }
    },
    rows(q) {
      return select.all(q.period, q.since, q.until).map((raw) => {
        const r = raw as Record<string, unknown>;
        const counters: Counters = zeroCounters();
        for (const c of COUNTERS) counters[c] = Number(r[c]);
        return {
          period: r.period as Period,
          bucket: Number(r.bucket),
          dim: r.dim as Dimension,
          value: String(r.value),
          counters,
        } satisfies RollupRow;
      });
    },
    clear() {
      db.exec(`DELETE FROM ${TABLE}`);
    },
    close() {
      if (db.isOpen) db.close();
    },
  };
}
