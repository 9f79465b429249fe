import type { Config, ModelRouteConfig, ProviderConfig } from "../config/mod.ts";
import { abortableSleep } from "../async.ts";
import { GatewayError } from "../errors.ts";
import type { ChatOutcome, ProviderAdapter, RawOutcome } from "../providers/mod.ts";

/** Anything an attempt can produce: translated chat/embeddings, or a raw passthrough reply. */
export type AttemptOutcome = ChatOutcome | RawOutcome;
import { peekFirstChunk } from "../streaming/peek.ts";
import { hasReadyKey, pickKey } from "./keys.ts";
import type { Target } from "./resolve.ts";
import { backoffMs, classifyFailure, type FailureKind, retryAfterMs } from "./retry.ts";
import type { RoutingState } from "./state.ts";
import { orderTargets, targetKey } from "./strategy.ts";
import { type Breaker, classifyOutcome, type OutcomeClass } from "../breaker/mod.ts";

/** One attempt as the access log and `x-pilotfish-attempts` report it (never the key). */
export interface AttemptRecord {
  readonly provider: string;
  readonly model: string;
  readonly key_id: string | null;
  readonly status: number | null;
  readonly duration_ms: number;
  /** ok | retry (same provider) | next (moved on) | final | cancelled (lost a hedge race) */
  readonly outcome: "ok" | "retry" | "next" | "final" | "cancelled";
  readonly reason?: string;
}

export interface FailoverDeps {
  readonly config: Config;
  readonly adapters: ReadonlyMap<string, ProviderAdapter>;
  readonly state: RoutingState;
  readonly random: () => number;
  readonly now: () => number;
  readonly redact: (text: string) => string;
  /** The circuit breaker (llm-proxy contract), when configured. */
  readonly breaker?: Breaker;
}

/** What one attempt gets: its signal, its timeout and its credentials. */
export interface AttemptContext {
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
  readonly apiKey: string | null;
  readonly clientAuthorization: string | null;
}

/** Runs the operation (chat, embeddings, a native call) against one provider. */
export type Invoke<O extends AttemptOutcome = ChatOutcome> = (
  adapter: ProviderAdapter,
  attempt: AttemptContext,
  model: string,
) => Promise<O>;

export interface FailoverRequest<O extends AttemptOutcome = ChatOutcome> {
  readonly requested: string;
  readonly targets: readonly Target[];
  readonly route: ModelRouteConfig | undefined;
  readonly invoke: Invoke<O>;
  readonly signal: AbortSignal;
  readonly clientAuthorization: string | null;
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

/** Thrown when every attempt failed; carries the last error and the attempt log. */
export class FailoverExhausted extends Error {
  override readonly name = "FailoverExhausted";
  constructor(readonly last: GatewayError, readonly attempts: readonly AttemptRecord[]) {
    super(last.message, { cause: last });
  }
}

interface Settled {
  readonly target: Target;
  /** The breaker key (`provider:model`) and whether this attempt was its half-open probe. */
  readonly key: string;
  readonly admission: "allow" | "probe" | "reject";
  /** A test-mode failure that never reached the provider (not fed to the breaker). */
  readonly synthetic?: boolean;
  readonly ok: AttemptOutcome | null;
  readonly error: GatewayError | null;
  readonly record: Omit<AttemptRecord, "outcome" | "reason">;
}

/**
 * Serve a chat request from an ordered list of targets: retry a retryable failure on the
 * same provider (backoff with full jitter, `Retry-After` honoured within the deadline),
 * then move on; move on at once after a connection failure or timeout; try another key
 * after 401/403; pass any other 4xx straight back. A stream counts as answered once its
 * first chunk arrived, so nothing is ever retried after a byte could have reached the
 * client. With `hedge_after`, a second target starts if the first has not answered in time;
 * the first to answer wins and the other is aborted.
 */
export async function executeWithFailover<O extends AttemptOutcome = ChatOutcome>(
  deps: FailoverDeps,
  req: FailoverRequest<O>,
): Promise<FailoverResult<O>> {
  const policy = deps.config.routing.failover;
  const started = deps.now();
  const deadline = started + req.deadlineMs;
  const breaker = deps.breaker?.mode === "off" ? undefined : deps.breaker;
  const keyOf = (t: Target) => breaker?.key(t.provider, t.model) ?? targetKey(t);
  if (breaker && req.testMode === "force_degraded") {
    throw new FailoverExhausted(breaker.degraded(req.targets[0]?.provider ?? "unknown"), []);
  }
  const order = orderTargets(
    req.targets,
    req.route,
    req.requested,
    deps.state,
    deps.random,
    breaker ? (t) => breaker.available(t.provider, keyOf(t), deps.now()) : undefined,
  );
  // Bypass is single-shot by contract: the caller gets exactly what one upstream call says.
  const maxAttempts = req.bypass ? 1 : policy.enabled ? policy.max_retries + 1 : 1;
  let injectTransient = breaker !== undefined && req.testMode === "force_transient_recover";
  let lastClass: OutcomeClass | null = null;
  const attempts: AttemptRecord[] = [];
  const refusedKeys = new Set<string>();
  let index = 0;
  let sameProviderRetries = 0;
  let last: GatewayError | null = null;
  let rejectedOnly = true;
  /** Calls actually made (breaker fast-fails are not attempts against the budget). */
  let made = 0;

  const record = (s: Settled, outcome: AttemptRecord["outcome"], reason?: string) =>
    attempts.push({ ...s.record, outcome, ...(reason ? { reason } : {}) });

  while (index < order.length && made < maxAttempts) {
    const target = order[index] as Target;
    const remaining = deadline - deps.now();
    if (remaining <= 0) break;

    const hedgeWith = req.route?.hedge_after !== undefined && sameProviderRetries === 0 &&
        made + 1 < maxAttempts
      ? order[index + 1]
      : undefined;
    let settled: Settled[];
    if (injectTransient) {
      // Test mode: the first attempt fails as if the provider were degraded, without a call
      // upstream and without feeding the breaker; the retry loop then runs for real.
      injectTransient = false;
      settled = [syntheticFailure(target, keyOf(target))];
    } else {
      settled = hedgeWith
        ? await hedge(
          deps,
          req,
          target,
          hedgeWith,
          req.route!.hedge_after!,
          deadline,
          refusedKeys,
          keyOf,
        )
        : [await attempt(deps, req, target, deadline, refusedKeys, keyOf(target))];
    }

    // Fast-failed by the breaker: no call was made; the next candidate is tried at once.
    if (settled.every((s) => s.admission === "reject")) {
      for (const s of settled) {
        attempts.push({ ...s.record, outcome: "next", reason: reasonOf(s.error!) });
        lastClass = "provider_degraded";
        last = s.error;
      }
      index += settled.length;
      sameProviderRetries = 0;
      continue;
    }
    rejectedOnly = false;
    made += settled.length;

    const winner = settled.find((s) => s.ok !== null);
    if (winner) {
      for (const s of settled) {
        record(s, s === winner ? "ok" : "cancelled", s === winner ? undefined : "hedge lost");
      }
      feed(breaker, deps, winner, "success", true, req);
      deps.state.observeLatency(targetKey(winner.target), winner.record.duration_ms);
      // The outcome came from req.invoke, so it is an O (Settled is not generic to stay simple).
      return { outcome: winner.ok as O, target: winner.target, attempts };
    }

    // Everything started this round failed; decide from the primary's failure.
    let kind: FailureKind = "final";
    const classes = new Map<Settled, OutcomeClass>();
    for (const s of settled) {
      const err = s.error as GatewayError;
      last = err;
      kind = classifyFailure(err, policy);
      const cls = classOf(deps, breaker, s, err);
      classes.set(s, cls);
      lastClass = cls;
      deps.state.observeLatency(targetKey(s.target), penalty(deps, s.target));
      coolKey(deps, s, err);
    }
    const primary = settled[0] as Settled;
    const err = primary.error as GatewayError;
    const terminal = (s: Settled, outcome: AttemptRecord["outcome"], reason?: string) => {
      record(s, outcome, reason);
      feed(breaker, deps, s, classes.get(s)!, outcome !== "retry", req);
      // A passthrough reply that will not be relayed must not hold its connection open.
      if (outcome !== "final") s.error?.info.response?.body?.cancel().catch(() => {});
    };
    if (!policy.enabled || kind === "final" || made >= maxAttempts) {
      for (const s of settled) terminal(s, "final", s.error?.message);
      break;
    }
    if (kind === "key") {
      // Another key of the same provider may work; without one the 401/403 is final.
      const provider = deps.config.providers[target.provider];
      if (primary.record.key_id) refusedKeys.add(primary.record.key_id);
      const another = provider &&
        pickKey(provider.keys, target.model, deps.random, deps.state, deps.now(), refusedKeys);
      for (const s of settled) terminal(s, another ? "retry" : "final", `HTTP ${s.record.status}`);
      if (!another) break;
      continue;
    }
    const hedged = settled.length > 1;
    const canRetrySame = kind === "retryable" && !hedged &&
      sameProviderRetries < retriesAllowed(policy, breaker, classes.get(primary)!);
    if (canRetrySame) {
      // Retry-After speaks for the key that was refused: with another key ready, only back off.
      const provider = deps.config.providers[target.provider];
      const otherKey = provider !== undefined && primary.record.key_id !== null &&
        hasReadyKey(provider.keys, target.model, deps.state, deps.now());
      const wait = Math.max(
        backoffMs(sameProviderRetries, policy, deps.random),
        otherKey ? 0 : retryAfterMs(err.info.headers?.["retry-after"], deps.now()) ?? 0,
      );
      if (deps.now() + wait < deadline) {
        terminal(primary, "retry", reasonOf(err));
        sameProviderRetries++;
        await abortableSleep(wait, req.signal);
        continue;
      }
    }
    // Moving on only if there is somewhere to go: otherwise this failure is the answer (and a
    // passthrough reply it carries must reach the client intact).
    const more = index + settled.length < order.length && made < maxAttempts;
    for (const s of settled) {
      terminal(s, more ? "next" : "final", reasonOf(s.error as GatewayError));
    }
    index += settled.length;
    sameProviderRetries = 0;
  }
  // llm-proxy's degraded signal: every candidate fast-failed, or the last failure says the
  // provider (not the caller) is the problem. Rate limits and client errors pass through.
  if (
    breaker?.mode === "on" && !req.bypass && last &&
    (rejectedOnly || lastClass === "provider_degraded")
  ) {
    last.info.response?.body?.cancel().catch(() => {});
    throw new FailoverExhausted(breaker.degraded(attempts.at(-1)?.provider ?? "unknown"), attempts);
  }
  throw new FailoverExhausted(
    last ?? new GatewayError("upstream_timeout", `No attempt could start within the deadline`),
    attempts,
  );
}

/** llm-proxy's retry budgets when the breaker is on; the routing policy's otherwise. */
function retriesAllowed(
  policy: FailoverDeps["config"]["routing"]["failover"],
  breaker: Breaker | undefined,
  cls: OutcomeClass,
): number {
  if (!breaker) return policy.retries_per_provider;
  if (cls === "provider_degraded") return breaker.config.max_transient_retries;
  if (cls === "localized_rate_limit" || cls === "global_rate_limit") {
    return breaker.config.max_rate_limit_retries;
  }
  return 0;
}

/** The outcome class of a failed attempt, escalating a sustained global rate limit. */
function classOf(
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
function feed(
  breaker: Breaker | undefined,
  deps: FailoverDeps,
  s: Settled,
  cls: OutcomeClass,
  terminal: boolean,
  req: FailoverRequest<AttemptOutcome>,
): void {
  if (!breaker || s.admission === "reject" || s.synthetic) return;
  const counts = terminal || breaker.config.retry_contribution_mode === "on";
  breaker.record(s.target.provider, s.key, cls, {
    probe: s.admission === "probe",
    bypass: req.bypass?.reason ?? null,
    counts,
  }, deps.now());
}

function syntheticFailure(target: Target, key: string): Settled {
  return {
    target,
    key,
    admission: "allow",
    synthetic: true,
    ok: null,
    error: new GatewayError("upstream_error", "Test mode: simulated transient failure", {
      provider: target.provider,
      upstreamStatus: 503,
      status: 503,
    }),
    record: {
      provider: target.provider,
      model: target.model,
      key_id: null,
      status: 503,
      duration_ms: 0,
    },
  };
}

/** Run the primary; start the secondary if the primary has not answered after `afterMs`. */
async function hedge(
  deps: FailoverDeps,
  req: FailoverRequest<AttemptOutcome>,
  primary: Target,
  secondary: Target,
  afterMs: number,
  deadline: number,
  refusedKeys: Set<string>,
  keyOf: (t: Target) => string,
): Promise<Settled[]> {
  const controllers = [new AbortController(), new AbortController()];
  const runs: Promise<Settled>[] = [
    attempt(deps, req, primary, deadline, refusedKeys, keyOf(primary), controllers[0]),
  ];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const startSecond = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, afterMs);
  });
  const first = await Promise.race([
    runs[0]!.then(() => "done" as const),
    startSecond.then(() => "hedge" as const),
  ]);
  clearTimeout(timer);
  if (first === "done") {
    const s = await runs[0]!;
    // Failed fast: no hedge, the caller's loop decides (retry or move on).
    return [s];
  }
  runs.push(
    attempt(deps, req, secondary, deadline, refusedKeys, keyOf(secondary), controllers[1]),
  );
  // First success wins; the loser is aborted (its upstream request is cancelled).
  const winner = await new Promise<number | null>((resolve) => {
    let failed = 0;
    runs.forEach((run, i) =>
      run.then((s) => {
        if (s.ok !== null) resolve(i);
        else if (++failed === runs.length) resolve(null);
      })
    );
  });
  if (winner !== null) {
    controllers[1 - winner]!.abort(new GatewayError("upstream_error", "Hedge lost"));
  }
  const settled = await Promise.all(runs);
  // Both may have answered at once: the loser's stream must not hold its connection open.
  settled.forEach((s, i) => {
    if (i !== winner && s.ok?.kind === "stream") s.ok.body.cancel().catch(() => {});
  });
  return settled;
}

/** One attempt against one target. Never throws: the outcome is data. */
async function attempt(
  deps: FailoverDeps,
  req: FailoverRequest<AttemptOutcome>,
  target: Target,
  deadline: number,
  refusedKeys: ReadonlySet<string>,
  breakerKey: string,
  own?: AbortController,
): Promise<Settled> {
  const started = deps.now();
  const adapter = deps.adapters.get(target.provider);
  const provider = deps.config.providers[target.provider] as ProviderConfig;
  let keyId: string | null = null;
  let admission: Settled["admission"] = "allow";
  const settle = (
    ok: AttemptOutcome | null,
    error: GatewayError | null,
    status: number | null,
  ): Settled => ({
    target,
    key: breakerKey,
    admission,
    ok,
    error,
    record: {
      provider: target.provider,
      model: target.model,
      key_id: keyId,
      status,
      duration_ms: deps.now() - started,
    },
  });
  if (!adapter || !provider) {
    const e = new GatewayError("not_found", `Unknown provider "${target.provider}"`);
    return settle(null, e, null);
  }
  const breaker = deps.breaker;
  if (breaker && breaker.mode !== "off" && !req.bypass) {
    const decision = await breaker.admit(target.provider, breakerKey, started);
    if (decision.kind === "reject") {
      admission = "reject";
      return settle(null, breaker.degraded(target.provider), null);
    }
    admission = decision.kind;
  }
  let apiKey: string | null = null;
  if (provider.credential_mode === "gateway" && provider.keys.length > 0) {
    const key = pickKey(provider.keys, target.model, deps.random, deps.state, started, refusedKeys);
    if (!key) {
      const e = new GatewayError(
        "not_found",
        `No key of provider "${target.provider}" is allowed to use model "${target.model}"`,
        { param: "model", provider: target.provider },
      );
      return settle(null, e, null);
    }
    apiKey = key.key;
    keyId = key.id;
  }
  // The attempt's signal: the client leaving, or (hedged) losing the race.
  const signal = own ? AbortSignal.any([req.signal, own.signal]) : req.signal;
  const remaining = Math.max(1, deadline - started);
  try {
    const outcome = await req.invoke(adapter, {
      signal,
      timeoutMs: Math.min(req.attemptTimeoutMs ?? provider.timeout, remaining),
      apiKey,
      clientAuthorization: apiKey === null ? req.clientAuthorization : null,
    }, target.model);
    if (outcome.kind !== "stream") return settle(outcome, null, outcome.status);
    const timer = new AbortController();
    const t = setTimeout(() =>
      timer.abort(
        new GatewayError(
          "upstream_timeout",
          `Provider "${target.provider}" sent no stream data within ${remaining} ms`,
          { provider: target.provider },
        ),
      ), Math.max(1, deadline - deps.now()));
    try {
      const body = await peekFirstChunk(outcome.body, AbortSignal.any([signal, timer.signal]));
      return settle({ ...outcome, body }, null, outcome.status);
    } finally {
      clearTimeout(t);
    }
  } catch (err) {
    const ge = err instanceof GatewayError ? err : new GatewayError(
      "upstream_error",
      `Provider "${target.provider}" failed: ${
        deps.redact(String((err as Error)?.message ?? err))
      }`,
      { provider: target.provider, retryable: true, upstreamStatus: 502 },
    );
    return settle(null, ge, ge.info.upstreamStatus ?? ge.status);
  }
}

/** A failure pushes the target's latency EWMA up so least-latency prefers others. */
function penalty(deps: FailoverDeps, t: Target): number {
  const current = deps.state.latency(targetKey(t)) ?? 1_000;
  return Math.min(60_000, current * 2 + 1_000);
}

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

function reasonOf(err: GatewayError): string {
  return err.info.upstreamStatus !== undefined ? `HTTP ${err.info.upstreamStatus}` : err.code;
}
