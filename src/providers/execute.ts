import { GatewayError } from "../errors.ts";
import { scheduleDeadline } from "./deadline.ts";

export interface UpstreamRequest {
  readonly url: string;
  readonly method: string;
  /** A plain record: cheaper for `fetch` to take than a `Headers` copy per request. */
  readonly headers: Record<string, string> | Headers;
  /** A string for translated calls; the client's stream for native passthrough. */
  readonly body: string | Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null;
}

export interface UpstreamReply {
  readonly response: Response;
  /** Stop the per-attempt timer; call once the part the timeout covers is done. */
  readonly settle: () => void;
  /** Read the whole body as text, still under the attempt's timeout. */
  readonly text: () => Promise<string>;
  /** Read the whole body as bytes, still under the attempt's timeout. */
  readonly bytes: () => Promise<Uint8Array<ArrayBuffer>>;
}

/** Reply headers the breaker's classification reads (llm-proxy's provider rules). */
const CLASSIFYING_HEADERS = [
  "retry-after",
  "x-ratelimit-remaining-requests",
  "x-ratelimit-remaining-tokens",
  "x-amzn-errortype",
];

/** Marks an abort caused by our own timer (as opposed to the client leaving). */
const TIMED_OUT = Symbol("timed out");

/**
 * The one place that calls `fetch` for upstreams. Links the client's abort signal
 * and a per-attempt timer to one controller and maps transport failures to gateway errors:
 * a refused or reset connection is 502 `upstream_unreachable`, an expired timer 504
 * `upstream_timeout`. Errors are built only on failure: a GatewayError captures a stack.
 */
export async function executeUpstream(
  fetchFn: typeof fetch,
  req: UpstreamRequest,
  opts: {
    signal: AbortSignal;
    timeoutMs: number;
    provider: string;
    /**
     * Turns a non-2xx reply into the provider's error, thrown after reading the body; 3xx is
     * refused. Without it (native passthrough) every reply is handed back as it came.
     */
    toError?: (status: number, body: string, headers: Headers) => GatewayError;
  },
): Promise<UpstreamReply> {
  const controller = new AbortController();
  const onClientAbort = () => controller.abort(opts.signal.reason);
  if (opts.signal.aborted) onClientAbort();
  else opts.signal.addEventListener("abort", onClientAbort, { once: true });
  const settle = scheduleDeadline(opts.timeoutMs, () => controller.abort(TIMED_OUT));
  const fail = (err: unknown): never => {
    settle();
    if (controller.signal.reason === TIMED_OUT) {
      throw new GatewayError(
        "upstream_timeout",
        `Provider "${opts.provider}" did not answer within ${opts.timeoutMs} ms`,
        { provider: opts.provider },
      );
    }
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
      signal: controller.signal,
      redirect: "manual", // a redirect could point at a host that is not configured
    });
  } catch (err) {
    return fail(err);
  }
  if (opts.toError && response.status >= 300 && response.status < 400) {
    settle();
    await response.body?.cancel().catch(() => {});
    // Redirects are not followed: they could lead to a host that is not configured.
    throw new GatewayError(
      "upstream_error",
      `Provider "${opts.provider}" answered with a redirect (HTTP ${response.status}), which is not followed`,
      { provider: opts.provider, upstreamStatus: response.status },
    );
  }
  const read = <T>(how: () => Promise<T>) => async (): Promise<T> => {
    try {
      const body = await how();
      settle();
      return body;
    } catch (err) {
      return fail(err);
    }
  };
  if (opts.toError && (response.status < 200 || response.status >= 300)) {
    const text = await read(() => response.text())();
    const err = opts.toError(response.status, text, response.headers);
    const kept: Record<string, string> = {};
    for (const name of CLASSIFYING_HEADERS) {
      const value = response.headers.get(name);
      if (value !== null) kept[name] = value;
    }
    throw new GatewayError(err.code, err.message, { ...err.info, upstreamHeaders: kept });
  }
  return {
    response,
    settle,
    text: read(() => response.text()),
    bytes: read(() => response.bytes()),
  };
}

/** Header names lower-cased, so configured headers merge predictably with ours. */
export function lowerCaseKeys(headers: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}
