import type { Hono } from "hono";
import { GatewayError } from "../../errors.ts";
import type { Control } from "../../pipeline/control.ts";
import type { AppEnv } from "../context.ts";
import { send } from "../../server/whole.ts";

/** `POST /api/v1/reload` and `POST /api/v1/breaker/reset`. */
export function operationsRoutes(admin: Hono<AppEnv>, control: Control): void {
  admin.post("/reload", async (c) => {
    const result = await control.reload();
    return send(c, "json", result, result.ok ? 200 : 422);
  });

  // Body (optional): {"key": "provider" | "provider:model"}; no key resets every key seen.
  admin.post("/breaker/reset", async (c) => {
    let key: string | undefined;
    const text = await c.req.text();
    if (text.trim() !== "") {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new GatewayError("invalid_request", 'Body must be JSON: {"key": "provider[:model]"}');
      }
      const k = (body as { key?: unknown } | null)?.key;
      if (k !== undefined && typeof k !== "string") {
        throw new GatewayError("invalid_request", '"key" must be a string');
      }
      key = k;
    }
    key ??= c.req.query("key");
    return send(c, "json", await control.breakerReset(key));
  });
}
