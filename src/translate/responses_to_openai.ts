/**
 * Responses API request → OpenAI chat request (the canonical form), for providers that do
 * not speak the Responses API. Pure; the conversation of a `previous_response_id` is passed
 * in as items (the store's), so nothing here does I/O.
 * @module
 */
import { GatewayError } from "../errors.ts";
import {
  markTranslated,
  type OpenAIChatRequest,
  type OpenAIContentPart,
  type OpenAIMessage,
} from "../schema/openai.ts";
import type { ResponsesItem, ResponsesRequest } from "../schema/responses.ts";

/**
 * Request fields with no chat-completions equivalent that would change the answer: refused
 * (400 naming them) rather than silently dropped. `store`, `previous_response_id`,
 * `metadata` and `include` are the gateway's own business (its store, the echoed object).
 */
const REFUSED: ReadonlyArray<[string, (v: unknown) => boolean]> = [
  ["truncation", (v) => v !== "disabled"],
  ["background", (v) => v !== false],
  ["conversation", () => true],
  ["prompt", () => true],
  ["max_tool_calls", () => true],
  ["top_logprobs", (v) => v !== 0],
];

function invalid(message: string, param: string, provider?: string): GatewayError {
  return new GatewayError("invalid_request", message, {
    param,
    ...(provider !== undefined ? { provider } : {}),
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** The request's own input as items (a string is one user message). */
export function inputItems(body: ResponsesRequest): ResponsesItem[] {
  if (body.input === undefined) return [];
  return typeof body.input === "string"
    ? [{ type: "message", role: "user", content: body.input }]
    : body.input;
}

const NONE: ReadonlyMap<string, ResponsesItem> = new Map();

/** The request's input with each `item_reference` the gateway could resolve replaced. */
export function resolvedInput(
  body: ResponsesRequest,
  referenced: ReadonlyMap<string, ResponsesItem> | null,
): ResponsesItem[] {
  const items = inputItems(body);
  if (referenced === null || referenced.size === 0) return items;
  return items.map((item) =>
    item.type === "item_reference" && typeof item.id === "string"
      ? referenced.get(item.id) ?? item
      : item
  );
}

/**
 * Translate `body` for `provider`. `history`: the items of the conversation so far (the
 * stored input and output of the `previous_response_id` chain), placed before this input.
 * `referenced`: items of kept responses that this input's `item_reference`s point at.
 */
export function toChatRequestFromResponses(
  body: ResponsesRequest,
  history: readonly ResponsesItem[],
  provider: string,
  referenced: ReadonlyMap<string, ResponsesItem> = NONE,
): OpenAIChatRequest {
  for (const [field, isActive] of REFUSED) {
    const v = body[field];
    if (v !== undefined && v !== null && isActive(v)) {
      throw invalid(
        `"${field}" is not supported by provider "${provider}" (Responses API translated to chat completions)`,
        field,
        provider,
      );
    }
  }
  const messages: OpenAIMessage[] = [];
  if (typeof body.instructions === "string" && body.instructions !== "") {
    messages.push({ role: "system", content: body.instructions });
  }
  const known = new Map<string, ResponsesItem>(referenced);
  for (const item of history) if (typeof item.id === "string") known.set(item.id, item);
  const items = inputItems(body);
  appendItems(messages, history, "previous_response_id", known, provider);
  appendItems(messages, items, "input", known, provider);
  if (messages.length === 0) throw invalid(`"input" must contain at least one item`, "input");

  const out: OpenAIChatRequest = { model: body.model, messages };
  if (body.stream === true) {
    out.stream = true;
    // Without it chat streams carry no usage, and response.completed must report it.
    out.stream_options = { include_usage: true };
  }
  if (typeof body.max_output_tokens === "number") out.max_tokens = body.max_output_tokens;
  if (typeof body.temperature === "number") out.temperature = body.temperature;
  if (typeof body.top_p === "number") out.top_p = body.top_p;
  if (typeof body.user === "string" && body.user !== "") out.user = body.user;
  if (typeof body.parallel_tool_calls === "boolean") {
    out.parallel_tool_calls = body.parallel_tool_calls;
  }
  const tools = (body.tools ?? []).map((t, i) => toFunctionTool(t, `tools[${i}]`, provider));
  if (tools.length > 0) out.tools = tools;
  if (body.tool_choice !== undefined && body.tool_choice !== null) {
    out.tool_choice = toToolChoice(body.tool_choice, provider);
  }
  const format = toResponseFormat(body.text?.format);
  if (format !== null) out.response_format = format;
  const effort = body.reasoning?.effort;
  // Passed as chat's `reasoning_effort`: providers with an equivalent map it, the others
  // refuse it with a 400 naming it (their translation's rule), never a silent drop.
  if (typeof effort === "string") out.reasoning_effort = effort;
  return markTranslated(out);
}

// ---- Items ---------------------------------------------------------------------------------

function appendItems(
  out: OpenAIMessage[],
  items: readonly ResponsesItem[],
  where: string,
  known: ReadonlyMap<string, ResponsesItem>,
  provider: string,
): void {
  // Images in function outputs: OpenAI tool messages carry text only, so they follow the run
  // of tool messages in a user turn (as /v1/messages does with tool_result images).
  let images: OpenAIContentPart[] = [];
  const flushImages = () => {
    if (images.length === 0) return;
    out.push({ role: "user", content: images });
    images = [];
  };
  items.forEach((raw, i) => {
    const at = `${where}[${i}]`;
    const item = raw.type === "item_reference" ? resolveReference(raw, at, known) : raw;
    const type = item.type ?? (typeof item.role === "string" ? "message" : undefined);
    if (type !== "function_call_output") flushImages();
    switch (type) {
      case "message":
        return appendMessage(out, item, at, provider);
      case "function_call":
        return appendFunctionCall(out, item, at);
      case "function_call_output": {
        const output = outputParts(item.output, `${at}.output`, provider);
        out.push({
          role: "tool",
          tool_call_id: requireString(item, "call_id", at),
          content: output.text,
        });
        images.push(...output.images);
        return;
      }
      case "reasoning":
        // Another provider's reasoning cannot be replayed (it is opaque or encrypted): the
        // chat translations drop thinking the same way.
        return;
      default:
        throw invalid(
          `"${at}.type" "${String(type)}" is not supported by provider "${provider}"`,
          `${at}.type`,
          provider,
        );
    }
  });
  flushImages();
}

function resolveReference(
  item: ResponsesItem,
  at: string,
  known: ReadonlyMap<string, ResponsesItem>,
): ResponsesItem {
  const id = requireString(item, "id", at);
  const found = known.get(id);
  if (found === undefined) {
    throw invalid(`"${at}.id" "${id}" is not an item of this conversation`, `${at}.id`);
  }
  return found;
}

function requireString(item: ResponsesItem, field: string, at: string): string {
  const v = item[field];
  if (typeof v !== "string" || v === "") {
    throw invalid(`Missing required field "${at}.${field}"`, `${at}.${field}`);
  }
  return v;
}

const ROLES = new Set(["user", "assistant", "system", "developer"]);

function appendMessage(
  out: OpenAIMessage[],
  item: ResponsesItem,
  at: string,
  provider: string,
): void {
  const role = item.role;
  if (typeof role !== "string" || !ROLES.has(role)) {
    throw invalid(
      `"${at}.role" must be one of ${[...ROLES].join(", ")}`,
      `${at}.role`,
    );
  }
  const content = item.content;
  if (typeof content === "string") {
    out.push({ role, content });
    return;
  }
  if (!Array.isArray(content)) {
    throw invalid(`"${at}.content" must be a string or an array of parts`, `${at}.content`);
  }
  if (role === "assistant") {
    let text = "";
    content.forEach((part, j) => {
      const p = isObject(part) ? part : {};
      if ((p.type === "output_text" || p.type === "input_text") && typeof p.text === "string") {
        text += p.text;
      } else if (p.type === "refusal" && typeof p.refusal === "string") text += p.refusal;
      else throw unsupportedPart(p, `${at}.content[${j}]`, provider);
    });
    out.push({ role, content: text });
    return;
  }
  const parts: OpenAIContentPart[] = content.map((part, j) =>
    toContentPart(part, `${at}.content[${j}]`, provider)
  );
  // System text travels as a string: several providers take nothing else there.
  out.push(
    role === "user"
      ? { role, content: parts }
      : { role, content: parts.map((p) => String(p.text ?? "")).join("\n\n") },
  );
}

function toContentPart(part: unknown, at: string, provider: string): OpenAIContentPart {
  const p = isObject(part) ? part : {};
  switch (p.type) {
    case "input_text":
    case "output_text":
      if (typeof p.text !== "string") throw invalid(`"${at}.text" must be a string`, `${at}.text`);
      return { type: "text", text: p.text };
    case "input_image": {
      if (typeof p.image_url !== "string" || p.image_url === "") {
        // A `file_id` refers to OpenAI's file store, which no other provider can read.
        throw invalid(
          `"${at}.image_url" is required: provider "${provider}" cannot read OpenAI file ids`,
          `${at}.image_url`,
          provider,
        );
      }
      const image: Record<string, unknown> = { url: p.image_url };
      if (typeof p.detail === "string" && p.detail !== "auto") image.detail = p.detail;
      return { type: "image_url", image_url: image };
    }
    default:
      throw unsupportedPart(p, at, provider);
  }
}

function unsupportedPart(p: Record<string, unknown>, at: string, provider: string): GatewayError {
  return invalid(
    `"${at}.type" "${String(p.type)}" is not supported by provider "${provider}"`,
    `${at}.type`,
    provider,
  );
}

/** A call's `arguments`: a JSON string, as OpenAI takes it (an object is not silently `{}`). */
function argumentsOf(item: ResponsesItem, at: string): string {
  const v = item.arguments;
  if (v === undefined) return "{}";
  if (typeof v !== "string") {
    throw invalid(`"${at}.arguments" must be a string of JSON`, `${at}.arguments`);
  }
  return v;
}

/** Consecutive calls (and the assistant text before them) form one assistant message. */
function appendFunctionCall(out: OpenAIMessage[], item: ResponsesItem, at: string): void {
  const call: Record<string, unknown> = {
    id: requireString(item, "call_id", at),
    type: "function",
    function: {
      name: requireString(item, "name", at),
      arguments: argumentsOf(item, at),
    },
  };
  // A thought signature the item carried out (see openai_to_responses.ts) goes back in.
  if (isObject(item.extra_content)) call.extra_content = item.extra_content;
  const last = out[out.length - 1];
  if (last?.role === "assistant") {
    const calls = Array.isArray(last.tool_calls) ? last.tool_calls : [];
    last.tool_calls = [...calls, call];
    if (last.content === "") last.content = null;
    return;
  }
  out.push({ role: "assistant", content: null, tool_calls: [call] });
}

/** A function's output: a string, or input parts (their text joined, their images apart). */
function outputParts(
  output: unknown,
  at: string,
  provider: string,
): { text: string; images: OpenAIContentPart[] } {
  if (typeof output === "string") return { text: output, images: [] };
  if (Array.isArray(output)) {
    let text = "";
    const images: OpenAIContentPart[] = [];
    output.forEach((part, j) => {
      const p = isObject(part) ? part : {};
      if (p.type === "input_text" && typeof p.text === "string") text += p.text;
      else if (p.type === "input_image") images.push(toContentPart(p, `${at}[${j}]`, provider));
      else throw unsupportedPart(p, `${at}[${j}]`, provider);
    });
    return { text, images };
  }
  throw invalid(`"${at}" must be a string or an array of parts`, at);
}

// ---- Tools and formats ---------------------------------------------------------------------

function toFunctionTool(
  tool: Record<string, unknown>,
  at: string,
  provider: string,
): Record<string, unknown> {
  if (tool.type !== "function") {
    // Built-in tools (web_search, file_search, code_interpreter, ...) run at OpenAI.
    throw invalid(
      `Tool type "${
        String(tool.type)
      }" in "${at}" is a built-in OpenAI tool; provider "${provider}" supports function tools only`,
      `${at}.type`,
      provider,
    );
  }
  if (typeof tool.name !== "string" || tool.name === "") {
    throw invalid(`Missing required field "${at}.name"`, `${at}.name`);
  }
  const fn: Record<string, unknown> = { name: tool.name };
  if (typeof tool.description === "string") fn.description = tool.description;
  fn.parameters = isObject(tool.parameters) ? tool.parameters : { type: "object", properties: {} };
  if (typeof tool.strict === "boolean") fn.strict = tool.strict;
  return { type: "function", function: fn };
}

function toToolChoice(choice: unknown, provider: string): unknown {
  if (choice === "auto" || choice === "none" || choice === "required") return choice;
  if (isObject(choice) && choice.type === "function" && typeof choice.name === "string") {
    return { type: "function", function: { name: choice.name } };
  }
  throw invalid(
    `"tool_choice" ${JSON.stringify(choice)} is not supported by provider "${provider}"`,
    "tool_choice",
    provider,
  );
}

/** `text.format` → chat's `response_format` (`text` is the default: nothing to send). */
function toResponseFormat(format: unknown): Record<string, unknown> | null {
  if (format === undefined || format === null) return null;
  if (!isObject(format)) throw invalid(`"text.format" must be an object`, "text.format");
  switch (format.type) {
    case "text":
      return null;
    case "json_object":
      return { type: "json_object" };
    case "json_schema": {
      if (typeof format.name !== "string" || !isObject(format.schema)) {
        throw invalid(
          `"text.format" of type "json_schema" needs "name" and "schema"`,
          "text.format",
        );
      }
      const schema: Record<string, unknown> = { name: format.name, schema: format.schema };
      if (typeof format.description === "string") schema.description = format.description;
      if (typeof format.strict === "boolean") schema.strict = format.strict;
      return { type: "json_schema", json_schema: schema };
    }
    default:
      throw invalid(
        `"text.format.type" "${String(format.type)}" is not supported`,
        "text.format.type",
      );
  }
}

/** Chat fields the translation fills from a differently named Responses field. */
const RESPONSES_FIELD: Readonly<Record<string, string>> = {
  reasoning_effort: "reasoning.effort",
  max_tokens: "max_output_tokens",
  max_completion_tokens: "max_output_tokens",
  response_format: "text.format",
  "response_format.type": "text.format.type",
  "response_format.json_schema": "text.format",
  "response_format.json_schema.schema": "text.format.schema",
  "response_format.json_schema.name": "text.format.name",
  "tool_choice.function.name": "tool_choice.name",
};

/**
 * The Responses request field behind a chat request field an error names (`param`): what
 * the client sent, not the canonical form's name for it. A message's place among the chat
 * messages is not its place in `input` (instructions and earlier turns come first), so any
 * message field is named `input`.
 */
export function responsesParam(param: string): string {
  const mapped = RESPONSES_FIELD[param];
  if (mapped !== undefined) return mapped;
  if (param === "messages" || param.startsWith("messages[")) return "input";
  const tool = /^tools\[(\d+)\]\.function(\..*)?$/.exec(param);
  if (tool !== null) return `tools[${tool[1]}]${tool[2] ?? ""}`;
  return param;
}
