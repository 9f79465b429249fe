import type { MiddlewareHandler } from "hono";
import { GatewayError } from "../../errors.ts";
import type { AppEnv } from "../../routes/mod.ts";
import { cutRelay, observeStream, relayStream } from "../../streaming/mod.ts";
import { bodyObserved, type Exchange } from "../../pipeline/exchange.ts";

/**
 * `server.read_timeout` and `server.write_timeout` of one request, both counted from its
 * start (when the gateway has its headers). Each field is absent when its key is unset.
 * The signals are data: whoever waits on the client or on an upstream listens to them.
 */
export interface RequestDeadlines {
  /** Aborts, with the 408 to answer, once read_timeout has passed. */
  readonly read?: AbortSignal;
  /** Aborts, with the 504 to answer (or the error that ends a stream), once write_timeout has passed. */
  readonly write?: AbortSignal;
  /** What reading the request body must finish by: the earlier of the two. */
  readonly body?: AbortSignal;
  /** `performance.now()` at which write_timeout passes. */
  readonly writeBy?: number;
  /** server.write_timeout itself, for the message of a timeout it caused. */
  readonly writeMs?: number;
}

/**
 * Arms the two timers for each request when either key is set (nothing at all otherwise)
 * and clears them when the response is done: at once for a buffered answer, when the last
 * byte went out (or the client left) for a stream. Routes do the cutting (see the helpers
 * below); this notes which timeout cut a request for the access log.
 */
export function timeouts(): MiddlewareHandler<AppEnv> {
  // Not async when neither is set (the default): no promise or frame of its own then.
  return function timeouts(c, next) {
    const { read_timeout: readMs, write_timeout: writeMs } = c.get("runtime").config.server;
    if (readMs === undefined && writeMs === undefined) return next();
    return armed(c, next, readMs, writeMs);
  };
}

/** The request under its read and write deadlines (either may be unset, not both). */
async function armed(
  c: Parameters<MiddlewareHandler<AppEnv>>[0],
  next: Parameters<MiddlewareHandler<AppEnv>>[1],
  readMs: number | undefined,
  writeMs: number | undefined,
): Promise<void> {
  const ex = c.get("exchange");
  const started = performance.now();
  const read = readMs === undefined ? undefined : new AbortController();
  const write = writeMs === undefined ? undefined : new AbortController();
  let streaming = false;
  const readTimer = read && setTimeout(() => read.abort(readTimeout(readMs!)), readMs);
  const writeTimer = write && setTimeout(() => {
    write.abort(writeTimeout(writeMs!));
    // Timers are cleared when a stream ends: firing now means it is being cut.
    if (streaming) ex.timedOut = "write_timeout";
  }, writeMs);
  const clear = () => {
    clearTimeout(readTimer);
    clearTimeout(writeTimer);
  };
  ex.deadlines = {
    ...(read ? { read: read.signal } : {}),
    ...(write ? { write: write.signal, writeBy: started + writeMs!, writeMs: writeMs! } : {}),
    body: read && write ? AbortSignal.any([read.signal, write.signal]) : (read ?? write)!.signal,
  };
  try {
    await next();
  } catch (err) {
    clear();
    throw err;
  }
  if (c.res.status === 408 && read?.signal.aborted) ex.timedOut = "read_timeout";
  if (c.res.status === 504 && writePassed(ex.deadlines)) ex.timedOut = "write_timeout";
  const body = bodyObserved(ex) ? c.res.body : null;
  if (body === null) {
    clear();
    return;
  }
  streaming = true;
  if (write?.signal.aborted) ex.timedOut = "write_timeout";
  const observed = observeStream(body, { onEnd: clear });
  if (observed !== body) {
    c.res = new Response(observed, { status: c.res.status, headers: c.res.headers });
  }
}

/** The 408 for a body that did not arrive in time; the connection is not worth keeping. */
function readTimeout(ms: number): GatewayError {
  return new GatewayError(
    "request_timeout",
    `The request body did not arrive within server.read_timeout (${ms} ms)`,
    { headers: { connection: "close" } },
  );
}

function writeTimeout(ms: number): GatewayError {
  return new GatewayError(
    "upstream_timeout",
    `The response could not be completed within server.write_timeout (${ms} ms)`,
  );
}

/**
 * Whether write_timeout has passed. Failover counts its deadline in whole wall-clock ms,
 * so a timeout clamped to the write deadline can fire up to 1 ms before it.
 */
function writePassed(d: RequestDeadlines | undefined): boolean {
  if (d?.writeBy === undefined) return false;
  return d.write?.aborted === true || performance.now() >= d.writeBy - 1;
}

/** `ms`, or what is left of write_timeout when that is sooner (at least 1 ms). */
export function withinWrite(d: RequestDeadlines | undefined, ms: number): number {
  if (d?.writeBy === undefined) return ms;
  return Math.min(ms, Math.max(1, Math.ceil(d.writeBy - performance.now())));
}

/**
 * A 504 that came back once write_timeout had passed says so (keeping the original's
 * headers), instead of naming the clamped per-attempt budget it was cut with.
 */
export function explainTimeout(d: RequestDeadlines | undefined, err: unknown): unknown {
  if (!(err instanceof GatewayError) || err.code !== "upstream_timeout") return err;
  if (!writePassed(d)) return err;
  // An attempt clamped to the same instant may be told first (its timer can run before the
  // write timer in the same turn): the 504 still names write_timeout.
  const reason = d!.write!.aborted ? d!.write!.reason : null;
  const message = reason instanceof GatewayError
    ? reason.message
    : d!.writeMs !== undefined
    ? writeTimeout(d!.writeMs).message
    : err.message;
  return new GatewayError("upstream_timeout", message, err.info);
}

/**
 * What ends a response stream early: server.write_timeout, or the daemon's drain time running
 * out after SIGTERM (`Runtime.closing`; streams only: a buffered answer is written at once).
 * `onCut` notes which, for the access log.
 */
export function streamCut(
  ex: Exchange,
  stream = true,
): { signal: AbortSignal; onCut: () => void } | undefined {
  const write = ex.deadlines?.write;
  const closing = stream ? ex.runtime.closing : undefined;
  if (closing === undefined) return write && { signal: write, onCut: () => {} };
  const signal = write ? AbortSignal.any([write, closing]) : closing;
  return {
    signal,
    onCut: () => {
      if (closing.aborted && !write?.aborted) ex.timedOut = "shutdown";
    },
  };
}

/**
 * `source` until `signal` aborts; then the source is cancelled at once (releasing the
 * upstream) and the consumer's next read fails with the signal's reason. A consumer that
 * renders errors (the unified routes' `observeStream`) turns that into an in-format error
 * event; otherwise the response body is cut off.
 */
export function endAt(
  source: ReadableStream<Uint8Array>,
  signal: AbortSignal,
  onCut?: () => void,
): ReadableStream<Uint8Array> {
  // A relay (a unified route's committed stream, a passthrough body's usage sniffer) takes
  // the cut itself; any other stream becomes one, so the access log observes it in place.
  if (cutRelay(source, signal, onCut)) return source;
  const reader = source.getReader();
  const out = relayStream(() => reader.read(), (reason) => reader.cancel(reason), source);
  cutRelay(out, signal, onCut);
  return out;
}

/**
 * A request body on its way upstream under `deadline`: if the deadline passes before the
 * body was read to its end, the body errors and `signal` aborts (abort the upstream request
 * with it); `cut()` then gives the error to answer with instead of the aborted fetch's.
 */
export function guardUpload(
  body: ReadableStream<Uint8Array>,
  deadline: AbortSignal,
): { body: ReadableStream<Uint8Array>; signal: AbortSignal; cut(): unknown } {
  const abort = new AbortController();
  let controller!: TransformStreamDefaultController<Uint8Array>;
  const onDeadline = () => {
    abort.abort(deadline.reason);
    controller.error(deadline.reason);
  };
  return {
    body: body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        start(c) {
          controller = c;
          if (deadline.aborted) onDeadline();
          else deadline.addEventListener("abort", onDeadline, { once: true });
        },
        flush() {
          deadline.removeEventListener("abort", onDeadline);
        },
      }),
    ),
    signal: abort.signal,
    cut: () => abort.signal.aborted ? abort.signal.reason : undefined,
  };
}
