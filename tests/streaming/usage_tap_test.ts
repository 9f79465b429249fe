import assert from "node:assert/strict";
import type { OpenAIUsage } from "../../src/schema/openai.ts";
import {
  createOpenAIUsageTap,
  createUsageMeter,
  findOpenAIUsage,
  openAIUsageStrip,
  openAIUsageTap,
  pullThrough,
  readOpenAIUsage,
  usageNow,
} from "../../src/streaming/mod.ts";
import { CHUNK_SIZES, concatBytes, rechunk, streamOf } from "../helpers/chunk.ts";
import type { GatewayError } from "../../src/errors.ts";

/**
 * Deno 2.9 runs tests without the op and resource sanitizers unless asked (`--trace-leaks`
 * alone only adds stack traces), so tests that start timers or streams opt in here.
 */
const SANITIZE = { sanitizeOps: true, sanitizeResources: true } as const;

const encoder = new TextEncoder();

const USAGE = {
  prompt_tokens: 9,
  completion_tokens: 12,
  total_tokens: 21,
  prompt_tokens_details: { cached_tokens: 0 },
};

function chunkEvent(delta: Record<string, unknown>, finish: string | null): string {
  const chunk = {
    id: "chatcmpl-1",
    object: "chat.completion.chunk",
    created: 1,
    model: "gpt-4o-mini",
    choices: [{ index: 0, delta, finish_reason: finish }],
    usage: null,
  };
  return `data: ${JSON.stringify(chunk)}\r\n\r\n`;
}

/** An OpenAI stream with `stream_options.include_usage`, CRLF framed, multi-byte text. */
const STREAM = encoder.encode(
  chunkEvent({ role: "assistant", content: "" }, null) +
    chunkEvent({ content: "Héllo 🐟" }, null) +
    chunkEvent({ content: " 世界" }, null) +
    chunkEvent({}, "stop") +
    `data: ${
      JSON.stringify({
        id: "chatcmpl-1",
        object: "chat.completion.chunk",
        choices: [],
        usage: USAGE,
      })
    }\r\n\r\n` +
    "data: [DONE]\r\n\r\n",
);

async function tap(
  chunks: Uint8Array[],
): Promise<{ out: Uint8Array[]; usages: OpenAIUsage[] }> {
  const meter = createUsageMeter();
  const out = await Array.fromAsync(
    streamOf(chunks).pipeThrough(createOpenAIUsageTap(meter, "up")),
  );
  const usage = await meter.usage;
  return { out, usages: usage === null ? [] : [usage] };
}

Deno.test(
  "createOpenAIUsageTap() passes bytes through unchanged at every chunk size",
  SANITIZE,
  async (t) => {
    for (const n of CHUNK_SIZES) {
      await t.step(`${n}-byte chunks`, async () => {
        const chunks = rechunk(STREAM, n);
        const { out } = await tap(chunks);
        assert.equal(out.length, chunks.length);
        out.forEach((c, i) => assert.deepEqual(c, chunks[i], `chunk ${i}`));
        assert.deepEqual(concatBytes(out), STREAM);
      });
    }
  },
);

Deno.test(
  "createOpenAIUsageTap() reports usage from the final usage chunk once",
  SANITIZE,
  async (t) => {
    for (const n of CHUNK_SIZES) {
      await t.step(`${n}-byte chunks`, async () => {
        const { usages } = await tap(rechunk(STREAM, n));
        assert.deepEqual(usages, [USAGE]);
      });
    }
  },
);

Deno.test(
  "createOpenAIUsageTap() reports usage from an unterminated last event",
  SANITIZE,
  async () => {
    const text = chunkEvent({}, "stop") + `data: ${JSON.stringify({ choices: [], usage: USAGE })}`;
    const { usages } = await tap(rechunk(encoder.encode(text), 7));
    assert.deepEqual(usages, [USAGE]);
  },
);

Deno.test(
  "createOpenAIUsageTap() without usage estimates the output it relayed; survives bad JSON",
  SANITIZE,
  async () => {
    const bytes = encoder.encode(
      chunkEvent({ content: "hi there" }, null) +
        'data: {"usage": {not json\n\n' +
        'data: {"usage": {"completion_tokens": 3}}\n\n' +
        "data: [DONE]\n\n",
    );
    const { out, usages } = await tap(rechunk(bytes, 7));
    // 8 characters of content, ~4 a token; the prompt is estimated from the request later.
    assert.deepEqual(usages, [
      { prompt_tokens: 0, completion_tokens: 2, total_tokens: 2, estimated: true },
    ]);
    assert.deepEqual(concatBytes(out), bytes);
  },
);

Deno.test(
  "createOpenAIUsageTap() settles a cancelled stream with the usage it saw",
  SANITIZE,
  async () => {
    const bytes = encoder.encode(
      chunkEvent({ content: "hi" }, null) +
        `data: ${JSON.stringify({ choices: [], usage: USAGE })}\n\n`,
    );
    const meter = createUsageMeter();
    let sent = false;
    const source = new ReadableStream<Uint8Array>({
      pull(c) {
        if (!sent) c.enqueue(bytes);
        sent = true; // then stays open, like a slow upstream
      },
    });
    const reader = source.pipeThrough(createOpenAIUsageTap(meter, "up")).getReader();
    await reader.read();
    // Seen but not settled yet: the live view already has it (the access log reads this).
    assert.deepEqual(usageNow(meter.usage), USAGE);
    await reader.cancel("client went away");
    assert.deepEqual(await meter.usage, USAGE);
  },
);

Deno.test(
  "createOpenAIUsageTap(): a cut stream's estimate is the same for whole-event reads and split ones",
  SANITIZE,
  async () => {
    // Two choices in one event: each delta's text counts.
    const twoChoices = `data: ${
      JSON.stringify({
        choices: [
          { index: 0, delta: { content: "abcd" }, finish_reason: null },
          { index: 1, delta: { content: "efgh" }, finish_reason: null },
        ],
        usage: null,
      })
    }\n\n`;
    const events = [
      chunkEvent({ role: "assistant", content: "" }, null),
      chunkEvent({ content: "Héllo 🐟 and more" }, null),
      twoChoices,
      chunkEvent({ content: "x".repeat(40) }, null),
    ];
    const estimates = [];
    for (
      const chunks of [
        events.map((e) => encoder.encode(e)),
        rechunk(encoder.encode(events.join("")), 7),
      ]
    ) {
      const meter = createUsageMeter();
      const reader = streamOf(chunks).pipeThrough(createOpenAIUsageTap(meter, "up")).getReader();
      for (let i = 0; i < chunks.length; i++) await reader.read();
      await reader.cancel("client went away");
      estimates.push(await meter.usage);
    }
    assert.deepEqual(estimates[0], estimates[1]);
    assert.equal(estimates[0]?.estimated, true);
    // "Héllo 🐟 and more" (17 UTF-16 units) + 4 + 4 + 40 = 65 characters, ~4 a token.
    assert.equal(estimates[0]?.completion_tokens, Math.ceil(65 / 4));
  },
);

Deno.test("readOpenAIUsage() reads usage from a non-streaming body", SANITIZE, () => {
  assert.deepEqual(readOpenAIUsage({ id: "x", usage: USAGE }), USAGE);
  assert.equal(readOpenAIUsage({ usage: null }), null);
  assert.equal(readOpenAIUsage({ usage: { total_tokens: 3 } }), null);
  assert.equal(readOpenAIUsage("text"), null);
  assert.equal(readOpenAIUsage(null), null);
});

Deno.test("findOpenAIUsage() reads usage from the tail of a JSON body without parsing it all", async (t) => {
  const enc = new TextEncoder();
  const usage = {
    prompt_tokens: 9,
    completion_tokens: 4,
    total_tokens: 13,
    prompt_tokens_details: { cached_tokens: 0 },
  };
  await t.step("usage at the end, nested details kept", () => {
    const body = enc.encode(
      JSON.stringify({ id: "x", choices: [], usage, system_fingerprint: "fp" }),
    );
    assert.deepEqual(findOpenAIUsage(body), usage);
  });
  await t.step("usage before a long tail (beyond the tail window): found in the whole body", () => {
    const body = enc.encode(
      JSON.stringify({ usage, choices: [{ message: { content: "y".repeat(5000) } }] }),
    );
    assert.deepEqual(findOpenAIUsage(body), usage);
  });
  await t.step("braces and quotes inside strings do not confuse it", () => {
    const body = enc.encode(
      JSON.stringify({ content: '{"usage": {"prompt_tokens": 1}} \\"', usage }),
    );
    assert.deepEqual(findOpenAIUsage(body), usage);
  });
  await t.step("no usage, null usage, or not JSON → null", () => {
    assert.equal(findOpenAIUsage(enc.encode(JSON.stringify({ id: "x" }))), null);
    assert.equal(findOpenAIUsage(enc.encode(JSON.stringify({ usage: null }))), null);
    assert.equal(findOpenAIUsage(enc.encode("<html>usage</html>")), null);
  });
});

/** Every chunk `stream` yields before it ends or fails, and its failure (null when it ended). */
async function drain(stream: ReadableStream<Uint8Array>) {
  const chunks: Uint8Array[] = [];
  const reader = stream.getReader();
  try {
    for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(r.value);
    return { text: new TextDecoder().decode(concatBytes(chunks)), error: null };
  } catch (error) {
    return { text: new TextDecoder().decode(concatBytes(chunks)), error: error as GatewayError };
  }
}

const ERROR_EVENT = `data: ${
  JSON.stringify({ error: { message: "The server is overloaded", type: "server_error" } })
}\n\n`;

Deno.test(
  "a relayed OpenAI stream: how it ends decides whether it is complete",
  SANITIZE,
  async (t) => {
    for (const [name, make] of [["tap", openAIUsageTap], ["strip", openAIUsageStrip]] as const) {
      for (const size of [7, 64, 4096]) {
        await t.step(`${name}, ${size}-byte reads: [DONE] or a finish reason ends it`, async () => {
          const finishOnly = encoder.encode(
            chunkEvent({ content: "Hi" }, null) + chunkEvent({}, "stop"),
          );
          for (const bytes of [STREAM, finishOnly]) {
            const meter = createUsageMeter();
            const got = await drain(pullThrough(streamOf(rechunk(bytes, size)), make(meter, "up")));
            assert.equal(got.error, null);
          }
        });
        await t.step(
          `${name}, ${size}-byte reads: no [DONE], no finish reason: cut short`,
          async () => {
            const meter = createUsageMeter();
            const cut = encoder.encode(chunkEvent({ content: "Héllo 🐟" }, null));
            const got = await drain(pullThrough(streamOf(rechunk(cut, size)), make(meter, "up")));
            assert.match(got.text, /Héllo 🐟/, "what came still went out");
            assert.match(got.error?.message ?? "", /"up" ended before it was complete/);
            assert.equal(got.error?.info.told, undefined, "the route renders its error event");
            assert.ok(await meter.usage, "the meter settled with an estimate");
          },
        );
        await t.step(
          `${name}, ${size}-byte reads: the upstream's error event goes out, then it fails as told`,
          async () => {
            const meter = createUsageMeter();
            const bytes = encoder.encode(chunkEvent({ content: "Hi" }, null) + ERROR_EVENT);
            const got = await drain(pullThrough(streamOf(rechunk(bytes, size)), make(meter, "up")));
            assert.ok(got.text.endsWith(ERROR_EVENT), got.text);
            assert.equal(got.error?.info.told, true, "nothing more is rendered");
            assert.equal(got.error?.info.upstreamType, "server_error");
          },
        );
      }
    }
    await t.step("an error key inside content is not an error event", async () => {
      const meter = createUsageMeter();
      const bytes = encoder.encode(
        chunkEvent({ content: '{"error": {"x": 1}}' }, null) + chunkEvent({}, "stop"),
      );
      const got = await drain(pullThrough(streamOf([bytes]), openAIUsageTap(meter, "up")));
      assert.equal(got.error, null);
    });
  },
);

Deno.test("openAIUsageStrip: an event spanning many chunks goes out once whole; one without end fails the stream", () => {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const t = openAIUsageStrip(createUsageMeter(), "p");
  const out: string[] = [];
  const event = `data: {"choices":[{"index":0,"delta":{"content":"${"y".repeat(5_000)}"}}]}\n\n`;
  for (let i = 0; i < event.length; i += 100) {
    t.transform(enc.encode(event.slice(i, i + 100)), (b) => out.push(dec.decode(b)));
  }
  assert.deepEqual(out, [event]);
  // An upstream that never ends its event: refused past the cap, not held for ever.
  const endless = openAIUsageStrip(createUsageMeter(), "p");
  const mib = enc.encode("z".repeat(1024 * 1024));
  endless.transform(enc.encode('data: {"x":"'), () => {});
  assert.throws(() => {
    for (let i = 0; i < 40; i++) endless.transform(mib, () => {});
  }, /longer than 32 MiB/);
});
