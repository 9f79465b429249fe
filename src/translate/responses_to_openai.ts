/**
 * Responses API request -> OpenAI chat request (the canonical form), for providers that do
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
import { type ItemPlace, type ResponsesOrigin, withResponsesOrigins } from "./responses_fields.ts";

/**
 * Request fields with no chat-completions equivalent that would change the answer: refused
 * (400 naming them) rather than silently dropped. `store`, `previous_response_id`,
 * `metadata` are the gateway's own business (its store, the echoed object); `include` is
 * checked on its own (`checkInclude`).
 */
const REFUSED: ReadonlyArray<[string, (v: unknown) => boolean]> = [
  ["truncation", (v) => v !== "disabled"],
  ["background", (v) => v !== false],
  ["conversation", () => true],
  ["prompt", () => true],
  ["max_tool_calls", () => true],
  ["top_logprobs", (v) => v !== 0],
];

/**
 * `include` values OpenAI documents. Those naming a built-in tool's output, an input image's
 * URL or encrypted reasoning have nothing to add to a translated answer (no such tool runs,
 * no such item is made); logprobs would, and are refused with `top_logprobs`.
 */
const INCLUDABLE = new Set([
  "web_search_call.results",
  "web_search_call.action.sources",
  "file_search_call.results",
  "code_interpreter_call.outputs",
  "computer_call_output.output.image_url",
  "message.input_image.image_url",
  "reasoning.encrypted_content",
  "message.output_text.logprobs",
]);

function checkInclude(include: unknown, provider: string): void {
  if (include === undefined || include === null) return;
  if (!Array.isArray(include)) {
    throw invalid(`"include" must be an array of strings`, "include");
  }
  include.forEach((value, i) => {
    if (typeof value !== "string" || !INCLUDABLE.has(value)) {
      throw invalid(
        `"include[${i}]" ${JSON.stringify(value)} is not a supported value; supported: ${
          [...INCLUDABLE].join(", ")
        }`,
        `include[${i}]`,
      );
    }
    if (value === "message.output_text.logprobs") {
      throw invalid(
        `"include[${i}]" "${value}" is not supported by provider "${provider}" (Responses API translated to chat completions)`,
        `include[${i}]`,
        provider,
      );
    }
  });
}

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
  checkInclude(body.include, provider);
  const messages: OpenAIMessage[] = [];
  // Where each message came from: an error on the canonical form names the client's field.
  const origins: ResponsesOrigin[] = [];
  if (typeof body.instructions === "string" && body.instructions !== "") {
    messages.push({ role: "system", content: body.instructions });
    origins.push({ kind: "field", at: "instructions" });
  }
  const known = new Map<string, ResponsesItem>(referenced);
  for (const item of history) if (typeof item.id === "string") known.set(item.id, item);
  const out: Translation = { messages, origins };
  const first = origins.length;
  appendItems(out, history, "previous_response_id", known, provider);
  // The stored conversation is not what the client sent: all of it is `previous_response_id`.
  origins.fill({ kind: "field", at: "previous_response_id" }, first);
  appendItems(out, inputItems(body), "input", known, provider);
  // A string input is one user message: its text is `input` itself.
  if (typeof body.input === "string" && origins.length > 0) {
    origins[origins.length - 1] = { kind: "field", at: "input" };
  }
  if (messages.length === 0) throw invalid(`"input" must contain at least one item`, "input");

  const req: OpenAIChatRequest = { model: body.model, messages };
  if (body.stream === true) {
    req.stream = true;
    // Without it chat streams carry no usage, and response.completed must report it.
    req.stream_options = { include_usage: true };
  }
  if (typeof body.max_output_tokens === "number") req.max_tokens = body.max_output_tokens;
  if (typeof body.temperature === "number") req.temperature = body.temperature;
  if (typeof body.top_p === "number") req.top_p = body.top_p;
  if (typeof body.user === "string" && body.user !== "") req.user = body.user;
  if (typeof body.parallel_tool_calls === "boolean") {
    req.parallel_tool_calls = body.parallel_tool_calls;
  }
  const tools = (body.tools ?? []).map((t, i) => toFunctionTool(t, `tools[${i}]`, provider));
  if (tools.length > 0) req.tools = tools;
  if (body.tool_choice !== undefined && body.tool_choice !== null) {
    req.tool_choice = toToolChoice(body.tool_choice, provider);
  }
  const format = toResponseFormat(body.text?.format);
  if (format !== null) req.response_format = format;
  const effort = body.reasoning?.effort;
  // Passed as chat's `reasoning_effort`: providers with an equivalent map it, the others
  // refuse it with a 400 naming it (their translation's rule), never a silent drop.
  if (typeof effort === "string") req.reasoning_effort = effort;
  return withResponsesOrigins(markTranslated(req), origins);
}

// ---- Items ---------------------------------------------------------------------------------

/** The canonical messages so far, and where each came from (the two run in step). */
interface Translation {
  readonly messages: OpenAIMessage[];
  readonly origins: ResponsesOrigin[];
}

/** A chat message's origin, as built here: its parts and calls are still added to. */
type Building = Extract<ResponsesOrigin, { kind: "message" }> & {
  readonly parts: ItemPlace[] | null;
  readonly calls: ItemPlace[];
};

function appendItems(
  out: Translation,
  items: readonly ResponsesItem[],
  where: string,
  known: ReadonlyMap<string, ResponsesItem>,
  provider: string,
): void {
  // Images in function outputs: OpenAI tool messages carry text only, so they follow the run
  // of tool messages in a user turn (as /v1/messages does with tool_result images).
  let images: OpenAIContentPart[] = [];
  let from: ItemPlace[] = [];
  /** The first output with images: the turn as a whole is named by its `output`. */
  let owner: ItemPlace | null = null;
  const flushImages = () => {
    if (images.length === 0) return;
    out.messages.push({ role: "user", content: images });
    out.origins.push({ kind: "message", item: owner as ItemPlace, parts: from, calls: [] });
    images = [];
    from = [];
    owner = null;
  };
  items.forEach((raw, i) => {
    const at = `${where}[${i}]`;
    // A referenced item's fields are the kept response's, not the client's: it is `at`.
    const exact = raw.type !== "item_reference";
    const item = exact ? raw : resolveReference(raw, at, known);
    const place: ItemPlace = { at, exact };
    const type = item.type ?? (typeof item.role === "string" ? "message" : undefined);
    if (type !== "function_call_output") flushImages();
    switch (type) {
      case "message":
        return appendMessage(out, item, place, provider);
      case "function_call":
        return appendFunctionCall(out, item, place);
      case "function_call_output": {
        const output = outputParts(item.output, `${at}.output`, provider);
        out.messages.push({
          role: "tool",
          tool_call_id: requireString(item, "call_id", at),
          content: output.text,
        });
        out.origins.push({ kind: "output", item: place });
        images.push(...output.images);
        from.push(...output.from.map((path) => ({ at: exact ? path : at, exact })));
        if (output.images.length > 0) owner ??= { at: exact ? `${at}.output` : at, exact: false };
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
  out: Translation,
  item: ResponsesItem,
  place: ItemPlace,
  provider: string,
): void {
  const at = place.at;
  const role = item.role;
  if (typeof role !== "string" || !ROLES.has(role)) {
    throw invalid(
      `"${at}.role" must be one of ${[...ROLES].join(", ")}`,
      `${at}.role`,
    );
  }
  const content = item.content;
  const origin = (parts: ItemPlace[] | null): Building => ({
    kind: "message",
    item: place,
    parts,
    calls: [],
  });
  if (typeof content === "string") {
    out.messages.push({ role, content });
    out.origins.push(origin(null));
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
    out.messages.push({ role, content: text });
    out.origins.push(origin(null));
    return;
  }
  const parts: OpenAIContentPart[] = content.map((part, j) =>
    toContentPart(part, `${at}.content[${j}]`, provider)
  );
  // System text travels as a string: several providers take nothing else there.
  if (role === "user") {
    out.messages.push({ role, content: parts });
    out.origins.push(
      origin(parts.map((_, j) => ({ at: `${at}.content[${j}]`, exact: place.exact }))),
    );
    return;
  }
  out.messages.push({ role, content: parts.map((p) => String(p.text ?? "")).join("\n\n") });
  out.origins.push(origin(null));
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
function appendFunctionCall(out: Translation, item: ResponsesItem, place: ItemPlace): void {
  const at = place.at;
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
  const last = out.messages[out.messages.length - 1];
  if (last?.role === "assistant") {
    const calls = Array.isArray(last.tool_calls) ? last.tool_calls : [];
    last.tool_calls = [...calls, call];
    if (last.content === "") last.content = null;
    const i = out.origins.length - 1;
    const origin = out.origins[i] as ResponsesOrigin;
    if (origin.kind === "message") (origin as Building).calls.push(place);
    else {
      // The stored conversation's last answer: its own calls are `previous_response_id`.
      const earlier = { at: (origin as { at: string }).at, exact: false };
      out.origins[i] = {
        kind: "message",
        item: earlier,
        parts: null,
        calls: [...calls.map(() => earlier), place],
      };
    }
    return;
  }
  out.messages.push({ role: "assistant", content: null, tool_calls: [call] });
  out.origins.push({ kind: "message", item: place, parts: null, calls: [place] });
}

/** A function's output: a string, or input parts (their text joined, their images apart). */
function outputParts(
  output: unknown,
  at: string,
  provider: string,
): { text: string; images: OpenAIContentPart[]; from: string[] } {
  if (typeof output === "string") return { text: output, images: [], from: [] };
  if (Array.isArray(output)) {
    let text = "";
    const images: OpenAIContentPart[] = [];
    /** Per image, the part it came from. */
    const from: string[] = [];
    output.forEach((part, j) => {
      const p = isObject(part) ? part : {};
      if (p.type === "input_text" && typeof p.text === "string") text += p.text;
      else if (p.type === "input_image") {
        images.push(toContentPart(p, `${at}[${j}]`, provider));
        from.push(`${at}[${j}]`);
      } else throw unsupportedPart(p, `${at}[${j}]`, provider);
    });
    return { text, images, from };
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
  if (tool.parameters !== undefined && tool.parameters !== null && !isObject(tool.parameters)) {
    throw invalid(`"${at}.parameters" must be a JSON Schema object`, `${at}.parameters`);
  }
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

/** `text.format` -> chat's `response_format` (`text` is the default: nothing to send). */
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
