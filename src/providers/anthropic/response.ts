import { GatewayError } from "../../errors.ts";
import type {
  OpenAIChatCompletion,
  OpenAIFinishReason,
  OpenAIToolCall,
  OpenAIUsageOut,
} from "../../schema/openai.ts";
import {
  finishReasonFrom,
  openAIUsage,
  toChatCompletion,
  tokenCount as n,
  withThinking,
} from "../shared/openai_response.ts";
import type { AnthropicResponse, AnthropicUsage } from "./types.ts";

/**
 * Anthropic `stop_reason` -> OpenAI `finish_reason`. `pause_turn` (a server tool paused a
 * long turn) has no OpenAI counterpart; "stop" is the closest that makes a client stop
 * waiting. Unknown future reasons also map to "stop".
 */
const FINISH_REASON: Readonly<Record<string, OpenAIFinishReason>> = {
  end_turn: "stop",
  stop_sequence: "stop",
  pause_turn: "stop",
  max_tokens: "length",
  model_context_window_exceeded: "length",
  tool_use: "tool_calls",
  refusal: "content_filter",
};

export function toFinishReason(stopReason: unknown): OpenAIFinishReason | null {
  return finishReasonFrom(FINISH_REASON, stopReason);
}

/**
 * For a `stop_sequence` stop: the sequence Anthropic names (null if it did not), carried as
 * the choice's `stop_sequence` so `/v1/messages` can say it; undefined for any other stop.
 */
export function stopSequenceOf(stopReason: unknown, sequence: unknown): string | null | undefined {
  if (stopReason !== "stop_sequence") return undefined;
  return typeof sequence === "string" ? sequence : null;
}

/**
 * Anthropic usage -> OpenAI usage. OpenAI's `prompt_tokens` includes cached tokens, while
 * Anthropic's `input_tokens` excludes both cache reads and cache writes, so the three are
 * summed; cache reads are also reported as `prompt_tokens_details.cached_tokens`.
 */
export function toOpenAIUsage(usage: AnthropicUsage | undefined): OpenAIUsageOut {
  const cached = n(usage?.cache_read_input_tokens);
  const writes = n(usage?.cache_creation_input_tokens);
  const prompt = n(usage?.input_tokens) + writes + cached;
  return openAIUsage(prompt, n(usage?.output_tokens), cached, writes);
}

/**
 * Translate a non-streaming Anthropic message into an OpenAI `chat.completion`. Text blocks
 * are concatenated into `content` (null when the answer is only tool calls), `tool_use`
 * blocks become `tool_calls`; thinking and server-tool blocks are not part of the OpenAI
 * shape and are left out. `model` is the fallback when the body does not name one.
 */
export function fromAnthropicResponse(
  json: unknown,
  model: string,
  created: number = Math.floor(Date.now() / 1000),
  provider = "anthropic",
): OpenAIChatCompletion {
  if (!isAnthropicMessage(json)) {
    throw new GatewayError(
      "upstream_error",
      `Provider "${provider}" returned a body that is not an Anthropic message`,
      { provider },
    );
  }
  let text: string | null = null;
  let thinking = 0;
  const toolCalls: OpenAIToolCall[] = [];
  for (const block of json.content) {
    if (block.type === "text" && typeof block.text === "string") {
      text = (text ?? "") + block.text;
    } else if (block.type === "thinking" && typeof block.thinking === "string") {
      thinking += block.thinking.length;
    } else if (block.type === "tool_use" && typeof block.name === "string") {
      toolCalls.push({
        id: typeof block.id === "string" ? block.id : `call_${toolCalls.length}`,
        type: "function",
        function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) },
      });
    }
  }
  const out = toChatCompletion({
    id: `chatcmpl-${json.id}`,
    created,
    model: typeof json.model === "string" && json.model !== "" ? json.model : model,
    text,
    toolCalls,
    finish: toFinishReason(json.stop_reason),
    usage: withThinking(toOpenAIUsage(json.usage), thinking),
  });
  const stop = stopSequenceOf(json.stop_reason, json.stop_sequence);
  if (stop !== undefined) out.choices[0].stop_sequence = stop;
  return out;
}

function isAnthropicMessage(v: unknown): v is AnthropicResponse {
  if (v === null || typeof v !== "object") return false;
  const m = v as Record<string, unknown>;
  return typeof m.id === "string" && Array.isArray(m.content) &&
    m.content.every((b) => b !== null && typeof b === "object");
}
