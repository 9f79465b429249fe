/**
 * Where cached answers live. Values are JSON text (`CachedAnswer` serialised once, at store
 * time). The memory backend is an LRU bounded by bytes (`maxSize` MB) and by entries
 * (`max_entries`); the Redis backend (`src/cache/redis.ts`) is shared by a fleet.
 * @module
 */

export interface CacheBackend {
  readonly kind: "memory" | "redis";
  /** The value, or null when absent, expired or unreachable (an outage is a miss). */
  get(key: string): string | null | Promise<string | null>;
  /** Store for `ttlMs`; failures are swallowed (the answer was served anyway). */
  set(key: string, value: string, ttlMs: number): void | Promise<void>;
  /** Drop every entry; returns how many were dropped. */
  clear(): number | Promise<number>;
  close(): void | Promise<void>;
  /** Resolves once the store answers (Redis connected) and earlier stores have landed. */
  ready?(): Promise<void>;
}

export interface MemoryCacheOptions {
  readonly maxBytes: number;
  readonly maxEntries: number;
  /** Monotonic or wall ms, for TTLs. */
  readonly now: () => number;
}

interface Entry {
  readonly value: string;
  readonly bytes: number;
  readonly expires: number;
}

/** Any UTF-16 unit outside ASCII: a native scan, ~3x faster than the loop below. */
const NON_ASCII = /[\u0080-\uffff]/;

/** UTF-8 size of a value plus its key (what the process holds, roughly), without encoding. */
export function entryBytes(key: string, value: string): number {
  let n = key.length + value.length;
  if (!NON_ASCII.test(value)) return n;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x80) continue;
    // 2 bytes below U+0800; a surrogate half is 2 of a pair's 4; the rest of the BMP is 3.
    n += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 1 : 2;
  }
  return n;
}

/**
 * LRU by recency of use: a Map's insertion order is the recency order (a hit moves its
 * entry to the end), so the least recently used entry is the first one.
 */
export function createMemoryCache(opts: MemoryCacheOptions): CacheBackend & {
  readonly bytes: number;
  readonly size: number;
} {
  const entries = new Map<string, Entry>();
  let bytes = 0;
  const drop = (key: string, e: Entry) => {
    entries.delete(key);
    bytes -= e.bytes;
  };
  return {
    kind: "memory",
    get bytes() {
      return bytes;
    },
    get size() {
      return entries.size;
    },
    get(key) {
      const e = entries.get(key);
      if (e === undefined) return null;
      if (e.expires <= opts.now()) {
        drop(key, e);
        return null;
      }
      entries.delete(key);
      entries.set(key, e);
      return e.value;
    },
    set(key, value, ttlMs) {
      const size = entryBytes(key, value);
      // Larger than the whole budget: never cached (it would evict everything for nothing).
      if (size > opts.maxBytes) return;
      const old = entries.get(key);
      if (old !== undefined) drop(key, old);
      entries.set(key, { value, bytes: size, expires: opts.now() + ttlMs });
      bytes += size;
      for (const [k, e] of entries) {
        if (bytes <= opts.maxBytes && entries.size <= opts.maxEntries) break;
        drop(k, e);
      }
    },
    clear() {
      const n = entries.size;
      entries.clear();
      bytes = 0;
      return n;
    },
    close() {
      entries.clear();
      bytes = 0;
    },
  };
}
