/**
 * Circuit breaker (llm-proxy's contract): outcome classification, the per-key breaker with
 * half-open probes and per-provider rollup, and its state stores.
 * @module
 */
export {
  classifyOutcome,
  type OutcomeClass,
  outcomeHeader,
  type UpstreamOutcome,
} from "./classify.ts";
export {
  type Admission,
  type Breaker,
  type BreakerCounters,
  type BreakerMode,
  type BreakerTransition,
  createBreaker,
  DEFAULT_DEGRADED_SIGNAL,
  type ProviderHealth,
} from "./breaker.ts";
export { type BreakerStore, type BreakerTiming, createMemoryBreakerStore } from "./store.ts";
export { breakerTiming } from "./timing.ts";
export {
  FLAG_HEADERS,
  FLAG_PARAMS,
  normaliseReason,
  readRequestFlags,
  type RequestFlags,
} from "./request_flags.ts";
