import type { CircuitBreakerConfig, FailoverConfig } from "../config/mod.ts";
import type { GatewayError } from "../errors.ts";
import type { OutcomeClass } from "../breaker/mod.ts";

/** Why an attempt failed, as far as what to do next is concerned. */
export type FailureKind =
  | "retryable" // a status in retry_on: same provider again, then the next one
  | "connection" // refused/reset/timeout: the next provider at once
  | "next" // another 5xx (not in retry_on): not retried here, the next provider (Butter's)
  | "key" // 401/403 from a provider with another key to try
  | "final"; // the caller's problem (other 4xx) or not ours to retry

/** Classify a failed attempt under the failover policy. Pure. */
export function classifyFailure(err: GatewayError, policy: FailoverConfig): FailureKind {
  // Another provider may be set up to answer; retrying this one would fail the same way.
  if (err.info.unconfigured === true) return "next";
  if (err.code === "client_closed") return "final";
  if (err.code === "upstream_timeout" || err.code === "upstream_unreachable") return "connection";
  const status = err.info.upstreamStatus;
  if (status === undefined) return "final";
  if (policy.retry_on.includes(status)) return "retryable";
  if (status === 401 || status === 403) return "key";
  // The provider failed, not the request: Butter tries the next provider for any failure
  // outside retry_on; the caller's own errors (other 4xx) are PRODUCT's to pass back.
  return status >= 500 ? "next" : "final";
}

/**
 * How many times a failure may be retried on the provider that just failed. Pure.
 *
 * - With the circuit breaker on, llm-proxy's budgets govern the classes it names, whether or
 *   not `routing.failover` is enabled: `max_transient_retries` for a degraded failure,
 *   `max_rate_limit_retries` for a rate limit. A connection failure (degraded too) still
 *   moves on at once when failover has another provider to go to.
 * - Otherwise Butter's failover: a status in `retry_on` gets `max_retries` retries on the
 *   same provider (none when failover is disabled).
 */
export function sameProviderRetries(
  kind: FailureKind,
  cls: OutcomeClass,
  policy: FailoverConfig,
  breaker: Pick<CircuitBreakerConfig, "max_transient_retries" | "max_rate_limit_retries"> | null,
  canMoveOn: boolean,
  /** The provider's own `max_retries`, when it sets one (llm-gateway's per-provider key). */
  providerRetries?: number,
): number {
  if (breaker) {
    if (cls === "provider_degraded") {
      return kind === "connection" && canMoveOn ? 0 : breaker.max_transient_retries;
    }
    if (cls === "localized_rate_limit" || cls === "global_rate_limit") {
      return breaker.max_rate_limit_retries;
    }
  }
  return policy.enabled && kind === "retryable" ? providerRetries ?? policy.max_retries : 0;
}

/**
 * Exponential backoff with full jitter (AWS's "full jitter": uniform in [0, cap]) for the
 * `retry`-th retry on the same provider, starting at 0.
 */
export function backoffMs(retry: number, policy: FailoverConfig, random: () => number): number {
  const { initial, multiplier, max } = policy.backoff;
  const cap = Math.min(max, initial * multiplier ** retry);
  return Math.round(random() * cap);
}

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date. Null when absent or bad. */
export function retryAfterMs(header: string | undefined, now: number): number | null {
  if (header === undefined || header.trim() === "") return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : null;
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}
