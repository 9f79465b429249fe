/**
 * `POST /v1/messages` through the real app, driven by the official Anthropic SDK: to an
 * OpenAI-compatible upstream (translated both ways), to an Anthropic upstream (same-schema
 * passthrough), and every failure in Anthropic's error envelope.
 */
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { startFakeAnthropic } from "../fakes/fake_anthropic.ts";
import { embeddedDefault } from "../../src/config/mod.ts";
import { completionBody, startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway } from "../helpers/in_process.ts";

const OPENAI_FIXTURES = new URL("../fixtures/openai/", import.meta.url);
const ANTHROPIC_FIXTURES = new URL("../fixtures/anthropic/", import.meta.url);

const openaiFixture = (name: string) => Deno.readTextFile(new URL(name, OPENAI_FIXTURES));
const anthropicFixture = (name: string) => Deno.readTextFile(new URL(name, ANTHROPIC_FIXTURES));

/** A recorded SSE transcript as its events, so the fake writes one event per write. */
async function sseEvents(name: string): Promise<string[]> {
  const text = await openaiFixture(name);
  return text.split(/(?<=\n\n)/);
}

/** The SDK pointed at the gateway; it appends `/v1/messages` to the base URL itself. */
function sdk(base: string, apiKey = "placeholder"): Anthropic {
  return new Anthropic({ baseURL: base, apiKey, maxRetries: 0 });
}

interface AnthropicErrorJson {
  type: string;
  error: { type: string; message: string };
}

async function postRaw(
  url: string,
  body: BodyInit,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: AnthropicErrorJson; headers: Headers }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  const json = await res.json() as AnthropicErrorJson;
  return { status: res.status, json, headers: res.headers };
}

const WEATHER_TOOL = {
  name: "get_weather",
  description: "Current weather for a location",
  input_schema: {
    type: "object" as const,
    properties: { location: { type: "string" }, unit: { type: "string" } },
    required: ["location"],
  },
};
const TIME_TOOL = {
  name: "get_time",
  input_schema: { type: "object" as const, properties: { timezone: { type: "string" } } },
};

Deno.test("the Anthropic SDK reaches an OpenAI-compatible provider through /v1/messages", async (t) => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  openai:
    base_url: ${up.url}/v1
    keys: [{ key: sk-openai-configured-0001 }]
routing:
  aliases:
    fast: openai/gpt-4o-mini
`);
  const client = sdk(gw.url(""));
  try {
    await t.step("plain text, not streamed", async () => {
      const { data: message, response } = await client.messages.create({
        model: "fast",
        max_tokens: 100,
        system: "Be brief.",
        messages: [{ role: "user", content: "hi" }],
        metadata: { user_id: "user-7" },
      }).withResponse();
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "application/json");
      assert.equal(response.headers.get("x-pilotfish-provider"), "openai");
      assert.equal(response.headers.get("x-pilotfish-model"), "gpt-4o-mini");
      assert.equal(response.headers.get("x-pilotfish-attempts"), "1");
      // Anthropic's SDKs read the id from `request-id`: ours, as the upstream sent none.
      assert.match(response.headers.get("request-id") ?? "", /^[0-9a-f-]{36}$/);
      assert.equal(response.headers.get("request-id"), response.headers.get("x-request-id"));
      assert.equal(message.type, "message");
      assert.equal(message.role, "assistant");
      assert.match(message.id, /^msg_/);
      assert.deepEqual(message.content, [{ type: "text", text: "Hello from upstream" }]);
      assert.equal(message.stop_reason, "end_turn");
      assert.equal(message.usage.input_tokens, 7);
      assert.equal(message.usage.output_tokens, 3);

      // What the OpenAI upstream received: the translated request, with our key.
      const sent = up.requests.at(-1)!;
      assert.equal(sent.path, "/v1/chat/completions");
      assert.equal(sent.headers.get("authorization"), "Bearer sk-openai-configured-0001");
      assert.equal(sent.headers.get("x-api-key"), null);
      assert.deepEqual(JSON.parse(sent.body), {
        model: "gpt-4o-mini",
        messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "hi" }],
        // OpenAI's own API: its current field (reasoning models refuse max_tokens).
        max_completion_tokens: 100,
        user: "user-7",
      });
    });

    await t.step("tool use, not streamed", async () => {
      up.script({
        kind: "json",
        body: JSON.parse(await openaiFixture("response_tool_calls.json")),
      });
      const message = await client.messages.create({
        model: "openai/gpt-4o",
        max_tokens: 200,
        tools: [WEATHER_TOOL, TIME_TOOL],
        tool_choice: { type: "any", disable_parallel_tool_use: false },
        messages: [{ role: "user", content: "Weather and time in Paris?" }],
      });
      assert.equal(message.stop_reason, "tool_use");
      assert.deepEqual(message.content, [
        { type: "text", text: "Let me check both." },
        {
          type: "tool_use",
          id: "call_DdmO9pD3xa9XTPNJ32zg2hcA",
          name: "get_weather",
          input: { location: "Paris, FR", unit: "celsius" },
        },
        { type: "tool_use", id: "call_ABC123def456ghi789jkl0", name: "get_time", input: {} },
      ]);
      assert.equal(message.usage.cache_read_input_tokens, 1024);
      assert.equal(message.usage.input_tokens, 176);
      const sent = JSON.parse(up.requests.at(-1)!.body);
      assert.equal(sent.tool_choice, "required");
      assert.deepEqual(sent.tools[0], {
        type: "function",
        function: {
          name: "get_weather",
          description: WEATHER_TOOL.description,
          parameters: WEATHER_TOOL.input_schema,
        },
      });
    });

    await t.step("tool use, streamed: finalMessage() assembles the tool input", async () => {
      up.script({ kind: "sse", events: await sseEvents("stream_tool_calls.sse") });
      const stream = client.messages.stream({
        model: "openai/gpt-4o",
        max_tokens: 200,
        tools: [WEATHER_TOOL, TIME_TOOL],
        messages: [
          { role: "user", content: "Weather in Paris?" },
          {
            role: "assistant",
            content: [{
              type: "tool_use",
              id: "toolu_prev",
              name: "get_weather",
              input: { location: "Lyon" },
            }],
          },
          {
            role: "user",
            content: [
              { type: "tool_result", tool_use_id: "toolu_prev", content: "12C" },
              { type: "text", text: "Now Paris, and the time." },
            ],
          },
        ],
      });
      let text = "";
      stream.on("text", (delta) => {
        text += delta;
      });
      const message = await stream.finalMessage();
      assert.equal(text, "Let me check both.");
      assert.equal(message.stop_reason, "tool_use");
      assert.deepEqual(message.content.map((b) => b.type), ["text", "tool_use", "tool_use"]);
      const [, weather, time] = message.content;
      assert.ok(weather?.type === "tool_use" && time?.type === "tool_use");
      assert.equal(weather.name, "get_weather");
      assert.equal(weather.id, "call_DdmO9pD3xa9XTPNJ32zg2hcA");
      assert.deepEqual(weather.input, { location: "Paris, FR", unit: "celsius" });
      assert.deepEqual(time.input, { timezone: "Europe/Paris" });
      assert.equal(message.usage.output_tokens, 58);
      assert.equal(message.usage.input_tokens, 176);
      assert.equal(message.usage.cache_read_input_tokens, 1024);

      const sent = JSON.parse(up.requests.at(-1)!.body);
      assert.equal(sent.stream, true);
      assert.deepEqual(sent.stream_options, { include_usage: true });
      assert.deepEqual(sent.messages, [
        { role: "user", content: "Weather in Paris?" },
        {
          role: "assistant",
          content: null,
          tool_calls: [{
            id: "toolu_prev",
            type: "function",
            function: { name: "get_weather", arguments: '{"location":"Lyon"}' },
          }],
        },
        { role: "tool", tool_call_id: "toolu_prev", content: "12C" },
        { role: "user", content: "Now Paris, and the time." },
      ]);
    });

    await t.step("plain text, streamed: raw events and usage in the access log", async () => {
      up.script({ kind: "sse", events: await sseEvents("stream_text.sse") });
      const { data: stream, response } = await client.messages.create({
        model: "fast",
        max_tokens: 50,
        stream: true,
        messages: [{ role: "user", content: "Say hello in French" }],
      }).withResponse();
      assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
      const types: string[] = [];
      let text = "";
      let startInput = -1;
      for await (const event of stream) {
        types.push(event.type);
        if (event.type === "message_start") startInput = event.message.usage.input_tokens;
        if (event.type === "content_block_delta" && event.delta.type === "text_delta") {
          text += event.delta.text;
        }
      }
      assert.equal(text, "Bonjour à toi 🌊!");
      // OpenAI counts at the end; message_start carries the estimate (what LangChain reads).
      assert.ok(startInput > 0, `message_start input_tokens ${startInput}`);
      assert.deepEqual(types, [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
      ]);
      await gw.waitForLog(`"route":"/v1/messages","path":"/v1/messages","status":200`);
      await gw.waitForLog(`"prompt_tokens":19,"completion_tokens":6`);
    });

    await t.step("streamed by a server that sends no usage: the estimate, not zeros", async () => {
      // A compatible server that ignores include_usage: no usage chunk at all.
      const events = (await sseEvents("stream_text.sse")).filter((e) => !e.includes('"usage":{'));
      up.script({ kind: "sse", events });
      const stream = client.messages.stream({
        model: "fast",
        max_tokens: 50,
        messages: [{ role: "user", content: "Say hello in French" }],
      });
      let startInput = -1;
      stream.on("streamEvent", (event) => {
        if (event.type === "message_start") startInput = event.message.usage.input_tokens;
      });
      const message = await stream.finalMessage();
      assert.ok(startInput > 0, `message_start input_tokens ${startInput}`);
      // message_delta's counts are cumulative: zeros there would overwrite the estimates.
      assert.equal(message.usage.input_tokens, startInput);
      assert.ok(message.usage.output_tokens > 0, `output_tokens ${message.usage.output_tokens}`);
    });
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("/v1/messages to an Anthropic provider is a byte-for-byte passthrough", async (t) => {
  const anthropic = startFakeAnthropic();
  const openai = startFakeUpstream();
  const gw = startGateway(`
providers:
  anthropic:
    base_url: ${anthropic.url}/v1
    keys: [{ key: sk-ant-configured-0002 }]
  anthropic-open:
    type: anthropic
    base_url: ${anthropic.url}/v1
  openai:
    base_url: ${openai.url}/v1
    keys: [{ key: sk-openai-0003 }]
routing:
  models:
    claude: { providers: [anthropic/claude-sonnet-4-5-20250929] }
    smart: { providers: [openai/gpt-4o, anthropic/claude-sonnet-4-5-20250929] }
  failover:
    backoff: { initial: 10ms, max: 20ms }
`);
  const params = {
    model: "claude",
    max_tokens: 300,
    system: [{
      type: "text" as const,
      text: "Be brief.",
      cache_control: { type: "ephemeral" as const },
    }],
    tools: [WEATHER_TOOL, { type: "web_search_20250305" as const, name: "web_search" as const }],
    thinking: { type: "enabled" as const, budget_tokens: 1024 },
    messages: [{
      role: "user" as const,
      content: [{
        type: "document" as const,
        source: { type: "text" as const, media_type: "text/plain" as const, data: "Notes" },
      }, { type: "text" as const, text: "Weather in SF?" }],
    }],
  };
  try {
    await t.step("the SDK's body arrives unchanged but for the model", async () => {
      const client = sdk(gw.url(""));
      const { data: message, response, request_id } = await client.messages.create(params, {
        headers: { "anthropic-beta": "interleaved-thinking-2025-05-14" },
      }).withResponse();
      assert.equal(response.headers.get("x-pilotfish-provider"), "anthropic");
      // The provider's own id, what its support asks for, as the SDK reports it.
      assert.equal(request_id, "req_fake_msg_0001");
      assert.equal(response.headers.get("x-pilotfish-model"), "claude-sonnet-4-5-20250929");
      const fixture = JSON.parse(await anthropicFixture("response_tool_use.json"));
      assert.deepEqual(message, fixture);

      const sent = anthropic.requests.at(-1)!;
      assert.equal(sent.path, "/v1/messages");
      assert.deepEqual(JSON.parse(sent.body), { ...params, model: "claude-sonnet-4-5-20250929" });
      assert.equal(sent.headers.get("x-api-key"), "sk-ant-configured-0002");
      assert.equal(sent.headers.get("authorization"), null);
      // The SDK's own API version (newer than our adapter's default) travels unchanged.
      assert.equal(sent.headers.get("anthropic-version"), "2026-10-21");
      assert.equal(sent.headers.get("anthropic-beta"), "interleaved-thinking-2025-05-14");
    });

    await t.step("response bytes reach the client unchanged, JSON and SSE", async () => {
      const body = JSON.stringify({ ...params, "x-gateway": { timeout: 30 } });
      const json = await gw.request("/v1/messages", { method: "POST", body });
      assert.equal(json.status, 200);
      assert.equal(json.headers.get("content-type"), "application/json");
      assert.equal(await json.text(), await anthropicFixture("response_tool_use.json"));
      // x-gateway is ours: it never reaches the provider.
      assert.equal("x-gateway" in JSON.parse(anthropic.requests.at(-1)!.body), false);

      const sse = await gw.request("/v1/messages", {
        method: "POST",
        body: JSON.stringify({ ...params, stream: true }),
      });
      assert.match(sse.headers.get("content-type") ?? "", /^text\/event-stream/);
      assert.equal(await sse.text(), await anthropicFixture("stream_tool_use.sse"));
    });

    await t.step("the SDK's stream assembles the passthrough tool input", async () => {
      const message = await sdk(gw.url("")).messages.stream(params).finalMessage();
      assert.equal(message.stop_reason, "tool_use");
      const weather = message.content[1];
      assert.ok(weather?.type === "tool_use");
      assert.deepEqual(weather.input, { location: "San Francisco, CA", unit: "fahrenheit" });
      assert.equal(message.usage.output_tokens, 89);
    });

    await t.step("a client credential is forwarded only to a provider without keys", async () => {
      await sdk(gw.url(""), "sk-ant-client-9999").messages.create({
        ...params,
        model: "anthropic-open/claude-x",
      });
      assert.equal(anthropic.requests.at(-1)!.headers.get("x-api-key"), "sk-ant-client-9999");
      // An application key identifies the caller; it never travels upstream.
      await sdk(gw.url(""), "pf_app_key_1234").messages.create({
        ...params,
        model: "anthropic-open/claude-x",
      });
      assert.equal(anthropic.requests.at(-1)!.headers.get("x-api-key"), null);
      // A provider with keys uses its own, whatever the client sent.
      await sdk(gw.url(""), "sk-ant-client-9999").messages.create(params);
      assert.equal(anthropic.requests.at(-1)!.headers.get("x-api-key"), "sk-ant-configured-0002");
    });

    await t.step("fails over from an OpenAI provider to the Anthropic passthrough", async () => {
      openai.script({ kind: "json", status: 503, body: { error: { message: "overloaded" } } });
      const { data: message, response } = await sdk(gw.url("")).messages.create({
        model: "smart",
        max_tokens: 100,
        messages: [{ role: "user", content: "Weather in SF?" }],
        tools: [WEATHER_TOOL],
      }).withResponse();
      assert.equal(response.headers.get("x-pilotfish-provider"), "anthropic");
      // max_retries (2) is per provider: three tries on OpenAI, then Anthropic.
      assert.equal(response.headers.get("x-pilotfish-attempts"), "4");
      assert.equal(message.stop_reason, "tool_use");
      assert.equal(JSON.parse(anthropic.requests.at(-1)!.body).model, "claude-sonnet-4-5-20250929");
    });
  } finally {
    await gw.close();
    await anthropic.close();
    await openai.close();
  }
});

Deno.test("every /v1/messages failure answers in Anthropic's error envelope", async (t) => {
  const up = startFakeUpstream();
  const anthropic = startFakeAnthropic();
  const gw = startGateway(`
server:
  max_body_bytes: 4096
routing:
  failover: { enabled: false }
providers:
  mock: {}
  up:
    base_url: ${up.url}/v1
    keys: [{ key: sk-up-secret-0004 }]
  anthropic:
    base_url: ${anthropic.url}/v1
    keys: [{ key: sk-ant-secret-0005 }]
`);
  const url = gw.url("/v1/messages");
  const client = sdk(gw.url(""));
  const ok: Anthropic.MessageCreateParamsNonStreaming = {
    model: "up/gpt-4o",
    max_tokens: 10,
    messages: [{ role: "user", content: "hi" }],
  };
  const assertEnvelope = (json: AnthropicErrorJson, type: string) => {
    assert.equal(json.type, "error");
    assert.equal(json.error.type, type);
    assert.equal(typeof json.error.message, "string");
    assert.deepEqual(Object.keys(json).sort(), ["error", "type"]);
  };
  try {
    await t.step("malformed JSON → 400", async () => {
      const r = await postRaw(url, "{not json");
      assert.equal(r.status, 400);
      assertEnvelope(r.json, "invalid_request_error");
      assert.match(r.json.error.message, /not valid JSON/);
    });

    await t.step("missing or invalid fields → 400 naming the field", async () => {
      const { max_tokens: _, ...noMax } = ok;
      const cases: [unknown, string][] = [
        [noMax, "max_tokens"],
        [{ ...ok, max_tokens: "ten" }, "max_tokens"],
        [{ ...ok, model: undefined }, "model"],
        [{ ...ok, messages: [] }, "messages"],
        [{ ...ok, messages: [{ role: "wizard", content: "x" }] }, "messages[0].role"],
        [{ ...ok, temperature: 1.5 }, "temperature"],
        [{ ...ok, stream: "yes" }, "stream"],
      ];
      for (const [body, param] of cases) {
        const r = await postRaw(url, JSON.stringify(body));
        assert.equal(r.status, 400, JSON.stringify(body));
        assertEnvelope(r.json, "invalid_request_error");
        assert.ok(r.json.error.message.includes(param), r.json.error.message);
      }
    });

    await t.step("a document block for an OpenAI provider → 400 naming it", async () => {
      const err = await client.messages.create({
        ...ok,
        messages: [{
          role: "user",
          content: [{ type: "document", source: { type: "url", url: "https://x.test/a.pdf" } }],
        }],
      }).catch((e: unknown) => e);
      assert.ok(err instanceof Anthropic.BadRequestError, String(err));
      assert.equal(
        err.apiMessage,
        `Content block type "document" in messages[0].content[0] is not supported by provider "up"`,
      );
      assert.equal(up.requests.length, 0, "refused before any upstream call");
    });

    await t.step("oversize body → 413", async () => {
      const r = await postRaw(url, JSON.stringify({ ...ok, pad: "x".repeat(5000) }));
      assert.equal(r.status, 413);
      assertEnvelope(r.json, "request_too_large");
    });

    await t.step("unknown model → 404 listing what is configured", async () => {
      const err = await client.messages.create({ ...ok, model: "nope/gpt-9" })
        .catch((e: unknown) => e);
      assert.ok(err instanceof Anthropic.NotFoundError, String(err));
      assert.equal(err.status, 404);
      assert.equal(err.type, "not_found_error");
      assert.match(err.apiMessage ?? "", /Unknown model "nope\/gpt-9".*mock, up, anthropic/);
    });

    await t.step("wrong method → 405 with Allow", async () => {
      const res = await fetch(url);
      assert.equal(res.status, 405);
      assert.equal(res.headers.get("allow"), "POST");
      const json = await res.json() as AnthropicErrorJson;
      assert.equal(json.type, "error");
      assert.match(json.error.message, /Method GET is not allowed/);
    });

    await t.step("upstream 429 keeps its status and Retry-After", async () => {
      up.script({
        kind: "json",
        status: 429,
        headers: { "retry-after": "7" },
        body: { error: { message: "Rate limit reached for sk-up-secret-0004", type: "requests" } },
      });
      const r = await postRaw(url, JSON.stringify(ok));
      assert.equal(r.status, 429);
      assert.equal(r.headers.get("retry-after"), "7");
      assert.equal(r.headers.get("x-pilotfish-attempts"), "1");
      assertEnvelope(r.json, "rate_limit_error");
      assert.ok(!r.json.error.message.includes("sk-up-secret-0004"), r.json.error.message);
      up.script({ kind: "json" });
    });

    await t.step("Anthropic's 529 keeps its status", async () => {
      anthropic.script({ errorStatus: 529, errorFixture: "error_529" });
      const err = await client.messages.create({ ...ok, model: "anthropic/claude-x" })
        .catch((e: unknown) => e);
      assert.ok(err instanceof Anthropic.InternalServerError, String(err));
      assert.equal(err.status, 529);
      assert.equal(err.apiMessage, "Overloaded");
      anthropic.script({ errorStatus: 429, errorFixture: "error_429" });
      const limited = await client.messages.create({ ...ok, model: "anthropic/claude-x" })
        .catch((e: unknown) => e);
      assert.ok(limited instanceof Anthropic.RateLimitError, String(limited));
      assert.equal(limited.type, "rate_limit_error");
    });

    await t.step("a stream that breaks after its first byte ends with event: error", async (t) => {
      const midway = await openaiFixture("stream_error_midway.sse");
      const text = await openaiFixture("stream_text.sse");
      const cases: [string, () => void, string][] = [
        ["the mock's broken stream", () => {}, "mock/stream-error-after-3"],
        [
          "an OpenAI in-stream error",
          () => up.script({ kind: "sse", events: midway.split(/(?<=\n\n)/) }),
          "up/gpt-4o",
        ],
        [
          "a cut connection",
          () =>
            up.script({
              kind: "sse",
              events: text.split(/(?<=\n\n)/).slice(0, 3),
              thenBreak: true,
            }),
          "up/gpt-4o",
        ],
      ];
      for (const [label, arrange, model] of cases) {
        await t.step(label, async () => {
          arrange();
          const res = await fetch(url, {
            method: "POST",
            body: JSON.stringify({ ...ok, model, stream: true }),
          });
          assert.equal(res.status, 200);
          const body = await res.text();
          assert.match(body, /^event: message_start\n/);
          assert.match(body, /event: content_block_delta\n/);
          const last = body.trimEnd().split("\n\n").at(-1)!;
          assert.match(last, /^event: error\ndata: /);
          const payload = JSON.parse(last.slice(last.indexOf("data: ") + 6));
          assertEnvelope(payload, "api_error");
          assert.ok(!body.includes("message_stop"));

          // The SDK surfaces it as an error, not as a short but complete answer.
          arrange();
          const err = await client.messages.stream({ ...ok, model }).finalMessage()
            .catch((e: unknown) => e);
          assert.ok(err instanceof Anthropic.APIError, String(err));
          assert.equal(err.type, "api_error");
        });
      }
    });
  } finally {
    await gw.close();
    await up.close();
    await anthropic.close();
  }
});

Deno.test("/v1/messages on the embedded default: mock/... answers, a bare model is a 404", async () => {
  const gw = startGateway(embeddedDefault(() => undefined).config);
  try {
    const message = await sdk(gw.url("")).messages.create({
      model: "mock/echo",
      max_tokens: 20,
      messages: [{ role: "user", content: "ping" }],
    });
    assert.deepEqual(message.content, [{ type: "text", text: "ping" }]);

    for (const model of ["claude-sonnet-4-5", "anthropc/claude-sonnet-4-5"]) {
      const { status, json } = await postRaw(
        gw.url("/v1/messages"),
        JSON.stringify({ model, max_tokens: 20, messages: [{ role: "user", content: "ping" }] }),
      );
      assert.equal(status, 404);
      assert.equal(json.type, "error");
      assert.equal(json.error.type, "not_found_error");
      assert.match(json.error.message, /ANTHROPIC_API_KEY/);
      assert.ok(json.error.message.includes(`"${model}"`), json.error.message);
    }
  } finally {
    await gw.close();
  }
});

Deno.test("the Anthropic SDK's threads reach a translated provider whole: thread_not_found makes it replay", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  openai:
    base_url: ${up.url}/v1
    keys: [{ key: sk-openai-configured-0001 }]
`);
  const client = sdk(gw.url(""));
  try {
    up.script({ kind: "json", body: completionBody("Hello Ada.") });
    up.script({ kind: "json", body: completionBody("Your name is Ada.") });
    const thread = client.beta.messages.thread({
      model: "openai/gpt-4o-mini",
      max_tokens: 50,
      system: "You are terse.",
    });
    await thread.send({ role: "user", content: "My name is Ada." });
    const second = await thread.send({ role: "user", content: "What is my name?" });
    assert.equal((second.content[0] as { text: string }).text, "Your name is Ada.");
    // The continue turn was refused locally (no upstream call); the replay carried it all.
    assert.equal(up.requests.length, 2);
    const sent = JSON.parse(up.requests[1]!.body) as { messages: { role: string }[] };
    assert.deepEqual(sent.messages.map((m) => m.role), ["system", "user", "assistant", "user"]);
    assert.ok(!("thread" in sent));

    // The refusal itself, as the SDK reads it.
    const res = await gw.request("/v1/messages", {
      method: "POST",
      headers: { "content-type": "application/json", "anthropic-version": "2023-06-01" },
      body: JSON.stringify({
        model: "openai/gpt-4o-mini",
        max_tokens: 10,
        thread: { type: "continue", previous_message_id: "msg_x" },
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    assert.equal(res.status, 404);
    const body = await res.json();
    assert.equal(body.error.type, "not_found_error");
    assert.deepEqual(body.error.details, { error_code: "thread_not_found" });
  } finally {
    await gw.close();
    await up.close();
  }
});
