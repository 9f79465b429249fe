/**
 * What an upstream outcome says about the provider, in llm-proxy's vocabulary. Only
 * `provider_degraded` counts toward a breaker; rate limits are retried (and escalate to
 * degraded when a global limit persists); client errors are the caller's.
 */
export type OutcomeClass =
  | "success"
  | "client_error"
  | "localized_rate_limit"
  | "global_rate_limit"
  | "provider_degraded";

export interface UpstreamOutcome {
  /** Provider type (wire format): the classification rules differ per API. */
  readonly providerType: string;
  /** HTTP status, or null when no response arrived (connection error, timeout). */
  readonly status: number | null;
  readonly headers?: Headers | Readonly<Record<string, string>>;
  /** The error's type/status/code from the body (e.g. `RESOURCE_EXHAUSTED`, `overloaded_error`). */
  readonly errorType?: string;
}

const header = (h: UpstreamOutcome["headers"], name: string): string | null => {
  if (!h) return null;
  if (h instanceof Headers) return h.get(name);
  return h[name] ?? h[name.toLowerCase()] ?? null;
};

/** Bedrock exception names (x-amzn-errortype / `__type`) that mean the service is unwell. */
const BEDROCK_DEGRADED = new Set([
  "ServiceUnavailableException",
  "ModelNotReadyException",
  "InternalServerException",
  "ModelTimeoutException",
]);

/** Classify one upstream outcome. Pure; table-tested. */
export function classifyOutcome(o: UpstreamOutcome): OutcomeClass {
  if (o.status === null) return "provider_degraded"; // refused, reset, timed out
  const s = o.status;
  if (s >= 200 && s < 400) return "success";
  const type = o.errorType ?? "";
  if (o.providerType === "bedrock") {
    const amzn = (header(o.headers, "x-amzn-errortype") ?? type).split(":")[0] ?? "";
    if (amzn === "ThrottlingException" || amzn === "ServiceQuotaExceededException") {
      return "localized_rate_limit";
    }
    if (BEDROCK_DEGRADED.has(amzn)) return "provider_degraded";
  }
  if (s === 529 || type === "overloaded_error") return "provider_degraded";
  if (s === 429) {
    if (o.providerType === "gemini" || type === "RESOURCE_EXHAUSTED") return "localized_rate_limit";
    if (o.providerType === "openai" || o.providerType === "azure") {
      const requests = header(o.headers, "x-ratelimit-remaining-requests");
      const tokens = header(o.headers, "x-ratelimit-remaining-tokens");
      // Both budgets empty: the whole org/project is out, not one noisy caller.
      if (requests !== null && tokens !== null && Number(requests) === 0 && Number(tokens) === 0) {
        return "global_rate_limit";
      }
    }
    return "localized_rate_limit";
  }
  if (s === 408 || s >= 500) return "provider_degraded";
  return "client_error";
}
