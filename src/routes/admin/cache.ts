import { allow } from "../../server/middleware/error_handler.ts";
import type { Hono } from "hono";
import { GatewayError } from "../../errors.ts";
import type { Control } from "../../pipeline/control.ts";
import type { AppEnv } from "../context.ts";
import { send } from "../../server/whole.ts";

/**
 * `POST /api/v1/cache/clear` (llm-gateway): drop every cached answer (with Redis, the
 * fleet's). 409 when the cache is disabled, 503 when Redis cannot be reached.
 */
export function cacheRoutes(admin: Hono<AppEnv>, control: Control): void {
  admin.post("/cache/clear", async (c) => {
    const rt = control.state().runtime;
    if (rt.cache === null) {
      throw new GatewayError(
        "invalid_request",
        "The response cache is disabled (cache.enabled: false): nothing to clear",
        { status: 409 },
      );
    }
    let cleared: number;
    try {
      cleared = await rt.cache.clear();
    } catch (err) {
      throw new GatewayError("unavailable", "The cache store cannot be reached right now", {
        cause: err,
      });
    }
    rt.logger.info("response cache cleared", { entries: cleared });
    return send(c, "json", { status: "ok", cleared });
  });
  admin.all("/cache/clear", allow("POST"));
}
