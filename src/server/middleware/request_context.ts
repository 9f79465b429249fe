import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../../routes/mod.ts";
import type { Runtime } from "../../runtime.ts";
import { observeStream } from "../../streaming/mod.ts";

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Pins the current Runtime for the whole request, assigns a request id, and writes one
 * access-log line when the response is done (for streams: when the last byte went out,
 * or the client left).
 */
export function requestContext(current: () => Runtime): MiddlewareHandler<AppEnv> {
  return async function requestContext(c, next) {
    const started = performance.now();
    const rt = current();
    const incoming = c.req.header("x-request-id");
    const requestId = incoming && REQUEST_ID_RE.test(incoming) ? incoming : crypto.randomUUID();
    c.set("runtime", rt);
    c.set("requestId", requestId);
    await next();
    c.res.headers.set("x-request-id", requestId);

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
    });
    const level = c.res.status >= 500 ? "error" : "info";
    if (!rt.logger.enabled(level)) return;
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
          onEnd: (outcome, error) =>
            rt.logger[level]("request", {
              ...fields(),
              duration_ms: round(performance.now() - started),
              bytes,
              outcome,
              ...(error !== undefined && outcome === "error" ? { error } : {}),
            }),
        }),
        { status, headers },
      );
      return;
    }
    const length = Number(c.res.headers.get("content-length") ?? NaN);
    rt.logger[level]("request", {
      ...fields(),
      duration_ms: round(performance.now() - started),
      bytes: Number.isFinite(length) ? length : null,
      ...(c.error ? { error: c.error } : {}),
    });
  };
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
