import { isObject, type OpenAIChatChunk, type OpenAIUsage } from "../../schema/openai.ts";
import {
  createOpenAIChunkSender,
  createOpenAIChunkWriter,
  createToolCallDeltas,
} from "../../streaming/mod.ts";
import type { Redactor } from "../../telemetry/mod.ts";
import { brokenStream } from "../shared/errors.ts";
import { exceptionMessage, fromBedrockStreamException } from "./errors.ts";
import { createEventStreamDecoder, type EventStreamMessage, stringHeader } from "./eventstream.ts";
import { reasoningChars, stopSequenceOf, toFinishReason, toOpenAIUsage } from "./response.ts";
import { withThinking } from "../shared/openai_response.ts";
import type { ConverseUsage } from "./types.ts";

export interface BedrockStreamContext {
  /** Converse names no model: the requested model id is reported. */
  readonly model: string;
  /** The chunks' id (`chatcmpl-` + `x-amzn-requestid`, or a random one). */
  readonly id: string;
  /** The client's `stream_options.include_usage`: end with a `choices: []` usage chunk. */
  readonly includeUsage: boolean;
  /** Called once with the final counts, from the `metadata` event. */
  readonly onUsage: (usage: OpenAIUsage) => void;
  readonly provider: string;
  readonly redact: Redactor;
  /** Unix seconds shared by every chunk; defaults to now (tests pin it). */
  readonly created?: number;
}

/**
 * ConverseStream bytes -> OpenAI SSE bytes: event-stream framing (the codec, frame by frame,
 * never the whole body), then the per-request translation. Cancelling the result cancels
 * `body`.
 */
export function toOpenAIStream(
  body: ReadableStream<Uint8Array>,
  ctx: BedrockStreamContext,
): ReadableStream<OpenAIChatChunk> {
  return body
    .pipeThrough(createEventStreamDecoder(ctx.provider))
    .pipeThrough(createBedrockStreamTransformer(ctx));
}

/**
 * Semantics: ConverseStream events (`:event-type` header, JSON payload) -> OpenAI
 * `chat.completion.chunk` bytes. The events are messageStart, contentBlockStart (a toolUse
 * block's id and name), contentBlockDelta (`text`, or `toolUse.input` as a piece of the
 * arguments' JSON text), contentBlockStop, messageStop (`stopReason`) and metadata (usage),
 * which comes after messageStop. State lives in this closure, one per request.
 *
 * An exception frame (`:message-type: exception`, e.g. `throttlingException` when the model
 * is throttled mid-answer), an error frame, a payload that is not JSON, or a stream that
 * ends before messageStop errors the stream with a GatewayError; the route renders that as
 * an in-stream OpenAI error event, or fails over if nothing was sent yet.
 */
export function createBedrockStreamTransformer(
  ctx: BedrockStreamContext,
): TransformStream<EventStreamMessage, OpenAIChatChunk> {
  const writer = createOpenAIChunkWriter({
    id: ctx.id,
    created: ctx.created ?? Math.floor(Date.now() / 1000),
    model: ctx.model,
    includeUsage: ctx.includeUsage,
  });
  const decoder = new TextDecoder();
  let stopped = false;
  let usage: ConverseUsage | undefined;
  /** Characters of reasoning text: Converse counts it in `outputTokens` only. */
  let reasoning = 0;
  const openAIUsage = () => withThinking(toOpenAIUsage(usage), reasoning);
  /** Converse contentBlockIndex -> OpenAI tool_calls index (ordinal among toolUse blocks). */
  const toolCalls = createToolCallDeltas();

  // The role chunk waits for content: an exception between messageStart and the first
  // token can still fail over.
  const { chunk, send } = createOpenAIChunkSender(() => writer);
  const broken = (why: string) => brokenStream(ctx.provider, why);

  return new TransformStream<EventStreamMessage, OpenAIChatChunk>({
    transform(message, controller) {
      const kind = stringHeader(message, ":message-type");
      if (kind === "exception") {
        throw fromBedrockStreamException(
          stringHeader(message, ":exception-type"),
          exceptionMessage(decoder.decode(message.body)),
          ctx.provider,
          ctx.redact,
        );
      }
      if (kind === "error") {
        throw fromBedrockStreamException(
          stringHeader(message, ":error-code"),
          stringHeader(message, ":error-message"),
          ctx.provider,
          ctx.redact,
        );
      }
      const type = stringHeader(message, ":event-type");
      let event: unknown;
      try {
        event = JSON.parse(decoder.decode(message.body));
      } catch {
        throw broken(`sent a "${type}" event that is not JSON`);
      }
      if (!isObject(event)) throw broken(`sent a "${type}" event that is not a JSON object`);
      switch (type) {
        case "contentBlockStart": {
          const start = isObject(event.start) ? event.start : {};
          const toolUse = start.toolUse;
          const index = event.contentBlockIndex;
          if (isObject(toolUse) && typeof index === "number") {
            // The arguments follow as contentBlockDelta `toolUse.input` pieces.
            send(controller, chunk(toolCalls.start(index, toolUse.toolUseId, toolUse.name), null));
          }
          return;
        }
        case "contentBlockDelta": {
          const delta = isObject(event.delta) ? event.delta : {};
          if (typeof delta.text === "string") {
            if (delta.text !== "") send(controller, chunk({ content: delta.text }, null));
          } else if (isObject(delta.toolUse) && typeof delta.toolUse.input === "string") {
            const args = toolCalls.args(event.contentBlockIndex, delta.toolUse.input);
            if (args !== null) send(controller, chunk(args, null));
          } else {
            reasoning += reasoningChars(delta.reasoningContent);
          }
          // reasoningContent, citations and other deltas have no OpenAI chunk form.
          return;
        }
        case "contentBlockStop": {
          const empty = toolCalls.end(event.contentBlockIndex);
          if (empty !== null) send(controller, chunk(empty, null));
          return;
        }
        case "messageStop": {
          if (stopped) return;
          stopped = true;
          const finish = toFinishReason(event.stopReason) ??
            (toolCalls.count > 0 ? "tool_calls" : "stop");
          const last = chunk({}, finish);
          const stop = stopSequenceOf(event.stopReason, event.additionalModelResponseFields);
          if (stop !== undefined) last.choices[0]!.stop_sequence = stop;
          send(controller, last);
          return;
        }
        case "metadata":
          if (isObject(event.usage)) {
            usage = event.usage as ConverseUsage;
            ctx.onUsage(openAIUsage());
          }
          return;
        default:
          // messageStart (the role chunk waits for content), and event types added later.
          return;
      }
    },
    flush(controller) {
      if (!stopped) throw broken("ended before messageStop");
      if (ctx.includeUsage) send(controller, writer.usage(openAIUsage()));
    },
  });
}
