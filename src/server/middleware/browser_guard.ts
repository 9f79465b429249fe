import type { MiddlewareHandler } from "hono";
import type { CorsConfig } from "../../config/mod.ts";
import { GatewayError } from "../../errors.ts";
import type { AppEnv } from "../../routes/mod.ts";
import { errorResponse } from "../../pipeline/encode/error.ts";

/**
 * What a web page in a browser on the sidecar's host must not do with the provider keys:
 *
 * - **Cross-site requests.** A browser sends a "simple" POST (`text/plain`, a form) to
 *   `127.0.0.1:9002` from any page without asking first; the page cannot read the answer, but
 *   the call is made and paid. A GET of a passthrough path goes upstream with a configured key
 *   too. A request that a browser marks as coming from another site (`Sec-Fetch-Site`, else an
 *   `Origin` other than the Host it was sent to) is refused unless `server.cors` lets that
 *   origin in: every state-changing one, and reads of paths that reach a provider (`checked`).
 *   SDKs, curl and servers send neither header: they are not affected.
 * - **DNS rebinding.** A page whose name an attacker re-points at 127.0.0.1 is same-origin with
 *   the sidecar and could read its answers. A daemon that listens on loopback only answers TCP
 *   requests whose Host is a loopback name (`localhost`, `*.localhost`, `127.x.x.x`, `[::1]`)
 *   or its own `server.host`. The Unix socket is not reachable from a browser: not checked.
 */
export function browserGuard(): MiddlewareHandler<AppEnv> {
  // Not async: a pass-through middleware that awaits costs a promise and a frame per request.
  return function browserGuard(c, next) {
    const req = c.req.raw;
    const rt = c.get("runtime");
    const ex = c.get("exchange");
    // Deno.serve builds `req.url` from the Host header (host_guard.ts checked its shape):
    // its authority is the Host, without another header lookup.
    const refused = ex.principal.ip !== undefined
      ? rebound(authority(req.url), rt.config.server.host)
      : null;
    const cors = rt.config.server.cors;
    const problem = refused ??
      (checked(req.method, req.url, cors) ? crossSite(req.headers, cors) : null);
    if (problem === null) return next();
    return Promise.resolve(
      errorResponse(new GatewayError("forbidden", problem), ex, pathOf(req.url)),
    );
  };
}

/**
 * `host[:port]` of an absolute URL, and its path: read from the string, since the URL of an
 * odd request (`CONNECT a:1:2`) does not parse.
 */
function authority(url: string): string {
  const start = url.indexOf("//") + 2;
  const end = url.indexOf("/", start);
  return end < 0 ? url.slice(start) : url.slice(start, end);
}

function pathOf(url: string): string {
  const end = url.indexOf("/", url.indexOf("//") + 2);
  const path = end < 0 ? "/" : url.slice(end).split(/[?#]/, 1)[0] as string;
  return path === "" ? "/" : path;
}

/** Methods a browser may send anywhere and that change nothing here. */
const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

/** Paths that reach a provider with a configured key (unified and passthrough routes). */
const PROVIDER_PATH = /^\/(?:v1|openai|anthropic|gemini|bedrock|native)(?:\/|$)/;

/**
 * Whether a request is one a page on another site may not send: any state-changing request;
 * a read (GET, HEAD) too where it reaches a provider with a configured key (a passthrough GET
 * of `/openai/v1/files/...`); a preflight there while CORS is off (it would go upstream). Reads
 * of the operator's pages (`/status`, `/health`, `/metrics`) stay open: a link may lead there.
 */
function checked(method: string, url: string, cors: CorsConfig): boolean {
  if (!SAFE.has(method)) return true;
  if (method === "OPTIONS" && cors.enabled) return false; // answered by CORS, never upstream
  return PROVIDER_PATH.test(pathOf(url));
}

/** Why a request from another site is refused, or null when it is not one (or is let in). */
export function crossSite(headers: Headers, cors: CorsConfig): string | null {
  const origin = headers.get("origin");
  const site = headers.get("sec-fetch-site");
  if (site !== null) {
    if (site === "same-origin" || site === "none") return null;
  } else {
    // No Fetch Metadata (an older browser): an Origin that is not the Host it was sent to.
    if (origin === null || sameHost(origin, headers.get("host"))) return null;
  }
  if (origin !== null && allowed(origin, cors)) return null;
  return `Cross-site request refused: a browser sent it from ${
    origin === null || origin === "null" ? "another site" : JSON.stringify(origin)
  }, and server.cors does not allow that origin`;
}

function allowed(origin: string, cors: CorsConfig): boolean {
  return cors.enabled &&
    (cors.allowed_origins.includes("*") || cors.allowed_origins.includes(origin));
}

function sameHost(origin: string, host: string | null): boolean {
  if (host === null) return false;
  try {
    return new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

/**
 * Why a TCP request's Host is refused (DNS rebinding), or null. Only for a daemon listening on
 * loopback only: behind a wildcard address it is reached by names it cannot know.
 */
export function rebound(host: string | null, listen: string): string | null {
  if (host === null || host === "" || !listensOnLoopback(listen)) return null;
  const name = hostName(host);
  if (name === "127.0.0.1" || name === "localhost") return null; // nearly every request
  if (isLoopback(name) || name === listen.toLowerCase()) return null;
  return `Host ${
    JSON.stringify(host)
  } refused: this daemon listens on loopback (${listen}) and answers to localhost, 127.0.0.1 and [::1] only`;
}

/** The last `server.host` asked about and its answer: one per config generation. */
let lastListen = "";
let lastLoopback = false;
function listensOnLoopback(listen: string): boolean {
  if (listen !== lastListen) {
    lastListen = listen;
    lastLoopback = isLoopback(listen);
  }
  return lastLoopback;
}

/** `host[:port]` -> host, lower case, IPv6 without brackets. */
function hostName(host: string): string {
  const h = host.toLowerCase();
  if (h.startsWith("[")) return h.slice(1, h.indexOf("]"));
  const colon = h.indexOf(":");
  return colon < 0 ? h : h.slice(0, colon);
}

function isLoopback(name: string): boolean {
  const n = name.toLowerCase().replace(/^\[|\]$/g, "");
  return n === "localhost" || n.endsWith(".localhost") || n === "::1" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(n);
}
