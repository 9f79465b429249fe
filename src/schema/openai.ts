import { GatewayError } from "../errors.ts";
import { type GatewayOptions, parseGatewayOptions } from "./gateway.ts";

export { type GatewayOptions, parseGatewayOptions } from "./gateway.ts";

/** OpenAI chat message as received; unknown fields are kept and forwarded. */
export interface OpenAIMessage {
  role: string;
  content?: string | OpenAIContentPart[] | null;
  [field: string]: unknown;
}

export interface OpenAIContentPart {
  type: string;
  [field: string]: unknown;
}

/**
 * Marks a chat request Pilotfish translated from another API (`/v1/messages`, `/v1/responses`)
 * rather than received: its fields are ours to choose (`translated()`). A non-enumerable symbol
 * key: JSON never carries it, and a copy of the body is not translated any more.
 */
const TRANSLATED: unique symbol = Symbol("pilotfish.translated");

/** `body`, marked as translated. */
export function markTranslated<T extends OpenAIChatRequest>(body: T): T {
  Object.defineProperty(body, TRANSLATED, { value: true });
  return body;
}

/** Whether `body` came from a translation (see `markTranslated`). */
export function translated(body: OpenAIChatRequest): boolean {
  return (body as { [TRANSLATED]?: true })[TRANSLATED] === true;
}

/** OpenAI chat completion request; fields we do not interpret pass through untouched. */
export interface OpenAIChatRequest {
  model: string;
  messages: OpenAIMessage[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean; [field: string]: unknown };
  [field: string]: unknown;
}

/** OpenAI embeddings request; `input` is a string, strings, or token arrays. */
export interface OpenAIEmbeddingsRequest {
  model: string;
  input: string | string[] | number[] | number[][];
  encoding_format?: "float" | "base64";
  dimensions?: number;
  user?: string;
  [field: string]: unknown;
}

/**
 * Token usage, the canonical shape every provider's counts are read into. `prompt_tokens`
 * counts every input token, cached ones included (OpenAI's convention);
 * `prompt_tokens_details.cached_tokens` are cache reads and `cache_write_tokens` (ours:
 * Anthropic's `cache_creation_input_tokens`, Bedrock's `cacheWriteInputTokens`) cache writes.
 * `completion_tokens` counts reasoning too (`completion_tokens_details.reasoning_tokens`).
 */
export interface OpenAIUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number; cache_write_tokens?: number };
  completion_tokens_details?: { reasoning_tokens?: number };
  /** Set by the meter when part of the count is an estimate (a stream cut short). */
  estimated?: boolean;
  [field: string]: unknown;
}

// ---- Responses we build (translated providers, the mock) ---------------------------------

export type OpenAIFinishReason = "stop" | "length" | "tool_calls" | "content_filter";

export interface OpenAIToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export interface OpenAIChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: [{
    index: 0;
    message: {
      role: "assistant";
      content: string | null;
      refusal: null;
      tool_calls?: OpenAIToolCall[];
    };
    logprobs: null;
    finish_reason: OpenAIFinishReason | null;
    /**
     * Ours, beside a "stop": present when a stop sequence ended the answer, the sequence
     * (null when the upstream did not say which), for `/v1/messages`' `stop_sequence`.
     */
    stop_sequence?: string | null;
  }];
  usage: OpenAIUsageOut;
  system_fingerprint: null;
}

/** A type alias (not an interface) so it fits `OpenAIUsage`'s index signature. */
export type OpenAIUsageOut = {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: {
    cached_tokens: number;
    audio_tokens: number;
    cache_write_tokens?: number;
  };
  completion_tokens_details: CompletionTokensDetails;
};

/** OpenAI always sends all four (zeros when nothing applies): clients read them unguarded. */
export interface CompletionTokensDetails {
  reasoning_tokens: number;
  audio_tokens: number;
  accepted_prediction_tokens: number;
  rejected_prediction_tokens: number;
}

/** A streamed tool-call fragment: the first carries id/type/name, the rest only arguments. */
export interface OpenAIToolCallDelta {
  index: number;
  id?: string;
  type?: "function";
  function: { name?: string; arguments: string };
  /** A provider's own data for the call (Gemini's thought signature), handed back next turn. */
  extra_content?: object;
}

export interface OpenAIChunkDelta {
  role?: "assistant";
  /** `null` only in the role chunk of an answer that opens with a tool call. */
  content?: string | null;
  refusal?: null;
  tool_calls?: OpenAIToolCallDelta[];
}

/**
 * `value` as OpenAI's wire has it: a choice's `stop_sequence` (ours, for `/v1/messages`) is
 * not an OpenAI field, so OpenAI-format routes leave it out. Choices carrying one are copied:
 * the canonical answer may still be read elsewhere (the cache).
 */
export function withoutStopSequence<T extends { choices: readonly object[] }>(value: T): T {
  if (!value.choices.some((c) => "stop_sequence" in c)) return value;
  const choices = value.choices.map((c) => {
    if (!("stop_sequence" in c)) return c;
    const { stop_sequence: _ours, ...rest } = c as { stop_sequence?: unknown };
    return rest;
  });
  return { ...value, choices };
}

/** One event of a chat stream (`chat.completion.chunk`), the canonical stream unit. */
export interface OpenAIChatChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  system_fingerprint?: string | null;
  choices: {
    index: number;
    delta: OpenAIChunkDelta;
    logprobs?: unknown;
    finish_reason: string | null;
    /** As on `OpenAIChatCompletion`'s choice: the stop sequence that ended the answer. */
    stop_sequence?: string | null;
  }[];
  /** `null` on every chunk when the client asked for usage; the counts on the last one. */
  usage?: OpenAIUsage | null;
  [field: string]: unknown;
}

export interface ParsedChatRequest {
  body: OpenAIChatRequest;
  gateway: GatewayOptions;
}

const ROLES = new Set(["system", "developer", "user", "assistant", "tool", "function"]);

/** A JSON object: not null, not an array. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function invalid(message: string, param: string): GatewayError {
  return new GatewayError("invalid_request", message, { param });
}

function expectNumber(
  body: Record<string, unknown>,
  field: string,
  min?: number,
  max?: number,
  integer = false,
) {
  const v = body[field];
  if (v === undefined || v === null) return;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw invalid(`"${field}" must be a number`, field);
  }
  if (integer && !Number.isInteger(v)) {
    throw invalid(`"${field}" must be an integer, got ${v}`, field);
  }
  if ((min !== undefined && v < min) || (max !== undefined && v > max)) {
    const range = max === undefined
      ? `at least ${min}`
      : min === undefined
      ? `at most ${max}`
      : `between ${min} and ${max}`;
    throw invalid(`"${field}" must be ${range}, got ${v}`, field);
  }
}

/**
 * Validate an OpenAI chat completion request body. Checks what the gateway itself relies
 * on (model, messages, stream flags, x-gateway) and the obvious type errors, naming the
 * field in the error; everything else is the provider's to judge.
 */
export function parseChatRequest(raw: unknown): ParsedChatRequest {
  if (!isObject(raw)) throw invalid("Request body must be a JSON object", "body");
  if (typeof raw.model !== "string" || raw.model.trim() === "") {
    throw invalid(
      raw.model === undefined
        ? `Missing required field "model"`
        : `"model" must be a non-empty string`,
      "model",
    );
  }
  const messages = raw.messages;
  if (!Array.isArray(messages)) {
    throw invalid(
      messages === undefined ? `Missing required field "messages"` : `"messages" must be an array`,
      "messages",
    );
  }
  if (messages.length === 0) {
    throw invalid(`"messages" must contain at least one message`, "messages");
  }
  messages.forEach((m, i) => {
    const at = `messages[${i}]`;
    if (!isObject(m)) throw invalid(`"${at}" must be an object`, at);
    if (typeof m.role !== "string") {
      throw invalid(`Missing required field "${at}.role"`, `${at}.role`);
    }
    if (!ROLES.has(m.role)) {
      throw invalid(
        `"${at}.role" must be one of ${[...ROLES].join(", ")}; got "${m.role}"`,
        `${at}.role`,
      );
    }
    const c = m.content;
    if (Array.isArray(c)) {
      c.forEach((part, j) => {
        if (!isObject(part) || typeof part.type !== "string") {
          throw invalid(`"${at}.content[${j}].type" is required`, `${at}.content[${j}].type`);
        }
      });
    } else if (c !== undefined && c !== null && typeof c !== "string") {
      throw invalid(
        `"${at}.content" must be a string or an array of content parts`,
        `${at}.content`,
      );
    } else if ((c === undefined || c === null) && m.role !== "assistant") {
      throw invalid(`Missing required field "${at}.content"`, `${at}.content`);
    }
  });
  if (raw.stream !== undefined && raw.stream !== null && typeof raw.stream !== "boolean") {
    throw invalid(`"stream" must be a boolean`, "stream");
  }
  if (
    raw.stream_options !== undefined && raw.stream_options !== null && !isObject(raw.stream_options)
  ) {
    throw invalid(`"stream_options" must be an object`, "stream_options");
  }
  const includeUsage = (raw.stream_options as { include_usage?: unknown } | null | undefined)
    ?.include_usage;
  if (includeUsage !== undefined && includeUsage !== null && typeof includeUsage !== "boolean") {
    throw invalid(
      `"stream_options.include_usage" must be a boolean`,
      "stream_options.include_usage",
    );
  }
  if (raw.tools !== undefined && raw.tools !== null && !Array.isArray(raw.tools)) {
    throw invalid(`"tools" must be an array`, "tools");
  }
  expectNumber(raw, "temperature", 0, 2);
  expectNumber(raw, "top_p", 0, 1);
  expectNumber(raw, "n", 1, 128, true);
  expectNumber(raw, "max_tokens", 1, undefined, true);
  expectNumber(raw, "max_completion_tokens", 1, undefined, true);
  // Ranges are the provider's to judge; a number JSON cannot carry (1e400 parses as Infinity,
  // which would be forwarded as null) is ours to refuse.
  for (const field of ["frequency_penalty", "presence_penalty", "seed", "top_logprobs"]) {
    expectNumber(raw, field);
  }

  const gateway = parseGatewayOptions(raw["x-gateway"]);
  const { "x-gateway": _ext, ...body } = raw;
  return { body: body as OpenAIChatRequest, gateway };
}

/** OpenAI's error envelope. */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

const OPENAI_ERROR_TYPE: Record<string, string> = {
  invalid_request: "invalid_request_error",
  unauthenticated: "authentication_error",
  forbidden: "permission_error",
  not_found: "not_found_error",
  method_not_allowed: "invalid_request_error",
  payload_too_large: "invalid_request_error",
  request_timeout: "invalid_request_error",
  unsupported_media_type: "invalid_request_error",
  rate_limited: "rate_limit_error",
  not_implemented: "invalid_request_error",
  upstream_timeout: "timeout_error",
  upstream_unreachable: "api_connection_error",
  upstream_error: "api_error",
  unavailable: "api_error",
  internal: "api_error",
};

/** An upstream failure without a type of its own (Gemini's, Bedrock's): typed by its status. */
const UPSTREAM_TYPE_BY_STATUS: Readonly<Record<number, string>> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  408: "timeout_error",
  413: "invalid_request_error",
  422: "invalid_request_error",
  // Failed Dependency: the model failed on a valid request (Bedrock's ModelErrorException).
  424: "api_error",
  429: "rate_limit_error",
  504: "timeout_error",
};

/** Render a GatewayError as OpenAI error JSON. */
export function toOpenAIError(err: GatewayError): OpenAIErrorBody {
  // Another 4xx an upstream gave no type of its own: OpenAI's word for a client error.
  const ownType = err.code === "upstream_error" || err.code === "rate_limited"
    ? UPSTREAM_TYPE_BY_STATUS[err.status] ??
      (err.status >= 400 && err.status < 500 ? "invalid_request_error" : undefined)
    : undefined;
  return {
    error: {
      message: err.message,
      type: err.info.upstreamType ?? ownType ?? OPENAI_ERROR_TYPE[err.code] ?? "api_error",
      param: err.info.param ?? null,
      // OpenAI's own code for a 429 (what its SDK users and llm-proxy's match on).
      code: err.info.upstreamCode !== undefined
        ? err.info.upstreamCode
        : err.code === "rate_limited"
        ? "rate_limit_exceeded"
        : err.code,
    },
  };
}
