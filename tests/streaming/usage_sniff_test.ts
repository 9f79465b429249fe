import assert from "node:assert/strict";
import { createUsageMeter, createUsageSniffer } from "../../src/streaming/mod.ts";
import { ANTHROPIC_NATIVE } from "../../src/providers/anthropic/native.ts";
import { GEMINI_NATIVE } from "../../src/providers/gemini/native.ts";
import { OPENAI_NATIVE } from "../../src/providers/openai/native.ts";
import { CHUNK_SIZES, concatBytes, rechunk, streamOf } from "../helpers/chunk.ts";

const SANITIZE = { sanitizeOps: true, sanitizeResources: true } as const;
const enc = new TextEncoder();

/**
 * The passthrough sniffer is generic; what usage looks like is each provider's (its
 * `native.usage`): the same bytes read by another provider's shapes count nothing.
 */
Deno.test("createUsageSniffer() reads usage by the provider's own shapes", SANITIZE, async (t) => {
  const anthropicSse = enc.encode(
    'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":11,"cache_read_input_tokens":4}}}\n\n' +
      'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"{\\"usage\\": 1}"}}\n\n' +
      'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":6}}\n\n' +
      'event: message_stop\ndata: {"type":"message_stop"}\n\n',
  );
  const geminiJson = enc.encode(
    JSON.stringify({
      candidates: [{ content: { parts: [{ text: "x".repeat(6000) }] } }],
      usageMetadata: { promptTokenCount: 8, candidatesTokenCount: 2, thoughtsTokenCount: 3 },
    }),
  );
  const cases = [
    ["anthropic SSE", anthropicSse, "text/event-stream", ANTHROPIC_NATIVE, [15, 6]],
    ["gemini JSON (usage in the tail)", geminiJson, "application/json", GEMINI_NATIVE, [8, 5]],
    ["gemini JSON read as OpenAI", geminiJson, "application/json", OPENAI_NATIVE, null],
  ] as const;
  for (const [name, bytes, type, native, want] of cases) {
    for (const n of CHUNK_SIZES) {
      await t.step(`${name}, ${n}-byte chunks`, async () => {
        const meter = createUsageMeter();
        const out = await Array.fromAsync(
          streamOf(rechunk(bytes, n)).pipeThrough(createUsageSniffer(type, native, meter)),
        );
        assert.deepEqual(concatBytes(out), bytes, "bytes pass untouched");
        const usage = await meter.usage;
        assert.deepEqual(usage && [usage.prompt_tokens, usage.completion_tokens], want);
      });
    }
  }
});

Deno.test("createUsageSniffer() settles a cancelled body with what it saw", SANITIZE, async () => {
  const meter = createUsageMeter();
  let sent = false;
  const source = new ReadableStream<Uint8Array>({
    pull(c) {
      if (!sent) {
        c.enqueue(
          enc.encode('data: {"type":"message_start","message":{"usage":{"input_tokens":5}}}\n\n'),
        );
      }
      sent = true;
    },
  });
  const reader = source.pipeThrough(
    createUsageSniffer("text/event-stream", ANTHROPIC_NATIVE, meter),
  )
    .getReader();
  await reader.read();
  await reader.cancel();
  assert.deepEqual(await meter.usage, {
    prompt_tokens: 5,
    completion_tokens: 0,
    total_tokens: 5,
    // No output count from the upstream: the 0 is an estimate, and billing must know.
    estimated: true,
  });
});
