import assert from "node:assert/strict";
import { GatewayError } from "../../../src/errors.ts";
import { type GeminiStreamContext, toOpenAIStream } from "../../../src/providers/gemini/stream.ts";
import type { OpenAIUsage } from "../../../src/schema/openai.ts";
import { createRedactor } from "../../../src/telemetry/mod.ts";
import { CHUNK_SIZES, lf, rechunk, streamOf } from "../../helpers/chunk.ts";
import { openAIChunk, translateInChunks } from "../../helpers/openai_sse.ts";
import { counterIds, drain, fixtureBytes, SANITIZE } from "./helpers.ts";
import { completionDetails } from "../../helpers/usage_details.ts";

const CREATED = 1_700_000_000;
const MODEL = "gemini-2.5-flash";

function context(includeUsage: boolean, usages: OpenAIUsage[] = []): GeminiStreamContext {
  return {
    model: "requested-model",
    includeUsage,
    onUsage: (u) => usages.push(u),
    provider: "gemini",
    redact: createRedactor(["gm-secret-key-123456"]),
    created: CREATED,
    newId: counterIds(),
  };
}

/** Translate `sse` delivered in `n`-byte pieces and parse the OpenAI events that come out. */
const translate = (sse: Uint8Array, n: number, ctx: GeminiStreamContext) =>
  translateInChunks(toOpenAIStream, sse, n, ctx);

/** The expected OpenAI chunk (`usage: null` rides along when include_usage is on). */
function chunk(
  id: string,
  delta: Record<string, unknown>,
  finish: string | null = null,
  includeUsage = false,
  model = MODEL,
) {
  return openAIChunk({ id, created: CREATED, model, delta, finish, includeUsage });
}

const ROLE = { role: "assistant", content: "", refusal: null };

function sseOf(events: unknown[]): Uint8Array {
  return new TextEncoder().encode(events.map((e) => `data: ${JSON.stringify(e)}\r\n\r\n`).join(""));
}

Deno.test(
  "createGeminiStreamTransformer() translates a text stream at every chunk size",
  SANITIZE,
  async (t) => {
    const sse = await fixtureBytes("stream_text.sse");
    const id = "chatcmpl-Yx7VaJ2kBNaz1MkPq5uYoQY";
    for (const [label, bytes] of [["CRLF", sse], ["LF", lf(sse)]] as const) {
      for (const n of CHUNK_SIZES) {
        await t.step(`${label}, ${n}-byte chunks`, async () => {
          const usages: OpenAIUsage[] = [];
          const events = await translate(bytes, n, context(false, usages));
          assert.deepEqual(events, [
            chunk(id, ROLE),
            chunk(id, { content: "Hé, " }),
            chunk(id, { content: "the 🐟 swims — 日本語" }),
            chunk(id, { content: " along.\n" }),
            chunk(id, {}, "stop"),
            "[DONE]",
          ]);
          assert.deepEqual(usages, [{
            prompt_tokens: 30,
            completion_tokens: 15,
            total_tokens: 45,
            prompt_tokens_details: { cached_tokens: 5, audio_tokens: 0 },
            completion_tokens_details: completionDetails(),
          }]);
        });
      }
    }
  },
);

Deno.test(
  "createGeminiStreamTransformer() adds a usage chunk with include_usage",
  SANITIZE,
  async () => {
    const events = await translate(await fixtureBytes("stream_text.sse"), 7, context(true));
    const id = "chatcmpl-Yx7VaJ2kBNaz1MkPq5uYoQY";
    assert.equal(events.length, 7);
    assert.deepEqual(events[0], chunk(id, ROLE, null, true));
    assert.deepEqual(events[4], chunk(id, {}, "stop", true));
    assert.deepEqual(events[5], {
      id,
      object: "chat.completion.chunk",
      created: CREATED,
      model: MODEL,
      system_fingerprint: null,
      choices: [],
      usage: {
        prompt_tokens: 30,
        completion_tokens: 15,
        total_tokens: 45,
        prompt_tokens_details: { cached_tokens: 5, audio_tokens: 0 },
        completion_tokens_details: completionDetails(),
      },
    });
    assert.equal(events[6], "[DONE]");
  },
);

Deno.test(
  "createGeminiStreamTransformer() sends each functionCall as one complete tool_call delta",
  SANITIZE,
  async (t) => {
    const sse = await fixtureBytes("stream_function_call.sse");
    const id = "chatcmpl-dB3VaKyTF6Cz1MkPzNSwiA4";
    for (const n of CHUNK_SIZES) {
      await t.step(`${n}-byte chunks`, async () => {
        const usages: OpenAIUsage[] = [];
        const events = await translate(sse, n, context(true, usages));
        assert.deepEqual(events, [
          chunk(id, ROLE, null, true),
          chunk(id, { content: "Let me check the weather." }, null, true),
          chunk(
            id,
            {
              tool_calls: [{
                index: 0,
                id: "call_id0",
                type: "function",
                function: {
                  name: "get_weather",
                  arguments: '{"location":"San Francisco, CA","unit":"fahrenheit"}',
                },
                extra_content: {
                  google: { thought_signature: "CqQCAVSoXO7sig4Ature0fWeatherXyZ" },
                },
              }],
            },
            null,
            true,
          ),
          chunk(
            id,
            {
              tool_calls: [{
                index: 1,
                id: "call_id1",
                type: "function",
                function: { name: "get_time", arguments: '{"timezone":"America/Los_Angeles"}' },
              }],
            },
            null,
            true,
          ),
          chunk(id, {}, "tool_calls", true),
          {
            id,
            object: "chat.completion.chunk",
            created: CREATED,
            model: MODEL,
            system_fingerprint: null,
            choices: [],
            usage: {
              prompt_tokens: 472,
              completion_tokens: 89,
              total_tokens: 561,
              prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
              completion_tokens_details: completionDetails(28),
            },
          },
          "[DONE]",
        ]);
        assert.deepEqual(usages.map((u) => u.total_tokens), [561]);
      });
    }
  },
);

Deno.test(
  "createGeminiStreamTransformer() errors the stream on an error event after the first token",
  SANITIZE,
  async (t) => {
    const sse = await fixtureBytes("stream_error_midway.sse");
    for (const n of CHUNK_SIZES) {
      await t.step(`${n}-byte chunks`, async () => {
        const usages: OpenAIUsage[] = [];
        const { chunks, error } = await drain(
          toOpenAIStream(streamOf(rechunk(sse, n)), context(false, usages)),
        );
        const id = "chatcmpl-pQ7VaM3fKtGz1MkP8rOBgAg";
        // What was translated before the error still reaches the client, without [DONE].
        assert.deepEqual(chunks, [
          chunk(id, ROLE),
          chunk(id, { content: "Once upon" }),
        ]);
        assert.ok(error instanceof GatewayError, `got ${error}`);
        assert.equal(error.code, "upstream_error");
        assert.equal(error.message, "The model is overloaded. Please try again later.");
        assert.equal(error.status, 503);
        assert.equal(error.info.upstreamCode, "UNAVAILABLE");
        assert.equal(error.retryable, true);
        assert.deepEqual(usages, []);
      });
    }
  },
);

Deno.test(
  "createGeminiStreamTransformer() sends nothing before an error that precedes the first token",
  SANITIZE,
  async (t) => {
    // Routing can still fail over: no byte has been produced when the error arrives.
    const cases: [string, Uint8Array, number][] = [
      [
        "an error event after an empty event",
        sseOf([
          {
            candidates: [{ content: { parts: [{ text: "" }], role: "model" } }],
            modelVersion: MODEL,
          },
          {
            error: {
              code: 429,
              message: "Quota gm-secret-key-123456",
              status: "RESOURCE_EXHAUSTED",
            },
          },
        ]),
        429,
      ],
      [
        "an error in array form",
        new TextEncoder().encode(
          'data: [{"error":{"code":500,"message":"Internal error","status":"INTERNAL"}}]\n\n',
        ),
        500,
      ],
    ];
    for (const [label, sse, status] of cases) {
      await t.step(label, async () => {
        const { chunks, error } = await drain(
          toOpenAIStream(streamOf(rechunk(sse, 7)), context(false)),
        );
        assert.deepEqual(chunks, []);
        assert.ok(error instanceof GatewayError);
        assert.equal(error.status, status);
        assert.equal(error.retryable, true);
        assert.ok(!error.message.includes("gm-secret"), error.message);
      });
    }
  },
);

Deno.test(
  "createGeminiStreamTransformer() fails a stream that ends without a finishReason (cut short, never a made-up stop)",
  SANITIZE,
  async (t) => {
    await t.step("text", async () => {
      const full = new TextDecoder().decode(await fixtureBytes("stream_text.sse"));
      const cut = new TextEncoder().encode(full.slice(0, full.lastIndexOf("data: ")));
      const usages: OpenAIUsage[] = [];
      await assert.rejects(
        translate(cut, 7, context(false, usages)),
        /ended before a finishReason/,
      );
      // The usage seen so far is still reported.
      assert.deepEqual(usages.map((u) => [u.prompt_tokens, u.completion_tokens]), [[30, 0]]);
    });
    await t.step("after a tool call", async () => {
      const sse = sseOf([{
        candidates: [{ content: { parts: [{ functionCall: { name: "f", args: {} } }] } }],
      }]);
      await assert.rejects(translate(sse, 64, context(false)), /ended before a finishReason/);
    });
  },
);

Deno.test(
  "createGeminiStreamTransformer() reports a blocked prompt as a filtered empty answer",
  SANITIZE,
  async () => {
    const sse = sseOf([{
      promptFeedback: { blockReason: "PROHIBITED_CONTENT" },
      usageMetadata: { promptTokenCount: 7, totalTokenCount: 7 },
      modelVersion: MODEL,
      responseId: "blk",
    }]);
    const usages: OpenAIUsage[] = [];
    const events = await translate(sse, 64, context(false, usages));
    assert.deepEqual(events, [
      chunk("chatcmpl-blk", ROLE),
      chunk("chatcmpl-blk", {}, "content_filter"),
      "[DONE]",
    ]);
    assert.deepEqual(usages.map((u) => u.prompt_tokens), [7]);
  },
);

Deno.test(
  "createGeminiStreamTransformer() skips thoughts and parts it has no chunk for",
  SANITIZE,
  async () => {
    const sse = sseOf([
      {
        candidates: [{
          content: {
            parts: [
              { text: "Thinking about it...", thought: true },
              { executableCode: { language: "PYTHON", code: "1+1" } },
            ],
          },
        }],
        responseId: "t",
        modelVersion: MODEL,
      },
      { candidates: [{ content: { parts: [{ text: "2" }] }, finishReason: "MAX_TOKENS" }] },
      // Nothing follows a finish reason; if it did, only its usage would count.
      {
        candidates: [{ content: { parts: [{ text: "late" }] } }],
        usageMetadata: { promptTokenCount: 3 },
      },
    ]);
    const usages: OpenAIUsage[] = [];
    const events = await translate(sse, 64, context(false, usages));
    assert.deepEqual(events, [
      chunk("chatcmpl-t", ROLE),
      chunk("chatcmpl-t", { content: "2" }),
      chunk("chatcmpl-t", {}, "length"),
      "[DONE]",
    ]);
    assert.deepEqual(usages.map((u) => u.prompt_tokens), [3]);
  },
);

Deno.test(
  "createGeminiStreamTransformer() refuses streams that are not Gemini JSON",
  SANITIZE,
  async (t) => {
    const cases: [string, string][] = [
      ["not JSON", "data: <html>\n\n"],
      ["a JSON array of events", 'data: [{"candidates":[]},{"candidates":[]}]\n\n'],
      ["no event at all", ": keep-alive\n\n"],
    ];
    for (const [label, text] of cases) {
      await t.step(label, async () => {
        const { chunks, error } = await drain(
          toOpenAIStream(streamOf([new TextEncoder().encode(text)]), context(false)),
        );
        assert.deepEqual(chunks, []);
        assert.ok(error instanceof GatewayError);
        assert.equal(error.code, "upstream_error");
      });
    }
  },
);

Deno.test(
  "toOpenAIStream() passes a consumer's cancel to the upstream body",
  SANITIZE,
  async () => {
    // Cancellation crosses the pipe chain asynchronously; the test awaits its arrival (a
    // promise that never settles fails the test as a pending-promise leak).
    const cancelled = Promise.withResolvers<unknown>();
    const first = sseOf([{ candidates: [{ content: { parts: [{ text: "a" }] } }] }]);
    let sent = false;
    const upstream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (!sent) controller.enqueue(first);
        sent = true;
        // Then stays open, like a slow upstream.
      },
      cancel(reason) {
        cancelled.resolve(reason);
      },
    });
    const reader = toOpenAIStream(upstream, context(false)).getReader();
    const { value } = await reader.read();
    assert.ok(value && value.object === "chat.completion.chunk");
    await reader.cancel("client went away");
    assert.equal(await cancelled.promise, "client went away");
  },
);

Deno.test(
  "toOpenAIStream(): the counts so far are reported with every event that carries them",
  SANITIZE,
  async () => {
    const event = (text: string, candidates: number, extra: Record<string, unknown> = {}) =>
      `data: ${
        JSON.stringify({
          candidates: [{ content: { role: "model", parts: [{ text }] }, ...extra }],
          usageMetadata: {
            promptTokenCount: 1000,
            candidatesTokenCount: candidates,
            thoughtsTokenCount: 700,
            totalTokenCount: 1700 + candidates,
          },
          modelVersion: "gemini-x",
          responseId: "r1",
        })
      }\r\n\r\n`;
    const seen: Partial<OpenAIUsage>[] = [];
    const sse = new TextEncoder().encode(
      event("Hel", 1) + event("lo", 2, { finishReason: "STOP" }),
    );
    await translate(sse, 64, { ...context(false), onPartialUsage: (u) => seen.push(u) });
    // Input from the first event; output and thinking as counted so far (a cut keeps them).
    assert.deepEqual(seen.map((u) => u.prompt_tokens), [1000, 1000]);
    assert.deepEqual(seen.map((u) => u.completion_tokens), [701, 702]);
    assert.deepEqual(seen.map((u) => u.completion_tokens_details?.reasoning_tokens), [700, 700]);
  },
);
