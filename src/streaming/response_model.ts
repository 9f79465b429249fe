/**
 * The model an upstream says generated its answer (GenAI's `gen_ai.response.model`), read
 * where the answer is already at hand: the head of a relayed JSON body, or a stream's opening
 * events, which the stream gate parses anyway. Every wire names it `model` (OpenAI's chunks
 * and completions, Anthropic's message and `message_start`, the Responses API's response
 * and `response.created`). Pure.
 * @module
 */
import type { GateFormat } from "./gate.ts";

/** Names longer than this are not a model's (and would not make a label). */
const MAX_MODEL_CHARS = 256;
/** Where a JSON body's top-level `model` sits on every wire we relay (after the id). */
const HEAD_BYTES = 1024;
/**
 * A `"model": "..."` key and value. Inside a JSON string a quote is escaped, so a `"model"`
 * that matches is a key; the first one in the head is the top level's on every wire.
 */
const MODEL_KEY = /"model"\s*:\s*"((?:[^"\\]|\\.){1,256})"/;
const headDecoder = new TextDecoder();

function named(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" && value.length <= MAX_MODEL_CHARS
    ? value
    : undefined;
}

/** The top-level `model` of a JSON answer's bytes, read from its head only; else undefined. */
export function modelInJsonHead(body: Uint8Array): string | undefined {
  const head = body.byteLength > HEAD_BYTES ? body.subarray(0, HEAD_BYTES) : body;
  const m = MODEL_KEY.exec(headDecoder.decode(head));
  if (m === null) return undefined;
  try {
    return named(JSON.parse(`"${m[1]}"`));
  } catch {
    return undefined;
  }
}

/** The `model` of a decoded JSON answer (a `chat.completion`, an embeddings `list`). */
export function modelOfBody(body: Record<string, unknown>): string | undefined {
  return named(body.model);
}

/** The model a stream event (parsed) names: a chunk's, or an opening event's. */
export function modelOfEvent(format: GateFormat, event: unknown): string | undefined {
  if (event === null || typeof event !== "object") return undefined;
  const e = event as Record<string, unknown>;
  if (format === "chunks" || format === "openai_sse") return named(e.model);
  if (e.type === "message_start") return named((e.message as { model?: unknown })?.model);
  if (typeof e.type === "string" && e.type.startsWith("response.")) {
    return named((e.response as { model?: unknown } | undefined)?.model);
  }
  return undefined;
}
