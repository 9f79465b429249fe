import assert from "node:assert/strict";
import { jsonOf } from "../outcome.ts";
import { GatewayError } from "../../../src/errors.ts";
import type { ChatCall } from "../../../src/providers/mod.ts";
import type { OpenAIChatRequest, OpenAIUsage } from "../../../src/schema/openai.ts";
import { chatCallFor } from "../../helpers/calls.ts";
import { readOpenAISse } from "../../helpers/openai_sse.ts";
import {
  adapterWithFetch,
  type Handler,
  headersOf,
  jsonResponse,
  type Recorded,
  sseResponse,
} from "../../helpers/fake_fetch.ts";
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
    headers: { Anthropic-Version: "2024-01-01", anthropic-beta: "tools-2024" }
  sdk-style:
    type: anthropic
    base_url: http://127.0.0.1:8100/anthropic
`;

const SETUP = { configText: CONFIG_TEXT, configName: "anthropic.yaml", type: "anthropic" };

/** The configured adapter whose `fetch` is `handler`, recording every request. */
const adapterWith = (handler: Handler, provider = "anthropic") =>
  adapterWithFetch(SETUP, handler, provider);

const chatCall = (overrides: Partial<ChatCall> = {}, body: Partial<OpenAIChatRequest> = {}) =>
  chatCallFor({ model: "claude-sonnet-4-5", apiKey: LIVE_KEY }, overrides, body);

Deno.test(
  "createAnthropicAdapter() posts a translated request to /messages with x-api-key",
  SANITIZE,
  async () => {
    const fixture = await fixtureText("response_text.json");
    const { adapter, requests } = adapterWith(() => jsonResponse(fixture));
    const { call } = chatCall({}, {
      messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }],
      temperature: 0.2,
      max_tokens: 64,
    });
    const outcome = await adapter.chat(call, "claude-sonnet-4-5-20250929");

    assert.equal(requests.length, 1);
    const { url, init } = requests[0] as Recorded;
    assert.equal(url, "https://api.anthropic.com/v1/messages");
    assert.equal(init.method, "POST");
    assert.equal(init.redirect, "manual");
    const headers = headersOf(requests[0]);
    assert.equal(headers.get("x-api-key"), LIVE_KEY);
    assert.equal(headers.get("authorization"), null);
    assert.equal(headers.get("anthropic-version"), "2023-06-01");
    assert.equal(headers.get("content-type"), "application/json");
    assert.equal(headers.get("accept"), "application/json");
    assert.deepEqual(JSON.parse(String(init.body)), {
      model: "claude-sonnet-4-5-20250929",
      messages: [{ role: "user", content: "Hi" }],
      system: "Be brief.",
      max_tokens: 64,
      temperature: 0.2,
    });

    assert.equal(outcome.kind, "json");
    assert.equal(outcome.status, 200);
    if (outcome.kind !== "json") return;
    const body = jsonOf(outcome);
    assert.equal(body.object, "chat.completion");
    assert.equal(body.id, "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL");
    assert.equal(body.choices[0].message.content, "Hello! How can I help you today?");
    assert.equal(body.choices[0].finish_reason, "stop");
    assert.equal(typeof body.created, "number");
    const usage = {
      prompt_tokens: 132,
      completion_tokens: 10,
      total_tokens: 142,
      prompt_tokens_details: { cached_tokens: 100, audio_tokens: 0, cache_write_tokens: 20 },
      completion_tokens_details: completionDetails(),
    };
    assert.deepEqual(body.usage, usage);
    assert.deepEqual(await outcome.usage, usage);
  },
);

Deno.test(
  "createAnthropicAdapter() honours base_url and lets cfg.headers override the version",
  SANITIZE,
  async () => {
    const fixture = await fixtureText("response_text.json");
    const { adapter, requests } = adapterWith(() => jsonResponse(fixture), "claude-proxy");
    await adapter.chat(chatCall({ apiKey: null }).call, "claude-x");
    assert.equal(requests[0]?.url, "http://127.0.0.1:8100/v1/messages");
    // A root, as Anthropic's SDKs take it (they add /v1/messages): the version is added.
    const root = adapterWith(() => jsonResponse(fixture), "sdk-style");
    await root.adapter.chat(chatCall({ apiKey: null }).call, "claude-x");
    assert.equal(root.requests[0]?.url, "http://127.0.0.1:8100/anthropic/v1/messages");
    const headers = headersOf(requests[0]);
    assert.equal(headers.get("anthropic-version"), "2024-01-01");
    assert.equal(headers.get("anthropic-beta"), "tools-2024");
    assert.equal(headers.get("x-api-key"), null);
  },
);

Deno.test(
  "createAnthropicAdapter() turns a forwarded Bearer credential into x-api-key",
  SANITIZE,
  async (t) => {
    const fixture = await fixtureText("response_text.json");
    const cases: [string, Partial<ChatCall>, string | null][] = [
      [
        "configured key wins",
        { apiKey: "sk-ant-configured", clientAuthorization: "Bearer sk-ant-client" },
        "sk-ant-configured",
      ],
      [
        "client Bearer without a key",
        { apiKey: null, clientAuthorization: "Bearer sk-ant-client" },
        "sk-ant-client",
      ],
      ["client bare key", { apiKey: null, clientAuthorization: "sk-ant-bare" }, "sk-ant-bare"],
      ["neither", { apiKey: null, clientAuthorization: null }, null],
    ];
    for (const [label, overrides, expected] of cases) {
      await t.step(label, async () => {
        const { adapter, requests } = adapterWith(() => jsonResponse(fixture));
        await adapter.chat(chatCall(overrides).call, "claude-x");
        const headers = headersOf(requests[0]);
        assert.equal(headers.get("x-api-key"), expected);
        // The client's Authorization itself never travels upstream.
        assert.equal(headers.get("authorization"), null);
      });
    }
  },
);

Deno.test(
  "createAnthropicAdapter() streams OpenAI chunks and reports usage",
  SANITIZE,
  async () => {
    const sse = await fixtureBytes("stream_tool_use.sse");
    const { adapter, requests } = adapterWith(() =>
      sseResponse(sse, 7, "text/event-stream; charset=utf-8")
    );
    const { call } = chatCall({}, {
      stream: true,
      stream_options: { include_usage: true },
      tools: [{ type: "function", function: { name: "get_weather", parameters: {} } }],
    });
    const outcome = await adapter.chat(call, "claude-x");
    const headers = headersOf(requests[0]);
    assert.equal(headers.get("accept"), "text/event-stream");
    const sent = JSON.parse(String(requests[0]?.init.body));
    assert.equal(sent.stream, true);
    assert.equal(sent.stream_options, undefined);

    assert.equal(outcome.kind, "stream");
    if (outcome.kind !== "stream") return;
    assert.equal(outcome.status, 200);
    const events = await readOpenAISse(outcome.body);
    assert.equal(events.at(-1), "[DONE]");
    const usageChunk = events.at(-2) as { choices: unknown[]; usage: OpenAIUsage };
    assert.deepEqual(usageChunk.choices, []);
    assert.equal(usageChunk.usage.prompt_tokens, 472);
    assert.equal(usageChunk.usage.completion_tokens, 89);
    const finish = events.at(-3) as { choices: { finish_reason: string }[] };
    assert.equal(finish.choices[0]?.finish_reason, "tool_calls");
    assert.equal((await outcome.usage)?.total_tokens, 561);
  },
);

Deno.test(
  "createAnthropicAdapter() errors the stream on a mid-stream overload",
  SANITIZE,
  async () => {
    const sse = await fixtureBytes("stream_error_midway.sse");
    const { adapter } = adapterWith(() => sseResponse(sse, 64));
    const outcome = await adapter.chat(chatCall({}, { stream: true }).call, "claude-x");
    assert.equal(outcome.kind, "stream");
    if (outcome.kind !== "stream") return;
    assert.equal(outcome.format, "chunks");
    const { chunks, error } = await drain(outcome.body as ReadableStream<unknown>);
    assert.equal(chunks.length, 2);
    assert.ok(error instanceof GatewayError);
    assert.equal(error.status, 529);
    assert.equal(error.message, "Overloaded");
  },
);

Deno.test(
  "createAnthropicAdapter() keeps an upstream 529 as a retryable 529",
  SANITIZE,
  async () => {
    const body = await fixtureText("error_529.json");
    const { adapter } = adapterWith(() => jsonResponse(body, 529));
    const err = await gatewayError(() => adapter.chat(chatCall().call, "claude-x"));
    assert.equal(err.code, "upstream_error");
    assert.equal(err.status, 529);
    assert.equal(err.info.upstreamStatus, 529);
    assert.equal(err.info.upstreamCode, "overloaded_error");
    assert.equal(err.info.provider, "anthropic");
    assert.equal(err.message, "Overloaded");
    assert.equal(err.retryable, true);
  },
);

Deno.test(
  "createAnthropicAdapter() keeps an upstream 400 message, not retryable",
  SANITIZE,
  async () => {
    const body = await fixtureText("error_400.json");
    const { adapter } = adapterWith(() => jsonResponse(body, 400));
    const err = await gatewayError(() => adapter.chat(chatCall().call, "claude-x"));
    assert.equal(err.status, 400);
    assert.equal(err.info.upstreamCode, "invalid_request_error");
    assert.match(err.message, /^max_tokens: 100000 > 64000/);
    assert.equal(err.retryable, false);
  },
);

Deno.test(
  "createAnthropicAdapter() maps a 429 to rate_limited with retry-after",
  SANITIZE,
  async () => {
    const body = await fixtureText("error_429.json");
    const { adapter } = adapterWith(() => jsonResponse(body, 429, { "retry-after": "12" }));
    const err = await gatewayError(() => adapter.chat(chatCall().call, "claude-x"));
    assert.equal(err.code, "rate_limited");
    assert.equal(err.status, 429);
    assert.deepEqual(err.info.headers, { "retry-after": "12" });
    assert.equal(err.retryable, true);
  },
);

Deno.test(
  "createAnthropicAdapter() redacts a key quoted by an upstream error",
  SANITIZE,
  async () => {
    const { adapter } = adapterWith(() =>
      jsonResponse(
        JSON.stringify({
          type: "error",
          error: { type: "authentication_error", message: `invalid x-api-key ${LIVE_KEY}` },
        }),
        401,
      )
    );
    const err = await gatewayError(() => adapter.chat(chatCall().call, "claude-x"));
    assert.equal(err.status, 401);
    assert.equal(err.retryable, false);
    assert.ok(!err.message.includes("abcdef123456"), err.message);
    assert.equal(err.message, "invalid x-api-key [REDACTED]");
  },
);

Deno.test("createAnthropicAdapter() refuses to follow a redirect", SANITIZE, async () => {
  const { adapter, requests } = adapterWith(() =>
    new Response("moved", { status: 307, headers: { location: "http://elsewhere.example/" } })
  );
  const err = await gatewayError(() => adapter.chat(chatCall().call, "claude-x"));
  assert.equal(err.code, "upstream_error");
  assert.equal(err.info.upstreamStatus, 307);
  assert.equal(requests.length, 1);
});

Deno.test(
  "createAnthropicAdapter() answers an untranslatable request with 400 before any fetch",
  SANITIZE,
  async () => {
    const { adapter, requests } = adapterWith(() => jsonResponse("{}"));
    const err = await gatewayError(() => adapter.chat(chatCall({}, { n: 2 }).call, "claude-x"));
    assert.equal(err.status, 400);
    assert.equal(err.info.param, "n");
    assert.equal(err.message, 'Parameter "n" is not supported by provider "anthropic"');
    assert.equal(requests.length, 0);
  },
);

Deno.test(
  "createAnthropicAdapter() reports upstream bodies it cannot use",
  SANITIZE,
  async (t) => {
    await t.step("a 200 that is not JSON", async () => {
      const { adapter } = adapterWith(() => new Response("<html>proxy</html>", { status: 200 }));
      const err = await gatewayError(() => adapter.chat(chatCall().call, "claude-x"));
      assert.equal(err.code, "upstream_error");
      assert.equal(err.status, 502);
    });
    await t.step("a 200 JSON that is not a message", async () => {
      const { adapter } = adapterWith(() => jsonResponse('{"ok":true}'));
      const err = await gatewayError(() => adapter.chat(chatCall().call, "claude-x"));
      assert.equal(err.status, 502);
    });
    await t.step("a stream request answered with JSON", async () => {
      const fixture = await fixtureText("response_text.json");
      const { adapter } = adapterWith(() => jsonResponse(fixture));
      const err = await gatewayError(() =>
        adapter.chat(chatCall({}, { stream: true }).call, "claude-x")
      );
      assert.equal(err.status, 502);
      assert.match(err.message, /without an event stream/);
    });
  },
);

Deno.test(
  "createAnthropicAdapter() maps a fetch TypeError to upstream_unreachable 502",
  SANITIZE,
  async () => {
    const { adapter } = adapterWith(() => {
      throw new TypeError("error sending request: connection refused");
    });
    const err = await gatewayError(() => adapter.chat(chatCall().call, "claude-x"));
    assert.equal(err.code, "upstream_unreachable");
    assert.equal(err.status, 502);
    assert.equal(err.retryable, true);
  },
);
