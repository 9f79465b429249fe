import type { GatewayError } from "../../errors.ts";
import type { Redactor } from "../../telemetry/mod.ts";
import { streamFailedMessage, upstreamError } from "../shared/errors.ts";

/**
 * Map a non-2xx OpenAI-compatible reply to a GatewayError that keeps the upstream status
 * and message. The body is never echoed verbatim: OpenAI's 401 text quotes part of the
 * key ("Incorrect API key provided: sk-abc***xyz"), so the message goes through the redactor.
 */
export function fromOpenAIError(
  status: number,
  text: string,
  headers: Headers,
  provider: string,
  redact: Redactor,
): GatewayError {
  let message = `Provider "${provider}" answered HTTP ${status}`;
  let type: string | undefined;
  let code: string | null | undefined;
  let param: string | undefined;
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    const err = Array.isArray(parsed) ? (parsed[0] as { error?: unknown })?.error : parsed.error;
    if (err && typeof err === "object") {
      const e = err as Record<string, unknown>;
      if (typeof e.message === "string" && e.message !== "") message = e.message;
      if (typeof e.type === "string") type = e.type;
      // The SDKs expose `param` and `code`: kept as the upstream sent them (a null too).
      if (typeof e.param === "string" && e.param.length <= 256) param = e.param;
      if (typeof e.code === "string") code = e.code;
      else if (typeof e.status === "string") code = e.status;
      else if (e.code === null && type !== undefined) code = null;
    } else if (typeof err === "string") {
      message = err;
    } else {
      message = otherShape(parsed) ?? message;
    }
  } catch {
    if (text.trim() !== "" && text.length < 500) message = text.trim();
  }
  return upstreamError(redact(message), {
    status,
    provider,
    upstreamType: type,
    upstreamCode: code,
    param,
    retryAfter: headers.get("retry-after"),
  });
}

/**
 * The message of an OpenAI-compatible server that does not use OpenAI's envelope:
 * FastAPI's `{"detail": "..."}` or `{"detail": [{"msg": "..."}]}` (vLLM, many self-hosted
 * servers), or a top-level `message`.
 */
function otherShape(parsed: unknown): string | undefined {
  if (parsed === null || typeof parsed !== "object") return undefined;
  const { detail, message } = parsed as { detail?: unknown; message?: unknown };
  if (typeof detail === "string" && detail !== "") return detail;
  if (Array.isArray(detail)) {
    const msgs = detail.map((d) => (d as { msg?: unknown } | null)?.msg)
      .filter((m): m is string => typeof m === "string" && m !== "");
    if (msgs.length > 0) return msgs.join("; ");
  }
  return typeof message === "string" && message !== "" ? message : undefined;
}

/** An in-stream error carries no HTTP status: one is read off its code or type. */
function streamErrorStatus(e: Record<string, unknown>, label: string): number {
  for (const n of [e.code, e.status]) {
    if (typeof n === "number" && n >= 400 && n <= 599) return n;
  }
  if (/rate_limit|insufficient_quota|too_many/i.test(label)) return 429;
  if (/authentication|invalid_api_key|unauthori/i.test(label)) return 401;
  if (/permission/i.test(label)) return 403;
  if (/not_found/i.test(label)) return 404;
  if (/invalid_request|bad_request|invalid_prompt|context_length/i.test(label)) return 400;
  return 500;
}

/**
 * The error an OpenAI-format stream sent in place of its answer: `data: {"error": {...}}` on
 * chat completions, `error` / `response.failed` events on the Responses API. Its status is
 * inferred (a `server_error` is a 500), so a stream failing before any content fails over as
 * the same failure as an HTTP error would.
 */
export function fromOpenAIStreamError(
  error: unknown,
  provider: string,
  redact: Redactor,
): GatewayError {
  const e = error !== null && typeof error === "object" ? error as Record<string, unknown> : {};
  const type = typeof e.type === "string" ? e.type : undefined;
  const code = typeof e.code === "string" ? e.code : undefined;
  const message = typeof e.message === "string" && e.message !== ""
    ? redact(e.message)
    : typeof error === "string" && error !== ""
    ? redact(error)
    : streamFailedMessage(provider, type ?? code);
  return upstreamError(message, {
    status: streamErrorStatus(e, `${type ?? ""} ${code ?? ""}`),
    provider,
    upstreamType: type,
    upstreamCode: code,
  });
}

/** `data: {"error": ...}` of a chat completions stream, as an error; null for any other event. */
export function chatStreamFailure(
  data: string,
  provider: string,
  redact: Redactor,
): GatewayError | null {
  if (!data.includes('"error"')) return null;
  const error = parsed(data)?.error;
  return error === undefined || error === null
    ? null
    : fromOpenAIStreamError(error, provider, redact);
}

/** A Responses API `error` or `response.failed` event, as an error; null for any other. */
export function responsesStreamFailure(
  data: string,
  provider: string,
  redact: Redactor,
): GatewayError | null {
  if (!data.includes('"error"') && !data.includes("response.failed")) return null;
  const event = parsed(data);
  if (event?.type === "error") return fromOpenAIStreamError(event, provider, redact);
  if (event?.type !== "response.failed") return null;
  const response = event.response as { error?: unknown } | undefined;
  return fromOpenAIStreamError(response?.error ?? {}, provider, redact);
}

function parsed(data: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(data) as unknown;
    return v !== null && typeof v === "object" && !Array.isArray(v)
      ? v as Record<string, unknown>
      : null;
  } catch {
    return null;
  }
}
