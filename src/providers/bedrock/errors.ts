import type { GatewayError } from "../../errors.ts";
import { isObject } from "../../schema/openai.ts";
import type { Redactor } from "../../telemetry/mod.ts";
import { fallbackMessage, streamFailedMessage, upstreamError } from "../shared/errors.ts";

/**
 * HTTP status behind each Bedrock Runtime exception (Converse / ConverseStream API
 * reference). Used for exception frames inside a 200 event stream, which carry the
 * exception's name but no status, so the breaker and the client still see a throttle as
 * 429 and an unavailable service as 503.
 */
const STATUS_BY_EXCEPTION: Readonly<Record<string, number>> = {
  ValidationException: 400,
  ServiceQuotaExceededException: 400,
  AccessDeniedException: 403,
  ResourceNotFoundException: 404,
  ModelTimeoutException: 408,
  ModelErrorException: 424,
  ModelStreamErrorException: 424,
  ThrottlingException: 429,
  ModelNotReadyException: 429,
  InternalServerException: 500,
  ServiceUnavailableException: 503,
};

/**
 * Credential failures: after one of these the cached credentials are dropped, so the next
 * attempt reads them again (a rotated credentials file is picked up without a reload).
 */
export const CREDENTIAL_EXCEPTIONS: ReadonlySet<string> = new Set([
  "ExpiredTokenException",
  "UnrecognizedClientException",
]);

/**
 * Map a non-2xx Bedrock reply (`{"message": "..."}` with the exception name in the
 * `x-amzn-errortype` header, `ThrottlingException:http://internal.amazon.com/...`) to a
 * GatewayError that keeps the status, the exception name (as `upstreamCode`, which the
 * breaker classifies, and OpenAI-format routes show as `code` beside OpenAI's `type`) and the message, redacted. AWS's InvalidSignatureException message
 * goes on to quote the canonical request, security-token header included: that part is cut.
 */
export function fromBedrockError(
  status: number,
  text: string,
  headers: Headers,
  provider: string,
  redact: Redactor,
): GatewayError {
  const parsed = readErrorBody(text);
  const type = exceptionName(headers.get("x-amzn-errortype") ?? parsed?.type ?? "");
  const message = parsed?.message ||
    fallbackMessage(text, parsed !== null, status, provider, { detail: type });
  return upstreamError(clean(message, redact), {
    status,
    provider,
    upstreamCode: type !== "" ? type : undefined,
    retryAfter: headers.get("retry-after"),
  });
}

/**
 * The GatewayError for an exception frame in the middle of a ConverseStream
 * (`:message-type: exception`, `:exception-type: throttlingException`, payload
 * `{"message": "..."}`), or for a protocol error frame (`:message-type: error` with
 * `:error-code` / `:error-message` headers). The stream member names are camelCase; the
 * exception is reported under its shape name (`ThrottlingException`), as a non-stream
 * error would be.
 */
export function fromBedrockStreamException(
  exceptionType: string,
  message: string,
  provider: string,
  redact: Redactor,
): GatewayError {
  const type = exceptionType === "" ? "" : exceptionType[0]!.toUpperCase() + exceptionType.slice(1);
  const status = STATUS_BY_EXCEPTION[type];
  const text = message !== "" ? clean(message, redact) : streamFailedMessage(provider, type);
  return upstreamError(text, { status, provider, upstreamCode: type !== "" ? type : undefined });
}

/** An exception frame's payload is `{"message": "..."}`; anything else is shown as is. */
export function exceptionMessage(payload: string): string {
  try {
    const parsed: unknown = JSON.parse(payload);
    if (isObject(parsed)) {
      const m = parsed.message ?? parsed.Message;
      if (typeof m === "string") return m;
    }
  } catch {
    // not JSON
  }
  return payload.length < 500 ? payload.trim() : "";
}

/** `ThrottlingException:http://...` or `com.amazon.coral.service#ExpiredTokenException` -> name. */
function exceptionName(raw: string): string {
  const beforeColon = raw.split(":")[0] ?? "";
  return (beforeColon.split("#").at(-1) ?? "").trim();
}

function clean(message: string, redact: Redactor): string {
  const cut = message.search(/\s*The Canonical String for this request/);
  return redact(cut >= 0 ? message.slice(0, cut) : message);
}

/** null when the text is not JSON; `{}` when it is JSON without usable fields. */
function readErrorBody(text: string): { type?: string; message?: string } | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return {};
  const e = parsed as Record<string, unknown>;
  // AWS JSON protocols spell it `message` or `Message`, and may name the type in `__type`.
  const message = typeof e.message === "string"
    ? e.message
    : typeof e.Message === "string"
    ? e.Message
    : undefined;
  return {
    ...(typeof e.__type === "string" ? { type: e.__type } : {}),
    ...(message !== undefined ? { message } : {}),
  };
}
