/**
 * The exchange runner: what every route calls between decoding its request and sending the
 * answer. The path (docs/ARCHITECTURE.md): `pre_http` -> decode -> resolve -> `pre_llm` ->
 * failover (attempts -> adapter) -> `post_llm` (+ `stream_chunk`) -> encode -> `post_http`.
 * With no stage configured for a hook, that step costs a length check.
 * @module
 */
import type { ModelRouteConfig } from "../config/mod.ts";
import { GatewayError, toGatewayError } from "../errors.ts";
import type { ChatOutcome, ProviderAdapter } from "../providers/types.ts";
import type { UpstreamTrace } from "../providers/execute.ts";
import { decodeJson, decodeStream } from "../providers/wire.ts";
import {
  type AttemptContext,
  attemptHeaders,
  type AttemptTrail,
  callsMade,
  type FailoverRun,
  type Invoke,
  pilotfishHeaders,
  type Resolution,
  resolveModel,
  runFailover,
  type Target,
} from "../routing/mod.ts";
import type { AttemptOutcome, StreamGateTimers } from "../routing/attempt.ts";
import { readRequestFlags } from "../breaker/mod.ts";
import type { GatewayOptions } from "../schema/gateway.ts";
import { explainTimeout, withinWrite } from "../server/middleware/timeouts.ts";
import { errorResponse, routedHeaders } from "./encode/error.ts";
import { decodeContext } from "./encode/openai.ts";
import { clientCredential, type Exchange, noteAttempts, withReplyHeaders } from "./exchange.ts";
import { dropUserAppKeys } from "../keys/key.ts";
import {
  applicable,
  callHook,
  chunkStages,
  chunkStagesFor,
  type HttpRequestView,
  type HttpResponseView,
  type LlmRequestView,
  type LlmResponseView,
  type MaybePromise,
  type PostLlmResult,
  type PreHttpResult,
  type PreLlmResult,
  rejection,
  type Respond,
  SKIPPED,
  type Stage,
} from "./stages.ts";
import { wholeResponse } from "../server/whole.ts";

/** What a unified route tells the runner about its API. */
export interface UnifiedRoute {
  readonly schema: "openai_chat" | "anthropic_messages" | "embeddings" | "responses";
  /**
   * Validate the JSON body (after `pre_http`) into `ex.request` and `ex.stream`; a route
   * that must look something up first (a stored conversation) answers with a promise.
   */
  decode(
    ex: Exchange,
    raw: unknown,
  ): Decoded | Promise<Decoded>;
  /** The request in canonical form, for `pre_llm`. */
  view(ex: Exchange): LlmRequestView;
  /** A `pre_llm` rewrite, validated like a client's body (400 naming the field). */
  rewrite(ex: Exchange, body: unknown): void;
  /** The model the (possibly rewritten) request asks for. */
  model(ex: Exchange): string;
  /** The candidates able to serve this API (chat-only providers cannot embed). */
  candidates?(ex: Exchange, resolved: Resolution): Target[];
  /** One attempt against one provider. */
  invoke(ex: Exchange): Invoke<ChatOutcome>;
  /** The winner's answer in the route's format. */
  encode(ex: Exchange, outcome: ChatOutcome, headers: Record<string, string>): Response;
}

/** What decoding tells the runner: the model asked for and the `x-gateway` options. */
export interface Decoded {
  model: string;
  gateway: GatewayOptions;
}

/** How far each pre phase got: post hooks run only for stages that were reached. */
interface Reached {
  http: number;
  llm: number;
}

/**
 * Run one unified exchange from the JSON body the route read. Errors are thrown for the
 * error handler to render in the route's format, unless a `post_http` stage must see the
 * response (then they are rendered here).
 */
export async function runExchange(
  ex: Exchange,
  route: UnifiedRoute,
  raw: unknown,
  signal: AbortSignal,
): Promise<Response> {
  ex.schema = route.schema;
  const stages = ex.runtime.stages;
  const reached: Reached = { http: stages.all.length, llm: stages.all.length };
  if (stages.post_http.length === 0) return await unified(ex, route, raw, signal, reached);
  let response: Response;
  try {
    response = await unified(ex, route, raw, signal, reached);
  } catch (err) {
    response = renderHere(ex, err);
  }
  return postHttp(ex, response, reached.http);
}

async function unified(
  ex: Exchange,
  route: UnifiedRoute,
  raw: unknown,
  signal: AbortSignal,
  reached: Reached,
): Promise<Response> {
  const rt = ex.runtime;
  const stages = rt.stages;
  dropUserAppKeys(raw);
  if (stages.pre_http.length > 0) {
    const pending = preHttp(ex, raw, reached);
    const pre = pending instanceof Promise ? await pending : pending;
    if (pre.response) return pre.response;
    raw = pre.body;
  }
  const decoded = route.decode(ex, raw);
  const { model, gateway } = decoded instanceof Promise ? await decoded : decoded;
  ex.gateway = gateway;
  ex.model = model;
  let resolved = resolveModel(rt.config, model, gateway.provider);
  ex.targets = route.candidates?.(ex, resolved) ?? resolved.targets;
  if (stages.pre_llm.length > 0) {
    const pending = preLlm(
      ex,
      route.view(ex),
      reached,
      (body) => route.rewrite(ex, body),
      (outcome, headers) => route.encode(ex, outcome, headers),
    );
    const pre = pending instanceof Promise ? await pending : pending;
    if (pre.response) return pre.response;
    const now = route.model(ex);
    // The stage chose another model: routing follows it. Writing the routed target's own
    // name for the model (`gpt-4o-mini` for `openai/gpt-4o-mini`, as a Butter plugin sees
    // it) keeps the route.
    if (pre.rewritten && now !== model && now !== ex.targets[0]?.model) {
      resolved = resolveModel(rt.config, now, gateway.provider);
      ex.targets = route.candidates?.(ex, resolved) ?? resolved.targets;
      ex.model = now;
    }
  }
  const run = await failover(ex, route.model(ex), resolved.route, route.invoke(ex), signal);
  noteAttempts(ex, run.attempts, run.target);
  if (!run.ok) throw explainTimeout(ex.deadlines, run.error);
  let outcome = run.outcome;
  if (stages.post_llm.length > 0) {
    const pending = postLlm(ex, outcome, reached.llm);
    outcome = pending instanceof Promise ? await pending : pending;
  }
  if (outcome.kind === "stream") outcome = streamChunks(ex, outcome);
  return route.encode(
    ex,
    outcome,
    withReplyHeaders(ex, attemptHeaders(run.target, callsMade(run.attempts))),
  );
}

/** Failover with the caller's budget, switches and telemetry. */
export function failover<O extends AttemptOutcome>(
  ex: Exchange,
  requested: string,
  route: ModelRouteConfig | undefined,
  invoke: Invoke<O>,
  signal: AbortSignal,
  opts: { clientAuthorization?: string | null; deadlineMs?: number } = {},
): Promise<FailoverRun<O>> {
  const rt = ex.runtime;
  const cb = rt.config.features.circuit_breaker;
  // The switches only mean something with the breaker on: skip the query parse otherwise.
  const flags = cb.enabled
    ? readRequestFlags(
      (name) => ex.headers.get(name),
      new URLSearchParams(ex.search),
      cb,
      ex.runtime.redactError?.holds,
    )
    : {};
  const timeout = ex.gateway.timeout;
  const trail = trailOf(ex);
  // The budget counts from the request's arrival ("deadline bounds the whole request"): time
  // already spent in stages (a wait for an identical request's cached answer) is not given
  // again, and once it is all spent no upstream call starts.
  const left = opts.deadlineMs ??
    (timeout !== undefined ? timeout * 1000 : rt.config.routing.failover.deadline) -
      (ex.clock.now() - ex.started);
  if (left <= 0) {
    throw new GatewayError("upstream_timeout", "No attempt could start within the deadline");
  }
  const budget = Math.max(1, Math.round(left));
  return runFailover({
    config: rt.config,
    adapters: rt.adapters,
    state: rt.routing,
    random: rt.random,
    now: rt.now,
    redact: rt.redact,
    breaker: rt.breaker,
    ...(trail ? { trail } : {}),
  }, {
    requested,
    targets: ex.targets,
    route,
    invoke,
    signal,
    // Configured keys first: the client's credential only reaches providers that take it.
    clientAuthorization: opts.clientAuthorization ?? null,
    ...(opts.clientAuthorization === undefined
      ? { fallbackAuthorization: clientCredential(ex.headers) }
      : {}),
    // x-gateway.timeout is the caller's whole budget: it bounds every attempt too. What is
    // left of server.write_timeout bounds both as well; the smallest wins.
    deadlineMs: withinWrite(ex.deadlines, budget),
    ...(timeout !== undefined ? { attemptTimeoutMs: timeout * 1000 } : {}),
    ...streamGate(ex, route),
    ...(flags.bypass ? { bypass: flags.bypass } : {}),
    ...(flags.testMode ? { testMode: flags.testMode } : {}),
    ...clientTraceOf(ex),
  });
}

/**
 * The client's trace context, sent upstream as it came when no tracer takes part (W3C Trace
 * Context: an intermediary that does not trace passes it on); a tracer's attempt span
 * replaces it.
 */
function clientTraceOf(ex: Exchange): { clientTrace?: UpstreamTrace } {
  const { traceparent, tracestate } = ex.trace;
  if (traceparent === null) return {};
  return { clientTrace: tracestate === null ? { traceparent } : { traceparent, tracestate } };
}

/**
 * The stream gate's timers, most specific first: `x-gateway` (seconds), the model's route,
 * `routing.failover`. Nothing when none is set (the gate then only waits for content).
 */
function streamGate(
  ex: Exchange,
  route: ModelRouteConfig | undefined,
): { streamGate?: StreamGateTimers } {
  if (!ex.stream) return {};
  const policy = ex.runtime.config.routing.failover;
  const g = ex.gateway;
  const firstChunkMs = g.first_chunk_timeout !== undefined
    ? g.first_chunk_timeout * 1000
    : route?.first_chunk_timeout ?? policy.first_chunk_timeout;
  const idleMs = g.stream_idle_timeout !== undefined
    ? g.stream_idle_timeout * 1000
    : route?.stream_idle_timeout ?? policy.stream_idle_timeout;
  if (firstChunkMs === undefined && idleMs === undefined) return {};
  const rt = ex.runtime;
  const fromClient = g.first_chunk_timeout !== undefined;
  return {
    streamGate: {
      firstChunkMs,
      idleMs,
      schedule: rt.schedule,
      now: rt.now,
      ...(fromClient ? { firstChunkFromClient: true } : {}),
    },
  };
}

/** Failover's telemetry as events, or nothing when nobody listens to them. */
export function trailOf(ex: Exchange): AttemptTrail | undefined {
  const bus = ex.runtime.events;
  const on = bus.on;
  if (
    !(on.attempt_start || on.first_chunk || on.retry || on.failover || on.hedge ||
      on.breaker_decision)
  ) {
    return undefined;
  }
  return {
    attemptStart(target) {
      if (!on.attempt_start) return undefined;
      const propagate: { traceparent?: string; tracestate?: string } = {};
      bus.emit({ type: "attempt_start", exchange: ex, target, propagate });
      return propagate.traceparent === undefined ? undefined : propagate as UpstreamTrace;
    },
    firstChunk(target, ms, trace) {
      if (!on.first_chunk) return;
      bus.emit({
        type: "first_chunk",
        exchange: ex,
        target,
        ms,
        ...(trace !== undefined ? { traceparent: trace.traceparent } : {}),
      });
    },
    retry(attempt, wait) {
      if (on.retry) bus.emit({ type: "retry", exchange: ex, attempt, wait_ms: wait });
    },
    failover(from, to) {
      if (on.failover) bus.emit({ type: "failover", exchange: ex, from, to });
    },
    hedge(primary, secondary) {
      if (on.hedge) bus.emit({ type: "hedge", exchange: ex, primary, secondary });
    },
    breakerDecision(provider, model, decision, reason, outcome) {
      if (!on.breaker_decision) return;
      bus.emit({
        type: "breaker_decision",
        exchange: ex,
        provider,
        model,
        decision,
        reason,
        outcome,
      });
    },
  };
}

// ---- hooks ---------------------------------------------------------------------------------

/** The stages in `list` at positions before `reached` (their pre phase ran). */
function entered(ex: Exchange, list: readonly Stage[], reached: number): readonly Stage[] {
  const all = ex.runtime.stages.all;
  const mine = applicable(list, ex);
  return reached >= all.length ? mine : mine.filter((s) => all.indexOf(s) < reached);
}

/** The route's edge encoder, for a stage that answers with a typed outcome (a cache hit). */
type Encode = (outcome: ChatOutcome, headers: Record<string, string>) => Response;

/** What the pre phases leave: the (possibly rewritten) input, or the answer that ended them. */
interface PreHttpDone {
  body: unknown;
  response?: Response;
}

interface PreLlmDone {
  rewritten: boolean;
  response?: Response;
}

/**
 * `pre_http` of every stage in order. `body` is what the route read (JSON, or passthrough
 * bytes). A respond or reject ends the chain there; `reached.http` remembers where.
 * Synchronous while every hook is: a chain of synchronous stages costs no promise.
 */
export function preHttp(
  ex: Exchange,
  body: unknown,
  reached: Reached,
): MaybePromise<PreHttpDone> {
  return preHttpFrom(ex, applicable(ex.runtime.stages.pre_http, ex), 0, { body }, reached);
}

function preHttpFrom(
  ex: Exchange,
  list: readonly Stage[],
  from: number,
  done: PreHttpDone,
  reached: Reached,
): MaybePromise<PreHttpDone> {
  for (let i = from; i < list.length; i++) {
    const stage = list[i] as Stage;
    const view = new HttpView(ex, done.body);
    const pending = callHook(ex, stage, "pre_http", view);
    if (pending instanceof Promise) {
      return pending.then((r) =>
        applyPreHttp(ex, stage, r, done, reached)
          ? done
          : preHttpFrom(ex, list, i + 1, done, reached)
      );
    }
    if (applyPreHttp(ex, stage, pending, done, reached)) return done;
  }
  return done;
}

/** One stage's `pre_http` answer applied; true when it ended the chain. */
function applyPreHttp(
  ex: Exchange,
  stage: Stage,
  r: PreHttpResult | typeof SKIPPED,
  done: PreHttpDone,
  reached: Reached,
): boolean {
  if (r === SKIPPED || r === undefined || r.action === "continue") return false;
  if (r.action === "rewrite") {
    if (r.headers !== undefined) ex.headers = new Headers(r.headers);
    if ("body" in r) done.body = r.body;
    return false;
  }
  reached.http = ex.runtime.stages.all.indexOf(stage) + 1;
  reached.llm = 0;
  done.response = shortCircuit(ex, stage, "pre_http", r);
  return true;
}

/**
 * What `pre_http` sees. A class, so every view has one shape and the getter lives on the
 * prototype; the headers are copied only if the stage reads them.
 */
class HttpView implements HttpRequestView {
  readonly method: string;
  readonly path: string;
  readonly body: unknown;
  #ex: Exchange;
  #headers: Headers | undefined = undefined;
  constructor(ex: Exchange, body: unknown) {
    this.#ex = ex;
    this.method = ex.method;
    this.path = ex.path;
    this.body = body;
  }
  get headers(): Headers {
    return this.#headers ??= new Headers(this.#ex.headers);
  }
}

/** `pre_llm` of every stage in order, over the canonical request (synchronous while it can). */
export function preLlm(
  ex: Exchange,
  view: LlmRequestView,
  reached: Reached,
  apply: (body: unknown) => void,
  encode?: Encode,
): MaybePromise<PreLlmDone> {
  const list = applicable(ex.runtime.stages.pre_llm, ex);
  return preLlmFrom(ex, list, 0, view, { rewritten: false }, reached, apply, encode);
}

function preLlmFrom(
  ex: Exchange,
  list: readonly Stage[],
  from: number,
  view: LlmRequestView,
  done: PreLlmDone,
  reached: Reached,
  apply: (body: unknown) => void,
  encode: Encode | undefined,
): MaybePromise<PreLlmDone> {
  for (let i = from; i < list.length; i++) {
    const stage = list[i] as Stage;
    const current = view;
    const pending = callHook(ex, stage, "pre_llm", current);
    const step = (r: PreLlmResult | typeof SKIPPED): LlmRequestView | null => {
      if (r === SKIPPED || r === undefined || r.action === "continue") return current;
      if (r.action === "rewrite") {
        apply(r.body);
        done.rewritten = true;
        return { ...current, body: r.body } as LlmRequestView;
      }
      reached.llm = ex.runtime.stages.all.indexOf(stage) + 1;
      done.response = shortCircuit(ex, stage, "pre_llm", r, encode);
      return null;
    };
    if (pending instanceof Promise) {
      return pending.then((r) => {
        const next = step(r);
        return next === null
          ? done
          : preLlmFrom(ex, list, i + 1, next, done, reached, apply, encode);
      });
    }
    const next = step(pending);
    if (next === null) return done;
    view = next;
  }
  return done;
}

/** A stage's respond (a JSON answer) or reject (thrown, rendered in the route's format). */
function shortCircuit(
  ex: Exchange,
  stage: Stage,
  hook: string,
  r: Respond | { action: "reject"; status: number; message: string },
  encode?: Encode,
): Response {
  const bus = ex.runtime.events;
  const err = r.action === "reject" ? rejection(stage, r) : null;
  if (bus.on.short_circuit) {
    bus.emit({
      type: "short_circuit",
      exchange: ex,
      stage: stage.name,
      hook,
      action: r.action,
      status: err?.status ?? (r as Respond).status,
    });
  }
  if (err !== null) throw err;
  const respond = r as Respond;
  if (respond.outcome !== undefined && encode !== undefined) {
    return encode(respond.outcome, { ...respond.headers, ...ex.replyHeaders });
  }
  const status = Number.isInteger(respond.status) && respond.status >= 200 &&
      respond.status <= 599
    ? respond.status
    : 200;
  // As a rejection does, the answer names the provider routed to when there is one (a
  // native route's own provider included).
  const routed = ex.provider === undefined
    ? routedHeaders(ex)
    : pilotfishHeaders(ex.provider, ex.model, callsMade(ex.attempts));
  if (NULL_BODY_STATUSES.has(status)) {
    // A Response with one of these statuses cannot carry a body (it throws).
    ex.wholeBody = "";
    return new Response(null, {
      status,
      headers: { ...routed, ...respond.headers, ...ex.replyHeaders },
    });
  }
  const text = typeof respond.body === "string" ? respond.body : JSON.stringify(respond.body);
  return wholeResponse(ex, text, status, {
    "content-type": "application/json",
    ...routed,
    ...respond.headers,
    ...ex.replyHeaders,
  });
}

/** Statuses whose response has no body (Fetch's "null body status", 101 and 103 aside). */
const NULL_BODY_STATUSES: ReadonlySet<number> = new Set([204, 205, 304]);

/**
 * `post_llm` in reverse order for the stages reached. A JSON answer is shown canonical
 * (decoded if it came as wire bytes) and may be rewritten; a stream is shown as started.
 */
export function postLlm(
  ex: Exchange,
  outcome: ChatOutcome,
  reached: number,
): MaybePromise<ChatOutcome> {
  const list = entered(ex, ex.runtime.stages.post_llm, reached);
  if (list.length === 0) return outcome;
  if (outcome.kind === "stream") {
    const observed = observe(ex, list, list.length - 1, { stream: true, status: outcome.status });
    return observed instanceof Promise ? observed.then(() => outcome) : outcome;
  }
  // Decoded only for a stage that reads the body (a text reader takes OpenAI JSON as it is).
  const wire = outcome.format === "openai_json";
  const body = list.some((s) => s.post_llm_body !== false && (s.post_llm_body !== "text" || !wire))
    ? decodeJson(outcome, decodeContext(ex))
    : undefined;
  return postLlmFrom(ex, list, list.length - 1, outcome, { body, text: null, rewritten: false });
}

interface PostLlmState {
  body: Record<string, unknown> | undefined;
  /** The wire answer as text, decoded once for the stages that read it so. */
  text: string | null;
  rewritten: boolean;
}

const utf8 = new TextDecoder();

/** What one stage's `post_llm` is shown of a JSON answer. */
function jsonView(
  ex: Exchange,
  stage: Stage,
  outcome: Extract<ChatOutcome, { kind: "json" }>,
  state: PostLlmState,
): LlmResponseView {
  const want = stage.post_llm_body;
  if (want === false) return { stream: false, status: outcome.status };
  if (want === "text" && outcome.format === "openai_json" && !state.rewritten) {
    return {
      stream: false,
      status: outcome.status,
      text: state.text ??= utf8.decode(outcome.body),
    };
  }
  // A text reader after a rewrite (the answer is an object now), or an answer in another format.
  const body = state.body ??= decodeJson(outcome, decodeContext(ex));
  return { stream: false, status: outcome.status, body };
}

function postLlmFrom(
  ex: Exchange,
  list: readonly Stage[],
  from: number,
  outcome: Extract<ChatOutcome, { kind: "json" }>,
  state: PostLlmState,
): MaybePromise<ChatOutcome> {
  for (let i = from; i >= 0; i--) {
    const stage = list[i] as Stage;
    const pending = callHook(ex, stage, "post_llm", jsonView(ex, stage, outcome, state));
    if (pending instanceof Promise) {
      return pending.then((r) => {
        applyPostLlm(stage, r, state);
        return postLlmFrom(ex, list, i - 1, outcome, state);
      });
    }
    applyPostLlm(stage, pending, state);
  }
  return state.rewritten && state.body !== undefined
    ? {
      kind: "json",
      status: outcome.status,
      format: "object",
      body: state.body,
      usage: outcome.usage,
    }
    : outcome;
}

function applyPostLlm(stage: Stage, r: PostLlmResult | typeof SKIPPED, state: PostLlmState): void {
  if (r === SKIPPED || r === undefined || r.action !== "rewrite") return;
  if (r.body === null || typeof r.body !== "object") {
    throw new GatewayError(
      "stage_failed",
      `Stage "${stage.name}" rewrote the answer in post_llm with something that is not a JSON object`,
    );
  }
  state.body = r.body;
  state.rewritten = true;
}

/**
 * `post_llm` in reverse order over an answer that cannot be rewritten here (a stream as it
 * started, a passthrough reply whose bytes are the provider's).
 */
export function postLlmObserved(
  ex: Exchange,
  view: LlmResponseView,
  reached: number,
): MaybePromise<void> {
  const list = entered(ex, ex.runtime.stages.post_llm, reached);
  return observe(ex, list, list.length - 1, view);
}

function observe(
  ex: Exchange,
  list: readonly Stage[],
  from: number,
  view: LlmResponseView,
): MaybePromise<void> {
  for (let i = from; i >= 0; i--) {
    const stage = list[i] as Stage;
    const pending = callHook(ex, stage, "post_llm", view);
    if (pending instanceof Promise) return pending.then(() => observe(ex, list, i - 1, view));
  }
}

/** A stream through the `stream_chunk` stages (decoded to typed chunks only then). */
export function streamChunks(
  ex: Exchange,
  outcome: Extract<ChatOutcome, { kind: "stream" }>,
): ChatOutcome {
  const list = chunkStagesFor(ex);
  if (list.length === 0) return outcome;
  return {
    kind: "stream",
    status: outcome.status,
    format: "chunks",
    body: decodeStream(outcome, decodeContext(ex)).pipeThrough(chunkStages(ex, list)),
    usage: outcome.usage,
  };
}

/** `post_http` in reverse order for the stages reached; they may change headers. */
export function postHttp(
  ex: Exchange,
  response: Response,
  reached: number,
): MaybePromise<Response> {
  const list = entered(ex, ex.runtime.stages.post_http, reached);
  if (list.length === 0) return response;
  return postHttpFrom(ex, list, list.length - 1, response, {
    status: response.status,
    headers: response.headers,
  });
}

function postHttpFrom(
  ex: Exchange,
  list: readonly Stage[],
  from: number,
  response: Response,
  view: HttpResponseView,
): MaybePromise<Response> {
  for (let i = from; i >= 0; i--) {
    const stage = list[i] as Stage;
    const pending = callHook(ex, stage, "post_http", view);
    if (pending instanceof Promise) {
      return pending.then(() => postHttpFrom(ex, list, i - 1, response, view));
    }
  }
  return response;
}

/** An error as its response, here rather than in the error handler (a post_http stage sees it). */
export function renderHere(ex: Exchange, err: unknown): Response {
  const ge = toGatewayError(err);
  if (ge.code === "internal") {
    ex.runtime.logger.error("unhandled error", { request_id: ex.id, error: ge.info.cause ?? err });
  }
  return errorResponse(ge, ex, ex.path);
}

/** Run `stage` hooks on a fresh `Reached` (passthrough drives its own phases). */
export function reachedAll(ex: Exchange): Reached {
  const n = ex.runtime.stages.all.length;
  return { http: n, llm: n };
}

export type { AttemptContext, ProviderAdapter };
