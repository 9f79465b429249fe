import assert from "node:assert/strict";
import {
  createSseDataReader,
  encodeSseData,
  encodeSseEvent,
  SSE_DONE,
  SseEnd,
} from "../../src/streaming/mod.ts";
import { CHUNK_SIZES, rechunk, streamOf } from "../helpers/chunk.ts";

/**
 * Deno 2.9 runs tests without the op and resource sanitizers unless asked (`--trace-leaks`
 * alone only adds stack traces), so tests that start timers or streams opt in here.
 */
const SANITIZE = { sanitizeOps: true, sanitizeResources: true } as const;

const encoder = new TextEncoder();

/** A stream mixing every line ending, a comment, a named event and multi-byte text. */
const FIXTURE = encoder.encode(
  ": keep-alive\r\n\r\n" +
    'data: {"text":"héllo 🐟 世界"}\r\n\r\n' +
    "event: ping\r\ndata: line1\r\ndata:line2\r\nid: 7\r\n\r\n" +
    "data: lf only\n\n" +
    "data: cr only\r\r" +
    "data: [DONE]\r\n\r\n",
);

const EXPECTED = ['{"text":"héllo 🐟 世界"}', "line1\nline2", "lf only", "cr only", "[DONE]"];

/** Decode a byte stream with TextDecoderStream and feed it to one reader. */
async function readAll(stream: ReadableStream<Uint8Array>): Promise<string[]> {
  const read = createSseDataReader();
  const out: string[] = [];
  for await (const text of stream.pipeThrough(new TextDecoderStream())) out.push(...read(text));
  out.push(...read("", true));
  return out;
}

/** Same, with a TextDecoder in streaming mode over explicit chunks. */
function readChunks(chunks: readonly Uint8Array[]): string[] {
  const decoder = new TextDecoder();
  const read = createSseDataReader();
  const out: string[] = [];
  for (const c of chunks) out.push(...read(decoder.decode(c, { stream: true })));
  out.push(...read(decoder.decode(), true));
  return out;
}

Deno.test(
  "createSseDataReader() yields the same events at every chunk size",
  SANITIZE,
  async (t) => {
    for (const n of CHUNK_SIZES) {
      await t.step(`${n}-byte chunks`, async () => {
        assert.deepEqual(await readAll(streamOf(rechunk(FIXTURE, n))), EXPECTED);
      });
    }
  },
);

Deno.test("createSseDataReader() yields the same events for every two-way split", SANITIZE, () => {
  for (let i = 0; i <= FIXTURE.length; i++) {
    const chunks = [FIXTURE.subarray(0, i), FIXTURE.subarray(i)];
    assert.deepEqual(readChunks(chunks), EXPECTED, `split at byte ${i}`);
  }
});

Deno.test(
  "createSseDataReader() joins a \\r\\n split across chunks into one line end",
  SANITIZE,
  () => {
    const read = createSseDataReader();
    assert.deepEqual(read("data: a\r"), []);
    // A "\r" ends its line whatever follows: the blank line ends the event at once.
    assert.deepEqual(read("\n\r"), ["a"]);
    // The "\n" completes that "\r\n": no second blank line, no second event.
    assert.deepEqual(read("\n"), []);
    assert.deepEqual(read("data: b\r\n\n", true), ["b"]);
    // An empty chunk between "\r" and "\n" (a character split across reads) changes nothing.
    const again = createSseDataReader();
    assert.deepEqual(
      [...again("data: a\r"), ...again(""), ...again("\ndata: b\r\n\r\n")],
      ["a\nb"],
    );
  },
);

Deno.test(
  "createSseDataReader() keeps a multi-byte character split across chunks",
  SANITIZE,
  () => {
    const bytes = encoder.encode("data: 🐟é\n\n");
    // "🐟" is 4 bytes starting at offset 6: split after its second byte, then inside "é".
    const chunks = [bytes.subarray(0, 8), bytes.subarray(8, 11), bytes.subarray(11)];
    assert.deepEqual(readChunks(chunks), ["🐟é"]);
  },
);

Deno.test("createSseDataReader() ignores comments, other fields and blank events", SANITIZE, () => {
  const read = createSseDataReader();
  assert.deepEqual(read(": comment\n\nevent: x\nid: 1\nretry: 5\n\n\n\n"), []);
});

Deno.test("createSseDataReader() flushes an unterminated final event", SANITIZE, () => {
  const read = createSseDataReader();
  assert.deepEqual(read("data: first\n\ndata: par"), ["first"]);
  assert.deepEqual(read("tial"), []);
  assert.deepEqual(read("", true), ["partial"]);
  // After a flush the reader starts clean.
  assert.deepEqual(read("data: next\n\n"), ["next"]);
});

Deno.test("createSseDataReader() keeps state per reader", SANITIZE, () => {
  const a = createSseDataReader();
  const b = createSseDataReader();
  assert.deepEqual(a("data: from-a"), []);
  assert.deepEqual(b("data: from-b\n\n"), ["from-b"]);
  assert.deepEqual(a("\n\n"), ["from-a"]);
});

Deno.test(
  "encodeSseData() and encodeSseEvent() frame JSON that the reader reads back",
  SANITIZE,
  () => {
    const decoder = new TextDecoder();
    assert.equal(decoder.decode(encodeSseData({ a: "é" })), 'data: {"a":"é"}\n\n');
    assert.equal(
      decoder.decode(encodeSseEvent("message_stop", { type: "message_stop" })),
      'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    );
    assert.equal(decoder.decode(SSE_DONE), "data: [DONE]\n\n");
    const read = createSseDataReader();
    const text = decoder.decode(encodeSseData({ n: 1 })) + decoder.decode(SSE_DONE);
    assert.deepEqual(read(text), ['{"n":1}', "[DONE]"]);
  },
);

/** Whether the chunks, seen in order, end with a terminal event for `SseEnd`. */
function endsWholeIn(chunks: readonly Uint8Array[]): boolean {
  const end = new SseEnd();
  for (const chunk of chunks) end.see(chunk);
  return end.terminal;
}

/** Whether `text`, split into `n`-byte chunks, ends with a terminal event for `SseEnd`. */
function endsWhole(text: string, n: number): boolean {
  return endsWholeIn(rechunk(encoder.encode(text), n));
}

/** `text` with its LF line ends as written, as CRLF and as bare CR. */
function lineEndVariants(text: string): string[] {
  return [text, text.replaceAll("\n", "\r\n"), text.replaceAll("\n", "\r")];
}

/**
 * Every way to cut `text` into two chunks (the cut at every byte) and, for short texts, into
 * three: a blank line, a CRLF or an event's first line split by a chunk boundary.
 */
function* splits(text: string): Generator<[string, Uint8Array[]]> {
  const bytes = encoder.encode(text);
  for (let i = 0; i <= bytes.length; i++) {
    yield [`cut at ${i}`, [bytes.subarray(0, i), bytes.subarray(i)]];
  }
  if (bytes.length > 80) return;
  for (let i = 1; i < bytes.length; i++) {
    for (let j = i + 1; j < bytes.length; j++) {
      yield [`cut at ${i}, ${j}`, [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]];
    }
  }
}

const openaiChunk = 'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n';
const big = "x".repeat(5000);

Deno.test(
  "SseEnd: a stream that ends with its terminal event, whole, at every split",
  SANITIZE,
  () => {
    const whole = [
      openaiChunk + "data: [DONE]\n\n",
      openaiChunk + "data:[DONE]\r\n\r\n",
      'event: message_delta\ndata: {"type":"message_delta"}\n\n' +
      'event: message_stop\ndata: {"type":"message_stop"}\n\n',
      'data: {"type":"message_stop"}\n\n',
      `event: response.completed\ndata: {"type":"response.completed","response":{"t":"${big}"}}\n\n`,
      `event: response.incomplete\r\ndata: {"type":"response.incomplete"}\r\n\r\n`,
    ];
    for (const text of whole) {
      for (const n of [...CHUNK_SIZES, 4096, text.length]) {
        assert.equal(endsWhole(text, n), true, `${JSON.stringify(text.slice(0, 80))} in ${n}s`);
      }
    }
  },
);

Deno.test(
  "SseEnd: a stream cut before its terminal event, or mid-way through it, is not whole",
  SANITIZE,
  () => {
    const cut = [
      "",
      openaiChunk,
      openaiChunk + "data: [DONE]",
      openaiChunk + "data: [DONE]\n",
      "data: [DONE]\n\n" + openaiChunk,
      // A terminal name inside an event's data (model output, echoed metadata) is no end.
      'data: {"choices":[{"delta":{"content":"data: [DONE]"}}]}\n\n',
      'data: {"choices":[{"delta":{"content":"\\n\\nevent: message_stop\\n"}}]}\n\n',
      'event: message_delta\ndata: {"type":"message_delta"}\n\n',
      `event: response.completed\ndata: {"type":"response.completed","response":{"t":"${big}"}}`,
      'event: response.failed\ndata: {"type":"response.failed"}\n\n',
      'event: message_stop\ndata: {"type":"message_stop"}\n\n: keep-alive\n\n',
    ];
    for (const text of cut) {
      for (const n of [...CHUNK_SIZES, 4096, Math.max(1, text.length)]) {
        assert.equal(endsWhole(text, n), false, `${JSON.stringify(text.slice(0, 80))} in ${n}s`);
      }
    }
  },
);

Deno.test("SseEnd: a terminal event after a blank line split by the chunk boundary", () => {
  // The previous chunk ends with the blank line's first line end, the next starts with its
  // second and the terminal event.
  const cases: [string, string][] = [
    [openaiChunk.slice(0, -1), "\ndata: [DONE]\n\n"],
    [openaiChunk.replaceAll("\n", "\r\n").slice(0, -2), "\r\ndata: [DONE]\r\n\r\n"],
    [openaiChunk.replaceAll("\n", "\r\n").slice(0, -1), "\n\r\ndata: [DONE]\r\n\r\n"],
    [openaiChunk.replaceAll("\n", "\r").slice(0, -1), "\rdata: [DONE]\r\r"],
    [
      'event: message_delta\ndata: {"type":"message_delta"}\n',
      '\nevent: message_stop\ndata: {"type":"message_stop"}\n\n',
    ],
  ];
  for (const [a, b] of cases) {
    assert.equal(endsWholeIn([encoder.encode(a), encoder.encode(b)]), true, JSON.stringify(b));
  }
  // One line end on each side of the boundary is a CRLF: the same event's next line.
  const crlfOnly = ["data: x\r", "\ndata: [DONE]\r\n\r\n"].map((t) => encoder.encode(t));
  assert.equal(endsWholeIn(crlfOnly), false);
});

Deno.test("SseEnd: whole terminal events at every chunk boundary, LF, CRLF and CR", () => {
  const streams = [
    openaiChunk + "data: [DONE]\n\n",
    openaiChunk + "data:[DONE]\n\n",
    'event: message_delta\ndata: {"type":"message_delta"}\n\n' +
    'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    'data: {"type":"message_delta"}\n\ndata: {"type":"message_stop"}\n\n',
    'event: response.output_text.done\ndata: {"type":"response.output_text.done"}\n\n' +
    `event: response.completed\ndata: {"type":"response.completed","response":{"t":"${
      "y".repeat(300)
    }"}}\n\n`,
    'data: {"type":"response.incomplete"}\n\n',
    "event: response.incomplete\ndata: {}\n\n",
  ];
  for (const text of streams.flatMap(lineEndVariants)) {
    for (const [how, chunks] of splits(text)) {
      assert.equal(endsWholeIn(chunks), true, `${JSON.stringify(text.slice(-40))} ${how}`);
    }
  }
});

Deno.test("SseEnd: no terminal event, or a cut-off one, at every chunk boundary", () => {
  const streams = [
    openaiChunk,
    openaiChunk + "data: [DONE]",
    openaiChunk + "data: [DONE]\n",
    "data: [DONE]\n\n" + openaiChunk,
    // A terminal word inside an event's data, or on a later line of it, is no end.
    'data: {"choices":[{"delta":{"content":"data: [DONE]"}}]}\n\n',
    'data: {"choices":[{"delta":{"content":"\\n\\nevent: message_stop\\n"}}]}\n\n',
    'data: {"type":"message_delta"}\ndata: [DONE]\n\n',
    "event: message_delta\nevent: message_stop\ndata: {}\n\n",
    'event: message_stop\ndata: {"type":"message_stop"}\n\n: keep-alive\n\n',
    'event: message_stop\ndata: {"type":"message_stop"}',
    'event: message_stop\ndata: {"type":"message_stop"}\n',
    'event: response.failed\ndata: {"type":"response.failed"}\n\n',
    'event: message_delta\ndata: {"type":"message_delta"}\n\nevent: message_st',
  ];
  for (const text of streams.flatMap(lineEndVariants)) {
    for (const [how, chunks] of splits(text)) {
      assert.equal(endsWholeIn(chunks), false, `${JSON.stringify(text.slice(-40))} ${how}`);
    }
  }
});

Deno.test("SseEnd: reads its head off its own copy, not the chunk handed on", () => {
  const end = new SseEnd();
  const chunk = encoder.encode("data: [DONE]\n\n");
  end.see(chunk);
  // The consumer (or a reused read buffer) overwrites the chunk after it was passed on.
  chunk.fill(0x78);
  assert.equal(end.terminal, true);
});

Deno.test(
  "createSseDataReader() reads a line spanning many chunks once; past the cap the stream fails",
  SANITIZE,
  () => {
    const read = createSseDataReader(1_000);
    const piece = "x".repeat(100);
    assert.deepEqual(read("data: "), []);
    for (let i = 0; i < 9; i++) assert.deepEqual(read(piece), []);
    assert.deepEqual(read("\n\n"), ["x".repeat(900)]);
    // An upstream that never ends its line: refused once it passes the cap.
    assert.deepEqual(read("data: "), []);
    assert.throws(() => {
      for (let i = 0; i < 20; i++) read(piece);
    }, /longer than/);
    // So is an event of many short data lines.
    const again = createSseDataReader(1_000);
    assert.throws(() => {
      for (let i = 0; i < 20; i++) again(`data: ${piece}\n`);
    }, /longer than/);
  },
);
