/**
 * The `memory` state store: process-local, each call atomic (synchronous on the event loop).
 * See `StateStore` for the guarantees it shares with the Redis store.
 * @module
 */
import {
  incrAmount,
  type LocalData,
  type SetOptions,
  StateCommandError,
  type StateReply,
  type StateScript,
  type StateStore,
  StateUnavailable,
  ttlMillis,
  type Unsubscribe,
} from "./store.ts";
import type { Logger } from "../telemetry/mod.ts";

export interface MemoryStateStoreOptions {
  /** Clock of the TTLs (tests inject one; nothing here sleeps). */
  now?: () => number;
  /**
   * Bound on live keys: past it, the least recently used key is evicted (a cache's
   * `max_entries`). Without it the store grows with its keys; expired ones are swept.
   */
  maxEntries?: number;
  /** Where a subscriber that throws is reported (it never stops delivery to the others). */
  logger?: Logger;
}

interface Entry {
  value: string;
  /** ms on the store's clock; Infinity when it never expires. */
  expiresAt: number;
}

/** Entries examined for expiry per write: reclaims dead keys in O(1) per call, no timer. */
const SWEEP_PER_WRITE = 2;
const INTEGER = /^-?(?:0|[1-9][0-9]*)$/;

export function createMemoryStateStore(opts: MemoryStateStoreOptions = {}): StateStore {
  const now = opts.now ?? Date.now;
  const maxEntries = opts.maxEntries;
  if (maxEntries !== undefined && !(Number.isSafeInteger(maxEntries) && maxEntries > 0)) {
    throw new RangeError(`state: maxEntries must be a positive integer, got ${maxEntries}`);
  }
  // Map order is recency order: a read or write moves the key to the end.
  const entries = new Map<string, Entry>();
  const channels = new Map<string, Set<(message: string) => void>>();
  let cursor: Iterator<[string, Entry]> = entries.entries();
  let closed = false;

  const live = (key: string): Entry | null => {
    const e = entries.get(key);
    if (!e) return null;
    if (e.expiresAt <= now()) {
      entries.delete(key);
      return null;
    }
    return e;
  };
  const touch = (key: string, e: Entry) => {
    entries.delete(key);
    entries.set(key, e);
  };
  const sweep = () => {
    const t = now();
    for (let i = 0; i < SWEEP_PER_WRITE; i++) {
      const next = cursor.next();
      if (next.done) {
        cursor = entries.entries();
        return;
      }
      const [key, e] = next.value;
      if (e.expiresAt <= t) entries.delete(key);
    }
  };
  const write = (key: string, e: Entry) => {
    touch(key, e);
    sweep();
    if (maxEntries !== undefined && entries.size > maxEntries) {
      const oldest = entries.keys().next();
      if (!oldest.done) entries.delete(oldest.value);
    }
  };

  const data: LocalData = {
    now,
    get(key) {
      const e = live(key);
      if (!e) return null;
      touch(key, e);
      return e.value;
    },
    set(key, value, ttlMs) {
      const expiresAt = ttlMs === undefined ? Infinity : now() + ttlMillis(ttlMs);
      write(key, { value, expiresAt });
    },
    del: (key) => live(key) !== null && entries.delete(key),
    incr(key, by, ttlMs) {
      const step = incrAmount(by);
      const ttl = ttlMs === undefined ? undefined : ttlMillis(ttlMs);
      const e = live(key);
      if (e && !INTEGER.test(e.value)) {
        throw new StateCommandError("ERR value is not an integer or out of range");
      }
      const value = (e ? Number(e.value) : 0) + step;
      if (!Number.isSafeInteger(value)) {
        throw new StateCommandError("ERR increment or decrement would overflow");
      }
      const expiresAt = e && e.expiresAt !== Infinity
        ? e.expiresAt
        : ttl === undefined
        ? Infinity
        : now() + ttl;
      write(key, { value: String(value), expiresAt });
      return value;
    },
    ttl(key) {
      const e = live(key);
      if (!e) return null;
      return e.expiresAt === Infinity ? Infinity : e.expiresAt - now();
    },
  };

  /** Every method runs its body synchronously, hence atomically, once the store is open. */
  const op = <T>(body: () => T): Promise<T> => {
    if (closed) return Promise.reject(new StateUnavailable("state: the store is closed"));
    try {
      return Promise.resolve(body());
    } catch (err) {
      return Promise.reject(err);
    }
  };

  return {
    backend: "memory",
    available: () => !closed,
    get: (key) => op(() => data.get(key)),
    set: (key, value, setOpts: SetOptions = {}) =>
      op(() => {
        const ttl = setOpts.ttlMs === undefined ? undefined : ttlMillis(setOpts.ttlMs);
        if (setOpts.ifAbsent && live(key)) return false;
        data.set(key, value, ttl);
        return true;
      }),
    del: (key) => op(() => data.del(key)),
    incr: (key, by, ttlMs) => op(() => data.incr(key, by, ttlMs)),
    ttl: (key) => op(() => data.ttl(key)),
    eval: (script: StateScript, keys, args): Promise<StateReply> =>
      op(() => script.local(data, keys, args.map(String))),
    publish: (channel, message) =>
      op(() => {
        // Delivered after the publisher's turn, like a Redis message, and in publish order.
        for (const cb of channels.get(channel) ?? []) {
          queueMicrotask(() => {
            try {
              cb(message);
            } catch (err) {
              opts.logger?.warn("state: a subscriber threw", { channel, error: errorText(err) });
            }
          });
        }
      }),
    subscribe: (channel, onMessage) =>
      op((): Unsubscribe => {
        // A wrapper per call, so the same function subscribed twice unsubscribes separately.
        const cb = (message: string) => onMessage(message);
        let set = channels.get(channel);
        if (!set) channels.set(channel, set = new Set());
        set.add(cb);
        return () => {
          set.delete(cb);
          if (set.size === 0 && channels.get(channel) === set) channels.delete(channel);
          return Promise.resolve();
        };
      }),
    close() {
      closed = true;
      channels.clear();
      entries.clear();
      return Promise.resolve();
    },
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
