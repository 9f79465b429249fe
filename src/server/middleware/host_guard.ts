import type { MiddlewareHandler } from "hono";
import { GatewayError } from "../../errors.ts";
import type { AppEnv } from "../../routes/mod.ts";
import { errorResponse } from "../../pipeline/encode/error.ts";

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
      // In the format of the route the client asked for: its path follows the host in the URL.
      const error = new GatewayError("invalid_request", "Invalid Host header");
      return Promise.resolve(errorResponse(error, undefined, requestedPath(c.req.raw.url, host)));
    }
    return next();
  };
}

/** The path the client sent, out of a URL whose authority is its (bad) Host header. */
function requestedPath(url: string, host: string): string {
  const at = url.indexOf(host);
  const rest = at < 0 ? "/" : url.slice(at + host.length);
  const path = rest.split(/[?#]/, 1)[0] ?? "";
  return path.startsWith("/") ? path : "/";
}
