/**
 * Builders for the calls a test hands a provider adapter: the per-call fields every call
 * kind shares (`signal`, `timeoutMs`, `apiKey`, `onUsage`, ...) and whole chat calls.
 * @module
 */
import type { ChatCall } from "../../src/providers/mod.ts";
import type { OpenAIChatRequest, OpenAIUsage } from "../../src/schema/openai.ts";

/** The fields chat, embeddings and messages calls share. */
export type CallBasics = Pick<
  ChatCall,
  "signal" | "timeoutMs" | "apiKey" | "clientAuthorization" | "onUsage"
>;

/**
 * A fresh signal, no client authorization, `apiKey`, and usage reports pushed onto `usages`.
 * The default timeout is long on purpose: a timer left running would fail the test under the
 * sanitizers.
 */
export function callBasics(
  apiKey: string | null,
  usages: OpenAIUsage[],
  timeoutMs = 60_000,
): CallBasics {
  return {
    signal: new AbortController().signal,
    timeoutMs,
    apiKey,
    clientAuthorization: null,
    onUsage: (u) => usages.push(u),
  };
}

/**
 * A chat call for `model` with one user message ("Hi"), merged with `body`; it streams when
 * `body.stream` is true, and `overrides` replace any field. Returns the usages it reports too.
 */
export function chatCallFor(
  defaults: { model: string; apiKey: string | null },
  overrides: Partial<ChatCall> = {},
  body: Partial<OpenAIChatRequest> = {},
): { call: ChatCall; usages: OpenAIUsage[] } {
  const usages: OpenAIUsage[] = [];
  const call: ChatCall = {
    body: { model: defaults.model, messages: [{ role: "user", content: "Hi" }], ...body },
    stream: body.stream === true,
    ...callBasics(defaults.apiKey, usages),
    ...overrides,
  };
  return { call, usages };
}
