import {
  classifyOutcome,
  type OutcomeClass,
  outcomeHeader,
  type UpstreamOutcome,
} from "../../breaker/classify.ts";

/**
 * Bedrock exception names (x-amzn-errortype / `__type`, or an exception frame's type) that
 * mean the service is unwell. ModelStreamErrorException (HTTP 424) comes only inside a
 * stream: the model broke off mid-answer ("An error occurred while streaming the response").
 */
const DEGRADED = new Set([
  "ServiceUnavailableException",
  "ModelNotReadyException",
  "InternalServerException",
  "ModelTimeoutException",
  "ModelStreamErrorException",
]);

/**
 * Bedrock names its failures (`x-amzn-errortype`, or `__type` in the body): throttling and
 * quota exceptions are localized rate limits whatever their status, the service exceptions
 * above are degraded; anything else follows the status.
 */
export function classifyBedrock(o: UpstreamOutcome): OutcomeClass {
  if (o.status !== null && o.status >= 400) {
    const amzn = (outcomeHeader(o, "x-amzn-errortype") ?? o.errorType ?? "").split(":")[0] ?? "";
    if (amzn === "ThrottlingException" || amzn === "ServiceQuotaExceededException") {
      return "localized_rate_limit";
    }
    if (DEGRADED.has(amzn)) return "provider_degraded";
  }
  return classifyOutcome(o);
}
