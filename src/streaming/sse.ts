import { GatewayError } from "../errors.ts";
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

/** Two encoded pieces as one chunk (an ending written in one write). */
export function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * The longest SSE event an upstream may send (its `data:` lines together), and the longest
 * line: an image's base64 in one Gemini event is a few MiB; an upstream that never ends a
 * line must not make the gateway hold it all.
 */
export const MAX_SSE_EVENT_CHARS = 32 * 1024 * 1024;

/**
 * Incremental SSE line splitter: feed text chunks, get complete `data:` payloads back.
 * Each chunk is scanned once: a line that spans chunks is kept as its pieces and joined
 * when it ends (rescanning or re-concatenating it per chunk made a long line quadratic).
 * Accepts `\n`, `\r\n` and `\r` line ends, also when split across chunks. An event or a
 * line longer than `MAX_SSE_EVENT_CHARS` fails the stream.
 */
export function createSseDataReader(
  maxChars: number = MAX_SSE_EVENT_CHARS,
): (text: string, flush?: boolean) => string[] {
  /** The line begun by earlier chunks, in pieces. */
  let pieces: string[] = [];
  let pending = 0;
  let data: string[] = [];
  let eventChars = 0;
  /** The last chunk ended in "\r": a "\n" opening the next one belongs to it. */
  let afterCR = false;
  const tooLong = () =>
    new GatewayError(
      "upstream_error",
      `An upstream stream sent an event longer than ${maxChars / (1024 * 1024)} MiB`,
    );
  const line = (text: string, out: string[]) => {
    if (text === "") {
      if (data.length > 0) out.push(data.join("\n"));
      data = [];
      eventChars = 0;
    } else if (text.startsWith("data:")) {
      const payload = text.charCodeAt(5) === 32 ? text.slice(6) : text.slice(5);
      eventChars += payload.length;
      if (eventChars > maxChars) throw tooLong();
      data.push(payload);
    }
  };
  return (text, flush = false) => {
    const out: string[] = [];
    // Nothing new (a chunk that decoded to no character): a "\r" before it still waits.
    if (text === "" && !flush) return out;
    let start = 0;
    if (afterCR) {
      afterCR = false;
      if (text.charCodeAt(0) === 10) start = 1;
    }
    for (let i = start; i < text.length; i++) {
      const ch = text.charCodeAt(i);
      if (ch !== 10 && ch !== 13) continue;
      let whole = text.slice(start, i);
      if (pending > 0) {
        pieces.push(whole);
        whole = pieces.join("");
        pieces = [];
        pending = 0;
      }
      if (ch === 13) {
        if (i + 1 === text.length) afterCR = true;
        else if (text.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
      line(whole, out);
    }
    if (start < text.length) {
      const rest = start === 0 ? text : text.slice(start);
      pieces.push(rest);
      pending += rest.length;
      if (pending > maxChars) throw tooLong();
    }
    if (flush) {
      if (pending > 0) line(pieces.join(""), []);
      pieces = [];
      pending = 0;
      afterCR = false;
      if (data.length > 0) out.push(data.join("\n"));
      data = [];
      eventChars = 0;
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
 * SSE `data:` payloads up to and including the one `last` accepts, then the end: a stream
 * being translated finishes (its closing events go out) when the upstream's last event
 * arrives, not when the upstream gets round to closing its connection, which it may hold
 * open; the source is cancelled then.
 */
export function createSseEndStream(
  last: (data: string) => boolean,
): TransformStream<string, string> {
  return new TransformStream({
    transform(data, controller) {
      controller.enqueue(data);
      if (last(data)) controller.terminate();
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

/** An event's `type` where OpenAI and Anthropic write it, first: `{"type":"message_stop",...`. */
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

/** How many bytes of an event's start `SseEnd` keeps: enough for its first line. */
const HEAD_BYTES = 48;

/**
 * An event that ends an answer the client got whole: OpenAI's `[DONE]`, Anthropic's
 * `message_stop`, the Responses API's `response.completed` / `response.incomplete` (a capped
 * answer, still a whole one). Read off the event's start: its `event:` line or its data's
 * leading `type`.
 */
const TERMINAL_HEAD =
  /^(?:data: ?\[DONE\]\s*$|event: ?(?:message_stop|response\.(?:completed|incomplete))[\r\n]|data: ?\{\s*"type"\s*:\s*"(?:message_stop|response\.(?:completed|incomplete))")/;

const LF = 10;
const CR = 13;
const headDecoder = new TextDecoder();

/**
 * Whether the SSE bytes passed so far end with a terminal event (`TERMINAL_HEAD`), whole. A
 * client that cancels after it (the OpenAI SDKs stop reading at `[DONE]` and close while the
 * upstream's connection is still open) got the whole answer. A chunk costs a byte search back
 * from its end for the last event start and a copy of at most `HEAD_BYTES` of it (the chunk
 * itself is handed on, and may be reused); the head is decoded only when `terminal` is read.
 * Line ends are LF, CRLF or CR, also when a chunk boundary splits them or the blank line.
 */
export class SseEnd {
  /** The first bytes of the last event begun. */
  readonly #head = new Uint8Array(HEAD_BYTES);
  #headLength = 0;
  /**
   * Line ends in the run of them the bytes so far end with (capped at 2: a blank line).
   * Before any byte the stream stands at an event start, as after a blank line.
   */
  #ends = 2;
  /** That run ends with CR: an LF next completes a CRLF, not a new line end. */
  #endsInCr = false;

  see(chunk: Uint8Array): void {
    const n = chunk.length;
    if (n === 0) return;
    let end = n;
    while (end > 0 && isLineEnd(chunk[end - 1] as number)) end--;
    if (end === 0) {
      // Line ends only: they extend the run the earlier bytes ended with, and may end the
      // head's first line.
      if (this.#headLength < HEAD_BYTES) this.#copy(chunk, 0);
      this.#ends = Math.min(2, this.#ends + lineEnds(chunk, 0, n, this.#endsInCr));
      this.#endsInCr = chunk[n - 1] === CR;
      return;
    }
    const start = this.#lastEventStart(chunk, end);
    if (start >= 0) {
      this.#headLength = 0;
      this.#copy(chunk, start);
    } else if (this.#headLength < HEAD_BYTES) {
      // The event began in an earlier chunk: its first line may be cut between the two.
      this.#copy(chunk, 0);
    }
    this.#ends = Math.min(2, lineEnds(chunk, end, n, false));
    this.#endsInCr = end < n && chunk[n - 1] === CR;
  }

  /** The bytes so far end with a whole terminal event. */
  get terminal(): boolean {
    return this.#ends === 2 && this.#headLength > 0 &&
      TERMINAL_HEAD.test(headDecoder.decode(this.#head.subarray(0, this.#headLength)));
  }

  /** Append `chunk[from...]` to the head, up to its size. */
  #copy(chunk: Uint8Array, from: number): void {
    const stop = Math.min(chunk.length, from + HEAD_BYTES - this.#headLength);
    this.#head.set(chunk.subarray(from, stop), this.#headLength);
    this.#headLength += stop - from;
  }

  /**
   * Where the last event that starts in `chunk[0, end)` begins (`chunk[end - 1]` is no line
   * end): just after the last blank line (two line ends in a row, counting across the
   * chunk's start), or -1 when it began in an earlier chunk. Lines of JSON data hold no raw
   * line break, so the search hops line by line; each byte is searched at most once.
   */
  #lastEventStart(chunk: Uint8Array, end: number): number {
    let lf = chunk.lastIndexOf(LF, end - 1);
    let cr = chunk.lastIndexOf(CR, end - 1);
    let after = end;
    while (lf >= 0 || cr >= 0) {
      // `b` is the end of the run of line ends just before `after`, `a` its start.
      const b = Math.max(lf, cr) + 1;
      let a = b - 1;
      while (a > 0 && isLineEnd(chunk[a - 1] as number)) a--;
      const atChunkStart = a === 0;
      const ends = atChunkStart
        ? this.#ends + lineEnds(chunk, 0, b, this.#endsInCr)
        : lineEnds(chunk, a, b, false);
      if (ends >= 2) return b;
      if (atChunkStart) return -1;
      after = a;
      if (lf >= after) lf = chunk.lastIndexOf(LF, after - 1);
      if (cr >= after) cr = chunk.lastIndexOf(CR, after - 1);
    }
    // No line end in the chunk before its last line: it continues the earlier bytes' line.
    return this.#ends >= 2 ? 0 : -1;
  }
}

function isLineEnd(byte: number): boolean {
  return byte === LF || byte === CR;
}

/**
 * How many line ends the line-end bytes `chunk[a, b)` hold: one per byte, less one per CRLF
 * (including one begun just before `a` when `afterCr`).
 */
function lineEnds(chunk: Uint8Array, a: number, b: number, afterCr: boolean): number {
  let count = 0;
  let prevCr = afterCr;
  for (let i = a; i < b; i++) {
    const byte = chunk[i];
    if (!(byte === LF && prevCr)) count++;
    prevCr = byte === CR;
    // Two are a blank line; longer runs of line ends need no more counting.
    if (count > 2) break;
  }
  return count;
}
