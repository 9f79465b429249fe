/**
 * What every translator of a provider's answer into an OpenAI `chat.completion` shares:
 * the finish-reason lookup, the usage block and the completion envelope. Where providers
 * differ (their reasons, their token fields) the difference is a parameter.
 * @module
 */
import type {
  OpenAIChatCompletion,
  OpenAIFinishReason,
  OpenAIToolCall,
  OpenAIUsageOut,
} from "../../schema/openai.ts";
import { estimateTokens } from "../../usage/cost.ts";

/**
 * A provider's stop reason -> OpenAI `finish_reason` by `table`; null when there is none.
 * Reasons missing from the table (unknown future ones included) map to "stop", the one
 * that makes a client stop waiting.
 */
export function finishReasonFrom(
  table: Readonly<Record<string, OpenAIFinishReason>>,
  reason: unknown,
): OpenAIFinishReason | null {
  if (typeof reason !== "string") return null;
  return table[reason] ?? "stop";
}

/** A token count as reported, 0 when absent or not a finite number. */
export function tokenCount(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

/**
 * OpenAI usage from the prompt (cache reads and writes included), completion, cache-read,
 * cache-write and reasoning counts, with every detail field OpenAI sends (zeros where nothing
 * applies). Cache writes have no OpenAI field: ours (`cache_write_tokens`) is present only
 * when there were some, so answers without any look exactly like OpenAI's.
 */
export function openAIUsage(
  prompt: number,
  completion: number,
  cached: number,
  cacheWrites = 0,
  reasoning = 0,
): OpenAIUsageOut {
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: cacheWrites > 0
      ? { cached_tokens: cached, audio_tokens: 0, cache_write_tokens: cacheWrites }
      : { cached_tokens: cached, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: reasoning,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

/**
 * `usage` with `completion_tokens_details.reasoning_tokens` for a provider that counts its
 * thinking only inside the output (Claude's `output_tokens`, on Anthropic's API and
 * Bedrock's): estimated from the thinking text it sent (~4 characters a token, as the meter
 * estimates), at most the output reported; `completion_tokens` stays as reported. Thinking
 * that came encrypted (redacted) has no text and is not counted.
 */
export function withThinking(usage: OpenAIUsageOut, thinkingChars: number): OpenAIUsageOut {
  const reasoning = Math.min(estimateTokens(thinkingChars), usage.completion_tokens);
  return reasoning > 0
    ? {
      ...usage,
      completion_tokens_details: {
        ...usage.completion_tokens_details,
        reasoning_tokens: reasoning,
      },
    }
    : usage;
}

export interface CompletionParts<C extends OpenAIToolCall, U extends OpenAIUsageOut> {
  readonly id: string;
  readonly created: number;
  readonly model: string;
  /** Answer text concatenated; null when there was none. */
  readonly text: string | null;
  readonly toolCalls: C[];
  readonly finish: OpenAIFinishReason | null;
  readonly usage: U;
}

/** The `chat.completion` of one choice, shaped as OpenAI answers it. */
export function toChatCompletion<C extends OpenAIToolCall, U extends OpenAIUsageOut>(
  parts: CompletionParts<C, U>,
): OpenAIChatCompletion {
  const { text, toolCalls } = parts;
  return {
    id: parts.id,
    object: "chat.completion",
    created: parts.created,
    model: parts.model,
    choices: [{
      index: 0,
      message: {
        role: "assistant",
        // OpenAI sends null content beside tool calls, and "" for an empty answer.
        content: text !== null && text !== "" ? text : toolCalls.length > 0 ? null : "",
        refusal: null,
        ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
      },
      logprobs: null,
      finish_reason: parts.finish,
    }],
    usage: parts.usage,
    system_fingerprint: null,
  };
}
