import type { OpenAIUsage } from "../schema/openai.ts";
import { createSseTap } from "./sse.ts";

const TAIL_BYTES = 4096;
const USAGE_HINT = /"(?:usage|usageMetadata)"\s*:/;
const EVENT_STREAM = "application/vnd.amazon.eventstream";

type Codec = {
  decode(message: Uint8Array): { headers: Record<string, { value: unknown }>; body: Uint8Array };
};
let codec: Promise<Codec> | null = null;
/** The AWS event-stream codec, loaded on first use: only Bedrock traffic needs it. */
function eventStreamCodec(): Promise<Codec> {
  codec ??= Promise.all([import("@smithy/eventstream-codec"), import("@smithy/util-utf8")])
    .then(([es, utf8]) => new es.EventStreamCodec(utf8.toUtf8, utf8.fromUtf8));
  return codec;
}

/**
 * Token usage from any provider's JSON object: OpenAI `usage.prompt_tokens`, Anthropic
 * `usage.input_tokens` (also inside `message` of `message_start`), Gemini
 * `usageMetadata.promptTokenCount`. Null when the object carries none.
 */
export function usageFromObject(value: unknown): Partial<OpenAIUsage> | null {
  if (value === null || typeof value !== "object") return null;
  const o = value as Record<string, unknown>;
  const u = (o.usage ?? (o.message as Record<string, unknown> | undefined)?.usage) as
    | Record<string, unknown>
    | undefined;
  if (u && typeof u === "object") {
    if (typeof u.prompt_tokens === "number" || typeof u.completion_tokens === "number") {
      return pick(u.prompt_tokens, u.completion_tokens);
    }
    if (typeof u.input_tokens === "number" || typeof u.output_tokens === "number") {
      const input = num(u.input_tokens) + num(u.cache_creation_input_tokens) +
        num(u.cache_read_input_tokens);
      return pick(typeof u.input_tokens === "number" ? input : undefined, u.output_tokens);
    }
  }
  if (
    u && typeof u === "object" &&
    (typeof u.inputTokens === "number" || typeof u.outputTokens === "number")
  ) {
    // Bedrock Converse / ConverseStream `metadata`
    return pick(
      num(u.inputTokens) + num(u.cacheReadInputTokens) + num(u.cacheWriteInputTokens),
      u.outputTokens,
    );
  }
  const g = o.usageMetadata as Record<string, unknown> | undefined;
  if (g && typeof g === "object") {
    return pick(g.promptTokenCount, num(g.candidatesTokenCount) + num(g.thoughtsTokenCount));
  }
  // Bedrock InvokeModel bodies: the invocation metrics of a stream's last chunk, Llama's
  // and Titan's own counts.
  const m = o["amazon-bedrock-invocationMetrics"] as Record<string, unknown> | undefined;
  if (m && typeof m === "object") return pick(m.inputTokenCount, m.outputTokenCount);
  if (typeof o.prompt_token_count === "number") {
    return pick(o.prompt_token_count, o.generation_token_count);
  }
  if (typeof o.inputTextTokenCount === "number") {
    const results = Array.isArray(o.results) ? o.results as Record<string, unknown>[] : [];
    return pick(o.inputTextTokenCount, results.reduce((n, r) => n + num(r.tokenCount), 0));
  }
  return null;
}

/**
 * Watch a passthrough response for usage without touching it: every chunk is forwarded
 * the moment it arrives. SSE bodies are read event by event (Anthropic reports input tokens
 * at the start and output tokens at the end, so later events fill in what earlier ones
 * lacked); JSON bodies keep only their last few KB, where usage sits.
 */
export function createUsageSniffer(
  contentType: string,
  onUsage: (usage: OpenAIUsage) => void,
): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  let prompt: number | undefined;
  let completion: number | undefined;
  const absorb = (u: Partial<OpenAIUsage> | null) => {
    if (!u) return;
    if (u.prompt_tokens !== undefined) prompt = u.prompt_tokens;
    if (u.completion_tokens !== undefined) completion = u.completion_tokens;
  };
  const report = () => {
    if (prompt === undefined && completion === undefined) return;
    const p = prompt ?? 0;
    const c = completion ?? 0;
    onUsage({ prompt_tokens: p, completion_tokens: c, total_tokens: p + c });
  };
  if (contentType.includes(EVENT_STREAM)) return eventStreamSniffer(absorb, report);
  if (contentType.includes("text/event-stream")) {
    return createSseTap((data) => {
      if (!USAGE_HINT.test(data)) return;
      try {
        absorb(usageFromObject(JSON.parse(data)));
      } catch {
        // not JSON: not ours to judge
      }
    }, report);
  }
  let tail = new Uint8Array(0);
  return new TransformStream({
    transform(chunk, controller) {
      controller.enqueue(chunk);
      if (!contentType.includes("json")) return;
      const joined = new Uint8Array(Math.min(TAIL_BYTES, tail.byteLength + chunk.byteLength));
      const fromChunk = Math.min(chunk.byteLength, joined.byteLength);
      const fromTail = joined.byteLength - fromChunk;
      joined.set(tail.subarray(tail.byteLength - fromTail), 0);
      joined.set(chunk.subarray(chunk.byteLength - fromChunk), fromTail);
      tail = joined;
    },
    flush() {
      const text = decoder.decode(tail);
      for (const key of ['"usage"', '"usageMetadata"']) {
        const at = text.lastIndexOf(key);
        if (at < 0) continue;
        const obj = balancedObject(text, text.indexOf("{", at));
        if (obj === null) continue;
        try {
          absorb(usageFromObject({ [key.slice(1, -1)]: JSON.parse(obj) }));
        } catch {
          // truncated or not JSON
        }
      }
      report();
    },
  });
}

/**
 * AWS event-stream frames (Bedrock ConverseStream / InvokeModelWithResponseStream): decoded
 * with the maintained codec (CRC-checked) as they pass; only a partial frame is kept.
 */
function eventStreamSniffer(
  absorb: (u: Partial<OpenAIUsage> | null) => void,
  report: () => void,
): TransformStream<Uint8Array, Uint8Array> {
  let pending = new Uint8Array(0);
  const decoder = new TextDecoder();
  const inspect = (payload: Uint8Array) => {
    try {
      const event = JSON.parse(decoder.decode(payload)) as Record<string, unknown>;
      absorb(usageFromObject(event));
      // InvokeModelWithResponseStream: the model's own chunk is base64 inside `bytes`.
      if (typeof event.bytes === "string") {
        const inner = JSON.parse(
          decoder.decode(Uint8Array.from(atob(event.bytes), (ch) => ch.charCodeAt(0))),
        );
        absorb(usageFromObject(inner));
      }
    } catch {
      // not JSON: nothing to count
    }
  };
  return new TransformStream({
    async transform(chunk, controller) {
      controller.enqueue(chunk);
      const joined = new Uint8Array(pending.byteLength + chunk.byteLength);
      joined.set(pending, 0);
      joined.set(chunk, pending.byteLength);
      let offset = 0;
      while (joined.byteLength - offset >= 4) {
        const total = new DataView(joined.buffer, joined.byteOffset + offset, 4).getUint32(0);
        if (total < 16 || joined.byteLength - offset < total) break;
        try {
          inspect((await eventStreamCodec()).decode(joined.subarray(offset, offset + total)).body);
        } catch {
          // a corrupt frame is the client's to notice; accounting just skips it
        }
        offset += total;
      }
      pending = joined.slice(offset);
    },
    flush() {
      report();
    },
  });
}

/** The `{...}` starting at `start`, skipping braces inside strings; null if unbalanced. */
export function balancedObject(text: string, start: number): string | null {
  if (start < 0) return null;
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 34 /* " */) {
      i++;
      while (i < text.length && text.charCodeAt(i) !== 34) i += text.charCodeAt(i) === 92 ? 2 : 1;
    } else if (ch === 123 /* { */) depth++;
    else if (ch === 125 /* } */ && --depth === 0) return text.slice(start, i + 1);
  }
  return null;
}

function num(v: unknown): number {
  return typeof v === "number" ? v : 0;
}

function pick(prompt: unknown, completion: unknown): Partial<OpenAIUsage> {
  const out: Partial<OpenAIUsage> = {};
  if (typeof prompt === "number") out.prompt_tokens = prompt;
  if (typeof completion === "number") out.completion_tokens = completion;
  return out;
}
