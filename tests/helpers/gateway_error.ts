/**
 * Capture the GatewayError a piece of code fails with.
 * @module
 */
import assert from "node:assert/strict";
import { GatewayError } from "../../src/errors.ts";

/**
 * Expect `work` (a promise, or a function that throws or rejects) to fail with a
 * GatewayError and return it; `failMessage` is the assertion message when it does not fail.
 */
export async function gatewayError(
  work: Promise<unknown> | (() => unknown),
  failMessage = "expected a GatewayError",
): Promise<GatewayError> {
  try {
    await (typeof work === "function" ? work() : work);
  } catch (err) {
    assert.ok(err instanceof GatewayError, `expected GatewayError, got ${err}`);
    return err;
  }
  assert.fail(failMessage);
}
