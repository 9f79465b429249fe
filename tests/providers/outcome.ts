/**
 * Reading what an adapter answers, now that outcomes are data: the JSON body (canonical
 * object or wire bytes) and the chunks of a stream as the client would see them.
 * @module
 */
import type { ChatOutcome, JsonOutcome } from "../../src/providers/mod.ts";

/** The JSON body of an outcome: the canonical object, or the wire bytes parsed. */
// deno-lint-ignore no-explicit-any -- tests index freely into the answer.
export function jsonOf(outcome: ChatOutcome | JsonOutcome): any {
  if (outcome.kind !== "json") throw new Error(`expected a JSON outcome, got ${outcome.kind}`);
  return outcome.format === "object"
    ? outcome.body
    : JSON.parse(new TextDecoder().decode(outcome.body));
}
