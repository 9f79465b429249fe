/**
 * Shared by the Anthropic adapter tests: its fixtures, and the generic stream/error helpers.
 * @module
 */
import { fixtureReader } from "../../helpers/fixtures.ts";

export { gatewayError } from "../../helpers/gateway_error.ts";
export { drain, parseOpenAISse } from "../../helpers/openai_sse.ts";
export { SANITIZE } from "../../helpers/sanitize.ts";

export const { fixtureText, fixtureBytes, fixtureJson } = fixtureReader("anthropic");
