/**
 * OpenAI chat answers (the canonical form) -> the Responses API: a `chat.completion` into a
 * `response` object, typed chunks into the Responses event sequence (`response.created` ...
 * `response.completed`) with consecutive `sequence_number`s. Pure, one transformer per
 * request; the finished response (a failed one too) is handed to `onDone` (the store keeps it).
 * @module
 */
import { GatewayError } from "../errors.ts";
import type { OpenAIChatChunk } from "../schema/openai.ts";
import {
  newResponseId,
  type ResponsesItem,
  type ResponsesObject,
  type ResponsesRequest,
  type ResponsesUsage,
} from "../schema/responses.ts";
import { concatBytes, encodeSseEvent } from "../streaming/mod.ts";

/** What the response object echoes from the request, and who answered. */
export interface ResponsesContext {
  readonly id: string;
  /** Unix seconds. */
  readonly createdAt: number;
  /** The model the client asked for (reported when the upstream names none). */
  readonly model: string;
  readonly request: ResponsesRequest;
  readonly provider: string;
  readonly redact: (text: string) => string;
}

/** Chat usage -> Responses usage (cached tokens are part of input, as on both sides). */
export function toResponsesUsage(usage: unknown): ResponsesUsage {
  const u = isObject(usage) ? usage : {};
  const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) && v > 0 ? v : 0);
  const prompt = isObject(u.prompt_tokens_details) ? u.prompt_tokens_details : {};
  const completion = isObject(u.completion_tokens_details) ? u.completion_tokens_details : {};
  const input = n(u.prompt_tokens);
  const output = n(u.completion_tokens);
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: Math.min(n(prompt.cached_tokens), input) },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: n(completion.reasoning_tokens) },
    total_tokens: n(u.total_tokens) || input + output,
  };
}

/** The response object around `output`, echoing the request's settings as OpenAI does. */
export function responseObject(
  ctx: ResponsesContext,
  status: ResponsesObject["status"],
  output: ResponsesItem[],
  usage: ResponsesUsage | null,
  model: string,
  extra: { incomplete?: string; error?: { code: string; message: string } } = {},
): ResponsesObject {
  const r = ctx.request;
  return {
    id: ctx.id,
    object: "response",
    created_at: ctx.createdAt,
    status,
    error: extra.error ?? null,
    incomplete_details: extra.incomplete !== undefined ? { reason: extra.incomplete } : null,
    instructions: r.instructions ?? null,
    max_output_tokens: r.max_output_tokens ?? null,
    model,
    output,
    parallel_tool_calls: r.parallel_tool_calls ?? true,
    previous_response_id: r.previous_response_id ?? null,
    reasoning: { effort: r.reasoning?.effort ?? null, summary: null },
    store: r.store ?? true,
    temperature: r.temperature ?? 1,
    text: { format: r.text?.format ?? { type: "text" } },
    tool_choice: r.tool_choice ?? "auto",
    tools: r.tools ?? [],
    top_p: r.top_p ?? 1,
    truncation: "disabled",
    usage,
    user: r.user ?? null,
    metadata: r.metadata ?? {},
  };
}

/** `finish_reason` -> why a response is incomplete (undefined: it is complete). */
function incompleteReason(finish: unknown): string | undefined {
  if (finish === "length") return "max_output_tokens";
  if (finish === "content_filter") return "content_filter";
  return undefined;
}

/** An answer's message: its text, or (`refusal`) the model's refusal, as its one part. */
function messageItem(id: string, text: string, status: string, refusal = false): ResponsesItem {
  return { type: "message", id, status, role: "assistant", content: [messagePart(text, refusal)] };
}

/** OpenAI's part for a refusal is its own type: the SDK's `output_text` leaves it out. */
function messagePart(text: string, refusal: boolean): Record<string, unknown> {
  return refusal
    ? { type: "refusal", refusal: text }
    : { type: "output_text", text, annotations: [], logprobs: [] };
}

/**
 * `extra`: the chat tool call's `extra_content` (a Gemini thought signature), kept on the item
 * so that a client replaying its output, or `previous_response_id`, hands it back.
 */
function callItem(
  id: string,
  callId: string,
  name: string,
  args: string,
  status: string,
  extra?: unknown,
): ResponsesItem {
  const item: ResponsesItem = {
    type: "function_call",
    id,
    call_id: callId,
    name,
    arguments: args,
    status,
  };
  if (isObject(extra)) item.extra_content = extra;
  return item;
}

/** A `chat.completion` as a `response` object. */
export function toResponsesObject(completion: Record<string, unknown>, ctx: ResponsesContext) {
  const choice = Array.isArray(completion.choices) ? completion.choices[0] : undefined;
  const message = isObject(choice) && isObject(choice.message) ? choice.message : {};
  const finish = isObject(choice) ? choice.finish_reason : null;
  const incomplete = incompleteReason(finish);
  const itemStatus = incomplete !== undefined ? "incomplete" : "completed";
  const output: ResponsesItem[] = [];
  const text = typeof message.content === "string" ? message.content : "";
  if (text !== "") output.push(messageItem(newResponseId("msg"), text, itemStatus));
  const refusal = typeof message.refusal === "string" ? message.refusal : "";
  if (refusal !== "") output.push(messageItem(newResponseId("msg"), refusal, itemStatus, true));
  if (Array.isArray(message.tool_calls)) {
    for (const call of message.tool_calls) {
      if (!isObject(call)) continue;
      const fn = isObject(call.function) ? call.function : {};
      output.push(callItem(
        newResponseId("fc"),
        typeof call.id === "string" && call.id !== "" ? call.id : newResponseId("fc"),
        typeof fn.name === "string" ? fn.name : "",
        typeof fn.arguments === "string" && fn.arguments !== "" ? fn.arguments : "{}",
        "completed",
        call.extra_content,
      ));
    }
  }
  const model = typeof completion.model === "string" && completion.model !== ""
    ? completion.model
    : ctx.model;
  return responseObject(
    ctx,
    incomplete !== undefined ? "incomplete" : "completed",
    output,
    toResponsesUsage(completion.usage),
    model,
    incomplete !== undefined ? { incomplete } : {},
  );
}

// ---- Stream --------------------------------------------------------------------------------

/** An output item being streamed. */
interface OpenItem {
  readonly index: number;
  readonly id: string;
  readonly kind: "message" | "function_call";
  /** A message whose part is a refusal (`response.refusal.*` events), not text. */
  readonly refusal: boolean;
  text: string;
  callId: string;
  name: string;
  /** A tool call's `extra_content`, from whichever fragment carried it. */
  extra?: unknown;
}

/**
 * Typed chat chunks -> Responses SSE events. `response.created` is held back until there is
 * content, so a failure before the first token still fails before the first byte.
 * Items: a message (one `output_text` part) or one item per tool call, each closed (`...done`
 * events) before the next opens, as OpenAI streams them. A chat stream may interleave its
 * calls' fragments by `index`, though: a call whose arguments are not yet whole JSON when the
 * next one starts stays open beside it (its deltas keep their own `output_index`) until its
 * arguments are whole, a message follows or the answer ends. An in-stream error or a chunk that is
 * not an object errors the stream (the route renders it as `response.failed`). `onDone`
 * gets the final response object (completed, incomplete, or failed once the route renders it).
 */
export function createResponsesStreamTransformer(
  ctx: ResponsesContext,
  onDone: (response: ResponsesObject) => void,
): ResponsesStreamEncoder {
  let seq = 0;
  let started = false;
  let model = ctx.model;
  let finish: string | null = null;
  let usage: unknown = null;
  /** Items opened and not yet closed, in output order (a message is only ever open alone). */
  let opened: OpenItem[] = [];
  const output: ResponsesItem[] = [];
  /** Chat tool_calls index -> its output item. */
  const calls = new Map<number, OpenItem>();

  type Controller = TransformStreamDefaultController<Uint8Array>;
  /**
   * Events of one input chunk go out as one write: should the source fail next, a stream
   * errors away what it still queues, and the numbering must not skip what was lost.
   */
  let batch: Uint8Array[] = [];
  const emit = (_c: Controller, type: string, payload: Record<string, unknown>) => {
    batch.push(encodeSseEvent(type, { type, sequence_number: seq++, ...payload }));
  };
  const send = (c: Controller) => {
    if (batch.length === 0) return;
    if (batch.length === 1) c.enqueue(batch[0] as Uint8Array);
    else {
      const out = new Uint8Array(batch.reduce((n, b) => n + b.length, 0));
      let at = 0;
      for (const b of batch) {
        out.set(b, at);
        at += b.length;
      }
      c.enqueue(out);
    }
    batch = [];
  };
  const start = (c: Controller) => {
    if (started) return;
    started = true;
    const shell = responseObject(ctx, "in_progress", [], null, model);
    emit(c, "response.created", { response: shell });
    emit(c, "response.in_progress", { response: shell });
  };
  /** Close every open item; `incomplete` when the answer was cut at its length limit. */
  const close = (c: Controller, status: "completed" | "incomplete" = "completed") => {
    const items = opened;
    opened = [];
    for (const item of items) closeItem(c, item, status);
  };
  const closeItem = (c: Controller, item: OpenItem, status: "completed" | "incomplete") => {
    if (item.kind === "message") {
      const part = messagePart(item.text, item.refusal);
      const where = { item_id: item.id, output_index: item.index, content_index: 0 };
      if (item.refusal) emit(c, "response.refusal.done", { ...where, refusal: item.text });
      else emit(c, "response.output_text.done", { ...where, text: item.text, logprobs: [] });
      emit(c, "response.content_part.done", { ...where, part });
      const done = messageItem(item.id, item.text, status, item.refusal);
      output[item.index] = done;
      emit(c, "response.output_item.done", { output_index: item.index, item: done });
    } else {
      if (item.text === "") {
        // A call without arguments is an empty object, as OpenAI sends it.
        item.text = "{}";
        emit(c, "response.function_call_arguments.delta", {
          item_id: item.id,
          output_index: item.index,
          delta: "{}",
        });
      }
      emit(c, "response.function_call_arguments.done", {
        item_id: item.id,
        output_index: item.index,
        arguments: item.text,
      });
      const done = callItem(item.id, item.callId, item.name, item.text, status, item.extra);
      output[item.index] = done;
      emit(c, "response.output_item.done", { output_index: item.index, item: done });
    }
  };
  /** Close the open calls whose arguments are whole; the others may still be streaming. */
  const closeWholeCalls = (c: Controller) => {
    const still: OpenItem[] = [];
    for (const item of opened) {
      if (item.kind === "function_call" && !wholeJson(item.text)) still.push(item);
      else closeItem(c, item, "completed");
    }
    opened = still;
  };
  const openItem = (
    c: Controller,
    kind: OpenItem["kind"],
    callId = "",
    name = "",
    refusal = false,
  ): OpenItem => {
    start(c);
    if (kind === "message" || opened[0]?.kind === "message") close(c);
    else closeWholeCalls(c);
    const item: OpenItem = {
      index: output.length,
      id: newResponseId(kind === "message" ? "msg" : "fc"),
      kind,
      refusal,
      text: "",
      callId,
      name,
    };
    const added = kind === "message"
      ? { type: "message", id: item.id, status: "in_progress", role: "assistant", content: [] }
      : callItem(item.id, callId, name, "", "in_progress");
    output.push(added);
    opened.push(item);
    emit(c, "response.output_item.added", { output_index: item.index, item: added });
    if (kind === "message") {
      emit(c, "response.content_part.added", {
        item_id: item.id,
        output_index: item.index,
        content_index: 0,
        part: messagePart("", refusal),
      });
    }
    return item;
  };
  /** Text, or a refusal, into the open message of that kind (else a new one). */
  const text = (c: Controller, delta: string, refusal = false) => {
    const last = opened[0];
    const item = last?.kind === "message" && last.refusal === refusal
      ? last
      : openItem(c, "message", "", "", refusal);
    item.text += delta;
    const where = { item_id: item.id, output_index: item.index, content_index: 0 };
    if (refusal) emit(c, "response.refusal.delta", { ...where, delta });
    else emit(c, "response.output_text.delta", { ...where, delta, logprobs: [] });
  };
  const toolCall = (c: Controller, call: Record<string, unknown>) => {
    const fn = isObject(call.function) ? call.function : {};
    const starts = typeof call.id === "string" || typeof fn.name === "string";
    // Some compatible servers omit `index`; a fragment that names a call starts a new one.
    const key = typeof call.index === "number"
      ? call.index
      : starts
      ? calls.size
      : Math.max(0, calls.size - 1);
    let item = calls.get(key);
    if (item === undefined) {
      item = openItem(
        c,
        "function_call",
        typeof call.id === "string" && call.id !== "" ? call.id : newResponseId("fc"),
        typeof fn.name === "string" ? fn.name : "",
      );
      calls.set(key, item);
    }
    if (isObject(call.extra_content)) item.extra = call.extra_content;
    if (typeof fn.arguments === "string" && fn.arguments !== "") {
      item.text += fn.arguments;
      emit(c, "response.function_call_arguments.delta", {
        item_id: item.id,
        output_index: item.index,
        delta: fn.arguments,
      });
    }
  };

  const stream = new TransformStream<OpenAIChatChunk, Uint8Array>({
    transform(chunk, c) {
      if (!isObject(chunk)) throw broken(ctx, "sent an event that is not a JSON object");
      if (chunk.error !== undefined && chunk.error !== null) throw streamError(chunk.error, ctx);
      if (typeof chunk.model === "string" && chunk.model !== "") model = chunk.model;
      if (isObject(chunk.usage)) usage = chunk.usage;
      const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : undefined;
      if (!isObject(choice)) return;
      const delta = isObject(choice.delta) ? choice.delta : {};
      if (typeof delta.content === "string" && delta.content !== "") text(c, delta.content);
      if (typeof delta.refusal === "string" && delta.refusal !== "") text(c, delta.refusal, true);
      if (Array.isArray(delta.tool_calls)) {
        for (const call of delta.tool_calls) if (isObject(call)) toolCall(c, call);
      }
      if (typeof choice.finish_reason === "string") finish = choice.finish_reason;
      send(c);
    },
    flush(c) {
      start(c);
      const incomplete = incompleteReason(finish);
      close(c, incomplete !== undefined ? "incomplete" : "completed");
      const final = responseObject(
        ctx,
        incomplete !== undefined ? "incomplete" : "completed",
        output,
        toResponsesUsage(usage),
        model,
        incomplete !== undefined ? { incomplete } : {},
      );
      emit(c, incomplete !== undefined ? "response.incomplete" : "response.completed", {
        response: final,
      });
      send(c);
      onDone(final);
    },
  });
  return {
    stream,
    failed(error, usageSoFar) {
      // The stream's last event: `response.failed`, numbered after what was sent. Its output
      // is what the client was sent, the item cut short included.
      const cut = new Map(opened.map((item) => [item.index, item]));
      const sent = cut.size === 0 ? output : output.map((o, i) => {
        const item = cut.get(i);
        return item === undefined
          ? o
          : item.kind === "message"
          ? messageItem(item.id, item.text, "incomplete")
          : callItem(item.id, item.callId, item.name, item.text, "incomplete", item.extra);
      });
      const code = error.status === 429 ? "rate_limit_exceeded" : "server_error";
      const failed = responseObject(
        ctx,
        "failed",
        sent,
        toResponsesUsage(usage ?? usageSoFar),
        model,
        { error: { code, message: error.message } },
      );
      // Kept as OpenAI keeps a failed response: retrievable, with its status and error.
      onDone(failed);
      // An `error` event first: the OpenAI SDKs throw on it (a reader that handles only the
      // text deltas, LangChain's among them, would otherwise end as if complete), then the
      // failed response for a reader that goes on.
      return concatBytes(
        encodeSseEvent("error", {
          type: "error",
          code,
          message: error.message,
          param: null,
          sequence_number: seq++,
        }),
        encodeSseEvent("response.failed", {
          type: "response.failed",
          sequence_number: seq++,
          response: failed,
        }),
      );
    },
  };
}

/** The stream encoder and the renderer of its in-format failure (sharing the numbering). */
export interface ResponsesStreamEncoder {
  readonly stream: TransformStream<OpenAIChatChunk, Uint8Array>;
  /** `usageSoFar`: what the upstream reported before it failed, when no usage chunk came. */
  failed(error: GatewayError, usageSoFar?: unknown): Uint8Array;
}

function broken(ctx: ResponsesContext, why: string): GatewayError {
  return new GatewayError("upstream_error", `Stream from provider "${ctx.provider}" ${why}`, {
    provider: ctx.provider,
  });
}

/** `data: {"error":{...}}` inside a 200 stream (OpenAI's mid-stream failure). */
function streamError(error: unknown, ctx: ResponsesContext): GatewayError {
  const e = isObject(error) ? error : {};
  const message = typeof e.message === "string" && e.message !== ""
    ? ctx.redact(e.message)
    : `Stream from provider "${ctx.provider}" failed`;
  return new GatewayError("upstream_error", message, {
    provider: ctx.provider,
    ...(typeof e.type === "string" ? { upstreamType: e.type } : {}),
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Arguments that parse: a call's fragments are all in (more would break the JSON). */
function wholeJson(text: string): boolean {
  if (text === "") return false;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
