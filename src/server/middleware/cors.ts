import type { MiddlewareHandler } from "hono";
import { cors as honoCors } from "hono/cors";
import type { CorsConfig } from "../../config/mod.ts";
import type { AppEnv } from "../../routes/mod.ts";

/**
 * Response headers a browser app may read: request id, routing facts, rate-limit and cache
 * headers, llm-proxy's degraded signal. Used unless `server.cors.exposed_headers` is set.
 */
const DEFAULT_EXPOSED = [
  "x-request-id",
  "x-pilotfish-provider",
  "x-pilotfish-model",
  "x-pilotfish-attempts",
  "x-pilotfish-overhead-ms",
  "x-pilotfish-cost-usd",
  "retry-after",
  "x-ratelimit-limit",
  "x-ratelimit-remaining",
  "x-ratelimit-reset",
  "x-ratelimit-reason",
  "x-ratelimit-metric",
  "x-ratelimit-window",
  "x-ratelimit-scope",
  "x-cache",
  "x-butter-cache",
  "x-pilotfish-injection",
  "x-llm-proxy-error-class",
];

type Handler = MiddlewareHandler<AppEnv>;

/** One hono/cors handler per config generation (configs are frozen and swapped whole). */
const handlers = new WeakMap<CorsConfig, Handler>();

/**
 * CORS per `server.cors` of the request's config (hot reload included). Off by default:
 * then nothing is added and `OPTIONS` goes to the routes as before. On: a preflight
 * (`OPTIONS`) is answered here with 204, before any route, so it never reaches an upstream;
 * only listed origins get `Access-Control-Allow-Origin` (`*` only when listed).
 */
export function corsMiddleware(): Handler {
  return function cors(c, next) {
    const config = c.get("runtime").config.server.cors;
    if (!config.enabled) return next();
    let handler = handlers.get(config);
    if (handler === undefined) {
      handler = build(config);
      handlers.set(config, handler);
    }
    return handler(c, next);
  };
}

function build(config: CorsConfig): Handler {
  const origins = new Set(config.allowed_origins);
  const any = origins.has("*");
  return honoCors({
    origin: (origin) => {
      if (origin === "") return null;
      // `*` cannot carry credentials: a browser then needs its own origin echoed.
      if (any) return config.allow_credentials ? origin : "*";
      return origins.has(origin) ? origin : null;
    },
    allowMethods: [...config.allowed_methods],
    allowHeaders: [...config.allowed_headers],
    exposeHeaders: [...(config.exposed_headers ?? DEFAULT_EXPOSED)],
    credentials: config.allow_credentials,
    maxAge: Math.round(config.max_age / 1000),
  }) as Handler;
}
