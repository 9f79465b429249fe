/**
 * What the provider error translators share: the GatewayError for an upstream failure
 * (a 429 is `rate_limited`, anything else `upstream_error`; the status, type or code and a
 * `Retry-After` kept), and the messages used when the upstream gave none worth showing.
 * Parsing the provider's error body, and redacting its message, stay with each provider.
 * @module
 */
import { GatewayError } from "../../errors.ts";

export interface UpstreamErrorInfo {
  /** The upstream status (kept as the answer's status too); absent for an in-stream error. */
  readonly status?: number | undefined;
  readonly provider: string;
  readonly upstreamType?: string | undefined;
  /** Null: the upstream said `"code": null` (kept, not replaced by ours). */
  readonly upstreamCode?: string | null | undefined;
  /** The request field the upstream named (OpenAI's `param`). */
  readonly param?: string | undefined;
  /** Passed on to the client as `retry-after` when set. */
  readonly retryAfter?: string | null | undefined;
}

/** `message` is shown as given: redact it first. */
export function upstreamError(message: string, info: UpstreamErrorInfo): GatewayError {
  const { status, provider, upstreamType, upstreamCode, param, retryAfter } = info;
  return new GatewayError(status === 429 ? "rate_limited" : "upstream_error", message, {
    ...(status !== undefined ? { status, upstreamStatus: status } : {}),
    provider,
    ...(upstreamType !== undefined ? { upstreamType } : {}),
    ...(upstreamCode !== undefined ? { upstreamCode } : {}),
    ...(param !== undefined ? { param } : {}),
    ...(retryAfter ? { headers: { "retry-after": retryAfter } } : {}),
  });
}

/**
 * The message of a non-2xx reply whose body named none: a short body that is not JSON (and
 * does not open like JSON: `opaque` prefixes) is shown as is, anything else is replaced by
 * `Provider "x" answered HTTP 503`, followed by ` (detail)` when there is one.
 */
export function fallbackMessage(
  text: string,
  isJson: boolean,
  status: number,
  provider: string,
  opts: { detail?: string | undefined; opaque?: readonly string[] } = {},
): string {
  const trimmed = text.trim();
  const opaque = opts.opaque ?? ["{"];
  if (
    !isJson && trimmed !== "" && trimmed.length < 500 && !opaque.some((p) => trimmed.startsWith(p))
  ) {
    return trimmed;
  }
  return `Provider "${provider}" answered HTTP ${status}${opts.detail ? ` (${opts.detail})` : ""}`;
}

/** A translated stream that broke off or sent what it should not: `why` completes the sentence. */
export function brokenStream(provider: string, why: string): GatewayError {
  return new GatewayError("upstream_error", `Stream from provider "${provider}" ${why}`, {
    provider,
  });
}

/** The message of an in-stream error that carried none: `label` is its type or code. */
export function streamFailedMessage(provider: string, label: string | undefined): string {
  return `Stream from provider "${provider}" failed${label ? ` (${label})` : ""}`;
}

/** A 2xx reply whose body is not the JSON the API answers with. */
export function notJsonBody(provider: string, status?: number): GatewayError {
  return new GatewayError(
    "upstream_error",
    `Provider "${provider}" returned a body that is not JSON`,
    {
      provider,
      ...(status !== undefined ? { upstreamStatus: status } : {}),
    },
  );
}

/**
 * A streaming request answered with something else (a server that ignores `stream`): the
 * client's SDK would read no event from it and end silently.
 */
export function notEventStream(provider: string, status: number): GatewayError {
  return new GatewayError(
    "upstream_error",
    `Provider "${provider}" answered a streaming request without an event stream`,
    { provider, upstreamStatus: status },
  );
}
