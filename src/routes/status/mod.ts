/**
 * `GET /status`: the self-contained status page, and `GET /api/v1/status`, its JSON.
 * The page holds no data: it fetches the JSON, which needs `Authorization: Bearer
 * <server.admin_token>` when a token is set (the page asks for it and keeps it for the
 * tab's session). With no token set both are open, like `/health`.
 * @module
 */
import type { Context } from "hono";
import { GatewayError } from "../../errors.ts";
import type { AppEnv } from "../context.ts";
import { statusSnapshot } from "../../telemetry/status.ts";
import { STATUS_PAGE } from "./page.ts";
import { send } from "../../server/whole.ts";

/** Constant-time comparison of the bearer token. */
function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

export function statusPage(c: Context<AppEnv>): Response {
  c.get("exchange").errorFormat = "plain";
  return send(c, "html", STATUS_PAGE, 200, {
    "cache-control": "no-store",
    // Everything is inline; nothing may load from elsewhere.
    "content-security-policy":
      "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
  });
}

export async function statusJson(c: Context<AppEnv>): Promise<Response> {
  const ex = c.get("exchange");
  ex.errorFormat = "openai_json";
  const rt = c.get("runtime");
  const token = rt.config.server.admin_token;
  if (token) {
    const given = /^Bearer\s+(.+)$/i.exec(c.req.header("authorization") ?? "")?.[1]?.trim() ?? "";
    if (!sameSecret(given, token)) {
      throw new GatewayError(
        "unauthenticated",
        "The status needs Authorization: Bearer <server.admin_token>",
      );
    }
  }
  const fleet = await rt.observability.fleet().catch(() => null);
  return send(c, "json", { ...statusSnapshot(rt), fleet }, 200, { "cache-control": "no-store" });
}
