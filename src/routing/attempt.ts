import type { ProviderConfig } from "../config/mod.ts";
import { GatewayError } from "../errors.ts";
import type { ChatOutcome, ProviderAdapter, RawOutcome } from "../providers/mod.ts";
import { peekFirstChunk } from "../streaming/peek.ts";
import { pickKey } from "./keys.ts";
import type { Target } from "./resolve.ts";
import type { RoutingState } from "./state.ts";
import type { Breaker } from "../breaker/mod.ts";
import type { Config } from "../config/mod.ts";

/** Anything an attempt can produce: translated chat/embeddings, or a raw passthrough reply. */
export type AttemptOutcome = ChatOutcome | RawOutcome;

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

/** The parts of a failover request one attempt needs. */
export interface AttemptRequest {
  readonly invoke: Invoke<AttemptOutcome>;
  readonly signal: AbortSignal;
  /**
   * The client's own credential, forwarded as is (native routes). When non-null no configured
   * key is chosen: a refusal cools none, and no key's model allowlist applies.
   */
  readonly clientAuthorization: string | null;
  /**
   * Unified routes: the client's credential, used only by providers that take it
   * (`credential_mode: passthrough`, or no configured keys); the others use their own keys.
   */
  readonly fallbackAuthorization?: string | null;
  readonly attemptTimeoutMs?: number;
  readonly bypass?: { readonly reason: string };
}

/** How one attempt (or a hedged pair's member) ended. */
export interface Settled {
  readonly target: Target;
  /** The breaker key (`provider:model`). */
  readonly key: string;
  /** What the breaker said before the call; `probe` is the key's half-open probe. */
  readonly admission: "allow" | "probe" | "reject";
  /** A test-mode failure that never reached the provider (not fed to the breaker). */
  readonly synthetic?: boolean;
  readonly ok: AttemptOutcome | null;
  readonly error: GatewayError | null;
  readonly record: Omit<AttemptRecord, "outcome" | "reason">;
}

/** One attempt against one target. Never throws: the outcome is data. */
export async function attempt(
  deps: FailoverDeps,
  req: AttemptRequest,
  target: Target,
  deadline: number,
  refusedKeys: ReadonlySet<string>,
  breakerKey: string,
  own?: AbortController,
): Promise<Settled> {
  const started = deps.now();
  const adapter = deps.adapters.get(target.provider);
  const provider = deps.config.providers[target.provider] as ProviderConfig | undefined;
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
  let clientAuthorization: string | null = req.clientAuthorization;
  if (clientAuthorization === null) {
    if (provider.credential_mode === "gateway" && provider.keys.length > 0) {
      const key = pickKey(
        provider.keys,
        target.model,
        deps.random,
        deps.state,
        started,
        refusedKeys,
      );
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
    } else {
      clientAuthorization = req.fallbackAuthorization ?? null;
    }
  }
  // The attempt's signal: the client leaving, or (hedged) losing the race.
  const signal = own ? AbortSignal.any([req.signal, own.signal]) : req.signal;
  const remaining = Math.max(1, deadline - started);
  try {
    const outcome = await req.invoke(adapter, {
      signal,
      timeoutMs: Math.min(req.attemptTimeoutMs ?? provider.timeout, remaining),
      apiKey,
      clientAuthorization,
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

/** Run the primary; start the secondary if the primary has not answered after `afterMs`. */
export async function hedge(
  deps: FailoverDeps,
  req: AttemptRequest,
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

/** llm-proxy's `force_transient_recover`: a degraded-looking failure that never left the sidecar. */
export function syntheticFailure(target: Target, key: string): Settled {
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

/** Time spent waiting on upstreams, ms: every attempt but hedge losers (they overlapped). */
export function upstreamTime(attempts: readonly AttemptRecord[]): number {
  let ms = 0;
  for (const a of attempts) if (a.outcome !== "cancelled") ms += a.duration_ms;
  return ms;
}
