/**
 * Anthropic Messages API wire types (`POST /v1/messages`, `anthropic-version: 2023-06-01`),
 * limited to what the OpenAI translation reads or writes, plus the OpenAI output shapes the
 * translation builds (`schema/openai.ts` only types what the gateway receives).
 * @module
 */

// ---- Request -------------------------------------------------------------------------------

export interface AnthropicTextBlock {
  type: "text";
  text: string;
}

export type AnthropicImageSource =
  | { type: "base64"; media_type: string; data: string }
  | { type: "url"; url: string };

export interface AnthropicImageBlock {
  type: "image";
  source: AnthropicImageSource;
}

export interface AnthropicToolUseBlock {
  type: "tool_use";
  id: string;
  name: string;
  input: Record<string, unknown>;
}

export interface AnthropicToolResultBlock {
  type: "tool_result";
  tool_use_id: string;
  content: string | (AnthropicTextBlock | AnthropicImageBlock)[];
}

export type AnthropicContentBlock =
  | AnthropicTextBlock
  | AnthropicImageBlock
  | AnthropicToolUseBlock
  | AnthropicToolResultBlock;

export interface AnthropicMessage {
  role: "user" | "assistant";
  content: string | AnthropicContentBlock[];
}

export interface AnthropicTool {
  name: string;
  description?: string;
  input_schema: Record<string, unknown>;
}

export type AnthropicToolChoice =
  | { type: "auto"; disable_parallel_tool_use?: boolean }
  | { type: "any"; disable_parallel_tool_use?: boolean }
  | { type: "tool"; name: string; disable_parallel_tool_use?: boolean }
  | { type: "none" };

export interface AnthropicRequest {
  model: string;
  messages: AnthropicMessage[];
  max_tokens: number;
  system?: string;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  /** Extended thinking (from OpenAI's `reasoning_effort`). */
  thinking?: { type: "enabled"; budget_tokens: number };
  stop_sequences?: string[];
  stream?: boolean;
  metadata?: { user_id: string };
  tools?: AnthropicTool[];
  tool_choice?: AnthropicToolChoice;
}

// ---- Response ------------------------------------------------------------------------------

/**
 * `input_tokens` counts only what follows the last cache breakpoint; the prompt's total is
 * `input_tokens + cache_creation_input_tokens + cache_read_input_tokens` (prompt caching docs).
 */
export interface AnthropicUsage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

/**
 * A response content block; types we do not translate (thinking, server tools) are skipped
 * (a thinking block's text is counted for the reasoning tokens).
 */
export interface AnthropicResponseBlock {
  type: string;
  text?: string;
  thinking?: string;
  id?: string;
  name?: string;
  input?: unknown;
}

export interface AnthropicResponse {
  id: string;
  type: "message";
  role: "assistant";
  model: string;
  content: AnthropicResponseBlock[];
  stop_reason: string | null;
  stop_sequence?: string | null;
  usage?: AnthropicUsage;
}

/** `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":...}` */
export interface AnthropicErrorBody {
  type: "error";
  error: { type: string; message: string };
  request_id?: string;
}
