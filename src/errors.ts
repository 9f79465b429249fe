import type { OpenAIUsage } from "./schema/openai.ts";

/**
 * One error type for every failure the gateway reports. Routes render it in the
 * envelope of the API they speak (see `server/middleware/error_handler.ts`).
 */
export type ErrorCode =
  | "invalid_request"
  | "unauthenticated"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "payload_too_large"
  | "request_timeout"
  | "unsupported_media_type"
  | "rate_limited"
  /** The client left before its answer (nginx's 499): nothing is sent, it is logged so. */
  | "client_closed"
  | "not_implemented"
  | "upstream_timeout"
  | "upstream_unreachable"
  | "upstream_error"
  | "unavailable"
  | "provider_degraded"
  | "stage_failed"
  | "internal";

const STATUS_BY_CODE: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  request_timeout: 408,
  unsupported_media_type: 415,
  rate_limited: 429,
  client_closed: 499,
  not_implemented: 501,
  upstream_timeout: 504,
  upstream_unreachable: 502,
  upstream_error: 502,
  unavailable: 503,
  provider_degraded: 503,
  // A pipeline stage with `fail_mode: closed` threw or overran its budget.
  stage_failed: 500,
  internal: 500,
};

const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set([
  "rate_limited",
  "upstream_timeout",
  "upstream_unreachable",
]);

export interface GatewayErrorInfo {
  /** HTTP status to answer with; defaults to the code's status. */
  status?: number;
  retryable?: boolean;
  provider?: string;
  upstreamStatus?: number;
  /** The request field at fault, reported as OpenAI's `param`. */
  param?: string;
  /**
   * An OpenAI-format upstream's error `type` (OpenAI's vocabulary: rendered as `type`), never
   * its raw body.
   */
  upstreamType?: string;
  /**
   * The upstream's own code: OpenAI's `code`, or another provider's error name (Anthropic's
   * type, Bedrock's exception, Gemini's status), rendered as OpenAI's `code`. Null when the
   * upstream said `"code": null`: rendered as such.
   */
  upstreamCode?: string | null;
  headers?: Record<string, string>;
  /**
   * Anthropic's machine-readable `error.details` (its SDKs act on `details.error_code`, e.g.
   * `thread_not_found`), rendered on Anthropic-format answers.
   */
  details?: Readonly<Record<string, unknown>>;
  /** The upstream reply's headers that classify it (rate-limit budgets, AWS error type). */
  upstreamHeaders?: Record<string, string>;
  /**
   * What the provider billed before this failure: the calls of an embeddings fan-out that
   * answered before one failed. The failed attempt is billed for it.
   */
  spent?: OpenAIUsage;
  /**
   * The request never left: the connection to the provider could not be made (refused, DNS,
   * TLS). Nothing reached the provider: no usage, and a rate limit's request is given back.
   */
  unsent?: boolean;
  /** Native passthrough: the untouched upstream reply, relayed if this error is the last. */
  response?: Response;
  /**
   * A stream's failure the client already got in its own format (the upstream's error event,
   * relayed as it came): it ends the stream and is logged, and nothing more is sent.
   */
  told?: boolean;
  /**
   * The gateway is not set up to call this provider (e.g. no credentials to sign with): no
   * call was made, so it says nothing of the provider's health. Failover moves on to the next
   * target at once, without retrying it, and the breaker does not count it.
   */
  unconfigured?: boolean;
  /**
   * A limit the client set (`x-gateway.timeout`, `first_chunk_timeout`) cut the call before
   * the provider's own timeout would have: the client's choice says nothing of the provider's
   * health, so the breaker does not count it (one client must not open it for all).
   */
  clientLimit?: boolean;
  cause?: unknown;
}

export class GatewayError extends Error {
  override readonly name = "GatewayError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly info: GatewayErrorInfo = {},
  ) {
    super(capMessage(message), { cause: info.cause });
  }

  get status(): number {
    return this.info.status ?? STATUS_BY_CODE[this.code];
  }

  get retryable(): boolean {
    if (this.info.retryable !== undefined) return this.info.retryable;
    if (RETRYABLE_CODES.has(this.code)) return true;
    const s = this.info.upstreamStatus;
    return s !== undefined && (s === 429 || s >= 500);
  }
}

/**
 * Messages quote what clients sent (a model name, a role, a part type); a 60 KB value must not
 * come back whole in the error body and the log line.
 */
export const MAX_MESSAGE_CHARS = 4096;

function capMessage(message: string): string {
  if (message.length <= MAX_MESSAGE_CHARS) return message;
  const cut = message.length - MAX_MESSAGE_CHARS;
  return `${message.slice(0, MAX_MESSAGE_CHARS)}\u2026 (${cut} more characters)`;
}

/** Narrow anything thrown into a GatewayError; unknown failures become `internal`. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  return tooDeep(err) ?? new GatewayError("internal", "Internal gateway error", { cause: err });
}

/**
 * A body nested deeper than the runtime can walk (`JSON.parse` takes any depth, recursion
 * such as `JSON.stringify` does not) is the client's input, refused with 400: never a 500,
 * and never a provider failure that would be retried or counted by the breaker.
 */
export function tooDeep(err: unknown): GatewayError | null {
  if (!(err instanceof RangeError) || !err.message.includes("call stack")) return null;
  return new GatewayError(
    "invalid_request",
    "The request body is nested too deeply to process",
    { cause: err },
  );
}

/** The same error with extra response headers (e.g. `x-pilotfish-attempts`). */
export function withHeaders(err: GatewayError, headers: Record<string, string>): GatewayError {
  return new GatewayError(err.code, err.message, {
    ...err.info,
    headers: { ...err.info.headers, ...headers },
  });
}
