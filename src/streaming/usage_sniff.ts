import type { GatewayError } from "../errors.ts";
import type { OpenAIUsage } from "../schema/openai.ts";
import { createSseTap } from "./sse.ts";
import type { UsageMeter } from "./usage.ts";

/** One-shot decodes (no `stream` state): one decoder serves them all. */
const utf8 = new TextDecoder();

const TAIL_BYTES = 4096;
const HEAD_CHARS = 1024;
/** A string-valued `"model"` key (inside a JSON string its quotes would be escaped). */
const MODEL_KEY = /"model"\s*:\s*"([^"\\]{1,200})"/;

/** `model` of an answer object or of an Anthropic `message_start`'s `message`. */
function modelOf(value: unknown): string | null {
  if (value === null || typeof value !== "object") return null;
  const o = value as { model?: unknown; message?: { model?: unknown } };
  const m = o.model ?? o.message?.model;
  return typeof m === "string" && m !== "" ? m : null;
}
/** A usage-like key (`usage`, `usageMetadata`, ...): only such events are parsed. */
const USAGE_HINT = /"usage\w*"\s*:/;
const USAGE_KEY = /"(usage\w*)"\s*:\s*\{/g;

/**
 * Where one provider's answers carry usage: its own reading of a JSON object, and for a
 * body framing other than JSON and SSE, a tap that decodes it (see `NativeApi`).
 */
export interface UsageShapes {
  usage(value: unknown): Partial<OpenAIUsage> | null;
  contentChars?(data: string): number;
  /**
   * Whether one SSE event's data ends this API's stream (its last event, or a failure it
   * reported itself). An SSE answer that closes without one was cut short: the relay then
   * breaks off too, so the client can tell, and the log says `error`.
   */
  streamDone?(data: string): boolean;
  /** The failure an event `streamDone` accepted reports, else null (see `NativeApi`). */
  streamFailure?(data: string, provider: string): GatewayError | null;
  frames?(
    contentType: string,
    onObject: (value: unknown) => void,
    onEnd: (how: "complete" | "cut") => void,
    onContent: (chars: number) => void,
    failures?: StreamFailures,
  ): TransformStream<Uint8Array, Uint8Array> | null;
}

/**
 * Where a tap reports a failure the upstream sent inside its answer, in its own framing (an
 * AWS exception frame after HTTP 200). The bytes still go to the client untouched.
 */
export interface StreamFailures {
  /** The provider's name, for a failure that came without a message. */
  readonly provider: string;
  report(error: GatewayError): void;
}

/**
 * Watch a passthrough response for usage without touching it: every chunk is forwarded
 * the moment it arrives. SSE bodies are read event by event (some APIs report input tokens
 * at the start and output tokens at the end, so later events fill in what earlier ones
 * lacked); JSON bodies keep only their last few KB, where usage sits; other framings are
 * the provider's (`shapes.frames`). What the provider's `shapes.usage` reads goes to `meter`.
 * A failure a framing reports goes to `failures`, and the answer's usage is then that of a
 * stream cut short (what was seen, the rest estimated).
 */
export function createUsageSniffer(
  contentType: string,
  shapes: UsageShapes,
  meter: UsageMeter,
  onModel?: (model: string) => void,
  failures?: StreamFailures,
  /** Told each SSE event's JSON (every event is then parsed, not only those with usage). */
  onValue?: (value: unknown) => void,
): TransformStream<Uint8Array, Uint8Array> {
  let named = onModel === undefined;
  /** The answer's model, once: from a parsed object, an event's text or a JSON body's head. */
  const name = (model: string | null | undefined) => {
    if (named || model === null || model === undefined) return;
    named = true;
    onModel?.(model);
  };
  const absorb = (value: unknown) => {
    const u = shapes.usage(value);
    if (u) meter.report(u);
    if (!named) name(modelOf(value));
  };
  let failed = false;
  const end = (how: "complete" | "cut") => meter.settle(failed ? "cut" : how);
  const framed = shapes.frames?.(
    contentType,
    absorb,
    end,
    (n) => meter.content(n),
    failures && {
      provider: failures.provider,
      report(error) {
        failed = true;
        failures.report(error);
      },
    },
  );
  if (framed) return framed;
  if (contentType.includes("text/event-stream")) {
    const chars = shapes.contentChars;
    const done = shapes.streamDone;
    const failure = shapes.streamFailure;
    /** The failure an ending event reports, to `failures` (when someone listens). */
    const ended = (data: string) => {
      if (failures === undefined || failure === undefined) return;
      const error = failure(data, failures.provider);
      if (error === null) return;
      failed = true;
      failures.report(error);
    };
    let whole = done === undefined;
    return createSseTap(
      (data) => {
        if (!whole) {
          whole = (done as (data: string) => boolean)(data);
          if (whole) ended(data);
        }
        if (chars !== undefined) {
          const n = chars(data);
          if (n > 0) meter.content(n);
        }
        // The model names the price when the request's body streamed upstream unread; a
        // stream without usage events names it in its chunks.
        if (!named) name(MODEL_KEY.exec(data)?.[1]);
        const usage = USAGE_HINT.test(data);
        if (!usage && onValue === undefined) return;
        let value: unknown;
        try {
          value = JSON.parse(data);
        } catch {
          return; // not JSON: not ours to judge
        }
        onValue?.(value);
        if (usage) absorb(value);
      },
      () => {
        end(whole ? "complete" : "cut");
        // Thrown in the tap's flush: the relayed body errors, so the client's connection
        // ends abruptly (no event of ours goes into the provider's bytes).
        if (!whole) throw new StreamCutShort();
      },
      () => end("cut"),
    );
  }
  const json = contentType.includes("json");
  let tail = new Uint8Array(0);
  // The answer's `model` sits near its start (OpenAI, Anthropic): read it from the head.
  let head = "";
  return new TransformStream({
    transform(chunk, controller) {
      controller.enqueue(chunk);
      if (!json) return;
      if (!named && head.length < HEAD_CHARS) {
        head += utf8.decode(chunk.subarray(0, HEAD_CHARS));
        name(MODEL_KEY.exec(head)?.[1]);
      }
      const joined = new Uint8Array(Math.min(TAIL_BYTES, tail.byteLength + chunk.byteLength));
      const fromChunk = Math.min(chunk.byteLength, joined.byteLength);
      const fromTail = joined.byteLength - fromChunk;
      joined.set(tail.subarray(tail.byteLength - fromTail), 0);
      joined.set(chunk.subarray(chunk.byteLength - fromChunk), fromTail);
      tail = joined;
    },
    flush() {
      const text = utf8.decode(tail);
      for (const m of text.matchAll(USAGE_KEY)) {
        const obj = balancedObject(text, text.indexOf("{", m.index));
        if (obj === null) continue;
        try {
          absorb({ [m[1] as string]: JSON.parse(obj) });
        } catch {
          // truncated or not JSON
        }
      }
      end("complete");
    },
    cancel() {
      end("cut");
    },
  } as Transformer<Uint8Array, Uint8Array>);
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

/** A count field, 0 when absent. */
export function num(v: unknown): number {
  return typeof v === "number" ? v : 0;
}

/**
 * Cache-read / cache-write / reasoning details beside the counts (each only when positive),
 * so passthrough answers are billed like unified ones.
 */
export function withDetails(
  usage: Partial<OpenAIUsage>,
  cached: number,
  cacheWrites: number,
  reasoning: number,
): Partial<OpenAIUsage> {
  if (cached > 0 || cacheWrites > 0) {
    usage.prompt_tokens_details = cacheWrites > 0
      ? { cached_tokens: cached, cache_write_tokens: cacheWrites }
      : { cached_tokens: cached };
  }
  if (reasoning > 0) usage.completion_tokens_details = { reasoning_tokens: reasoning };
  return usage;
}

/** Prompt and completion counts, each only when it is a number. */
export function pickUsage(prompt: unknown, completion: unknown): Partial<OpenAIUsage> {
  const out: Partial<OpenAIUsage> = {};
  if (typeof prompt === "number") out.prompt_tokens = prompt;
  if (typeof completion === "number") out.completion_tokens = completion;
  return out;
}

/** An upstream SSE answer that closed before its last event. */
export class StreamCutShort extends Error {
  constructor() {
    super("The upstream's stream ended before its last event");
    this.name = "StreamCutShort";
  }
}
