import assert from "node:assert/strict";
import {
  classifyOutcome,
  type OutcomeClass,
  type UpstreamOutcome,
} from "../../src/breaker/classify.ts";
import { classifyBedrock } from "../../src/providers/bedrock/classify.ts";
import { classifyOpenAI } from "../../src/providers/openai/classify.ts";

type Classify = (o: UpstreamOutcome) => OutcomeClass;

/**
 * llm-proxy's provider rules, each provider's by its own `classify` (the adapter's): OpenAI
 * (and Azure) read the rate-limit budget headers, Bedrock its exception names; Anthropic,
 * Gemini and the mock follow the shared status rules.
 */
Deno.test("each provider's classify follows llm-proxy's provider rules", () => {
  const table: [string, Classify, UpstreamOutcome, string][] = [
    ["openai", classifyOpenAI, { status: 200 }, "success"],
    ["openai", classifyOpenAI, { status: null }, "provider_degraded"],
    ["openai", classifyOpenAI, { status: 500 }, "provider_degraded"],
    ["openai", classifyOpenAI, { status: 502 }, "provider_degraded"],
    ["openai", classifyOpenAI, { status: 503 }, "provider_degraded"],
    ["openai", classifyOpenAI, { status: 504 }, "provider_degraded"],
    ["openai", classifyOpenAI, { status: 408 }, "provider_degraded"],
    ["openai", classifyOpenAI, { status: 400 }, "client_error"],
    ["openai", classifyOpenAI, { status: 401 }, "client_error"],
    ["openai", classifyOpenAI, { status: 404 }, "client_error"],
    ["openai", classifyOpenAI, { status: 422 }, "client_error"],
    ["openai", classifyOpenAI, { status: 429 }, "localized_rate_limit"],
    ["openai", classifyOpenAI, {
      status: 429,
      headers: { "x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "0" },
    }, "global_rate_limit"],
    ["openai", classifyOpenAI, {
      status: 429,
      headers: new Headers({
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining-tokens": "1200",
      }),
    }, "localized_rate_limit"],
    [
      "anthropic",
      classifyOutcome,
      { status: 529, errorType: "overloaded_error" },
      "provider_degraded",
    ],
    [
      "anthropic",
      classifyOutcome,
      { status: 429, errorType: "rate_limit_error" },
      "localized_rate_limit",
    ],
    [
      "gemini",
      classifyOutcome,
      { status: 429, errorType: "RESOURCE_EXHAUSTED" },
      "localized_rate_limit",
    ],
    ["gemini", classifyOutcome, { status: 503, errorType: "UNAVAILABLE" }, "provider_degraded"],
    ["bedrock", classifyBedrock, {
      status: 429,
      headers: { "x-amzn-errortype": "ThrottlingException:http://internal" },
    }, "localized_rate_limit"],
    [
      "bedrock",
      classifyBedrock,
      { status: 400, errorType: "ThrottlingException" },
      "localized_rate_limit",
    ],
    ["bedrock", classifyBedrock, {
      status: 503,
      headers: { "x-amzn-errortype": "ServiceUnavailableException" },
    }, "provider_degraded"],
    [
      "bedrock",
      classifyBedrock,
      { status: 429, errorType: "ModelNotReadyException" },
      "provider_degraded",
    ],
    // The model broke off mid-stream (an exception frame; 424 by AWS's table).
    [
      "bedrock",
      classifyBedrock,
      { status: 424, errorType: "ModelStreamErrorException" },
      "provider_degraded",
    ],
    ["bedrock", classifyBedrock, { status: 400, errorType: "ValidationException" }, "client_error"],
    ["bedrock", classifyBedrock, { status: 200 }, "success"],
    // Bedrock's exception names mean nothing from another API: the status decides.
    ["openai", classifyOpenAI, { status: 400, errorType: "ThrottlingException" }, "client_error"],
  ];
  for (const [provider, classify, outcome, want] of table) {
    assert.equal(classify(outcome), want, `${provider} ${JSON.stringify(outcome)}`);
  }
});

Deno.test("every adapter classifies by its own provider's rules", async () => {
  const { parseConfigText } = await import("../../src/config/mod.ts");
  const { createAdapters } = await import("../../src/providers/mod.ts");
  const { config } = parseConfigText(
    `
providers:
  openai: { keys: [{ key: sk-a }] }
  azure: { base_url: "https://x.openai.azure.com", keys: [{ key: k }] }
  anthropic: { keys: [{ key: sk-b }] }
  gemini: { keys: [{ key: AIzaXXXXXXXXXXXXXXXXXXXXXX }] }
  bedrock: { enabled: true }
`,
    () => undefined,
    "c.yaml",
  );
  const adapters = createAdapters(config, { fetch, redact: (s) => s, random: Math.random });
  const global = {
    status: 429,
    headers: { "x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "0" },
  };
  const throttled = { status: 400, errorType: "ThrottlingException" };
  const cases: [string, UpstreamOutcome, string][] = [
    ["openai", global, "global_rate_limit"],
    ["azure", global, "global_rate_limit"],
    ["anthropic", global, "localized_rate_limit"],
    ["gemini", global, "localized_rate_limit"],
    ["bedrock", throttled, "localized_rate_limit"],
    ["openai", throttled, "client_error"],
  ];
  for (const [name, outcome, want] of cases) {
    const classify = adapters.get(name)?.classify;
    assert.ok(classify, name);
    assert.equal(classify(outcome), want, name);
  }
});
