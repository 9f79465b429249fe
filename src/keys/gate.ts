import type { MiddlewareHandler } from "hono";
import { GatewayError } from "../errors.ts";
import type { AppEnv } from "../routes/context.ts";
import type { Exchange } from "../pipeline/exchange.ts";
import type { Target } from "../routing/resolve.ts";
import { budgetHeaders } from "./stage.ts";

/**
 * App keys on a route that does not run the stage chain (`GET /v1/models`): the same
 * identification and refusals as the stage's `pre_http`, nothing counted.
 */
export const appKeyGate: MiddlewareHandler<AppEnv> = async function appKeyGate(c, next) {
  const keys = c.get("runtime").keys;
  if (keys !== null) {
    const ex = c.get("exchange");
    ex.errorFormat ??= "openai_json";
    const id = await keys.identify((name) => ex.headers.get(name), ex.search);
    if (id.kind === "refused") {
      if (id.keyId !== undefined) ex.principal.appKey = id.keyId;
      const r = id.refusal;
      const code = r.status === 401
        ? "unauthenticated"
        : r.status === 403
        ? "forbidden"
        : r.status === 429
        ? "rate_limited"
        : "unavailable";
      throw new GatewayError(code, r.message, {
        ...(r.status === 429
          ? { headers: budgetHeaders(r), upstreamCode: "budget_exceeded" }
          : r.retryAfter !== undefined
          ? { headers: { "retry-after": String(r.retryAfter) } }
          : {}),
      });
    }
    if (id.kind === "key") ex.principal.appKey = id.record.id;
  }
  await next();
};

/**
 * The key's model and provider allowlists on a route that runs only the HTTP hooks (the
 * token-counting routes), as the stage's `pre_llm` applies them elsewhere: the targets the
 * exchange's key may use, or a 403. A count is no generation, but it spends the gateway's
 * provider credentials and tells which models exist.
 */
export async function allowedTargets(
  ex: Exchange,
  model: string,
  targets: readonly Target[],
): Promise<readonly Target[]> {
  const keys = ex.runtime.keys;
  const id = ex.principal.appKey;
  if (keys === null || id === undefined) return targets;
  const record = keys.peek(id) ?? await keys.get(id);
  const r = keys.allow(record, model, undefined, targets);
  if ("refusal" in r) throw new GatewayError("forbidden", r.refusal.message);
  return r.targets;
}
