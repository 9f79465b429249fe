/**
 * Reading what a provider adapter streams back: drain a byte stream, parse OpenAI SSE
 * output, run a stream translator over re-chunked input, and build the expected chunks.
 * @module
 */
import assert from "node:assert/strict";
import type { OpenAIChatChunk } from "../../src/schema/openai.ts";
import { encodeOpenAIChunks } from "../../src/streaming/mod.ts";
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

/** Read a stream until it ends or errors; returns what arrived and the error, if any. */
export async function drain<T>(
  stream: ReadableStream<T>,
): Promise<{ chunks: T[]; error: unknown }> {
  const reader = stream.getReader();
  const chunks: T[] = [];
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

/**
 * Read an OpenAI stream to its end and parse its events: SSE bytes as they are, typed
 * chunks framed by the gateway's own edge encoder first (so `[DONE]` ends a clean stream).
 */
export async function readOpenAISse(
  stream: ReadableStream<Uint8Array> | ReadableStream<OpenAIChatChunk>,
): Promise<unknown[]> {
  const items: (Uint8Array | OpenAIChatChunk)[] = await Array.fromAsync(
    stream as ReadableStream<Uint8Array | OpenAIChatChunk>,
  );
  if (items.length === 0 || items[0] instanceof Uint8Array) {
    return parseOpenAISse(concatBytes(items as Uint8Array[]));
  }
  const framed = ReadableStream.from(items as OpenAIChatChunk[]).pipeThrough(encodeOpenAIChunks());
  return parseOpenAISse(concatBytes(await Array.fromAsync(framed)));
}

/** A provider's stream translator: upstream bytes in, OpenAI SSE bytes or typed chunks out. */
export type StreamTranslator<C> = (
  body: ReadableStream<Uint8Array>,
  ctx: C,
) => ReadableStream<Uint8Array> | ReadableStream<OpenAIChatChunk>;

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

/** Every tool-call `arguments` fragment of a chunk stream's events, joined in order. */
export function joinedToolArguments(events: readonly unknown[]): string {
  let args = "";
  for (const e of events) {
    if (e === "[DONE]") continue;
    const delta =
      (e as { choices: { delta: { tool_calls?: { function: { arguments?: string } }[] } }[] })
        .choices[0]?.delta;
    for (const tc of delta?.tool_calls ?? []) args += tc.function.arguments ?? "";
  }
  return args;
}
