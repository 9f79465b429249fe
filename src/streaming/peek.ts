/**
 * Read a stream's first chunk before committing to it: failover is only possible while
 * nothing has reached the client. Resolves with a stream that replays the first chunk
 * followed by the rest; rejects if the source fails, ends empty, or `signal` aborts first
 * (the source is cancelled then).
 */
export async function peekFirstChunk<T>(
  source: ReadableStream<T>,
  signal: AbortSignal,
): Promise<ReadableStream<T>> {
  const reader = source.getReader();
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  let first: ReadableStreamReadResult<T>;
  try {
    first = await Promise.race([reader.read(), aborted]);
  } catch (err) {
    await reader.cancel(err).catch(() => {});
    throw err;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
  aborted.catch(() => {}); // settled or never will be: no unhandled rejection either way
  if (first.done) throw new Error("Upstream stream ended before its first chunk");
  let pending: T | null = first.value;
  return new ReadableStream<T>({
    async pull(controller) {
      if (pending !== null) {
        controller.enqueue(pending);
        pending = null;
        return;
      }
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}
