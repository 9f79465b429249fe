import assert from "node:assert/strict";
import { GatewayError } from "../../../src/errors.ts";
import {
  type AnthropicStreamContext,
  toOpenAIStream,
} from "../../../src/providers/anthropic/stream.ts";
import type { OpenAIUsage } from "../../../src/schema/openai.ts";
import { createRedactor } from "../../../src/telemetry/mod.ts";
import { CHUNK_SIZES, crlf, rechunk, streamOf } from "../../helpers/chunk.ts";
import { joinedToolArguments, openAIChunk, translateInChunks } from "../../helpers/openai_sse.ts";
import { drain, fixtureBytes, SANITIZE } from "./helpers.ts";
import { completionDetails } from "../../helpers/usage_details.ts";

const CREATED = 1_700_000_000;
const MODEL = "claude-sonnet-4-5-20250929";

function context(includeUsage: boolean, usages: OpenAIUsage[] = []): AnthropicStreamContext {
  return {
    model: "requested-model",
    includeUsage,
    onUsage: (u) => usages.push(u),
    provider: "anthropic",
    redact: createRedactor(["sk-ant-secret-123456"]),
    created: CREATED,
  };
}

/** Translate `sse` delivered in `n`-byte pieces and parse the OpenAI events that come out. */
const translate = (sse: Uint8Array, n: number, ctx: AnthropicStreamContext) =>
  translateInChunks(toOpenAIStream, sse, n, ctx);

/** The expected OpenAI chunk (`usage: null` rides along when include_usage is on). */
function chunk(
  id: string,
  delta: Record<string, unknown>,
  finish: string | null = null,
  includeUsage = false,
) {
  return openAIChunk({ id, created: CREATED, model: MODEL, delta, finish, includeUsage });
}

Deno.test(
  "createAnthropicStreamTransformer() translates a text stream at every chunk size",
  SANITIZE,
  async (t) => {
    const sse = await fixtureBytes("stream_text.sse");
    const id = "chatcmpl-msg_01Stream7Text";
    for (const [label, bytes] of [["LF", sse], ["CRLF", crlf(sse)]] as const) {
      for (const n of CHUNK_SIZES) {
        await t.step(`${label}, ${n}-byte chunks`, async () => {
          const usages: OpenAIUsage[] = [];
          const events = await translate(bytes, n, context(false, usages));
          assert.deepEqual(events, [
            chunk(id, { role: "assistant", content: "", refusal: null }),
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
  "createAnthropicStreamTransformer() adds a usage chunk with include_usage",
  SANITIZE,
  async () => {
    const events = await translate(await fixtureBytes("stream_text.sse"), 7, context(true));
    const id = "chatcmpl-msg_01Stream7Text";
    assert.equal(events.length, 7);
    assert.deepEqual(
      events[0],
      chunk(id, { role: "assistant", content: "", refusal: null }, null, true),
    );
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
  "createAnthropicStreamTransformer() maps input_json_delta to tool_call chunks",
  SANITIZE,
  async (t) => {
    const sse = await fixtureBytes("stream_tool_use.sse");
    const id = "chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U";
    const args = (index: number, fragment: string) =>
      chunk(id, { tool_calls: [{ index, function: { arguments: fragment } }] });
    for (const n of CHUNK_SIZES) {
      await t.step(`${n}-byte chunks`, async () => {
        const usages: OpenAIUsage[] = [];
        const events = await translate(sse, n, context(false, usages));
        assert.deepEqual(events, [
          chunk(id, { role: "assistant", content: "", refusal: null }),
          chunk(id, { content: "Let me check the weather." }),
          // Block index 1 is the first tool call: OpenAI index 0.
          chunk(id, {
            tool_calls: [{
              index: 0,
              id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
              type: "function",
              function: { name: "get_weather", arguments: "" },
            }],
          }),
          args(0, '{"loc'),
          args(0, 'ation": "San Fra'),
          args(0, 'ncisco, CA"'),
          args(0, ', "unit": "fahrenheit"}'),
          chunk(id, {
            tool_calls: [{
              index: 1,
              id: "toolu_01V8kZ3mYcX5nWqD2aR9sLbE",
              type: "function",
              function: { name: "get_time", arguments: "" },
            }],
          }),
          args(1, '{"timezone":'),
          args(1, ' "America/Los_Angeles"}'),
          chunk(id, {}, "tool_calls"),
          "[DONE]",
        ]);
        assert.deepEqual(usages.map((u) => [u.prompt_tokens, u.completion_tokens]), [[472, 89]]);
      });
    }

    await t.step("the fragments reassemble into the tool inputs", async () => {
      const events = await translate(sse, 64, context(false));
      const calls: { name: string; args: string }[] = [];
      for (const e of events) {
        if (e === "[DONE]") continue;
        const delta = (e as { choices: { delta: { tool_calls?: unknown[] } }[] }).choices[0]?.delta;
        for (
          const tc of (delta?.tool_calls ?? []) as {
            index: number;
            function: { name?: string; arguments: string };
          }[]
        ) {
          calls[tc.index] ??= { name: tc.function.name ?? "", args: "" };
          (calls[tc.index] as { args: string }).args += tc.function.arguments;
        }
      }
      assert.deepEqual(calls.map((c) => [c.name, JSON.parse(c.args)]), [
        ["get_weather", { location: "San Francisco, CA", unit: "fahrenheit" }],
        ["get_time", { timezone: "America/Los_Angeles" }],
      ]);
    });
  },
);

Deno.test(
  "createAnthropicStreamTransformer() errors the stream on an upstream error event",
  SANITIZE,
  async (t) => {
    const sse = await fixtureBytes("stream_error_midway.sse");
    for (const n of CHUNK_SIZES) {
      await t.step(`${n}-byte chunks`, async () => {
        const { chunks, error } = await drain(
          toOpenAIStream(streamOf(rechunk(sse, n)), context(false)),
        );
        const id = "chatcmpl-msg_01ErrMidway";
        // What was translated before the error still reaches the client, without [DONE].
        assert.deepEqual(chunks, [
          chunk(id, { role: "assistant", content: "", refusal: null }),
          chunk(id, { content: "Once upon" }),
        ]);
        assert.ok(error instanceof GatewayError, `got ${error}`);
        assert.equal(error.code, "upstream_error");
        assert.equal(error.message, "Overloaded");
        assert.equal(error.status, 529);
        assert.equal(error.info.upstreamStatus, 529);
        assert.equal(error.info.upstreamCode, "overloaded_error");
        assert.equal(error.retryable, true);
      });
    }
  },
);

Deno.test(
  "createAnthropicStreamTransformer() sends nothing before an error that precedes the first token",
  SANITIZE,
  async () => {
    // Routing can still fail over: no byte has been produced when the overload arrives.
    const sse = new TextEncoder().encode(
      'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_e","model":"m",' +
        '"usage":{"input_tokens":3,"output_tokens":1}}}\n\n' +
        'event: ping\ndata: {"type": "ping"}\n\n' +
        'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
    );
    const { chunks, error } = await drain(
      toOpenAIStream(streamOf(rechunk(sse, 7)), context(false)),
    );
    assert.deepEqual(chunks, []);
    assert.ok(error instanceof GatewayError);
    assert.equal(error.status, 529);
    assert.equal(error.retryable, true);
  },
);

Deno.test(
  "createAnthropicStreamTransformer() redacts credentials in an error event",
  SANITIZE,
  async () => {
    const sse = new TextEncoder().encode(
      'event: error\ndata: {"type":"error","error":{"type":"rate_limit_error",' +
        '"message":"Key sk-ant-secret-123456 is over its limit"}}\n\n',
    );
    const { error } = await drain(toOpenAIStream(streamOf([sse]), context(false)));
    assert.ok(error instanceof GatewayError);
    assert.equal(error.code, "rate_limited");
    assert.equal(error.status, 429);
    assert.equal(error.message, "Key [REDACTED] is over its limit");
  },
);

Deno.test(
  "createAnthropicStreamTransformer() errors a stream that ends before message_stop",
  SANITIZE,
  async () => {
    const full = new TextDecoder().decode(await fixtureBytes("stream_text.sse"));
    const cut = new TextEncoder().encode(full.slice(0, full.indexOf("event: message_delta")));
    const usages: OpenAIUsage[] = [];
    const { chunks, error } = await drain(
      toOpenAIStream(streamOf(rechunk(cut, 7)), context(false, usages)),
    );
    assert.equal(chunks.length, 4);
    assert.ok(error instanceof GatewayError);
    assert.equal(error.code, "upstream_error");
    assert.match(error.message, /ended before message_stop/);
    assert.deepEqual(usages, []);
  },
);

Deno.test(
  "createAnthropicStreamTransformer() refuses events that are not Anthropic JSON",
  SANITIZE,
  async (t) => {
    const cases: [string, string][] = [
      ["not JSON", "data: <html>\n\n"],
      ["content before message_start", 'data: {"type":"content_block_stop","index":0}\n\n'],
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
  "createAnthropicStreamTransformer() skips thinking, server tools and unknown events",
  SANITIZE,
  async () => {
    const events = [
      {
        type: "message_start",
        message: { id: "msg_t", model: MODEL, usage: { input_tokens: 4, output_tokens: 1 } },
      },
      { type: "content_block_start", index: 0, content_block: { type: "thinking", thinking: "" } },
      { type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "hm" } },
      { type: "content_block_delta", index: 0, delta: { type: "signature_delta", signature: "s" } },
      { type: "content_block_stop", index: 0 },
      {
        type: "content_block_start",
        index: 1,
        content_block: { type: "server_tool_use", id: "srvtoolu_1", name: "web_search" },
      },
      {
        type: "content_block_delta",
        index: 1,
        delta: { type: "input_json_delta", partial_json: '{"query":"x"}' },
      },
      { type: "brand_new_event", payload: 1 },
      { type: "content_block_start", index: 2, content_block: { type: "text", text: "Hi" } },
      { type: "message_delta", delta: { stop_reason: "max_tokens" }, usage: { output_tokens: 9 } },
      { type: "message_stop" },
    ];
    const sse = new TextEncoder().encode(
      events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join(""),
    );
    const out = await translate(sse, 64, context(false));
    assert.deepEqual(out, [
      chunk("chatcmpl-msg_t", { role: "assistant", content: "", refusal: null }),
      chunk("chatcmpl-msg_t", { content: "Hi" }),
      chunk("chatcmpl-msg_t", {}, "length"),
      "[DONE]",
    ]);
  },
);

Deno.test(
  "createAnthropicStreamTransformer() sends exactly one finish chunk",
  SANITIZE,
  async (t) => {
    const start = { type: "message_start", message: { id: "msg_f", model: MODEL } };
    const text = {
      type: "content_block_delta",
      index: 0,
      delta: { type: "text_delta", text: "x" },
    };
    const cases: [string, unknown[], string][] = [
      [
        "a usage-only message_delta before the one with the stop reason",
        [
          start,
          text,
          { type: "message_delta", delta: {}, usage: { output_tokens: 1 } },
          { type: "message_delta", delta: { stop_reason: "end_turn" } },
          { type: "message_delta", delta: { stop_reason: "max_tokens" } },
          { type: "message_stop" },
        ],
        "stop",
      ],
      ["no message_delta at all", [start, text, { type: "message_stop" }], "stop"],
      [
        "a refusal",
        [start, text, { type: "message_delta", delta: { stop_reason: "refusal" } }, {
          type: "message_stop",
        }],
        "content_filter",
      ],
    ];
    for (const [label, events, expected] of cases) {
      await t.step(label, async () => {
        const sse = new TextEncoder().encode(
          events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join(""),
        );
        const out = await translate(sse, 64, context(false));
        assert.deepEqual(out.slice(1), [
          chunk("chatcmpl-msg_f", { content: "x" }),
          chunk("chatcmpl-msg_f", {}, expected),
          "[DONE]",
        ]);
      });
    }
  },
);

Deno.test(
  "createAnthropicStreamTransformer() names the stop sequence that ended the answer",
  SANITIZE,
  async (t) => {
    const start = { type: "message_start", message: { id: "msg_s", model: MODEL } };
    const text = {
      type: "content_block_delta",
      index: 0,
      delta: { type: "text_delta", text: "x" },
    };
    const cases: [string, Record<string, unknown>, Record<string, unknown>][] = [
      [
        "a stop sequence, named",
        { stop_reason: "stop_sequence", stop_sequence: "END" },
        { stop_sequence: "END" },
      ],
      ["a stop sequence, unnamed", { stop_reason: "stop_sequence" }, { stop_sequence: null }],
      ["a natural end: no stop_sequence", { stop_reason: "end_turn", stop_sequence: null }, {}],
    ];
    for (const [label, delta, extra] of cases) {
      await t.step(label, async () => {
        const events = [start, text, { type: "message_delta", delta }, { type: "message_stop" }];
        const sse = new TextEncoder().encode(
          events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join(""),
        );
        // The canonical chunks (the OpenAI edge encoder leaves `stop_sequence` out).
        const { chunks: out, error } = await drain(
          toOpenAIStream(streamOf(rechunk(sse, 64)), context(false)) as ReadableStream<unknown>,
        );
        assert.equal(error, undefined);
        const finish = chunk("chatcmpl-msg_s", {}, "stop") as { choices: object[] };
        finish.choices[0] = { ...finish.choices[0], ...extra };
        assert.deepEqual(JSON.parse(JSON.stringify(out.slice(1))), [
          chunk("chatcmpl-msg_s", { content: "x" }),
          finish,
        ]);
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
    const first = new TextEncoder().encode(
      'data: {"type":"message_start","message":{"id":"m","model":"x"}}\n\n' +
        'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}\n\n',
    );
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
  "createAnthropicStreamTransformer(): a tool call without input streams its arguments as {}",
  SANITIZE,
  async () => {
    const ev = (type: string, data: Record<string, unknown>) =>
      `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    const sse = new TextEncoder().encode(
      ev("message_start", {
        message: { id: "msg_1", model: "claude", usage: { input_tokens: 1, output_tokens: 0 } },
      }) +
        ev("content_block_start", {
          index: 0,
          content_block: { type: "tool_use", id: "toolu_1", name: "now", input: {} },
        }) +
        ev("content_block_delta", {
          index: 0,
          delta: { type: "input_json_delta", partial_json: "" },
        }) +
        ev("content_block_stop", { index: 0 }) +
        ev("message_delta", { delta: { stop_reason: "tool_use" }, usage: { output_tokens: 3 } }) +
        ev("message_stop", {}),
    );
    const events = await translate(sse, 64, context(false));
    assert.equal(joinedToolArguments(events), "{}");
  },
);
