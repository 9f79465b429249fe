/**
 * Routing: model -> ordered targets (strategies), key choice with cooldowns, and the
 * failover loop with retries and hedging.
 * @module
 */
export {
  MAX_MODEL_CHARS,
  type Resolution,
  resolveModel,
  resolveTargets,
  type Target,
} from "./resolve.ts";
export { pickKey } from "./keys.ts";
export {
  createRoutingState,
  type KeyCooldown,
  type RoutingState,
  type Unreachable,
} from "./state.ts";
export { orderTargets, targetKey } from "./strategy.ts";
export { backoffMs, classifyFailure, retryAfterMs } from "./retry.ts";
export {
  type AttemptContext,
  attemptHeaders,
  type AttemptRecord,
  type AttemptTrail,
  executeWithFailover,
  FailoverExhausted,
  type FailoverResult,
  type FailoverRun,
  type Invoke,
  pilotfishHeaders,
  runFailover,
} from "./failover.ts";
export { callsMade, NO_TRAIL, takesClientCredential } from "./attempt.ts";
export { feedRelayedFailure, feedStreamFailure } from "./breaker_feedback.ts";
