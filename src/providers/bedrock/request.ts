import { GatewayError } from "../../errors.ts";
import type { OpenAIChatRequest, OpenAIContentPart, OpenAIMessage } from "../../schema/openai.ts";
import type {
  ConverseContentBlock,
  ConverseImageBlock,
  ConverseImageFormat,
  ConverseInferenceConfig,
  ConverseMessage,
  ConverseRequest,
  ConverseTextBlock,
  ConverseTool,
  ConverseToolChoice,
  ConverseToolResultBlock,
  ConverseToolUseBlock,
} from "./types.ts";

/**
 * OpenAI parameters Converse cannot honour, each with the test for "set to a value that
 * would change the answer". Those are refused with a 400 naming the parameter rather than
 * silently ignored; their neutral values (`n: 1`, `logprobs: false`, penalties 0, ...) pass.
 * `parallel_tool_calls: false` is among them: Converse has no switch for it, and a caller
 * that asked for one call at a time must not get three.
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
  ["parallel_tool_calls", (v) => v !== true],
];

/*
 * Dropped without complaint: `seed`, `user`, `safety_identifier`, `service_tier`, `store`,
 * `metadata`, `prompt_cache_key` (no Converse counterpart that changes the answer),
 * `stream` and `stream_options` (the operation is chosen by the adapter; the stream
 * translator reads `include_usage`), message `name` fields and `image_url.detail`. Fields
 * unknown to us are ignored too, so a new OpenAI SDK field does not break every call.
 */

/** Converse's `ImageBlock.format` for each media type a data URL may carry. */
const IMAGE_FORMATS: Readonly<Record<string, ConverseImageFormat>> = {
  "image/png": "png",
  "image/jpeg": "jpeg",
  "image/jpg": "jpeg",
  "image/gif": "gif",
  "image/webp": "webp",
};

/**
 * Translate an OpenAI chat completion request into a Converse request body (the model id
 * travels in the URL path, not the body). Pure: no I/O, the input is not mutated. Throws a
 * 400 GatewayError naming the parameter for what Converse cannot honour.
 */
export function toConverseRequest(
  body: OpenAIChatRequest,
  provider = "bedrock",
): ConverseRequest {
  for (const [param, isActive] of REJECTED) {
    const v = body[param];
    if (v !== undefined && v !== null && isActive(v)) throw unsupported(param, provider);
  }

  const system: ConverseTextBlock[] = [];
  const messages = toConverseMessages(body.messages, system, provider);
  if (messages.length === 0) {
    throw new GatewayError(
      "invalid_request",
      `"messages" must contain a user or assistant message for provider "${provider}"`,
      { param: "messages", provider },
    );
  }
  const jsonInstruction = toJsonInstruction(body.response_format, provider);
  if (jsonInstruction !== null) system.push({ text: jsonInstruction });

  const out: ConverseRequest = { messages };
  if (system.length > 0) out.system = system;
  const inference = toInferenceConfig(body);
  if (Object.keys(inference).length > 0) out.inferenceConfig = inference;

  const tools = toConverseTools(body.tools);
  const choice = parseToolChoice(body.tool_choice);
  if (tools.length === 0) {
    // "auto" and "none" without tools mean what no tool_choice means; forcing a tool does not.
    if (choice !== null && choice !== "none" && !("auto" in choice)) {
      throw invalid(`"tool_choice" requires "tools"`, "tool_choice");
    }
    return out;
  }
  if (choice === "none") {
    // Converse's ToolChoice is auto | any | tool: there is no "none". Leaving the tools out
    // is how a turn is kept from calling one, except that Bedrock refuses a conversation
    // holding toolUse/toolResult blocks without a toolConfig ("The toolConfig field must
    // be defined when using toolUse and toolResult content blocks"); there the tools stay,
    // and "none" can only be a wish.
    if (!messages.some((m) => m.content.some((b) => "toolUse" in b || "toolResult" in b))) {
      return out;
    }
    out.toolConfig = { tools };
    return out;
  }
  out.toolConfig = choice === null ? { tools } : { tools, toolChoice: choice };
  return out;
}

// ---- Messages ------------------------------------------------------------------------------

/**
 * System and developer messages go to the top-level `system` blocks, in order, wherever
 * they appear. Consecutive same-role turns are merged: Converse wants user and assistant to
 * alternate, and `role: "tool"` results must land in the one user turn that follows the
 * assistant's `toolUse` blocks, before any text (Claude on Bedrock, like Anthropic's API,
 * wants the results first).
 */
function toConverseMessages(
  messages: readonly OpenAIMessage[],
  system: ConverseTextBlock[],
  provider: string,
): ConverseMessage[] {
  const turns: ConverseMessage[] = [];
  const push = (role: ConverseMessage["role"], blocks: ConverseContentBlock[]) => {
    if (blocks.length === 0) return;
    const last = turns.at(-1);
    if (last?.role === role) last.content.push(...blocks);
    else turns.push({ role, content: blocks });
  };
  messages.forEach((m, i) => {
    const at = `messages[${i}]`;
    switch (m.role) {
      case "system":
      case "developer": {
        const text = textBlocks(m.content, at, provider).map((b) => b.text).join("\n\n");
        if (text !== "") system.push({ text });
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
        // The legacy `function` role carries no call id to pair with a toolUse block.
        throw new GatewayError(
          "invalid_request",
          `Role "${m.role}" in ${at} is not supported by provider "${provider}"; use "tool"`,
          { param: `${at}.role`, provider },
        );
    }
  });
  for (const turn of turns) {
    if (turn.role === "user") turn.content = resultsFirst(turn.content);
  }
  return turns;
}

function resultsFirst(blocks: ConverseContentBlock[]): ConverseContentBlock[] {
  const results = blocks.filter((b) => "toolResult" in b);
  if (results.length === 0 || results.length === blocks.length) return blocks;
  return [...results, ...blocks.filter((b) => !("toolResult" in b))];
}

/** Text (and refusal) content only: system, developer and assistant messages. */
function textBlocks(
  content: OpenAIMessage["content"],
  at: string,
  provider: string,
): ConverseTextBlock[] {
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
): (ConverseTextBlock | ConverseImageBlock)[] {
  if (content === undefined || content === null) return [];
  if (typeof content === "string") return textBlock(content);
  return content.flatMap((part, j): (ConverseTextBlock | ConverseImageBlock)[] => {
    const where = `${at}.content[${j}]`;
    if (part.type === "text") return textBlock(partText(part, "text", where));
    if (part.type === "image_url") return [imageBlock(part, where, provider)];
    throw unsupportedPart(part, where, provider);
  });
}

/**
 * Bedrock refuses blank text ("The text field in the ContentBlock object at
 * messages.0.content.0 is blank"): empty parts are skipped.
 */
function textBlock(text: string): ConverseTextBlock[] {
  return text.trim() === "" ? [] : [{ text }];
}

function partText(part: OpenAIContentPart, field: string, at: string): string {
  const text = part[field];
  if (typeof text !== "string") {
    throw invalid(`"${at}.${field}" must be a string`, `${at}.${field}`);
  }
  return text;
}

/**
 * Converse takes images as bytes (base64 in JSON) or an S3 location, never by URL: a
 * `data:` URL becomes bytes, an `s3://` URL an `s3Location`. An http(s) URL is refused
 * rather than fetched: the sidecar only talks to configured hosts.
 */
function imageBlock(part: OpenAIContentPart, at: string, provider: string): ConverseImageBlock {
  const ref = part.image_url;
  const url = typeof ref === "string" ? ref : isObject(ref) ? ref.url : undefined;
  const param = `${at}.image_url.url`;
  if (typeof url !== "string") throw invalid(`"${param}" must be a string`, param);
  if (url.startsWith("data:")) {
    const comma = url.indexOf(",");
    const meta = comma < 0 ? [] : url.slice(5, comma).split(";");
    const mediaType = (meta[0] ?? "").toLowerCase();
    if (mediaType === "" || !meta.includes("base64")) {
      throw invalid(`"${param}" must be a base64 data URL ("data:image/png;base64,...")`, param);
    }
    const format = IMAGE_FORMATS[mediaType];
    if (format === undefined) {
      throw new GatewayError(
        "invalid_request",
        `Image type "${mediaType}" in ${param} is not supported by provider "${provider}" ` +
          `(use png, jpeg, gif or webp)`,
        { param, provider },
      );
    }
    return { image: { format, source: { bytes: url.slice(comma + 1) } } };
  }
  if (url.startsWith("s3://")) {
    const ext = /\.([a-z]+)$/i.exec(url)?.[1]?.toLowerCase() ?? "";
    const format = IMAGE_FORMATS[`image/${ext}`];
    if (format === undefined) {
      throw invalid(`"${param}" must end in .png, .jpeg, .jpg, .gif or .webp`, param);
    }
    return { image: { format, source: { s3Location: { uri: url } } } };
  }
  throw new GatewayError(
    "invalid_request",
    `"${param}" must be a base64 data URL or an s3:// URL: provider "${provider}" ` +
      `(Bedrock Converse) does not fetch images by URL`,
    { param, provider },
  );
}

function toolUseBlocks(toolCalls: unknown, at: string): ConverseToolUseBlock[] {
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
    return {
      toolUse: { toolUseId: call.id, name: fn.name, input: toolInput(fn.arguments, where) },
    };
  });
}

/** Converse wants the tool input as a JSON object; OpenAI carries it as a JSON string. */
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

/**
 * A tool message becomes a `toolResult` with `text` content: an OpenAI tool result is text,
 * and every Converse model accepts text results, while `json` results are model-dependent.
 * An empty result is sent as one space, since blank text is refused.
 */
function toolResultBlock(m: OpenAIMessage, at: string, provider: string): ConverseToolResultBlock {
  if (typeof m.tool_call_id !== "string" || m.tool_call_id === "") {
    throw invalid(`Missing required field "${at}.tool_call_id"`, `${at}.tool_call_id`);
  }
  const blocks = userBlocks(m.content, at, provider);
  return {
    toolResult: {
      toolUseId: m.tool_call_id,
      content: blocks.length > 0 ? blocks : [{ text: " " }],
    },
  };
}

// ---- Tools, inference parameters, JSON mode ------------------------------------------------

function toConverseTools(tools: unknown): ConverseTool[] {
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
    // `inputSchema` is required by Converse; OpenAI lets a no-argument function omit it.
    const spec: ConverseTool["toolSpec"] = {
      name: fn.name,
      inputSchema: {
        json: isObject(fn.parameters) ? fn.parameters : { type: "object", properties: {} },
      },
    };
    if (typeof fn.description === "string" && fn.description !== "") {
      spec.description = fn.description;
    }
    return { toolSpec: spec };
  });
}

/** null when absent (Converse's default is auto, so nothing is sent that was not asked). */
function parseToolChoice(choice: unknown): ConverseToolChoice | "none" | null {
  if (choice === undefined || choice === null) return null;
  if (choice === "auto") return { auto: {} };
  if (choice === "required") return { any: {} };
  if (choice === "none") return "none";
  if (
    isObject(choice) && choice.type === "function" && isObject(choice.function) &&
    typeof choice.function.name === "string"
  ) {
    return { tool: { name: choice.function.name } };
  }
  throw invalid(
    `"tool_choice" must be "none", "auto", "required" or {"type":"function","function":{"name":...}}`,
    "tool_choice",
  );
}

/**
 * `inferenceConfig`: `max_completion_tokens` (the newer name wins) or `max_tokens`,
 * `temperature`, `top_p`, `stop`. OpenAI accepts temperature 0..2 while the Converse models
 * take 0..1, so it is clamped (not halved): the common values keep their meaning and
 * anything hotter becomes the hottest the model allows. `maxTokens` is optional in Converse
 * (the model's default applies), so none is invented.
 */
function toInferenceConfig(body: OpenAIChatRequest): ConverseInferenceConfig {
  const out: ConverseInferenceConfig = {};
  for (const field of ["max_completion_tokens", "max_tokens"]) {
    const v = body[field];
    if (typeof v === "number") {
      out.maxTokens = v;
      break;
    }
  }
  if (typeof body.temperature === "number") out.temperature = Math.min(body.temperature, 1);
  if (typeof body.top_p === "number") out.topP = body.top_p;
  const stop = toStopSequences(body.stop);
  if (stop.length > 0) out.stopSequences = stop;
  return out;
}

function toStopSequences(stop: unknown): string[] {
  if (stop === undefined || stop === null) return [];
  if (typeof stop === "string") return stop === "" ? [] : [stop];
  if (Array.isArray(stop) && stop.every((s) => typeof s === "string")) {
    return (stop as string[]).filter((s) => s !== "");
  }
  throw invalid(`"stop" must be a string or an array of strings`, "stop");
}

/**
 * Converse has no JSON mode common to its models, so `response_format` becomes an
 * instruction appended to the system prompt: a strong hint, not a guarantee, the same
 * contract as the Anthropic translation and OpenAI's own `json_object` mode.
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
