import type { OpenAIUsage } from "../../schema/openai.ts";
import { BEARER_AUTH } from "../shared/native_auth.ts";
import type { NativeApi } from "../types.ts";
import { modelOfDeployment } from "./request.ts";
import { num, pickUsage, withDetails } from "../../streaming/usage_sniff.ts";
import { fromResponsesUsage } from "./responses.ts";
import { chatStreamFailure, responsesStreamFailure } from "./errors.ts";

/**
 * OpenAI's `usage.prompt_tokens` / `completion_tokens` (bodies and stream chunks), with
 * `prompt_tokens_details.cached_tokens` (included in `prompt_tokens`) and
 * `completion_tokens_details.reasoning_tokens` (included in `completion_tokens`); and the
 * Responses API's `input_tokens` / `output_tokens` (a body, or a stream's final event).
 */
export function openAIUsageOf(value: unknown): Partial<OpenAIUsage> | null {
  if (value === null || typeof value !== "object") return null;
  const o = value as { usage?: unknown; response?: { usage?: unknown } };
  const u = o.usage as Record<string, unknown> | undefined;
  if (!u || typeof u !== "object") {
    // A Responses stream's final event (`response.completed`, `.incomplete`) carries the
    // response, usage inside.
    const inner = o.response;
    return inner !== null && typeof inner === "object" ? fromResponsesUsage(inner.usage) : null;
  }
  // The Responses API's own names (`input_tokens`, `output_tokens`, their details).
  if (typeof u.input_tokens === "number") return fromResponsesUsage(u);
  if (typeof u.prompt_tokens !== "number" && typeof u.completion_tokens !== "number") return null;
  const prompt = u.prompt_tokens_details as Record<string, unknown> | undefined;
  const completion = u.completion_tokens_details as Record<string, unknown> | undefined;
  return withDetails(
    pickUsage(u.prompt_tokens, u.completion_tokens),
    num(prompt?.cached_tokens),
    0,
    num(completion?.reasoning_tokens),
  );
}

/** A chat chunk's `"content":"..."`, a Responses event's `"delta":"..."` (text or arguments). */
const TEXT = /"(?:content|delta)":"((?:[^"\\]|\\.)*)"/g;
/**
 * A legacy completions chunk's `"text":"..."`. Only there: a Responses stream's `.done`
 * events repeat its deltas' whole text under `"text"`.
 */
const COMPLETION_TEXT = /"text":"((?:[^"\\]|\\.)*)"/g;

/**
 * Answer text in one stream event (escapes counted as written): what a stream that ends
 * without `usage` is estimated from. Read without parsing the event.
 */
export function openAIContentChars(data: string): number {
  let n = 0;
  const text = data.includes('"text_completion"') ? COMPLETION_TEXT : TEXT;
  for (const m of data.matchAll(text)) n += (m[1] as string).length;
  return n;
}

/**
 * The end of an OpenAI stream: `[DONE]` (chat, completions, assistants), a Responses terminal
 * event, or a failure it reported (`error` event, a chat stream's `{"error":...}`).
 */
const OPENAI_DONE =
  /^\s*\{\s*(?:"type"\s*:\s*"(?:response\.(?:completed|incomplete|failed)|error)"|"error"\s*:)/;
export const openAIStreamDone = (data: string) => data === "[DONE]" || OPENAI_DONE.test(data);

const unredacted = (text: string) => text;
/** A chat stream's `{"error":...}`, a Responses `error` or `response.failed` (redacted when logged). */
const openAIStreamFailure = (data: string, provider: string) =>
  // Only an ending event that is a failure is parsed (`response.completed`, the largest, is not).
  !OPENAI_FAILED.test(data) ? null : chatStreamFailure(data, provider, unredacted) ??
    responsesStreamFailure(data, provider, unredacted);
const OPENAI_FAILED = /^\s*\{\s*(?:"type"\s*:\s*"(?:response\.failed|error)"|"error"\s*:)/;

export const OPENAI_NATIVE: NativeApi = {
  auth: BEARER_AUTH,
  usage: openAIUsageOf,
  contentChars: openAIContentChars,
  streamDone: openAIStreamDone,
  streamFailure: openAIStreamFailure,
};

const decoded = (segment: string) => {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
};

/** `/openai/deployments/{name}/...`: the deployment Azure serves, whatever the body says. */
const DEPLOYMENT_PATH = /^\/openai\/deployments\/([^/]+)/;

/**
 * Azure takes `api-key`, or an Entra ID token as Bearer. It serves the deployment its path
 * names (the body's `model` is ignored there) or, on the v1 API, the one the body's `model`
 * names: either way a deployment, read as the model `deployments` maps to it.
 */
export const AZURE_NATIVE: NativeApi = {
  auth: { headers: ["api-key", "authorization"], queryParam: null, header: (k) => ["api-key", k] },
  usage: openAIUsageOf,
  contentChars: openAIContentChars,
  streamDone: openAIStreamDone,
  streamFailure: openAIStreamFailure,
  modelOf(rest, named, provider) {
    const inPath = DEPLOYMENT_PATH.exec(rest)?.[1];
    const deployment = inPath !== undefined ? decoded(inPath) : named;
    return deployment === undefined ? undefined : modelOfDeployment(provider, deployment);
  },
};
