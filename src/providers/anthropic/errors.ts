import type { GatewayError } from "../../errors.ts";
import type { Redactor } from "../../telemetry/mod.ts";
import { fallbackMessage, streamFailedMessage, upstreamError } from "../shared/errors.ts";

/**
 * HTTP status behind each Anthropic error `type` (API errors page). Used for `event: error`
 * inside a 200 stream, which carries a type but no status, so the breaker and the client
 * still see an overload as 529 and a rate limit as 429.
 */
const STATUS_BY_TYPE: Readonly<Record<string, number>> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  timeout_error: 504,
  overloaded_error: 529,
};

/**
 * Map a non-2xx Anthropic reply (`{"type":"error","error":{"type","message"}}`) to a
 * GatewayError that keeps the upstream status (529 stays 529: retryable like any 5xx), the
 * error type and the message, redacted, since an upstream message may quote a credential.
 * The type is Anthropic's word, so it is kept as the code (`upstreamCode`): on OpenAI-format
 * routes `type` is OpenAI's, by status, and `code` says `overloaded_error`.
 */
export function fromAnthropicError(
  status: number,
  text: string,
  headers: Headers,
  provider: string,
  redact: Redactor,
): GatewayError {
  const parsed = readErrorBody(text);
  const message = parsed?.message || fallbackMessage(text, parsed !== null, status, provider);
  return upstreamError(redact(message), {
    status,
    provider,
    upstreamCode: parsed?.type,
    retryAfter: headers.get("retry-after"),
  });
}

/**
 * The GatewayError for an `event: error` in the middle of a stream. The status follows the
 * error type (overloaded_error -> 529); the route renders it as an in-stream error event.
 */
export function fromAnthropicStreamError(
  error: unknown,
  provider: string,
  redact: Redactor,
): GatewayError {
  const e = error !== null && typeof error === "object" ? error as Record<string, unknown> : {};
  const type = typeof e.type === "string" ? e.type : undefined;
  const status = type !== undefined ? STATUS_BY_TYPE[type] : undefined;
  const message = typeof e.message === "string" && e.message !== ""
    ? redact(e.message)
    : streamFailedMessage(provider, type);
  return upstreamError(message, { status, provider, upstreamCode: type });
}

function readErrorBody(text: string): { type?: string; message?: string } | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (parsed === null || typeof parsed !== "object") return null;
  const err = (parsed as { error?: unknown }).error;
  if (err === null || typeof err !== "object") return {};
  const e = err as Record<string, unknown>;
  return {
    ...(typeof e.type === "string" ? { type: e.type } : {}),
    ...(typeof e.message === "string" ? { message: e.message } : {}),
  };
}

/** An `event: error`'s data, as an error; null for any other event. */
export function anthropicStreamFailure(
  data: string,
  provider: string,
  redact: Redactor,
): GatewayError | null {
  if (!data.includes('"error"')) return null;
  let event: { type?: unknown; error?: unknown } | null;
  try {
    event = JSON.parse(data) as { type?: unknown; error?: unknown } | null;
  } catch {
    return null;
  }
  return event?.type === "error" ? fromAnthropicStreamError(event.error, provider, redact) : null;
}
