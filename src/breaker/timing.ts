import type { CircuitBreakerConfig } from "../config/mod.ts";
import type { BreakerTiming } from "./store.ts";

/** llm-proxy's seconds -> the store's milliseconds. */
export function breakerTiming(cfg: CircuitBreakerConfig): BreakerTiming {
  return {
    failureThreshold: cfg.failure_threshold,
    windowMs: cfg.window_seconds * 1000,
    cooldownMs: cfg.cooldown_seconds * 1000,
    rollupWindowMs: cfg.per_provider_rollup_window_seconds * 1000,
  };
}
