/**
 * Synchronous byte transforms run inside the consumer's pull. `pipeThrough` a
 * `TransformStream` costs a writable queue, a readable queue and a pipe loop's promises per
 * chunk; a relayed SSE chunk on the hot path needs one read and one enqueue. The same
 * transformer can still be used as a `TransformStream` where a pipe is wanted.
 * @module
 */
import { relayStream } from "./observe.ts";
import { type ChunkReader, chunkReader, DONE, readDirectly } from "./reader.ts";

/**
 * A transform whose steps are synchronous; `enqueue` may be called any number of times. A
 * step that throws fails the stream after what it enqueued before throwing.
 */
export interface SyncTransformer<I, O> {
  transform(chunk: I, enqueue: (out: O) => void): void;
  /** After the source's last chunk. */
  flush?(enqueue: (out: O) => void): void;
  /** The consumer cancelled or the source failed before the end. */
  cancel?(reason: unknown): void;
}

/** `source` read through `t`: each `read` pulls source chunks until `t` yields one. */
class TransformingReader<I, O> implements ChunkReader<O> {
  readonly #reader: ChunkReader<I>;
  readonly #t: SyncTransformer<I, O>;
  #queue: O[] = [];
  #next = 0;
  #done = false;
  /** A transform or flush failure: raised once what the transformer emitted before it is read. */
  #failure: { readonly error: unknown } | null = null;
  readonly #push = (out: O) => {
    this.#queue.push(out);
  };

  constructor(source: ReadableStream<I>, t: SyncTransformer<I, O>) {
    this.#reader = chunkReader(source);
    this.#t = t;
  }

  async read(): Promise<ReadableStreamReadResult<O>> {
    while (this.#next === this.#queue.length && !this.#done) {
      this.#queue.length = 0;
      this.#next = 0;
      let result: ReadableStreamReadResult<I>;
      try {
        result = await this.#reader.read();
      } catch (err) {
        this.#t.cancel?.(err);
        throw err;
      }
      if (result.done) {
        this.#done = true;
        try {
          this.#t.flush?.(this.#push);
        } catch (err) {
          this.#failure = { error: err };
        }
        break;
      }
      try {
        this.#t.transform(result.value, this.#push);
      } catch (err) {
        this.#reader.cancel(err).catch(() => {});
        this.#done = true;
        this.#failure = { error: err };
      }
    }
    if (this.#next < this.#queue.length) {
      return { done: false, value: this.#queue[this.#next++] as O };
    }
    if (this.#failure !== null) throw this.#failure.error;
    return DONE;
  }

  cancel(reason?: unknown): Promise<void> {
    this.#t.cancel?.(reason);
    return this.#reader.cancel(reason);
  }
}

/**
 * `source` through `t`, pulled one source chunk at a time (no buffering beyond what a
 * chunk yields): consumer cancellation reaches the source, a source failure reaches the
 * consumer, and `t.cancel` runs in both cases. A consumer that takes it with `chunkReader`
 * reads the transform directly, without the stream in between.
 */
export function pullThrough<I, O>(
  source: ReadableStream<I>,
  t: SyncTransformer<I, O>,
): ReadableStream<O> {
  const reader = new TransformingReader(source, t);
  // A relay: observers and a cut attach to it instead of wrapping it (see observe.ts).
  const out = relayStream<O>(() => reader.read(), (reason) => reader.cancel(reason));
  readDirectly(out, reader);
  return out;
}

/** `t` as a `TransformStream`, for `pipeThrough`. */
export function toTransformStream<I, O>(t: SyncTransformer<I, O>): TransformStream<I, O> {
  return new TransformStream<I, O>({
    transform(chunk, controller) {
      t.transform(chunk, (out) => controller.enqueue(out));
    },
    flush(controller) {
      t.flush?.((out) => controller.enqueue(out));
    },
    cancel(reason) {
      t.cancel?.(reason);
    },
  } as Transformer<I, O>);
}
