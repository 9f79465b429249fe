import { GatewayError } from "../errors.ts";
import type {
  MessagesResponse,
  MessagesResponseBlock,
  MessagesStopReason,
  MessagesUsage,
} from "../schema/anthropic.ts";
import type { OpenAIChatChunk } from "../schema/openai.ts";
import { createSseDataStream, encodeSseEvent } from "../streaming/mod.ts";

/**
 * OpenAI `finish_reason` -> Anthropic `stop_reason`. OpenAI does not say whether a stop
 * sequence matched, so "stop" is `end_turn`; the legacy `function_call` is a tool call.
 */
const STOP_REASON: Readonly<Record<string, MessagesStopReason>> = {
  stop: "end_turn",
  length: "max_tokens",
  tool_calls: "tool_use",
  function_call: "tool_use",
  content_filter: "refusal",
};

/**
 * The stop sequence that ended a "stop" choice: ours (`stop_sequence`, null when the upstream
 * did not say which), or vLLM's `stop_reason` when it is the matched string; undefined when
 * the answer did not end on a stop sequence.
 */
export function stopSequenceOf(choice: Record<string, unknown>): string | null | undefined {
  if (choice.finish_reason !== "stop") return undefined;
  const ours = choice.stop_sequence;
  if (typeof ours === "string" || ours === null) return ours;
  return typeof choice.stop_reason === "string" ? choice.stop_reason : undefined;
}

/**
 * Some OpenAI-compatible servers end a tool-calling turn with "stop". Anthropic clients
 * (agent loops, Claude Code) run the tools only when `stop_reason` is `tool_use`, so a turn
 * that holds tool calls reports that.
 */
export function toStopReason(finish: unknown, hasToolUse: boolean): MessagesStopReason {
  const mapped = typeof finish === "string" ? STOP_REASON[finish] ?? "end_turn" : "end_turn";
  return hasToolUse && mapped === "end_turn" ? "tool_use" : mapped;
}

/**
 * Canonical (OpenAI) usage -> Anthropic usage. `prompt_tokens` includes cache reads and
 * writes while Anthropic's `input_tokens` excludes both, so they move to
 * `cache_read_input_tokens` / `cache_creation_input_tokens` (the inverse of the Anthropic
 * adapter's `toOpenAIUsage`). OpenAI itself reports no cache writes; a cached Anthropic or
 * Bedrock answer carries them in `prompt_tokens_details.cache_write_tokens`.
 */
export function toMessagesUsage(usage: unknown): MessagesUsage {
  const u = isObject(usage) ? usage : {};
  const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) && v > 0 ? v : 0);
  const details = isObject(u.prompt_tokens_details) ? u.prompt_tokens_details : {};
  const prompt = n(u.prompt_tokens);
  const cached = Math.min(n(details.cached_tokens), prompt);
  const writes = Math.min(n(details.cache_write_tokens), prompt - cached);
  return {
    input_tokens: prompt - cached - writes,
    output_tokens: n(u.completion_tokens),
    cache_creation_input_tokens: writes,
    cache_read_input_tokens: cached,
  };
}

function startUsage(ctx: MessagesStreamContext): MessagesUsage {
  const usage = { ...toMessagesUsage(ctx.reported?.()), output_tokens: 0 };
  if (usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens > 0) {
    return usage;
  }
  return { ...usage, input_tokens: ctx.estimatedInput?.() ?? 0 };
}

/**
 * `chatcmpl-abc` -> `msg_abc`: Anthropic SDKs and logs expect the `msg_` prefix. An id that
 * came from Anthropic (`chatcmpl-msg_01...`, a cached or translated Anthropic answer) is given
 * back as it was.
 */
function messageId(id: unknown): string {
  const raw = typeof id === "string" && id !== "" ? id.replace(/^chatcmpl-/, "") : "";
  if (raw.startsWith("msg_")) return raw;
  return `msg_${raw !== "" ? raw : crypto.randomUUID().replaceAll("-", "")}`;
}

function toolUseId(id: unknown): string {
  return typeof id === "string" && id !== ""
    ? id
    : `toolu_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
}

// ---- JSON ----------------------------------------------------------------------------------

/**
 * Translate a non-streaming OpenAI `chat.completion` into an Anthropic message: text first,
 * then one `tool_use` block per tool call with its arguments parsed. `model` is the fallback
 * when the body does not name one. Throws 502 for a body that is not a chat completion or
 * tool arguments that are not a JSON object (Anthropic's `input` must be one).
 */
export function toMessagesResponse(
  json: unknown,
  model: string,
  provider: string,
): MessagesResponse {
  const choice = isObject(json) && Array.isArray(json.choices) ? json.choices[0] : undefined;
  const message = isObject(choice) ? choice.message : undefined;
  if (!isObject(json) || !isObject(choice) || !isObject(message)) {
    throw new GatewayError(
      "upstream_error",
      `Provider "${provider}" returned a body that is not a chat completion`,
      { provider },
    );
  }
  const content: MessagesResponseBlock[] = [];
  const answered = messageText(message.content);
  // OpenAI's refusal comes in its own field with finish_reason "stop": Anthropic's is text
  // with stop_reason "refusal".
  const refusal = answered === "" && typeof message.refusal === "string" ? message.refusal : "";
  const text = answered || refusal;
  // Anthropic refuses empty text blocks when the turn is sent back, so none is made.
  if (text !== "") content.push({ type: "text", text });
  const calls = Array.isArray(message.tool_calls) ? message.tool_calls : [];
  for (const call of calls) {
    const fn = isObject(call) && isObject(call.function) ? call.function : undefined;
    if (!isObject(call) || fn === undefined || typeof fn.name !== "string") continue;
    content.push({
      type: "tool_use",
      id: toolUseId(call.id),
      name: fn.name,
      input: toolInput(fn.arguments, fn.name, provider),
    });
  }
  const hasToolUse = content.some((b) => b.type === "tool_use");
  const stop = hasToolUse ? undefined : stopSequenceOf(choice);
  return {
    id: messageId(json.id),
    type: "message",
    role: "assistant",
    model: typeof json.model === "string" && json.model !== "" ? json.model : model,
    content,
    stop_reason: refusal !== "" && !hasToolUse
      ? "refusal"
      : stop !== undefined
      ? "stop_sequence"
      : toStopReason(choice.finish_reason, hasToolUse),
    stop_sequence: refusal === "" ? stop ?? null : null,
    usage: toMessagesUsage(json.usage),
  };
}

/** OpenAI content: a string, or (some compatible servers) an array of text parts. */
function messageText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.map((p) => (isObject(p) && typeof p.text === "string" ? p.text : "")).join("");
}

function toolInput(args: unknown, name: string, provider: string): Record<string, unknown> {
  if (args === undefined || args === null || args === "") return {};
  if (isObject(args)) return args;
  if (typeof args === "string") {
    try {
      const parsed: unknown = JSON.parse(args);
      if (isObject(parsed)) return parsed;
    } catch {
      // reported below
    }
  }
  throw new GatewayError(
    "upstream_error",
    `Provider "${provider}" returned arguments for tool "${name}" that are not a JSON object`,
    { provider },
  );
}

// ---- Stream --------------------------------------------------------------------------------

export interface MessagesStreamContext {
  /** Used when the upstream chunks do not name the model. */
  readonly model: string;
  readonly provider: string;
  /** Applied to upstream error messages before they reach the client. */
  readonly redact: (text: string) => string;
  /**
   * The input counts the upstream has reported by now, for `message_start` (an Anthropic or
   * Gemini upstream counts the input before any content; an OpenAI one only at the end).
   */
  readonly reported?: () => unknown;
  /**
   * The input's estimated tokens, for a `message_start` before the upstream counted it: some
   * clients (LangChain's ChatAnthropic) read the input count there only, as Anthropic sends it.
   */
  readonly estimatedInput?: () => number;
  /**
   * The answer's usage as billed once its chunks have all passed (the upstream's counts, or
   * the estimate from the content when it sent none), for a `message_delta` the upstream
   * gave no counts for.
   */
  readonly billed?: () => unknown;
}

/**
 * OpenAI SSE bytes -> Anthropic SSE bytes, one event at a time: UTF-8 decoding (split-safe),
 * SSE framing, then the per-request translation. Cancelling the result cancels `body`.
 */
export function toMessagesStream(
  body: ReadableStream<Uint8Array>,
  ctx: MessagesStreamContext,
): ReadableStream<Uint8Array> {
  return body
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(createSseDataStream())
    .pipeThrough(createMessagesStreamTransformer(ctx));
}

/**
 * Typed OpenAI chunks -> Anthropic SSE bytes: the `/v1/messages` edge encoder for answers
 * that are not Anthropic's own. The chunks' clean end is the answer's end (their source
 * vouches for completeness). Cancelling the result cancels `chunks`.
 */
export function encodeMessagesStream(
  chunks: ReadableStream<OpenAIChatChunk>,
  ctx: MessagesStreamContext,
): ReadableStream<Uint8Array> {
  return chunks.pipeThrough(createMessagesStreamTransformer(ctx, true));
}

/** The content block being written: Anthropic blocks are sequential, one open at a time. */
interface OpenBlock {
  readonly index: number;
  readonly kind: "text" | "tool_use";
  /** A tool call's arguments so far: complete JSON says no fragment of it can follow. */
  args?: string;
}

/** A tool call that started while another call's arguments were still incomplete. */
interface HeldCall {
  readonly block: Record<string, unknown>;
  args: string;
}

/**
 * Semantics: OpenAI `chat.completion.chunk` payloads -> Anthropic stream events, with the
 * `event:` line matching each payload's `type` as Anthropic sends it:
 * `message_start`, then per block `content_block_start` / `content_block_delta` (text_delta,
 * input_json_delta carrying the OpenAI argument fragments as they come) /
 * `content_block_stop`, then `message_delta` (stop_reason, usage) and `message_stop`.
 * State (block indexes, tool-call map, usage) lives in this closure, one per request.
 *
 * `message_start` is held back until there is content to send, so an upstream that fails
 * before its first token fails the stream before its first byte, while routing can still
 * fail over. An in-stream OpenAI error, a payload that is not JSON, or an SSE stream that
 * ends before `[DONE]` without a finish reason errors the stream with a GatewayError, which
 * the route renders as `event: error`. Input is SSE `data:` payloads, or typed chunks.
 */
export function createMessagesStreamTransformer(
  ctx: MessagesStreamContext,
  typedInput = false,
): TransformStream<string | OpenAIChatChunk, Uint8Array> {
  // Typed chunks come from a decoder that vouches for their end: even none (a stage dropped
  // every one) is a complete answer.
  let typed = typedInput;
  let id: string | null = null;
  let model = ctx.model;
  let started = false;
  let done = false;
  let nextIndex = 0;
  let open: OpenBlock | null = null;
  let finish: string | null = null;
  let stopSequence: string | null | undefined;
  let usage: unknown = null;
  let hasToolUse = false;
  /** The model answered with content, or only refused (OpenAI's `refusal` deltas). */
  let answered = false;
  let refusedText = false;
  /** OpenAI tool_calls index -> Anthropic content block index, once its block has started. */
  const toolBlocks = new Map<number, number>();
  /**
   * Calls held back, in the order they started: a server that interleaves calls' fragments
   * would otherwise send a fragment after its block's `content_block_stop`.
   */
  const held = new Map<number, HeldCall>();

  type Controller = TransformStreamDefaultController<Uint8Array>;
  const emit = (c: Controller, type: string, payload: Record<string, unknown>) =>
    c.enqueue(encodeSseEvent(type, { type, ...payload }));
  const start = (c: Controller) => {
    if (started) return;
    started = true;
    emit(c, "message_start", {
      message: {
        id: id ?? messageId(null),
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        // The input as counted so far, else estimated (OpenAI counts only at the end);
        // message_delta carries the final counts.
        usage: startUsage(ctx),
      },
    });
  };
  const close = (c: Controller) => {
    if (open === null) return;
    emit(c, "content_block_stop", { index: open.index });
    open = null;
  };
  const openBlock = (c: Controller, kind: OpenBlock["kind"], block: Record<string, unknown>) => {
    start(c);
    close(c);
    const index = nextIndex++;
    emit(c, "content_block_start", { index, content_block: block });
    open = { index, kind };
    return index;
  };
  const text = (c: Controller, value: string) => {
    if (open?.kind !== "text") openBlock(c, "text", { type: "text", text: "" });
    emit(c, "content_block_delta", {
      index: (open as OpenBlock).index,
      delta: { type: "text_delta", text: value },
    });
  };
  const argsDelta = (c: Controller, index: number, json: string) =>
    emit(c, "content_block_delta", {
      index,
      delta: { type: "input_json_delta", partial_json: json },
    });
  const openTool = (c: Controller, key: number, block: Record<string, unknown>, args = "") => {
    const index = openBlock(c, "tool_use", block);
    (open as OpenBlock).args = args;
    toolBlocks.set(key, index);
    if (args !== "") argsDelta(c, index, args);
  };
  /** The open call's arguments are complete: the calls held behind it may have their turn. */
  const release = (c: Controller, all = false) => {
    for (const [key, call] of held) {
      if (!all && open?.kind === "tool_use" && !completeJson(open.args ?? "")) return;
      held.delete(key);
      openTool(c, key, call.block, call.args);
    }
  };
  const toolCall = (c: Controller, call: Record<string, unknown>) => {
    const fn = isObject(call.function) ? call.function : {};
    const starts = typeof call.id === "string" || typeof fn.name === "string";
    const count = toolBlocks.size + held.size;
    // Some compatible servers omit `index`; a fragment that names a call starts a new one.
    const key = typeof call.index === "number"
      ? call.index
      : starts
      ? count
      : Math.max(0, count - 1);
    const args = typeof fn.arguments === "string" ? fn.arguments : "";
    const index = toolBlocks.get(key);
    if (index !== undefined) {
      if (args === "") return;
      // A fragment of the call being written. A call is stopped for the next call only once
      // its arguments are complete JSON, so no fragment follows its stop (text cutting into
      // a call's fragments would, and no server sends that).
      if (open?.index === index) open.args += args;
      argsDelta(c, index, args);
      if (held.size > 0) release(c);
      return;
    }
    const waiting = held.get(key);
    if (waiting !== undefined) {
      waiting.args += args;
      return;
    }
    hasToolUse = true;
    const block = {
      type: "tool_use",
      id: toolUseId(call.id),
      name: typeof fn.name === "string" ? fn.name : "",
      input: {},
    };
    // OpenAI finishes one call before it starts the next. A server that interleaves them
    // starts a call while the open one's arguments are incomplete: that call waits its turn.
    if (held.size > 0 || (open?.kind === "tool_use" && !completeJson(open.args ?? ""))) {
      held.set(key, { block, args });
      return;
    }
    openTool(c, key, block, args);
  };
  const end = (c: Controller) => {
    const refused = refusedText && !answered;
    done = true;
    release(c, true);
    start(c);
    close(c);
    // No counts from the upstream (an OpenAI stream not asked for them, a server that never
    // sends them): the input as estimated at the start and the output as billed, not zeros.
    const u = usage !== null ? toMessagesUsage(usage) : {
      ...startUsage(ctx),
      output_tokens: toMessagesUsage(ctx.billed?.()).output_tokens,
    };
    const stop = hasToolUse || refused ? undefined : stopSequence;
    emit(c, "message_delta", {
      delta: {
        stop_reason: refused && !hasToolUse
          ? "refusal"
          : stop !== undefined
          ? "stop_sequence"
          : toStopReason(finish, hasToolUse),
        stop_sequence: stop ?? null,
      },
      // Cumulative totals, as newer API versions send them: input counts arrive only now.
      usage: {
        input_tokens: u.input_tokens,
        cache_creation_input_tokens: u.cache_creation_input_tokens,
        cache_read_input_tokens: u.cache_read_input_tokens,
        output_tokens: u.output_tokens,
      },
    });
    emit(c, "message_stop", {});
  };
  const broken = (why: string) =>
    new GatewayError("upstream_error", `Stream from provider "${ctx.provider}" ${why}`, {
      provider: ctx.provider,
    });

  return new TransformStream<string | OpenAIChatChunk, Uint8Array>({
    transform(data, c) {
      if (done) return;
      let chunk: unknown;
      if (typeof data !== "string") {
        typed = true;
        chunk = data;
      } else {
        if (data === "[DONE]") return end(c);
        try {
          chunk = JSON.parse(data);
        } catch {
          throw broken("sent an event that is not JSON");
        }
      }
      if (!isObject(chunk)) throw broken("sent an event that is not a JSON object");
      if (chunk.error !== undefined && chunk.error !== null) throw streamError(chunk.error, ctx);
      if (id === null && typeof chunk.id === "string") id = messageId(chunk.id);
      if (typeof chunk.model === "string" && chunk.model !== "") model = chunk.model;
      if (isObject(chunk.usage)) usage = chunk.usage;
      const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : undefined;
      if (!isObject(choice)) return;
      const delta = isObject(choice.delta) ? choice.delta : {};
      if (typeof delta.content === "string" && delta.content !== "") {
        answered = true;
        text(c, delta.content);
      }
      // A refusal is what the model said instead of an answer: text, and stop_reason "refusal".
      if (typeof delta.refusal === "string" && delta.refusal !== "") {
        refusedText = true;
        text(c, delta.refusal);
      }
      if (Array.isArray(delta.tool_calls)) {
        for (const call of delta.tool_calls) if (isObject(call)) toolCall(c, call);
      }
      if (typeof choice.finish_reason === "string") {
        finish = choice.finish_reason;
        stopSequence = stopSequenceOf(choice);
      }
    },
    flush(c) {
      if (done) return;
      // Some compatible servers end without `[DONE]`; a finish reason proves it was complete.
      if (finish !== null || typed) return end(c);
      throw broken("ended before it was complete");
    },
  });
}

/** `data: {"error":{...}}` inside a 200 stream (OpenAI's mid-stream failure). */
function streamError(error: unknown, ctx: MessagesStreamContext): GatewayError {
  const e = isObject(error) ? error : {};
  const message = typeof e.message === "string" && e.message !== ""
    ? ctx.redact(e.message)
    : `Stream from provider "${ctx.provider}" failed`;
  return new GatewayError("upstream_error", message, {
    provider: ctx.provider,
    ...(typeof e.type === "string" ? { upstreamType: e.type } : {}),
  });
}

/** Whether a tool call's arguments so far are a whole JSON value (nothing can follow). */
function completeJson(text: string): boolean {
  if (text.trim() === "") return false;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
