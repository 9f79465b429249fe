/**
 * Amazon Bedrock Runtime Converse / ConverseStream wire types (JSON over
 * `POST /model/{modelId}/converse` and `/converse-stream`), limited to what the OpenAI
 * translation reads or writes. Names follow the API reference (`API_runtime_*`).
 * @module
 */

// ---- Request -------------------------------------------------------------------------------

/** `ImageBlock.format`. */
export type ConverseImageFormat = "png" | "jpeg" | "gif" | "webp";

export interface ConverseImageBlock {
  image: {
    format: ConverseImageFormat;
    /** `bytes` is a blob: base64 in the JSON protocol. */
    source: { bytes: string } | { s3Location: { uri: string } };
  };
}

export interface ConverseTextBlock {
  text: string;
}

export interface ConverseToolUseBlock {
  toolUse: { toolUseId: string; name: string; input: Record<string, unknown> };
}

/** `ToolResultContentBlock`: one of text, json, image (document and video are not built). */
export type ConverseToolResultContent = ConverseTextBlock | { json: unknown } | ConverseImageBlock;

export interface ConverseToolResultBlock {
  toolResult: {
    toolUseId: string;
    content: ConverseToolResultContent[];
    status?: "success" | "error";
  };
}

export type ConverseContentBlock =
  | ConverseTextBlock
  | ConverseImageBlock
  | ConverseToolUseBlock
  | ConverseToolResultBlock;

export interface ConverseMessage {
  role: "user" | "assistant";
  content: ConverseContentBlock[];
}

export interface ConverseTool {
  toolSpec: {
    name: string;
    description?: string;
    inputSchema: { json: Record<string, unknown> };
  };
}

/** A union: exactly one member. Converse has no "none" (see request.ts). */
export type ConverseToolChoice =
  | { auto: Record<string, never> }
  | { any: Record<string, never> }
  | { tool: { name: string } };

export interface ConverseInferenceConfig {
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  stopSequences?: string[];
}

export interface ConverseRequest {
  messages: ConverseMessage[];
  system?: ConverseTextBlock[];
  inferenceConfig?: ConverseInferenceConfig;
  toolConfig?: { tools: ConverseTool[]; toolChoice?: ConverseToolChoice };
  /** Fields the model family takes beyond Converse's own (Claude's `top_k`). */
  additionalModelRequestFields?: Record<string, unknown>;
  /** JSON Pointers into the model's own answer, returned in `additionalModelResponseFields`. */
  additionalModelResponseFieldPaths?: string[];
}

// ---- Response ------------------------------------------------------------------------------

/** `TokenUsage`: `inputTokens` excludes the cache reads and writes, which come separately. */
export interface ConverseUsage {
  inputTokens?: number;
  outputTokens?: number;
  totalTokens?: number;
  cacheReadInputTokens?: number;
  cacheWriteInputTokens?: number;
}

/** A response content block as read: each field is checked where it is used. */
export interface ConverseOutputBlock {
  text?: unknown;
  toolUse?: unknown;
  [member: string]: unknown;
}

export interface ConverseResponse {
  output: { message: { role?: string; content: ConverseOutputBlock[] } };
  stopReason?: string;
  usage?: ConverseUsage;
  /** What `additionalModelResponseFieldPaths` asked for (Claude's `stop_sequence`). */
  additionalModelResponseFields?: unknown;
  [field: string]: unknown;
}
