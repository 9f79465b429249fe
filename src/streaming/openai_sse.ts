import { GatewayError } from "../errors.ts";
import { type OpenAIChatChunk, withoutStopSequence } from "../schema/openai.ts";
import { createSseDataStream, createSseEndStream, SSE_DONE } from "./sse.ts";

const encoder = new TextEncoder();

/**
 * Typed chunks -> OpenAI SSE bytes: one `data:` event per chunk, `data: [DONE]` once the
 * chunks end cleanly. The one place a chat stream of ours is framed.
 */
export function encodeOpenAIChunks(): TransformStream<OpenAIChatChunk, Uint8Array> {
  return new TransformStream({
    transform(chunk, controller) {
      controller.enqueue(encoder.encode(`data: ${JSON.stringify(withoutStopSequence(chunk))}\n\n`));
    },
    flush(controller) {
      controller.enqueue(SSE_DONE);
    },
  });
}

/**
 * OpenAI SSE bytes -> typed chunks, for when a stage needs to see them (the relay path
 * passes the bytes on untouched otherwise). `[DONE]` ends the chunks; an in-stream
 * `{"error": ...}` event or a payload that is not a JSON object errors the stream.
 */
export function decodeOpenAISse(
  body: ReadableStream<Uint8Array>,
  provider: string,
  redact: (text: string) => string,
): ReadableStream<OpenAIChatChunk> {
  let done = false;
  let finished = false;
  return body
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(createSseDataStream())
    .pipeThrough(createSseEndStream((data) => data === "[DONE]"))
    .pipeThrough(
      new TransformStream<string, OpenAIChatChunk>({
        transform(data, controller) {
          if (done) return;
          if (data === "[DONE]") {
            done = true;
            return;
          }
          let value: unknown;
          try {
            value = JSON.parse(data);
          } catch {
            throw broken(provider, "sent an event that is not JSON");
          }
          if (value === null || typeof value !== "object" || Array.isArray(value)) {
            throw broken(provider, "sent an event that is not a JSON object");
          }
          const error = (value as { error?: unknown }).error;
          if (error !== undefined && error !== null) {
            const e = typeof error === "object" ? error as Record<string, unknown> : {};
            throw new GatewayError(
              "upstream_error",
              typeof e.message === "string" && e.message !== ""
                ? redact(e.message)
                : `Stream from provider "${provider}" failed`,
              { provider, ...(typeof e.type === "string" ? { upstreamType: e.type } : {}) },
            );
          }
          const chunk = value as OpenAIChatChunk;
          if (typeof chunk.choices?.[0]?.finish_reason === "string") finished = true;
          controller.enqueue(chunk);
        },
        flush() {
          // Some compatible servers end without `[DONE]`; a finish reason proves it complete.
          if (!done && !finished) throw broken(provider, "ended before it was complete");
        },
      }),
    );
}

function broken(provider: string, why: string): GatewayError {
  return new GatewayError("upstream_error", `Stream from provider "${provider}" ${why}`, {
    provider,
  });
}
