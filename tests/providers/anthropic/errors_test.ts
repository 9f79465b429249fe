import assert from "node:assert/strict";
import {
  fromAnthropicError,
  fromAnthropicStreamError,
} from "../../../src/providers/anthropic/errors.ts";
import { createRedactor } from "../../../src/telemetry/mod.ts";
import { fixtureText } from "./helpers.ts";

const redact = createRedactor([]);

Deno.test("fromAnthropicError() keeps type, message and status of an error body", async () => {
  const err = fromAnthropicError(
    529,
    await fixtureText("error_529.json"),
    new Headers(),
    "anthropic",
    redact,
  );
  assert.equal(err.code, "upstream_error");
  assert.equal(err.status, 529);
  assert.equal(err.info.upstreamCode, "overloaded_error");
  assert.equal(err.message, "Overloaded");
  assert.equal(err.info.headers, undefined);
  assert.equal(err.retryable, true);
});

Deno.test("fromAnthropicError() falls back to short text or a generic message", () => {
  const cases: [string, string][] = [
    ["<html>Bad gateway</html>", "<html>Bad gateway</html>"],
    ["", 'Provider "anthropic" answered HTTP 502'],
    ['{"unexpected":true}', 'Provider "anthropic" answered HTTP 502'],
    ["x".repeat(600), 'Provider "anthropic" answered HTTP 502'],
  ];
  for (const [text, expected] of cases) {
    const err = fromAnthropicError(502, text, new Headers(), "anthropic", redact);
    assert.equal(err.message, expected);
    assert.equal(err.info.upstreamCode, undefined);
  }
});

Deno.test("fromAnthropicStreamError() derives the status from the error type", () => {
  const cases: [unknown, number, string][] = [
    [{ type: "overloaded_error", message: "Overloaded" }, 529, "Overloaded"],
    [{ type: "api_error", message: "Internal server error" }, 500, "Internal server error"],
    [{ type: "brand_new_error" }, 502, 'Stream from provider "anthropic" failed (brand_new_error)'],
    [null, 502, 'Stream from provider "anthropic" failed'],
  ];
  for (const [error, status, message] of cases) {
    const err = fromAnthropicStreamError(error, "anthropic", redact);
    assert.equal(err.status, status);
    assert.equal(err.message, message);
  }
});
