/**
 * The Redis cache backend: `GET` / `SET ... PX ttl` under `key_prefix`, on its own link with
 * a short command deadline. Redis away, slow or refusing is a miss (and a skipped store),
 * never an error the client sees.
 * @module
 */
import type { RedisLink } from "../state/redis_link.ts";
import type { CacheBackend } from "./store.ts";

export const DEFAULT_CACHE_PREFIX = "pilotfish:cache:";

export function createRedisCache(
  link: RedisLink,
  prefix: string,
  onError: (error: unknown) => void,
): CacheBackend {
  /** Stores in flight, so `ready()` can wait for them (tests, clear). */
  const writes = new Set<Promise<void>>();
  return {
    kind: "redis",
    async ready() {
      if (!link.ready()) {
        await new Promise<void>((resolve) => {
          const off = link.onStateChange((up) => {
            if (!up) return;
            off();
            resolve();
          });
        });
      }
      await Promise.all(writes);
    },
    async get(key) {
      try {
        const v = await link.command(["GET", prefix + key]);
        return typeof v === "string" ? v : null;
      } catch (err) {
        onError(err);
        return null;
      }
    },
    set(key, value, ttlMs) {
      const write = link.command(["SET", prefix + key, value, "PX", String(Math.max(1, ttlMs))])
        .then(() => {}, onError);
      writes.add(write);
      write.finally(() => writes.delete(write));
      return write;
    },
    async clear() {
      // SCAN + UNLINK in pages: never KEYS, which blocks a shared Redis. Only the cache's own
      // keys (the prefix and a SHA-256 in hex): a prefix that is empty, or that other keys
      // share (Butter lets any be set), must not take app keys and usage with it.
      let cursor = "0";
      let n = 0;
      do {
        const reply = await link.command([
          "SCAN",
          cursor,
          "MATCH",
          `${escapeGlob(prefix)}${HEX_DIGEST}`,
          "COUNT",
          "500",
        ]);
        const [next, keys] = reply as [string, string[]];
        cursor = next;
        if (keys.length > 0) n += Number(await link.command(["UNLINK", ...keys]));
      } while (cursor !== "0");
      return n;
    },
    close: () => link.close(),
  };
}

/** A `digestKey` (SHA-256, lowercase hex) as a SCAN glob. */
const HEX_DIGEST = "[0-9a-f]".repeat(64);

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, "\\$&");
}
