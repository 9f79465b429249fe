/**
 * `GET /metrics` (or `metrics.endpoint`): Prometheus text. A middleware rather than a
 * fixed route, so a reload that moves the endpoint or turns metrics off takes effect.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./context.ts";
import { metricsEnabled } from "../telemetry/hub.ts";

/** Prometheus' text exposition format, version 0.0.4. */
const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export function metricsEndpoint(): MiddlewareHandler<AppEnv> {
  return async function metrics(c, next) {
    const rt = c.get("runtime");
    if (c.req.method !== "GET" || c.req.path !== rt.config.metrics.endpoint) return await next();
    if (!metricsEnabled(rt.config)) return await next();
    c.get("exchange").errorFormat = "plain";
    const text = await rt.observability.metricsText();
    // Still importing the SDK (a reload just turned metrics on): nothing collected yet.
    return c.body(text ?? "", 200, { "content-type": CONTENT_TYPE });
  };
}
