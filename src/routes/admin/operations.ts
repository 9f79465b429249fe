import { allow } from "../../server/middleware/error_handler.ts";
import type { Hono } from "hono";
import { GatewayError } from "../../errors.ts";
import type { Control } from "../../pipeline/control.ts";
import type { AppEnv } from "../context.ts";
import { send } from "../../server/whole.ts";
import { requestText } from "../body.ts";

/** `POST /api/v1/reload` and `POST /api/v1/breaker/reset`. */
export function operationsRoutes(admin: Hono<AppEnv>, control: Control): void {
  admin.post("/reload", async (c) => {
    const result = await control.reload();
    return send(c, "json", result, result.ok ? 200 : 422);
  });

  // Body (optional): {"key": "provider" | "provider:model"}; no key (an empty body or `{}`)
  // resets every key seen. A body that is not that object resets nothing.
  admin.post("/breaker/reset", async (c) => {
    let key: string | undefined;
    const text = await requestText(c);
    const usage = 'Body must be a JSON object: {"key": "provider[:model]"}, or empty';
    if (text.trim() !== "") {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new GatewayError("invalid_request", usage);
      }
      if (body === null || typeof body !== "object" || Array.isArray(body)) {
        throw new GatewayError("invalid_request", usage);
      }
      const unknown = Object.keys(body).filter((k) => k !== "key");
      if (unknown.length > 0) {
        throw new GatewayError("invalid_request", `Unknown field "${unknown[0]}": ${usage}`);
      }
      const k = (body as { key?: unknown }).key;
      if (k !== undefined && typeof k !== "string") {
        throw new GatewayError("invalid_request", '"key" must be a string');
      }
      key = k;
    }
    key ??= c.req.query("key");
    // An empty key is a mistake, not "every key" (that is no key at all).
    if (key === "") throw new GatewayError("invalid_request", `"key" is empty: ${usage}`);
    if (key !== undefined) {
      const providers = Object.keys(c.get("runtime").config.providers);
      const provider = key.split(":", 1)[0] as string;
      if (!providers.includes(provider)) {
        throw new GatewayError(
          "not_found",
          `"${provider}" is not a configured provider. Configured: ${providers.join(", ")}`,
        );
      }
    }
    return send(c, "json", await control.breakerReset(key));
  });
  admin.all("/reload", allow("POST"));
  admin.all("/breaker/reset", allow("POST"));
}
