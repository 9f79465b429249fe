import { GatewayError } from "../../errors.ts";
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
  stopSequences,
  toJsonInstruction,
  toolCallId,
  toolCallsOf,
  toolChoiceOf,
  toolChoiceRequiresTools,
  ToolIds,
  userContent,
  visitMessages,
} from "../shared/openai_request.ts";
import { reasoningEffort } from "../shared/reasoning.ts";
import { claudeThinking, oneSamplingKnob, thinkingTopP } from "../anthropic/thinking.ts";
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
 * `parallel_tool_calls: false` is not among them (see `parallelToolUse`).
 */
const REJECTED: ReadonlyArray<RejectedParam> = [
  // `reasoning_effort` is Claude's extended thinking there, and refused for other models.
  ...OPENAI_ONLY_PARAMS.filter(([param]) => param !== "reasoning_effort"),
];

/** Claude on Bedrock: `anthropic.` or a regional/global profile's `us.anthropic.` etc. */
const isClaude = (model: string) => /(?:^|[.:/])anthropic\./.test(model);

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
  model = "",
): ConverseRequest {
  rejectParams(body, REJECTED, provider);
  const effort = reasoningEffort(body);
  if (effort !== null && effort !== "none" && !isClaude(model)) {
    throw new GatewayError(
      "invalid_request",
      `Parameter "reasoning_effort" is not supported by model "${model}" on provider "${provider}"`,
      { param: "reasoning_effort", provider },
    );
  }

  const system: ConverseTextBlock[] = [];
  const messages = toConverseMessages(body.messages, system, provider);
  if (messages.length === 0) throw noMessages(provider);
  const jsonInstruction = toJsonInstruction(body.response_format, provider);
  if (jsonInstruction !== null) system.push({ text: jsonInstruction });
  const thinking = isClaude(model) ? claudeThinking(body, provider) : null;

  const out: ConverseRequest = { messages };
  if (system.length > 0) out.system = system;
  const inference = toInferenceConfig(body);
  if (thinking !== null) {
    // Claude's extended thinking: its own field, and sampling as it must (thinking.ts).
    out.additionalModelRequestFields = {
      thinking: { type: "enabled", budget_tokens: thinking.budget },
    };
    inference.maxTokens = thinking.maxTokens;
    delete inference.temperature;
    const topP = thinkingTopP(inference.topP);
    if (topP === undefined) delete inference.topP;
  } else {
    if (inference.temperature !== undefined && isClaude(model) && oneSamplingKnob(model)) {
      delete inference.topP;
    }
    const topK = topKFields(body, model, provider);
    if (topK !== null) out.additionalModelRequestFields = topK;
  }
  if (Object.keys(inference).length > 0) out.inferenceConfig = inference;
  // Converse says only `stopReason: "stop_sequence"`; Claude's own answer names the sequence,
  // and Converse returns it when asked by JSON Pointer (ignored when absent).
  if (inference.stopSequences !== undefined && isClaude(model)) {
    out.additionalModelResponseFieldPaths = ["/stop_sequence"];
  }

  const tools = toConverseTools(body.tools);
  const choice = parseToolChoice(body.tool_choice);
  if (tools.length === 0) {
    // "auto" and "none" without tools mean what no tool_choice means; forcing a tool does not.
    if (choice !== null && choice !== "none" && !("auto" in choice)) {
      throw toolChoiceRequiresTools();
    }
    out.messages = withoutToolBlocks(messages);
    return out;
  }
  if (choice === "none") {
    // Converse's ToolChoice is auto | any | tool: there is no "none". Leaving the tools out
    // is how a turn is kept from calling one (the history's tool blocks as text, see below).
    out.messages = withoutToolBlocks(messages);
    return out;
  }
  out.toolConfig = choice === null ? { tools } : { tools, toolChoice: choice };
  if (body.parallel_tool_calls === false && isClaude(model)) {
    out.additionalModelRequestFields = {
      ...out.additionalModelRequestFields,
      tool_choice: parallelToolUse(choice),
    };
  }
  return out;
}

/**
 * `parallel_tool_calls: false` (what Codex-style clients send on every turn). Converse has no
 * switch for it; Claude's own `tool_choice.disable_parallel_tool_use` goes as an additional
 * model request field, which Bedrock merges into Claude's request: a `type` (Anthropic's
 * tool_choice requires one) only when `toolConfig` names no choice, since one beside
 * `toolConfig.toolChoice` is refused as conflicting. Other families have nothing to carry
 * it, so it is dropped as a hint (as for Gemini); without tools it means nothing anyway.
 */
function parallelToolUse(choice: ConverseToolChoice | null): Record<string, unknown> {
  return choice === null
    ? { type: "auto", disable_parallel_tool_use: true }
    : { disable_parallel_tool_use: true };
}

/**
 * A conversation offered no tools, with toolUse/toolResult blocks in its history (an agent's
 * closing "summarise" turn): Bedrock refuses those blocks without a toolConfig ("The
 * toolConfig field must be defined when using toolUse and toolResult content blocks"), and a
 * toolConfig would let the model call a tool the client did not offer. So the blocks become
 * text saying what was called and what came back (a result's images stay images).
 */
function withoutToolBlocks(messages: ConverseMessage[]): ConverseMessage[] {
  if (!messages.some((m) => m.content.some((b) => "toolUse" in b || "toolResult" in b))) {
    return messages;
  }
  const names = new Map<string, string>();
  return messages.map((m) => ({
    role: m.role,
    content: m.content.flatMap((b): ConverseContentBlock[] => {
      if ("toolUse" in b) {
        names.set(b.toolUse.toolUseId, b.toolUse.name);
        return [{
          text: `[called tool ${b.toolUse.name} (${b.toolUse.toolUseId}) with ${
            JSON.stringify(b.toolUse.input)
          }]`,
        }];
      }
      if (!("toolResult" in b)) return [b];
      const r = b.toolResult;
      const name = names.get(r.toolUseId) ?? "a tool";
      const texts: string[] = [];
      const images: ConverseContentBlock[] = [];
      for (const c of r.content) {
        if ("text" in c) texts.push(c.text);
        else if ("json" in c) texts.push(JSON.stringify(c.json));
        else images.push(c);
      }
      const what = r.status === "error" ? "error from" : "result of";
      return [{ text: `[${what} ${name} (${r.toolUseId}): ${texts.join("\n")}]` }, ...images];
    }),
  }));
}

/**
 * `top_k` (what an Anthropic client sends on /v1/messages) has no Converse field: Claude on
 * Bedrock takes it as an additional model request field. Other families name it otherwise or
 * not at all, so there it is refused rather than dropped.
 */
function topKFields(
  body: OpenAIChatRequest,
  model: string,
  provider: string,
): Record<string, unknown> | null {
  const topK = body.top_k;
  if (topK === undefined || topK === null) return null;
  if (isClaude(model)) return { top_k: topK };
  throw new GatewayError(
    "invalid_request",
    `Parameter "top_k" is not supported by model "${model}" on provider "${provider}"`,
    { param: "top_k", provider },
  );
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
  const { turns, push } = createTurns<ConverseMessage["role"], ConverseContentBlock>();
  const ids = new ToolIds();
  visitMessages(messages, provider, {
    system(m, at) {
      const text = textBlocks(m.content, at, provider).map((b) => b.text).join("\n\n");
      if (text !== "") system.push({ text });
    },
    user: (m, at) => push("user", userBlocks(m.content, at, provider)),
    assistant(m, at) {
      push("assistant", [
        ...textBlocks(m.content, at, provider),
        ...toolUseBlocks(m.tool_calls, at, ids),
      ]);
    },
    tool: (m, at) => push("user", [toolResultBlock(m, at, provider, ids)]),
  });
  const out: ConverseMessage[] = turns.map(({ role, blocks }) => ({
    role,
    content: role === "user" ? resultsFirst(blocks) : blocks,
  }));
  // Converse refuses a conversation that opens with the assistant ("A conversation must start
  // with a user message"), one Anthropic's API takes as sent (a chat UI's greeting first). A
  // user turn saying nothing is put before it; blank text is refused, so it is one ".".
  if (out[0]?.role === "assistant") out.unshift({ role: "user", content: [{ text: "." }] });
  return out;
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
  return contentTexts(content, at, provider).flatMap(textBlock);
}

function userBlocks(
  content: OpenAIMessage["content"],
  at: string,
  provider: string,
): (ConverseTextBlock | ConverseImageBlock)[] {
  return userContent<ConverseTextBlock | ConverseImageBlock>(
    content,
    at,
    provider,
    textBlock,
    (part, where) => imageBlock(part, where, provider),
  );
}

/**
 * Bedrock refuses blank text ("The text field in the ContentBlock object at
 * messages.0.content.0 is blank"): empty parts are skipped.
 */
function textBlock(text: string): ConverseTextBlock[] {
  return text.trim() === "" ? [] : [{ text }];
}

/**
 * Converse takes images as bytes (base64 in JSON) or an S3 location, never by URL: a
 * `data:` URL becomes bytes, an `s3://` URL an `s3Location`. An http(s) URL is refused
 * rather than fetched: the sidecar only talks to configured hosts.
 */
function imageBlock(part: OpenAIContentPart, at: string, provider: string): ConverseImageBlock {
  const { url, param } = imageUrl(part, at);
  if (url.startsWith("data:")) {
    const data = base64DataUrl(url);
    if (data === null) {
      throw invalid(`"${param}" must be a base64 data URL ("data:image/png;base64,...")`, param);
    }
    const mediaType = data.mediaType.toLowerCase();
    const format = IMAGE_FORMATS[mediaType];
    if (format === undefined) {
      throw new GatewayError(
        "invalid_request",
        `Image type "${mediaType}" in ${param} is not supported by provider "${provider}" ` +
          `(use png, jpeg, gif or webp)`,
        { param, provider },
      );
    }
    return { image: { format, source: { bytes: data.data } } };
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

function toolUseBlocks(toolCalls: unknown, at: string, ids: ToolIds): ConverseToolUseBlock[] {
  return toolCallsOf(toolCalls, at).map(({ id, name, args }) => ({
    toolUse: { toolUseId: ids.call(id), name, input: args },
  }));
}

/**
 * A tool message becomes a `toolResult` with `text` content: an OpenAI tool result is text,
 * and every Converse model accepts text results, while `json` results are model-dependent.
 * An empty result is sent as one space, since blank text is refused.
 */
function toolResultBlock(
  m: OpenAIMessage,
  at: string,
  provider: string,
  ids: ToolIds,
): ConverseToolResultBlock {
  const id = ids.result(toolCallId(m, at), at);
  const blocks = userBlocks(m.content, at, provider);
  return {
    toolResult: {
      toolUseId: id,
      content: blocks.length > 0 ? blocks : [{ text: " " }],
    },
  };
}

// ---- Tools, inference parameters, JSON mode ------------------------------------------------

function toConverseTools(tools: unknown): ConverseTool[] {
  return functionTools(tools).map(({ fn }) => {
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
  const parsed = toolChoiceOf(choice);
  if (parsed === null) return null;
  if (parsed === "auto") return { auto: {} };
  if (parsed === "required") return { any: {} };
  if (parsed === "none") return "none";
  return { tool: { name: parsed.name } };
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
  const maxTokens = maxTokensOf(body);
  if (maxTokens !== null) out.maxTokens = maxTokens;
  if (typeof body.temperature === "number") out.temperature = Math.min(body.temperature, 1);
  if (typeof body.top_p === "number") out.topP = body.top_p;
  const stop = stopSequences(body.stop);
  if (stop.length > 0) out.stopSequences = stop;
  return out;
}

/*
 * Converse has no JSON mode common to its models, so `response_format` becomes an
 * instruction appended to the system prompt (`toJsonInstruction`): a strong hint, not a
 * guarantee, the same contract as the Anthropic translation and OpenAI's own `json_object`
 * mode.
 */
