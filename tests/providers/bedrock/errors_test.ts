import assert from "node:assert/strict";
import { toOpenAIError } from "../../../src/schema/openai.ts";
import {
  fromBedrockError,
  fromBedrockStreamException,
} from "../../../src/providers/bedrock/errors.ts";
import { createRedactor } from "../../../src/telemetry/mod.ts";

const redact = createRedactor([]);
const amzn = (type: string, extra: Record<string, string> = {}) =>
  new Headers({
    "content-type": "application/json",
    "x-amzn-errortype": `${type}:http://internal.amazon.com/coral/com.amazonaws.bedrock/`,
    ...extra,
  });

Deno.test("fromBedrockError() keeps status, exception name and message", async (t) => {
  const cases: [number, string, string, string][] = [
    [429, "ThrottlingException", "Too many requests, please wait.", "rate_limited"],
    [429, "ModelNotReadyException", "Model is not ready.", "rate_limited"],
    [503, "ServiceUnavailableException", "Service unavailable.", "upstream_error"],
    [400, "ValidationException", "Malformed input request.", "upstream_error"],
    [403, "AccessDeniedException", "You don't have access to the model.", "upstream_error"],
    [424, "ModelErrorException", "The model failed.", "upstream_error"],
  ];
  for (const [status, type, message, code] of cases) {
    await t.step(type, () => {
      const err = fromBedrockError(status, JSON.stringify({ message }), amzn(type), "aws", redact);
      assert.equal(err.status, status);
      assert.equal(err.info.upstreamStatus, status);
      assert.equal(err.info.upstreamCode, type);
      assert.equal(err.code, code);
      assert.equal(err.message, message);
      assert.equal(err.info.provider, "aws");
      assert.equal(err.retryable, status === 429 || status >= 500);
    });
  }
});

Deno.test("fromBedrockError() reads __type and Message when the header is absent", () => {
  const err = fromBedrockError(
    403,
    JSON.stringify({
      __type: "com.amazon.coral.service#ExpiredTokenException",
      Message: "The security token included in the request is expired",
    }),
    new Headers(),
    "aws",
    redact,
  );
  assert.equal(err.info.upstreamCode, "ExpiredTokenException");
  assert.equal(err.message, "The security token included in the request is expired");
});

Deno.test("fromBedrockError() keeps Retry-After and falls back on the status", () => {
  const err = fromBedrockError(
    429,
    "",
    amzn("ThrottlingException", { "retry-after": "3" }),
    "aws",
    redact,
  );
  assert.deepEqual(err.info.headers, { "retry-after": "3" });
  assert.equal(err.message, `Provider "aws" answered HTTP 429 (ThrottlingException)`);
  assert.equal(
    fromBedrockError(502, "Bad Gateway", new Headers(), "aws", redact).message,
    "Bad Gateway",
  );
});

Deno.test("fromBedrockError() cuts the canonical request out of a signature error", () => {
  const message = "The request signature we calculated does not match the signature you " +
    "provided. Check your AWS Secret Access Key and signing method.\n\nThe Canonical String " +
    "for this request should have been\n'POST\n/model/x/converse\n\nhost:bedrock-runtime\n" +
    "x-amz-security-token:FQoGZXIvYXdzSECRET'";
  const err = fromBedrockError(
    403,
    JSON.stringify({ message }),
    amzn("InvalidSignatureException"),
    "aws",
    redact,
  );
  assert.equal(
    err.message,
    "The request signature we calculated does not match the signature you provided. " +
      "Check your AWS Secret Access Key and signing method.",
  );
});

Deno.test("fromBedrockError() redacts credentials quoted in the message", () => {
  const err = fromBedrockError(
    403,
    JSON.stringify({ message: "The key AKIAIOSFODNN7EXAMPLE is not valid" }),
    amzn("UnrecognizedClientException"),
    "aws",
    redact,
  );
  assert.equal(err.message, "The key [REDACTED] is not valid");
});

Deno.test("fromBedrockStreamException() names the exception and gives its status", async (t) => {
  const cases: [string, number | undefined, string][] = [
    ["throttlingException", 429, "ThrottlingException"],
    ["serviceUnavailableException", 503, "ServiceUnavailableException"],
    ["internalServerException", 500, "InternalServerException"],
    ["modelStreamErrorException", 424, "ModelStreamErrorException"],
    ["validationException", 400, "ValidationException"],
    ["somethingNewException", undefined, "SomethingNewException"],
  ];
  for (const [frameType, status, name] of cases) {
    await t.step(frameType, () => {
      const err = fromBedrockStreamException(frameType, "It broke", "aws", redact);
      assert.equal(err.info.upstreamCode, name);
      assert.equal(err.info.upstreamStatus, status);
      assert.equal(err.status, status ?? 502);
      assert.equal(err.code, status === 429 ? "rate_limited" : "upstream_error");
      assert.equal(err.message, "It broke");
    });
  }
  await t.step("without a message", () => {
    const err = fromBedrockStreamException("throttlingException", "", "aws", redact);
    assert.equal(err.message, `Stream from provider "aws" failed (ThrottlingException)`);
  });
});

Deno.test("a Bedrock exception on an OpenAI-format route: OpenAI's type by status, the exception as code", () => {
  const cases: [number, string, string][] = [
    [400, "ValidationException", "invalid_request_error"],
    [403, "AccessDeniedException", "permission_error"],
    [429, "ThrottlingException", "rate_limit_error"],
    [503, "ServiceUnavailableException", "api_error"],
  ];
  for (const [status, type, openAIType] of cases) {
    const headers = new Headers({ "x-amzn-errortype": `${type}:http://internal.amazon.com/` });
    const err = fromBedrockError(status, '{"message":"m"}', headers, "bedrock", (s) => s);
    assert.deepEqual(toOpenAIError(err).error, {
      message: "m",
      type: openAIType,
      param: null,
      code: type,
    });
  }
});
