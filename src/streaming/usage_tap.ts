import { GatewayError } from "../errors.ts";
import type { OpenAIUsage } from "../schema/openai.ts";
import { type SyncTransformer, toTransformStream } from "./pull.ts";
import { createSseDataReader, MAX_SSE_EVENT_CHARS, sseTap } from "./sse.ts";
import type { UsageMeter } from "./usage.ts";
import { balancedObject } from "./usage_sniff.ts";

const HAS_USAGE = /"usage"\s*:\s*\{/;
/** A delta's text (JSON-escaped): its length feeds the estimate of a stream cut short. */
const CONTENT = /"content"\s*:\s*"((?:[^"\\]|\\.)*)"/g;
const EVENT_END = /\r\n\r\n|\n\n|\r\r/;
/** Text that ends where an event ends (and does not end inside a "\r\n"). */
const WHOLE_EVENTS = /(?:\n\n|\r\n\r\n)$/;
/** A `finish_reason` that is a string (not null): the stream got to its end. */
const FINISH_REASON = /"finish_reason"\s*:\s*"/;
/** The same, or a `[DONE]` line, in whole events' text. */
const FINISHED = /"finish_reason"\s*:\s*"|(?:^|\n)data:\s*\[DONE\]/;
/** Perhaps an upstream's error event (`data: {"error": {...}}`): confirmed by parsing. */
const MAYBE_ERROR = /"error"\s*:\s*[{"]/;

/**
 * How a relayed OpenAI stream ends. One that stops without `[DONE]` or a finish reason was
 * cut short, and one that carried the upstream's error event failed: both fail at the end
 * (the first gets an error event in the client's format from the route, the second already
 * has one), so neither reaches the client, the log or the meter as a complete answer. A
 * decoded stream fails sooner, where its decoder reads the error event.
 */
class OpenAIStreamEnd {
  #finished = false;
  /** The upstream's error event, when one went by: its `type`, if it had one. */
  #failed: { readonly type: string | undefined } | null = null;
  constructor(readonly provider: string) {}

  /** Whole events' text (a chunk without a possible error event). */
  scan(text: string): void {
    if (!this.#finished && FINISHED.test(text)) this.#finished = true;
  }

  /** One event's data. */
  event(data: string): void {
    if (data === "[DONE]" || FINISH_REASON.test(data)) this.#finished = true;
    if (this.#failed !== null || !MAYBE_ERROR.test(data)) return;
    let error: unknown;
    try {
      error = (JSON.parse(data) as { error?: unknown })?.error;
    } catch {
      return; // not JSON: not ours to judge
    }
    if (error === undefined || error === null) return;
    const type = typeof error === "object" ? (error as { type?: unknown }).type : undefined;
    this.#failed = { type: typeof type === "string" ? type : undefined };
  }

  /**
   * At `[DONE]`, the stream's last event: its counts are in (the usage chunk comes before it),
   * so the meter settles now; a reader that stops here (the encoder ends the client's stream
   * at its last event) then cancels a complete answer, not one cut short.
   */
  done(data: string, meter: UsageMeter): void {
    if (data === "[DONE]" && this.#failed === null) meter.settle("complete");
  }

  /** At the end of the source: settles the meter; throws unless the stream completed. */
  end(meter: UsageMeter): void {
    if (this.#failed === null && this.#finished) return meter.settle("complete");
    meter.settle("cut");
    const provider = this.provider;
    if (this.#failed !== null) {
      const type = this.#failed.type;
      throw new GatewayError(
        "upstream_error",
        `Stream from provider "${provider}" failed: it sent an error event`,
        { provider, told: true, ...(type !== undefined ? { upstreamType: type } : {}) },
      );
    }
    throw new GatewayError(
      "upstream_error",
      `Stream from provider "${provider}" ended before it was complete`,
      { provider },
    );
  }
}

/** Every delta text in `text` (events without usage; one per choice), counted for the estimate. */
function countContent(text: string, meter: UsageMeter): void {
  CONTENT.lastIndex = 0;
  for (let m = CONTENT.exec(text); m !== null; m = CONTENT.exec(text)) {
    meter.content((m[1] as string).length);
  }
}

/**
 * Read one event's `data:` for usage (reported to `meter`) and content (counted for an
 * estimate). Returns whether it is the usage-only chunk (`choices: []`) a stream ends with
 * when `stream_options.include_usage` was asked for. Only events that carry a usage object
 * are JSON-parsed, so the common chunk costs two regex tests.
 */
function readEvent(data: string, meter: UsageMeter): boolean {
  if (!HAS_USAGE.test(data)) {
    countContent(data, meter);
    return false;
  }
  try {
    const chunk = JSON.parse(data) as { usage?: OpenAIUsage; choices?: unknown };
    const usage = chunk.usage;
    if (usage && typeof usage.prompt_tokens === "number") meter.report(usage);
    return Array.isArray(chunk.choices) && chunk.choices.length === 0;
  } catch {
    // Not JSON: not ours to judge; the bytes still reach the client.
    return false;
  }
}

/**
 * Pass OpenAI SSE bytes through unchanged while reading `usage` off the side into `meter`,
 * settled when the stream ends or is cut, and failed when it never got to its end
 * (`OpenAIStreamEnd`). A chunk of whole events without a usage object or a possible error
 * event (nearly every chunk of a stream) costs a decode and a few regex scans: no line
 * splitting.
 * From the first chunk that is not (the usage chunk, an event split across reads) on, every
 * event is read whole (`sseTap`).
 */
export function openAIUsageTap(
  meter: UsageMeter,
  provider: string,
): SyncTransformer<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  const ending = new OpenAIStreamEnd(provider);
  let events: SyncTransformer<Uint8Array, Uint8Array> | null = null;
  return {
    transform(chunk, enqueue) {
      if (events === null) {
        // Whole events end in a line break: such a chunk never ends inside a character.
        const text = decoder.decode(chunk);
        if (WHOLE_EVENTS.test(text) && !HAS_USAGE.test(text) && !MAYBE_ERROR.test(text)) {
          enqueue(chunk);
          countContent(text, meter);
          ending.scan(text);
          return;
        }
        events = sseTap(
          (data) => {
            readEvent(data, meter);
            ending.event(data);
            ending.done(data, meter);
          },
          () => ending.end(meter),
          () => meter.settle("cut"),
        );
      }
      events.transform(chunk, enqueue);
    },
    flush(enqueue) {
      if (events !== null) events.flush?.(enqueue);
      else ending.end(meter);
    },
    cancel(reason) {
      if (events !== null) events.cancel?.(reason);
      else meter.settle("cut");
    },
  };
}

/** `openAIUsageTap` as a `TransformStream`. */
export function createOpenAIUsageTap(
  meter: UsageMeter,
  provider: string,
): TransformStream<Uint8Array, Uint8Array> {
  return toTransformStream(openAIUsageTap(meter, provider));
}

/**
 * As `openAIUsageTap`, for a stream whose usage Pilotfish asked for
 * (`stream_options.include_usage`) although the client did not: the usage-only chunk is read,
 * then dropped, so the client gets the stream it asked for. Events are forwarded whole, as
 * each completes. A chunk of whole events without a usage object (nearly every chunk) goes
 * out as the bytes that came: nothing is re-encoded.
 */
export function openAIUsageStrip(
  meter: UsageMeter,
  provider: string,
): SyncTransformer<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  const read = createSseDataReader();
  const ending = new OpenAIStreamEnd(provider);
  let pending = "";
  const forward = (event: string, enqueue: (out: Uint8Array) => void) => {
    let usageOnly = false;
    const data = read(event, true);
    for (const d of data) usageOnly = readEvent(d, meter) || usageOnly;
    if (!usageOnly) enqueue(encoder.encode(event));
    for (const d of data) {
      ending.event(d);
      ending.done(d, meter);
    }
  };
  const drain = (enqueue: (out: Uint8Array) => void) => {
    for (let m = EVENT_END.exec(pending); m !== null; m = EVENT_END.exec(pending)) {
      const end = m.index + m[0].length;
      forward(pending.slice(0, end), enqueue);
      pending = pending.slice(end);
    }
  };
  /**
   * An event still open across chunks is kept as its pieces, joined once it ends: adding
   * each chunk to one string and searching it again made a long event quadratic.
   */
  let pieces: string[] = [];
  let held = 0;
  /** The last characters held: an event end may begin in them. */
  let tail = "";
  const hold = (text: string) => {
    pieces.push(text);
    held += text.length;
    tail = (tail + text).slice(-3);
    // An upstream that never ends its event must not make the gateway hold all of it.
    if (held > MAX_SSE_EVENT_CHARS) {
      throw new GatewayError(
        "upstream_error",
        `Stream from provider "${provider}" sent an event longer than ${
          MAX_SSE_EVENT_CHARS / (1024 * 1024)
        } MiB`,
        { provider },
      );
    }
  };
  const release = (text: string): string => {
    const all = held === 0 ? text : pieces.join("") + text;
    pieces = [];
    held = 0;
    tail = "";
    return all;
  };
  return {
    transform(chunk, enqueue) {
      const text = decoder.decode(chunk, { stream: true });
      if (
        held === 0 && WHOLE_EVENTS.test(text) && !HAS_USAGE.test(text) &&
        !MAYBE_ERROR.test(text)
      ) {
        countContent(text, meter);
        enqueue(chunk);
        ending.scan(text);
        return;
      }
      if (!EVENT_END.test(tail + text)) return hold(text);
      pending = release(text);
      drain(enqueue);
      if (pending !== "") hold(release(pending));
      pending = "";
    },
    flush(enqueue) {
      pending = release(decoder.decode());
      drain(enqueue);
      if (pending !== "") forward(pending, enqueue);
      ending.end(meter);
    },
    cancel() {
      meter.settle("cut");
    },
  };
}

/** `openAIUsageStrip` as a `TransformStream`. */
export function createOpenAIUsageStrip(
  meter: UsageMeter,
  provider: string,
): TransformStream<Uint8Array, Uint8Array> {
  return toTransformStream(openAIUsageStrip(meter, provider));
}

const TAIL_BYTES = 2048;
const tailDecoder = new TextDecoder();

/**
 * Usage from a non-streaming OpenAI JSON body, without parsing the whole body: `usage`
 * sits near the end of every OpenAI-compatible response we know, so only the tail is
 * decoded and only the usage object is parsed (the whole body when the tail lacks it).
 */
export function findOpenAIUsage(body: Uint8Array): OpenAIUsage | null {
  const tail = body.byteLength > TAIL_BYTES ? body.subarray(body.byteLength - TAIL_BYTES) : body;
  return usageIn(tailDecoder.decode(tail)) ??
    (tail === body ? null : usageIn(tailDecoder.decode(body)));
}

function usageIn(text: string): OpenAIUsage | null {
  const key = text.lastIndexOf('"usage"');
  if (key < 0) return null;
  const start = text.indexOf("{", key);
  if (start < 0 || text.slice(key + 7, start).trim() !== ":") return null;
  const object = balancedObject(text, start);
  if (object === null) return null;
  try {
    return readOpenAIUsage({ usage: JSON.parse(object) });
  } catch {
    return null;
  }
}

/** Usage from a parsed non-streaming OpenAI response body, if present. */
export function readOpenAIUsage(body: unknown): OpenAIUsage | null {
  if (body === null || typeof body !== "object") return null;
  const usage = (body as { usage?: unknown }).usage;
  if (usage === null || typeof usage !== "object") return null;
  return typeof (usage as OpenAIUsage).prompt_tokens === "number" ? usage as OpenAIUsage : null;
}
