import assert from "node:assert/strict";
import { GatewayError } from "../../../src/errors.ts";
import type { MessagesCall } from "../../../src/providers/mod.ts";
import { createAnthropicUsageTap } from "../../../src/providers/anthropic/usage_tap.ts";
import { createUsageMeter } from "../../../src/streaming/mod.ts";
import { callBasics } from "../../helpers/calls.ts";
import { CHUNK_SIZES, concatBytes, rechunk, streamOf } from "../../helpers/chunk.ts";
import { adapterWithFetch, headersOf, sseResponse } from "../../helpers/fake_fetch.ts";
import { drain, fixtureBytes, fixtureText, gatewayError, SANITIZE } from "./helpers.ts";
import { completionDetails } from "../../helpers/usage_details.ts";

const LIVE_KEY = "sk-ant-api03-live-abcdef123456";

const CONFIG_TEXT = `
providers:
  anthropic:
    keys: [{ key: "${LIVE_KEY}" }]
  claude-proxy:
    type: anthropic
    base_url: http://127.0.0.1:8100/v1/
    headers: { Anthropic-Version: "2024-01-01", anthropic-beta: "tools-2024", x-team: ml }
`;

const SETUP = { configText: CONFIG_TEXT, configName: "anthropic.yaml" };

function adapterWith(handler: () => Response, provider = "anthropic") {
  const { adapter, requests } = adapterWithFetch(SETUP, handler, provider);
  assert.ok(adapter.messages);
  return { adapter, messages: adapter.messages.bind(adapter), requests };
}

const BODY = {
  model: "claude-sonnet-4-5",
  max_tokens: 1024,
  system: [{ type: "text", text: "Be brief.", cache_control: { type: "ephemeral" } }],
  messages: [{ role: "user", content: [{ type: "text", text: "Weather?" }] }],
  tools: [{ type: "web_search_20250305", name: "web_search", max_uses: 2 }],
  thinking: { type: "enabled", budget_tokens: 2048 },
  some_future_field: { kept: true },
};

function messagesCall(overrides: Partial<MessagesCall> = {}, body: Record<string, unknown> = {}) {
  const call: MessagesCall = {
    body: { ...BODY, ...body },
    stream: body.stream === true,
    ...callBasics(LIVE_KEY),
    headers: {},
    ...overrides,
  };
  return { call };
}

Deno.test(
  "messages() forwards the client's body unchanged but for the model",
  SANITIZE,
  async () => {
    const fixture = await fixtureText("response_tool_use.json");
    const { messages, requests } = adapterWith(() =>
      new Response(fixture, { headers: { "content-type": "application/json" } })
    );
    const { call } = messagesCall();
    const outcome = await messages(call, "claude-sonnet-4-5-20250929");

    assert.equal(requests.length, 1);
    assert.equal(requests[0]?.url, "https://api.anthropic.com/v1/messages");
    assert.deepEqual(JSON.parse(String(requests[0]?.init.body)), {
      ...BODY,
      model: "claude-sonnet-4-5-20250929",
    });
    const headers = headersOf(requests[0]);
    assert.equal(headers.get("x-api-key"), LIVE_KEY);
    assert.equal(headers.get("authorization"), null);
    assert.equal(headers.get("anthropic-version"), "2023-06-01");
    assert.equal(headers.get("accept"), "application/json");

    assert.equal(outcome.kind, "json");
    assert.equal(outcome.status, 200);
    if (outcome.kind !== "json") return;
    // Bytes in, bytes out: the answer is exactly what Anthropic sent, tagged as such.
    assert.equal(outcome.format, "anthropic_json");
    assert.deepEqual(outcome.body, new TextEncoder().encode(fixture));
    assert.deepEqual(await outcome.usage, {
      prompt_tokens: 472,
      completion_tokens: 89,
      total_tokens: 561,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: completionDetails(),
    });
  },
);

Deno.test(
  "messages() passes the client's version and betas, merged with the config's",
  SANITIZE,
  async (t) => {
    const fixture = await fixtureText("response_text.json");
    const respond = () =>
      new Response(fixture, { headers: { "content-type": "application/json" } });
    await t.step("config headers and defaults without client headers", async () => {
      const { messages, requests } = adapterWith(respond, "claude-proxy");
      await messages(messagesCall({ apiKey: null }).call, "claude-x");
      const headers = headersOf(requests[0]);
      assert.equal(requests[0]?.url, "http://127.0.0.1:8100/v1/messages");
      assert.equal(headers.get("anthropic-version"), "2024-01-01");
      assert.equal(headers.get("anthropic-beta"), "tools-2024");
      assert.equal(headers.get("x-team"), "ml");
      assert.equal(headers.get("x-api-key"), null);
    });
    await t.step("the client's version wins; betas from both", async () => {
      const { messages, requests } = adapterWith(respond, "claude-proxy");
      await messages(
        messagesCall({
          apiKey: null,
          clientAuthorization: "Bearer sk-ant-client-key",
          headers: {
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "interleaved-thinking-2025-05-14, tools-2024",
          },
        }).call,
        "claude-x",
      );
      const headers = headersOf(requests[0]);
      assert.equal(headers.get("anthropic-version"), "2023-06-01");
      assert.equal(headers.get("anthropic-beta"), "tools-2024,interleaved-thinking-2025-05-14");
      // A forwarded client credential travels as x-api-key, never as Authorization.
      assert.equal(headers.get("x-api-key"), "sk-ant-client-key");
      assert.equal(headers.get("authorization"), null);
    });
  },
);

Deno.test(
  "messages() relays the event stream byte for byte and taps usage",
  SANITIZE,
  async (t) => {
    const sse = await fixtureBytes("stream_tool_use.sse");
    for (const n of CHUNK_SIZES) {
      await t.step(`${n}-byte chunks`, async () => {
        const { messages, requests } = adapterWith(() => sseResponse(sse, n));
        const { call } = messagesCall({}, { stream: true });
        const outcome = await messages(call, "claude-x");
        assert.equal(headersOf(requests[0]).get("accept"), "text/event-stream");
        assert.equal(outcome.kind, "stream");
        if (outcome.kind !== "stream") return;
        assert.equal(outcome.format, "anthropic_sse");
        const { chunks, error } = await drain(outcome.body as ReadableStream<Uint8Array>);
        assert.equal(error, undefined);
        assert.deepEqual(concatBytes(chunks), sse);
        // Forwarded as it came, except that the key scrub holds a chunk's last bytes when
        // they could begin the provider's key, until the next chunk tells. A chunk that ends
        // in a newline (every SSE event's last) holds nothing: no event waits.
        const ends = (cs: Uint8Array[]) => {
          let at = 0;
          return cs.map((c) => at += c.byteLength);
        };
        const upstream = rechunk(sse, n);
        const relayed = new Set(ends(chunks));
        const upstreamEnds = ends(upstream);
        assert.ok(chunks.length <= upstream.length);
        upstream.forEach((c, i) => {
          if (c.at(-1) === 0x0a) assert.ok(relayed.has(upstreamEnds[i]!), `chunk ${i} held`);
        });
        assert.deepEqual(await outcome.usage, {
          prompt_tokens: 472,
          completion_tokens: 89,
          total_tokens: 561,
          prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
          completion_tokens_details: completionDetails(),
        });
      });
    }
  },
);

Deno.test("messages() keeps the upstream error status (529 stays 529)", SANITIZE, async () => {
  const body = await fixtureText("error_529.json");
  const { messages } = adapterWith(() =>
    new Response(body, { status: 529, headers: { "content-type": "application/json" } })
  );
  const err = await gatewayError(() => messages(messagesCall().call, "claude-x"));
  assert.equal(err.status, 529);
  assert.equal(err.info.upstreamStatus, 529);
  assert.equal(err.info.upstreamCode, "overloaded_error");
  assert.equal(err.retryable, true);
  assert.equal(err.message, "Overloaded");
});

Deno.test(
  "messages() refuses a streaming answer that is not an event stream",
  SANITIZE,
  async () => {
    const { messages } = adapterWith(() =>
      new Response("{}", { headers: { "content-type": "application/json" } })
    );
    const err = await gatewayError(() =>
      messages(messagesCall({}, { stream: true }).call, "claude-x")
    );
    assert.equal(err.status, 502);
    assert.match(err.message, /without an event stream/);
  },
);

Deno.test(
  "createAnthropicUsageTap() errors a stream cut off before message_stop",
  SANITIZE,
  async () => {
    const full = new TextDecoder().decode(await fixtureBytes("stream_tool_use.sse"));
    const cut = new TextEncoder().encode(full.slice(0, full.indexOf("event: message_delta")));
    const meter = createUsageMeter();
    const { chunks, error } = await drain(
      streamOf(rechunk(cut, 7)).pipeThrough(createAnthropicUsageTap(meter, "a")),
    );
    assert.deepEqual(concatBytes(chunks), cut);
    assert.match(String(error), /ended before message_stop/);
    // Cut before message_delta: input as message_start counted it; output estimated from the
    // text and tool-input fragments that went out (~4 characters a token), marked estimated.
    const usage = await meter.usage;
    assert.equal(usage?.prompt_tokens, 472);
    const streamed = [
      ...full.slice(0, full.indexOf("event: message_delta"))
        .matchAll(/"(?:text|partial_json)":"((?:[^"\\]|\\.)*)"/g),
    ]
      .reduce((n, m) => n + (m[1] as string).length, 0);
    assert.ok(streamed > 0);
    assert.equal(usage?.completion_tokens, Math.ceil(streamed / 4));
    assert.equal(usage?.estimated, true);
  },
);

Deno.test(
  "createAnthropicUsageTap() after an upstream error event: every byte as it came, then a failure as told",
  SANITIZE,
  async () => {
    const sse = await fixtureBytes("stream_error_midway.sse");
    const { chunks, error } = await drain(
      streamOf(rechunk(sse, 64)).pipeThrough(createAnthropicUsageTap(createUsageMeter(), "a")),
    );
    // The client already has Anthropic's own error event: nothing is added to it, and the
    // stream is a failure for the log (told: the route renders nothing more).
    assert.deepEqual(concatBytes(chunks), sse);
    assert.ok(error instanceof GatewayError);
    assert.equal(error.info.told, true);
  },
);

Deno.test(
  "createAnthropicUsageTap() reads each event's own type: a nested type error is not an error event",
  SANITIZE,
  async () => {
    const event = (type: string, data: Record<string, unknown>) =>
      `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    const sse = new TextEncoder().encode(
      event("message_start", { message: { id: "m", usage: { input_tokens: 3 } } }) +
        event("content_block_start", {
          index: 0,
          content_block: { type: "tool_use", id: "t", name: "f", input: { type: "error" } },
        }) +
        event("message_delta", {
          delta: { stop_reason: "tool_use" },
          usage: { output_tokens: 2 },
        }) +
        event("message_stop", {}),
    );
    const { chunks, error } = await drain(
      streamOf(rechunk(sse, 64)).pipeThrough(createAnthropicUsageTap(createUsageMeter(), "a")),
    );
    assert.equal(error, undefined);
    assert.deepEqual(concatBytes(chunks), sse);
  },
);
