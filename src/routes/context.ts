import type { Runtime } from "../runtime.ts";
import type { Exchange } from "../pipeline/exchange.ts";

/**
 * What the Hono context carries per request: the exchange (all per-request state) and the
 * runtime pinned for it. Nothing else.
 */
export interface RequestVars {
  exchange: Exchange;
  runtime: Runtime;
}

export interface AppEnv {
  Variables: RequestVars;
  Bindings: { remoteAddr?: Deno.Addr };
}
