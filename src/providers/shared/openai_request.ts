/**
 * What every translator of an OpenAI chat request into another provider's request shares:
 * the 400s it raises, the OpenAI parameters it refuses, the walk over the messages, and the
 * reading of content parts, tool calls, tools, `tool_choice`, `stop`, the token limit and
 * `response_format`. Pure helpers: no I/O, inputs are not mutated. Where providers differ
 * (what they refuse, how they drop empty text), the difference is a parameter.
 * @module
 */
import { GatewayError } from "../../errors.ts";
import {
  isObject,
  type OpenAIChatRequest,
  type OpenAIContentPart,
  type OpenAIMessage,
} from "../../schema/openai.ts";

// ---- Errors --------------------------------------------------------------------------------

export function invalid(message: string, param: string): GatewayError {
  return new GatewayError("invalid_request", message, { param });
}

export function unsupported(param: string, provider: string): GatewayError {
  return new GatewayError(
    "invalid_request",
    `Parameter "${param}" is not supported by provider "${provider}"`,
    { param, provider },
  );
}

export function unsupportedPart(
  part: OpenAIContentPart,
  at: string,
  provider: string,
): GatewayError {
  return new GatewayError(
    "invalid_request",
    `Content part type "${part.type}" in ${at} is not supported by provider "${provider}"`,
    { param: `${at}.type`, provider },
  );
}

/** What a translation has left when no message is a user or assistant turn. */
export function noMessages(provider: string): GatewayError {
  return new GatewayError(
    "invalid_request",
    `"messages" must contain a user or assistant message with content (empty text is left out) for provider "${provider}"`,
    { param: "messages", provider },
  );
}

// ---- Refused parameters --------------------------------------------------------------------

/** A parameter with the test for "set to a value that would change the answer". */
export type RejectedParam = readonly [string, (v: unknown) => boolean];

/**
 * OpenAI parameters no other provider can honour, each with its test. Their neutral values
 * (`n: 1`, `logprobs: false`, penalties 0, `logit_bias: {}`, null) pass. A provider refusing
 * fewer or more filters or extends this list; the order is the order of the checks.
 */
export const OPENAI_ONLY_PARAMS: ReadonlyArray<RejectedParam> = [
  ["n", (v) => v !== 1],
  ["logprobs", (v) => v !== false],
  ["top_logprobs", (v) => v !== 0],
  ["presence_penalty", (v) => v !== 0],
  ["frequency_penalty", (v) => v !== 0],
  ["logit_bias", (v) => !isObject(v) || Object.keys(v).length > 0],
  ["audio", () => true],
  ["modalities", (v) => !Array.isArray(v) || v.some((m) => m !== "text")],
  ["prediction", () => true],
  ["reasoning_effort", () => true],
  ["web_search_options", () => true],
  ["functions", () => true],
  ["function_call", () => true],
];

/**
 * Refuse with a 400 naming the parameter, rather than silently ignore, the first parameter
 * of `rejected` that is set (not null) to a value that would change the answer.
 */
export function rejectParams(
  body: OpenAIChatRequest,
  rejected: ReadonlyArray<RejectedParam>,
  provider: string,
): void {
  for (const [param, isActive] of rejected) {
    const v = body[param];
    if (v !== undefined && v !== null && isActive(v)) throw unsupported(param, provider);
  }
}

// ---- Messages ------------------------------------------------------------------------------

/** One handler per role a translation accepts; `at` is `messages[i]`. */
export interface MessageVisitor {
  /** `system` and `developer` messages. */
  system(m: OpenAIMessage, at: string): void;
  user(m: OpenAIMessage, at: string): void;
  /** Called after the legacy `function_call` on an assistant message has been refused. */
  assistant(m: OpenAIMessage, at: string): void;
  tool(m: OpenAIMessage, at: string): void;
}

/**
 * Visit the messages in order. An assistant `function_call` and the legacy `function` role
 * are refused with a 400: they carry no call id to pair with the provider's tool blocks.
 */
export function visitMessages(
  messages: readonly OpenAIMessage[],
  provider: string,
  visitor: MessageVisitor,
): void {
  messages.forEach((m, i) => {
    const at = `messages[${i}]`;
    switch (m.role) {
      case "system":
      case "developer":
        visitor.system(m, at);
        break;
      case "user":
        visitor.user(m, at);
        break;
      case "assistant":
        if (m.function_call !== undefined && m.function_call !== null) {
          throw unsupported(`${at}.function_call`, provider);
        }
        visitor.assistant(m, at);
        break;
      case "tool":
        visitor.tool(m, at);
        break;
      default:
        throw new GatewayError(
          "invalid_request",
          `Role "${m.role}" in ${at} is not supported by provider "${provider}"; use "tool"`,
          { param: `${at}.role`, provider },
        );
    }
  });
}

/**
 * Collects turns, merging consecutive ones of the same role (and skipping empty ones): the
 * providers want user and model turns to alternate, and `role: "tool"` results must land in
 * the one user turn that follows the assistant's calls.
 */
export function createTurns<R extends string, B>(): {
  readonly turns: { role: R; blocks: B[] }[];
  push(role: R, blocks: B[]): void;
} {
  const turns: { role: R; blocks: B[] }[] = [];
  return {
    turns,
    push(role, blocks) {
      if (blocks.length === 0) return;
      const last = turns.at(-1);
      if (last?.role === role) last.blocks.push(...blocks);
      else turns.push({ role, blocks });
    },
  };
}

/**
 * The texts of a message's content, empty ones included: a string, or `text` and `refusal`
 * parts (an assistant's earlier refusal is what it said). Any other part is refused.
 */
export function contentTexts(
  content: OpenAIMessage["content"],
  at: string,
  provider: string,
): string[] {
  if (content === undefined || content === null) return [];
  if (typeof content === "string") return [content];
  return content.map((part, j) => {
    const where = `${at}.content[${j}]`;
    if (part.type === "text" || part.type === "refusal") return partText(part, part.type, where);
    throw unsupportedPart(part, where, provider);
  });
}

/**
 * A user message's content as provider blocks: `text` from a string or text parts, `image`
 * from `image_url` parts (`where` is `messages[i].content[j]`). Any other part is refused.
 */
export function userContent<T>(
  content: OpenAIMessage["content"],
  at: string,
  provider: string,
  text: (text: string) => T[],
  image: (part: OpenAIContentPart, where: string) => T,
): T[] {
  if (content === undefined || content === null) return [];
  if (typeof content === "string") return text(content);
  return content.flatMap((part, j): T[] => {
    const where = `${at}.content[${j}]`;
    if (part.type === "text") return text(partText(part, "text", where));
    if (part.type === "image_url") return [image(part, where)];
    throw unsupportedPart(part, where, provider);
  });
}

export function partText(part: OpenAIContentPart, field: string, at: string): string {
  const text = part[field];
  if (typeof text !== "string") {
    throw invalid(`"${at}.${field}" must be a string`, `${at}.${field}`);
  }
  return text;
}

/** An `image_url` part's URL (a string, or `{url}`) and the param that names it. */
export function imageUrl(part: OpenAIContentPart, at: string): { url: string; param: string } {
  const ref = part.image_url;
  const url = typeof ref === "string" ? ref : isObject(ref) ? ref.url : undefined;
  const param = `${at}.image_url.url`;
  if (typeof url !== "string") throw invalid(`"${param}" must be a string`, param);
  return { url, param };
}

/**
 * A `data:` URL's media type (as written) and base64 payload; null when it has no media
 * type or is not base64.
 */
export function base64DataUrl(url: string): { mediaType: string; data: string } | null {
  const comma = url.indexOf(",");
  const meta = comma < 0 ? [] : url.slice(5, comma).split(";");
  const mediaType = meta[0] ?? "";
  if (mediaType === "" || !meta.includes("base64")) return null;
  return { mediaType, data: url.slice(comma + 1) };
}

/** An assistant tool call, checked: its id, function name and arguments as an object. */
export interface ParsedToolCall {
  readonly call: Record<string, unknown>;
  readonly id: string;
  readonly name: string;
  readonly args: Record<string, unknown>;
}

/** An assistant message's `tool_calls`, each checked in order; [] when absent. */
export function toolCallsOf(toolCalls: unknown, at: string): ParsedToolCall[] {
  if (toolCalls === undefined || toolCalls === null) return [];
  if (!Array.isArray(toolCalls)) {
    throw invalid(`"${at}.tool_calls" must be an array`, `${at}.tool_calls`);
  }
  return toolCalls.map((call: unknown, j) => {
    const where = `${at}.tool_calls[${j}]`;
    const fn = isObject(call) ? call.function : undefined;
    if (!isObject(call) || typeof call.id !== "string" || !isObject(fn)) {
      throw invalid(`"${where}" must have an "id" and a "function"`, where);
    }
    if (typeof fn.name !== "string" || fn.name === "") {
      throw invalid(
        `"${where}.function.name" must be a non-empty string`,
        `${where}.function.name`,
      );
    }
    return { call, id: call.id, name: fn.name, args: toolArguments(fn.arguments, where) };
  });
}

/** The providers want the arguments as an object; OpenAI carries them as a JSON string. */
function toolArguments(args: unknown, where: string): Record<string, unknown> {
  const param = `${where}.function.arguments`;
  if (args === undefined || args === null || args === "") return {};
  if (isObject(args)) return args;
  if (typeof args === "string") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(args);
    } catch {
      throw invalid(`"${param}" must be a JSON object string`, param);
    }
    if (isObject(parsed)) return parsed;
  }
  throw invalid(`"${param}" must be a JSON object string`, param);
}

/**
 * Tool-call ids as Anthropic and Bedrock take them: `^[a-zA-Z0-9_-]+$`, at most 64
 * characters, unique in the conversation. An OpenAI history may hold others: ids another
 * backend made (`functions.get_weather:0`), or one it reused on every turn (`call_0`). Such an
 * id is rewritten (characters replaced, a suffix when taken), and results take the calls
 * that name their id in order (then the latest again), so calls and results stay paired; an
 * id already valid and new is kept as it is. One per translated request.
 */
export class ToolIds {
  readonly #taken = new Set<string>();
  /** Per id as sent: the rewritten ids of its calls not answered yet, in order. */
  readonly #open = new Map<string, string[]>();
  readonly #latest = new Map<string, string>();

  /** The id a call goes upstream with. */
  call(id: string): string {
    const base = clean(id);
    let out = base;
    for (let n = 2; this.#taken.has(out); n++) {
      const suffix = `_${n}`;
      out = base.slice(0, MAX_TOOL_ID - suffix.length) + suffix;
    }
    this.#taken.add(out);
    this.#latest.set(id, out);
    const open = this.#open.get(id);
    if (open) open.push(out);
    else this.#open.set(id, [out]);
    return out;
  }

  /**
   * The id a result goes upstream with: its call's. A result no earlier call names is a 400
   * (`at` is the tool message): Anthropic and Bedrock refuse one, and it must not become
   * text a model reads as a tool's answer.
   */
  result(id: string, at: string): string {
    const out = this.#open.get(id)?.shift() ?? this.#latest.get(id);
    if (out === undefined) {
      throw invalid(
        `"${at}.tool_call_id" "${id}" does not match a tool call of an earlier assistant message`,
        `${at}.tool_call_id`,
      );
    }
    return out;
  }
}

const MAX_TOOL_ID = 64;

function clean(id: string): string {
  const out = id.replace(/[^a-zA-Z0-9_-]/g, "_").slice(0, MAX_TOOL_ID);
  return out === "" ? "call" : out;
}

/** A tool message's `tool_call_id`, required. */
export function toolCallId(m: OpenAIMessage, at: string): string {
  if (typeof m.tool_call_id !== "string" || m.tool_call_id === "") {
    throw invalid(`Missing required field "${at}.tool_call_id"`, `${at}.tool_call_id`);
  }
  return m.tool_call_id;
}

// ---- Tools, tool_choice --------------------------------------------------------------------

/** A `{"type":"function","function":{...}}` tool, checked; `at` is `tools[i]`. */
export interface FunctionTool {
  readonly at: string;
  readonly fn: Record<string, unknown> & { name: string };
}

/** The request's function tools, each checked in order; [] when absent. */
export function functionTools(tools: unknown): FunctionTool[] {
  if (!Array.isArray(tools)) return [];
  return tools.map((tool: unknown, i) => {
    const at = `tools[${i}]`;
    if (!isObject(tool) || tool.type !== "function" || !isObject(tool.function)) {
      throw invalid(`"${at}" must be {"type":"function","function":{...}}`, `${at}.type`);
    }
    const fn = tool.function;
    if (typeof fn.name !== "string" || fn.name === "") {
      throw invalid(`"${at}.function.name" must be a non-empty string`, `${at}.function.name`);
    }
    // A schema that is not one is refused, not replaced by an empty one (the model would be
    // told the function takes no arguments).
    const params = fn.parameters;
    if (params !== undefined && params !== null && !isObject(params)) {
      throw invalid(
        `"${at}.function.parameters" must be a JSON Schema object`,
        `${at}.function.parameters`,
      );
    }
    return { at, fn: fn as FunctionTool["fn"] };
  });
}

/** A `tool_choice`, checked: a mode, or `{ name }` for one named function; null when absent. */
export type ToolChoice = "auto" | "required" | "none" | { readonly name: string };

export function toolChoiceOf(choice: unknown): ToolChoice | null {
  if (choice === undefined || choice === null) return null;
  if (choice === "auto" || choice === "required" || choice === "none") return choice;
  if (
    isObject(choice) && choice.type === "function" && isObject(choice.function) &&
    typeof choice.function.name === "string"
  ) {
    return { name: choice.function.name };
  }
  throw invalid(
    `"tool_choice" must be "none", "auto", "required" or {"type":"function","function":{"name":...}}`,
    "tool_choice",
  );
}

/** "auto" and "none" without tools mean what no tool_choice means; forcing a tool does not. */
export function toolChoiceRequiresTools(): GatewayError {
  return invalid(`"tool_choice" requires "tools"`, "tool_choice");
}

// ---- Stop, limits, JSON mode ---------------------------------------------------------------

/**
 * `stop` as a list. An empty string stop is dropped; `keepEmpty` keeps empty strings inside
 * an array (what a provider that refuses none of them is sent).
 */
export function stopSequences(stop: unknown, opts: { keepEmpty?: boolean } = {}): string[] {
  if (stop === undefined || stop === null) return [];
  if (typeof stop === "string") return stop === "" ? [] : [stop];
  if (Array.isArray(stop) && stop.every((s) => typeof s === "string")) {
    return opts.keepEmpty === true ? stop as string[] : (stop as string[]).filter((s) => s !== "");
  }
  throw invalid(`"stop" must be a string or an array of strings`, "stop");
}

/** `max_completion_tokens` replaced `max_tokens` in OpenAI's API; the newer one wins. */
export function maxTokensOf(body: OpenAIChatRequest): number | null {
  for (const field of ["max_completion_tokens", "max_tokens"]) {
    const v = body[field];
    if (typeof v === "number") return v;
  }
  return null;
}

/** A `response_format`, checked; null when absent. */
export type ResponseFormat =
  | { readonly type: "text" }
  | { readonly type: "json_object" }
  | {
    readonly type: "json_schema";
    readonly schema: Record<string, unknown>;
    readonly name?: unknown;
  };

export function responseFormatOf(format: unknown, provider: string): ResponseFormat | null {
  if (format === undefined || format === null) return null;
  if (!isObject(format) || typeof format.type !== "string") {
    throw invalid(`"response_format" must be an object with a "type"`, "response_format");
  }
  switch (format.type) {
    case "text":
    case "json_object":
      return { type: format.type };
    case "json_schema": {
      const spec = format.json_schema;
      const param = "response_format.json_schema.schema";
      if (!isObject(spec) || !isObject(spec.schema)) {
        throw invalid(`"${param}" must be an object`, param);
      }
      return { type: "json_schema", schema: spec.schema, name: spec.name };
    }
    default:
      throw new GatewayError(
        "invalid_request",
        `"response_format.type" "${format.type}" is not supported by provider "${provider}"`,
        { param: "response_format.type", provider },
      );
  }
}

/**
 * For a provider without a JSON mode, `response_format` becomes an instruction appended to
 * the system prompt. It is a strong hint, not a guarantee: the gateway does not validate or
 * repair the answer, the same contract as OpenAI's `json_object` mode.
 */
export function toJsonInstruction(format: unknown, provider: string): string | null {
  const parsed = responseFormatOf(format, provider);
  switch (parsed?.type) {
    case undefined:
    case "text":
      return null;
    case "json_object":
      return "Respond with a single valid JSON object and nothing else: no prose, no Markdown code fences.";
    case "json_schema": {
      const name = typeof parsed.name === "string" ? ` named "${parsed.name}"` : "";
      return `Respond with a single valid JSON object${name} that conforms to this JSON Schema, ` +
        `and nothing else: no prose, no Markdown code fences.\n<json_schema>\n` +
        `${JSON.stringify(parsed.schema)}\n</json_schema>`;
    }
  }
}
