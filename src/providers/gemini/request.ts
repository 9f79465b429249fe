import { GatewayError } from "../../errors.ts";
import type { OpenAIChatRequest, OpenAIContentPart, OpenAIMessage } from "../../schema/openai.ts";
import { toGeminiSchema } from "./schema.ts";
import type {
  GeminiContent,
  GeminiFunctionCall,
  GeminiFunctionDeclaration,
  GeminiGenerationConfig,
  GeminiPart,
  GeminiRequest,
  GeminiToolConfig,
} from "./types.ts";

/**
 * OpenAI parameters with no Gemini equivalent, each with the test for "set to a value that
 * would change the answer". Those are refused with a 400 naming the parameter rather than
 * silently ignored; their neutral values (`n: 1`, `logprobs: false`, `logit_bias: {}`,
 * null) pass. `n` maps to `candidateCount` in Gemini, but the translation returns a single
 * choice, so only 1 is honoured.
 */
const REJECTED: ReadonlyArray<readonly [string, (v: unknown) => boolean]> = [
  ["n", (v) => v !== 1],
  ["logprobs", (v) => v !== false],
  ["top_logprobs", (v) => v !== 0],
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
 * Gemini counterpart to honour: `user` / `safety_identifier`, `service_tier`, `store`,
 * `metadata`, `prompt_cache_key`, `stream` / `stream_options` (the endpoint decides
 * streaming; the stream translator reads `include_usage`), `parallel_tool_calls` (Gemini
 * has no switch; it may return several calls either way), `response_format.json_schema.strict`,
 * message `name` fields and `image_url.detail`. Fields unknown to us are ignored too, so a
 * new OpenAI SDK field does not break every Gemini call.
 */

/**
 * Gemini 3 refuses a replayed functionCall part without the thought signature it was
 * issued with. History that did not come from Gemini (another provider, or a client that
 * dropped `extra_content`) has none; the thought-signatures guide documents this value for
 * exactly that case ("transferring a trace from a different model").
 */
export const SKIP_THOUGHT_SIGNATURE = "skip_thought_signature_validator";

/**
 * Translate an OpenAI chat completion request into a Gemini `GenerateContentRequest`. The
 * model goes in the URL, not the body. Pure: no I/O, the input is not mutated. Throws a 400
 * GatewayError naming the parameter for what Gemini cannot honour.
 */
export function toGeminiRequest(body: OpenAIChatRequest, provider = "gemini"): GeminiRequest {
  for (const [param, isActive] of REJECTED) {
    const v = body[param];
    if (v !== undefined && v !== null && isActive(v)) throw unsupported(param, provider);
  }

  const system: { text: string }[] = [];
  const contents = toGeminiContents(body.messages, system, provider);
  if (contents.length === 0) {
    throw new GatewayError(
      "invalid_request",
      `"messages" must contain a user or assistant message for provider "${provider}"`,
      { param: "messages", provider },
    );
  }
  const out: GeminiRequest = { contents };
  if (system.length > 0) out.systemInstruction = { parts: system };

  const declarations = toFunctionDeclarations(body.tools);
  if (declarations.length > 0) out.tools = [{ functionDeclarations: declarations }];
  const toolConfig = toToolConfig(body.tool_choice, declarations.length > 0);
  if (toolConfig !== null) out.toolConfig = toolConfig;

  const config = toGenerationConfig(body, provider);
  if (Object.keys(config).length > 0) out.generationConfig = config;
  return out;
}

// ---- Messages ------------------------------------------------------------------------------

/**
 * System and developer messages become `systemInstruction` parts, in order, wherever they
 * appear. `assistant` is Gemini's `model` role; `tool` results become `functionResponse`
 * parts of a user turn. Consecutive same-role turns are merged, so the responses to one
 * batch of parallel calls arrive together, as the function-calling guide shows them.
 */
function toGeminiContents(
  messages: readonly OpenAIMessage[],
  system: { text: string }[],
  provider: string,
): GeminiContent[] {
  const contents: GeminiContent[] = [];
  const push = (role: GeminiContent["role"], parts: GeminiPart[]) => {
    if (parts.length === 0) return;
    const last = contents.at(-1);
    if (last?.role === role) last.parts.push(...parts);
    else contents.push({ role, parts });
  };
  // Gemini's functionResponse is matched by function name, which OpenAI's tool message
  // lacks: it is found through the id of the assistant tool call it answers.
  const callNames = new Map<string, string>();
  messages.forEach((m, i) => {
    const at = `messages[${i}]`;
    switch (m.role) {
      case "system":
      case "developer":
        for (const text of texts(m.content, at, provider)) system.push({ text });
        break;
      case "user":
        push("user", userParts(m.content, at, provider));
        break;
      case "assistant": {
        if (m.function_call !== undefined && m.function_call !== null) {
          throw unsupported(`${at}.function_call`, provider);
        }
        const calls = functionCallParts(m.tool_calls, at, callNames);
        push("model", [...texts(m.content, at, provider).map((text) => ({ text })), ...calls]);
        break;
      }
      case "tool":
        push("user", [functionResponsePart(m, at, callNames, provider)]);
        break;
      default:
        // The legacy `function` role carries no call id to pair with a functionCall part.
        throw new GatewayError(
          "invalid_request",
          `Role "${m.role}" in ${at} is not supported by provider "${provider}"; use "tool"`,
          { param: `${at}.role`, provider },
        );
    }
  });
  return contents;
}

/**
 * Text (and refusal) content only: system, developer, assistant and tool messages. Empty
 * strings are skipped: Gemini refuses a request with an empty text part.
 */
function texts(content: OpenAIMessage["content"], at: string, provider: string): string[] {
  if (content === undefined || content === null) return [];
  if (typeof content === "string") return content === "" ? [] : [content];
  return content.flatMap((part, j) => {
    const where = `${at}.content[${j}]`;
    // An assistant's earlier refusal is what it said; keep it as text.
    if (part.type === "text" || part.type === "refusal") {
      const text = partText(part, part.type, where);
      return text === "" ? [] : [text];
    }
    throw unsupportedPart(part, where, provider);
  });
}

function userParts(content: OpenAIMessage["content"], at: string, provider: string): GeminiPart[] {
  if (content === undefined || content === null) return [];
  if (typeof content === "string") return content === "" ? [] : [{ text: content }];
  return content.flatMap((part, j): GeminiPart[] => {
    const where = `${at}.content[${j}]`;
    if (part.type === "text") {
      const text = partText(part, "text", where);
      return text === "" ? [] : [{ text }];
    }
    if (part.type === "image_url") return [imagePart(part, where)];
    throw unsupportedPart(part, where, provider);
  });
}

function partText(part: OpenAIContentPart, field: string, at: string): string {
  const text = part[field];
  if (typeof text !== "string") {
    throw invalid(`"${at}.${field}" must be a string`, `${at}.${field}`);
  }
  return text;
}

/** Image formats Gemini documents (image understanding guide), by file extension. */
const IMAGE_TYPES: Readonly<Record<string, string>> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  webp: "image/webp",
  heic: "image/heic",
  heif: "image/heif",
  gif: "image/gif",
};

/**
 * `data:` URLs become `inlineData`. http(s) URLs become `fileData`, which Gemini fetches
 * itself (public and signed URLs since the January 2026 file-input update; Files API URIs
 * always). `fileData` requires a MIME type that OpenAI's part does not carry, so it is
 * guessed from the path's extension, JPEG when there is none.
 */
function imagePart(part: OpenAIContentPart, at: string): GeminiPart {
  const ref = part.image_url;
  const url = typeof ref === "string" ? ref : isObject(ref) ? ref.url : undefined;
  const param = `${at}.image_url.url`;
  if (typeof url !== "string") throw invalid(`"${param}" must be a string`, param);
  if (url.startsWith("data:")) {
    const comma = url.indexOf(",");
    const meta = comma < 0 ? [] : url.slice(5, comma).split(";");
    const mimeType = meta[0] ?? "";
    if (mimeType === "" || !meta.includes("base64")) {
      throw invalid(
        `"${param}" must be a base64 data URL ("data:image/png;base64,...") or an http(s) URL`,
        param,
      );
    }
    return { inlineData: { mimeType, data: url.slice(comma + 1) } };
  }
  if (/^https?:\/\//i.test(url)) {
    return { fileData: { mimeType: guessImageType(url), fileUri: url } };
  }
  throw invalid(`"${param}" must be a data: URL or an http(s) URL`, param);
}

function guessImageType(url: string): string {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    return "image/jpeg";
  }
  const ext = /\.([a-z0-9]+)$/i.exec(path)?.[1]?.toLowerCase();
  return (ext !== undefined ? IMAGE_TYPES[ext] : undefined) ?? "image/jpeg";
}

function functionCallParts(
  toolCalls: unknown,
  at: string,
  callNames: Map<string, string>,
): GeminiPart[] {
  if (toolCalls === undefined || toolCalls === null) return [];
  if (!Array.isArray(toolCalls)) {
    throw invalid(`"${at}.tool_calls" must be an array`, `${at}.tool_calls`);
  }
  const parts = toolCalls.map((call: unknown, j) => {
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
    // A later call with the same id (ids are not unique across providers) wins: a tool
    // message answers the most recent call with its id.
    callNames.set(call.id, fn.name);
    const part: { functionCall: GeminiFunctionCall; thoughtSignature?: string } = {
      functionCall: { name: fn.name, args: toolArgs(fn.arguments, where) },
    };
    const signature = thoughtSignatureOf(call);
    if (signature !== null) part.thoughtSignature = signature;
    return part;
  });
  // For parallel calls Gemini signs only the first functionCall part, so the sentinel goes
  // on the first part too, and only when the turn carries no signature of its own.
  const first = parts[0];
  if (first !== undefined && parts.every((p) => p.thoughtSignature === undefined)) {
    first.thoughtSignature = SKIP_THOUGHT_SIGNATURE;
  }
  return parts;
}

/** `extra_content.google.thought_signature`, as Gemini's OpenAI-compatible endpoint uses. */
function thoughtSignatureOf(call: Record<string, unknown>): string | null {
  const extra = call.extra_content;
  const google = isObject(extra) ? extra.google : undefined;
  const signature = isObject(google) ? google.thought_signature : undefined;
  return typeof signature === "string" && signature !== "" ? signature : null;
}

/** Gemini wants the arguments as an object; OpenAI carries them as a JSON string. */
function toolArgs(args: unknown, where: string): Record<string, unknown> {
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
 * A tool message → `functionResponse`. Gemini wants `response` to be a JSON object, with
 * the function's output under `output` unless it is an object itself (FunctionResponse
 * docs), so JSON-object content is passed as parsed and anything else is wrapped.
 */
function functionResponsePart(
  m: OpenAIMessage,
  at: string,
  callNames: ReadonlyMap<string, string>,
  provider: string,
): GeminiPart {
  if (typeof m.tool_call_id !== "string" || m.tool_call_id === "") {
    throw invalid(`Missing required field "${at}.tool_call_id"`, `${at}.tool_call_id`);
  }
  const name = callNames.get(m.tool_call_id);
  if (name === undefined) {
    throw invalid(
      `"${at}.tool_call_id" "${m.tool_call_id}" does not match a tool call of an earlier ` +
        `assistant message; provider "${provider}" needs it to name the function`,
      `${at}.tool_call_id`,
    );
  }
  const text = typeof m.content === "string" ? m.content : texts(m.content, at, provider).join("");
  return { functionResponse: { name, response: toResponseObject(text) } };
}

function toResponseObject(text: string): Record<string, unknown> {
  const trimmed = text.trimStart();
  if (trimmed.startsWith("{")) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (isObject(parsed)) return parsed;
    } catch {
      // Not JSON after all: plain output.
    }
  }
  return { output: text };
}

// ---- Tools ---------------------------------------------------------------------------------

function toFunctionDeclarations(tools: unknown): GeminiFunctionDeclaration[] {
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
    const out: GeminiFunctionDeclaration = { name: fn.name };
    if (typeof fn.description === "string" && fn.description !== "") {
      out.description = fn.description;
    }
    if (fn.parameters !== undefined && fn.parameters !== null) {
      const parameters = toGeminiSchema(fn.parameters, `${at}.function.parameters`);
      // A no-argument function: Gemini refuses an OBJECT schema without properties.
      if (parameters.properties !== undefined) out.parameters = parameters;
    }
    return out;
  });
}

/** null when absent: Gemini's default is AUTO, so nothing is sent that was not asked. */
function toToolConfig(choice: unknown, hasTools: boolean): GeminiToolConfig | null {
  if (choice === undefined || choice === null) return null;
  let config: GeminiToolConfig["functionCallingConfig"];
  if (choice === "auto") config = { mode: "AUTO" };
  else if (choice === "none") config = { mode: "NONE" };
  else if (choice === "required") config = { mode: "ANY" };
  else if (
    isObject(choice) && choice.type === "function" && isObject(choice.function) &&
    typeof choice.function.name === "string"
  ) {
    config = { mode: "ANY", allowedFunctionNames: [choice.function.name] };
  } else {
    throw invalid(
      `"tool_choice" must be "none", "auto", "required" or {"type":"function","function":{"name":...}}`,
      "tool_choice",
    );
  }
  if (!hasTools) {
    // "auto" and "none" without tools mean what no tool_choice means; forcing a call does not.
    if (config.mode === "ANY") throw invalid(`"tool_choice" requires "tools"`, "tool_choice");
    return null;
  }
  return { functionCallingConfig: config };
}

// ---- Generation config ---------------------------------------------------------------------

function toGenerationConfig(body: OpenAIChatRequest, provider: string): GeminiGenerationConfig {
  const out: GeminiGenerationConfig = {};
  // Gemini accepts OpenAI's 0..2 temperature range as is.
  const numeric = [
    ["temperature", "temperature"],
    ["top_p", "topP"],
    // Not OpenAI, but vLLM-style clients send it and Gemini has it.
    ["top_k", "topK"],
    ["seed", "seed"],
    ["presence_penalty", "presencePenalty"],
    ["frequency_penalty", "frequencyPenalty"],
  ] as const;
  for (const [from, to] of numeric) {
    const v = body[from];
    if (v === undefined || v === null) continue;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw invalid(`"${from}" must be a number`, from);
    }
    out[to] = v;
  }
  const maxTokens = pickMaxTokens(body);
  if (maxTokens !== null) out.maxOutputTokens = maxTokens;
  const stop = toStopSequences(body.stop);
  if (stop.length > 0) out.stopSequences = stop;
  Object.assign(out, toResponseFormat(body.response_format, provider));
  return out;
}

/** `max_completion_tokens` replaced `max_tokens` in OpenAI's API; the newer one wins. */
function pickMaxTokens(body: OpenAIChatRequest): number | null {
  for (const field of ["max_completion_tokens", "max_tokens"]) {
    const v = body[field];
    if (typeof v === "number") return v;
  }
  return null;
}

function toStopSequences(stop: unknown): string[] {
  if (stop === undefined || stop === null) return [];
  if (typeof stop === "string") return stop === "" ? [] : [stop];
  if (Array.isArray(stop) && stop.every((s) => typeof s === "string")) {
    return (stop as string[]).filter((s) => s !== "");
  }
  throw invalid(`"stop" must be a string or an array of strings`, "stop");
}

/** JSON mode is native in Gemini: a response MIME type, plus a schema for json_schema. */
function toResponseFormat(format: unknown, provider: string): GeminiGenerationConfig {
  if (format === undefined || format === null) return {};
  if (!isObject(format) || typeof format.type !== "string") {
    throw invalid(`"response_format" must be an object with a "type"`, "response_format");
  }
  switch (format.type) {
    case "text":
      return {};
    case "json_object":
      return { responseMimeType: "application/json" };
    case "json_schema": {
      const spec = format.json_schema;
      const param = "response_format.json_schema.schema";
      if (!isObject(spec) || !isObject(spec.schema)) {
        throw invalid(`"${param}" must be an object`, param);
      }
      return {
        responseMimeType: "application/json",
        responseSchema: toGeminiSchema(spec.schema, param, { ordered: true }),
      };
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
