import { GatewayError } from "../../errors.ts";
import {
  isObject,
  type OpenAIChatCompletion,
  type OpenAIFinishReason,
  type OpenAIToolCall,
  type OpenAIUsageOut,
} from "../../schema/openai.ts";
import {
  finishReasonFrom,
  openAIUsage,
  toChatCompletion,
  tokenCount as n,
  withThinking,
} from "../shared/openai_response.ts";
import type { ConverseResponse, ConverseUsage } from "./types.ts";

/**
 * Converse `stopReason` -> OpenAI `finish_reason`. Guardrail and content-filter stops are
 * OpenAI's content_filter; a context-window stop is a length stop. The malformed-output
 * reasons and any reason added later map to "stop", which at least ends the client's wait.
 */
const FINISH_REASON: Readonly<Record<string, OpenAIFinishReason>> = {
  end_turn: "stop",
  stop_sequence: "stop",
  max_tokens: "length",
  model_context_window_exceeded: "length",
  tool_use: "tool_calls",
  guardrail_intervened: "content_filter",
  content_filtered: "content_filter",
};

export function toFinishReason(stopReason: unknown): OpenAIFinishReason | null {
  return finishReasonFrom(FINISH_REASON, stopReason);
}

/**
 * Converse usage -> OpenAI usage. `inputTokens` excludes cache reads and writes (reported
 * beside it), while OpenAI's `prompt_tokens` counts every prompt token, so the three are
 * summed; cache reads are also `prompt_tokens_details.cached_tokens`.
 */
export function toOpenAIUsage(usage: ConverseUsage | undefined): OpenAIUsageOut {
  const cached = n(usage?.cacheReadInputTokens);
  const writes = n(usage?.cacheWriteInputTokens);
  const prompt = n(usage?.inputTokens) + writes + cached;
  return openAIUsage(prompt, n(usage?.outputTokens), cached, writes);
}

export interface ConverseResponseContext {
  /** Converse names no model in its answer: the requested model id is reported. */
  readonly model: string;
  /** Converse has no response id either; the adapter passes `x-amzn-requestid`. */
  readonly id: string;
  readonly provider: string;
  /** Unix seconds; defaults to now (tests pin it). */
  readonly created?: number;
}

/**
 * Translate a Converse answer into an OpenAI `chat.completion`. Text blocks are concatenated
 * into `content` (null when the answer is only tool calls), `toolUse` blocks become
 * `tool_calls`; reasoning, citations and guardrail traces are not part of the OpenAI shape.
 */
export function fromConverseResponse(
  json: unknown,
  ctx: ConverseResponseContext,
): OpenAIChatCompletion {
  if (!isConverseResponse(json)) {
    throw new GatewayError(
      "upstream_error",
      `Provider "${ctx.provider}" returned a body that is not a Converse response`,
      { provider: ctx.provider },
    );
  }
  let text: string | null = null;
  let reasoning = 0;
  const toolCalls: OpenAIToolCall[] = [];
  for (const block of json.output.message.content) {
    if (typeof block.text === "string") {
      text = (text ?? "") + block.text;
      continue;
    }
    reasoning += reasoningChars(block.reasoningContent);
    const call = toToolCall(block.toolUse, toolCalls.length);
    if (call !== null) toolCalls.push(call);
  }
  const out = toChatCompletion({
    id: `chatcmpl-${ctx.id}`,
    created: ctx.created ?? Math.floor(Date.now() / 1000),
    model: ctx.model,
    text,
    toolCalls,
    finish: toFinishReason(json.stopReason) ?? (toolCalls.length > 0 ? "tool_calls" : "stop"),
    usage: withThinking(toOpenAIUsage(json.usage), reasoning),
  });
  const stop = stopSequenceOf(json.stopReason, json.additionalModelResponseFields);
  if (stop !== undefined) out.choices[0].stop_sequence = stop;
  return out;
}

/**
 * For a `stop_sequence` stop: the sequence, from Claude's `additionalModelResponseFields`
 * (asked for by the request), or null when the model did not say; undefined for any other stop.
 */
export function stopSequenceOf(
  stopReason: unknown,
  fields: unknown,
): string | null | undefined {
  if (stopReason !== "stop_sequence") return undefined;
  const named = isObject(fields) ? fields.stop_sequence : undefined;
  return typeof named === "string" ? named : null;
}

/**
 * Characters of a `reasoningContent` block's text (`{reasoningText: {text, signature}}`), or
 * of a stream's delta of one (`{text}`); 0 for redacted (encrypted) reasoning.
 */
export function reasoningChars(content: unknown): number {
  if (!isObject(content)) return 0;
  const text = isObject(content.reasoningText) ? content.reasoningText.text : content.text;
  return typeof text === "string" ? text.length : 0;
}

function toToolCall(toolUse: unknown, ordinal: number): OpenAIToolCall | null {
  if (!isObject(toolUse) || typeof toolUse.name !== "string") return null;
  return {
    id: typeof toolUse.toolUseId === "string" ? toolUse.toolUseId : `call_${ordinal}`,
    type: "function",
    function: { name: toolUse.name, arguments: JSON.stringify(toolUse.input ?? {}) },
  };
}

function isConverseResponse(v: unknown): v is ConverseResponse {
  if (!isObject(v) || !isObject(v.output) || !isObject(v.output.message)) return false;
  const content = v.output.message.content;
  return Array.isArray(content) && content.every(isObject);
}
