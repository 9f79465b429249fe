import type { ModelRouteConfig } from "../config/mod.ts";
import { abortableSleep } from "../async.ts";
import { GatewayError, withHeaders } from "../errors.ts";
import type { ChatOutcome } from "../providers/mod.ts";
import { type Breaker, createBreaker, createMemoryBreakerStore } from "../breaker/mod.ts";
import type { CircuitBreakerConfig } from "../config/mod.ts";
import type { OutcomeClass } from "../breaker/mod.ts";
import {
  attempt,
  type AttemptOutcome,
  type AttemptRecord,
  type AttemptRequest,
  callsMade,
  type FailoverDeps,
  type Invoke,
  NO_TRAIL,
  type Settled,
  syntheticFailure,
} from "./attempt.ts";
import { hedge } from "./hedge.ts";
import { classOf, feed } from "./breaker_feedback.ts";
import { cutByShutdown } from "../providers/execute.ts";
import { hasReadyKey, pickKey } from "./keys.ts";
import { MAX_MODEL_CHARS, type Target } from "./resolve.ts";
import { backoffMs, classifyFailure, retryAfterMs, sameProviderRetries } from "./retry.ts";
import { orderTargets, targetKey } from "./strategy.ts";
import { noUsage } from "../streaming/usage.ts";

export type {
  AttemptContext,
  AttemptOutcome,
  AttemptRecord,
  AttemptTrail,
  FailoverDeps,
  Invoke,
} from "./attempt.ts";

export interface FailoverRequest<O extends AttemptOutcome = ChatOutcome> extends AttemptRequest {
  readonly requested: string;
  readonly targets: readonly Target[];
  readonly route: ModelRouteConfig | undefined;
  readonly invoke: Invoke<O>;
  /** Overall budget until a response starts, ms. */
  readonly deadlineMs: number;
  /** Replaces the providers' own per-attempt `timeout` (x-gateway.timeout does). */
  readonly attemptTimeoutMs?: number;
  /** `X-LLM-Proxy-Bypass-Circuit`: one attempt, no fast-fail; the reason is for the counters. */
  readonly bypass?: { readonly reason: string };
  /** `X-LLM-Proxy-Test-Mode` (only when the breaker allows test mode). */
  readonly testMode?: "force_degraded" | "force_transient_recover";
}

export interface FailoverResult<O extends AttemptOutcome = ChatOutcome> {
  readonly outcome: O;
  readonly target: Target;
  readonly attempts: readonly AttemptRecord[];
}

/**
 * How a failover run ended, as data: an answer, or the error to answer with (it already
 * carries the `x-pilotfish-provider/-model/-attempts` headers of `target`, tried last).
 */
export type FailoverRun<O extends AttemptOutcome = ChatOutcome> =
  | ({ readonly ok: true } & FailoverResult<O>)
  | {
    readonly ok: false;
    readonly error: GatewayError;
    readonly attempts: readonly AttemptRecord[];
    readonly target: Target | undefined;
  };

/**
 * Thrown when no attempt succeeded. `last` is the error to answer with; it already carries
 * the `x-pilotfish-provider/-model/-attempts` headers of the provider tried last (`target`).
 */
export class FailoverExhausted extends Error {
  override readonly name = "FailoverExhausted";
  constructor(
    readonly last: GatewayError,
    readonly attempts: readonly AttemptRecord[],
    readonly target?: Target,
  ) {
    super(last.message, { cause: last });
  }
}

/** The `x-pilotfish-*` headers that say which provider answered (or failed) and how often. */
export function attemptHeaders(
  target: Target | undefined,
  attempts: number,
): Record<string, string> {
  return target ? pilotfishHeaders(target.provider, target.model, attempts) : {};
}

/** The same from plain values. The model is the client's text: made header-safe. */
export function pilotfishHeaders(
  provider: string,
  model: string | undefined,
  attempts: number,
): Record<string, string> {
  // A passthrough body may name any model: one too long for a header is left out.
  const named = model && model.length <= MAX_MODEL_CHARS ? headerText(model) : "";
  return {
    "x-pilotfish-provider": provider,
    ...(named !== "" && named.length <= MAX_MODEL_HEADER ? { "x-pilotfish-model": named } : {}),
    "x-pilotfish-attempts": String(attempts),
  };
}

/** Percent-encoded, a model name can grow up to 9 characters each; clients read ~16 KiB. */
const MAX_MODEL_HEADER = 2048;

/** Visible ASCII as is, anything else percent-encoded: a header value must be a ByteString. */
function headerText(value: string): string {
  // toWellFormed: a lone surrogate (valid JSON, invalid UTF-16) would make encodeURIComponent throw.
  return /^[\x20-\x7e]*$/.test(value) ? value : encodeURIComponent(value.toWellFormed());
}

function exhausted<O extends AttemptOutcome>(
  last: GatewayError,
  attempts: readonly AttemptRecord[],
  target: Target | undefined,
): FailoverRun<O> {
  return {
    ok: false,
    error: withHeaders(last, attemptHeaders(target, callsMade(attempts))),
    attempts,
    target,
  };
}

/** `runFailover`, throwing `FailoverExhausted` when no attempt succeeded. */
export async function executeWithFailover<O extends AttemptOutcome = ChatOutcome>(
  deps: FailoverDeps,
  req: FailoverRequest<O>,
): Promise<FailoverResult<O>> {
  const run = await runFailover(deps, req);
  if (!run.ok) throw new FailoverExhausted(run.error, run.attempts, run.target);
  return run;
}

/** The breaker failover uses when none is configured: lets everything through. */
const offBreakers = new WeakMap<object, Breaker>();
function breakerOf(deps: FailoverDeps): Breaker {
  if (deps.breaker !== undefined) return deps.breaker;
  const cb = deps.config.features.circuit_breaker;
  let off = offBreakers.get(cb);
  if (off === undefined) {
    const config: CircuitBreakerConfig = { ...cb, enabled: false };
    off = createBreaker(
      config,
      createMemoryBreakerStore({
        failureThreshold: 1,
        windowMs: 1,
        cooldownMs: 1,
        rollupWindowMs: 1,
      }),
      () => {},
    );
    offBreakers.set(cb, off);
  }
  return off;
}

/**
 * Serve a request from an ordered list of targets.
 *
 * Butter's failover (`routing.failover`): a status in `retry_on` is retried on the same
 * provider up to `max_retries` times (backoff with full jitter, `Retry-After` honoured within
 * the deadline; one longer than `backoff.max` moves on when there is a next provider), then
 * the next provider is tried; a connection failure or timeout moves on at
 * once; a 401/403 tries another key; any other 4xx goes straight back. `max_attempts` (0: no
 * cap) bounds the calls across providers and `deadline` the whole request.
 *
 * llm-proxy's breaker, when enabled, adds its own same-provider retries (see
 * `sameProviderRetries`) whether or not failover is enabled, fast-fails open keys, and turns
 * a terminal degraded failure into its degraded signal.
 *
 * A stream counts as answered once its first chunk arrived, so nothing is retried after a
 * byte could have reached the client. With `hedge_after`, a second target starts if the
 * first has not answered in time; the first to answer wins and the other is aborted.
 */
export async function runFailover<O extends AttemptOutcome = ChatOutcome>(
  deps: FailoverDeps,
  req: FailoverRequest<O>,
): Promise<FailoverRun<O>> {
  const policy = deps.config.routing.failover;
  const deadline = deps.now() + req.deadlineMs;
  const breaker = breakerOf(deps);
  // One normalised deps for every attempt of this run: the breaker is always there.
  const run: FailoverDeps = deps.breaker === breaker ? deps : { ...deps, breaker };
  const trail = deps.trail ?? NO_TRAIL;
  const on = breaker.mode !== "off";
  const keyOf = on ? (t: Target) => breaker.key(t.provider, t.model) : targetKey;
  if (on && req.testMode === "force_degraded") {
    const first = req.targets[0];
    return exhausted(breaker.degraded(first?.provider ?? "unknown"), [], first);
  }
  /** Targets the breaker held back (open): ordered last, and listed if never reached. */
  let held: Set<Target> | null = null;
  const order = orderTargets(
    req.targets,
    req.route,
    req.requested,
    deps.state,
    deps.random,
    // A bypass skips the circuit check altogether: an open target is not moved behind others.
    breaker.mode === "on" && !req.bypass
      ? (t) =>
        breaker.available(t.provider, keyOf(t), deps.now()) || ((held ??= new Set()).add(t), false)
      : undefined,
  );
  // Bypass is single-shot by contract: the caller gets exactly what one upstream call says.
  const maxAttempts = req.bypass
    ? 1
    : policy.max_attempts > 0
    ? policy.max_attempts
    : Number.POSITIVE_INFINITY;
  let injectTransient = on && req.testMode === "force_transient_recover";
  let lastClass: OutcomeClass | null = null;
  const attempts: AttemptRecord[] = [];
  const refusedKeys = new Set<string>();
  let index = 0;
  let retries = 0; // on the current provider
  let last: GatewayError | null = null;
  let lastTarget: Target | undefined = order[0];
  /** The last outage a called provider reported (5xx, timeout, unreachable). */
  let outage: { error: GatewayError; target: Target; cls: OutcomeClass } | null = null;
  /** The last failure of a call that reached a provider (see `unusable`). */
  let lastCalled: { error: GatewayError; target: Target; cls: OutcomeClass } | null = null;
  let rejectedOnly = true;
  /** Calls actually made (fast-fails and test-mode failures are not calls). */
  let made = 0;

  const record = (
    s: Settled,
    outcome: AttemptRecord["outcome"],
    reason?: string,
    backoff?: number,
  ) => {
    const r: AttemptRecord = {
      ...s.record,
      outcome,
      ...(reason ? { reason } : {}),
      ...(backoff ? { backoff_ms: backoff } : {}),
    };
    attempts.push(r);
    return r;
  };
  const moveTo = (from: Target, at: number) => {
    const to = order[at];
    if (to !== undefined) trail.failover(from, to);
  };

  while (index < order.length && made < maxAttempts) {
    const target = order[index] as Target;
    if (deadline - deps.now() <= 0) break;

    // Hedging starts another provider early: that is failover, so it needs failover on. A
    // retry is hedged too: `hedge_after` holds for every call of the first candidate.
    const hedgeWith = policy.enabled && req.route?.hedge_after !== undefined &&
        !injectTransient && made + 1 < maxAttempts
      ? order[index + 1]
      : undefined;
    let settled: Settled[];
    if (injectTransient) {
      // Test mode: the first attempt fails as if the provider were degraded, without a call
      // upstream and without feeding the breaker; the retry loop then runs for real.
      injectTransient = false;
      settled = [syntheticFailure(target, keyOf(target))];
    } else if (hedgeWith) {
      settled = await hedge(
        run,
        req,
        target,
        hedgeWith,
        req.route!.hedge_after!,
        deadline,
        refusedKeys,
        keyOf,
      );
    } else {
      settled = [
        await attempt(run, req, target, deadline, refusedKeys, keyOf(target)),
      ];
    }

    // Fast-failed by the breaker: no call was made; the next candidate is tried at once.
    if (settled.every((s) => s.admission === "reject")) {
      for (const s of settled) {
        record(s, "next", reasonOf(s.error as GatewayError));
        // Not fed to the breaker (no call was made); the trail hears about the fast-fail.
        feed(breaker, deps, s, "provider_degraded", true, req.bypass);
        lastClass = "provider_degraded";
        last = s.error;
        lastTarget = s.target;
      }
      index += settled.length;
      moveTo(target, index);
      retries = 0;
      continue;
    }
    rejectedOnly = false;
    made += settled.filter((s) => !s.synthetic).length;

    const winner = settled.find((s) => s.ok !== null);
    if (winner) {
      for (const s of settled) {
        if (s === winner) record(s, "ok");
        else if (s.ok !== null || s.hedgeLost === true) record(s, "cancelled", "hedge lost");
        else {
          // It failed on its own before the other won: a failure like any other.
          const err = s.error as GatewayError;
          record(s, "next", reasonOf(err));
          feed(breaker, deps, s, classOf(deps, breaker, s, err), true, req.bypass);
          coolKey(deps, s, err);
        }
      }
      feed(breaker, deps, winner, "success", true, req.bypass);
      deps.state.observeLatency(targetKey(winner.target), winner.record.duration_ms);
      // The outcome came from req.invoke, so it is an O (Settled is not generic to stay simple).
      if (held !== null) skipped(held, attempts);
      return { ok: true, outcome: winner.ok as O, target: winner.target, attempts };
    }

    // Everything started this round failed; decide from the primary's failure.
    const aborted = req.signal.aborted;
    // The drain time ran out (SIGTERM): the route answers 503, nothing is retried.
    const cut = settled.some((s) => cutByShutdown(s.error));
    const classes = new Map<Settled, OutcomeClass>();
    for (const s of settled) {
      const err = s.error as GatewayError;
      last = err;
      lastTarget = s.target;
      // A client that left, or a shutdown, says nothing about the provider (a probe slot is
      // just released).
      const cls = aborted || cut ? "client_error" : classOf(deps, breaker, s, err);
      classes.set(s, cls);
      lastClass = cls;
      if (s.record.no_call !== true) {
        lastCalled = { error: err, target: s.target, cls };
        if (cls === "provider_degraded" || isOutage(err)) outage = lastCalled;
      }
      if (s.synthetic) continue;
      deps.state.observeLatency(targetKey(s.target), penalty(deps, s.target));
      coolKey(deps, s, err);
    }
    const primary = settled[0] as Settled;
    const err = primary.error as GatewayError;
    const kind = classifyFailure(err, policy);
    const terminal = (
      s: Settled,
      outcome: AttemptRecord["outcome"],
      reason?: string,
      backoff?: number,
    ) => {
      const r = record(s, outcome, reason, backoff);
      feed(breaker, deps, s, classes.get(s)!, outcome !== "retry", req.bypass);
      // A passthrough reply that will not be relayed must not hold its connection open.
      if (outcome !== "final") s.error?.info.response?.body?.cancel().catch(() => {});
      return r;
    };
    if (aborted || cut) {
      for (const s of settled) terminal(s, "final", aborted ? "client_abort" : "shutdown");
      // The answer is the shutdown's 503, whatever a hedged attempt beside it failed with.
      const shutdown = aborted ? undefined : settled.find((s) => cutByShutdown(s.error));
      if (shutdown) [last, lastTarget] = [shutdown.error as GatewayError, shutdown.target];
      break;
    }
    if (primary.synthetic) {
      // force_transient_recover's one retry is free: it holds even with no retry budget.
      const wait = backoffMs(0, policy, deps.random);
      trail.retry(terminal(primary, "retry", "test mode", wait), wait);
      if (!await pause(wait, req.signal)) break;
      continue;
    }
    if (made >= maxAttempts) {
      for (const s of settled) terminal(s, "final", reasonOf(s.error as GatewayError));
      break;
    }
    if (kind === "key" && policy.enabled && primary.record.key_id !== null) {
      // Another key of the same provider may work; without one the 401/403 is final.
      const provider = deps.config.providers[target.provider];
      refusedKeys.add(primary.record.key_id);
      const another = provider &&
        pickKey(provider.keys, target.model, deps.random, deps.state, deps.now(), refusedKeys);
      for (const s of settled) terminal(s, another ? "retry" : "final", `HTTP ${s.record.status}`);
      if (!another) break;
      continue;
    }
    const more = policy.enabled && index + settled.length < order.length;
    // The first candidate's retries, as without hedging: a hedged round that failed on both
    // sides retries it (hedged again), rather than giving up on retries a slow call spent.
    const budget = sameProviderRetries(
      kind,
      classes.get(primary)!,
      policy,
      on ? breaker.config : null,
      more,
      deps.config.providers[target.provider]?.max_retries,
    );
    if (retries < budget) {
      // A 429's Retry-After speaks for the key that was refused (it rests meanwhile): with
      // another key ready, only back off. A 5xx's speaks for the provider, whatever the key.
      const provider = deps.config.providers[target.provider];
      const otherKey = primary.record.status === 429 && provider !== undefined &&
        primary.record.key_id !== null &&
        hasReadyKey(provider.keys, target.model, deps.state, deps.now());
      const asked = otherKey ? null : retryAfterMs(err.info.headers?.["retry-after"], deps.now());
      const wait = Math.max(backoffMs(retries, policy, deps.random), asked ?? 0);
      // A provider that asks for a longer rest than the backoff's cap, with another one to
      // try: that one now, rather than the client waiting out this one's Retry-After.
      const outwaits = more && asked !== null && asked > policy.backoff.max;
      if (!outwaits && deps.now() + wait < deadline) {
        trail.retry(terminal(primary, "retry", reasonOf(err), wait), wait);
        // A hedge started beside it failed too: it is started again with the retry.
        for (const s of settled.slice(1)) terminal(s, "retry", reasonOf(s.error as GatewayError));
        retries++;
        if (!await pause(wait, req.signal)) break;
        continue;
      }
    }
    // Moving on only if there is somewhere to go: otherwise this failure is the answer (and a
    // passthrough reply it carries must reach the client intact).
    // A target this gateway cannot call at all (a provider the unified API cannot use, no
    // key allowed the model) says nothing of the request: the next one is tried.
    const unusable = settled.length === 1 && primary.record.no_call === true &&
      primary.admission !== "reject";
    // A provider whose own `models` leave the model out, reached down llm-gateway's chain
    // after an outage (the chain goes on under the same name): its 404 or 400 says only that,
    // so the chain goes on. Without an outage before it, its answer is the request's.
    const unlisted = kind === "final" && outage !== null &&
      (err.status === 404 || err.status === 400) && !listsModel(deps, target);
    const moveOn = more && (unusable || unlisted || (kind !== "final" && kind !== "key"));
    for (const s of settled) {
      terminal(s, moveOn ? "next" : "final", reasonOf(s.error as GatewayError));
    }
    if (!moveOn) break;
    index += settled.length;
    moveTo(target, index);
    retries = 0;
  }
  // Attempts left as "moved on" with nothing after them (the deadline or max_attempts ended the
  // request first) were the last: their failure is the answer.
  for (let i = attempts.length - 1; i >= 0 && attempts[i]!.outcome === "next"; i--) {
    attempts[i] = { ...attempts[i]!, outcome: "final" };
  }
  // Whatever the last failure said, nobody is there to hear it.
  if (req.signal.aborted) return exhausted(clientClosed(last), attempts, lastTarget);
  // llm-proxy's degraded signal: every candidate fast-failed, or the last failure says the
  // provider (not the caller) is the problem. Rate limits and client errors pass through.
  if (
    breaker.mode === "on" && !req.bypass && last &&
    (rejectedOnly || lastClass === "provider_degraded")
  ) {
    last.info.response?.body?.cancel().catch(() => {});
    return exhausted(breaker.degraded(lastTarget?.provider ?? "unknown"), attempts, lastTarget);
  }
  // The chain ended on a provider whose own `models` leave the model out (llm-gateway's
  // fallbackChain goes on under the same name): its 404 or 400 says only that, and the
  // client gets the outage that sent the request there (an SDK retries a 5xx, not a 404).
  if (
    outage !== null && last !== null && lastTarget !== undefined &&
    (last.status === 404 || last.status === 400) && !listsModel(deps, lastTarget)
  ) {
    last.info.response?.body?.cancel().catch(() => {});
    if (outage.cls === "provider_degraded" && breaker.mode === "on" && !req.bypass) {
      return exhausted(breaker.degraded(outage.target.provider), attempts, outage.target);
    }
    return exhausted(outage.error, attempts, outage.target);
  }
  // The chain ran out on a target it could not call: the answer is what the last provider
  // that was called said (an outage stays an outage, not the unusable target's 400).
  const endedUncalled = attempts.at(-1)?.no_call === true && lastCalled !== null;
  if (
    endedUncalled && lastCalled!.cls === "provider_degraded" && breaker.mode === "on" && !req.bypass
  ) {
    return exhausted(breaker.degraded(lastCalled!.target.provider), attempts, lastCalled!.target);
  }
  return exhausted(
    (endedUncalled ? lastCalled!.error : last) ??
      new GatewayError("upstream_timeout", `No attempt could start within the deadline`),
    attempts,
    endedUncalled ? lastCalled!.target : lastTarget,
  );
}

/** An upstream failure that says the provider is down, not that the request is wrong. */
function isOutage(err: GatewayError): boolean {
  const s = err.info.upstreamStatus ?? err.status;
  return s >= 500 || err.code === "upstream_timeout" || err.code === "upstream_unreachable";
}

/** Whether `target`'s provider lists its model, or lists none (it serves any). */
function listsModel(deps: FailoverDeps, target: Target): boolean {
  const models = deps.config.providers[target.provider]?.models ?? [];
  return models.length === 0 || models.includes(target.model);
}

/**
 * A client that left never sees an answer: its exchange ends as nginx's 499 (logged at info,
 * counted under 499), not as the failure it left during (a gated stream's cut, a backoff's 503).
 */
function clientClosed(last: GatewayError | null): GatewayError {
  if (last?.status === 499) return last;
  last?.info.response?.body?.cancel().catch(() => {});
  return new GatewayError("client_closed", "Client closed the request", {
    retryable: false,
    ...(last ? { cause: last } : {}),
  });
}

/**
 * The backoff before a retry: false when the client left meanwhile (no retry then, and the
 * failure so far is the answer nobody reads, never an error of the gateway's own).
 */
function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  return abortableSleep(ms, signal).then(() => true, () => false);
}

/** A failure pushes the target's latency EWMA up so least-latency prefers others. */
function penalty(deps: FailoverDeps, t: Target): number {
  const current = deps.state.latency(targetKey(t)) ?? 1_000;
  return Math.min(60_000, current * 2 + 1_000);
}

/** A configured key the provider refused rests; a client's own credential cools nothing. */
function coolKey(deps: FailoverDeps, s: Settled, err: GatewayError): void {
  const status = err.info.upstreamStatus;
  const keyId = s.record.key_id;
  if (keyId === null || status === undefined) return;
  const cfg = deps.config.routing.key_cooldown;
  const now = deps.now();
  if (status === 401 || status === 403) {
    deps.state.coolKey(keyId, { until: now + cfg.auth, reason: "auth", status });
  } else if (status === 429) {
    const wait = retryAfterMs(err.info.headers?.["retry-after"], now) ?? cfg.rate_limit;
    deps.state.coolKey(keyId, { until: now + wait, reason: "rate_limit", status });
  }
}

/** The held-back targets an answer came before, listed (no call) so the log shows them. */
function skipped(held: ReadonlySet<Target>, attempts: AttemptRecord[]): void {
  for (const t of held) {
    if (attempts.some((a) => a.provider === t.provider && a.model === t.model)) continue;
    attempts.push({
      provider: t.provider,
      model: t.model,
      key_id: null,
      status: null,
      duration_ms: 0,
      first_chunk_ms: null,
      usage: noUsage(),
      outcome: "skipped",
      reason: "circuit_open",
      no_call: true,
    });
  }
}

function reasonOf(err: GatewayError): string {
  return err.info.upstreamStatus !== undefined ? `HTTP ${err.info.upstreamStatus}` : err.code;
}
