/**
 * OpenAI's `reasoning_effort` as Claude's extended thinking (`thinking: {type: "enabled",
 * budget_tokens}`), on the Anthropic API and on Bedrock alike. Pure.
 *
 * Claude's rules, from Anthropic's extended-thinking guide: `budget_tokens` is at least 1,024
 * and below `max_tokens` (which counts the thinking, as OpenAI's `max_completion_tokens`
 * counts reasoning); `temperature` and `top_k` may not be changed and `top_p` only down to
 * 0.95; `tool_choice` may not force a tool; an assistant prefill is not taken; and the
 * assistant turn that called the tools a request answers must start with its thinking block,
 * which an OpenAI message cannot carry.
 * @module
 */
import { GatewayError } from "../../errors.ts";
import { isObject, type OpenAIChatRequest, type OpenAIMessage } from "../../schema/openai.ts";
import { maxTokensOf } from "../shared/openai_request.ts";
import { reasoningEffort, thinkingBudget } from "../shared/reasoning.ts";

/** The least `budget_tokens` Claude takes. */
const MIN_BUDGET = 1_024;

/** Room for the answer beside the thinking when the client set no limit. */
const ANSWER_TOKENS = 4_096;

/** A conversation that ends in an assistant prefill, or answers the last assistant's calls. */
function barred(messages: readonly OpenAIMessage[]): boolean {
  const last = messages.findLast((m) => m.role !== "system" && m.role !== "developer");
  if (last?.role === "assistant") return true;
  const calls = messages.findLast((m) => m.role === "assistant")?.tool_calls;
  return Array.isArray(calls) && calls.length > 0;
}

export interface ClaudeThinking {
  readonly budget: number;
  /** The request's `max_tokens`: the client's, or room for the budget plus an answer. */
  readonly maxTokens: number;
}

/**
 * The thinking a request asks for, or null: no effort, `none`, or a conversation thinking
 * cannot continue (it answers tool calls, whose turn would need its thinking block, or ends
 * in an assistant prefill, which thinking does not take); such a turn goes without thinking
 * rather than be refused.
 */
export function claudeThinking(body: OpenAIChatRequest, provider: string): ClaudeThinking | null {
  const effort = reasoningEffort(body);
  if (effort === null || effort === "none" || barred(body.messages)) return null;
  const choice = body.tool_choice;
  if (choice === "required" || isObject(choice)) {
    throw new GatewayError(
      "invalid_request",
      `"reasoning_effort" with a "tool_choice" that forces a tool is not supported by provider "${provider}" (its extended thinking allows "auto" or "none")`,
      { param: "tool_choice", provider },
    );
  }
  const budget = thinkingBudget(effort);
  const limit = maxTokensOf(body);
  if (limit === null) return { budget, maxTokens: budget + ANSWER_TOKENS };
  if (limit <= MIN_BUDGET) {
    const param = typeof body.max_completion_tokens === "number"
      ? "max_completion_tokens"
      : "max_tokens";
    throw new GatewayError(
      "invalid_request",
      `"${param}" must be above ${MIN_BUDGET} with "reasoning_effort" on provider "${provider}": the limit counts the thinking, and ${MIN_BUDGET} tokens is the least it takes`,
      { param, provider },
    );
  }
  // The client's limit counts the thinking too, as OpenAI's counts reasoning. The answer keeps
  // the room it has without a limit, up to half of it: a budget that took all but one token
  // would leave the answer nothing.
  const room = Math.min(ANSWER_TOKENS, Math.floor(limit / 2));
  return { budget: Math.min(budget, Math.max(MIN_BUDGET, limit - room)), maxTokens: limit };
}

/** Sampling as extended thinking takes it: `temperature` and `top_k` unset, `top_p` >= 0.95. */
export function thinkingTopP(topP: unknown): number | undefined {
  return typeof topP === "number" && topP >= 0.95 ? topP : undefined;
}

/**
 * Claude from Opus 4.1 on (Sonnet and Haiku 4.5, Opus 4.5, later ones) refuses `temperature`
 * and `top_p` together ("cannot both be specified for this model"), and OpenAI clients often
 * send both (`top_p: 1` is a common default): such a model gets `temperature` alone.
 */
export function oneSamplingKnob(model: string): boolean {
  return /claude-(?:opus|sonnet|haiku)-(?:4-[1-9]|[5-9]|\d{2,})(?!\d)/.test(model);
}
