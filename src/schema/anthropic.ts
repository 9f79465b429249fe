/**
 * Inbound Anthropic Messages API (`POST /v1/messages`): wire types, request validation and
 * the error envelope. The outbound side (what the Anthropic adapter sends) lives in
 * `providers/anthropic/types.ts`.
 * @module
 */
import { GatewayError } from "../errors.ts";
import { type GatewayOptions, parseGatewayOptions } from "./gateway.ts";

// ---- Request -------------------------------------------------------------------------------

/**
 * A content block as received. Only the fields the translation reads are typed; blocks keep
 * everything else (`cache_control`, `citations`, ...) for same-schema passthrough.
 */
export interface MessagesBlock {
  type: string;
  [field: string]: unknown;
}

export interface MessagesTextBlock extends MessagesBlock {
  type: "text";
  text: string;
}

export type MessagesImageSource =
  | { type: "base64"; media_type: string; data: string }
  | { type: "url"; url: string }
  | { type: string; [field: string]: unknown };

export interface MessagesImageBlock extends MessagesBlock {
  type: "image";
  source: MessagesImageSource;
}

export interface MessagesToolUseBlock extends MessagesBlock {
  type: "tool_use";
  id: string;
  name: string;
  input: Record<string, unknown>;
}

export interface MessagesToolResultBlock extends MessagesBlock {
  type: "tool_result";
  tool_use_id: string;
  content?: string | MessagesBlock[];
  is_error?: boolean;
}

/**
 * A conversation turn. `system` turns (instructions placed mid-conversation; the SDK's
 * `SystemMessageParam`) hold text only.
 */
export interface MessagesMessage {
  role: "user" | "assistant" | "system";
  content: string | MessagesBlock[];
  [field: string]: unknown;
}

/** A client tool (`type` absent or "custom") or a server tool (`web_search_20250305`, ...). */
export interface MessagesTool {
  name: string;
  type?: string;
  description?: string;
  input_schema?: Record<string, unknown>;
  [field: string]: unknown;
}

export type MessagesToolChoice =
  | { type: "auto" | "any"; disable_parallel_tool_use?: boolean }
  | { type: "tool"; name: string; disable_parallel_tool_use?: boolean }
  | { type: "none" };

/** An Anthropic Messages request; fields we do not interpret are kept for passthrough. */
export interface MessagesRequest {
  model: string;
  /** Required by Anthropic; 0 only pre-warms the prompt cache. */
  max_tokens: number;
  messages: MessagesMessage[];
  system?: string | MessagesTextBlock[];
  stream?: boolean;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  stop_sequences?: string[];
  metadata?: { user_id?: string | null; [field: string]: unknown };
  tools?: MessagesTool[];
  tool_choice?: MessagesToolChoice;
  thinking?: { type: string; [field: string]: unknown };
  [field: string]: unknown;
}

export interface ParsedMessagesRequest {
  /** The client's body without `x-gateway`, otherwise as received. */
  body: MessagesRequest;
  gateway: GatewayOptions;
}

// ---- Response ------------------------------------------------------------------------------

export type MessagesStopReason =
  | "end_turn"
  | "max_tokens"
  | "stop_sequence"
  | "tool_use"
  | "pause_turn"
  | "refusal";

export type MessagesResponseBlock =
  | { type: "text"; text: string }
  | { type: "tool_use"; id: string; name: string; input: Record<string, unknown> };

/** Usage as the Messages API reports it: `input_tokens` excludes cache reads and writes. */
export interface MessagesUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

export interface MessagesResponse {
  id: string;
  type: "message";
  role: "assistant";
  model: string;
  content: MessagesResponseBlock[];
  stop_reason: MessagesStopReason | null;
  stop_sequence: string | null;
  usage: MessagesUsage;
}

/** `{"type":"error","error":{"type":"invalid_request_error","message":"..."}}` */
export interface MessagesErrorBody {
  type: "error";
  error: { type: string; message: string; details?: Readonly<Record<string, unknown>> };
}

// ---- Validation ----------------------------------------------------------------------------

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function invalid(message: string, param: string): GatewayError {
  return new GatewayError("invalid_request", message, { param });
}

function nonEmptyString(v: unknown): v is string {
  return typeof v === "string" && v !== "";
}

/** Optional number in `[min, max]`; `integer` also refuses fractions. */
function expectNumber(
  raw: Record<string, unknown>,
  field: string,
  min: number,
  max: number,
  integer = false,
): void {
  const v = raw[field];
  if (v === undefined || v === null) return;
  if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw invalid(`"${field}" must be ${integer ? "an integer" : "a number"}`, field);
  }
  if (v < min || v > max) {
    const range = max === Infinity ? `at least ${min}` : `between ${min} and ${max}`;
    throw invalid(`"${field}" must be ${range}, got ${v}`, field);
  }
}

/**
 * Validate an Anthropic Messages request. Checks what the gateway relies on (model,
 * max_tokens, messages and the block fields the translation reads, stream, tools, x-gateway)
 * and the obvious type errors, naming the field in the error. Block types we do not know
 * are kept: an Anthropic-format provider judges them itself, and the translation to other
 * formats refuses them by name.
 */
export function parseMessagesRequest(raw: unknown): ParsedMessagesRequest {
  if (!isObject(raw)) throw invalid("Request body must be a JSON object", "body");
  if (!nonEmptyString(raw.model) || raw.model.trim() === "") {
    throw invalid(
      raw.model === undefined
        ? `Missing required field "model"`
        : `"model" must be a non-empty string`,
      "model",
    );
  }
  if (raw.max_tokens === undefined || raw.max_tokens === null) {
    throw invalid(`Missing required field "max_tokens"`, "max_tokens");
  }
  // 0 is valid: the Messages API documents it for pre-warming the prompt cache.
  expectNumber(raw, "max_tokens", 0, Infinity, true);

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
  messages.forEach((m, i) => checkMessage(m, `messages[${i}]`));
  // As Anthropic: an empty turn would otherwise vanish in translation (the turn before it
  // then reads as a prefill to continue, or two assistant turns meet).
  messages.forEach((m, i) => {
    const { role, content } = m as { role: string; content: unknown };
    const empty = content === "" || (Array.isArray(content) && content.length === 0);
    if (empty && role !== "system" && !(role === "assistant" && i === messages.length - 1)) {
      throw invalid(
        `"messages[${i}].content": all messages must have non-empty content except for the optional final assistant message`,
        `messages[${i}].content`,
      );
    }
  });

  checkSystem(raw.system);
  if (raw.stream !== undefined && raw.stream !== null && typeof raw.stream !== "boolean") {
    throw invalid(`"stream" must be a boolean`, "stream");
  }
  expectNumber(raw, "temperature", 0, 1);
  expectNumber(raw, "top_p", 0, 1);
  expectNumber(raw, "top_k", 0, Infinity, true);
  const stop = raw.stop_sequences;
  if (
    stop !== undefined && stop !== null &&
    (!Array.isArray(stop) || !stop.every((s) => typeof s === "string"))
  ) {
    throw invalid(`"stop_sequences" must be an array of strings`, "stop_sequences");
  }
  if (raw.metadata !== undefined && raw.metadata !== null) {
    if (!isObject(raw.metadata)) throw invalid(`"metadata" must be an object`, "metadata");
    const user = raw.metadata.user_id;
    if (user !== undefined && user !== null && typeof user !== "string") {
      throw invalid(`"metadata.user_id" must be a string`, "metadata.user_id");
    }
  }
  checkTools(raw.tools);
  checkToolChoice(raw.tool_choice);
  if (raw.thinking !== undefined && raw.thinking !== null) {
    if (!isObject(raw.thinking) || typeof raw.thinking.type !== "string") {
      throw invalid(`"thinking.type" is required`, "thinking.type");
    }
  }

  const gateway = parseGatewayOptions(raw["x-gateway"]);
  const { "x-gateway": _ext, ...body } = raw;
  return { body: body as MessagesRequest, gateway };
}

function checkMessage(m: unknown, at: string): void {
  if (!isObject(m)) throw invalid(`"${at}" must be an object`, at);
  if (m.role === undefined) throw invalid(`Missing required field "${at}.role"`, `${at}.role`);
  if (m.role !== "user" && m.role !== "assistant" && m.role !== "system") {
    throw invalid(
      `"${at}.role" must be "user", "assistant" or "system"; got ${JSON.stringify(m.role)}`,
      `${at}.role`,
    );
  }
  const c = m.content;
  if (c === undefined || c === null) {
    throw invalid(`Missing required field "${at}.content"`, `${at}.content`);
  }
  if (m.role === "system") return checkTextBlocks(c, `${at}.content`);
  if (typeof c === "string") return;
  if (!Array.isArray(c)) {
    throw invalid(
      `"${at}.content" must be a string or an array of content blocks`,
      `${at}.content`,
    );
  }
  c.forEach((block, j) => checkBlock(block, `${at}.content[${j}]`));
}

/** The block types the translation reads get their fields checked; others only a `type`. */
function checkBlock(block: unknown, at: string): void {
  if (!isObject(block) || typeof block.type !== "string" || block.type === "") {
    throw invalid(`"${at}.type" is required`, `${at}.type`);
  }
  switch (block.type) {
    case "text":
      if (typeof block.text !== "string") {
        throw invalid(`"${at}.text" must be a string`, `${at}.text`);
      }
      if (block.text === "") throw invalid(`"${at}": text content blocks must be non-empty`, at);
      return;
    case "image":
      checkImageSource(block.source, `${at}.source`);
      return;
    case "tool_use":
      if (!nonEmptyString(block.id)) {
        throw invalid(`"${at}.id" must be a non-empty string`, `${at}.id`);
      }
      if (!nonEmptyString(block.name)) {
        throw invalid(`"${at}.name" must be a non-empty string`, `${at}.name`);
      }
      if (!isObject(block.input)) throw invalid(`"${at}.input" must be an object`, `${at}.input`);
      return;
    case "tool_result": {
      if (!nonEmptyString(block.tool_use_id)) {
        throw invalid(`"${at}.tool_use_id" must be a non-empty string`, `${at}.tool_use_id`);
      }
      if (block.is_error !== undefined && typeof block.is_error !== "boolean") {
        throw invalid(`"${at}.is_error" must be a boolean`, `${at}.is_error`);
      }
      const content = block.content;
      if (content === undefined || typeof content === "string") return;
      if (!Array.isArray(content)) {
        throw invalid(
          `"${at}.content" must be a string or an array of content blocks`,
          `${at}.content`,
        );
      }
      content.forEach((inner, k) => checkBlock(inner, `${at}.content[${k}]`));
      return;
    }
  }
}

/** The image types the Messages API takes (its base64 source's `media_type`). */
const IMAGE_MEDIA_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp"];

function checkImageSource(source: unknown, at: string): void {
  if (!isObject(source) || typeof source.type !== "string") {
    throw invalid(`"${at}.type" is required`, `${at}.type`);
  }
  if (source.type === "base64") {
    for (const field of ["media_type", "data"]) {
      if (!nonEmptyString(source[field])) {
        throw invalid(`"${at}.${field}" must be a non-empty string`, `${at}.${field}`);
      }
    }
    if (!IMAGE_MEDIA_TYPES.includes(source.media_type as string)) {
      throw invalid(
        `"${at}.media_type" must be one of ${IMAGE_MEDIA_TYPES.join(", ")}; got ${
          JSON.stringify(source.media_type)
        }`,
        `${at}.media_type`,
      );
    }
  } else if (source.type === "url" && !nonEmptyString(source.url)) {
    throw invalid(`"${at}.url" must be a non-empty string`, `${at}.url`);
  }
}

function checkSystem(system: unknown): void {
  if (system === undefined || system === null) return;
  checkTextBlocks(system, "system");
}

/** System prompts: a string or text blocks. */
function checkTextBlocks(content: unknown, field: string): void {
  if (typeof content === "string") return;
  if (!Array.isArray(content)) {
    throw invalid(`"${field}" must be a string or an array of text blocks`, field);
  }
  content.forEach((block, i) => {
    const at = `${field}[${i}]`;
    if (!isObject(block) || block.type !== "text") {
      throw invalid(`"${at}.type" must be "text"`, `${at}.type`);
    }
    if (typeof block.text !== "string") {
      throw invalid(`"${at}.text" must be a string`, `${at}.text`);
    }
  });
}

function checkTools(tools: unknown): void {
  if (tools === undefined || tools === null) return;
  if (!Array.isArray(tools)) throw invalid(`"tools" must be an array`, "tools");
  tools.forEach((tool, i) => {
    const at = `tools[${i}]`;
    if (!isObject(tool)) throw invalid(`"${at}" must be an object`, at);
    if (!nonEmptyString(tool.name)) {
      throw invalid(`"${at}.name" must be a non-empty string`, `${at}.name`);
    }
    if (tool.type !== undefined && tool.type !== null && typeof tool.type !== "string") {
      throw invalid(`"${at}.type" must be a string`, `${at}.type`);
    }
    // Client tools need a schema; server tools (web_search_..., bash_...) are typed instead.
    const custom = tool.type === undefined || tool.type === null || tool.type === "custom";
    if (custom && !isObject(tool.input_schema)) {
      throw invalid(`"${at}.input_schema" must be an object`, `${at}.input_schema`);
    }
    if (tool.description !== undefined && typeof tool.description !== "string") {
      throw invalid(`"${at}.description" must be a string`, `${at}.description`);
    }
  });
}

const TOOL_CHOICE_TYPES = new Set(["auto", "any", "tool", "none"]);

function checkToolChoice(choice: unknown): void {
  if (choice === undefined || choice === null) return;
  if (!isObject(choice) || typeof choice.type !== "string" || !TOOL_CHOICE_TYPES.has(choice.type)) {
    throw invalid(
      `"tool_choice.type" must be one of "auto", "any", "tool", "none"`,
      "tool_choice.type",
    );
  }
  if (choice.type === "tool" && !nonEmptyString(choice.name)) {
    throw invalid(`"tool_choice.name" is required when its type is "tool"`, "tool_choice.name");
  }
  const d = choice.disable_parallel_tool_use;
  if (d !== undefined && typeof d !== "boolean") {
    throw invalid(
      `"tool_choice.disable_parallel_tool_use" must be a boolean`,
      "tool_choice.disable_parallel_tool_use",
    );
  }
}

// ---- Errors --------------------------------------------------------------------------------

/** The error `type`s of the Messages API (API errors page), by HTTP status. */
const TYPE_BY_STATUS: Readonly<Record<number, string>> = {
  400: "invalid_request_error",
  401: "authentication_error",
  402: "billing_error",
  403: "permission_error",
  404: "not_found_error",
  405: "invalid_request_error",
  408: "invalid_request_error",
  413: "request_too_large",
  415: "invalid_request_error",
  // Failed Dependency: the model failed on a valid request (Bedrock's ModelErrorException).
  424: "api_error",
  429: "rate_limit_error",
  504: "timeout_error",
  529: "overloaded_error",
};

const ANTHROPIC_TYPES: ReadonlySet<string> = new Set([
  ...Object.values(TYPE_BY_STATUS),
  "api_error",
]);

/**
 * Render a GatewayError as Anthropic error JSON. A 4xx's type follows its status (what
 * Anthropic's SDKs pick their exception class from): an OpenAI upstream's 401 is typed
 * `invalid_request_error`, a word Anthropic uses too, but means `authentication_error`. Above
 * that an Anthropic-format upstream's own type wins (an overload stays `overloaded_error`).
 */
export function toAnthropicError(err: GatewayError): MessagesErrorBody {
  // An Anthropic-format upstream's type is kept as its code (providers/anthropic/errors.ts).
  // An OpenAI-format error has a type of its own: its `invalid_request_error` on a 500 is not
  // Anthropic's word for a 500.
  const upstream = err.info.upstreamType === undefined
    ? err.info.upstreamCode ?? undefined
    : undefined;
  const byStatus = TYPE_BY_STATUS[err.status];
  // Anthropic's errors page: invalid_request_error is also "for other 4XX status codes".
  const clientError = err.status >= 400 && err.status < 500;
  const type = byStatus !== undefined && clientError
    ? byStatus
    : upstream !== undefined && ANTHROPIC_TYPES.has(upstream)
    ? upstream
    : byStatus ?? (clientError ? "invalid_request_error" : "api_error");
  const details = err.info.details;
  return {
    type: "error",
    error: details === undefined
      ? { type, message: err.message }
      : { type, message: err.message, details },
  };
}
