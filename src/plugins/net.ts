/**
 * `allowed_hosts` for a guest's `http_request`. Extism matches a URL's host name only, so a
 * `host:port` entry would never match there; it is given the names, and its `fetch` is this
 * one, which holds every request (and every redirect it follows) to the entries themselves:
 * `host` allows any port of it, `host:port` that port only.
 * @module
 */

/** The entries' host names, lowercased and without ports: what Extism's own check sees. */
export function hostNames(allowed: readonly string[]): string[] {
  return [...new Set(allowed.map((h) => h.toLowerCase().replace(/:\d+$/, "")))];
}

/** Whether `url` is one of `allowed` (`host` or `host:port`, the scheme's port by default). */
export function isAllowed(url: URL, allowed: readonly string[]): boolean {
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  const host = url.hostname.toLowerCase();
  return allowed.some((entry) => {
    const e = entry.toLowerCase();
    return e === host || e === `${host}:${port}`;
  });
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 20;
/** Dropped when a redirect leaves the origin, as the Fetch standard (and Deno's fetch) does. */
const CREDENTIALS = ["authorization", "proxy-authorization", "cookie"];
/** Dropped with the body when a redirect turns the request into a GET. */
const BODY_HEADERS = ["content-type", "content-length", "content-encoding", "content-language"];

/**
 * `base`, refusing any URL outside `allowed`, redirects included: followed here (each target
 * checked first) the way fetch follows them, credentials dropped when the origin changes.
 */
export function guardedFetch(allowed: readonly string[], base: typeof fetch = fetch): typeof fetch {
  return async (input, init) => {
    let url = new URL(input instanceof Request ? input.url : String(input));
    let opts: RequestInit = { ...init, redirect: "manual" };
    for (let hop = 0;; hop++) {
      if (!isAllowed(url, allowed)) {
        throw new Error(
          `HTTP request to "${url}" is not allowed (allowed_hosts has no entry for "${url.host}")`,
        );
      }
      const res = await base(url, opts);
      const location = res.headers.get("location");
      if (!REDIRECTS.has(res.status) || location === null) return res;
      await res.body?.cancel();
      if (hop === MAX_REDIRECTS) {
        throw new TypeError(`HTTP request to "${url}": too many redirects`);
      }
      const next = new URL(location, url);
      const headers = new Headers(opts.headers);
      if (next.origin !== url.origin) { for (const h of CREDENTIALS) headers.delete(h); }
      const method = (opts.method ?? "GET").toUpperCase();
      // As browsers and Deno's own fetch do: 303 (and 301/302 after a POST) become a GET.
      if ((res.status === 303 && method !== "HEAD") || (res.status <= 302 && method === "POST")) {
        const { body: _body, ...rest } = opts;
        for (const h of BODY_HEADERS) headers.delete(h);
        opts = { ...rest, method: "GET", headers };
      } else {
        opts = { ...opts, headers };
      }
      url = next;
    }
  };
}
