import { isObject, type OpenAIChatChunk, type OpenAIUsage } from "../../schema/openai.ts";
import {
  createOpenAIChunkSender,
  createOpenAIChunkWriter,
  createSseDataStream,
  createSseEndStream,
  createToolCallDeltas,
  type OpenAIChunkWriter,
} from "../../streaming/mod.ts";
import type { Redactor } from "../../telemetry/mod.ts";
import { brokenStream } from "../shared/errors.ts";
import { anthropicStreamDone } from "./native.ts";
import { withThinking } from "../shared/openai_response.ts";
import { fromAnthropicStreamError } from "./errors.ts";
import { stopSequenceOf, toFinishReason, toOpenAIUsage } from "./response.ts";
import type { AnthropicUsage } from "./types.ts";

export interface AnthropicStreamContext {
  /** Used when `message_start` does not name the model. */
  readonly model: string;
  /** The client's `stream_options.include_usage`: end with a `choices: []` usage chunk. */
  readonly includeUsage: boolean;
  /** Called with the final counts once `message_delta` reports the output tokens. */
  readonly onUsage: (usage: OpenAIUsage) => void;
  /**
   * Called with the input counts `message_start` reports, so a stream cut before its end
   * still accounts for its input.
   */
  readonly onInputUsage?: (usage: Partial<OpenAIUsage>) => void;
  readonly provider: string;
  readonly redact: Redactor;
  /** Unix seconds shared by every chunk; defaults to now (tests pin it). */
  readonly created?: number;
}

/**
 * Anthropic SSE bytes -> OpenAI SSE bytes, one event at a time: UTF-8 decoding (split-safe),
 * SSE framing, then the per-request translation. Cancelling the result cancels `body`.
 */
export function toOpenAIStream(
  body: ReadableStream<Uint8Array>,
  ctx: AnthropicStreamContext,
): ReadableStream<OpenAIChatChunk> {
  return body
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(createSseDataStream())
    // message_stop (or an error event) ends the answer, whether or not Anthropic closes the
    // connection yet.
    .pipeThrough(createSseEndStream(anthropicStreamDone))
    .pipeThrough(createAnthropicStreamTransformer(ctx));
}

/**
 * Semantics: Anthropic event payloads -> OpenAI `chat.completion.chunk` bytes. Every
 * Anthropic payload carries its own `type`, so the SSE `event:` name is not needed. State
 * (ids, tool-call ordinals, usage) lives in this closure, one per request.
 *
 * An upstream `error` event, a payload that is not JSON, or a stream that ends before
 * `message_stop` errors the stream with a GatewayError; the route renders that as an
 * in-stream OpenAI error event instead of ending the stream as if it were complete.
 */
export function createAnthropicStreamTransformer(
  ctx: AnthropicStreamContext,
): TransformStream<string, OpenAIChatChunk> {
  const created = ctx.created ?? Math.floor(Date.now() / 1000);
  // Created at message_start, which carries the id and the model Anthropic reports.
  let writer: OpenAIChunkWriter = createOpenAIChunkWriter({
    id: "",
    created,
    model: ctx.model,
    includeUsage: ctx.includeUsage,
  });
  let started = false;
  let finished = false;
  let stopped = false;
  let usage: AnthropicUsage = {};
  /** Characters of thinking text: Claude's output count includes it, with no figure of its own. */
  let thinking = 0;
  const openAIUsage = () => withThinking(toOpenAIUsage(usage), thinking);
  /** Anthropic content-block index -> OpenAI tool_calls index (ordinal among tool_use blocks). */
  const toolCalls = createToolCallDeltas();

  // The role chunk waits for content: an upstream `error` between message_start and the
  // first token (Anthropic's mid-stream overload) can still fail over.
  const { chunk, send } = createOpenAIChunkSender(() => writer);
  const broken = (why: string) => brokenStream(ctx.provider, why);

  return new TransformStream<string, OpenAIChatChunk>({
    transform(data, controller) {
      if (stopped) return;
      const event = parseEvent(data);
      if (event === null) throw broken("sent an event that is not a JSON object with a type");
      switch (event.type) {
        case "ping":
          return;
        case "error":
          throw fromAnthropicStreamError(event.error, ctx.provider, ctx.redact);
        case "message_start": {
          const message = isObject(event.message) ? event.message : {};
          started = true;
          writer = createOpenAIChunkWriter({
            id: `chatcmpl-${typeof message.id === "string" ? message.id : ""}`,
            created,
            model: typeof message.model === "string" && message.model !== ""
              ? message.model
              : ctx.model,
            includeUsage: ctx.includeUsage,
          });
          usage = mergeUsage(usage, message.usage);
          if (ctx.onInputUsage && usage.input_tokens !== undefined) {
            const { prompt_tokens, prompt_tokens_details } = toOpenAIUsage(usage);
            ctx.onInputUsage({ prompt_tokens, prompt_tokens_details });
          }
          return;
        }
      }
      if (!started) throw broken("did not begin with message_start");
      switch (event.type) {
        case "content_block_start": {
          const block = isObject(event.content_block) ? event.content_block : {};
          const index = event.index;
          if (block.type === "text" && typeof block.text === "string" && block.text !== "") {
            send(controller, chunk({ content: block.text }, null));
          } else if (block.type === "tool_use" && typeof index === "number") {
            // The block starts with `input: {}`; the arguments arrive as input_json_delta.
            send(controller, chunk(toolCalls.start(index, block.id, block.name), null));
          } else if (block.type === "thinking" && typeof block.thinking === "string") {
            thinking += block.thinking.length;
          }
          // thinking, redacted_thinking and server-tool blocks have no OpenAI chunk form.
          return;
        }
        case "content_block_delta": {
          const delta = isObject(event.delta) ? event.delta : {};
          if (delta.type === "text_delta" && typeof delta.text === "string" && delta.text !== "") {
            send(controller, chunk({ content: delta.text }, null));
          } else if (delta.type === "thinking_delta" && typeof delta.thinking === "string") {
            thinking += delta.thinking.length;
          } else if (delta.type === "input_json_delta" && typeof delta.partial_json === "string") {
            // Only client tools are started; a server_tool_use block's input is skipped.
            const args = toolCalls.args(event.index, delta.partial_json);
            if (args !== null) send(controller, chunk(args, null));
          }
          return;
        }
        case "content_block_stop": {
          const empty = toolCalls.end(event.index);
          if (empty !== null) send(controller, chunk(empty, null));
          return;
        }
        case "message_delta": {
          // Counts here are cumulative and final (newer API versions repeat input counts).
          usage = mergeUsage(usage, event.usage);
          ctx.onUsage(openAIUsage());
          // "One or more" message_delta events may come; the stop reason rides on one.
          const delta = isObject(event.delta) ? event.delta : {};
          const finish = toFinishReason(delta.stop_reason);
          if (finish !== null && !finished) {
            finished = true;
            const last = chunk({}, finish);
            const stop = stopSequenceOf(delta.stop_reason, delta.stop_sequence);
            if (stop !== undefined) last.choices[0]!.stop_sequence = stop;
            send(controller, last);
          }
          return;
        }
        case "message_stop":
          stopped = true;
          // OpenAI clients wait for a finish_reason; never end without one.
          if (!finished) send(controller, chunk({}, "stop"));
          if (ctx.includeUsage) {
            send(controller, writer.usage(openAIUsage()));
          }
          return;
        default:
          // Event types added later: the streaming docs ask clients to tolerate them.
          return;
      }
    },
    flush() {
      if (!stopped) throw broken("ended before message_stop");
    },
  });
}

/**
 * An event payload narrowed only as far as its `type`: message_start, content_block_start,
 * content_block_delta (text_delta, input_json_delta, thinking_delta, ...), content_block_stop,
 * message_delta, message_stop, ping, error. Fields are checked where they are read.
 */
interface LooseEvent {
  type: string;
  [field: string]: unknown;
}

function parseEvent(data: string): LooseEvent | null {
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    return null;
  }
  return isObject(v) && typeof v.type === "string" ? v as LooseEvent : null;
}

/** Later counts win; absent or null fields keep the earlier value. */
export function mergeUsage(into: AnthropicUsage, from: unknown): AnthropicUsage {
  if (!isObject(from)) return into;
  const out: AnthropicUsage = { ...into };
  for (
    const key of [
      "input_tokens",
      "output_tokens",
      "cache_creation_input_tokens",
      "cache_read_input_tokens",
    ] as const
  ) {
    const v = from[key];
    if (typeof v === "number") out[key] = v;
  }
  return out;
}
