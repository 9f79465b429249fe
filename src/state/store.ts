/**
 * The state-store interface that fleet features build on (rate limits, the response cache,
 * usage rollups): string values with TTLs, integer counters, an atomic script escape hatch,
 * and pub/sub. Two implementations:
 *
 * - `memory` (`createMemoryStateStore`): **process-local**. Every call is atomic (it runs
 *   synchronously on the event loop); TTLs run on the store's injected clock; nothing is
 *   shared with other sidecars and nothing survives a restart. Never unavailable.
 * - `redis` (`createRedisStateStore`, on a `RedisLink`): **fleet-wide**. Every call is one
 *   Redis command or one script, so it is atomic across the fleet; two calls are not (use
 *   `eval` for read-modify-write). TTLs run on Redis' clock. While Redis is unreachable, slow
 *   or still resynchronising, calls reject with `StateUnavailable` within the link's command
 *   deadline: they never hang, and the caller picks its own degraded behaviour.
 *
 * Errors: `StateUnavailable` (no answer: retry later or degrade), `StateCommandError` (the
 * store answered with an error, e.g. `incr` on a value that is not an integer), `RangeError`
 * for a bad argument (a TTL that is not a positive number, a non-integer increment).
 *
 * This module imports no Redis code: the daemon loads the client only when Redis is configured.
 * @module
 */

/** What a script returns: Redis' RESP2 replies (Lua `false` -> null, `true` -> 1). */
export type StateReply = string | number | null | StateReply[];

/**
 * The synchronous data view a script's `local` half runs against on the memory store. Keys
 * hold strings; TTLs are in milliseconds on the store's clock.
 */
export interface LocalData {
  now(): number;
  get(key: string): string | null;
  /** Replaces the value; without `ttlMs` the key never expires. */
  set(key: string, value: string, ttlMs?: number): void;
  del(key: string): boolean;
  /** INCRBY; `ttlMs` is applied when the key has no TTL yet. Throws `StateCommandError`. */
  incr(key: string, by: number, ttlMs?: number): number;
  /** Milliseconds left; null when the key does not exist, Infinity when it never expires. */
  ttl(key: string): number | null;
}

/**
 * An atomic multi-key operation with one implementation per backend: `lua` for Redis (its
 * `KEYS` are the store's keys, prefixed by the Redis store; `ARGV` the args as strings) and
 * `local` for the memory store. Both must behave the same: the contract tests run both.
 */
export interface StateScript {
  readonly lua: string;
  readonly local: (data: LocalData, keys: readonly string[], args: readonly string[]) => StateReply;
}

export type Unsubscribe = () => Promise<void>;

export interface StateStore {
  readonly backend: "memory" | "redis";
  /** False while calls would reject with `StateUnavailable` (Redis away or resyncing). */
  available(): boolean;
  get(key: string): Promise<string | null>;
  /**
   * Store `value`, expiring after `ttlMs` when given. With `ifAbsent`, only when the key does
   * not exist; returns whether it was written.
   */
  set(key: string, value: string, opts?: SetOptions): Promise<boolean>;
  /** Returns whether the key existed. */
  del(key: string): Promise<boolean>;
  /**
   * Add the integer `by` and return the new value (a missing key counts as 0). `ttlMs`
   * applies when the key has no TTL yet, i.e. to the call that creates it: a fixed window.
   */
  incr(key: string, by: number, ttlMs?: number): Promise<number>;
  /** Milliseconds left; null when the key does not exist, Infinity when it never expires. */
  ttl(key: string): Promise<number | null>;
  /** Run `script` atomically on `keys` (every key it touches must be among them). */
  eval(script: StateScript, keys: readonly string[], args: readonly (string | number)[]): Promise<
    StateReply
  >;
  /** Deliver `message` to this channel's subscribers (memory: in this process only). */
  publish(channel: string, message: string): Promise<void>;
  /**
   * Receive the channel's messages, in publish order. Resolves once later publishes are
   * delivered; a Redis subscription is restored after every reconnection (messages published
   * while disconnected are lost: resynchronise from keys, not from the channel).
   */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<Unsubscribe>;
  /** Drop this store's subscriptions; later calls reject with `StateUnavailable`. */
  close(): Promise<void>;
}

export interface SetOptions {
  ttlMs?: number;
  ifAbsent?: boolean;
}

/** The store could not answer: Redis unreachable, slow past its deadline, or resyncing. */
export class StateUnavailable extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StateUnavailable";
  }
}

/** The store answered with an error (wrong type, not an integer, a script error). */
export class StateCommandError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StateCommandError";
  }
}

/**
 * A TTL as Redis takes it (PX/PEXPIRE: whole positive milliseconds): fractional values round
 * up, anything that is not a positive finite number is a caller bug.
 */
export function ttlMillis(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new RangeError(`state: a TTL must be a positive number of milliseconds, got ${ttlMs}`);
  }
  return Math.ceil(ttlMs);
}

/** Redis integers are signed 64-bit; beyond 2^53 a JS number would lose the exact value. */
export function incrAmount(by: number): number {
  if (!Number.isSafeInteger(by)) {
    throw new RangeError(`state: incr takes a safe integer, got ${by}`);
  }
  return by;
}
