/**
 * What an upstream outcome says about the provider, in llm-proxy's vocabulary. Only
 * `provider_degraded` counts toward a breaker; rate limits are retried (and escalate to
 * degraded when a global limit persists); client errors are the caller's.
 *
 * The rules here read only what every HTTP API shares (the status, an "overloaded" type);
 * what one provider's replies mean beyond that (rate-limit budget headers, AWS exception
 * names) is that provider's `classify` (src/providers/<name>/classify.ts), which falls
 * back to these.
 */
export type OutcomeClass =
  | "success"
  | "client_error"
  | "localized_rate_limit"
  | "global_rate_limit"
  | "provider_degraded";

export interface UpstreamOutcome {
  /** HTTP status, or null when no response arrived (connection error, timeout). */
  readonly status: number | null;
  readonly headers?: Headers | Readonly<Record<string, string>>;
  /** The error's type/status/code from the body (e.g. `RESOURCE_EXHAUSTED`, `overloaded_error`). */
  readonly errorType?: string;
}

/** A header of an outcome, whichever form its headers come in. */
export function outcomeHeader(o: UpstreamOutcome, name: string): string | null {
  const h = o.headers;
  if (!h) return null;
  if (h instanceof Headers) return h.get(name);
  return h[name] ?? h[name.toLowerCase()] ?? null;
}

/** Classify one upstream outcome by the rules every provider shares. Pure; table-tested. */
export function classifyOutcome(o: UpstreamOutcome): OutcomeClass {
  if (o.status === null) return "provider_degraded"; // refused, reset, timed out
  const s = o.status;
  if (s >= 200 && s < 400) return "success";
  if (s === 529 || o.errorType === "overloaded_error") return "provider_degraded";
  if (s === 429) return "localized_rate_limit";
  if (s === 408 || s >= 500) return "provider_degraded";
  return "client_error";
}
