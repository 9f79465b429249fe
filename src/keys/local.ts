/**
 * The process-local key store: every lookup is a Map read. With a state file (SQLite, the
 * default) keys are loaded at start and written when an admin call changes one; counters
 * are written every `flush_interval` and on close, off the request path.
 * @module
 */
import type { StateDb } from "../state/sqlite.ts";
import type { Periods } from "./key.ts";
import {
  emptyCounter,
  type KeyBackend,
  type KeyCounter,
  type KeyRecord,
  type Spend,
} from "./types.ts";

export interface LocalBackendOptions {
  /** The state file; none: memory only (nothing survives a restart). */
  readonly db?: StateDb;
  /** Counter flush period, ms. */
  readonly flushMs?: number;
  /** A flush failed (disk full, file removed): reported, retried on the next tick. */
  readonly onError?: (err: unknown) => void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS app_keys (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS app_key_usage (
  id TEXT NOT NULL,
  period TEXT NOT NULL,
  requests INTEGER NOT NULL,
  tokens INTEGER NOT NULL,
  cost_micros INTEGER NOT NULL,
  PRIMARY KEY (id, period)
);`;

const slot = (id: string, period: string) => `${id}\u0000${period}`;

export function createLocalBackend(opts: LocalBackendOptions = {}): KeyBackend {
  const byId = new Map<string, KeyRecord>();
  const byHash = new Map<string, KeyRecord>();
  const counters = new Map<string, KeyCounter>();
  const dirty = new Set<string>();
  const db = opts.db;

  if (db) {
    db.exec(SCHEMA);
    for (const row of db.prepare("SELECT record FROM app_keys").all()) {
      const rec = JSON.parse(String(row.record)) as KeyRecord;
      byId.set(rec.id, rec);
      byHash.set(rec.hash, rec);
    }
    for (const row of db.prepare("SELECT * FROM app_key_usage").all()) {
      counters.set(slot(String(row.id), String(row.period)), {
        requests: Number(row.requests),
        tokens: Number(row.tokens),
        cost_micros: Number(row.cost_micros),
      });
    }
  }

  const upsertKey = db?.prepare(
    "INSERT INTO app_keys (id, hash, record) VALUES (?, ?, ?) " +
      "ON CONFLICT(id) DO UPDATE SET hash = excluded.hash, record = excluded.record",
  );
  const upsertUsage = db?.prepare(
    "INSERT INTO app_key_usage (id, period, requests, tokens, cost_micros) VALUES (?, ?, ?, ?, ?) " +
      "ON CONFLICT(id, period) DO UPDATE SET requests = excluded.requests, " +
      "tokens = excluded.tokens, cost_micros = excluded.cost_micros",
  );

  const flush = () => {
    if (!db || !upsertUsage || dirty.size === 0) return;
    try {
      db.exec("BEGIN");
      for (const k of dirty) {
        const c = counters.get(k) as KeyCounter;
        const [id, period] = k.split("\u0000") as [string, string];
        upsertUsage.run(id, period, c.requests, c.tokens, c.cost_micros);
      }
      db.exec("COMMIT");
      dirty.clear();
    } catch (err) {
      try {
        db.exec("ROLLBACK");
      } catch { /* no transaction open */ }
      opts.onError?.(err);
    }
  };
  const timer = db ? setInterval(flush, opts.flushMs ?? 1_000) : undefined;
  if (timer !== undefined) Deno.unrefTimer(timer);

  const counter = (id: string, period: string) => counters.get(slot(id, period));
  const bump = (id: string, period: string, d: KeyCounter) => {
    const k = slot(id, period);
    let c = counters.get(k);
    if (c === undefined) counters.set(k, c = emptyCounter());
    c.requests += d.requests;
    c.tokens += d.tokens;
    c.cost_micros += d.cost_micros;
    if (db) dirty.add(k);
  };

  return {
    kind: db ? "sqlite" : "memory",
    findByHash: (hash) => byHash.get(hash) ?? null,
    peek: (id) => byId.get(id) ?? null,
    spend(id, p: Periods): Spend {
      return {
        day: counter(id, p.day)?.cost_micros ?? 0,
        month: counter(id, p.month)?.cost_micros ?? 0,
      };
    },
    record(id, p, delta) {
      bump(id, p.day, delta);
      bump(id, p.month, delta);
    },
    get: (id) => Promise.resolve(byId.get(id) ?? null),
    list: () => Promise.resolve([...byId.values()].filter((r) => r.source === "api")),
    save(rec) {
      // Written before the call returns: an admin change survives a crash right after it.
      upsertKey?.run(rec.id, rec.hash, JSON.stringify(rec));
      const old = byId.get(rec.id);
      if (old !== undefined) byHash.delete(old.hash);
      byId.set(rec.id, rec);
      byHash.set(rec.hash, rec);
      return Promise.resolve();
    },
    counters(id, p) {
      return Promise.resolve({
        day: { ...(counter(id, p.day) ?? emptyCounter()) },
        month: { ...(counter(id, p.month) ?? emptyCounter()) },
      });
    },
    close() {
      if (timer !== undefined) clearInterval(timer);
      flush();
      db?.close();
      return Promise.resolve();
    },
  };
}
