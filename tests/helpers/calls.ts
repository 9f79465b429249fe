/**
 * Builders for the calls a test hands a provider adapter: the per-call fields every call
 * kind shares (`signal`, `timeoutMs`, `apiKey`, ...) and whole chat calls. Usage is on the
 * outcome (`await outcome.usage`), not reported through the call.
 * @module
 */
import type { CallBasics, ChatCall } from "../../src/providers/mod.ts";
import type { OpenAIChatRequest } from "../../src/schema/openai.ts";

export type { CallBasics };

/**
 * A fresh signal, no client authorization, and `apiKey`. The default timeout is long on
 * purpose: a timer left running would fail the test under the sanitizers.
 */
export function callBasics(apiKey: string | null, timeoutMs = 60_000): CallBasics {
  return {
    signal: new AbortController().signal,
    timeoutMs,
    apiKey,
    clientAuthorization: null,
  };
}

/**
 * A chat call for `model` with one user message ("Hi"), merged with `body`; it streams when
 * `body.stream` is true, and `overrides` replace any field.
 */
export function chatCallFor(
  defaults: { model: string; apiKey: string | null },
  overrides: Partial<ChatCall> = {},
  body: Partial<OpenAIChatRequest> = {},
): { call: ChatCall } {
  const call: ChatCall = {
    body: { model: defaults.model, messages: [{ role: "user", content: "Hi" }], ...body },
    stream: body.stream === true,
    ...callBasics(defaults.apiKey),
    ...overrides,
  };
  return { call };
}
