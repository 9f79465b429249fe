import assert from "node:assert/strict";
import { classifyOutcome, type UpstreamOutcome } from "../../src/breaker/classify.ts";

Deno.test("classifyOutcome() follows llm-proxy's provider rules", () => {
  const table: [UpstreamOutcome, string][] = [
    [{ providerType: "openai", status: 200 }, "success"],
    [{ providerType: "openai", status: null }, "provider_degraded"],
    [{ providerType: "openai", status: 500 }, "provider_degraded"],
    [{ providerType: "openai", status: 502 }, "provider_degraded"],
    [{ providerType: "openai", status: 503 }, "provider_degraded"],
    [{ providerType: "openai", status: 504 }, "provider_degraded"],
    [{ providerType: "openai", status: 408 }, "provider_degraded"],
    [{ providerType: "openai", status: 400 }, "client_error"],
    [{ providerType: "openai", status: 401 }, "client_error"],
    [{ providerType: "openai", status: 404 }, "client_error"],
    [{ providerType: "openai", status: 422 }, "client_error"],
    [{ providerType: "openai", status: 429 }, "localized_rate_limit"],
    [{
      providerType: "openai",
      status: 429,
      headers: { "x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "0" },
    }, "global_rate_limit"],
    [{
      providerType: "openai",
      status: 429,
      headers: new Headers({
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining-tokens": "1200",
      }),
    }, "localized_rate_limit"],
    [
      { providerType: "anthropic", status: 529, errorType: "overloaded_error" },
      "provider_degraded",
    ],
    [
      { providerType: "anthropic", status: 429, errorType: "rate_limit_error" },
      "localized_rate_limit",
    ],
    [
      { providerType: "gemini", status: 429, errorType: "RESOURCE_EXHAUSTED" },
      "localized_rate_limit",
    ],
    [{ providerType: "gemini", status: 503, errorType: "UNAVAILABLE" }, "provider_degraded"],
    [{
      providerType: "bedrock",
      status: 429,
      headers: { "x-amzn-errortype": "ThrottlingException:http://internal" },
    }, "localized_rate_limit"],
    [
      { providerType: "bedrock", status: 400, errorType: "ThrottlingException" },
      "localized_rate_limit",
    ],
    [{
      providerType: "bedrock",
      status: 503,
      headers: { "x-amzn-errortype": "ServiceUnavailableException" },
    }, "provider_degraded"],
    [
      { providerType: "bedrock", status: 429, errorType: "ModelNotReadyException" },
      "provider_degraded",
    ],
    [{ providerType: "bedrock", status: 400, errorType: "ValidationException" }, "client_error"],
  ];
  for (const [outcome, want] of table) {
    assert.equal(classifyOutcome(outcome), want, JSON.stringify(outcome));
  }
});
