import { GatewayError } from "../errors.ts";

export interface UpstreamRequest {
  readonly url: string;
  readonly method: "GET" | "POST";
  readonly headers: Headers;
  readonly body: string | null;
}

export interface UpstreamReply {
  readonly response: Response;
  /** Stop the per-attempt timer; call once the part the timeout covers is done. */
  readonly settle: () => void;
  /** Read the whole body as text, still under the attempt's timeout. */
  readonly text: () => Promise<string>;
}

/**
 * The one place that calls `fetch` for the unified API. Combines the client's abort signal
 * with a per-attempt timeout and maps transport failures to gateway errors: a refused or
 * reset connection is 502 `upstream_unreachable`, an expired timer 504 `upstream_timeout`.
 */
export async function executeUpstream(
  fetchFn: typeof fetch,
  req: UpstreamRequest,
  opts: { signal: AbortSignal; timeoutMs: number; provider: string },
): Promise<UpstreamReply> {
  const timer = new AbortController();
  const timeoutError = new GatewayError(
    "upstream_timeout",
    `Provider "${opts.provider}" did not answer within ${opts.timeoutMs} ms`,
    { provider: opts.provider },
  );
  const handle = setTimeout(() => timer.abort(timeoutError), opts.timeoutMs);
  const settle = () => clearTimeout(handle);
  const signal = AbortSignal.any([opts.signal, timer.signal]);
  const fail = (err: unknown): never => {
    settle();
    if (timer.signal.aborted) throw timeoutError;
    if (opts.signal.aborted) {
      throw new GatewayError("upstream_unreachable", "Client closed the request", {
        provider: opts.provider,
        status: 499,
        retryable: false,
        cause: err,
      });
    }
    if (err instanceof GatewayError) throw err;
    throw new GatewayError(
      "upstream_unreachable",
      `Provider "${opts.provider}" is unreachable: ${(err as Error).message ?? String(err)}`,
      { provider: opts.provider, cause: err },
    );
  };
  let response: Response;
  try {
    response = await fetchFn(req.url, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      signal,
      redirect: "manual", // a redirect could point at a host that is not configured
    });
  } catch (err) {
    return fail(err);
  }
  return {
    response,
    settle,
    text: async () => {
      try {
        const body = await response.text();
        settle();
        return body;
      } catch (err) {
        return fail(err);
      }
    },
  };
}
