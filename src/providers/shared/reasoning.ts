/**
 * OpenAI's `reasoning_effort`, for the providers whose models think on a budget or a level
 * instead. Pure: the effort is read and checked here; each provider's translation decides
 * what it becomes (Anthropic and Claude on Bedrock: extended thinking; Gemini: its
 * thinking config).
 * @module
 */
import type { OpenAIChatRequest } from "../../schema/openai.ts";
import { invalid } from "./openai_request.ts";

export type ReasoningEffort = "none" | "minimal" | "low" | "medium" | "high" | "xhigh";

const EFFORTS: readonly ReasoningEffort[] = ["none", "minimal", "low", "medium", "high", "xhigh"];

/** The request's `reasoning_effort`, checked; null when absent. */
export function reasoningEffort(body: OpenAIChatRequest): ReasoningEffort | null {
  const v = body.reasoning_effort;
  if (v === undefined || v === null) return null;
  if (typeof v === "string" && (EFFORTS as readonly string[]).includes(v)) {
    return v as ReasoningEffort;
  }
  throw invalid(
    `Invalid value for "reasoning_effort": expected one of ${EFFORTS.join(", ")}`,
    "reasoning_effort",
  );
}

/**
 * Thinking tokens for an effort, on Google's published scale for its OpenAI-compatible
 * layer (ai.google.dev/gemini-api/docs/openai, 2025: low 1,024, medium 8,192, high
 * 24,576; none turns thinking off). `minimal` is `low`, and `xhigh` `high`: nothing finer is
 * published. 1,024 is also the least Anthropic's extended thinking takes.
 */
export function thinkingBudget(effort: ReasoningEffort): number {
  switch (effort) {
    case "none":
      return 0;
    case "minimal":
    case "low":
      return 1_024;
    case "medium":
      return 8_192;
    case "high":
    case "xhigh":
      return 24_576;
  }
}
