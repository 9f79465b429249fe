import assert from "node:assert/strict";
import { fromGeminiError, fromGeminiStreamError } from "../../../src/providers/gemini/errors.ts";
import { createRedactor } from "../../../src/telemetry/mod.ts";
import { fixtureText } from "./helpers.ts";

const redact = createRedactor(["gm-configured-key-123456"]);

Deno.test("fromGeminiError() maps a 429 to rate_limited with RetryInfo as retry-after", async () => {
  const err = fromGeminiError(
    429,
    await fixtureText("error_429.json"),
    new Headers(),
    "gemini",
    redact,
  );
  assert.equal(err.code, "rate_limited");
  assert.equal(err.status, 429);
  assert.equal(err.info.upstreamStatus, 429);
  assert.equal(err.info.upstreamCode, "RESOURCE_EXHAUSTED");
  assert.equal(err.info.provider, "gemini");
  assert.match(err.message, /^You exceeded your current quota/);
  // "37.284593203s", rounded up.
  assert.deepEqual(err.info.headers, { "retry-after": "38" });
  assert.equal(err.retryable, true);
});

Deno.test("fromGeminiError() prefers a Retry-After header over RetryInfo", async () => {
  const err = fromGeminiError(
    429,
    await fixtureText("error_429.json"),
    new Headers({ "retry-after": "5" }),
    "gemini",
    redact,
  );
  assert.deepEqual(err.info.headers, { "retry-after": "5" });
});

Deno.test("fromGeminiError() keeps a 400's message and status, not retryable", async () => {
  const err = fromGeminiError(
    400,
    await fixtureText("error_400.json"),
    new Headers(),
    "gemini",
    redact,
  );
  assert.equal(err.code, "upstream_error");
  assert.equal(err.status, 400);
  assert.equal(err.info.upstreamCode, "INVALID_ARGUMENT");
  assert.equal(
    err.message,
    "* GenerateContentRequest.generation_config.max_output_tokens: max_output_tokens must be positive.\n",
  );
  assert.equal(err.info.headers, undefined);
  assert.equal(err.retryable, false);
});

Deno.test("fromGeminiError() turns an invalid API key (HTTP 400) into a 401", async () => {
  const err = fromGeminiError(
    400,
    await fixtureText("error_400_api_key.json"),
    new Headers(),
    "gemini",
    redact,
  );
  assert.equal(err.status, 401);
  // Routing rests the key and tries another one on 401/403.
  assert.equal(err.info.upstreamStatus, 401);
  assert.equal(err.info.upstreamCode, "INVALID_ARGUMENT");
  assert.equal(err.message, "API key not valid. Please pass a valid API key.");
  assert.equal(err.retryable, false);
});

Deno.test("fromGeminiError() reads the array form and keeps 5xx retryable", async () => {
  const err = fromGeminiError(
    503,
    await fixtureText("error_503.json"),
    new Headers(),
    "gemini",
    redact,
  );
  assert.equal(err.status, 503);
  assert.equal(err.info.upstreamCode, "UNAVAILABLE");
  assert.equal(err.message, "The model is overloaded. Please try again later.");
  assert.equal(err.retryable, true);
});

Deno.test("fromGeminiError() redacts keys an upstream message quotes", () => {
  const body = JSON.stringify({
    error: {
      code: 403,
      message:
        "Request to https://generativelanguage.googleapis.com/v1beta/models/x?key=AIzaSyA1234567890abcdefghijklmnop denied for gm-configured-key-123456",
      status: "PERMISSION_DENIED",
    },
  });
  const err = fromGeminiError(403, body, new Headers(), "gemini", redact);
  assert.equal(err.status, 403);
  assert.equal(
    err.message,
    "Request to https://generativelanguage.googleapis.com/v1beta/models/x?key=[REDACTED] denied for [REDACTED]",
  );
});

Deno.test("fromGeminiError() falls back to short text or a generic message", () => {
  const cases: [string, string][] = [
    ["<html>Bad gateway</html>", "<html>Bad gateway</html>"],
    ["", 'Provider "gemini" answered HTTP 502'],
    ['{"unexpected":true}', 'Provider "gemini" answered HTTP 502'],
    ["[]", 'Provider "gemini" answered HTTP 502'],
    ["x".repeat(600), 'Provider "gemini" answered HTTP 502'],
  ];
  for (const [text, expected] of cases) {
    const err = fromGeminiError(502, text, new Headers(), "gemini", redact);
    assert.equal(err.message, expected);
    assert.equal(err.info.upstreamCode, undefined);
  }
});

Deno.test("fromGeminiStreamError() derives the status from the error code", () => {
  const cases: [unknown, number, string, string | undefined][] = [
    [
      { code: 503, message: "The model is overloaded.", status: "UNAVAILABLE" },
      503,
      "The model is overloaded.",
      "UNAVAILABLE",
    ],
    [
      {
        code: 429,
        message: "Key gm-configured-key-123456 over quota",
        status: "RESOURCE_EXHAUSTED",
      },
      429,
      "Key [REDACTED] over quota",
      "RESOURCE_EXHAUSTED",
    ],
    [{ status: "INTERNAL" }, 502, 'Stream from provider "gemini" failed (INTERNAL)', "INTERNAL"],
    ["nonsense", 502, 'Stream from provider "gemini" failed', undefined],
  ];
  for (const [error, status, message, code] of cases) {
    const err = fromGeminiStreamError(error, "gemini", redact);
    assert.equal(err.status, status);
    assert.equal(err.message, message);
    assert.equal(err.info.upstreamCode, code);
    assert.equal(err.code, status === 429 ? "rate_limited" : "upstream_error");
  }
});
