import { GatewayError } from "../../errors.ts";
import type { OpenAIChatRequest, OpenAIContentPart, OpenAIMessage } from "../../schema/openai.ts";
import type {
  AnthropicContentBlock,
  AnthropicImageBlock,
  AnthropicMessage,
  AnthropicRequest,
  AnthropicTextBlock,
  AnthropicTool,
  AnthropicToolChoice,
  AnthropicToolResultBlock,
} from "./types.ts";

/**
 * Anthropic requires `max_tokens`; OpenAI does not. 4096 is within every current Claude
 * model's output limit, so a request without one never fails for asking too much.
 */
export const DEFAULT_MAX_TOKENS = 4096;

/**
 * OpenAI parameters with no Anthropic equivalent, each with the test for "set to a value
 * that would change the answer". Those are refused with a 400 naming the parameter rather
 * than silently ignored: a caller asking for `n: 3` or logprobs must not get a plausible
 * answer that lacks them. Their neutral values (`n: 1`, `logprobs: false`, penalties 0,
 * `logit_bias: {}`, null) pass.
 */
const REJECTED: ReadonlyArray<readonly [string, (v: unknown) => boolean]> = [
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

/*
 * Dropped without complaint, because they do not change the answer's content or have no
 * Anthropic counterpart to honour: `seed` (best-effort determinism in OpenAI too),
 * `service_tier`, `store` and `metadata` (OpenAI's stored-completions tags, not Anthropic's
 * `metadata`), `prompt_cache_key`, `stream_options` (read by the stream translator for
 * `include_usage`), `parallel_tool_calls: true` (Anthropic's default), message `name`
 * fields, `image_url.detail`, and `user` / `safety_identifier` once mapped to
 * `metadata.user_id`. Fields unknown to us are ignored too, so a new OpenAI SDK field does
 * not break every Anthropic call.
 */

/**
 * Translate an OpenAI chat completion request into an Anthropic Messages request. Pure: no
 * I/O, the input is not mutated. Throws a 400 GatewayError naming the parameter for what
 * Anthropic cannot honour.
 */
export function toAnthropicRequest(
  body: OpenAIChatRequest,
  model: string,
  provider = "anthropic",
): AnthropicRequest {
  for (const [param, isActive] of REJECTED) {
    const v = body[param];
    if (v !== undefined && v !== null && isActive(v)) throw unsupported(param, provider);
  }

  const system: string[] = [];
  const messages = toAnthropicMessages(body.messages, system, provider);
  if (messages.length === 0) {
    throw new GatewayError(
      "invalid_request",
      `"messages" must contain a user or assistant message for provider "${provider}"`,
      { param: "messages", provider },
    );
  }
  const jsonInstruction = toJsonInstruction(body.response_format, provider);
  if (jsonInstruction !== null) system.push(jsonInstruction);

  const out: AnthropicRequest = {
    model,
    messages,
    max_tokens: pickMaxTokens(body),
  };
  if (system.length > 0) out.system = system.join("\n\n");
  // OpenAI accepts 0..2, Anthropic 0..1. Clamping (not halving) keeps the common values
  // (0, 0.2, 0.7, 1) meaning the same on both; anything hotter becomes Anthropic's hottest.
  if (typeof body.temperature === "number") out.temperature = Math.min(body.temperature, 1);
  if (typeof body.top_p === "number") out.top_p = body.top_p;
  // Not OpenAI, but vLLM-style clients send it and Anthropic has it.
  if (typeof body.top_k === "number") out.top_k = body.top_k;
  const stop = toStopSequences(body.stop);
  if (stop.length > 0) out.stop_sequences = stop;
  if (body.stream === true) out.stream = true;
  const user = typeof body.user === "string" && body.user !== ""
    ? body.user
    : typeof body.safety_identifier === "string" && body.safety_identifier !== ""
    ? body.safety_identifier
    : null;
  if (user !== null) out.metadata = { user_id: user };

  const tools = toAnthropicTools(body.tools);
  if (tools.length > 0) out.tools = tools;
  const choice = toToolChoice(body.tool_choice, tools.length > 0, body.parallel_tool_calls);
  if (choice !== null) out.tool_choice = choice;
  return out;
}

// ---- Messages ------------------------------------------------------------------------------

interface Turn {
  role: "user" | "assistant";
  blocks: AnthropicContentBlock[];
}

/**
 * System and developer messages go to the top-level `system` (Anthropic has no system role),
 * in order, wherever they appear. Consecutive same-role turns are merged: the API would
 * combine them server-side anyway, and `role: "tool"` results must land in the one user
 * turn that follows the assistant's `tool_use` blocks.
 */
function toAnthropicMessages(
  messages: readonly OpenAIMessage[],
  system: string[],
  provider: string,
): AnthropicMessage[] {
  const turns: Turn[] = [];
  const push = (role: Turn["role"], blocks: AnthropicContentBlock[]) => {
    if (blocks.length === 0) return;
    const last = turns.at(-1);
    if (last?.role === role) last.blocks.push(...blocks);
    else turns.push({ role, blocks });
  };
  messages.forEach((m, i) => {
    const at = `messages[${i}]`;
    switch (m.role) {
      case "system":
      case "developer": {
        const text = textBlocks(m.content, at, provider).map((b) => b.text).join("\n\n");
        if (text !== "") system.push(text);
        break;
      }
      case "user":
        push("user", userBlocks(m.content, at, provider));
        break;
      case "assistant":
        if (m.function_call !== undefined && m.function_call !== null) {
          throw unsupported(`${at}.function_call`, provider);
        }
        push("assistant", [
          ...textBlocks(m.content, at, provider),
          ...toolUseBlocks(m.tool_calls, at),
        ]);
        break;
      case "tool":
        push("user", [toolResultBlock(m, at, provider)]);
        break;
      default:
        // The legacy `function` role carries no call id to pair with a tool_use block.
        throw new GatewayError(
          "invalid_request",
          `Role "${m.role}" in ${at} is not supported by provider "${provider}"; use "tool"`,
          { param: `${at}.role`, provider },
        );
    }
  });
  return turns.map(({ role, blocks }) => {
    // "In the user message containing tool results, the tool_result blocks must come FIRST
    // in the content array" (tool use docs); a merged turn could otherwise put text first.
    const ordered = role === "user" ? resultsFirst(blocks) : blocks;
    const only = ordered.length === 1 ? ordered[0] : undefined;
    return { role, content: only?.type === "text" ? only.text : ordered };
  });
}

function resultsFirst(blocks: AnthropicContentBlock[]): AnthropicContentBlock[] {
  const results = blocks.filter((b) => b.type === "tool_result");
  if (results.length === 0 || results.length === blocks.length) return blocks;
  return [...results, ...blocks.filter((b) => b.type !== "tool_result")];
}

/** Text (and refusal) content only: system, developer and assistant messages. */
function textBlocks(
  content: OpenAIMessage["content"],
  at: string,
  provider: string,
): AnthropicTextBlock[] {
  if (content === undefined || content === null) return [];
  if (typeof content === "string") return textBlock(content);
  return content.flatMap((part, j) => {
    if (part.type === "text") return textBlock(partText(part, "text", `${at}.content[${j}]`));
    // An assistant's earlier refusal is what it said; keep it as text.
    if (part.type === "refusal") {
      return textBlock(partText(part, "refusal", `${at}.content[${j}]`));
    }
    throw unsupportedPart(part, `${at}.content[${j}]`, provider);
  });
}

function userBlocks(
  content: OpenAIMessage["content"],
  at: string,
  provider: string,
): (AnthropicTextBlock | AnthropicImageBlock)[] {
  if (content === undefined || content === null) return [];
  if (typeof content === "string") return textBlock(content);
  return content.flatMap((part, j) => partBlocks(part, `${at}.content[${j}]`, provider));
}

function partBlocks(
  part: OpenAIContentPart,
  at: string,
  provider: string,
): (AnthropicTextBlock | AnthropicImageBlock)[] {
  if (part.type === "text") return textBlock(partText(part, "text", at));
  if (part.type === "image_url") return [imageBlock(part, at)];
  throw unsupportedPart(part, at, provider);
}

/** Anthropic refuses empty text blocks ("text content blocks must be non-empty"): skip them. */
function textBlock(text: string): AnthropicTextBlock[] {
  return text === "" ? [] : [{ type: "text", text }];
}

function partText(part: OpenAIContentPart, field: string, at: string): string {
  const text = part[field];
  if (typeof text !== "string") {
    throw invalid(`"${at}.${field}" must be a string`, `${at}.${field}`);
  }
  return text;
}

/**
 * `data:` URLs become base64 sources, http(s) URLs URL sources (Anthropic fetches those
 * itself). Anthropic accepts image/jpeg, png, gif and webp; other media types are left for
 * the upstream to refuse with its own message.
 */
function imageBlock(part: OpenAIContentPart, at: string): AnthropicImageBlock {
  const ref = part.image_url;
  const url = typeof ref === "string" ? ref : isObject(ref) ? ref.url : undefined;
  const param = `${at}.image_url.url`;
  if (typeof url !== "string") throw invalid(`"${param}" must be a string`, param);
  if (url.startsWith("data:")) {
    const comma = url.indexOf(",");
    const meta = comma < 0 ? [] : url.slice(5, comma).split(";");
    const mediaType = meta[0] ?? "";
    if (mediaType === "" || !meta.includes("base64")) {
      throw invalid(
        `"${param}" must be a base64 data URL ("data:image/png;base64,...") or an http(s) URL`,
        param,
      );
    }
    return {
      type: "image",
      source: { type: "base64", media_type: mediaType, data: url.slice(comma + 1) },
    };
  }
  if (/^https?:\/\//i.test(url)) return { type: "image", source: { type: "url", url } };
  throw invalid(`"${param}" must be a data: URL or an http(s) URL`, param);
}

function toolUseBlocks(toolCalls: unknown, at: string): AnthropicContentBlock[] {
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
    return { type: "tool_use", id: call.id, name: fn.name, input: toolInput(fn.arguments, where) };
  });
}

/** Anthropic wants the tool input as an object; OpenAI carries it as a JSON string. */
function toolInput(args: unknown, where: string): Record<string, unknown> {
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

function toolResultBlock(m: OpenAIMessage, at: string, provider: string): AnthropicToolResultBlock {
  if (typeof m.tool_call_id !== "string" || m.tool_call_id === "") {
    throw invalid(`Missing required field "${at}.tool_call_id"`, `${at}.tool_call_id`);
  }
  const content = typeof m.content === "string" ? m.content : userBlocks(m.content, at, provider);
  return { type: "tool_result", tool_use_id: m.tool_call_id, content };
}

// ---- Tools, stop, limits, JSON mode --------------------------------------------------------

function toAnthropicTools(tools: unknown): AnthropicTool[] {
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
    // `input_schema` is required by Anthropic; OpenAI lets a no-argument function omit it.
    const out: AnthropicTool = {
      name: fn.name,
      input_schema: isObject(fn.parameters) ? fn.parameters : { type: "object", properties: {} },
    };
    if (typeof fn.description === "string") out.description = fn.description;
    return out;
  });
}

function toToolChoice(
  choice: unknown,
  hasTools: boolean,
  parallel: unknown,
): AnthropicToolChoice | null {
  const out = parseToolChoice(choice);
  if (!hasTools) {
    // "auto" and "none" without tools mean what no tool_choice means; forcing a tool does not.
    if (out?.type === "any" || out?.type === "tool") {
      throw invalid(`"tool_choice" requires "tools"`, "tool_choice");
    }
    return null;
  }
  if (parallel !== false || out?.type === "none") return out;
  return { ...(out ?? { type: "auto" }), disable_parallel_tool_use: true };
}

/** null when absent: Anthropic's default is auto, so nothing is sent that was not asked. */
function parseToolChoice(choice: unknown): AnthropicToolChoice | null {
  if (choice === undefined || choice === null) return null;
  if (choice === "auto") return { type: "auto" };
  if (choice === "required") return { type: "any" };
  if (choice === "none") return { type: "none" };
  if (
    isObject(choice) && choice.type === "function" && isObject(choice.function) &&
    typeof choice.function.name === "string"
  ) {
    return { type: "tool", name: choice.function.name };
  }
  throw invalid(
    `"tool_choice" must be "none", "auto", "required" or {"type":"function","function":{"name":...}}`,
    "tool_choice",
  );
}

function toStopSequences(stop: unknown): string[] {
  if (stop === undefined || stop === null) return [];
  if (typeof stop === "string") return stop === "" ? [] : [stop];
  if (Array.isArray(stop) && stop.every((s) => typeof s === "string")) return stop as string[];
  throw invalid(`"stop" must be a string or an array of strings`, "stop");
}

/** `max_completion_tokens` replaced `max_tokens` in OpenAI's API; the newer one wins. */
function pickMaxTokens(body: OpenAIChatRequest): number {
  for (const field of ["max_completion_tokens", "max_tokens"]) {
    const v = body[field];
    if (typeof v === "number") return v;
  }
  return DEFAULT_MAX_TOKENS;
}

/**
 * Anthropic has no `response_format` in `2023-06-01`, so JSON mode becomes an instruction
 * appended to the system prompt. It is a strong hint, not a guarantee: the gateway does not
 * validate or repair the answer, the same contract as OpenAI's `json_object` mode.
 */
function toJsonInstruction(format: unknown, provider: string): string | null {
  if (format === undefined || format === null) return null;
  if (!isObject(format) || typeof format.type !== "string") {
    throw invalid(`"response_format" must be an object with a "type"`, "response_format");
  }
  switch (format.type) {
    case "text":
      return null;
    case "json_object":
      return "Respond with a single valid JSON object and nothing else: no prose, no Markdown code fences.";
    case "json_schema": {
      const spec = format.json_schema;
      if (!isObject(spec) || !isObject(spec.schema)) {
        throw invalid(
          `"response_format.json_schema.schema" must be an object`,
          "response_format.json_schema.schema",
        );
      }
      const name = typeof spec.name === "string" ? ` named "${spec.name}"` : "";
      return `Respond with a single valid JSON object${name} that conforms to this JSON Schema, ` +
        `and nothing else: no prose, no Markdown code fences.\n<json_schema>\n` +
        `${JSON.stringify(spec.schema)}\n</json_schema>`;
    }
    default:
      throw new GatewayError(
        "invalid_request",
        `"response_format.type" "${format.type}" is not supported by provider "${provider}"`,
        { param: "response_format.type", provider },
      );
  }
}

// ---- Helpers -------------------------------------------------------------------------------

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function invalid(message: string, param: string): GatewayError {
  return new GatewayError("invalid_request", message, { param });
}

function unsupported(param: string, provider: string): GatewayError {
  return new GatewayError(
    "invalid_request",
    `Parameter "${param}" is not supported by provider "${provider}"`,
    { param, provider },
  );
}

function unsupportedPart(part: OpenAIContentPart, at: string, provider: string): GatewayError {
  return new GatewayError(
    "invalid_request",
    `Content part type "${part.type}" in ${at} is not supported by provider "${provider}"`,
    { param: `${at}.type`, provider },
  );
}
