import type { Context } from "hono";
import { DEFAULT_DEGRADED_SIGNAL } from "../breaker/mod.ts";
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
  const breaker = rt.breaker;
  const cb = rt.config.features.circuit_breaker;
  let circuitBlock: Record<string, unknown> | undefined;
  if (cb.enabled) {
    const perProvider: Record<string, unknown> = {};
    let total = 0;
    for (const name of Object.keys(providers)) {
      const h = breaker.health(name, now);
      perProvider[name] = h;
      total += h.failures;
      // llm-proxy's legacy per-provider fields, kept for existing dashboards.
      Object.assign(providers[name] as Record<string, unknown>, {
        circuit_state: h.state,
        circuit_failures: h.failures,
        ...(h.cooldown_until !== undefined ? { circuit_cooldown_until: h.cooldown_until } : {}),
      });
    }
    const store = breaker.store.describe();
    circuitBlock = {
      enabled: true,
      mode: breaker.mode,
      backend: store.backend,
      redis_fallback: store.fallback,
      providers: perProvider,
      total_failures: total,
      degraded_signal: cb.degraded_signal || DEFAULT_DEGRADED_SIGNAL,
    };
  }
  return c.json({
    status: "healthy",
    timestamp: Math.floor(now / 1000),
    providers,
    features: { cost_tracking: false, circuit_breaker: cb.enabled },
    ...(circuitBlock ? { circuit_breaker: circuitBlock } : {}),
  });
}
