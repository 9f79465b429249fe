import assert from "node:assert/strict";
import { createUpstreamHandler } from "../../bench/upstream.ts";
import { manyStreams, tcpClient } from "../../bench/load.ts";

Deno.test("bench: concurrent streams follow the model's -c<N>-d<MS> shape and report stalls", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    createUpstreamHandler({ chunks: 2, chunkDelayMs: 0 }),
  );
  const client = tcpClient();
  try {
    const started = performance.now();
    const r = await manyStreams(
      { name: "direct", url: `http://127.0.0.1:${server.addr.port}/v1/chat/completions`, client },
      20,
      "up/gpt-4o-mini-c5-d20",
      20,
      0.05,
    );
    assert.equal(r.errors, 0);
    assert.equal(r.completed, 20);
    assert.equal(r.ttfb.length, 20);
    // Five chunks 20 ms apart: each stream lasts at least ~80 ms.
    assert.ok(performance.now() - started >= 80);
    assert.ok(r.maxStall < 1_000);
  } finally {
    client.close();
    await server.shutdown();
  }
});
