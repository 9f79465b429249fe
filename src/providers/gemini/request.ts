import {
  isObject,
  type OpenAIChatRequest,
  type OpenAIContentPart,
  type OpenAIMessage,
} from "../../schema/openai.ts";
import {
  base64DataUrl,
  contentTexts,
  createTurns,
  functionTools,
  imageUrl,
  invalid,
  maxTokensOf,
  noMessages,
  OPENAI_ONLY_PARAMS,
  type RejectedParam,
  rejectParams,
  responseFormatOf,
  stopSequences,
  toJsonInstruction,
  toolCallId,
  toolCallsOf,
  toolChoiceOf,
  toolChoiceRequiresTools,
  userContent,
  visitMessages,
} from "../shared/openai_request.ts";
import { reasoningEffort, thinkingBudget } from "../shared/reasoning.ts";
import { toGeminiSchema } from "./schema.ts";
import type {
  GeminiContent,
  GeminiFunctionCall,
  GeminiFunctionDeclaration,
  GeminiGenerationConfig,
  GeminiPart,
  GeminiRequest,
  GeminiThinkingConfig,
  GeminiToolConfig,
} from "./types.ts";

/**
 * OpenAI parameters with no Gemini equivalent, each with the test for "set to a value that
 * would change the answer". Those are refused with a 400 naming the parameter rather than
 * silently ignored; their neutral values (`n: 1`, `logprobs: false`, `logit_bias: {}`,
 * null) pass. `n` maps to `candidateCount` in Gemini, but the translation returns a single
 * choice, so only 1 is honoured.
 */
const REJECTED: ReadonlyArray<RejectedParam> = OPENAI_ONLY_PARAMS.filter(
  // Gemini has presencePenalty and frequencyPenalty, and thinking for reasoning_effort (see
  // toGenerationConfig).
  ([param]) =>
    param !== "presence_penalty" && param !== "frequency_penalty" && param !== "reasoning_effort",
);

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
export function toGeminiRequest(
  body: OpenAIChatRequest,
  provider = "gemini",
  model = "",
): GeminiRequest {
  rejectParams(body, REJECTED, provider);

  const system: { text: string }[] = [];
  const contents = toGeminiContents(body.messages, system, provider);
  if (contents.length === 0) throw noMessages(provider);
  const out: GeminiRequest = { contents };
  if (system.length > 0) out.systemInstruction = { parts: system };

  const declarations = toFunctionDeclarations(body.tools);
  if (declarations.length > 0) out.tools = [{ functionDeclarations: declarations }];
  const toolConfig = toToolConfig(body.tool_choice, declarations.length > 0);
  if (toolConfig !== null) out.toolConfig = toolConfig;

  const config = toGenerationConfig(body, provider, model);
  if (declarations.length > 0 && config.responseMimeType !== undefined && geminiMajor(model) < 3) {
    // Gemini before 3 refuses function calling beside a JSON response MIME type ("Function
    // calling with a response mime type: 'application/json' is unsupported"): the format is
    // asked for in the system instruction instead, as for Anthropic.
    delete config.responseMimeType;
    delete config.responseSchema;
    const instruction = toJsonInstruction(body.response_format, provider);
    if (instruction !== null) {
      out.systemInstruction = {
        parts: [...(out.systemInstruction?.parts ?? []), { text: instruction }],
      };
    }
  }
  if (Object.keys(config).length > 0) out.generationConfig = config;
  return out;
}

/** The major version a Gemini model name says (`gemini-2.5-flash`: 2); 0 when none. */
function geminiMajor(model: string): number {
  return Number(/(?:^|\/)gemini-(\d+)/.exec(model)?.[1] ?? 0);
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
  const { turns, push } = createTurns<GeminiContent["role"], GeminiPart>();
  // Gemini's functionResponse is matched by function name, which OpenAI's tool message
  // lacks: it is found through the id of the assistant tool call it answers.
  const callNames = new Map<string, string>();
  // Ids Gemini issued, echoed on the call and on its response (see `geminiIssued`).
  const echoed = new Set<string>();
  // Where each call stands among all calls, and which call each response answers: without
  // ids, Gemini pairs a batch's responses with its calls by position.
  const callAt = new Map<string, number>();
  let callCount = 0;
  const answers = new Map<GeminiPart, number>();
  visitMessages(messages, provider, {
    system(m, at) {
      for (const text of texts(m.content, at, provider)) system.push({ text });
    },
    user: (m, at) => push("user", userParts(m.content, at, provider)),
    assistant(m, at) {
      const calls = functionCallParts(m.tool_calls, at, callNames, echoed);
      for (const { id } of toolCallsOf(m.tool_calls, at)) callAt.set(id, callCount++);
      push("model", [...texts(m.content, at, provider).map((text) => ({ text })), ...calls]);
    },
    tool(m, at) {
      const part = functionResponsePart(m, at, callNames, echoed, provider);
      answers.set(part, callAt.get(toolCallId(m, at)) ?? 0);
      push("user", [part]);
    },
  });
  return turns.map(({ role, blocks }) => ({ role, parts: inCallOrder(blocks, answers) }));
}

/**
 * A turn's function responses in the order of the calls they answer (OpenAI ties a tool
 * message to its call by id only, in any order); every other part keeps its place.
 */
function inCallOrder(parts: GeminiPart[], answers: ReadonlyMap<GeminiPart, number>): GeminiPart[] {
  const slots: number[] = [];
  for (let i = 0; i < parts.length; i++) if (answers.has(parts[i] as GeminiPart)) slots.push(i);
  if (slots.length < 2) return parts;
  const sorted = slots.map((i) => parts[i] as GeminiPart)
    .sort((a, b) => (answers.get(a) as number) - (answers.get(b) as number));
  const out = parts.slice();
  slots.forEach((slot, k) => (out[slot] = sorted[k] as GeminiPart));
  return out;
}

/**
 * Text (and refusal) content only: system, developer, assistant and tool messages. Empty
 * strings are skipped: Gemini refuses a request with an empty text part.
 */
function texts(content: OpenAIMessage["content"], at: string, provider: string): string[] {
  return contentTexts(content, at, provider).filter((text) => text !== "");
}

function userParts(content: OpenAIMessage["content"], at: string, provider: string): GeminiPart[] {
  return userContent<GeminiPart>(
    content,
    at,
    provider,
    (text) => text === "" ? [] : [{ text }],
    imagePart,
  );
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
  const { url, param } = imageUrl(part, at);
  if (url.startsWith("data:")) {
    const data = base64DataUrl(url);
    if (data === null) {
      throw invalid(
        `"${param}" must be a base64 data URL ("data:image/png;base64,...") or an http(s) URL`,
        param,
      );
    }
    return { inlineData: { mimeType: data.mediaType, data: data.data } };
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
  echoed: Set<string>,
): GeminiPart[] {
  const parts = toolCallsOf(toolCalls, at).map(({ call, id, name, args }) => {
    // A later call with the same id (ids are not unique across providers) wins: a tool
    // message answers the most recent call with its id.
    callNames.set(id, name);
    const functionCall: GeminiFunctionCall = { name, args };
    if (geminiIssued(id)) {
      functionCall.id = id;
      echoed.add(id);
    } else echoed.delete(id);
    const part: { functionCall: GeminiFunctionCall; thoughtSignature?: string } = {
      functionCall,
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

/**
 * Whether a tool-call id is one Gemini issued (`FunctionCall.id`, set by newer models), which
 * must come back on the call and on its `FunctionResponse`. Ids Pilotfish made up for a call
 * without one (`call_` + 24 base-36 characters, see `randomId`) and other providers' ids
 * (OpenAI `call_`, Anthropic `toolu_`, Bedrock `tooluse_`), carried over in a history after
 * a failover, are not Gemini's: Gemini pairs those by name and order, as before ids.
 */
export function geminiIssued(id: string): boolean {
  return !/^(?:call_|toolu_|tooluse_)/.test(id);
}

/** `extra_content.google.thought_signature`, as Gemini's OpenAI-compatible endpoint uses. */
function thoughtSignatureOf(call: Record<string, unknown>): string | null {
  const extra = call.extra_content;
  const google = isObject(extra) ? extra.google : undefined;
  const signature = isObject(google) ? google.thought_signature : undefined;
  return typeof signature === "string" && signature !== "" ? signature : null;
}

/**
 * A tool message -> `functionResponse`. Gemini wants `response` to be a JSON object, with
 * the function's output under `output` unless it is an object itself (FunctionResponse
 * docs), so JSON-object content is passed as parsed and anything else is wrapped.
 */
function functionResponsePart(
  m: OpenAIMessage,
  at: string,
  callNames: ReadonlyMap<string, string>,
  echoed: ReadonlySet<string>,
  provider: string,
): GeminiPart {
  const id = toolCallId(m, at);
  const name = callNames.get(id);
  if (name === undefined) {
    throw invalid(
      `"${at}.tool_call_id" "${id}" does not match a tool call of an earlier ` +
        `assistant message; provider "${provider}" needs it to name the function`,
      `${at}.tool_call_id`,
    );
  }
  const text = typeof m.content === "string" ? m.content : texts(m.content, at, provider).join("");
  const response = toResponseObject(text);
  return { functionResponse: echoed.has(id) ? { id, name, response } : { name, response } };
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
  return functionTools(tools).map(({ at, fn }) => {
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
  const parsed = toolChoiceOf(choice);
  if (parsed === null) return null;
  const config: GeminiToolConfig["functionCallingConfig"] = parsed === "auto"
    ? { mode: "AUTO" }
    : parsed === "none"
    ? { mode: "NONE" }
    : parsed === "required"
    ? { mode: "ANY" }
    : { mode: "ANY", allowedFunctionNames: [parsed.name] };
  if (!hasTools) {
    // "auto" and "none" without tools mean what no tool_choice means; forcing a call does not.
    if (config.mode === "ANY") throw toolChoiceRequiresTools();
    return null;
  }
  return { functionCallingConfig: config };
}

// ---- Generation config ---------------------------------------------------------------------

function toGenerationConfig(
  body: OpenAIChatRequest,
  provider: string,
  model: string,
): GeminiGenerationConfig {
  const out: GeminiGenerationConfig = {};
  const thinking = toThinkingConfig(body, model);
  if (thinking !== null) out.thinkingConfig = thinking;
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
  const maxTokens = maxTokensOf(body);
  if (maxTokens !== null) out.maxOutputTokens = maxTokens;
  const stop = stopSequences(body.stop);
  if (stop.length > 0) out.stopSequences = stop;
  Object.assign(out, toResponseFormat(body.response_format, provider));
  return out;
}

/**
 * `reasoning_effort` as Gemini's thinking, as Google's own OpenAI layer maps it: Gemini 3
 * and later take a `thinkingLevel` (the effort's own name; `none` is `minimal`, the least
 * there is, `xhigh` is `high`), earlier models a `thinkingBudget` (`reasoning.ts`; `none` is 0,
 * thinking off, which 2.5 Pro refuses upstream). A level a model lacks is the upstream's 400.
 */
function toThinkingConfig(
  body: OpenAIChatRequest,
  model: string,
): GeminiThinkingConfig | null {
  const effort = reasoningEffort(body);
  if (effort === null) return null;
  if (geminiMajor(model) >= 3) {
    const level = effort === "none" ? "minimal" : effort === "xhigh" ? "high" : effort;
    return { thinkingLevel: level };
  }
  return { thinkingBudget: thinkingBudget(effort) };
}

/** JSON mode is native in Gemini: a response MIME type, plus a schema for json_schema. */
function toResponseFormat(format: unknown, provider: string): GeminiGenerationConfig {
  const parsed = responseFormatOf(format, provider);
  switch (parsed?.type) {
    case undefined:
    case "text":
      return {};
    case "json_object":
      return { responseMimeType: "application/json" };
    case "json_schema":
      return {
        responseMimeType: "application/json",
        responseSchema: toGeminiSchema(parsed.schema, "response_format.json_schema.schema", {
          ordered: true,
        }),
      };
  }
}
