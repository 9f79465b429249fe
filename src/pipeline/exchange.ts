/**
 * The Exchange: the one request-scoped object. Middleware creates it, routes decode into
 * it, the stage chain and failover fill it in, the edge encodes from it, and every
 * telemetry event carries it. Nothing else holds per-request state (the Hono context
 * carries only the exchange).
 * @module
 */
import type { Runtime } from "../runtime.ts";
import type { AttemptRecord, Target } from "../routing/mod.ts";
import type { Usage } from "../providers/types.ts";
import type { GatewayOptions } from "../schema/gateway.ts";
import type { OpenAIChatRequest, OpenAIEmbeddingsRequest } from "../schema/openai.ts";
import type { MessagesRequest } from "../schema/anthropic.ts";
import type { ResponsesItem, ResponsesRequest } from "../schema/responses.ts";
import type { RequestDeadlines } from "../server/middleware/timeouts.ts";
import type { CapturedBody } from "../telemetry/mod.ts";
import { usageNow } from "../streaming/usage.ts";
import type { ResponseOutcome } from "./events.ts";
import type { RateLimitFacts } from "../limits/mod.ts";

/** The API a request came in through. */
export type InboundSchema =
  | "openai_chat"
  | "anthropic_messages"
  | "embeddings"
  | "responses"
  | "passthrough";

/** The error envelope a route answers in (a wire format, not a provider). */
export type ErrorFormat = "openai_json" | "anthropic_json" | "google_rpc" | "aws_json" | "plain";

/** Monotonic milliseconds; injectable so tests can drive time budgets without sleeping. */
export interface Clock {
  now(): number;
}

/** Who is calling: filled by later stages (app keys); the IP from the connection. */
export interface Principal {
  /** The app key's id (`key_...`, `cfg_...`), never its value; set by the app-key stage. */
  appKey?: string;
  ip?: string;
}

/** W3C trace context as received (continued by the tracing subscriber, later). */
export interface TraceContext {
  readonly traceparent: string | null;
  readonly tracestate: string | null;
}

/** The parsed request, in canonical (OpenAI) shape where there is one. */
export type ExchangeRequest =
  | { readonly schema: "openai_chat"; body: OpenAIChatRequest }
  | {
    readonly schema: "anthropic_messages";
    /** The client's Messages body, sent as is to providers that speak it. */
    body: MessagesRequest;
    /**
     * The canonical form, translated on first need (a provider that does not speak the
     * Messages API, or a `pre_llm` stage). Once a stage rewrote it, it is what every
     * provider gets.
     */
    canonical: OpenAIChatRequest | null;
    rewritten: boolean;
    /** The stages' view left out what only Anthropic honours (it cannot be rewritten). */
    lossy?: boolean;
  }
  | {
    readonly schema: "responses";
    /** The client's Responses body, sent as is to providers that speak it natively. */
    body: ResponsesRequest;
    /**
     * The stored conversation before this input (`previous_response_id` of a response the
     * gateway kept); null when there is none, or the id is not ours (a native provider's).
     */
    history: ResponsesItem[] | null;
    /** Items of kept responses that this input's `item_reference`s point at; null if none. */
    referenced: Map<string, ResponsesItem> | null;
    /** The canonical form, translated on first need; once a stage rewrote it, what all get. */
    canonical: OpenAIChatRequest | null;
    rewritten: boolean;
    /** The stages' view left out what only a native provider honours (it cannot be rewritten). */
    lossy?: boolean;
    /**
     * False when a native id this request names (a `previous_response_id` or an
     * `item_reference` the gateway did not keep) was not created by this caller through the
     * gateway: the gateway's own keys must not carry it to a native provider.
     */
    previousOwned?: boolean;
  }
  | { readonly schema: "embeddings"; body: OpenAIEmbeddingsRequest }
  | {
    readonly schema: "passthrough";
    body: Uint8Array<ArrayBuffer> | null;
    /** A body streamed upstream unread: its declared length (for a usage estimate). */
    readonly bytes?: number;
    /** The user a read body names (OpenAI's `user`, Anthropic's `metadata.user_id`). */
    readonly user?: string;
  };

/** What the access log and the overhead header need about the response. */
export interface ResponseFacts {
  status: number;
  /** Bytes sent: the body's length, or counted as a stream goes out; null when unknown. */
  bytes: number | null;
  outcome: ResponseOutcome;
  /** Why a stream did not complete. */
  error?: unknown;
  /** The error a handler failed with (for the log line of a buffered answer). */
  handlerError?: unknown;
}

export interface Exchange {
  readonly id: string;
  /** `clock.now()` when the request arrived. */
  readonly started: number;
  readonly clock: Clock;
  readonly runtime: Runtime;
  readonly method: string;
  readonly path: string;
  /** The route pattern that answered (`/v1/chat/completions`, `/openai/*`), once known. */
  route: string | null;
  principal: Principal;
  /** The request's headers; a `pre_http` rewrite replaces them. */
  headers: Headers;
  /** Raw query string (with `?`), for switches and passthrough. */
  readonly search: string;
  schema: InboundSchema | null;
  errorFormat: ErrorFormat | null;
  request: ExchangeRequest | null;
  /** The client's `stream` flag (unified routes) or an event-stream answer (passthrough). */
  stream: boolean;
  gateway: GatewayOptions;
  targets: readonly Target[];
  /** Every attempt, with its own usage. */
  attempts: readonly AttemptRecord[];
  /** The provider chosen (or tried last), for headers and the log. */
  provider: string | undefined;
  /** The model: as requested until a provider was chosen, then the upstream's. */
  model: string | undefined;
  /** The winner's usage, set when the exchange ends. */
  usage: Usage | null;
  /** USD, set by the usage meter when the exchange ends; null when unpriced or no usage. */
  cost: number | null;
  /** `x-pilotfish-overhead-ms` as sent: time in Pilotfish until the response started. */
  overheadMs: number | null;
  /**
   * What was billed, set by the usage meter: every attempt that produced usage (a hedge
   * loser that answered too), estimated parts filled in; null when nothing was used.
   */
  billedUsage: Usage | null;
  /** Part of the usage billed is an estimate (a stream cut short without upstream counts). */
  costEstimated: boolean;
  /** The response cache's verdict: `hit` (answered from it), `miss` (looked up), or not consulted. */
  cacheStatus: "hit" | "miss" | null;
  /** On a hit, the model the stored answer names (its `gen_ai.response.model`). */
  cachedModel: string | undefined;
  readonly trace: TraceContext;
  /** The response's body is observed: the exchange ends when it is done, not when built. */
  deferEnd: boolean;
  /** A whole (non-stream) answer's body as built (server/whole.ts), for the log's `bytes`. */
  wholeBody: string | Uint8Array | null;
  response: ResponseFacts | null;
  /** `server.read_timeout` / `write_timeout` of this request. */
  deadlines: RequestDeadlines | undefined;
  /** Which of them cut this request. */
  timedOut: "read_timeout" | "write_timeout" | "shutdown" | undefined;
  /** A redacted copy of the body for the log (`logging.request_body`). */
  captured: Promise<CapturedBody> | null;
  /** Attempts whose `attempt_end` waits for their usage to settle. */
  pendingEnds: Set<AttemptRecord> | null;
  ended: boolean;
  /** What the rate limiter decided (its headers, its reconciliation); null when none applied. */
  rateLimit: RateLimitFacts | null;
  /**
   * Headers stages put on the answer, whatever it turns out to be (the provider's, a stage's
   * own, an error): the route builds its response with them (`withReplyHeaders`), over its
   * own. Cheaper than a `post_http` hook changing the built response's `Headers`.
   */
  replyHeaders: Record<string, string> | null;
  /** Stage metadata (WASM plugins' `metadata`): seen by later stages, written to the access log. */
  metadata: Record<string, unknown>;
  /**
   * Capabilities' private state for this request, in `Slot`s (src/slot.ts):
   * `slot.get(ex.slots)`. Not WeakMaps keyed by the exchange: those keep every request
   * alive through minor GCs.
   */
  readonly slots: object;
}

export interface ExchangeInit {
  readonly id: string;
  readonly runtime: Runtime;
  readonly request: Request;
  readonly ip?: string;
  readonly url?: string;
}

/**
 * The one implementation: a class, so every exchange shares one shape (fields set in the
 * constructor) and the trace context is read from the headers only when asked for.
 */
class RequestExchange implements Exchange {
  readonly id: string;
  readonly started: number;
  readonly clock: Clock;
  readonly runtime: Runtime;
  readonly method: string;
  readonly path: string;
  readonly search: string;
  route: string | null = null;
  principal: Principal;
  headers: Headers;
  schema: InboundSchema | null = null;
  errorFormat: ErrorFormat | null = null;
  request: ExchangeRequest | null = null;
  stream = false;
  gateway: GatewayOptions = {};
  targets: readonly Target[] = [];
  attempts: readonly AttemptRecord[] = [];
  provider: string | undefined = undefined;
  model: string | undefined = undefined;
  usage: Usage | null = null;
  cost: number | null = null;
  overheadMs: number | null = null;
  billedUsage: Usage | null = null;
  costEstimated = false;
  cacheStatus: "hit" | "miss" | null = null;
  cachedModel: string | undefined = undefined;
  deferEnd = false;
  wholeBody: string | Uint8Array | null = null;
  response: ResponseFacts | null = null;
  deadlines: RequestDeadlines | undefined = undefined;
  timedOut: "read_timeout" | "write_timeout" | "shutdown" | undefined = undefined;
  captured: Promise<CapturedBody> | null = null;
  pendingEnds: Set<AttemptRecord> | null = null;
  ended = false;
  rateLimit: RateLimitFacts | null = null;
  replyHeaders: Record<string, string> | null = null;
  metadata: Record<string, unknown> = {};
  readonly slots: object = {};
  #trace: TraceContext | null = null;

  constructor(init: ExchangeInit) {
    const rt = init.runtime;
    const url = init.url ?? init.request.url;
    const q = url.indexOf("?");
    const pathEnd = q < 0 ? url.length : q;
    const pathStart = url.indexOf("/", url.indexOf("//") + 2);
    this.id = init.id;
    this.runtime = rt;
    this.clock = rt.clock;
    this.started = rt.clock.now();
    this.method = init.request.method;
    this.path = pathStart < 0 || pathStart > pathEnd ? "/" : url.slice(pathStart, pathEnd);
    this.search = q < 0 ? "" : url.slice(q);
    this.principal = init.ip !== undefined ? { ip: init.ip } : {};
    this.headers = init.request.headers;
  }

  get trace(): TraceContext {
    // Read on first use: most requests carry none and nobody asks yet.
    return this.#trace ??= {
      traceparent: this.headers.get("traceparent"),
      tracestate: this.headers.get("tracestate"),
    };
  }
}

/** Put `name: value` on the exchange's answer (see `Exchange.replyHeaders`). */
export function setReplyHeader(ex: Exchange, name: string, value: string): void {
  (ex.replyHeaders ??= {})[name] = value;
}

/** `headers` (the caller's own object: it is added to) with the stages' reply headers over them. */
export function withReplyHeaders(
  ex: Exchange,
  headers: Record<string, string>,
): Record<string, string> {
  const extra = ex.replyHeaders;
  return extra === null ? headers : Object.assign(headers, extra);
}

/** A fresh exchange for an incoming request. */
export function createExchange(init: ExchangeInit): Exchange {
  return new RequestExchange(init);
}

/**
 * Time spent waiting on upstreams, ms: the union of the attempts' in-flight times (a hedge's
 * two attempts overlap: counted once, the wait before the second included) and the backoffs
 * after them (the upstream's failure is why they were waited). An attempt with no start
 * (a single native call) is its duration.
 */
export function upstreamMs(ex: Exchange): number {
  let ms = 0;
  let spans: [number, number][] | null = null;
  for (const a of ex.attempts) {
    const wait = a.duration_ms + (a.backoff_ms ?? 0);
    if (a.started_ms === undefined) ms += wait;
    else (spans ??= []).push([a.started_ms, a.started_ms + wait]);
  }
  if (spans === null) return ms;
  spans.sort((x, y) => x[0] - y[0]);
  let [from, to] = spans[0]!;
  for (const [start, end] of spans) {
    if (start > to) {
      ms += to - from;
      from = start;
    }
    if (end > to) to = end;
  }
  return ms + to - from;
}

/**
 * Record the attempts of a failover run: the provider and model chosen (or tried last),
 * and each attempt's `attempt_end`, emitted once its usage has settled.
 */
export function noteAttempts(
  ex: Exchange,
  attempts: readonly AttemptRecord[],
  target: Target | undefined,
): void {
  ex.attempts = attempts;
  if (target !== undefined) {
    ex.provider = target.provider;
    ex.model = target.model;
  }
  const bus = ex.runtime.events;
  if (!bus.on.attempt_end) return;
  const pending = ex.pendingEnds ??= new Set();
  for (const a of attempts) {
    if (pending.has(a)) continue;
    pending.add(a);
    a.usage.then((usage) => {
      if (!pending.delete(a)) return; // already flushed by the exchange's end
      bus.emit({ type: "attempt_end", exchange: ex, attempt: a, usage });
    });
  }
}

/**
 * Whether the exchange is usage: it reached a provider or the cache (bad input, refused auth
 * and limits are not, nor a breaker's fast-fail, an attempt that made no call or one that
 * could not connect). What the usage rollups and llm-gateway's request counts count, so its
 * `/api/v1/usage` `total_requests` and `llm_gateway_requests_total` agree. After metering.
 */
export function isUsage(ex: Exchange): boolean {
  // A cache miss alone is not: the request may still have been refused before any call.
  return ex.billedUsage !== null || ex.cacheStatus === "hit" ||
    ex.attempts.some((a) => a.no_call !== true && a.unsent !== true);
}

/** The attempt whose answer the client got. */
export function winnerOf(ex: Exchange): AttemptRecord | undefined {
  for (let i = ex.attempts.length - 1; i >= 0; i--) {
    const a = ex.attempts[i] as AttemptRecord;
    if (a.outcome === "ok") return a;
  }
  return undefined;
}

/**
 * Whether the response's body is observed to its end: a stream's (not a whole answer given
 * to a stream request, such as its 504 before the first byte) or a relayed one's.
 */
export function bodyObserved(ex: Exchange): boolean {
  return ex.deferEnd || (ex.stream && ex.wholeBody === null);
}

/**
 * The provider's own id of the call whose answer the client got (else of the last call),
 * when it sent one.
 */
export function upstreamRequestId(ex: Exchange): string | undefined {
  return (winnerOf(ex) ?? ex.attempts.at(-1))?.upstream_request_id;
}

/**
 * End the exchange (once): the winner's usage (what was streamed, for a stream cut short)
 * becomes the exchange's, pending `attempt_end`s go out, then `request_end`.
 */
export function endExchange(ex: Exchange, facts: ResponseFacts): void {
  if (ex.ended) return;
  ex.ended = true;
  ex.response = facts;
  const winner = winnerOf(ex);
  if (winner !== undefined) ex.usage = usageNow(winner.usage) ?? null;
  const bus = ex.runtime.events;
  if (ex.pendingEnds !== null && ex.pendingEnds.size > 0) {
    for (const a of ex.pendingEnds) {
      bus.emit({ type: "attempt_end", exchange: ex, attempt: a, usage: usageNow(a.usage) ?? null });
    }
    ex.pendingEnds.clear();
  }
  if (bus.on.request_end) {
    bus.emit({
      type: "request_end",
      exchange: ex,
      status: facts.status,
      outcome: facts.outcome,
      duration_ms: ex.clock.now() - ex.started,
      usage: ex.usage,
    });
  }
  ex.runtime.release();
}

/**
 * The client's own credential (`Authorization`, or SDKs' `x-api-key` / `api-key`), for
 * providers that forward it. A Pilotfish application key (`pf_...`) is never forwarded.
 */
export function clientCredential(headers: Headers): string | null {
  const auth = headers.get("authorization");
  if (auth) return /^Bearer\s+pf_/i.test(auth) ? null : auth;
  // Anthropic's SDKs send `x-api-key`, Azure's `api-key`.
  const apiKey = headers.get("x-api-key") ?? headers.get("api-key");
  return apiKey && !apiKey.startsWith("pf_") ? `Bearer ${apiKey}` : null;
}
