/**
 * Gemini API wire types (`v1beta`, `models/{model}:generateContent`,
 * `:streamGenerateContent?alt=sse`, `:batchEmbedContents`), limited to what the OpenAI
 * translation reads or writes, plus the OpenAI shapes the translation adds to
 * (`schema/openai.ts` only types what the gateway receives).
 * @module
 */
import type { OpenAIToolCall, OpenAIToolCallDelta, OpenAIUsageOut } from "../../schema/openai.ts";

// ---- Request -------------------------------------------------------------------------------

export interface GeminiFunctionCall {
  name: string;
  args: Record<string, unknown>;
  /** Set by newer models; sent back on the call and its functionResponse (`geminiIssued`). */
  id?: string;
}

export interface GeminiFunctionResponse {
  /** The `FunctionCall.id` this answers, when Gemini issued one. */
  id?: string;
  name: string;
  /** Must be a JSON object; `output` / `error` keys are conventional (FunctionResponse docs). */
  response: Record<string, unknown>;
}

/** A `Part` is a union by field: exactly one of these data fields is set. */
export type GeminiPart =
  | { text: string; thought?: boolean; thoughtSignature?: string }
  | { inlineData: { mimeType: string; data: string } }
  | { fileData: { mimeType: string; fileUri: string } }
  | { functionCall: GeminiFunctionCall; thoughtSignature?: string }
  | { functionResponse: GeminiFunctionResponse };

export interface GeminiContent {
  role: "user" | "model";
  parts: GeminiPart[];
}

/**
 * The OpenAPI 3.0 subset Gemini accepts for `parameters` and `responseSchema` (`Schema` in
 * the API reference). Types are the enum names (`STRING`, `OBJECT`, ...).
 */
export interface GeminiSchema {
  type?: string;
  format?: string;
  title?: string;
  description?: string;
  nullable?: boolean;
  enum?: string[];
  items?: GeminiSchema;
  properties?: Record<string, GeminiSchema>;
  required?: string[];
  propertyOrdering?: string[];
  anyOf?: GeminiSchema[];
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  pattern?: string;
  default?: unknown;
  example?: unknown;
}

export interface GeminiFunctionDeclaration {
  name: string;
  description?: string;
  /** Omitted for a function without parameters: Gemini refuses an OBJECT with no properties. */
  parameters?: GeminiSchema;
}

export interface GeminiTool {
  functionDeclarations: GeminiFunctionDeclaration[];
}

export interface GeminiToolConfig {
  functionCallingConfig: {
    mode: "AUTO" | "ANY" | "NONE";
    allowedFunctionNames?: string[];
  };
}

export interface GeminiGenerationConfig {
  temperature?: number;
  topP?: number;
  topK?: number;
  maxOutputTokens?: number;
  stopSequences?: string[];
  seed?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  responseMimeType?: string;
  responseSchema?: GeminiSchema;
  /** Thinking (from OpenAI's `reasoning_effort`): a level on Gemini 3+, a budget before. */
  thinkingConfig?: GeminiThinkingConfig;
}

export interface GeminiThinkingConfig {
  thinkingLevel?: string;
  thinkingBudget?: number;
}

export interface GeminiRequest {
  contents: GeminiContent[];
  systemInstruction?: { parts: { text: string }[] };
  tools?: GeminiTool[];
  toolConfig?: GeminiToolConfig;
  generationConfig?: GeminiGenerationConfig;
}

// ---- Response ------------------------------------------------------------------------------

/**
 * `promptTokenCount` already includes `cachedContentTokenCount` ("When cached_content is
 * set, this is still the total effective prompt size"); `thoughtsTokenCount` is billed as
 * output but not part of `candidatesTokenCount`; `toolUsePromptTokenCount` counts what
 * server-side tools fed back to the model.
 */
export interface GeminiUsageMetadata {
  promptTokenCount?: number;
  candidatesTokenCount?: number;
  totalTokenCount?: number;
  cachedContentTokenCount?: number;
  thoughtsTokenCount?: number;
  toolUsePromptTokenCount?: number;
}

/** A response part narrowed only as far as the translation reads it. */
export interface GeminiResponsePart {
  text?: unknown;
  thought?: unknown;
  thoughtSignature?: unknown;
  functionCall?: unknown;
}

export interface GeminiCandidate {
  content?: { role?: string; parts?: GeminiResponsePart[] };
  finishReason?: string;
  index?: number;
}

/** `GenerateContentResponse`: also each `data:` event of a `?alt=sse` stream. */
export interface GeminiResponse {
  candidates?: GeminiCandidate[];
  promptFeedback?: { blockReason?: string };
  usageMetadata?: GeminiUsageMetadata;
  modelVersion?: string;
  responseId?: string;
}

/** `{"error":{"code":429,"message":"...","status":"RESOURCE_EXHAUSTED","details":[...]}}` */
export interface GeminiErrorBody {
  error: { code?: number; message?: string; status?: string; details?: unknown[] };
}

// ---- Embeddings ----------------------------------------------------------------------------

export interface GeminiEmbedRequest {
  requests: {
    model: string;
    content: { parts: { text: string }[] };
    outputDimensionality?: number;
  }[];
}

export interface GeminiEmbedResponse {
  embeddings: { values: number[] }[];
  usageMetadata?: { promptTokenCount?: number; totalTokenCount?: number };
}

// ---- OpenAI shapes extended for Gemini -----------------------------------------------------

/**
 * Where Google's own OpenAI-compatible endpoint carries a Gemini thought signature on a tool
 * call. Clients that append the assistant message as received send it back, which Gemini 3
 * requires for function calling ("Function call is missing a thought_signature").
 */
export interface GoogleExtraContent {
  google: { thought_signature: string };
}

export interface GeminiOpenAIToolCall extends OpenAIToolCall {
  extra_content?: GoogleExtraContent;
}

export interface GeminiOpenAIToolCallDelta extends OpenAIToolCallDelta {
  extra_content?: GoogleExtraContent;
}

/** OpenAI usage plus the reasoning-token breakdown Gemini's thinking models report. */
export type GeminiOpenAIUsage = OpenAIUsageOut & {
  completion_tokens_details: { reasoning_tokens: number };
};
