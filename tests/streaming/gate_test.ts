/**
 * The stream gate (src/streaming/gate.ts): what commits a stream per wire format, the
 * first-content timer before commit, the idle watchdog after it; timers fired by hand.
 */
import assert from "node:assert/strict";
import { GatewayError } from "../../src/errors.ts";
import { type GateFormat, gateStream, StreamIdleTimeout } from "../../src/streaming/gate.ts";
import { manualSchedule } from "../helpers/manual_schedule.ts";

const enc = new TextEncoder();

/** A source that sends `chunks`, then stays silent until cancelled (records the reason). */
function silentAfter<T>(chunks: T[]) {
  let cancelled: unknown = null;
  const { promise: gone, resolve } = Promise.withResolvers<void>();
  const stream = new ReadableStream<T>({
    async pull(c) {
      const next = chunks.shift();
      if (next !== undefined) c.enqueue(next);
      else await gone;
    },
    cancel(reason) {
      cancelled = reason;
      resolve();
    },
  }, { highWaterMark: 0 });
  return { stream, cancelled: () => cancelled };
}

const role = `data: ${
  JSON.stringify({ choices: [{ index: 0, delta: { role: "assistant", content: "" } }] })
}\n\n`;
const text = `data: ${
  JSON.stringify({ choices: [{ index: 0, delta: { content: "Hi" }, finish_reason: null }] })
}\n\n`;

function opts(extra: { firstChunkMs?: number; idleMs?: number; now?: () => number } = {}) {
  const s = manualSchedule();
  return {
    s,
    opts: {
      signal: new AbortController().signal,
      provider: "up",
      schedule: s.schedule,
      now: extra.now ?? (() => 0),
      firstChunkMs: extra.firstChunkMs,
      idleMs: extra.idleMs,
    },
  };
}

Deno.test("gateStream() commits on the first content, not on keep-alives or a role-only chunk", async (t) => {
  const cases: [GateFormat, string[], number][] = [
    ["openai_sse", [": OPENROUTER PROCESSING\n\n", role, text, "data: [DONE]\n\n"], 3],
    [
      "anthropic_sse",
      [
        'event: message_start\ndata: {"type":"message_start","message":{}}\n\n',
        'event: ping\ndata: {"type":"ping"}\n\n',
        'event: content_block_start\ndata: {"type":"content_block_start","index":0}\n\n',
        'event: message_stop\ndata: {"type":"message_stop"}\n\n',
      ],
      3,
    ],
    [
      "responses_sse",
      [
        'event: response.created\ndata: {"type":"response.created","sequence_number":0}\n\n',
        'event: response.in_progress\ndata: {"type":"response.in_progress","sequence_number":1}\n\n',
        'event: response.output_item.added\ndata: {"type":"response.output_item.added"}\n\n',
        'event: response.completed\ndata: {"type":"response.completed"}\n\n',
      ],
      3,
    ],
    // An empty text block or message item opens output without any: not content yet.
    [
      "anthropic_sse",
      [
        'event: message_start\ndata: {"type":"message_start","message":{}}\n\n',
        'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n',
        'event: message_stop\ndata: {"type":"message_stop"}\n\n',
      ],
      3,
    ],
    [
      "responses_sse",
      [
        'event: response.created\ndata: {"type":"response.created","sequence_number":0}\n\n',
        'event: response.output_item.added\ndata: {"type":"response.output_item.added","item":{"type":"message","content":[]}}\n\n',
        'event: response.content_part.added\ndata: {"type":"response.content_part.added","part":{"type":"output_text","text":""}}\n\n',
        'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"Hi"}\n\n',
        'event: response.completed\ndata: {"type":"response.completed"}\n\n',
      ],
      4,
    ],
  ];
  for (const [format, events, heldUntil] of cases) {
    await t.step(
      `${format} (${events.length} events), re-chunked at 1, 7 and 64 bytes`,
      async () => {
        for (const size of [1, 7, 64]) {
          const bytes = enc.encode(events.join(""));
          const pieces: Uint8Array[] = [];
          for (let i = 0; i < bytes.length; i += size) pieces.push(bytes.slice(i, i + size));
          // Where content begins: the gate must have read past it, and not before.
          const contentEnd = enc.encode(events.slice(0, heldUntil).join("")).length;
          let read = 0;
          const source = new ReadableStream<Uint8Array>({
            pull(c) {
              const next = pieces.shift();
              if (next === undefined) return c.close();
              read += next.length;
              c.enqueue(next);
            },
          }, { highWaterMark: 0 });
          const { opts: o } = opts();
          const out = await gateStream(source, format, o);
          assert.ok(read >= contentEnd && read < contentEnd + size, `${read} vs ${contentEnd}`);
          const all = new Uint8Array(await new Response(out).arrayBuffer());
          assert.deepEqual(all, bytes, "every byte relayed, in order");
        }
      },
    );
  }
  await t.step("typed chunks: a role-only chunk waits, text commits", async () => {
    const chunks = [
      { choices: [{ index: 0, delta: { role: "assistant" }, finish_reason: null }] },
      { choices: [{ index: 0, delta: { content: "x" }, finish_reason: null }] },
    ];
    const { stream } = silentAfter([...chunks]);
    const { opts: o } = opts();
    const out = await gateStream(stream, "chunks", o);
    const reader = out.getReader();
    assert.deepEqual((await reader.read()).value, chunks[0]);
    assert.deepEqual((await reader.read()).value, chunks[1]);
    await reader.cancel();
  });
});

Deno.test("gateStream() fails the attempt when no content came within first_chunk_timeout", async () => {
  const source = silentAfter([enc.encode(": keep-alive\n\n"), enc.encode(role)]);
  const { s, opts: o } = opts({ firstChunkMs: 2_000 });
  const gated = gateStream(source.stream, "openai_sse", o);
  const timer = await s.next();
  assert.equal(timer.ms, 2_000);
  timer.fire();
  await assert.rejects(gated, (err: unknown) => {
    assert.ok(err instanceof GatewayError);
    assert.equal(err.code, "upstream_timeout");
    assert.match(err.message, /no content within 2000 ms/);
    return true;
  });
  assert.ok(source.cancelled() instanceof GatewayError, "the upstream is released");
  assert.equal(s.pending.size, 0);
});

Deno.test("gateStream() fails an attempt whose stream sends an event that is not JSON before any content", async () => {
  for (const format of ["openai_sse", "anthropic_sse", "responses_sse"] as const) {
    const source = silentAfter([
      enc.encode(": keep-alive\n\n"),
      enc.encode("data: {not json}\n\n"),
    ]);
    const { opts: o } = opts();
    await assert.rejects(gateStream(source.stream, format, o), (err: unknown) => {
      assert.ok(err instanceof GatewayError, format);
      assert.equal(err.code, "upstream_error");
      assert.equal(err.status, 502);
      assert.match(err.message, /Provider "up" sent a stream event that is not JSON/);
      return true;
    });
    assert.ok(source.cancelled() !== null, "the upstream is released");
  }
});

Deno.test("gateStream() ends a committed stream that goes silent past stream_idle_timeout", async (t) => {
  await t.step(
    "silence while the client waits: StreamIdleTimeout, upstream cancelled",
    async () => {
      let now = 0;
      const source = silentAfter([enc.encode(text)]);
      const { s, opts: o } = opts({ idleMs: 30_000, now: () => now });
      const reader = (await gateStream(source.stream, "openai_sse", o)).getReader();
      assert.equal(new TextDecoder().decode((await reader.read()).value), text);
      const pending = reader.read(); // the client waits for more
      const timer = await s.next();
      now += 29_999;
      timer.fire();
      // Not quite idle: the check re-arms for what is left.
      const again = await s.next();
      assert.equal(again.ms, 1);
      now += 1;
      again.fire();
      await assert.rejects(pending, (err: unknown) => err instanceof StreamIdleTimeout);
      assert.ok(source.cancelled() instanceof StreamIdleTimeout);
    },
  );
  await t.step("a client that does not read is no idle upstream", async () => {
    let now = 0;
    const source = silentAfter([enc.encode(text), enc.encode(text)]);
    const { s, opts: o } = opts({ idleMs: 1_000, now: () => now });
    const reader = (await gateStream(source.stream, "openai_sse", o)).getReader();
    await reader.read();
    now += 5_000;
    (await s.next()).fire();
    const rearmed = await s.next();
    assert.equal(rearmed.ms, 1_000);
    assert.equal(new TextDecoder().decode((await reader.read()).value), text);
    await reader.cancel();
    assert.equal(s.pending.size, 0, "the watchdog stops with the stream");
  });
});

/** A source whose chunk k is sent once `release(k)` is called; silent after the last. */
function paced(chunks: Uint8Array[]) {
  let cancelled: unknown = null;
  const gates = chunks.map(() => Promise.withResolvers<void>());
  const { promise: gone, resolve: end } = Promise.withResolvers<void>();
  let i = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (i >= chunks.length) return await gone;
      await gates[i]!.promise;
      c.enqueue(chunks[i++]!);
    },
    cancel(reason) {
      cancelled = reason;
      end();
    },
  }, { highWaterMark: 0 });
  return { stream, release: (k: number) => gates[k]!.resolve(), cancelled: () => cancelled };
}

/** Read `n` more chunks of `source`, each released after `wait()` passed the clock on. */
async function readPaced(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  source: { release(k: number): void },
  n: number,
  wait: () => void,
) {
  for (let k = 1; k <= n; k++) {
    const next = reader.read();
    await settle(); // the pull has started: the watchdog counts from here
    wait();
    source.release(k);
    await next;
  }
}

/** Let pending microtasks run (a stream's pull starts in one). */
async function settle() {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

Deno.test("gateStream(): keep-alives after commit are silence to the idle watchdog", async (t) => {
  for (
    const [format, first, keepAlive] of [
      ["openai_sse", text, ": keep-alive\n\n"],
      [
        "anthropic_sse",
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n',
        'event: ping\ndata: {"type": "ping"}\n\n',
      ],
    ] as const
  ) {
    await t.step(format, async () => {
      let now = 0;
      const source = paced([first, keepAlive, keepAlive, keepAlive].map((c) => enc.encode(c)));
      source.release(0);
      const { s, opts: o } = opts({ idleMs: 1_000, now: () => now });
      const reader = (await gateStream(source.stream, format, o)).getReader();
      await reader.read(); // the content
      // Three keep-alives, each after 400 ms of waiting: 1,200 ms of the upstream saying
      // nothing but "still here".
      await readPaced(reader, source, 3, () => now += 400);
      const pending = reader.read();
      await settle();
      (await s.next()).fire();
      await assert.rejects(pending, (err: unknown) => err instanceof StreamIdleTimeout);
      assert.ok(source.cancelled() instanceof StreamIdleTimeout);
    });
  }
  await t.step("content between them keeps it alive", async () => {
    let now = 0;
    const source = paced(
      [text, ": keep-alive\n\n", text, ": keep-alive\n\n"].map((c) => enc.encode(c)),
    );
    source.release(0);
    const { s, opts: o } = opts({ idleMs: 1_000, now: () => now });
    const reader = (await gateStream(source.stream, "openai_sse", o)).getReader();
    await reader.read();
    await readPaced(reader, source, 3, () => now += 400);
    // 400 ms since the last content: the check re-arms for what is left.
    const pending = reader.read();
    await settle();
    (await s.next()).fire();
    const again = await s.next();
    assert.equal(again.ms, 600);
    await reader.cancel();
    await pending.catch(() => {});
  });
});

Deno.test("gateStream(): opening events then a clean end fail the attempt (no content, nothing sent): a 502 failover retries", async () => {
  for (
    const [format, events] of [
      ["openai_sse", [role, "data: [DONE]\n\n".replace("[DONE]", "")]],
      [
        "anthropic_sse",
        [
          'event: message_start\ndata: {"type":"message_start","message":{}}\n\n',
          'event: ping\ndata: {"type":"ping"}\n\n',
        ],
      ],
    ] as const
  ) {
    const stream = ReadableStream.from(
      events.filter((e) => e !== "data: \n\n").map((e) => enc.encode(e)),
    );
    const err = await gateStream(stream, format, opts().opts).then(
      () => assert.fail("committed"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof GatewayError, String(err));
    assert.equal(err.info.upstreamStatus, 502);
    assert.match(err.message, /ended before any content/);
  }
});
