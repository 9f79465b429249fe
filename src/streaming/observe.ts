import { GatewayError } from "../errors.ts";
import { StreamIdleTimeout } from "./gate.ts";

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
 * an in-format error event). An observer wrapping such a stream — the access log wraps the
 * route's body — reads the real outcome here instead of seeing a plain `complete`.
 */
const renderedEndings = new WeakMap<ReadableStream<Uint8Array>, Ending>();

/** What a source failure means: an error the stream reported, or a broken connection. */
export function failureOutcome(error: unknown): "upstream_cut" | "error" | "idle_timeout" {
  if (error instanceof StreamIdleTimeout) return "idle_timeout";
  if (error instanceof GatewayError) return "error";
  if (error instanceof DOMException && error.name === "TimeoutError") return "error";
  return "upstream_cut";
}

/**
 * Wrap a byte stream so a consumer pulls through it one chunk at a time (no extra
 * buffering). Consumer cancellation is passed to the source, which is how a client
 * disconnect reaches the upstream `fetch`.
 */
export function observeStream(
  source: ReadableStream<Uint8Array>,
  observer: StreamObserver,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let ended = false;
  const end = (ending: Ending) => {
    if (ended) return;
    ended = true;
    if (ending.error === undefined) observer.onEnd?.(ending.outcome);
    else observer.onEnd?.(ending.outcome, ending.error);
  };
  const out: ReadableStream<Uint8Array> = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (error) {
        const ending = { outcome: failureOutcome(error), error };
        if (observer.renderError) {
          controller.enqueue(observer.renderError(error));
          // Recorded before the close, so an outer observer sees it when it reads the end.
          renderedEndings.set(out, ending);
          controller.close();
        } else {
          controller.error(error);
        }
        end(ending);
        return;
      }
      if (result.done) {
        const inner = renderedEndings.get(source);
        if (inner) renderedEndings.set(out, inner);
        controller.close();
        end(inner ?? { outcome: "complete" });
        return;
      }
      observer.onChunk?.(result.value);
      controller.enqueue(result.value);
    },
    async cancel(reason) {
      end({ outcome: "client_abort", error: reason });
      await reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
  return out;
}
