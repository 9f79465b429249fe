import assert from "node:assert/strict";
import { fromOpenAIError } from "../../../src/providers/openai/errors.ts";
import { createRedactor } from "../../../src/telemetry/mod.ts";

const redact = createRedactor(["configured-secret-xyz"]);
const none = new Headers();

Deno.test("fromOpenAIError() keeps message, type and code of an OpenAI error body", () => {
  const body = JSON.stringify({
    error: { message: "Model not found", type: "invalid_request_error", code: "model_not_found" },
  });
  const err = fromOpenAIError(404, body, none, "openai", redact);
  assert.equal(err.code, "upstream_error");
  assert.equal(err.status, 404);
  assert.equal(err.message, "Model not found");
  assert.equal(err.info.upstreamType, "invalid_request_error");
  assert.equal(err.info.upstreamCode, "model_not_found");
  assert.equal(err.info.provider, "openai");
});

Deno.test("fromOpenAIError() reads the array-wrapped and string error shapes", () => {
  // Gemini's OpenAI-compatible endpoint wraps the error in an array, with a string status.
  const gemini = JSON.stringify([{
    error: { message: "Quota exceeded", status: "RESOURCE_EXHAUSTED" },
  }]);
  const err = fromOpenAIError(429, gemini, none, "gemini", redact);
  assert.equal(err.code, "rate_limited");
  assert.equal(err.message, "Quota exceeded");
  assert.equal(err.info.upstreamCode, "RESOURCE_EXHAUSTED");
  assert.equal(
    fromOpenAIError(400, '{"error":"bad thing"}', none, "x", redact).message,
    "bad thing",
  );
});

Deno.test("fromOpenAIError() reads FastAPI's detail and a top-level message (self-hosted servers)", () => {
  const msg = (status: number, body: unknown) =>
    fromOpenAIError(status, JSON.stringify(body), none, "vllm", redact).message;
  assert.equal(msg(422, { detail: "fastapi style detail 422" }), "fastapi style detail 422");
  assert.equal(
    msg(422, { detail: [{ loc: ["body", "model"], msg: "field required" }, { msg: "x" }] }),
    "field required; x",
  );
  assert.equal(msg(400, { message: "context too long", object: "error" }), "context too long");
  // Still redacted like any upstream text.
  assert.equal(msg(401, { detail: "bad key configured-secret-xyz" }).includes("xyz"), false);
  assert.equal(msg(500, { detail: [] }), 'Provider "vllm" answered HTTP 500');
});

Deno.test("fromOpenAIError() falls back to short text or a generic message", () => {
  assert.equal(fromOpenAIError(502, " Bad Gateway \n", none, "x", redact).message, "Bad Gateway");
  assert.equal(
    fromOpenAIError(502, "<html>" + "x".repeat(600), none, "x", redact).message,
    'Provider "x" answered HTTP 502',
  );
  assert.equal(
    fromOpenAIError(500, "", none, "x", redact).message,
    'Provider "x" answered HTTP 500',
  );
  assert.equal(
    fromOpenAIError(500, "{}", none, "x", redact).message,
    'Provider "x" answered HTTP 500',
  );
});

Deno.test("fromOpenAIError() redacts secrets from the upstream text", () => {
  const text = "proxy rejected configured-secret-xyz with Bearer abc.def";
  const err = fromOpenAIError(403, text, none, "x", redact);
  assert.equal(err.message, "proxy rejected [REDACTED] with [REDACTED]");
});

Deno.test("fromOpenAIError() keeps retry-after only when the upstream sent it", () => {
  const withHeader = fromOpenAIError(429, "{}", new Headers({ "retry-after": "3" }), "x", redact);
  assert.deepEqual(withHeader.info.headers, { "retry-after": "3" });
  assert.equal(fromOpenAIError(429, "{}", none, "x", redact).info.headers, undefined);
});
