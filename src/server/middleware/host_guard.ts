import type { MiddlewareHandler } from "hono";
import { GatewayError } from "../../errors.ts";
import type { AppEnv } from "../../routes/mod.ts";

/**
 * `Deno.serve` pastes the Host header into `request.url` unchecked, so `Host: a/b` shifts
 * the path the router sees and `Host: a:b:c` makes the URL unparsable. A sidecar is reached
 * as `localhost:9002`, `127.0.0.1`, `[::1]` or a socket's placeholder name: anything that is
 * not a plain host[:port] is refused before routing can act on the mangled URL.
 */
const HOST_RE =
  /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

export function hostGuard(): MiddlewareHandler<AppEnv> {
  // Not async: a pass-through middleware that awaits costs a promise and a frame per request.
  return function hostGuard(c, next) {
    const host = c.req.raw.headers.get("host");
    if (host !== null && host !== "" && !HOST_RE.test(host)) {
      throw new GatewayError("invalid_request", "Invalid Host header");
    }
    return next();
  };
}
