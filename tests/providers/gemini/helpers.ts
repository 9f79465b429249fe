/**
 * Shared by the Gemini adapter tests: its fixtures, deterministic ids, and the generic
 * stream/error helpers.
 * @module
 */
import { fixtureReader } from "../../helpers/fixtures.ts";

export { gatewayError } from "../../helpers/gateway_error.ts";
export { drain, parseOpenAISse } from "../../helpers/openai_sse.ts";
export { SANITIZE } from "../../helpers/sanitize.ts";

export const { fixtureText, fixtureBytes, fixtureJson } = fixtureReader("gemini");

/** Deterministic ids in place of the random ones: "id0", "id1", ... */
export function counterIds(): () => string {
  let n = 0;
  return () => `id${n++}`;
}
