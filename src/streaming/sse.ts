import { type SyncTransformer, toTransformStream } from "./pull.ts";

const encoder = new TextEncoder();

/** The OpenAI stream terminator. */
export const SSE_DONE: Uint8Array = encoder.encode("data: [DONE]\n\n");

/** Encode one SSE `data:` event carrying JSON. */
export function encodeSseData(value: unknown): Uint8Array {
  return encoder.encode(`data: ${JSON.stringify(value)}\n\n`);
}

/** Encode a named SSE event (Anthropic style). */
export function encodeSseEvent(event: string, value: unknown): Uint8Array {
  return encoder.encode(`event: ${event}\ndata: ${JSON.stringify(value)}\n\n`);
}

/**
 * Incremental SSE line splitter: feed text chunks, get complete `data:` payloads back.
 * Keeps only the trailing partial line between calls (never re-splits the whole buffer),
 * and accepts `\n`, `\r\n` and `\r` line ends, also when split across chunks.
 */
export function createSseDataReader(): (text: string, flush?: boolean) => string[] {
  let partial = "";
  let data: string[] = [];
  return (text, flush = false) => {
    const out: string[] = [];
    const buf = partial + text;
    let start = 0;
    for (let i = 0; i < buf.length; i++) {
      const ch = buf.charCodeAt(i);
      if (ch !== 10 && ch !== 13) continue;
      // A "\r" at the very end may be the first half of "\r\n": wait for more input.
      if (ch === 13 && i === buf.length - 1 && !flush) break;
      const line = buf.slice(start, i);
      if (ch === 13 && buf.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
      if (line === "") {
        if (data.length > 0) out.push(data.join("\n"));
        data = [];
      } else if (line.startsWith("data:")) {
        data.push(line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5));
      }
    }
    partial = buf.slice(start);
    if (flush) {
      if (partial.startsWith("data:")) {
        data.push(partial.slice(partial.charCodeAt(5) === 32 ? 6 : 5));
      }
      if (data.length > 0) out.push(data.join("\n"));
      partial = "";
      data = [];
    }
    return out;
  };
}

/** Framing only, as a stage: text in, the `data:` payload of each SSE event out. */
export function createSseDataStream(): TransformStream<string, string> {
  const read = createSseDataReader();
  return new TransformStream({
    transform(text, controller) {
      for (const data of read(text)) controller.enqueue(data);
    },
    flush(controller) {
      for (const data of read("", true)) controller.enqueue(data);
    },
  });
}

/**
 * Forward SSE bytes untouched while handing each `data:` payload to `onData` on the side
 * (usage taps and sniffers). `onEnd` runs after the last event, `onCancel` when the consumer
 * cancels or the source fails first.
 */
export function sseTap(
  onData: (data: string) => void,
  onEnd: () => void = () => {},
  onCancel: () => void = onEnd,
): SyncTransformer<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  const read = createSseDataReader();
  return {
    transform(chunk, enqueue) {
      enqueue(chunk);
      for (const data of read(decoder.decode(chunk, { stream: true }))) onData(data);
    },
    flush() {
      for (const data of read(decoder.decode(), true)) onData(data);
      onEnd();
    },
    cancel() {
      onCancel();
    },
  };
}

/** `sseTap` as a `TransformStream`, for `pipeThrough`. */
export function createSseTap(
  onData: (data: string) => void,
  onEnd: () => void = () => {},
  onCancel: () => void = onEnd,
): TransformStream<Uint8Array, Uint8Array> {
  return toTransformStream(sseTap(onData, onEnd, onCancel));
}

/**
 * Whether the bytes passed so far end where an SSE event ends (a blank line): an event
 * appended after bytes that stop mid-line (an upstream cut mid-event) must start with one,
 * or it is glued onto the broken line and no client can parse it.
 */
export class SseTail {
  /** The last four bytes seen, the most recent lowest. */
  #last = 0;

  see(chunk: Uint8Array): void {
    for (let i = Math.max(0, chunk.length - 4); i < chunk.length; i++) {
      this.#last = ((this.#last << 8) | (chunk[i] as number)) >>> 0;
    }
  }

  /** True before any byte, or after a blank line (LF LF, CR CR or CRLF CRLF). */
  get clean(): boolean {
    const t = this.#last;
    return t === 0 || (t & 0xffff) === 0x0a0a || (t & 0xffff) === 0x0d0d || t === 0x0d0a0d0a;
  }

  /** What an appended event must start with: nothing, or the blank line the bytes lack. */
  lead(): string {
    return this.clean ? "" : "\n\n";
  }
}

/** An event's `type` where OpenAI and Anthropic write it, first: `{"type":"message_stop",…`. */
const LEADING_TYPE = /^\s*\{\s*"type"\s*:\s*"([^"\\]*)"/;

/**
 * An SSE event's own (top-level) `type`: read off its start, else parsed. Never one matched
 * anywhere inside: events echo what clients sent (metadata, tool inputs, schemas).
 */
export function sseEventType(data: string): string | undefined {
  const m = LEADING_TYPE.exec(data);
  if (m !== null) return m[1];
  try {
    const type = (JSON.parse(data) as { type?: unknown } | null)?.type;
    return typeof type === "string" ? type : undefined;
  } catch {
    return undefined;
  }
}

/** How many characters of an event's start `SseEnd` keeps: enough for its first line. */
const HEAD_CHARS = 48;

/**
 * An event that ends an answer the client got whole: OpenAI's `[DONE]`, Anthropic's
 * `message_stop`, the Responses API's `response.completed` / `response.incomplete` (a capped
 * answer, still a whole one). Read off the event's start: its `event:` line or its data's
 * leading `type`.
 */
const TERMINAL_HEAD =
  /^(?:data: ?\[DONE\]\s*$|event: ?(?:message_stop|response\.(?:completed|incomplete))[\r\n]|data: ?\{\s*"type"\s*:\s*"(?:message_stop|response\.(?:completed|incomplete))")/;

/**
 * Whether the SSE bytes passed so far end with a terminal event (`TERMINAL_HEAD`), whole. A
 * client that cancels after it (the OpenAI SDKs stop reading at `[DONE]` and close while the
 * upstream's connection is still open) got the whole answer. A chunk costs a search back
 * from its end for the last event start; only the first characters of each event are kept.
 */
export class SseEnd {
  readonly #tail = new SseTail();
  /** The start of the last event begun. */
  #head = "";
  readonly #decoder = new TextDecoder();

  see(chunk: Uint8Array): void {
    const fresh = this.#tail.clean;
    this.#tail.see(chunk);
    // The last event start is searched for before the line breaks that close the chunk.
    let end = chunk.length;
    while (end > 0 && (chunk[end - 1] === 10 || chunk[end - 1] === 13)) end--;
    const start = end === 0 ? 0 : lastEventStart(chunk, end);
    if (end > 0 && (start > 0 || fresh)) {
      this.#head = this.#decoder.decode(chunk.subarray(start, start + HEAD_CHARS));
    } else if (!fresh && this.#head.length < HEAD_CHARS) {
      // The event began in an earlier chunk: its first line may be cut between the two.
      this.#head += this.#decoder.decode(chunk.subarray(0, HEAD_CHARS - this.#head.length));
    }
  }

  /** The bytes so far end with a whole terminal event. */
  get terminal(): boolean {
    return this.#tail.clean && this.#head !== "" && TERMINAL_HEAD.test(this.#head);
  }
}

/**
 * Where the last event in `chunk[0, end)` begins: just after its last blank line (LF LF or
 * CRLF CRLF), or 0 when there is none. Lines of JSON data hold no raw line break, so the
 * search hops line by line.
 */
function lastEventStart(chunk: Uint8Array, end: number): number {
  for (let i = chunk.lastIndexOf(10, end - 1); i > 0; i = chunk.lastIndexOf(10, i - 1)) {
    if (chunk[i - 1] === 10) return i + 1;
    if (chunk[i - 1] === 13 && i > 2 && chunk[i - 2] === 10 && chunk[i - 3] === 13) return i + 1;
  }
  return 0;
}
