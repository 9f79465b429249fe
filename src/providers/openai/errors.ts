import type { GatewayError } from "../../errors.ts";
import type { Redactor } from "../../telemetry/mod.ts";
import { upstreamError } from "../shared/errors.ts";

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
  let code: string | undefined;
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    const err = Array.isArray(parsed) ? (parsed[0] as { error?: unknown })?.error : parsed.error;
    if (err && typeof err === "object") {
      const e = err as Record<string, unknown>;
      if (typeof e.message === "string" && e.message !== "") message = e.message;
      if (typeof e.type === "string") type = e.type;
      if (typeof e.code === "string") code = e.code;
      else if (typeof e.status === "string") code = e.status;
    } else if (typeof err === "string") {
      message = err;
    }
  } catch {
    if (text.trim() !== "" && text.length < 500) message = text.trim();
  }
  return upstreamError(redact(message), {
    status,
    provider,
    upstreamType: type,
    upstreamCode: code,
    retryAfter: headers.get("retry-after"),
  });
}
