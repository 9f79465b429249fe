/**
 * The status snapshot: what `/status` shows and `GET /api/v1/status` returns, and (minus
 * the fleet) what this sidecar publishes as its heartbeat. Providers and keys by name and
 * id only, never a key's value.
 * @module
 */
import type { Runtime } from "../runtime.ts";
import { VERSION } from "../version.ts";

export function statusSnapshot(rt: Runtime): Record<string, unknown> {
  const now = rt.now();
  const obs = rt.observability;
  const cb = rt.config.features.circuit_breaker;
  const providers = Object.values(rt.config.providers).map((p) => {
    const breaker = cb.enabled ? rt.breaker.health(p.name, now) : null;
    return {
      name: p.name,
      type: p.type,
      keys: p.keys.map((k) => {
        const cooldown = rt.routing.keyCooldown(k.id, now);
        return cooldown
          ? { id: k.id, status: "cooldown", cooldown_until: Math.ceil(cooldown.until / 1000) }
          : { id: k.id, status: "ok" };
      }),
      reachable: rt.routing.unreachableSince(p.name) === null,
      breaker,
    };
  });
  const store = rt.breaker.store.describe();
  return {
    name: obs.name,
    version: VERSION,
    generation: rt.generation,
    config_hash: obs.configHash(rt),
    at: now,
    breaker: cb.enabled ? { mode: rt.breaker.mode, backend: store.backend } : null,
    redis: store.backend === "redis" ? { connected: !store.fallback } : null,
    providers,
    stats: obs.rollup.snapshot(),
  };
}
