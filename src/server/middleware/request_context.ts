import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../../routes/mod.ts";
import type { Runtime } from "../../runtime.ts";
import {
  bodyObserved,
  createExchange,
  endExchange,
  upstreamMs,
  upstreamRequestId,
} from "../../pipeline/exchange.ts";
import { observeStream, SseEnd } from "../../streaming/mod.ts";
import { captureRequestBody } from "../../telemetry/mod.ts";
import { bodyBytes } from "../whole.ts";

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Creates the request's Exchange on the current Runtime (pinned for the whole request),
 * assigns the request id, sets `x-request-id` and `x-pilotfish-overhead-ms`, and ends the
 * exchange when the response is done (for streams and passthrough bodies: when the last
 * byte went out, the client left, or the upstream failed). Ending it emits `request_end`,
 * which the access log (the first built-in stage) writes.
 */
export function requestContext(current: () => Runtime): MiddlewareHandler<AppEnv> {
  return async function requestContext(c, next) {
    const rt = current();
    rt.retain();
    const incoming = c.req.header("x-request-id");
    const addr = c.env?.remoteAddr;
    const ex = createExchange({
      id: incoming && REQUEST_ID_RE.test(incoming) ? incoming : crypto.randomUUID(),
      runtime: rt,
      request: c.req.raw,
      ...(addr && addr.transport === "tcp" ? { ip: addr.hostname } : {}),
    });
    c.set("runtime", rt);
    c.set("exchange", ex);
    const logging = rt.config.logging;
    if (logging.request_body) {
      ex.captured = captureRequestBody(c.req.raw, logging.request_body_max_bytes);
    }
    if (rt.events.on.request_start) rt.events.emit({ type: "request_start", exchange: ex });
    try {
      await next();
    } catch (err) {
      endExchange(ex, { status: 500, bytes: null, outcome: "error", handlerError: err });
      throw err;
    }
    // A middleware that answers (`/metrics`, at a reloadable path) names its route itself.
    ex.route ??= c.req.routePath;
    // The client's id is echoed, else ours is set; a provider's own id on a passthrough answer
    // (OpenAI's `req_...`, which its SDKs report) is kept when the client sent none.
    if (incoming === ex.id || !c.res.headers.has("x-request-id")) {
      c.res.headers.set("x-request-id", ex.id);
    }
    // Anthropic's SDKs read a request's id from `request-id` only (`_request_id`,
    // `requestID`): the provider's own when it gave one (what its support asks for), else ours.
    // On every answer in Anthropic's format: the passthrough's own errors (a 404) too.
    if (
      ex.route === "/v1/messages" || ex.route === "/v1/messages/count_tokens" ||
      ex.errorFormat === "anthropic_json"
    ) {
      if (!c.res.headers.has("request-id")) {
        c.res.headers.set("request-id", upstreamRequestId(ex) ?? ex.id);
      }
    }
    // Time in Pilotfish until the response started, upstream waits excluded.
    const overhead = Math.max(0, rt.clock.now() - ex.started - upstreamMs(ex));
    ex.overheadMs = overhead;
    c.res.headers.set("x-pilotfish-overhead-ms", overhead.toFixed(2));

    const status = c.res.status;
    // Only a stream's body is read here: `Response.body` turns a whole (string or bytes)
    // body into a stream, which Deno.serve then pumps chunk by chunk instead of sending it
    // in one write.
    // A client already gone gets no body at all: its stream is released, not observed.
    const gone = c.req.raw.signal.aborted;
    const observe = bodyObserved(ex);
    if (gone && observe && ex.wholeBody === null && c.res.body) {
      c.res.body.cancel("client left").catch(() => {});
      // Deno.serve throws on a body already cancelled ("has already been consumed").
      c.res = new Response(null, { status, headers: c.res.headers });
    }
    const body = observe && !gone ? c.res.body : null;
    if (body) {
      ex.deferEnd = true;
      let bytes = 0;
      // An SSE answer's end as the client got it: a cancel after its terminal event (the
      // OpenAI SDKs stop at `[DONE]` and close) left nothing unread.
      const sse = ex.stream ? new SseEnd() : null;
      const observed = observeStream(body, {
        onChunk: (chunk) => {
          bytes += chunk.byteLength;
          sse?.see(chunk);
        },
        onEnd: (outcome, error) => {
          const whole = outcome === "client_abort" && sse !== null && sse.terminal;
          endExchange(ex, {
            status,
            bytes,
            outcome: whole ? "complete" : outcome,
            ...(error !== undefined && !whole ? { error } : {}),
          });
        },
      });
      // Usually the route's own relay, observed in place: the response stays as it is.
      if (observed !== body) c.res = new Response(observed, { status, headers: c.res.headers });
      return;
    }
    ex.deferEnd = false;
    const bytes = bodyBytes(ex, c.res);
    // The log line carries the body copy: have it before the response goes.
    if (ex.captured !== null && !ex.timedOut) await ex.captured;
    endExchange(ex, {
      status,
      bytes,
      // A client that left before its answer (e.g. during a retry's backoff) never read it.
      outcome: c.req.raw.signal.aborted ? "client_abort" : "complete",
      ...(c.error ? { handlerError: c.error } : {}),
    });
  };
}
