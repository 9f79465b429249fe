/**
 * Process-wide usage and cache state: the rollup ledger and the response cache outlive a
 * config generation (a reload must not reset counters or empty the cache), so the daemon
 * holds one `StateResources` and every generation asks it for the current ones. A section
 * whose settings changed (`state.*` for the ledger, `cache.*` for the cache) gets a fresh
 * instance; the old one is flushed and closed.
 *
 * Redis code is imported only when Redis is configured (the client costs ~20 MB).
 * @module
 */
import type { Config } from "../config/mod.ts";
import type { Logger } from "../telemetry/mod.ts";
import { createMemoryCache } from "../cache/store.ts";
import type { CacheBackend } from "../cache/store.ts";
import { createLedger, type UsageLedger } from "./ledger.ts";
import { createMemoryRollups, type RollupBackend } from "./rollup.ts";
import { slottedPrefix } from "../state/redis_url.ts";

/** Defaults of the memory cache when `maxSize` / `max_entries` are not set. */
export const CACHE_DEFAULTS = { maxSizeMb: 64, maxEntries: 10_000, ttlMs: 3_600_000 };

export interface StateResources {
  ledger(config: Config, logger: Logger): UsageLedger;
  /** Null when `cache.enabled` is false. */
  cache(config: Config, logger: Logger): CacheBackend | null;
  /** Flush and close everything (shutdown). */
  close(): Promise<void>;
}

export interface StateResourcesOptions {
  /** Wall clock (ms): cache TTLs, rollup buckets. */
  readonly now: () => number;
  /** Rollup flush interval (ms). */
  readonly flushMs?: number;
}

export function createStateResources(opts: StateResourcesOptions): StateResources {
  let ledger: { id: string; value: UsageLedger } | null = null;
  let cache: { id: string; value: CacheBackend | null } | null = null;
  const closing = new Set<Promise<void>>();
  const retire = (close: () => void | Promise<void>) => {
    const p = Promise.resolve().then(close).catch(() => {});
    closing.add(p);
    p.finally(() => closing.delete(p));
  };
  return {
    ledger(config, logger) {
      const s = config.state;
      const id = JSON.stringify([s.backend, s.backend === "redis" ? s.redis.url : "", s.path]);
      if (ledger?.id === id) return ledger.value;
      if (ledger) {
        const old = ledger.value;
        retire(() => old.close());
      }
      const value = createLedger(rollupBackend(config, logger), {
        now: opts.now,
        ...(opts.flushMs !== undefined ? { flushMs: opts.flushMs } : {}),
        onError: warnOnce(logger, "usage rollups not written yet (will retry)"),
      });
      ledger = { id, value };
      return value;
    },
    cache(config, logger) {
      const c = config.cache;
      const id = JSON.stringify([c, c.backend === "redis" ? config.state.redis.url : ""]);
      if (cache?.id === id) return cache.value;
      if (cache?.value) {
        const old = cache.value;
        retire(() => old.close());
      }
      const value = c.enabled ? cacheBackend(config, logger, opts.now) : null;
      cache = { id, value };
      return value;
    },
    async close() {
      await Promise.all([ledger?.value.close(), cache?.value?.close(), ...closing]);
      ledger = null;
      cache = null;
    },
  };
}

function rollupBackend(config: Config, logger: Logger): RollupBackend | Promise<RollupBackend> {
  const s = config.state;
  if (s.backend === "redis") {
    return Promise.all([import("../state/redis_pool.ts"), import("./redis.ts")]).then((
      [{ openRedisLink }, { createRedisRollups, DEFAULT_USAGE_PREFIX }],
    ) =>
      createRedisRollups(
        openRedisLink({ url: s.redis.url, name: "usage", logger }),
        slottedPrefix(s.redis.url, DEFAULT_USAGE_PREFIX),
      )
    );
  }
  // node:sqlite too is loaded only when a file is configured.
  if (s.path !== "") return import("./sqlite.ts").then((m) => m.createSqliteRollups(s.path));
  return createMemoryRollups();
}

function cacheBackend(config: Config, logger: Logger, now: () => number): CacheBackend {
  const c = config.cache;
  if (c.backend === "memory") {
    return createMemoryCache({
      maxBytes: (c.max_size_mb ?? CACHE_DEFAULTS.maxSizeMb) * 1024 * 1024,
      // llm-gateway's `maxSize` alone is a budget in MB, not one in entries too.
      maxEntries: c.max_entries ??
        (c.max_size_mb !== undefined ? Number.POSITIVE_INFINITY : CACHE_DEFAULTS.maxEntries),
      now,
    });
  }
  const warn = warnOnce(logger, "response cache: Redis unavailable, answering as misses");
  const loading = Promise.all([import("../state/redis_pool.ts"), import("../cache/redis.ts")])
    .then(([{ openRedisLink }, { createRedisCache, DEFAULT_CACHE_PREFIX }]) => {
      const r = c.redis;
      const link = openRedisLink({
        url: r ? r.sentinel ?? `redis://${r.address}` : config.state.redis.url,
        ...(r && r.password !== "" ? { password: r.password } : {}),
        // Only a db written in the block: else the sentinel's (its URL's), else 0.
        ...(r?.db !== undefined ? { db: r.db } : {}),
        name: "cache",
        logger,
        // A lookup on every cacheable request: a slow Redis must cost little before it
        // counts as a miss.
        commandTimeoutMs: 250,
      });
      return createRedisCache(link, r?.key_prefix ?? DEFAULT_CACHE_PREFIX, warn);
    });
  return lazyCache(loading);
}

/** A Redis backend still loading answers misses (and stores nothing) until it is there. */
function lazyCache(loading: Promise<CacheBackend>): CacheBackend {
  let ready: CacheBackend | null = null;
  loading.then((b) => (ready = b), () => {});
  return {
    kind: "redis",
    get: (key) => ready ? ready.get(key) : null,
    set: (key, value, ttl) => ready?.set(key, value, ttl),
    clear: async () => await (await loading).clear(),
    ready: async () => await (await loading).ready?.(),
    close: async () => await (await loading.catch(() => null))?.close(),
  };
}

/** Log the first failure of a streak, not one line per request. */
function warnOnce(logger: Logger, message: string): (error: unknown) => void {
  let last = 0;
  return (error) => {
    const now = Date.now();
    if (now - last < 60_000) return;
    last = now;
    logger.warn(message, { error: error instanceof Error ? error.message : String(error) });
  };
}
