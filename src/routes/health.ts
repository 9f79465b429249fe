import type { Context } from "hono";
import type { AppEnv } from "./context.ts";

/** `GET /healthz`: liveness, plain `ok` (Butter). */
export function healthz(c: Context<AppEnv>): Response {
  c.set("errorFormat", "plain");
  return c.text("ok");
}

/** `GET /ready`: 200 once config and listeners are up. */
export function ready(isReady: () => boolean) {
  return function readyHandler(c: Context<AppEnv>): Response {
    c.set("errorFormat", "plain");
    return isReady() ? c.text("ready") : c.text("not ready", 503);
  };
}

/**
 * `GET /health`: llm-proxy's shape: `status`, `timestamp` (Unix seconds), `providers` keyed
 * by name, `features`. The circuit breaker issue adds its blocks.
 */
export function health(c: Context<AppEnv>): Response {
  c.set("errorFormat", "plain");
  const rt = c.get("runtime");
  const now = rt.now();
  const providers: Record<string, Record<string, unknown>> = {};
  for (const p of Object.values(rt.config.providers)) {
    providers[p.name] = {
      provider: p.name,
      type: p.type,
      status: "healthy",
      baseURL: p.base_url,
      streaming_support: true,
      keys: p.keys.map((k) => {
        const cooldown = rt.routing.keyCooldown(k.id, now);
        return cooldown
          ? {
            id: k.id,
            status: "cooldown",
            reason: cooldown.reason,
            last_status: cooldown.status,
            cooldown_until: Math.ceil(cooldown.until / 1000),
          }
          : { id: k.id, status: "ok" };
      }),
    };
  }
  return c.json({
    status: "healthy",
    timestamp: Math.floor(now / 1000),
    providers,
    features: {
      cost_tracking: false,
      circuit_breaker: rt.config.features.circuit_breaker.enabled,
    },
  });
}
