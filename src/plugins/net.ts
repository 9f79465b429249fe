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

/** `base`, refusing any URL outside `allowed`, redirects included (followed here, checked first). */
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
      if (!REDIRECTS.has(res.status) || location === null || hop === MAX_REDIRECTS) return res;
      await res.body?.cancel();
      url = new URL(location, url);
      const method = (opts.method ?? "GET").toUpperCase();
      // As browsers and Deno's own fetch do: 303 (and 301/302 after a POST) become a GET.
      if ((res.status === 303 && method !== "HEAD") || (res.status <= 302 && method === "POST")) {
        const { body: _body, ...rest } = opts;
        opts = { ...rest, method: "GET" };
      }
    }
  };
}
