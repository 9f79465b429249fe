/**
 * An upstream that answers every request with `events` as an SSE stream, then holds the stream
 * open until the gateway cancels it (a stream cut by the client, or an upstream that keeps its
 * connection after its last event).
 */
export function startHoldingUpstream(events: string[]) {
  const enc = new TextEncoder();
  const cancelled = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    return new Response(
      new ReadableStream<Uint8Array>({
        start(controller) {
          for (const e of events) controller.enqueue(enc.encode(e));
        },
        cancel() {
          cancelled.resolve();
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    );
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    /** Resolves once the gateway let go of the stream. */
    cancelled: cancelled.promise,
    close: () => server.shutdown(),
  };
}
