/**
 * `GET /metrics` (or `metrics.endpoint`): Prometheus text. A middleware rather than a
 * fixed route, so a reload that moves the endpoint or turns metrics off takes effect.
 * @module
 */
import { allow } from "../server/middleware/error_handler.ts";
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./context.ts";
import { metricsEnabled } from "../telemetry/hub.ts";
import { send } from "../server/whole.ts";

/** Prometheus' text exposition format, version 0.0.4. */
const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const notGet = allow("GET");

export function metricsEndpoint(): MiddlewareHandler<AppEnv> {
  // A middleware (the path is the config's, reloadable) that every request passes: not async,
  // so passing costs no promise or frame of its own.
  return function metrics(c, next) {
    const rt = c.get("runtime");
    if (c.req.path !== rt.config.metrics.endpoint || !metricsEnabled(rt.config)) return next();
    if (c.req.method !== "GET" && c.req.method !== "HEAD") return Promise.resolve(notGet(c));
    const ex = c.get("exchange");
    ex.errorFormat = "plain";
    ex.route = rt.config.metrics.endpoint;
    return rt.observability.metricsText().then((text) =>
      // Still importing the SDK (a reload just turned metrics on): nothing collected yet.
      send(c, "text", text ?? "", 200, { "content-type": CONTENT_TYPE })
    );
  };
}
