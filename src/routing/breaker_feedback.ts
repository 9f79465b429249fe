import type { GatewayError } from "../errors.ts";
import { type Breaker, classifyOutcome, type OutcomeClass } from "../breaker/mod.ts";
import type { FailoverDeps, Settled } from "./attempt.ts";

/** The outcome class of a failed attempt, escalating a sustained global rate limit. */
export function classOf(
  deps: FailoverDeps,
  breaker: Breaker | undefined,
  s: Settled,
  err: GatewayError,
): OutcomeClass {
  const transport = err.code === "upstream_timeout" || err.code === "upstream_unreachable";
  const cls = classifyOutcome({
    providerType: deps.config.providers[s.target.provider]?.type ?? "openai",
    status: transport ? null : err.info.upstreamStatus ?? err.status,
    ...(err.info.upstreamHeaders ? { headers: err.info.upstreamHeaders } : {}),
    ...(err.info.upstreamType ?? err.info.upstreamCode
      ? { errorType: err.info.upstreamType ?? err.info.upstreamCode }
      : {}),
  });
  return breaker ? breaker.escalate(s.key, cls, deps.now()) : cls;
}

/**
 * Tell the breaker how an attempt went. A retried failure counts toward the window only in
 * `retry_contribution_mode: on`; a terminal one always does; a probe always gives a verdict.
 */
export function feed(
  breaker: Breaker | undefined,
  deps: FailoverDeps,
  s: Settled,
  cls: OutcomeClass,
  terminal: boolean,
  bypass: { readonly reason: string } | undefined,
): void {
  if (!breaker || s.admission === "reject" || s.synthetic) return;
  const counts = terminal || breaker.config.retry_contribution_mode === "on";
  breaker.record(s.target.provider, s.key, cls, {
    probe: s.admission === "probe",
    bypass: bypass?.reason ?? null,
    counts,
  }, deps.now());
}
