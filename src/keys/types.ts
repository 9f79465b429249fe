/**
 * App key records and the store they live in. Key values are never stored: a record holds
 * the SHA-256 of its key. Spend is counted in integer micro-dollars per UTC day and month.
 * @module
 */
import type { Periods } from "./key.ts";

export interface KeyBudget {
  readonly daily_usd: number | null;
  readonly monthly_usd: number | null;
}

/**
 * A key's own rate limits, enforced by the limiter in the app-key scope next to the config's
 * `perKey` (the tightest wins). llm-proxy's metric names; 0 = unlimited.
 */
export interface KeyLimits {
  readonly requests_per_minute: number;
  readonly tokens_per_minute: number;
  readonly requests_per_day: number;
  readonly tokens_per_day: number;
}

/** No limits of its own (what a record without `limits` means). */
export const NO_KEY_LIMITS: KeyLimits = Object.freeze({
  requests_per_minute: 0,
  tokens_per_minute: 0,
  requests_per_day: 0,
  tokens_per_day: 0,
});

export interface KeyRecord {
  readonly id: string;
  /** SHA-256 (hex) of the key value. */
  readonly hash: string;
  /** `pf_...abcd`: tells keys apart in listings. */
  readonly hint: string;
  readonly name: string;
  readonly owner: string | null;
  /** Wall-clock ms. */
  readonly created_at: number;
  readonly expires_at: number | null;
  readonly revoked_at: number | null;
  /** Empty: every model. */
  readonly allowed_models: readonly string[];
  /** Empty: every provider. */
  readonly allowed_providers: readonly string[];
  readonly budget: KeyBudget;
  /** Absent on records written before keys had limits: none. */
  readonly limits?: KeyLimits;
  /** `config`: a static key of `app_keys.keys[]` (changed by editing the config only). */
  readonly source: "api" | "config";
}

/** What one key did in one period. */
export interface KeyCounter {
  requests: number;
  tokens: number;
  cost_micros: number;
}

export interface Spend {
  /** Micro-dollars spent today / this month (UTC). */
  readonly day: number;
  readonly month: number;
}

/**
 * Where keys and their counters live: memory (optionally persisted to the SQLite state
 * file) or Redis (shared by a fleet). Hot-path calls (`findByHash`, `spend`) answer from
 * memory where they can; `record` never throws and never makes a request wait.
 */
export interface KeyBackend {
  readonly kind: "memory" | "sqlite" | "redis";
  findByHash(hash: string): KeyRecord | null | Promise<KeyRecord | null>;
  /**
   * The record of `id` as this sidecar last read or saved it, from memory (no I/O): what the
   * limiter reads a key's `limits` from, right after `findByHash` identified the request.
   */
  peek(id: string): KeyRecord | null;
  spend(id: string, periods: Periods): Spend | Promise<Spend>;
  /** Count one finished request (fire and forget). */
  record(id: string, periods: Periods, delta: KeyCounter): void;
  get(id: string): Promise<KeyRecord | null>;
  list(): Promise<KeyRecord[]>;
  /** Insert or replace (a rotation changes the hash: the old one stops matching). */
  save(record: KeyRecord): Promise<void>;
  counters(id: string, periods: Periods): Promise<{ day: KeyCounter; month: KeyCounter }>;
  /** Write what is pending and release connections/timers. */
  close(): Promise<void>;
}

export const emptyCounter = (): KeyCounter => ({ requests: 0, tokens: 0, cost_micros: 0 });
