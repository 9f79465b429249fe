import { GatewayError } from "../errors.ts";
import type {
  MessagesBlock,
  MessagesImageBlock,
  MessagesMessage,
  MessagesRequest,
  MessagesTextBlock,
  MessagesTool,
  MessagesToolChoice,
  MessagesToolResultBlock,
  MessagesToolUseBlock,
} from "../schema/anthropic.ts";
import {
  markTranslated,
  type OpenAIChatRequest,
  type OpenAIContentPart,
  type OpenAIMessage,
} from "../schema/openai.ts";
import { type MessageOrigin, type PartOrigin, withOrigins } from "./messages_fields.ts";

/*
 * Dropped without complaint, because they tune how the answer is produced rather than what
 * it is, or only mean something to Anthropic: `cache_control` (on blocks, tools, system and
 * top level: prompt caching is automatic or absent elsewhere), `thinking` and
 * `output_config.effort` (how hard to think; the answer keeps its shape), thinking and
 * redacted_thinking blocks in assistant turns (their signatures only verify on Anthropic),
 * `citations`, `service_tier`, `container`, `context_management`, `inference_geo`, `speed`,
 * and fields we do not know. What would change the answer's content is refused by name
 * instead (documents, server tools, MCP servers, file-id images).
 */

/** Top-level parameters that only an Anthropic-format provider can honour. */
const REJECTED: ReadonlyArray<readonly [string, (v: unknown) => boolean]> = [
  ["mcp_servers", (v) => !Array.isArray(v) || v.length > 0],
];

/**
 * A translation's state: with `lossy`, what the target could not honour is left out (and
 * `refused` set) instead of refused with a 400.
 */
interface Ctx {
  readonly provider: string;
  readonly lossy: boolean;
  refused: boolean;
}

/** Refuse (throw `err`), or in a lossy translation note that something was left out. */
function refuse(ctx: Ctx, err: GatewayError): void {
  if (!ctx.lossy) throw err;
  ctx.refused = true;
}

/**
 * Translate an Anthropic Messages request into an OpenAI chat completion request, for a
 * provider that does not speak the Messages API. Pure: no I/O, the input is not mutated.
 * Throws a 400 GatewayError naming the field for what the target cannot honour.
 */
export function toOpenAIChatRequest(req: MessagesRequest, provider: string): OpenAIChatRequest {
  return translate(req, { provider, lossy: false, refused: false });
}

/** The canonical form of a request as the pipeline's stages see it (`toOpenAIChatView`). */
export interface ChatView {
  readonly body: OpenAIChatRequest;
  /** Something was left out that `toOpenAIChatRequest` refuses (a document, a server tool). */
  readonly refused: boolean;
  /**
   * The body does not say everything that can change the answer: a field or block it drops
   * (thinking, effort, context management, fields we do not know) was set.
   */
  readonly exact: boolean;
  /** The body carries all the request says (a stage's rewrite of it loses nothing). */
  readonly complete: boolean;
}

/**
 * The canonical form for stages (limits, plugins, the cache) of a request that may be relayed
 * as is to an Anthropic-format provider: never refused for what only Anthropic honours.
 */
export function toOpenAIChatView(req: MessagesRequest, provider: string): ChatView {
  const ctx: Ctx = { provider, lossy: true, refused: false };
  const body = translate(req, ctx);
  const complete = !ctx.refused && !dropsFields(req);
  // Which stop sequence matched rides on the canonical answer (the choice's `stop_sequence`).
  return { body, refused: ctx.refused, exact: complete, complete };
}

/** Top-level fields whose meaning the canonical form keeps (or that cannot change the answer). */
const KEPT_FIELDS = new Set([
  "model",
  "messages",
  "system",
  "max_tokens",
  "metadata",
  "stream",
  "temperature",
  "top_p",
  "top_k",
  "tools",
  "tool_choice",
  "cache_control",
  "service_tier",
  "inference_geo",
  "x-gateway",
]);

/** The request sets a field or block the canonical form does not carry. */
function dropsFields(req: MessagesRequest): boolean {
  for (const [k, v] of Object.entries(req)) {
    if (v === undefined || v === null || KEPT_FIELDS.has(k)) continue;
    if (k === "thinking" && isObject(v) && v.type === "disabled") continue;
    if (k === "stop_sequences") continue; // carried as `stop`
    if (k === "output_config" && isObject(v) && Object.keys(v).every((f) => f === "format")) {
      continue;
    }
    return true;
  }
  return req.messages.some((m) =>
    Array.isArray(m.content) &&
    m.content.some((b) => b.type === "thinking" || b.type === "redacted_thinking")
  );
}

function translate(req: MessagesRequest, ctx: Ctx): OpenAIChatRequest {
  const provider = ctx.provider;
  for (const [param, isActive] of REJECTED) {
    const v = req[param];
    if (v !== undefined && v !== null && isActive(v)) refuse(ctx, unsupported(param, provider));
  }
  // Anthropic holds a thread's earlier turns; another provider would get only the new one.
  // Its SDKs answer thread_not_found by replaying the whole history under a new thread, which
  // translates whole (`create` asks nothing of a provider).
  const thread = (req as { thread?: unknown }).thread;
  if (isObject(thread) && thread.type === "continue") refuse(ctx, threadNotFound(provider));
  if (req.max_tokens === 0) {
    refuse(
      ctx,
      new GatewayError(
        "invalid_request",
        `"max_tokens": 0 (prompt cache pre-warming) is only supported by Anthropic-format providers, not "${provider}"`,
        { param: "max_tokens", provider },
      ),
    );
  }

  const messages: OpenAIMessage[] = [];
  // Where each message came from: an error on the canonical form names the client's field.
  const origins: MessageOrigin[] = [];
  const system = systemText(req.system);
  if (system !== null) {
    messages.push({ role: "system", content: system });
    origins.push({ kind: "system" });
  }
  req.messages.forEach((m, i) => {
    for (const [message, origin] of toOpenAIMessages(m, `messages[${i}]`, ctx)) {
      messages.push(message);
      origins.push(origin);
    }
  });

  const out: OpenAIChatRequest = { model: req.model, messages, max_tokens: req.max_tokens };
  if (typeof req.temperature === "number") out.temperature = req.temperature;
  if (typeof req.top_p === "number") out.top_p = req.top_p;
  // Not OpenAI's, but vLLM-style servers honour it and OpenAI refuses it by name.
  if (typeof req.top_k === "number") out.top_k = req.top_k;
  if (Array.isArray(req.stop_sequences) && req.stop_sequences.length > 0) {
    out.stop = req.stop_sequences;
  }
  if (req.stream === true) {
    out.stream = true;
    // Without it OpenAI streams carry no usage, and message_delta must report output_tokens.
    out.stream_options = { include_usage: true };
  }
  const user = req.metadata?.user_id;
  if (typeof user === "string" && user !== "") out.user = user;

  const tools = (req.tools ?? []).flatMap((t, i) => toFunctionTool(t, `tools[${i}]`, ctx) ?? []);
  if (tools.length > 0) out.tools = tools;
  if (req.tool_choice !== undefined && req.tool_choice !== null) {
    applyToolChoice(out, req.tool_choice, tools.length > 0, ctx);
  }
  const format = responseFormat(req.output_config, ctx);
  if (format !== null) out.response_format = format;
  return withOrigins(markTranslated(out), origins);
}

// ---- System and messages -------------------------------------------------------------------

function systemText(system: MessagesRequest["system"]): string | null {
  if (system === undefined || system === null) return null;
  const text = typeof system === "string" ? system : system.map((b) => b.text).join("\n\n");
  return text === "" ? null : text;
}

/** A canonical message and where it came from in the client's request. */
type Translated = [OpenAIMessage, MessageOrigin];

/**
 * One Anthropic turn becomes one or more OpenAI messages. A user turn's `tool_result` blocks
 * become `role: "tool"` messages, emitted first: OpenAI wants them right after the assistant
 * message holding the calls, and Anthropic already requires them first in the turn.
 */
function toOpenAIMessages(m: MessagesMessage, at: string, ctx: Ctx): Translated[] {
  const whole: MessageOrigin = { kind: "message", at, parts: [], calls: [] };
  if (typeof m.content === "string") return [[{ role: m.role, content: m.content }, whole]];
  if (m.role === "system") {
    // parseMessagesRequest admits only text blocks in a system turn.
    return [[{
      role: "system",
      content: (m.content as MessagesTextBlock[]).map((b) => b.text).join("\n\n"),
    }, whole]];
  }
  return m.role === "assistant"
    ? [assistantMessage(m.content, at, ctx)]
    : userMessages(m.content, at, ctx);
}

function assistantMessage(blocks: MessagesBlock[], at: string, ctx: Ctx): Translated {
  let text = "";
  const toolCalls: unknown[] = [];
  const calls: string[] = [];
  blocks.forEach((block, j) => {
    switch (block.type) {
      case "text":
        text += (block as MessagesTextBlock).text;
        return;
      case "tool_use": {
        const use = block as MessagesToolUseBlock;
        calls.push(`${at}.content[${j}]`);
        toolCalls.push({
          id: use.id,
          type: "function",
          function: { name: use.name, arguments: JSON.stringify(use.input) },
        });
        return;
      }
      case "thinking":
      case "redacted_thinking":
        return;
      default:
        refuse(ctx, unsupportedBlock(block, `${at}.content[${j}]`, ctx.provider));
    }
  });
  const out: OpenAIMessage = {
    role: "assistant",
    // OpenAI's own shape: null content beside tool calls, a string otherwise.
    content: text === "" && toolCalls.length > 0 ? null : text,
  };
  if (toolCalls.length > 0) out.tool_calls = toolCalls;
  return [out, { kind: "message", at, parts: [], calls }];
}

function userMessages(blocks: MessagesBlock[], at: string, ctx: Ctx): Translated[] {
  const tools: Translated[] = [];
  const parts: OpenAIContentPart[] = [];
  const from: PartOrigin[] = [];
  blocks.forEach((block, j) => {
    const where = `${at}.content[${j}]`;
    switch (block.type) {
      case "text":
        parts.push({ type: "text", text: (block as MessagesTextBlock).text });
        from.push({ at: where });
        return;
      case "image": {
        const part = imagePart(block as MessagesImageBlock, where, ctx);
        if (part !== null) {
          parts.push(part);
          from.push(imageOrigin(block as MessagesImageBlock, where));
        }
        return;
      }
      case "tool_result": {
        const { message, images } = toolMessage(block as MessagesToolResultBlock, where, ctx);
        tools.push([message, { kind: "tool_result", at: where, message: at }]);
        // OpenAI tool messages carry text only; a result's images follow in the user turn.
        for (const image of images) {
          parts.push(image.part);
          from.push(image.from);
        }
        return;
      }
      default:
        refuse(ctx, unsupportedBlock(block, where, ctx.provider));
        // Left out of a lossy view, its text still is what stages (a guard) must read.
        for (const text of blockTexts(block)) {
          parts.push({ type: "text", text });
          from.push({ at: where });
        }
    }
  });
  if (parts.length === 0) return tools;
  const only = parts.length === 1 ? parts[0] : undefined;
  // A lone text part as a plain string: the shape every OpenAI-compatible server accepts.
  const content = only?.type === "text" ? only.text as string : parts;
  return [...tools, [{ role: "user", content }, { kind: "message", at, parts: from, calls: [] }]];
}

/** Where an image part's URL came from: its source's `url`, or its base64 `data`. */
function imageOrigin(block: MessagesImageBlock, at: string): PartOrigin {
  return { at, url: block.source.type === "url" ? ".source.url" : ".source.data" };
}

function toolMessage(
  block: MessagesToolResultBlock,
  at: string,
  ctx: Ctx,
): { message: OpenAIMessage; images: { part: OpenAIContentPart; from: PartOrigin }[] } {
  const texts: string[] = [];
  const images: { part: OpenAIContentPart; from: PartOrigin }[] = [];
  if (typeof block.content === "string") texts.push(block.content);
  else {
    (block.content ?? []).forEach((inner, k) => {
      const where = `${at}.content[${k}]`;
      if (inner.type === "text") texts.push((inner as MessagesTextBlock).text);
      else if (inner.type === "image") {
        const part = imagePart(inner as MessagesImageBlock, where, ctx);
        if (part !== null) {
          images.push({ part, from: imageOrigin(inner as MessagesImageBlock, where) });
        }
      } else {
        refuse(ctx, unsupportedBlock(inner, where, ctx.provider));
        texts.push(...blockTexts(inner));
      }
    });
  }
  const text = texts.join("\n");
  // OpenAI has no error flag on tool results; the model still needs to know it failed.
  const content = block.is_error === true ? `Error: ${text}` : text;
  return { message: { role: "tool", tool_call_id: block.tool_use_id, content }, images };
}

/** base64 sources become data: URLs, url sources stay URLs (the provider fetches them). */
function imagePart(
  block: MessagesImageBlock,
  at: string,
  ctx: Ctx,
): OpenAIContentPart | null {
  const source = block.source;
  if (source.type === "base64") {
    return {
      type: "image_url",
      image_url: { url: `data:${source.media_type};base64,${source.data}` },
    };
  }
  if (source.type === "url") return { type: "image_url", image_url: { url: source.url } };
  refuse(
    ctx,
    new GatewayError(
      "invalid_request",
      `Image source type "${source.type}" in ${at} is not supported by provider "${ctx.provider}"`,
      { param: `${at}.source.type`, provider: ctx.provider },
    ),
  );
  return null;
}

// ---- Tools and output format ---------------------------------------------------------------

function toFunctionTool(tool: MessagesTool, at: string, ctx: Ctx): unknown {
  // Server tools (web search, code execution, ...) run inside Anthropic's API; elsewhere
  // nothing would run them, so the model would answer without what the caller asked for.
  if (tool.type !== undefined && tool.type !== null && tool.type !== "custom") {
    refuse(
      ctx,
      new GatewayError(
        "invalid_request",
        `Tool type "${tool.type}" in ${at} is not supported by provider "${ctx.provider}"`,
        { param: `${at}.type`, provider: ctx.provider },
      ),
    );
    return null;
  }
  const fn: Record<string, unknown> = { name: tool.name, parameters: tool.input_schema };
  if (typeof tool.description === "string") fn.description = tool.description;
  return { type: "function", function: fn };
}

function applyToolChoice(
  out: OpenAIChatRequest,
  choice: MessagesToolChoice,
  hasTools: boolean,
  ctx: Ctx,
): void {
  if (!hasTools) {
    // "auto" and "none" without tools mean what no tool_choice means; forcing a tool does not
    // (a lossy translation may have left the server tools it forces out).
    if ((choice.type === "any" || choice.type === "tool") && !ctx.refused) {
      throw new GatewayError("invalid_request", `"tool_choice" requires "tools"`, {
        param: "tool_choice",
      });
    }
    return;
  }
  switch (choice.type) {
    case "auto":
      out.tool_choice = "auto";
      break;
    case "any":
      out.tool_choice = "required";
      break;
    case "none":
      out.tool_choice = "none";
      return;
    case "tool":
      out.tool_choice = { type: "function", function: { name: choice.name } };
      break;
  }
  if (choice.disable_parallel_tool_use === true) out.parallel_tool_calls = false;
}

/**
 * Structured outputs (`output_config.format: {type: "json_schema", schema}`) become OpenAI's
 * `response_format`. `strict` is left off: OpenAI's strict mode refuses schemas that
 * Anthropic accepts (every property required), and a refused request helps nobody.
 */
function responseFormat(config: unknown, ctx: Ctx): unknown {
  if (!isObject(config) || !isObject(config.format)) return null;
  const format = config.format;
  if (format.type !== "json_schema" || !isObject(format.schema)) {
    refuse(
      ctx,
      new GatewayError(
        "invalid_request",
        `"output_config.format" must be {"type":"json_schema","schema":{...}}`,
        { param: "output_config.format" },
      ),
    );
    return null;
  }
  return { type: "json_schema", json_schema: { name: "response", schema: format.schema } };
}

// ---- Helpers -------------------------------------------------------------------------------

/**
 * The text a block without an OpenAI counterpart carries (a text document's `data`, a search
 * result's or a content document's text blocks, titles and context), in order.
 */
function blockTexts(block: unknown, out: string[] = [], depth = 0): string[] {
  if (depth > 8 || block === null || typeof block !== "object") return out;
  if (Array.isArray(block)) {
    for (const b of block) blockTexts(b, out, depth + 1);
    return out;
  }
  const b = block as Record<string, unknown>;
  for (const key of ["title", "context", "text"]) {
    if (typeof b[key] === "string" && b[key] !== "") out.push(b[key] as string);
  }
  if (
    typeof b.data === "string" && typeof b.media_type === "string" &&
    b.media_type.startsWith("text/")
  ) {
    out.push(b.data);
  }
  for (const key of ["source", "content"]) blockTexts(b[key], out, depth + 1);
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function threadNotFound(provider: string): GatewayError {
  return new GatewayError(
    "not_found",
    `Thread not found: provider "${provider}" keeps no thread; send the whole conversation again`,
    { param: "thread", provider, details: { error_code: "thread_not_found" } },
  );
}

function unsupported(param: string, provider: string): GatewayError {
  return new GatewayError(
    "invalid_request",
    `Parameter "${param}" is not supported by provider "${provider}"`,
    { param, provider },
  );
}

/**
 * Documents, search results, server-tool blocks and block types added later have no OpenAI
 * counterpart. Refused by name rather than dropped: a model that never saw the PDF would
 * still answer as if it had.
 */
function unsupportedBlock(block: MessagesBlock, at: string, provider: string): GatewayError {
  return new GatewayError(
    "invalid_request",
    `Content block type "${block.type}" in ${at} is not supported by provider "${provider}"`,
    { param: `${at}.type`, provider },
  );
}
