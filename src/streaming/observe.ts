export type StreamOutcome = "complete" | "cancelled" | "error";

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
  const end = (outcome: StreamOutcome, error?: unknown) => {
    if (ended) return;
    ended = true;
    observer.onEnd?.(outcome, error);
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (error) {
        if (observer.renderError) {
          controller.enqueue(observer.renderError(error));
          controller.close();
        } else {
          controller.error(error);
        }
        end("error", error);
        return;
      }
      if (result.done) {
        controller.close();
        end("complete");
        return;
      }
      observer.onChunk?.(result.value);
      controller.enqueue(result.value);
    },
    async cancel(reason) {
      end("cancelled", reason);
      await reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
}
