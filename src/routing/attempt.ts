import type { ProviderConfig } from "../config/mod.ts";
import { GatewayError, tooDeep } from "../errors.ts";
import type { ChatOutcome, ProviderAdapter, RawOutcome, Usage } from "../providers/mod.ts";
import type { UpstreamTrace } from "../providers/execute.ts";
import { scheduleDeadline } from "../providers/deadline.ts";
import {
  type GateFormat,
  type GateSchedule,
  gateStream,
  noContentWithin,
} from "../streaming/gate.ts";
import { knownUsage, noUsage } from "../streaming/usage.ts";
import { modelInJsonHead, modelOfBody } from "../streaming/response_model.ts";
import { pickKey } from "./keys.ts";
import type { Target } from "./resolve.ts";
import type { RoutingState } from "./state.ts";
import type { Breaker } from "../breaker/mod.ts";
import type { Config } from "../config/mod.ts";

/** Anything an attempt can produce: translated chat/embeddings, or a raw passthrough reply. */
export type AttemptOutcome = ChatOutcome | RawOutcome;

/** One attempt as the exchange records it (the log and `x-pilotfish-attempts` read it). */
export interface AttemptRecord {
  readonly provider: string;
  readonly model: string;
  readonly key_id: string | null;
  readonly status: number | null;
  readonly duration_ms: number;
  /** When it started, on the run's clock: hedged attempts overlap (the overhead counts it once). */
  readonly started_ms?: number;
  /**
   * ok | retry (same provider) | next (moved on) | final | cancelled (lost a hedge race) |
   * skipped (its breaker was open, so it went last, and an earlier target answered)
   */
  readonly outcome: "ok" | "retry" | "next" | "final" | "cancelled" | "skipped";
  readonly reason?: string;
  /** A retry's backoff before the next attempt (Retry-After or jitter), ms. */
  readonly backoff_ms?: number;
  /**
   * No call was made: the breaker fast-failed it, or it failed before one (a provider not
   * configured, no key allowed for the model). Listed for the log; not an upstream call.
   */
  readonly no_call?: true;
  /** A call was tried but never left: the connection could not be made (refused, DNS, TLS). */
  readonly unsent?: true;
  /** Time from the attempt's start to its first stream chunk; null for buffered answers. */
  readonly first_chunk_ms: number | null;
  /**
   * The model the upstream says answered (`gen_ai.response.model`), where it was free to
   * read: a JSON answer's head or body, a stream's opening events. Absent on a native
   * passthrough reply, or when the answer did not name one.
   */
  readonly response_model?: string;
  /** The provider's own id of the call (its `requestIdHeader`), when it sent one. */
  readonly upstream_request_id?: string;
  /**
   * A native reply's `X-LLM-Input-Tokens`: the upstream's own count of the prompt, which
   * llm-proxy reconciles token limits with.
   */
  readonly reported_input_tokens?: number;
  /**
   * This attempt's own usage, settled per attempt: a finished hedge loser keeps its own, a
   * stream settles when it ends (or with what was streamed, when cut). Null for failures.
   */
  readonly usage: Promise<Usage | null>;
}

/**
 * What failover tells the exchange as it goes (telemetry). `NO_TRAIL` when nobody listens:
 * the loop calls these unconditionally.
 */
export interface AttemptTrail {
  /** Returns the W3C trace context to send upstream for this attempt, if traced. */
  attemptStart(target: Target): UpstreamTrace | undefined;
  /** `trace`: what `attemptStart` returned for this attempt (it names the attempt). */
  firstChunk(target: Target, ms: number, trace: UpstreamTrace | undefined): void;
  retry(attempt: AttemptRecord, waitMs: number): void;
  failover(from: Target, to: Target): void;
  hedge(primary: Target, secondary: Target): void;
  /** A breaker fast-fail, half-open probe or bypass (with the call's outcome class). */
  breakerDecision?(
    provider: string,
    model: string,
    decision: "fast_fail" | "probe" | "bypass",
    reason: string,
    outcome: string,
  ): void;
}

/** Upstream calls among `attempts` (what `x-pilotfish-attempts` says): fast-fails are none. */
export function callsMade(attempts: readonly AttemptRecord[]): number {
  let n = 0;
  for (const a of attempts) if (a.no_call !== true) n++;
  return n;
}

export const NO_TRAIL: AttemptTrail = {
  attemptStart() {
    return undefined;
  },
  firstChunk() {},
  retry() {},
  failover() {},
  hedge() {},
};

export interface FailoverDeps {
  readonly config: Config;
  readonly adapters: ReadonlyMap<string, ProviderAdapter>;
  readonly state: RoutingState;
  readonly random: () => number;
  readonly now: () => number;
  readonly redact: (text: string) => string;
  /** The circuit breaker (llm-proxy contract); a breaker in mode "off" when not configured. */
  readonly breaker?: Breaker;
  /** Telemetry for this run; nothing when absent. */
  readonly trail?: AttemptTrail;
}

/** What one attempt gets: its signal, its timeout and its credentials. */
export interface AttemptContext {
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
  readonly apiKey: string | null;
  readonly clientAuthorization: string | null;
  /** Given the reply's headers when they arrive: the attempt reads the provider's request id. */
  readonly onReply: ((headers: Headers) => void) | undefined;
  /** The W3C trace context to send upstream: the attempt's span, or the client's passed on. */
  readonly trace: UpstreamTrace | undefined;
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
  /**
   * The request's targets in order: the client's credential is for the first that takes it,
   * and goes only to targets on that one's origin (see `onCredentialHome`).
   */
  readonly targets?: readonly Target[];
  readonly attemptTimeoutMs?: number;
  readonly bypass?: { readonly reason: string };
  /** The stream gate's timers (see streaming/gate.ts); none when absent. */
  readonly streamGate?: StreamGateTimers;
  /**
   * The client's W3C trace context, sent on to each upstream when no tracer takes part (a
   * tracer replaces it with its attempt span's).
   */
  readonly clientTrace?: UpstreamTrace;
}

/** `first_chunk_timeout` / `stream_idle_timeout` of one request, and the clock they run on. */
export interface StreamGateTimers {
  readonly firstChunkMs?: number | undefined;
  /** `firstChunkMs` is the client's (`x-gateway.first_chunk_timeout`), not the config's. */
  readonly firstChunkFromClient?: boolean;
  readonly idleMs?: number | undefined;
  readonly schedule: GateSchedule;
  readonly now: () => number;
}

/** The part of a record known when an attempt settles (the loop adds outcome and reason). */
export type SettledRecord = Omit<AttemptRecord, "outcome" | "reason">;

/** How one attempt (or a hedged pair's member) ended. */
export type Settled =
  & {
    readonly target: Target;
    /** The breaker key (`provider:model`). */
    readonly key: string;
    /** What the breaker said before the call; `probe` is the key's half-open probe. */
    readonly admission: "allow" | "probe" | "reject";
    /** A test-mode failure that never reached the provider (not fed to the breaker). */
    readonly synthetic?: boolean;
    /** A hedged call cut because the other won while it was still out. */
    readonly hedgeLost?: boolean;
    readonly record: SettledRecord;
  }
  & (
    | { readonly ok: AttemptOutcome; readonly error: null }
    | { readonly ok: null; readonly error: GatewayError }
  );

/** The usage an outcome carries (a raw passthrough reply's is read later, by its relay). */
function usageOf(outcome: AttemptOutcome | null): Promise<Usage | null> {
  return outcome === null || outcome.kind === "raw" ? noUsage() : outcome.usage;
}

/** Never called: without timers the gate schedules nothing. */
const NO_SCHEDULE: GateSchedule = () => () => {};

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
  let firstChunk: number | null = null;
  let upstreamId: string | null = null;
  /** The status of the reply, once its headers came (a hedge's loser may be cut after). */
  let replied: number | null = null;
  let responseModel: string | undefined;
  /** How this attempt settled: an answer, or the error (one closure per attempt). */
  const settle = (
    ok: AttemptOutcome | null,
    error: GatewayError | null,
    status: number | null,
    noCall = false,
  ): Settled =>
    ({
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
        started_ms: started,
        first_chunk_ms: firstChunk,
        usage: ok !== null ? usageOf(ok) : knownUsage(error?.info.spent ?? null),
        ...(noCall ? { no_call: true as const } : {}),
        ...(error?.info.unsent === true ? { unsent: true as const } : {}),
        ...(upstreamId !== null ? { upstream_request_id: upstreamId } : {}),
        ...(responseModel !== undefined ? { response_model: responseModel } : {}),
      },
    }) as Settled;
  if (!adapter || !provider) {
    return settle(
      null,
      new GatewayError("not_found", `Unknown provider "${target.provider}"`),
      null,
      true,
    );
  }
  const breaker = deps.breaker;
  if (breaker !== undefined && breaker.mode !== "off" && !req.bypass) {
    const pending = breaker.admit(target.provider, breakerKey, started);
    // Closed and open keys decide without I/O: only a half-open key waits for its probe slot.
    const decision = pending instanceof Promise ? await pending : pending;
    if (decision.kind === "reject") {
      admission = "reject";
      return settle(null, breaker.degraded(target.provider), null, true);
    }
    admission = decision.kind;
  }
  let apiKey: string | null = null;
  let clientAuthorization: string | null = req.clientAuthorization;
  if (clientAuthorization === null) {
    // `passthrough` (or a keyless provider): the client's own credential. A client that sent
    // none (its pf_ app key is never one) gets a configured key, as on the native routes.
    const keyed = provider.keys.length > 0;
    const own = takesClientCredential(provider) && req.fallbackAuthorization &&
        onCredentialHome(deps.config.providers, req.targets, provider)
      ? req.fallbackAuthorization
      : null;
    if (own !== null || !keyed) {
      clientAuthorization = own;
    } else {
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
        return settle(null, e, null, true);
      }
      apiKey = key.key;
      keyId = key.id;
    }
  }
  // The attempt's signal: the client leaving, or (hedged) losing the race.
  const signal = own ? AbortSignal.any([req.signal, own.signal]) : req.signal;
  const remaining = Math.max(1, deadline - started);
  // x-gateway.timeout replaces the provider's own for this request (llm-gateway's meaning):
  // a caller that knows its call is long may wait longer than the configured timeout.
  const timeoutMs = Math.min(req.attemptTimeoutMs ?? provider.timeout, remaining);
  const gate = req.streamGate;
  // first_chunk_timeout runs from the attempt's start: an upstream that never even sends
  // its headers is cut by it too, not only by the (longer) provider timeout.
  const headersMs = gate?.firstChunkMs !== undefined && gate.firstChunkMs < timeoutMs
    ? Math.max(1, gate.firstChunkMs)
    : null;
  const traced = deps.trail?.attemptStart(target);
  const trace = traced ?? req.clientTrace;
  const idHeader = adapter.requestIdHeader;
  const onReply = idHeader === undefined ? undefined : (headers: Headers) => {
    upstreamId = headers.get(idHeader);
  };
  try {
    const call = () =>
      req.invoke(adapter, {
        signal,
        timeoutMs: headersMs ?? timeoutMs,
        apiKey,
        clientAuthorization,
        onReply,
        trace,
      }, target.model);
    // Traced: the upstream call inherits the attempt span's context (execute.ts sends it).
    let outcome: AttemptOutcome;
    try {
      outcome = await call();
    } catch (err) {
      if (headersMs === null || !(err instanceof GatewayError) || err.code !== "upstream_timeout") {
        throw err;
      }
      throw noContentWithin(target.provider, headersMs);
    }
    if (outcome.kind !== "stream") {
      if (outcome.kind === "json") {
        responseModel = outcome.format === "object"
          ? modelOfBody(outcome.body)
          : modelInJsonHead(outcome.body);
      }
      return settle(outcome, null, outcome.status);
    }
    replied = outcome.status;
    // The stream gate: nothing is committed before the first content arrived.
    const body = await gateStream<unknown>(
      outcome.body as ReadableStream<unknown>,
      outcome.format as GateFormat,
      {
        signal,
        provider: target.provider,
        schedule: gate?.schedule ?? NO_SCHEDULE,
        now: gate?.now ?? deps.now,
        firstChunkMs: gate?.firstChunkMs === undefined
          ? undefined
          : gate.firstChunkMs - (deps.now() - started),
        firstChunkSetMs: gate?.firstChunkMs,
        idleMs: gate?.idleMs,
        failure: "failure" in outcome ? outcome.failure : undefined,
        onModel: (model) => responseModel = model,
        deadline: {
          ms: Math.max(1, deadline - deps.now()),
          schedule: scheduleDeadline,
          error: () =>
            new GatewayError(
              "upstream_timeout",
              `Provider "${target.provider}" sent no stream data within ${remaining} ms`,
              { provider: target.provider },
            ),
        },
      },
    );
    firstChunk = deps.now() - started;
    deps.trail?.firstChunk(target, firstChunk, traced);
    // Same chunks (typed or bytes), the first one replayed: the outcome keeps its format.
    return settle({ ...outcome, body } as AttemptOutcome, null, outcome.status);
  } catch (err) {
    const ge = err instanceof GatewayError ? err : tooDeep(err) ?? new GatewayError(
      "upstream_error",
      `Provider "${target.provider}" failed: ${
        deps.redact(String((err as Error)?.message ?? err))
      }`,
      { provider: target.provider, retryable: true, upstreamStatus: 502 },
    );
    // Lost a hedge race, or the client left (or shutdown cut it): the status the upstream
    // gave before the cut (none if it had not answered), not the abort's own error.
    if (signal.aborted) return settle(null, ge, replied);
    // The client's own timeout ran out before the provider's would have.
    const clientCut = ge.code === "upstream_timeout" &&
      ((req.attemptTimeoutMs !== undefined && timeoutMs < provider.timeout) ||
        gate?.firstChunkFromClient === true);
    // The call's timer says which limit it was: the client's x-gateway.timeout, what was left
    // of routing.failover.deadline, or the provider's own timeout.
    const limit = ge.code === "upstream_timeout" && TIMER_MESSAGE.test(ge.message)
      ? req.attemptTimeoutMs !== undefined
        ? "x-gateway.timeout"
        : timeoutMs < provider.timeout
        ? "routing.failover.deadline"
        : `providers.${target.provider}.timeout`
      : null;
    const message = limit === null ? ge.message : `${ge.message} (${limit} ran out)`;
    const failed = clientCut || limit !== null
      ? new GatewayError(ge.code, message, {
        ...ge.info,
        ...(clientCut ? { clientLimit: true } : {}),
      })
      : ge;
    return settle(null, failed, ge.info.upstreamStatus ?? ge.status, refusedBeforeCall(ge));
  }
}

/** The per-call timer's own wording (providers/execute.ts, the mock), before a limit is named. */
const TIMER_MESSAGE = /did not answer within \d+ ms$/;

/** Failures of the call itself: an upstream was asked (or tried), so the attempt counts. */
const CALL_FAILURES: ReadonlySet<string> = new Set([
  "upstream_timeout",
  "upstream_unreachable",
  "upstream_error",
  "provider_degraded",
  // The client left while the call was out.
  "client_closed",
]);

/**
 * An error no upstream answered and no call failed with: the request was refused before it
 * left (a translation that cannot carry a field, missing credentials, an unknown
 * `previous_response_id`). Not an upstream call, so not counted in `x-pilotfish-attempts`.
 */
function refusedBeforeCall(e: GatewayError): boolean {
  return e.info.upstreamStatus === undefined && !CALL_FAILURES.has(e.code);
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
      first_chunk_ms: null,
      usage: noUsage(),
    },
  };
}

/**
 * Whether a unified route calls this provider with the client's own credential (when it sent
 * one): `credential_mode: passthrough`, or no configured keys. The cache keys such answers by
 * that credential.
 */
/**
 * Is `provider` where the client's credential belongs? A client sends one credential, for
 * the provider it asked for: the first of `targets` that takes one. Failover or a hedge to
 * another provider that takes the client's credential must not hand it to a third party (an
 * OpenAI key to another vendor's host): there it is sent only on the same origin (another
 * key set or region of the same service); elsewhere the client counts as having sent none.
 */
function onCredentialHome(
  providers: Readonly<Record<string, ProviderConfig>>,
  targets: readonly Target[] | undefined,
  provider: ProviderConfig,
): boolean {
  if (targets === undefined) return true;
  for (const t of targets) {
    const p = providers[t.provider];
    if (p !== undefined && takesClientCredential(p)) {
      return p === provider || originOf(p) === originOf(provider);
    }
  }
  return true;
}

/** A provider's origin (scheme, host, port); its name when its URL is not one (Bedrock's). */
function originOf(p: ProviderConfig): string {
  try {
    return new URL(p.base_url).origin;
  } catch {
    return `provider:${p.name}`;
  }
}

/**
 * `passthrough`, or no keys at all. Keys written as env vars left unset do not count as none:
 * the provider was meant to use the gateway's key, so a client's goes nowhere near it.
 */
export function takesClientCredential(
  provider: {
    readonly credential_mode: string;
    readonly keys: readonly unknown[];
    readonly keys_unset?: true;
  },
): boolean {
  return provider.credential_mode === "passthrough" ||
    (provider.keys.length === 0 && provider.keys_unset !== true);
}
