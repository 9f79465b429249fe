import { isObject, type OpenAIChatChunk, type OpenAIUsage } from "../../schema/openai.ts";
import {
  createOpenAIChunkSender,
  createOpenAIChunkWriter,
  createSseDataStream,
  type OpenAIChunkWriter,
} from "../../streaming/mod.ts";
import type { Redactor } from "../../telemetry/mod.ts";
import { brokenStream } from "../shared/errors.ts";
import { fromGeminiStreamError } from "./errors.ts";
import { partText, randomId, toFinishReason, toOpenAIUsage, toToolCall } from "./response.ts";
import type { GeminiOpenAIToolCallDelta } from "./types.ts";

export interface GeminiStreamContext {
  /** Used when the events carry no `modelVersion`. */
  readonly model: string;
  /** The client's `stream_options.include_usage`: end with a `choices: []` usage chunk. */
  readonly includeUsage: boolean;
  /** Called once with the final counts when the stream ends. */
  readonly onUsage: (usage: OpenAIUsage) => void;
  /**
   * Called with the counts so far whenever an event carries them (Gemini repeats its
   * cumulative `usageMetadata` on every event): a stream cut short is billed for its real
   * input and for the output and thinking the upstream had counted.
   */
  readonly onPartialUsage?: (usage: Partial<OpenAIUsage>) => void;
  readonly provider: string;
  readonly redact: Redactor;
  /** Unix seconds shared by every chunk; defaults to now (tests pin it). */
  readonly created?: number;
  /** Source of ids Gemini does not provide; random by default (tests pin it). */
  readonly newId?: () => string;
}

/**
 * Gemini `?alt=sse` bytes -> OpenAI SSE bytes: UTF-8 decoding (split-safe), SSE framing,
 * then the per-request translation. Cancelling the result cancels `body`.
 */
export function toOpenAIStream(
  body: ReadableStream<Uint8Array>,
  ctx: GeminiStreamContext,
): ReadableStream<OpenAIChatChunk> {
  return body
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(createSseDataStream())
    .pipeThrough(createGeminiStreamTransformer(ctx));
}

/**
 * Semantics: each `data:` event is a whole `GenerateContentResponse` holding the next
 * parts of the answer. Text parts become content deltas; a `functionCall` part arrives
 * complete, so it becomes one tool_call delta with its name and all its arguments, indexed
 * in order of arrival. The first `finishReason` gives the finish chunk. `usageMetadata`
 * counts are cumulative (the last event has the final ones), so the latest wins and is
 * reported when the upstream closes, followed by the usage chunk (if asked) and `[DONE]`.
 *
 * Gemini sends no end marker but the `finishReason` of its last chunk: a stream that closes
 * without one was cut short. That, one that closes before any event, an `{"error":...}`
 * event and a payload that is not JSON error the stream with a GatewayError, which routing
 * can fail over while no byte has been sent.
 */
export function createGeminiStreamTransformer(
  ctx: GeminiStreamContext,
): TransformStream<string, OpenAIChatChunk> {
  const created = ctx.created ?? Math.floor(Date.now() / 1000);
  const newId = ctx.newId ?? randomId;
  // Created from the first event, which carries the response id and the model version.
  let writer: OpenAIChunkWriter | null = null;
  let finished = false;
  let toolCalls = 0;
  let usage: unknown = undefined;

  // The role chunk waits for content: an error event before the first token can still
  // fail over.
  const { chunk, send } = createOpenAIChunkSender(() => writer as OpenAIChunkWriter);
  const broken = (why: string) => brokenStream(ctx.provider, why);

  return new TransformStream<string, OpenAIChatChunk>({
    transform(data, controller) {
      const event = parseEvent(data);
      if (event === null) throw broken("sent an event that is not a JSON object");
      if (event.error !== undefined && event.error !== null) {
        throw fromGeminiStreamError(event.error, ctx.provider, ctx.redact);
      }
      writer ??= createOpenAIChunkWriter({
        id: `chatcmpl-${typeof event.responseId === "string" ? event.responseId : newId()}`,
        created,
        model: typeof event.modelVersion === "string" && event.modelVersion !== ""
          ? event.modelVersion
          : ctx.model,
        includeUsage: ctx.includeUsage,
      });
      if (isObject(event.usageMetadata)) {
        usage = event.usageMetadata;
        if (ctx.onPartialUsage && typeof event.usageMetadata.promptTokenCount === "number") {
          const { total_tokens: _, ...counted } = toOpenAIUsage(usage);
          ctx.onPartialUsage(counted);
        }
      }
      // Gemini sends nothing after the finish reason; should it, the answer is complete.
      if (finished) return;

      const candidate = Array.isArray(event.candidates) ? event.candidates[0] : undefined;
      if (!isObject(candidate)) {
        const feedback = event.promptFeedback;
        if (isObject(feedback) && typeof feedback.blockReason === "string") {
          // The prompt was blocked before generation: an empty, filtered answer.
          finished = true;
          send(controller, chunk({}, "content_filter"));
        }
        return;
      }
      const content = candidate.content;
      const parts = isObject(content) && Array.isArray(content.parts) ? content.parts : [];
      for (const part of parts) {
        if (!isObject(part)) continue;
        const text = partText(part);
        if (text !== null && text !== "") send(controller, chunk({ content: text }, null));
        const call = toToolCall(part, newId);
        if (call !== null) {
          const delta: GeminiOpenAIToolCallDelta = { index: toolCalls++, ...call };
          send(controller, chunk({ tool_calls: [delta] }, null));
        }
      }
      const finish = toFinishReason(candidate.finishReason, toolCalls > 0);
      if (finish !== null) {
        finished = true;
        send(controller, chunk({}, finish));
      }
    },
    flush(controller) {
      if (writer === null) throw broken("ended before sending any event");
      const final = toOpenAIUsage(usage);
      if (usage !== undefined) ctx.onUsage(final);
      // Gemini's last chunk names a finishReason: a stream without one was cut short, and
      // making one up would pass a truncated answer off as complete.
      if (!finished) throw broken("ended before a finishReason");
      if (ctx.includeUsage) send(controller, writer.usage(final));
    },
  });
}

/** An event narrowed only as far as an object; fields are checked where they are read. */
function parseEvent(data: string): Record<string, unknown> | null {
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    return null;
  }
  // Google APIs answer some failures as a one-element array of the error object.
  if (Array.isArray(v) && v.length === 1) v = v[0];
  return isObject(v) ? v : null;
}
