import type { GatewayError } from "../../errors.ts";
import type { Redactor } from "../../telemetry/mod.ts";
import { fallbackMessage, streamFailedMessage, upstreamError } from "../shared/errors.ts";

/**
 * Map a non-2xx Gemini reply to a GatewayError that keeps the HTTP status, the message
 * (redacted: a Google error may quote the request URL, `?key=` included) and the
 * `google.rpc.Status` name (`RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`, ...) as the code. The
 * body is `{"error":{"code","message","status","details"}}`, or an array holding that
 * object (what the streaming endpoint answers with).
 *
 * Two Gemini quirks are smoothed over so routing treats them like every other provider:
 * - an unknown or revoked key is a 400 `INVALID_ARGUMENT` whose details carry
 *   `ErrorInfo.reason: "API_KEY_INVALID"`; it becomes a 401, so the key rests and another
 *   key of the provider is tried;
 * - a 429 carries no `Retry-After` header, only `RetryInfo.retryDelay` ("38s") in the
 *   details; that delay becomes the `retry-after` header when the reply has none.
 */
export function fromGeminiError(
  status: number,
  text: string,
  headers: Headers,
  provider: string,
  redact: Redactor,
): GatewayError {
  const parsed = readErrorBody(text);
  const message = parsed?.message ||
    fallbackMessage(text, parsed !== null, status, provider, { opaque: ["{", "["] });
  const keyInvalid = status === 400 && hasReason(parsed?.details, "API_KEY_INVALID");
  return upstreamError(redact(message), {
    status: keyInvalid ? 401 : status,
    provider,
    upstreamCode: parsed?.status,
    retryAfter: headers.get("retry-after") ?? retryDelaySeconds(parsed?.details),
  });
}

/**
 * The GatewayError for a `data: {"error":{...}}` event inside a 200 stream (an overload
 * after the first tokens, typically). The status comes from the error's `code`.
 */
export function fromGeminiStreamError(
  error: unknown,
  provider: string,
  redact: Redactor,
): GatewayError {
  const e = readError(error);
  const status = e.code !== undefined && e.code >= 400 && e.code <= 599 ? e.code : undefined;
  const message = e.message !== undefined && e.message !== ""
    ? redact(e.message)
    : streamFailedMessage(provider, e.status);
  return upstreamError(message, { status, provider, upstreamCode: e.status });
}

interface ErrorFields {
  code?: number;
  message?: string;
  status?: string;
  details?: unknown[];
}

/** null when the text is not JSON; `{}` when it is JSON without a usable `error` object. */
function readErrorBody(text: string): ErrorFields | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  const body = Array.isArray(parsed) ? parsed[0] : parsed;
  if (body === null || typeof body !== "object") return {};
  return readError((body as { error?: unknown }).error);
}

function readError(error: unknown): ErrorFields {
  if (error === null || typeof error !== "object") return {};
  const e = error as Record<string, unknown>;
  return {
    ...(typeof e.code === "number" ? { code: e.code } : {}),
    ...(typeof e.message === "string" ? { message: e.message } : {}),
    ...(typeof e.status === "string" ? { status: e.status } : {}),
    ...(Array.isArray(e.details) ? { details: e.details } : {}),
  };
}

function detailsOfType(details: unknown[] | undefined, type: string): Record<string, unknown>[] {
  return (details ?? []).filter((d): d is Record<string, unknown> =>
    d !== null && typeof d === "object" && (d as Record<string, unknown>)["@type"] === type
  );
}

function hasReason(details: unknown[] | undefined, reason: string): boolean {
  return detailsOfType(details, "type.googleapis.com/google.rpc.ErrorInfo")
    .some((d) => d.reason === reason);
}

/**
 * `RetryInfo.retryDelay` is a protobuf Duration in JSON form: decimal seconds with an `s`
 * suffix, fractions allowed ("45.837906927s"). Rounded up to whole seconds, as
 * `Retry-After` wants them.
 */
function retryDelaySeconds(details: unknown[] | undefined): string | null {
  for (const d of detailsOfType(details, "type.googleapis.com/google.rpc.RetryInfo")) {
    const m = typeof d.retryDelay === "string" ? /^(\d+(?:\.\d+)?)s$/.exec(d.retryDelay) : null;
    if (m) return String(Math.ceil(Number(m[1])));
  }
  return null;
}
