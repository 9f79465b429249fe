import assert from "node:assert/strict";
import { GatewayError } from "../../../src/errors.ts";
import {
  type BedrockStreamContext,
  toOpenAIStream,
} from "../../../src/providers/bedrock/stream.ts";
import type { OpenAIUsage } from "../../../src/schema/openai.ts";
import { createRedactor } from "../../../src/telemetry/mod.ts";
import {
  type BedrockEvent,
  eventFrame,
  STREAM_TEXT,
  STREAM_THROTTLED_MIDWAY,
  STREAM_TOOL_USE,
} from "../../fakes/fake_bedrock.ts";
import { CHUNK_SIZES, rechunk, streamOf } from "../../helpers/chunk.ts";
import { joinedToolArguments, openAIChunk, translateInChunks } from "../../helpers/openai_sse.ts";
import { drain, eventStreamOf, SANITIZE } from "./helpers.ts";
import { completionDetails } from "../../helpers/usage_details.ts";

const CREATED = 1_700_000_000;
const MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const ID = "chatcmpl-req-42";

function context(includeUsage: boolean, usages: OpenAIUsage[] = []): BedrockStreamContext {
  return {
    model: MODEL,
    id: ID,
    includeUsage,
    onUsage: (u) => usages.push(u),
    provider: "bedrock",
    redact: createRedactor([]),
    created: CREATED,
  };
}

/** Translate `bytes` delivered in `n`-byte pieces and parse the OpenAI events that come out. */
const translate = (bytes: Uint8Array, n: number, ctx: BedrockStreamContext) =>
  translateInChunks(toOpenAIStream, bytes, n, ctx);

/** The expected OpenAI chunk (`usage: null` rides along when include_usage is on). */
function chunk(delta: Record<string, unknown>, finish: string | null = null, usage = false) {
  return openAIChunk({
    id: ID,
    created: CREATED,
    model: MODEL,
    delta,
    finish,
    includeUsage: usage,
  });
}

const ROLE = { role: "assistant", content: "", refusal: null };

Deno.test(
  "createBedrockStreamTransformer() translates a text stream at every chunk size",
  SANITIZE,
  async (t) => {
    const bytes = eventStreamOf(STREAM_TEXT);
    for (const n of CHUNK_SIZES) {
      await t.step(`${n}-byte chunks`, async () => {
        const usages: OpenAIUsage[] = [];
        assert.deepEqual(await translate(bytes, n, context(false, usages)), [
          chunk(ROLE),
          chunk({ content: "Hello" }),
          chunk({ content: " from Bedrock" }),
          chunk({}, "stop"),
          "[DONE]",
        ]);
        assert.deepEqual(usages, [{
          prompt_tokens: 21,
          completion_tokens: 9,
          total_tokens: 30,
          prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
          completion_tokens_details: completionDetails(),
        }]);
      });
    }
  },
);

Deno.test(
  "createBedrockStreamTransformer() ends with a usage chunk when include_usage is on",
  SANITIZE,
  async () => {
    const events = await translate(eventStreamOf(STREAM_TEXT), 7, context(true));
    assert.deepEqual(events, [
      chunk(ROLE, null, true),
      chunk({ content: "Hello" }, null, true),
      chunk({ content: " from Bedrock" }, null, true),
      chunk({}, "stop", true),
      {
        id: ID,
        object: "chat.completion.chunk",
        created: CREATED,
        model: MODEL,
        system_fingerprint: null,
        choices: [],
        usage: {
          prompt_tokens: 21,
          completion_tokens: 9,
          total_tokens: 30,
          prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
          completion_tokens_details: completionDetails(),
        },
      },
      "[DONE]",
    ]);
  },
);

Deno.test(
  "createBedrockStreamTransformer() streams a tool call with its arguments in pieces",
  SANITIZE,
  async (t) => {
    const bytes = eventStreamOf(STREAM_TOOL_USE);
    for (const n of CHUNK_SIZES) {
      await t.step(`${n}-byte chunks`, async () => {
        assert.deepEqual(await translate(bytes, n, context(false)), [
          chunk(ROLE),
          chunk({ content: "Checking." }),
          chunk({
            tool_calls: [{
              index: 0,
              id: "tooluse_stream01",
              type: "function",
              function: { name: "get_weather", arguments: "" },
            }],
          }),
          chunk({ tool_calls: [{ index: 0, function: { arguments: '{"locat' } }] }),
          chunk({ tool_calls: [{ index: 0, function: { arguments: 'ion": "Par' } }] }),
          chunk({ tool_calls: [{ index: 0, function: { arguments: 'is"}' } }] }),
          chunk({}, "tool_calls"),
          "[DONE]",
        ]);
      });
    }
  },
);

Deno.test(
  "createBedrockStreamTransformer() numbers parallel tool calls in order of arrival",
  SANITIZE,
  async () => {
    const start = (i: number, id: string): BedrockEvent => ({
      type: "contentBlockStart",
      payload: { contentBlockIndex: i, start: { toolUse: { toolUseId: id, name: "f" } } },
    });
    const input = (i: number, text: string): BedrockEvent => ({
      type: "contentBlockDelta",
      payload: { contentBlockIndex: i, delta: { toolUse: { input: text } } },
    });
    const events = await translate(
      eventStreamOf([
        { type: "messageStart", payload: { role: "assistant" } },
        start(0, "a"),
        input(0, "{}"),
        start(1, "b"),
        input(1, '{"x":1}'),
        { type: "messageStop", payload: { stopReason: "tool_use" } },
      ]),
      64,
      context(false),
    );
    const deltas = events.slice(1, -2).map((e) =>
      (e as { choices: [{ delta: { tool_calls: [{ index: number; id?: string }] } }] })
        .choices[0].delta.tool_calls[0]
    );
    assert.deepEqual(deltas.map((d) => [d.index, d.id]), [
      [0, "a"],
      [0, undefined],
      [1, "b"],
      [1, undefined],
    ]);
  },
);

Deno.test(
  "createBedrockStreamTransformer() errors the stream on an exception frame mid-answer",
  SANITIZE,
  async (t) => {
    for (const n of CHUNK_SIZES) {
      await t.step(`${n}-byte chunks`, async () => {
        const out = toOpenAIStream(
          streamOf(rechunk(eventStreamOf(STREAM_THROTTLED_MIDWAY), n)),
          context(false),
        );
        const { chunks, error } = await drain(out);
        assert.deepEqual(chunks, [
          chunk(ROLE),
          chunk({ content: "Hel" }),
        ]);
        assert.ok(error instanceof GatewayError);
        assert.equal(error.status, 429);
        assert.equal(error.code, "rate_limited");
        assert.equal(error.info.upstreamCode, "ThrottlingException");
        assert.equal(error.message, "Too many tokens, please wait before trying again.");
      });
    }
  },
);

Deno.test(
  "createBedrockStreamTransformer() sends nothing before an early exception (failover stays possible)",
  SANITIZE,
  async () => {
    const out = toOpenAIStream(
      streamOf([eventStreamOf([
        { type: "messageStart", payload: { role: "assistant" } },
        {
          type: "serviceUnavailableException",
          messageType: "exception",
          payload: { message: "Bedrock is unable to process your request." },
        },
      ])]),
      context(false),
    );
    const { chunks, error } = await drain(out);
    assert.equal(chunks.length, 0);
    assert.ok(error instanceof GatewayError);
    assert.equal(error.status, 503);
    assert.equal(error.info.upstreamCode, "ServiceUnavailableException");
  },
);

Deno.test(
  "createBedrockStreamTransformer() refuses broken streams with a GatewayError",
  SANITIZE,
  async (t) => {
    const expectBroken = async (bytes: Uint8Array, pattern: RegExp) => {
      const { error } = await drain(toOpenAIStream(streamOf(rechunk(bytes, 7)), context(false)));
      assert.ok(error instanceof GatewayError, `expected GatewayError, got ${error}`);
      assert.equal(error.code, "upstream_error");
      assert.match(error.message, pattern);
    };
    await t.step("ends before messageStop", async () => {
      await expectBroken(eventStreamOf(STREAM_TEXT.slice(0, 3)), /ended before messageStop/);
    });
    await t.step("ends inside a frame", async () => {
      const whole = eventStreamOf(STREAM_TEXT);
      await expectBroken(whole.slice(0, whole.length - 5), /ended in the middle of a frame/);
    });
    await t.step("a frame whose CRC does not match", async () => {
      const frame = eventFrame(STREAM_TEXT[1]!);
      frame[frame.length - 10]! ^= 0xff;
      await expectBroken(frame, /corrupt event-stream frame/);
    });
    await t.step("bytes that are not event-stream framing", async () => {
      await expectBroken(
        new TextEncoder().encode('{"message":"not a stream"}'),
        /impossible length/,
      );
    });
    await t.step("a payload that is not JSON", async () => {
      const bad = eventFrame({ type: "contentBlockDelta", payload: {} });
      const { EventStreamCodec } = await import("@smithy/eventstream-codec");
      const { fromUtf8, toUtf8 } = await import("@smithy/util-utf8");
      const codec = new EventStreamCodec(toUtf8, fromUtf8);
      const notJson = codec.encode({ ...codec.decode(bad), body: fromUtf8("not json") });
      await expectBroken(notJson, /"contentBlockDelta" event that is not JSON/);
    });
  },
);

Deno.test(
  "toOpenAIStream() translates frames as they arrive, without waiting for the body's end",
  SANITIZE,
  async () => {
    const first = eventStreamOf(STREAM_TEXT.slice(0, 2));
    const rest = eventStreamOf(STREAM_TEXT.slice(2));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let pulls = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (pulls++ === 0) return controller.enqueue(first);
        await gate;
        controller.enqueue(rest);
        controller.close();
      },
    });
    const reader = toOpenAIStream(body, context(false)).getReader();
    const seen: unknown[] = [];
    while (seen.length < 2) {
      const { value } = await reader.read();
      seen.push(value!);
    }
    assert.deepEqual(seen, [chunk(ROLE), chunk({ content: "Hello" })]);
    release();
    const tail: unknown[] = [];
    for (let r = await reader.read(); !r.done; r = await reader.read()) tail.push(r.value);
    // The stream ends cleanly after its finish chunk (`[DONE]` is the edge's to write).
    const last = tail.at(-1) as { choices: { finish_reason: string | null }[] };
    assert.equal(last.choices[0]?.finish_reason, "stop");
  },
);

Deno.test(
  "createBedrockStreamTransformer(): a tool call without input streams its arguments as {}",
  SANITIZE,
  async () => {
    const events = await translate(
      eventStreamOf([
        { type: "messageStart", payload: { role: "assistant" } },
        {
          type: "contentBlockStart",
          payload: { contentBlockIndex: 0, start: { toolUse: { toolUseId: "a", name: "now" } } },
        },
        { type: "contentBlockStop", payload: { contentBlockIndex: 0 } },
        { type: "messageStop", payload: { stopReason: "tool_use" } },
      ]),
      64,
      context(false),
    );
    assert.equal(joinedToolArguments(events), "{}");
  },
);

Deno.test(
  "createBedrockStreamTransformer() estimates reasoning_tokens from reasoningContent deltas",
  SANITIZE,
  async () => {
    const events: BedrockEvent[] = [
      { type: "messageStart", payload: { role: "assistant" } },
      {
        type: "contentBlockDelta",
        payload: { contentBlockIndex: 0, delta: { reasoningContent: { text: "x".repeat(21) } } },
      },
      {
        type: "contentBlockDelta",
        payload: { contentBlockIndex: 0, delta: { reasoningContent: { signature: "sig" } } },
      },
      {
        type: "contentBlockDelta",
        payload: { contentBlockIndex: 1, delta: { text: "12,231" } },
      },
      { type: "messageStop", payload: { stopReason: "end_turn" } },
      {
        type: "metadata",
        payload: { usage: { inputTokens: 10, outputTokens: 30, totalTokens: 40 }, metrics: {} },
      },
    ];
    const usages: OpenAIUsage[] = [];
    const out = await translate(eventStreamOf(events), 64, context(true, usages));
    // 21 characters ~ 6 tokens; the output stays as reported.
    assert.equal(usages.at(-1)?.completion_tokens, 30);
    assert.deepEqual(usages.at(-1)?.completion_tokens_details, completionDetails(6));
    const last = out.at(-2) as { usage?: OpenAIUsage };
    assert.deepEqual(last.usage?.completion_tokens_details, completionDetails(6));
  },
);
