import { GatewayError } from "../errors.ts";
import type { ResponseOutcome } from "../pipeline/events.ts";
import type { Exchange } from "../pipeline/exchange.ts";
import {
  type Breaker,
  classifyOutcome,
  type OutcomeClass,
  type UpstreamOutcome,
} from "../breaker/mod.ts";
import type { FailoverDeps, Settled } from "./attempt.ts";

/**
 * The outcome class of a failed attempt by its provider's own rules (`adapter.classify`),
 * escalating a sustained global rate limit. A provider the gateway is not set up to call
 * (`unconfigured`) was not called: like a caller's error, that says nothing of its health.
 */
export function classOf(
  deps: FailoverDeps,
  breaker: Breaker,
  s: Settled,
  err: GatewayError,
): OutcomeClass {
  if (err.info.unconfigured === true || err.info.clientLimit === true) return "client_error";
  const classify = deps.adapters.get(s.target.provider)?.classify ?? classifyOutcome;
  return breaker.escalate(s.key, classify(outcomeOf(err)), deps.now());
}

/** A failure as the breaker's classifiers read it. */
function outcomeOf(err: GatewayError): UpstreamOutcome {
  const transport = err.code === "upstream_timeout" || err.code === "upstream_unreachable";
  const errorType = err.info.upstreamType ?? err.info.upstreamCode;
  return {
    status: transport ? null : err.info.upstreamStatus ?? err.status,
    ...(err.info.upstreamHeaders ? { headers: err.info.upstreamHeaders } : {}),
    ...(errorType ? { errorType } : {}),
  };
}

/**
 * A failure the provider reported inside an answer already relayed as a success (an
 * exception frame after HTTP 200 on a passthrough): classified by the provider's rules and
 * counted as a terminal failure of `target`'s key would be. Returns its class.
 */
export function feedRelayedFailure(
  breaker: Breaker,
  adapters: FailoverDeps["adapters"],
  target: { readonly provider: string; readonly model: string },
  err: GatewayError,
  now: number,
): OutcomeClass {
  const key = breaker.key(target.provider, target.model);
  const classify = adapters.get(target.provider)?.classify ?? classifyOutcome;
  const cls = breaker.escalate(key, classify(outcomeOf(err)), now);
  breaker.record(target.provider, key, cls, { probe: false, bypass: null, counts: true }, now);
  return cls;
}

/**
 * A unified-route stream that failed after its commit (the upstream cut it, went silent, or
 * sent an error event): its attempt had counted as a success at commit, so the failure goes
 * to the breaker now, as a relayed one does. Not the client's leaving, not the gateway's own
 * limits (`write_timeout`, a shutdown) and not a stage's failure; native routes feed their own.
 */
export function feedStreamFailure(
  breaker: Breaker,
  adapters: FailoverDeps["adapters"],
  ex: Exchange,
  outcome: ResponseOutcome,
  now: () => number,
): void {
  if (breaker.mode === "off" || !ex.stream || ex.schema === "passthrough") return;
  if (outcome === "complete" || outcome === "client_abort" || ex.timedOut !== undefined) return;
  const winner = ex.attempts.findLast((a) => a.outcome === "ok" && a.no_call !== true);
  if (winner === undefined) return;
  const error = ex.response?.error;
  let failure: GatewayError;
  if (error instanceof GatewayError) {
    // Only what the provider did: a stage's failure or the gateway's own limit is not.
    if (error.info.provider === undefined && outcome !== "upstream_cut") return;
    failure = error;
  } else if (outcome === "upstream_cut") {
    failure = new GatewayError("upstream_unreachable", String(error), {
      provider: winner.provider,
    });
  } else return;
  feedRelayedFailure(breaker, adapters, winner, failure, now());
}

/**
 * Tell the breaker how an attempt went. A retried failure counts toward the window only in
 * `retry_contribution_mode: on`; a terminal one always does; a probe always gives a verdict.
 */
export function feed(
  breaker: Breaker,
  deps: FailoverDeps,
  s: Settled,
  cls: OutcomeClass,
  terminal: boolean,
  bypass: { readonly reason: string } | undefined,
): void {
  if (s.synthetic) return;
  const trail = deps.trail;
  if (trail?.breakerDecision && breaker.mode === "on") {
    const { provider, model } = s.target;
    const outcome = s.admission === "reject"
      ? "provider_degraded"
      : cls === "success"
      ? "none"
      : cls;
    if (s.admission === "reject") trail.breakerDecision(provider, model, "fast_fail", "", outcome);
    else if (bypass) trail.breakerDecision(provider, model, "bypass", bypass.reason, outcome);
    else if (s.admission === "probe") trail.breakerDecision(provider, model, "probe", "", outcome);
  }
  if (s.admission === "reject") return;
  const counts = terminal || breaker.config.retry_contribution_mode === "on";
  breaker.record(s.target.provider, s.key, cls, {
    probe: s.admission === "probe",
    bypass: bypass?.reason ?? null,
    counts,
  }, deps.now());
}
