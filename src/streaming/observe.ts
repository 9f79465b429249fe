import { GatewayError } from "../errors.ts";
import { StreamIdleTimeout } from "./gate.ts";
import { Slot } from "../slot.ts";
import { chunkReader } from "./reader.ts";

/**
 * How a stream really ended, for the access log:
 * - `complete`: the source ended and nothing went wrong;
 * - `client_abort`: the consumer (the client) went away first;
 * - `upstream_cut`: the upstream connection broke (reset, premature close of the body);
 * - `error`: an error reported in the stream (a provider's in-stream error event, a
 *   malformed or truncated event sequence, a gateway timeout), even when the client got it
 *   as an in-format error event followed by a clean end;
 * - `idle_timeout`: the stream gate ended a committed stream whose upstream went silent
 *   (routing.failover.stream_idle_timeout), with an in-format error event.
 */
export type StreamOutcome = "complete" | "client_abort" | "upstream_cut" | "error" | "idle_timeout";

export interface StreamObserver {
  /** Sees every chunk on its way to the consumer; must not mutate it. */
  onChunk?(chunk: Uint8Array): void;
  /** Called exactly once, when the stream ends for whatever reason. */
  onEnd?(outcome: StreamOutcome, error?: unknown): void;
  /**
   * When the source fails mid-stream: bytes to send before closing cleanly (an in-stream
   * error event in the client's format). Without it the error propagates to the consumer.
   */
  renderError?(error: unknown): Uint8Array;
}

interface Ending {
  readonly outcome: StreamOutcome;
  readonly error?: unknown;
}

/**
 * Streams that closed cleanly although their source failed (the failure was rendered as
 * an in-format error event). An observer wrapping such a stream - the access log wraps the
 * route's body - reads the real outcome here instead of seeing a plain `complete`.
 */
const renderedEndings = new Slot<ReadableStream<unknown>, Ending>("renderedEnding");

/**
 * Thrown by a relay's source once it has passed on everything: `failure` is what the upstream
 * reported in its own bytes, which the client already got as they came (an AWS exception
 * frame). The relay then ends cleanly, adding nothing, and its outcome is that failure's.
 */
export class RelayedFailure extends Error {
  override readonly name = "RelayedFailure";
  constructor(readonly failure: unknown) {
    super("The upstream reported a failure in its answer");
  }
}

/**
 * Failures a relay handed its consumer after its observers recorded them (the request's log
 * line has the outcome): Deno.serve reports such a body error again, which is no server fault.
 */
const recordedFailures = new WeakSet<object>();

/** Whether `err` is a body failure the request's own log line already tells. */
export function recordedFailure(err: unknown): boolean {
  return typeof err === "object" && err !== null && recordedFailures.has(err);
}

/** What a source failure means: an error the stream reported, or a broken connection. */
export function failureOutcome(error: unknown): "upstream_cut" | "error" | "idle_timeout" {
  if (error instanceof StreamIdleTimeout) return "idle_timeout";
  if (error instanceof GatewayError) return "error";
  if (error instanceof DOMException && error.name === "TimeoutError") return "error";
  return "upstream_cut";
}

/** One relay's observers, in the order they were attached (the first is the innermost). */
interface Relay {
  readonly observers: StreamObserver[];
  /** Set at the first pull: an observer attached later would miss chunks. */
  started: boolean;
  /** See `cutRelay`. */
  cutAt(signal: AbortSignal, onCut?: () => void): void;
}

/**
 * Relays no one has read from yet. Observing one of them adds the observer to it instead of
 * wrapping it in another stream: each layer of wrapping costs a pull, a read and a promise
 * per chunk, and an SSE answer is observed by up to three layers (the route's error
 * rendering, the write timeout, the access log), so a relayed chunk passes one hop, not four.
 */
const relays = new Slot<ReadableStream<unknown>, Relay>("relay");

/**
 * Wrap a byte stream so a consumer pulls through it one chunk at a time (no extra
 * buffering). Consumer cancellation is passed to the source, which is how a client
 * disconnect reaches the upstream `fetch`. A stream that is itself an unread relay (from
 * this function or `relayStream`) gets the observer attached and is returned as is.
 */
export function observeStream(
  source: ReadableStream<Uint8Array>,
  observer: StreamObserver,
): ReadableStream<Uint8Array> {
  const relay = relays.get(source);
  if (relay !== undefined && !relay.started && !source.locked) {
    relay.observers.push(observer);
    return source;
  }
  const reader = chunkReader(source);
  return relayStream(() => reader.read(), (reason) => reader.cancel(reason), source, [observer]);
}

/**
 * When `signal` aborts, end `stream` (an unread relay) with the signal's reason as a source
 * failure: the source is cancelled at once (releasing the upstream), `onCut` runs, and the
 * consumer's next read gets the failure, rendered by the relay's observers. Returns false
 * when `stream` is not an unread relay (the caller wraps it instead).
 */
export function cutRelay(
  stream: ReadableStream<unknown>,
  signal: AbortSignal,
  onCut?: () => void,
): boolean {
  const relay = relays.get(stream);
  if (relay === undefined || relay.started || stream.locked) return false;
  relay.cutAt(signal, onCut);
  return true;
}

/**
 * A stream that pulls chunks from `read` (one per consumer pull: `highWaterMark` 0) and
 * hands each to its observers; `cancel` passes a consumer's cancellation on. `source`, when
 * given, is the stream `read` drains (its rendered ending is passed on). Observers can be
 * attached with `observeStream` until the first pull.
 */
export function relayStream<T>(
  read: () => ReadableStreamReadResult<T> | Promise<ReadableStreamReadResult<T>>,
  cancel: (reason: unknown) => Promise<void>,
  source: ReadableStream<unknown> | null = null,
  initial: StreamObserver[] = [],
  /**
   * A failure the upstream already reported in bytes the client has (an AWS exception frame):
   * a client that hangs up on reading it ended a failed stream, not a good one.
   */
  reported: () => unknown = () => null,
): ReadableStream<T> {
  /** Set when a cut signal aborted: every read from then on fails with it. */
  let cutReason: { readonly reason: unknown } | null = null;
  let releaseCut = () => {};
  const relay: Relay = {
    observers: initial,
    started: false,
    cutAt(signal, onCut) {
      const onAbort = () => {
        if (cutReason !== null || ended) return;
        cutReason = { reason: signal.reason };
        onCut?.();
        cancel(signal.reason).catch(() => {});
      };
      const previous = releaseCut;
      releaseCut = () => {
        previous();
        signal.removeEventListener("abort", onAbort);
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    },
  };
  const observers = relay.observers;
  let ended = false;
  const end = (ending: Ending) => {
    if (ended) return;
    ended = true;
    releaseCut();
    for (const observer of observers) {
      if (ending.error === undefined) observer.onEnd?.(ending.outcome);
      else observer.onEnd?.(ending.outcome, ending.error);
    }
  };
  const out: ReadableStream<T> = new ReadableStream<T>({
    async pull(controller) {
      relay.started = true;
      let result: ReadableStreamReadResult<T>;
      try {
        if (cutReason !== null) throw cutReason.reason;
        result = await read();
        // A cut cancels the source, which ends a pending read as if the source were done.
        if (cutReason !== null) throw (cutReason as { reason: unknown }).reason;
      } catch (thrown) {
        // A cut wins over what the cancelled source made of its sudden end.
        const error = cutReason !== null ? cutReason.reason : thrown;
        if (error instanceof RelayedFailure) {
          // Already in the client's bytes: nothing to render, the body ends as the upstream's.
          const told = { outcome: failureOutcome(error.failure), error: error.failure };
          renderedEndings.set(out, told);
          controller.close();
          end(told);
          return;
        }
        const ending = { outcome: failureOutcome(error), error };
        // As nested wrappers would: the innermost observer that renders the failure turns it
        // into bytes, which the observers outside it see as a chunk; without one, it errors.
        let rendered: Uint8Array | null = null;
        for (const observer of observers) {
          if (rendered !== null) observer.onChunk?.(rendered);
          else if (observer.renderError) rendered = observer.renderError(error);
        }
        if (rendered !== null) {
          controller.enqueue(rendered as T);
          // Recorded before the close, so an outer observer sees it when it reads the end.
          renderedEndings.set(out, ending);
          controller.close();
        } else {
          if (typeof error === "object" && error !== null && observers.length > 0) {
            recordedFailures.add(error);
          }
          controller.error(error);
        }
        end(ending);
        return;
      }
      if (result.done) {
        const inner = source === null ? undefined : renderedEndings.get(source);
        if (inner) renderedEndings.set(out, inner);
        controller.close();
        end(inner ?? { outcome: "complete" });
        return;
      }
      const chunk = result.value;
      for (const observer of observers) observer.onChunk?.(chunk as Uint8Array);
      controller.enqueue(chunk);
    },
    async cancel(reason) {
      const failed = reported();
      end(
        failed === null
          ? { outcome: "client_abort", error: reason }
          : { outcome: failureOutcome(failed), error: failed },
      );
      await cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
  relays.set(out, relay);
  return out;
}
