import type { Config } from "../config/mod.ts";
import { type BreakerStore, createMemoryBreakerStore } from "./store.ts";
import { breakerTiming } from "./timing.ts";

/**
 * The breaker's state backend: the block's own `backend` when given, else `state.backend`.
 * Built once at start; its timing is the first config's.
 */
export function createBreakerStore(
  config: Config,
  _env: (name: string) => string | undefined,
): BreakerStore {
  const timing = breakerTiming(config.features.circuit_breaker);
  return createMemoryBreakerStore(timing);
}
