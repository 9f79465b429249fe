import { GatewayError } from "../../errors.ts";
import {
  isObject,
  type OpenAIChatCompletion,
  type OpenAIFinishReason,
} from "../../schema/openai.ts";
import {
  finishReasonFrom,
  openAIUsage,
  toChatCompletion,
  tokenCount as n,
} from "../shared/openai_response.ts";
import type {
  GeminiCandidate,
  GeminiOpenAIToolCall,
  GeminiOpenAIUsage,
  GeminiResponse,
  GeminiResponsePart,
} from "./types.ts";

/**
 * Gemini `finishReason` -> OpenAI `finish_reason`. Every reason that means "a filter stopped
 * the answer" is content_filter. The rest (`LANGUAGE`, `OTHER`, `MALFORMED_FUNCTION_CALL`,
 * `UNEXPECTED_TOOL_CALL`, `TOO_MANY_TOOL_CALLS`, unknown future reasons) have no OpenAI
 * counterpart; "stop" is the one that makes a client stop waiting.
 */
const FINISH_REASON: Readonly<Record<string, OpenAIFinishReason>> = {
  STOP: "stop",
  MAX_TOKENS: "length",
  SAFETY: "content_filter",
  RECITATION: "content_filter",
  BLOCKLIST: "content_filter",
  PROHIBITED_CONTENT: "content_filter",
  SPII: "content_filter",
  IMAGE_SAFETY: "content_filter",
  IMAGE_PROHIBITED_CONTENT: "content_filter",
  IMAGE_RECITATION: "content_filter",
};

/**
 * Gemini ends a turn that calls functions with `STOP`; OpenAI says `tool_calls` then, and
 * clients key their tool loop on it. A truncated or filtered answer keeps its own reason.
 */
export function toFinishReason(reason: unknown, hasToolCalls: boolean): OpenAIFinishReason | null {
  const mapped = finishReasonFrom(FINISH_REASON, reason);
  return mapped === "stop" && hasToolCalls ? "tool_calls" : mapped;
}

/**
 * Gemini `usageMetadata` -> OpenAI usage. `promptTokenCount` already includes cached tokens
 * (reported again as `cached_tokens`, as OpenAI does) and tool-use prompt tokens are input
 * too. Thinking tokens are billed as output but not counted in `candidatesTokenCount`, so
 * they are added to `completion_tokens` and reported as `reasoning_tokens`, OpenAI's
 * convention for o-series models.
 */
export function toOpenAIUsage(meta: unknown): GeminiOpenAIUsage {
  const m = isObject(meta) ? meta : {};
  const thoughts = n(m.thoughtsTokenCount);
  const prompt = n(m.promptTokenCount) + n(m.toolUsePromptTokenCount);
  const completion = n(m.candidatesTokenCount) + thoughts;
  return openAIUsage(prompt, completion, n(m.cachedContentTokenCount), 0, thoughts);
}

/** 24 random base-36 characters: tool-call and completion ids Gemini does not provide. */
export function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (b) => (b % 36).toString(36)).join("");
}

/**
 * A `functionCall` part -> an OpenAI tool call; null for any other part. Gemini's call `id`
 * is used when a model sets one. Otherwise the id is random, not an ordinal: OpenAI clients
 * keep the whole conversation, and a `call_0` in every turn would make ids collide across
 * turns (Anthropic refuses duplicate tool_use ids after a failover). The thought signature
 * rides along in `extra_content`, where Google's OpenAI-compatible endpoint puts it.
 */
export function toToolCall(
  part: GeminiResponsePart,
  newId: () => string,
): GeminiOpenAIToolCall | null {
  const call = part.functionCall;
  if (!isObject(call) || typeof call.name !== "string") return null;
  const out: GeminiOpenAIToolCall = {
    id: typeof call.id === "string" && call.id !== "" ? call.id : `call_${newId()}`,
    type: "function",
    function: { name: call.name, arguments: JSON.stringify(isObject(call.args) ? call.args : {}) },
  };
  if (typeof part.thoughtSignature === "string" && part.thoughtSignature !== "") {
    out.extra_content = { google: { thought_signature: part.thoughtSignature } };
  }
  return out;
}

/** Answer text of a part: thought summaries (`thought: true`) are not part of the answer. */
export function partText(part: GeminiResponsePart): string | null {
  return typeof part.text === "string" && part.thought !== true ? part.text : null;
}

export interface FromGeminiOptions {
  /** Unix seconds; defaults to now (tests pin it). */
  readonly created?: number;
  readonly provider?: string;
  /** Source of ids Gemini does not provide; random by default (tests pin it). */
  readonly newId?: () => string;
}

/**
 * Translate a non-streaming `GenerateContentResponse` into an OpenAI `chat.completion`.
 * Only the first candidate is read (`n` > 1 is refused on the way in). Text parts are
 * concatenated into `content` (null when the answer is only tool calls), `functionCall`
 * parts become `tool_calls`. A prompt blocked before generation (`promptFeedback.blockReason`,
 * no candidates) is an empty answer with finish_reason content_filter, as OpenAI reports a
 * filtered completion. `model` is the fallback when the body has no `modelVersion`.
 */
export function fromGeminiResponse(
  json: unknown,
  model: string,
  opts: FromGeminiOptions = {},
): OpenAIChatCompletion {
  const provider = opts.provider ?? "gemini";
  const newId = opts.newId ?? randomId;
  if (!isGeminiResponse(json)) {
    throw new GatewayError(
      "upstream_error",
      `Provider "${provider}" returned a body that is not a Gemini GenerateContentResponse`,
      { provider },
    );
  }
  const candidate: GeminiCandidate | undefined = json.candidates?.[0];
  const blocked = candidate === undefined && typeof json.promptFeedback?.blockReason === "string";
  if (candidate === undefined && !blocked) {
    throw new GatewayError(
      "upstream_error",
      `Provider "${provider}" returned no candidates and no block reason`,
      { provider },
    );
  }
  let text: string | null = null;
  const toolCalls: GeminiOpenAIToolCall[] = [];
  for (const part of candidate?.content?.parts ?? []) {
    if (!isObject(part)) continue;
    const t = partText(part);
    if (t !== null) text = (text ?? "") + t;
    const call = toToolCall(part, newId);
    if (call !== null) toolCalls.push(call);
  }
  const finish = blocked
    ? "content_filter"
    : toFinishReason(candidate?.finishReason, toolCalls.length > 0) ??
      (toolCalls.length > 0 ? "tool_calls" : "stop");
  return toChatCompletion({
    id: `chatcmpl-${typeof json.responseId === "string" ? json.responseId : newId()}`,
    created: opts.created ?? Math.floor(Date.now() / 1000),
    model: typeof json.modelVersion === "string" && json.modelVersion !== ""
      ? json.modelVersion
      : model,
    text,
    toolCalls,
    finish,
    usage: toOpenAIUsage(json.usageMetadata),
  });
}

function isGeminiResponse(v: unknown): v is GeminiResponse {
  if (!isObject(v)) return false;
  if (v.candidates !== undefined && !Array.isArray(v.candidates)) return false;
  return v.candidates !== undefined || isObject(v.promptFeedback) || isObject(v.usageMetadata);
}
