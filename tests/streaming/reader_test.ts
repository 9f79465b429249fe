import assert from "node:assert/strict";
import { chunkReader, markByteStream } from "../../src/streaming/reader.ts";

/**
 * A byte stream (as a `fetch` body is) that serves `total` bytes, `perPull` at most per pull;
 * marked as execute.ts marks a fetch body unless `marked` is false.
 */
function byteStream(total: number, perPull = total, marked = true) {
  let sent = 0;
  const asked: number[] = [];
  let cancelled: unknown = null;
  const stream = new ReadableStream<Uint8Array>({
    type: "bytes",
    pull(c) {
      const req = (c as ReadableByteStreamController).byobRequest!;
      const view = req.view!;
      asked.push(view.byteLength);
      const n = Math.min(view.byteLength, perPull, total - sent);
      if (n === 0) {
        c.close();
        req.respond(0);
        return;
      }
      new Uint8Array(view.buffer, view.byteOffset, n).fill(sent % 251);
      sent += n;
      req.respond(n);
    },
    cancel(reason) {
      cancelled = reason;
    },
    autoAllocateChunkSize: 65536,
  });
  if (marked) markByteStream(stream);
  return { stream, asked, cancelled: () => cancelled };
}

async function drain(reader: ReturnType<typeof chunkReader<Uint8Array>>) {
  const sizes: number[] = [];
  for (;;) {
    const r = await reader.read();
    if (r.done) return sizes;
    sizes.push(r.value.byteLength);
  }
}

Deno.test("chunkReader() reads a small byte stream in one small read", async () => {
  const src = byteStream(300);
  assert.deepEqual(await drain(chunkReader(src.stream)), [300]);
  assert.equal(src.asked[0], 4096, "no 64 KiB buffer for a 300-byte chunk");
});

Deno.test("chunkReader() doubles its reads while they come back full, up to 64 KiB", async () => {
  const src = byteStream(300_000);
  const sizes = await drain(chunkReader(src.stream));
  assert.equal(sizes.reduce((a, b) => a + b, 0), 300_000);
  assert.deepEqual(src.asked.slice(0, 6), [4096, 8192, 16384, 32768, 65536, 65536]);
  assert.ok(Math.max(...src.asked) <= 65536);
});

Deno.test("chunkReader() hands each chunk its own memory (nothing is reused under it)", async () => {
  const src = byteStream(10_000, 100);
  const reader = chunkReader(src.stream);
  const a = await reader.read();
  const b = await reader.read();
  assert.ok(!a.done && !b.done);
  assert.notEqual(a.value.buffer, b.value.buffer);
  assert.equal(a.value[0], 0);
  assert.equal(b.value[0], 100);
});

Deno.test("chunkReader() passes a cancel on; a default stream is read as it is", async () => {
  const src = byteStream(10_000, 100);
  const reader = chunkReader(src.stream);
  await reader.read();
  await reader.cancel("client left");
  assert.equal(src.cancelled(), "client left");
  const plain = chunkReader(ReadableStream.from(["a", "b"]));
  assert.deepEqual(await plain.read(), { done: false, value: "a" });
  assert.deepEqual(await plain.read(), { done: false, value: "b" });
  assert.equal((await plain.read()).done, true);
});

Deno.test("chunkReader() reads an unmarked stream with its default reader (no BYOB probe)", async () => {
  const src = byteStream(300, 300, false);
  assert.deepEqual(await drain(chunkReader(src.stream)), [300]);
  assert.equal(src.asked[0], 65536, "the stream's own allocation");
});
