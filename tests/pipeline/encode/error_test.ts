/** `errorEnvelope` in google.rpc form: every status the gateway writes has its canonical name. */
import assert from "node:assert/strict";
import { type ErrorCode, GatewayError } from "../../../src/errors.ts";
import { errorEnvelope } from "../../../src/pipeline/encode/error.ts";

Deno.test("google.rpc errors name a canonical status for every code the gateway writes, never UNKNOWN", () => {
  const cases: [ErrorCode, string][] = [
    ["invalid_request", "INVALID_ARGUMENT"],
    ["payload_too_large", "INVALID_ARGUMENT"],
    ["unsupported_media_type", "INVALID_ARGUMENT"],
    ["method_not_allowed", "UNIMPLEMENTED"],
    ["request_timeout", "DEADLINE_EXCEEDED"],
  ];
  for (const [code, status] of cases) {
    const env = errorEnvelope(new GatewayError(code, "x"), "google_rpc") as {
      error: { status: string };
    };
    assert.equal(env.error.status, status, code);
  }
});
