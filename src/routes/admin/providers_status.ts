import { allow } from "../../server/middleware/error_handler.ts";
import type { Hono } from "hono";
import type { Control } from "../../pipeline/control.ts";
import type { AppEnv } from "../context.ts";
import { healthReport } from "../health.ts";
import { send } from "../../server/whole.ts";

/**
 * `GET /api/v1/providers/status` (llm-gateway's): every configured provider with its health
 * (`/health`'s statuses and reasons), its keys' cooldowns and, when the breaker is on, its
 * circuit (state, failures, cooldown) and the breaker's backend.
 */
export function providersStatusRoutes(admin: Hono<AppEnv>, control: Control): void {
  admin.get("/providers/status", async (c) => {
    const report = await healthReport(control.state().runtime);
    const circuits = report.circuit_breaker?.providers as Record<string, unknown> | undefined;
    const providers = Object.entries(report.providers).map(([name, p]) => {
      const {
        provider: _,
        circuit_state: _s,
        circuit_failures: _f,
        circuit_cooldown_until: _c,
        ...rest
      } = p;
      return { name, ...rest, circuit: circuits?.[name] ?? null };
    });
    const cb = report.circuit_breaker;
    return send(c, "json", {
      timestamp: report.timestamp,
      providers,
      circuit_breaker: cb
        ? { enabled: true, mode: cb.mode, backend: cb.backend, redis_fallback: cb.redis_fallback }
        : { enabled: false },
    });
  });
  admin.all("/providers/status", allow("GET"));
}
