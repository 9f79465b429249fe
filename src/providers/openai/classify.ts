import {
  classifyOutcome,
  type OutcomeClass,
  outcomeHeader,
  type UpstreamOutcome,
} from "../../breaker/classify.ts";

/**
 * OpenAI (and Azure, and the compatible family): a 429 with both
 * `x-ratelimit-remaining-requests` and `-tokens` at 0 means the whole organisation or
 * project is out of budget, not one noisy caller (llm-proxy's global rate limit).
 */
export function classifyOpenAI(o: UpstreamOutcome): OutcomeClass {
  const cls = classifyOutcome(o);
  if (o.status !== 429 || cls !== "localized_rate_limit" || o.errorType === "RESOURCE_EXHAUSTED") {
    return cls;
  }
  const requests = outcomeHeader(o, "x-ratelimit-remaining-requests");
  const tokens = outcomeHeader(o, "x-ratelimit-remaining-tokens");
  return requests !== null && tokens !== null && Number(requests) === 0 && Number(tokens) === 0
    ? "global_rate_limit"
    : cls;
}
