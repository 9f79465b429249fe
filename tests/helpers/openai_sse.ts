/**
 * Reading what a provider adapter streams back: drain a byte stream, parse OpenAI SSE
 * output, run a stream translator over re-chunked input, and build the expected chunks.
 * @module
 */
import assert from "node:assert/strict";
import { concatBytes, rechunk, streamOf } from "./chunk.ts";

/** OpenAI SSE bytes → the parsed `data:` payloads, `[DONE]` kept as the string. */
export function parseOpenAISse(bytes: Uint8Array): unknown[] {
  const text = new TextDecoder().decode(bytes);
  assert.ok(text.endsWith("\n\n"), `stream must end with a blank line: ${JSON.stringify(text)}`);
  return text.slice(0, -2).split("\n\n").map((event) => {
    assert.ok(event.startsWith("data: "), `not a data event: ${JSON.stringify(event)}`);
    const data = event.slice(6);
    return data === "[DONE]" ? data : JSON.parse(data);
  });
}

/** Read a byte stream until it ends or errors; returns what arrived and the error, if any. */
export async function drain(
  stream: ReadableStream<Uint8Array>,
): Promise<{ chunks: Uint8Array[]; error: unknown }> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return { chunks, error: undefined };
      chunks.push(value);
    }
  } catch (error) {
    return { chunks, error };
  } finally {
    reader.releaseLock();
  }
}

/** Read an OpenAI SSE byte stream to its end and parse its events. */
export async function readOpenAISse(stream: ReadableStream<Uint8Array>): Promise<unknown[]> {
  return parseOpenAISse(concatBytes(await Array.fromAsync(stream)));
}

/** A provider's stream translator: upstream bytes in, OpenAI SSE bytes out. */
export type StreamTranslator<C> = (
  body: ReadableStream<Uint8Array>,
  ctx: C,
) => ReadableStream<Uint8Array>;

/** Run `translator` over `bytes` delivered in `n`-byte pieces and parse the OpenAI events that come out. */
export function translateInChunks<C>(
  translator: StreamTranslator<C>,
  bytes: Uint8Array,
  n: number,
  ctx: C,
): Promise<unknown[]> {
  return readOpenAISse(translator(streamOf(rechunk(bytes, n)), ctx));
}

/** The expected OpenAI chunk (`usage: null` rides along when include_usage is on). */
export function openAIChunk(opts: {
  id: string;
  created: number;
  model: string;
  delta: Record<string, unknown>;
  finish: string | null;
  includeUsage: boolean;
}) {
  return {
    id: opts.id,
    object: "chat.completion.chunk",
    created: opts.created,
    model: opts.model,
    system_fingerprint: null,
    choices: [{ index: 0, delta: opts.delta, logprobs: null, finish_reason: opts.finish }],
    ...(opts.includeUsage ? { usage: null } : {}),
  };
}
