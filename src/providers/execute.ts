import { GatewayError } from "../errors.ts";
import { scheduleDeadline } from "./deadline.ts";
import { markByteStream } from "../streaming/mod.ts";
import type { SecretScrub } from "../streaming/scrub.ts";

/** Non-fatal, as `Response.text()` decodes. */
const UTF8 = new TextDecoder();

export interface UpstreamRequest {
  readonly url: string;
  readonly method: string;
  /** A plain record: cheaper for `fetch` to take than a `Headers` copy per request. */
  readonly headers: Record<string, string> | Headers;
  /** A string for translated calls; the client's stream for native passthrough. */
  readonly body: string | Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null;
}

export interface UpstreamReply {
  readonly response: Response;
  /** Stop the per-attempt timer; call once the part the timeout covers is done. */
  readonly settle: () => void;
  /** Read the whole body as text, still under the attempt's timeout. */
  readonly text: () => Promise<string>;
  /** Read the whole body as bytes, still under the attempt's timeout. */
  readonly bytes: () => Promise<Uint8Array<ArrayBuffer>>;
}

/** Reply headers the breaker's classification reads (llm-proxy's provider rules). */
const CLASSIFYING_HEADERS = [
  "retry-after",
  "x-ratelimit-remaining-requests",
  "x-ratelimit-remaining-tokens",
  "x-amzn-errortype",
];

/** The W3C trace context an attempt sends upstream: its span, and the trace's vendor state. */
export interface UpstreamTrace {
  readonly traceparent: string;
  /** The client's `tracestate` when its trace is continued; absent on a trace of our own. */
  readonly tracestate?: string;
}

/**
 * `headers` with the attempt's `traceparent` and `tracestate` (replacing a client's: a
 * `tracestate` belongs to the trace it came with, so one that is not continued is dropped),
 * or as is when untraced.
 */
function withTraceContext(
  headers: Record<string, string> | Headers,
  trace: UpstreamTrace | undefined,
): Record<string, string> | Headers {
  if (trace === undefined) return headers;
  if (headers instanceof Headers) {
    const copy = new Headers(headers);
    copy.set("traceparent", trace.traceparent);
    if (trace.tracestate !== undefined) copy.set("tracestate", trace.tracestate);
    else copy.delete("tracestate");
    return copy;
  }
  const copy: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    const name = k.toLowerCase();
    if (name !== "traceparent" && name !== "tracestate") copy[k] = v;
  }
  copy.traceparent = trace.traceparent;
  if (trace.tracestate !== undefined) copy.tracestate = trace.tracestate;
  return copy;
}

/**
 * Where `executeUpstream` records whether a provider's upstream could be connected to
 * (for `/health`). Implemented by the routing state, which outlives config reloads.
 */
export interface ReachabilityRecorder {
  /** A call got a response (any HTTP status). On every success: a cheap flag write only. */
  reached(provider: string): void;
  /** A call failed to connect: refused, DNS, TLS. `reason` is ours, never upstream text. */
  unreachable(provider: string, origin: string, reason: string): void;
}

const RECORDER = Symbol("pilotfish.reachability");
type TrackedFetch = typeof fetch & { [RECORDER]?: ReachabilityRecorder };

/**
 * A `fetch` whose calls through `executeUpstream` report reachability to `recorder`. The
 * recorder rides on the function so every adapter and the passthrough routes, which all
 * receive the Runtime's fetch, feed it without another parameter on each call.
 */
export function trackReachability(
  fetchFn: typeof fetch,
  recorder: ReachabilityRecorder,
): typeof fetch {
  const tracked: TrackedFetch = fetchFn.bind(globalThis);
  tracked[RECORDER] = recorder;
  return tracked;
}

/**
 * Why a rejected fetch never reached the upstream, or null when it may have (a reset after
 * connecting, a request body that failed). Deno says "client error (Connect)" for every
 * failure before the connection was up; the upstream's text itself is never kept (a URL in
 * it may carry a client's `?key=`).
 */
export function connectFailure(err: unknown): string | null {
  let text = "";
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    text += ` ${e.message}`;
  }
  if (
    !/\(Connect\)|tcp connect|connection refused|dns error|failed to lookup|tls|certificate/i.test(
      text,
    )
  ) {
    return null;
  }
  if (/refused/i.test(text)) return "connection refused";
  if (/dns error|failed to lookup/i.test(text)) return "DNS lookup failed";
  if (/tls|certificate/i.test(text)) return "TLS handshake failed";
  return "connect failed";
}

/**
 * Whether a connect failure (`connectFailure`'s reason) means the request never left: refused,
 * no address, a certificate or handshake refused. A TLS error after the request went (a peer
 * that closed without close_notify) is not one: the provider may have read, and billed, it.
 */
function neverSent(reason: string | null, err: unknown): boolean {
  if (reason === "connection refused" || reason === "DNS lookup failed") return true;
  if (reason !== "TLS handshake failed") return false;
  let text = "";
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    text += ` ${e.message}`;
  }
  return /certificate|handshake/i.test(text) && !/close_notify|peer closed/i.test(text);
}

/**
 * Upstream calls whose answer is not in yet (a stream leaves once it is committed: its
 * relay is cut by `Runtime.closing`). When the drain time runs out they are all cut, so a
 * request still waiting gets its route's 503 instead of a connection closed on it.
 */
const inFlight = new Set<AbortController>();
let shutdownCut: GatewayError | null = null;

/** The drain time ran out: every upstream call still waiting, or made after, ends with `reason`. */
export function cutUpstreamCalls(reason: GatewayError): void {
  shutdownCut = reason;
  for (const c of inFlight) c.abort(reason);
  inFlight.clear();
}

/** Whether `err` is the shutdown's cut: it says nothing about the provider. */
export function cutByShutdown(err: unknown): boolean {
  return shutdownCut !== null && err === shutdownCut;
}

/**
 * The one place that calls `fetch` for upstreams. Links the client's abort signal
 * and a per-attempt timer to one controller and maps transport failures to gateway errors:
 * a refused or reset connection is 502 `upstream_unreachable`, an expired timer 504
 * `upstream_timeout`. Errors are built only on failure: a GatewayError captures a stack.
 */
export async function executeUpstream(
  fetchFn: typeof fetch,
  req: UpstreamRequest,
  opts: {
    signal: AbortSignal;
    timeoutMs: number;
    provider: string;
    /**
     * Turns a non-2xx reply into the provider's error, thrown after reading the body; 3xx is
     * refused. Without it (native passthrough) every reply is handed back as it came.
     */
    toError?: (status: number, body: string, headers: Headers) => GatewayError;
    /**
     * The headers are a request the client signed (SigV4, native Bedrock passthrough),
     * relayed as they came: no trace context of ours replaces what the signature may cover;
     * the client's own `traceparent`, if any, passes through.
     */
    verbatim?: boolean;
    /** Given the reply's headers as soon as they arrive, whatever the status. */
    onReply?: ((headers: Headers) => void) | undefined;
    /**
     * The attempt's W3C trace context, sent upstream (a tracer's attempt span, or the
     * client's own passed on); none when untraced.
     */
    trace?: UpstreamTrace | undefined;
    /**
     * The provider's own credentials, taken out of a body read whole (`bytes`, `text`): an
     * answer that echoes the key it was sent must not hand it to the client, or the cache.
     * Streams are scrubbed where they are read (`scrubStream`).
     */
    scrub?: SecretScrub | null | undefined;
  },
): Promise<UpstreamReply> {
  // No closure below may capture `req`: an unsettled call's abort listener lives as long as
  // the client's request, and through it the whole upstream body (the prompt) would too.
  const url = req.url;
  const method = req.method;
  const controller = new AbortController();
  const onClientAbort = () => controller.abort(opts.signal.reason);
  if (opts.signal.aborted) onClientAbort();
  else opts.signal.addEventListener("abort", onClientAbort, { once: true });
  // Our own timer's abort carries its 504: a body still being read when it fires (a
  // passthrough relays it unsettled) errors with it, and the route renders it as is.
  let timedOut: GatewayError | null = null;
  if (shutdownCut !== null) controller.abort(shutdownCut);
  else inFlight.add(controller);
  const disarm = scheduleDeadline(opts.timeoutMs, () => {
    inFlight.delete(controller);
    timedOut = new GatewayError(
      "upstream_timeout",
      `Provider "${opts.provider}" did not answer within ${opts.timeoutMs} ms`,
      { provider: opts.provider },
    );
    controller.abort(timedOut);
  });
  // Settled (the answer read, or a stream handed on: its consumer cancels it from then on),
  // the call lets go of the client's signal. A listener left there kept the whole attempt
  // (controller, fetch state, bodies) alive through every young-generation GC: 4 MB survived
  // each scavenge instead of 1 at one connection, and scavenges took 3x as long.
  const settle = () => {
    disarm();
    inFlight.delete(controller);
    opts.signal.removeEventListener("abort", onClientAbort);
  };
  /** `connect`: the fetch itself rejected (no response yet), so it may be a connect failure. */
  const fail = (err: unknown, connect = false): never => {
    settle();
    if (timedOut !== null) throw timedOut;
    if (opts.signal.aborted) {
      throw new GatewayError("client_closed", "Client closed the request", {
        provider: opts.provider,
        retryable: false,
        cause: err,
      });
    }
    if (err instanceof GatewayError) throw err;
    // What fetch refuses to send is the request's fault, never the provider's: a 400 that no
    // breaker counts. Its own wording quotes the offending header, which may carry a key.
    if (connect && err instanceof TypeError) {
      const refused = /\binvalid header\b|\bheader (?:name|value)\b/i.test(err.message)
        ? "a request header is not a valid HTTP header value"
        : /\bmethod is forbidden\b|\binvalid method\b/i.test(err.message)
        ? `the method ${method} cannot be sent`
        : null;
      if (refused !== null) {
        throw new GatewayError(
          "invalid_request",
          `The request cannot be sent to provider "${opts.provider}": ${refused}`,
          { provider: opts.provider, retryable: false, cause: err },
        );
      }
    }
    const reason = connect ? connectFailure(err) : null;
    const message = (err as Error).message ?? String(err);
    if (reason !== null) {
      (fetchFn as TrackedFetch)[RECORDER]?.unreachable(opts.provider, originOf(url), reason);
    }
    throw new GatewayError(
      "upstream_unreachable",
      `Provider "${opts.provider}" is unreachable: ${message}${
        reason !== null && !message.toLowerCase().includes(reason.toLowerCase())
          ? ` (${reason})`
          : ""
      }`,
      { provider: opts.provider, cause: err, ...(neverSent(reason, err) ? { unsent: true } : {}) },
    );
  };
  let response: Response;
  try {
    response = await fetchFn(url, {
      method,
      headers: opts.verbatim ? req.headers : withTraceContext(req.headers, opts.trace),
      body: req.body,
      signal: controller.signal,
      redirect: "manual", // a redirect could point at a host that is not configured
    });
  } catch (err) {
    return fail(err, true);
  }
  (fetchFn as TrackedFetch)[RECORDER]?.reached(opts.provider);
  opts.onReply?.(response.headers);
  markByteStream(response.body);
  if (opts.toError && response.status >= 300 && response.status < 400) {
    settle();
    await response.body?.cancel().catch(() => {});
    // Redirects are not followed: they could lead to a host that is not configured.
    throw new GatewayError(
      "upstream_error",
      `Provider "${opts.provider}" answered with a redirect (HTTP ${response.status}), which is not followed`,
      { provider: opts.provider, upstreamStatus: response.status },
    );
  }
  const read = <T>(how: () => Promise<T>) => async (): Promise<T> => {
    try {
      const body = await how();
      settle();
      return body;
    } catch (err) {
      return fail(err);
    }
  };
  if (opts.toError && (response.status < 200 || response.status >= 300)) {
    const text = await read(() => response.text())();
    const err = opts.toError(response.status, text, response.headers);
    const kept: Record<string, string> = {};
    for (const name of CLASSIFYING_HEADERS) {
      const value = response.headers.get(name);
      if (value !== null) kept[name] = value;
    }
    throw new GatewayError(err.code, err.message, { ...err.info, upstreamHeaders: kept });
  }
  const scrub = opts.scrub ?? null;
  if (scrub === null) {
    return {
      response,
      settle,
      text: read(() => response.text()),
      bytes: read(() => response.bytes()),
    };
  }
  return {
    response,
    settle,
    text: read(async () => UTF8.decode(scrub.whole(await response.bytes()))),
    bytes: read(async () => scrub.whole(await response.bytes())),
  };
}

/** Header names lower-cased, so configured headers merge predictably with ours. */
export function lowerCaseKeys(headers: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}

function originOf(url: string): string {
  return URL.parse(url)?.origin ?? "";
}
