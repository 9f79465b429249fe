import type { Context, Next } from "hono";
import { GatewayError } from "../../errors.ts";
import type { AppEnv } from "../context.ts";

/** Constant-time comparison, so the token cannot be guessed byte by byte from timings. */
function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/**
 * Admin routes: 403 while `server.admin_token` is unset (the API is off), 401 without the
 * right `Authorization: Bearer <token>`. Errors are OpenAI-shaped JSON.
 */
export async function requireAdmin(c: Context<AppEnv>, next: Next): Promise<void | Response> {
  c.get("exchange").errorFormat = "openai_json";
  const token = c.get("runtime").config.server.admin_token;
  if (!token) {
    throw new GatewayError(
      "forbidden",
      "The admin API is disabled: set server.admin_token to enable it",
    );
  }
  const auth = c.req.header("authorization") ?? "";
  const given = /^Bearer\s+(.+)$/i.exec(auth)?.[1]?.trim() ?? "";
  if (!sameSecret(given, token)) {
    throw new GatewayError(
      "unauthenticated",
      "The admin API needs Authorization: Bearer <server.admin_token>",
    );
  }
  await next();
}
