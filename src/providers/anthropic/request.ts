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
import { claudeThinking, oneSamplingKnob, thinkingTopP } from "./thinking.ts";

/**
 * Anthropic requires `max_tokens`; OpenAI does not. 4096 is within every current Claude
 * model's output limit, so a request without one never fails for asking too much.
 */
export const DEFAULT_MAX_TOKENS = 4096;

/*
 * OpenAI parameters with no Anthropic equivalent (`OPENAI_ONLY_PARAMS`, all of them) are
 * refused with a 400 naming the parameter rather than silently ignored: a caller asking for
 * `n: 3` or logprobs must not get a plausible answer that lacks them.
 */

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
  rejectParams(body, REJECTED, provider);

  const system: string[] = [];
  const messages = toAnthropicMessages(body.messages, system, provider);
  if (messages.length === 0) throw noMessages(provider);
  const jsonInstruction = toJsonInstruction(body.response_format, provider);
  if (jsonInstruction !== null) system.push(jsonInstruction);
  const thinking = claudeThinking(body, provider);

  const out: AnthropicRequest = {
    model,
    messages,
    max_tokens: thinking?.maxTokens ?? maxTokensOf(body) ?? DEFAULT_MAX_TOKENS,
  };
  if (system.length > 0) out.system = system.join("\n\n");
  if (thinking !== null) {
    out.thinking = { type: "enabled", budget_tokens: thinking.budget };
    // Extended thinking samples as it must: only a top_p of 0.95 or more is kept.
    const topP = thinkingTopP(body.top_p);
    if (topP !== undefined) out.top_p = topP;
  } else {
    // OpenAI accepts 0..2, Anthropic 0..1. Clamping (not halving) keeps the common values
    // (0, 0.2, 0.7, 1) meaning the same on both; anything hotter becomes Anthropic's hottest.
    if (typeof body.temperature === "number") out.temperature = Math.min(body.temperature, 1);
    if (
      typeof body.top_p === "number" && !(out.temperature !== undefined && oneSamplingKnob(model))
    ) out.top_p = body.top_p;
    // Not OpenAI, but vLLM-style clients send it and Anthropic has it.
    if (typeof body.top_k === "number") out.top_k = body.top_k;
  }
  const stop = stopSequences(body.stop, { keepEmpty: true });
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
  else out.messages = withoutToolBlocks(messages);
  const choice = toToolChoice(body.tool_choice, tools.length > 0, body.parallel_tool_calls);
  if (choice !== null) out.tool_choice = choice;
  return out;
}

/** OpenAI's refused parameters but `reasoning_effort`, which becomes extended thinking. */
const REJECTED = OPENAI_ONLY_PARAMS.filter(([param]) => param !== "reasoning_effort");

// ---- Messages ------------------------------------------------------------------------------

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
  const { turns, push } = createTurns<"user" | "assistant", AnthropicContentBlock>();
  const ids = new ToolIds();
  visitMessages(messages, provider, {
    system(m, at) {
      const text = textBlocks(m.content, at, provider).map((b) => b.text).join("\n\n");
      if (text !== "") system.push(text);
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
  return turns.map(({ role, blocks }) => {
    // "In the user message containing tool results, the tool_result blocks must come FIRST
    // in the content array" (tool use docs); a merged turn could otherwise put text first.
    const ordered = role === "user" ? resultsFirst(blocks) : blocks;
    const only = ordered.length === 1 ? ordered[0] : undefined;
    return { role, content: only?.type === "text" ? only.text : ordered };
  });
}

/**
 * A conversation offered no tools, with tool_use/tool_result blocks in its history (an agent's
 * closing "summarise" turn): Anthropic refuses those blocks without `tools` ("Requests which
 * include `tool_use` or `tool_result` blocks must define tools"), and defining tools would let
 * the model call one the client did not offer. So the blocks become text saying what was
 * called and what came back (a result's images stay images), as for Bedrock.
 */
function withoutToolBlocks(messages: AnthropicMessage[]): AnthropicMessage[] {
  const hasToolBlocks = (m: AnthropicMessage) =>
    typeof m.content !== "string" &&
    m.content.some((b) => b.type === "tool_use" || b.type === "tool_result");
  if (!messages.some(hasToolBlocks)) return messages;
  const names = new Map<string, string>();
  return messages.map((m) => {
    if (!hasToolBlocks(m)) return m;
    const content = (m.content as AnthropicContentBlock[]).flatMap(
      (b): AnthropicContentBlock[] => {
        if (b.type === "tool_use") {
          names.set(b.id, b.name);
          return [{
            type: "text",
            text: `[called tool ${b.name} (${b.id}) with ${JSON.stringify(b.input)}]`,
          }];
        }
        if (b.type !== "tool_result") return [b];
        const parts = typeof b.content === "string"
          ? [{ type: "text" as const, text: b.content }]
          : b.content;
        const texts = parts.flatMap((p) => p.type === "text" ? [p.text] : []);
        const images = parts.filter((p) => p.type !== "text");
        const name = names.get(b.tool_use_id) ?? "a tool";
        return [
          { type: "text", text: `[result of ${name} (${b.tool_use_id}): ${texts.join("\n")}]` },
          ...images,
        ];
      },
    );
    return { role: m.role, content };
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
  return contentTexts(content, at, provider).flatMap(textBlock);
}

function userBlocks(
  content: OpenAIMessage["content"],
  at: string,
  provider: string,
): (AnthropicTextBlock | AnthropicImageBlock)[] {
  return userContent<AnthropicTextBlock | AnthropicImageBlock>(
    content,
    at,
    provider,
    textBlock,
    imageBlock,
  );
}

/** Anthropic refuses empty text blocks ("text content blocks must be non-empty"): skip them. */
function textBlock(text: string): AnthropicTextBlock[] {
  return text === "" ? [] : [{ type: "text", text }];
}

/**
 * `data:` URLs become base64 sources, http(s) URLs URL sources (Anthropic fetches those
 * itself). Anthropic accepts image/jpeg, png, gif and webp; other media types are left for
 * the upstream to refuse with its own message.
 */
function imageBlock(part: OpenAIContentPart, at: string): AnthropicImageBlock {
  const { url, param } = imageUrl(part, at);
  if (url.startsWith("data:")) {
    const data = base64DataUrl(url);
    if (data === null) {
      throw invalid(
        `"${param}" must be a base64 data URL ("data:image/png;base64,...") or an http(s) URL`,
        param,
      );
    }
    return {
      type: "image",
      source: { type: "base64", media_type: data.mediaType, data: data.data },
    };
  }
  if (/^https?:\/\//i.test(url)) return { type: "image", source: { type: "url", url } };
  throw invalid(`"${param}" must be a data: URL or an http(s) URL`, param);
}

function toolUseBlocks(toolCalls: unknown, at: string, ids: ToolIds): AnthropicContentBlock[] {
  return toolCallsOf(toolCalls, at).map(({ id, name, args }) => ({
    type: "tool_use",
    id: ids.call(id),
    name,
    input: args,
  }));
}

function toolResultBlock(
  m: OpenAIMessage,
  at: string,
  provider: string,
  ids: ToolIds,
): AnthropicToolResultBlock {
  const id = ids.result(toolCallId(m, at), at);
  const content = typeof m.content === "string" ? m.content : userBlocks(m.content, at, provider);
  return { type: "tool_result", tool_use_id: id, content };
}

// ---- Tools, stop, limits, JSON mode --------------------------------------------------------

function toAnthropicTools(tools: unknown): AnthropicTool[] {
  return functionTools(tools).map(({ fn }) => {
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
      throw toolChoiceRequiresTools();
    }
    return null;
  }
  if (parallel !== false || out?.type === "none") return out;
  return { ...(out ?? { type: "auto" }), disable_parallel_tool_use: true };
}

/** null when absent: Anthropic's default is auto, so nothing is sent that was not asked. */
function parseToolChoice(choice: unknown): AnthropicToolChoice | null {
  const parsed = toolChoiceOf(choice);
  if (parsed === null) return null;
  if (parsed === "auto") return { type: "auto" };
  if (parsed === "required") return { type: "any" };
  if (parsed === "none") return { type: "none" };
  return { type: "tool", name: parsed.name };
}

/*
 * Anthropic has no `response_format` in `2023-06-01`, so JSON mode becomes an instruction
 * appended to the system prompt (`toJsonInstruction`).
 */
