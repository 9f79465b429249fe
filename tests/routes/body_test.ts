/**
 * Request body readers under a deadline (server.read_timeout/write_timeout): the deadline's
 * error is thrown and the body cancelled; without one, or in time, nothing changes.
 */
import assert from "node:assert/strict";
import { GatewayError } from "../../src/errors.ts";
import { readCounted, readJsonBody } from "../../src/routes/body.ts";

const enc = new TextEncoder();

/** A body whose first part is there at once and whose rest comes only via `finish()`. */
function twoPartBody(first: string, rest: string) {
  const cancelled = Promise.withResolvers<unknown>();
  const pulledTwice = Promise.withResolvers<void>();
  const restReady = Promise.withResolvers<void>();
  let pulls = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      pulls++;
      if (pulls === 1) return c.enqueue(enc.encode(first));
      pulledTwice.resolve();
      await restReady.promise;
      c.enqueue(enc.encode(rest));
      c.close();
    },
    cancel(reason) {
      cancelled.resolve(reason);
    },
  }, { highWaterMark: 0 });
  return {
    body,
    cancelled: cancelled.promise,
    /** Resolves once the reader waits for the rest. */
    waiting: pulledTwice.promise,
    finish: () => restReady.resolve(),
  };
}

const timeout = () => new GatewayError("request_timeout", "too slow");

Deno.test("readCounted() throws the deadline's reason and cancels the body when it aborts mid-read", async () => {
  const b = twoPartBody('{"a":', "1}");
  const deadline = new AbortController();
  const reading = readCounted(b.body, 1024, deadline.signal);
  await b.waiting;
  const reason = timeout();
  deadline.abort(reason);
  await assert.rejects(reading, (err) => err === reason);
  assert.equal(await b.cancelled, reason);
  b.finish();
});

Deno.test("readCounted() with a deadline already past reads nothing", async () => {
  const b = twoPartBody('{"a":', "1}");
  const reason = timeout();
  await assert.rejects(readCounted(b.body, 1024, AbortSignal.abort(reason)), (e) => e === reason);
  assert.equal(await b.cancelled, reason);
});

Deno.test("readCounted() in time: the bytes are whole, the limit still applies", async () => {
  const b = twoPartBody('{"a":', "1}");
  const deadline = new AbortController();
  const reading = readCounted(b.body, 1024, deadline.signal);
  await b.waiting;
  b.finish();
  assert.equal(new TextDecoder().decode(await reading), '{"a":1}');
  deadline.abort(timeout()); // too late to matter

  const big = twoPartBody("x".repeat(8), "y".repeat(8));
  big.finish();
  await assert.rejects(
    readCounted(big.body, 10, new AbortController().signal),
    (err) => err instanceof GatewayError && err.code === "payload_too_large",
  );
});

Deno.test("readJsonBody() with a declared length and a deadline can still be stopped", async () => {
  const b = twoPartBody('{"a":', "1}");
  const req = new Request("http://x/", {
    method: "POST",
    body: b.body,
    headers: { "content-length": "7" },
  });
  const deadline = new AbortController();
  const reading = readJsonBody(req, 1024, deadline.signal);
  await b.waiting;
  const reason = timeout();
  deadline.abort(reason);
  await assert.rejects(reading, (err) => err === reason);
  b.finish();

  const inTime = twoPartBody('{"a":', "1}");
  inTime.finish();
  const ok = new Request("http://x/", {
    method: "POST",
    body: inTime.body,
    headers: { "content-length": "7" },
  });
  assert.deepEqual(await readJsonBody(ok, 1024, new AbortController().signal), { a: 1 });
});
