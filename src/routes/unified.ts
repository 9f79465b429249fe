import type { Context } from "hono";
import { readJsonBody } from "./body.ts";
import type { AppEnv } from "./context.ts";
import type { ErrorFormat, Exchange } from "../pipeline/exchange.ts";
import { runExchange, type UnifiedRoute } from "../pipeline/run.ts";

/**
 * A unified route (`/v1/chat/completions`, `/v1/messages`, `/v1/embeddings`): the error
 * envelope is chosen first, so a malformed body is answered in it too; the JSON body is
 * read under the limits; then the exchange runs (decode, stages, failover, encode).
 */
export function unifiedHandler(route: UnifiedRoute, errorFormat: ErrorFormat) {
  return async function unified(c: Context<AppEnv>): Promise<Response> {
    const ex: Exchange = c.get("exchange");
    ex.errorFormat = errorFormat;
    const raw = await readJsonBody(
      c.req.raw,
      ex.runtime.config.server.max_body_bytes,
      ex.deadlines?.body,
      ex.runtime.schedule,
    );
    return await runExchange(ex, route, raw, c.req.raw.signal);
  };
}
