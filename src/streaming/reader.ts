/**
 * Reading a stream chunk by chunk, the way every relay on the request path does.
 * @module
 */
import { Slot } from "../slot.ts";

/** What a consumer needs of a reader: the part a reader can supply without a stream. */
export interface ChunkReader<T> {
  read(): Promise<ReadableStreamReadResult<T>>;
  cancel(reason?: unknown): Promise<void>;
}

/** The one "done" read result, shared (it carries no state). */
export const DONE: ReadableStreamReadDoneResult<never> = { done: true };

/**
 * Bytes asked for by the first read of a byte stream, and the most any read asks for. Read
 * by default, a `fetch` body allocates a zero-filled 64 KiB buffer for every chunk, nearly
 * all of it garbage (an SSE event is a few hundred bytes): with 1,000 streams relayed that
 * was a fifth of the proxy's CPU. Each read here gets a fresh buffer (the chunk is handed on
 * as read, never copied) of the size the last read called for: a read that fills its
 * buffer doubles the next one, so a large body still moves in 64 KiB reads.
 */
const FIRST_READ_BYTES = 4 * 1024;
const MAX_READ_BYTES = 64 * 1024;

/** A byte stream read into buffers sized to what it sends (see `FIRST_READ_BYTES`). */
class ByteReader implements ChunkReader<Uint8Array> {
  readonly #reader: ReadableStreamBYOBReader;
  #size = FIRST_READ_BYTES;

  constructor(reader: ReadableStreamBYOBReader) {
    this.#reader = reader;
  }

  async read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    const result = await this.#reader.read(new Uint8Array(this.#size));
    if (result.done) return DONE;
    const view = result.value;
    if (view.byteLength === this.#size && this.#size < MAX_READ_BYTES) this.#size *= 2;
    return result;
  }

  cancel(reason?: unknown): Promise<void> {
    return this.#reader.cancel(reason);
  }
}

/**
 * Streams known to be byte streams (an upstream `fetch` body): only these are read BYOB.
 * Asking any other stream for a BYOB reader throws, and the throw (an error with its stack)
 * costs more than the buffers it would save.
 */
const byteStreams = new Slot<ReadableStream<Uint8Array>, true>("byte stream");

/** Mark `body` (a `fetch` response body) as one `chunkReader` reads into sized buffers. */
export function markByteStream(body: ReadableStream<Uint8Array> | null): void {
  if (body !== null) byteStreams.set(body, true);
}

/** Streams no one has read yet whose chunks a reader supplies without the stream. */
const direct = new Slot<ReadableStream<unknown>, ChunkReader<unknown>>("direct reader");

/**
 * `stream` (pulled with `highWaterMark` 0, so it reads nothing by itself) is `reader` in a
 * stream's clothes: `chunkReader` hands out `reader`, which saves the stream's queue and
 * promises per chunk. `reader.cancel` must do what cancelling the stream does.
 */
export function readDirectly<T>(stream: ReadableStream<T>, reader: ChunkReader<T>): void {
  direct.set(stream, reader as ChunkReader<unknown>);
}

/**
 * A reader of `source` that locks it: the reader behind it when it has one (see
 * `readDirectly`), through sized buffers when it is a marked byte stream (see
 * `markByteStream`), its default reader otherwise.
 */
export function chunkReader<T>(source: ReadableStream<T>): ChunkReader<T> {
  const inner = direct.get(source);
  if (inner !== undefined && !source.locked) {
    direct.delete(source);
    source.getReader(); // locked: no one else reads it
    return inner as ChunkReader<T>;
  }
  const bytes = source as ReadableStream<Uint8Array>;
  if (!byteStreams.has(bytes)) return source.getReader();
  let byob: ReadableStreamBYOBReader;
  try {
    byob = bytes.getReader({ mode: "byob" });
  } catch {
    // A stand-in fetch (tests) may answer with a plain stream: nothing was locked.
    return source.getReader();
  }
  return new ByteReader(byob) as unknown as ChunkReader<T>;
}
