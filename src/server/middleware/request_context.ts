import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../../routes/mod.ts";
import type { Runtime } from "../../runtime.ts";
import { observeStream } from "../../streaming/mod.ts";
import { type CapturedBody, captureRequestBody } from "../../telemetry/mod.ts";

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Pins the current Runtime for the whole request, assigns a request id, and writes one
 * access-log line when the response is done (for streams: when the last byte went out,
 * the client left, or the upstream failed — `outcome` says which).
 */
export function requestContext(current: () => Runtime): MiddlewareHandler<AppEnv> {
  return async function requestContext(c, next) {
    const started = performance.now();
    const rt = current();
    const incoming = c.req.header("x-request-id");
    const requestId = incoming && REQUEST_ID_RE.test(incoming) ? incoming : crypto.randomUUID();
    c.set("runtime", rt);
    c.set("requestId", requestId);
    const logging = rt.config.logging;
    const captured = logging.request_body
      ? captureRequestBody(c.req.raw, logging.request_body_max_bytes)
      : null;
    await next();
    c.res.headers.set("x-request-id", requestId);
    // Time in Pilotfish until the response started, upstream waits excluded.
    const overhead = performance.now() - started - (c.get("upstreamMs") ?? 0);
    c.res.headers.set("x-pilotfish-overhead-ms", Math.max(0, overhead).toFixed(2));

    const fields = () => ({
      request_id: requestId,
      method: c.req.method,
      route: c.req.routePath,
      path: c.req.path,
      status: c.res.status,
      provider: c.get("provider") ?? null,
      model: c.get("model") ?? null,
      stream: c.get("stream") ?? false,
      ...usageFields(c.get("usage")),
      ...attemptsField(c.get("attempts")),
      // server.read_timeout/write_timeout cut the request (see middleware/timeouts.ts).
      ...(c.get("timedOut") ? { reason: c.get("timedOut") } : {}),
    });
    const level = c.res.status >= 500 ? "error" : "info";
    if (!rt.logger.enabled(level)) return;
    // Awaited only when the line is written; by then the route has read the body — unless a
    // timeout cut the request: the copy may then wait on a client that never finishes, so
    // it is taken only if it is already there.
    const withBody = async (line: Record<string, unknown>) => {
      const b = !captured
        ? null
        : c.get("timedOut")
        ? await Promise.race([captured, Promise.resolve(null)])
        : await captured;
      return b ? { ...line, ...bodyFields(b) } : line;
    };
    const body = c.res.body;
    if ((c.get("stream") === true || c.get("deferLog") === true) && body) {
      let bytes = 0;
      const status = c.res.status;
      const headers = c.res.headers;
      c.res = new Response(
        observeStream(body, {
          onChunk: (chunk) => {
            bytes += chunk.byteLength;
          },
          onEnd: (outcome, error) => {
            const line = {
              ...fields(),
              duration_ms: round(performance.now() - started),
              bytes,
              outcome,
              ...(error !== undefined && (outcome === "error" || outcome === "upstream_cut")
                ? { error: describe(error) }
                : {}),
            };
            // A stream that did not complete is an error line, whatever status it began with.
            const lineLevel = outcome === "error" || outcome === "upstream_cut" ? "error" : level;
            if (captured) void withBody(line).then((l) => rt.logger[lineLevel]("request", l));
            else rt.logger[lineLevel]("request", line);
          },
        }),
        { status, headers },
      );
      return;
    }
    const length = Number(c.res.headers.get("content-length") ?? NaN);
    const line = {
      ...fields(),
      duration_ms: round(performance.now() - started),
      bytes: Number.isFinite(length) ? length : null,
      ...(c.error ? { error: c.error } : {}),
    };
    rt.logger[level]("request", captured ? await withBody(line) : line);
  };
}

function bodyFields(body: CapturedBody): Record<string, unknown> {
  return body.truncated
    ? { request_body: body.text, request_body_truncated: true }
    : { request_body: body.text };
}

/** An error as the log shows it: name and message (a GatewayError's message is redacted). */
function describe(error: unknown): { name: string; message: string } | string {
  return error instanceof Error ? { name: error.name, message: error.message } : String(error);
}

function usageFields(usage: { prompt_tokens: number; completion_tokens: number } | undefined) {
  return usage
    ? { prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens }
    : {};
}

function attemptsField(attempts: readonly unknown[] | undefined) {
  return attempts ? { attempts } : {};
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
