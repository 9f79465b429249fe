/**
 * Request body readers under a deadline (server.read_timeout/write_timeout): the deadline's
 * error is thrown and the body cancelled; without one, or in time, nothing changes.
 */
import assert from "node:assert/strict";
import { GatewayError } from "../../src/errors.ts";
import {
  DEFAULT_BODY_MS,
  inflate,
  readCounted,
  readHeldBody,
  readJsonBody,
  readText,
} from "../../src/routes/body.ts";

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

/** A schedule whose timers fire only when the test says so. */
function manualSchedule() {
  const timers: { ms: number; fire: () => void; cancelled: boolean }[] = [];
  return {
    timers,
    schedule: (ms: number, fire: () => void) => {
      const t = { ms, fire, cancelled: false };
      timers.push(t);
      return () => {
        t.cancelled = true;
      };
    },
  };
}

Deno.test("readJsonBody() without a deadline: a body that stops half-way is a 408 after DEFAULT_BODY_MS", async (t) => {
  for (const declared of [true, false]) {
    await t.step(declared ? "Content-Length declared" : "chunked", async () => {
      const { schedule, timers } = manualSchedule();
      const part = twoPartBody('{"model":', '"x"}');
      const req = new Request("http://localhost/v1/chat/completions", {
        method: "POST",
        body: part.body,
        headers: declared ? { "content-length": "100" } : {},
      });
      const reading = readJsonBody(req, 1_000_000, undefined, schedule);
      await part.waiting;
      assert.equal(timers.length, 1);
      assert.equal(timers[0]!.ms, DEFAULT_BODY_MS);
      timers[0]!.fire();
      await assert.rejects(reading, (err: GatewayError) => {
        assert.equal(err.code, "request_timeout");
        assert.equal(err.status, 408);
        assert.match(err.message, /did not arrive within 30 s/);
        return true;
      });
    });
  }
});

Deno.test("readHeldBody() without a deadline: a passthrough body that stops is a 408, body cancelled", async () => {
  const { schedule, timers } = manualSchedule();
  const part = twoPartBody('{"model":', '"x"}');
  const reading = readHeldBody(part.body, 1_000_000, undefined, schedule);
  await part.waiting;
  assert.equal(timers[0]!.ms, DEFAULT_BODY_MS);
  timers[0]!.fire();
  await assert.rejects(reading, (err: GatewayError) => err.status === 408);
  assert.equal(((await part.cancelled) as GatewayError).code, "request_timeout");
  // In time: the bytes, and the timer cancelled.
  const again = manualSchedule();
  const whole = twoPartBody('{"model":', '"x"}');
  const read = readHeldBody(whole.body, 1_000_000, undefined, again.schedule);
  whole.finish();
  assert.equal(new TextDecoder().decode(await read), '{"model":"x"}');
  assert.ok(again.timers[0]!.cancelled);
});

Deno.test("readJsonBody() without a deadline: a body in time cancels its timer", async () => {
  const { schedule, timers } = manualSchedule();
  const req = new Request("http://localhost/", { method: "POST", body: '{"a":1}' });
  assert.deepEqual(await readJsonBody(req, 1_000, undefined, schedule), { a: 1 });
  assert.equal(timers.length, 1);
  assert.ok(timers[0]!.cancelled);
});

Deno.test("readJsonBody() with a declared length: parsed whole; empty and bad bodies are 400s", async () => {
  const post = (body: string | null, length: string) =>
    new Request("http://x/v1/chat/completions", {
      method: "POST",
      headers: { "content-length": length },
      body,
    });
  assert.deepEqual(await readJsonBody(post('{"a":1}', "7"), 1024), { a: 1 });
  for (
    const [body, length, message] of [
      [null, "0", /empty/],
      ["", "0", /empty/],
      ["{nope", "5", /not valid JSON/],
    ] as const
  ) {
    await assert.rejects(
      readJsonBody(post(body, length), 1024),
      (err: unknown) => err instanceof GatewayError && message.test(err.message),
    );
  }
  await assert.rejects(
    readJsonBody(post('{"a":1}', "4096"), 1024),
    (err: unknown) => err instanceof GatewayError && err.status === 413,
  );
});

/** `text` compressed with `coding`. */
async function compressed(
  text: string,
  coding: CompressionFormat,
): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream(coding));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

Deno.test("readJsonBody(): a gzip or deflate body is inflated within the limit; others are a 415", async (t) => {
  const json = JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] });
  const request = (body: BodyInit, encoding: string) =>
    new Request("http://x/", { method: "POST", body, headers: { "content-encoding": encoding } });
  for (const coding of ["gzip", "deflate"] as const) {
    await t.step(coding, async () => {
      assert.deepEqual(
        await readJsonBody(request(await compressed(json, coding), coding), 1_000),
        JSON.parse(json),
      );
    });
  }
  await t.step("identity is no coding", async () => {
    assert.deepEqual(await readJsonBody(request(json, "identity"), 1_000), JSON.parse(json));
  });
  await t.step("a small body that inflates past the limit: 413", async () => {
    const bomb = await compressed("x".repeat(100_000), "gzip");
    assert.ok(bomb.length < 1_000);
    const err = await readJsonBody(request(bomb, "gzip"), 1_000).catch((e) => e);
    assert.ok(err instanceof GatewayError);
    assert.equal(err.status, 413);
    assert.match(err.message, /once decompressed/);
  });
  await t.step("bytes that are not gzip: 400", async () => {
    const err = await readJsonBody(request(json, "gzip"), 1_000).catch((e) => e);
    assert.ok(err instanceof GatewayError);
    assert.equal(err.status, 400);
    assert.match(err.message, /not valid gzip/);
  });
  await t.step("an encoding we cannot read: 415 naming it", async () => {
    const err = await readJsonBody(request(json, "br"), 1_000).catch((e) => e);
    assert.ok(err instanceof GatewayError);
    assert.equal(err.status, 415);
    assert.match(err.message, /Content-Encoding "br"/);
  });
});

Deno.test("inflate(): a gzip bomb is stopped near the limit, not unpacked whole first", async () => {
  // 128 MiB of zeros gzip to ~128 KB; made from one reused chunk, so nothing big is held here.
  const zero = new Uint8Array(1024 * 1024);
  let left = 128;
  const zeros = new ReadableStream<BufferSource>({
    pull: (c) => left-- > 0 ? c.enqueue(zero) : c.close(),
  });
  const bomb = new Uint8Array(
    await new Response(zeros.pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
  );
  assert.ok(bomb.length < 1024 * 1024);
  const before = Deno.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 1);
  try {
    const err = await inflate(bomb, "gzip", 1024 * 1024).catch((e) => e);
    assert.ok(err instanceof GatewayError);
    assert.equal(err.status, 413);
  } finally {
    clearInterval(sampler);
  }
  peak = Math.max(peak, Deno.memoryUsage().rss);
  // Unpacked whole first, it would have taken 128 MiB or more on the way.
  assert.ok(peak - before < 64 * 1024 * 1024, `grew ${((peak - before) / 2 ** 20).toFixed(1)} MiB`);
});

Deno.test("readText() (admin routes): a declared length over the limit is a 413 at once, the body cancelled unread", async () => {
  const part = twoPartBody("{", "}");
  const { schedule, timers } = manualSchedule();
  const req = new Request("http://localhost/api/v1/keys", {
    method: "POST",
    body: part.body,
    headers: { "content-length": "99999999999" },
  });
  await assert.rejects(readText(req, 1024, undefined, schedule), (err: GatewayError) => {
    assert.equal(err.status, 413);
    return true;
  });
  assert.equal(timers.length, 0, "no wait for a body that is refused anyway");
  await part.cancelled;
});
