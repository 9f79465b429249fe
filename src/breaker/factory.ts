import type { Config } from "../config/mod.ts";
import type { Logger } from "../telemetry/mod.ts";
import { type BreakerStore, createMemoryBreakerStore } from "./store.ts";
import { breakerTiming } from "./timing.ts";

/**
 * The breaker's state backend: the block's own `backend` (with llm-proxy's
 * `redis.url` or `redis.address/password/db`) when given, else `state.backend` / `state.redis.url`. Built
 * once at start and kept across reloads; its timing is the first config's. The Redis client
 * is imported only when Redis is configured: it would cost every other sidecar ~20 MB.
 */
export async function createBreakerStore(config: Config, logger: Logger): Promise<BreakerStore> {
  const cb = config.features.circuit_breaker;
  const timing = breakerTiming(cb);
  const url = breakerRedisUrl(config);
  if (url === null) return createMemoryBreakerStore(timing);
  const { createRedisBreakerStore } = await import("../state/redis_breaker_store.ts");
  return createRedisBreakerStore({ ...cb.redis, url, timing, logger });
}

/**
 * The Redis the breaker keeps its state in, or null for memory: also what the permission
 * planner grants, so the two cannot disagree. Pure.
 */
export function breakerRedisUrl(config: Config): string | null {
  const cb = config.features.circuit_breaker;
  if (!cb.enabled || (cb.backend ?? config.state.backend) !== "redis") return null;
  return cb.redis?.url ?? config.state.redis.url;
}
