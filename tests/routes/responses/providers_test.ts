/**
 * `/v1/responses` and the token-count routes against every upstream format, through a real
 * daemon over TCP and its Unix socket, driven by the official SDKs: `openai`
 * (`client.responses.create`), the Vercel AI SDK's default `openai(model)` (`generateText`,
 * `streamText`) and `@anthropic-ai/sdk` (`messages.countTokens`). An OpenAI-compatible, an
 * Anthropic, a Gemini and a Bedrock upstream get the Responses API translated; the `openai`
 * preset gets it natively, its bytes relayed identical to a direct call.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";
import { startFakeUpstream } from "../../fakes/fake_upstream.ts";
import { startFakeAnthropic } from "../../fakes/fake_anthropic.ts";
import { startFakeGemini } from "../../fakes/fake_gemini.ts";
import {
  CONVERSE_TEXT,
  CONVERSE_TOOL_USE,
  startFakeBedrock,
  TEST_CREDENTIALS,
} from "../../fakes/fake_bedrock.ts";
import { type Daemon, startDaemon } from "../../integration/daemon.ts";

const FIXTURES = new URL("../../fixtures/responses/", import.meta.url);
const BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/** Each translated upstream: the model to ask for and the text its fixtures answer. */
const TRANSLATED = [
  { name: "OpenAI-compatible", model: "compat/gpt-4o-mini", text: "Hello from upstream" },
  {
    name: "Anthropic",
    model: "anthropic/claude-sonnet-4-5",
    text: "Hello! How can I help you today?",
  },
  { name: "Gemini", model: "gemini/gemini-2.5-flash", text: "Hello! How can I help you today?" },
  { name: "Bedrock", model: `bedrock/${BEDROCK_MODEL}`, text: "Hello from Bedrock" },
] as const;

/** Streamed answers of the same fixtures. */
const STREAMED: Record<string, string> = {
  "OpenAI-compatible": "Hello from upstream",
  Anthropic: "Hé, the 🐟 swims — 日本語 along.\n",
  Gemini: "Hé, the 🐟 swims — 日本語 along.\n",
  Bedrock: "Hello from Bedrock",
};

interface Upstreams {
  compat: ReturnType<typeof startFakeUpstream>;
  openai: ReturnType<typeof startFakeUpstream>;
  anthropic: ReturnType<typeof startFakeAnthropic>;
  gemini: ReturnType<typeof startFakeGemini>;
  bedrock: ReturnType<typeof startFakeBedrock>;
}

async function startAll(): Promise<{ up: Upstreams; d: Daemon }> {
  const up: Upstreams = {
    compat: startFakeUpstream(),
    openai: startFakeUpstream(),
    anthropic: startFakeAnthropic(),
    gemini: startFakeGemini(),
    bedrock: startFakeBedrock("us-west-2"),
  };
  up.anthropic.script({ json: "response_text", sse: "stream_text" });
  up.gemini.script({ json: "response_text", sse: "stream_text" });
  up.compat.script({ kind: "stream", includeUsage: true });
  const d = await startDaemon(
    `
server:
  port: {{PORT}}
  socket: {{SOCKET}}
providers:
  compat:
    base_url: ${up.compat.url}/v1
    keys: [{ key: sk-compat-configured-0001 }]
  openai:
    base_url: ${up.openai.url}/v1
    keys: [{ key: sk-openai-configured-0001 }]
  anthropic:
    base_url: ${up.anthropic.url}/v1
    keys: [{ key: sk-ant-configured-0001 }]
  gemini:
    base_url: ${up.gemini.url}
    keys: [{ key: gemini-configured-0001 }]
  bedrock:
    sign: true
    region: us-west-2
    endpoint: "${up.bedrock.url}"
routing:
  failover: { enabled: false }
`,
    {
      env: {
        AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
        AWS_SESSION_TOKEN: TEST_CREDENTIALS.sessionToken,
      },
    },
  );
  return { up, d };
}

async function stopAll(up: Upstreams, d: Daemon): Promise<void> {
  await d.stop();
  await Promise.all(Object.values(up).map((u) => u.close()));
}

/** The same SDK over TCP and over the Unix socket. */
function transports(d: Daemon): [string, typeof fetch | undefined][] {
  const viaSocket = ((input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    return d.socketFetch(url.pathname + url.search, init);
  }) as typeof fetch;
  return [["TCP", undefined], ["socket", viaSocket]];
}

Deno.test("every upstream serves /v1/responses and counts tokens, via the official SDKs", async (t) => {
  const { up, d } = await startAll();
  try {
    for (const [via, fetchFn] of transports(d)) {
      const client = new OpenAI({
        baseURL: d.url("/v1"),
        apiKey: "placeholder",
        maxRetries: 0,
        ...(fetchFn ? { fetch: fetchFn } : {}),
      });
      const aiSdk = createOpenAI({
        baseURL: d.url("/v1"),
        apiKey: "placeholder",
        ...(fetchFn ? { fetch: fetchFn } : {}),
      });
      const anthropic = new Anthropic({
        baseURL: d.url(""),
        apiKey: "placeholder",
        maxRetries: 0,
        ...(fetchFn ? { fetch: fetchFn } : {}),
      });
      for (const p of TRANSLATED) {
        await t.step(`${p.name} over ${via}: responses.create, not streamed`, async () => {
          up.compat.script({ kind: "json" });
          const r = await client.responses.create({ model: p.model, input: "Say hello" });
          assert.equal(r.status, "completed");
          assert.equal(r.output_text, p.text);
          assert.ok((r.usage?.input_tokens ?? 0) > 0);
          // Continued on the same provider through the gateway's store.
          const next = await client.responses.create({
            model: p.model,
            input: "Again",
            previous_response_id: r.id,
          });
          assert.equal(next.previous_response_id, r.id);
        });
        await t.step(`${p.name} over ${via}: responses.create, streamed`, async () => {
          up.compat.script({ kind: "stream", includeUsage: true });
          const stream = await client.responses.create({
            model: p.model,
            input: "Say hello",
            stream: true,
          });
          let text = "";
          let seq = -1;
          let usage: OpenAI.Responses.ResponseUsage | undefined;
          for await (const event of stream) {
            assert.equal(event.sequence_number, seq + 1);
            seq = event.sequence_number;
            if (event.type === "response.output_text.delta") text += event.delta;
            if (event.type === "response.completed") usage = event.response.usage ?? undefined;
          }
          assert.equal(text, STREAMED[p.name]);
          assert.ok((usage?.output_tokens ?? 0) > 0, "usage on response.completed");
        });
        await t.step(`${p.name} over ${via}: the AI SDK's default openai(model)`, async () => {
          up.compat.script({ kind: "json" });
          const generated = await generateText({ model: aiSdk(p.model), prompt: "Say hello" });
          assert.equal(generated.text, p.text);
          assert.ok((generated.usage.inputTokens ?? 0) > 0);
          up.compat.script({ kind: "stream", includeUsage: true });
          const streamed = streamText({ model: aiSdk(p.model), prompt: "Say hello" });
          let text = "";
          for await (const piece of streamed.textStream) text += piece;
          assert.equal(text, STREAMED[p.name]);
          assert.ok(((await streamed.usage).outputTokens ?? 0) > 0);
        });
        await t.step(`${p.name} over ${via}: messages.countTokens`, async () => {
          const counted = await anthropic.messages.countTokens({
            model: p.model,
            system: "Be brief.",
            messages: [{ role: "user", content: "How many tokens is this?" }],
          });
          assert.ok(counted.input_tokens > 0);
        });
      }
    }

    await t.step("a function tool round trip on every translated upstream", async () => {
      const client = new OpenAI({ baseURL: d.url("/v1"), apiKey: "placeholder", maxRetries: 0 });
      const weather = {
        type: "function" as const,
        name: "get_weather",
        description: "Current weather",
        parameters: {
          type: "object",
          properties: { location: { type: "string" }, unit: { type: "string" } },
          required: ["location"],
        },
        strict: false,
      };
      const toolAnswers: Record<string, () => void> = {
        "OpenAI-compatible": () =>
          up.compat.script({
            kind: "json",
            body: {
              id: "chatcmpl-tool",
              object: "chat.completion",
              created: 1_700_000_000,
              model: "gpt-4o-mini",
              choices: [{
                index: 0,
                message: {
                  role: "assistant",
                  content: null,
                  tool_calls: [{
                    id: "call_compat_1",
                    type: "function",
                    function: { name: "get_weather", arguments: '{"location":"Paris"}' },
                  }],
                },
                finish_reason: "tool_calls",
              }],
              usage: { prompt_tokens: 9, completion_tokens: 5, total_tokens: 14 },
            },
          }),
        Anthropic: () => up.anthropic.script({ json: "response_tool_use", sse: "stream_text" }),
        Gemini: () => up.gemini.script({ json: "response_function_call", sse: "stream_text" }),
        Bedrock: () => up.bedrock.script({ json: CONVERSE_TOOL_USE }),
      };
      const textAnswers: Record<string, () => void> = {
        "OpenAI-compatible": () => up.compat.script({ kind: "json" }),
        Anthropic: () => up.anthropic.script({ json: "response_text", sse: "stream_text" }),
        Gemini: () => up.gemini.script({ json: "response_text", sse: "stream_text" }),
        Bedrock: () => up.bedrock.script({ json: CONVERSE_TEXT }),
      };
      const lastSent: Record<string, () => string> = {
        "OpenAI-compatible": () => up.compat.requests.at(-1)!.body,
        Anthropic: () => up.anthropic.requests.at(-1)!.body,
        Gemini: () => up.gemini.requests.at(-1)!.body,
        Bedrock: () => up.bedrock.requests.at(-1)!.body,
      };
      for (const p of TRANSLATED) {
        toolAnswers[p.name]!();
        const first = await client.responses.create({
          model: p.model,
          input: "Weather in Paris?",
          tools: [weather],
        });
        const call = first.output.find((i) => i.type === "function_call");
        assert.ok(call, `${p.name}: a function_call item`);
        assert.equal(call.name, "get_weather");
        assert.ok(call.call_id !== "", p.name);
        assert.equal(typeof JSON.parse(call.arguments), "object", p.name);
        textAnswers[p.name]!();
        const second = await client.responses.create({
          model: p.model,
          previous_response_id: first.id,
          input: first.output.filter((i) => i.type === "function_call").map((c) => ({
            type: "function_call_output" as const,
            call_id: c.call_id,
            output: `result of ${c.name}: 18C`,
          })),
          tools: [weather],
        });
        assert.equal(second.output_text, p.text, p.name);
        // The tool result reached the upstream in its own format, tied to the call.
        const sent = lastSent[p.name]!();
        assert.match(sent, /result of get_weather: 18C/, p.name);
        if (p.name !== "Gemini") assert.ok(sent.includes(call.call_id), `${p.name}: call id`);
        else assert.match(sent, /"functionResponse"/);
      }
    });

    await t.step(
      "the counts come from each provider's endpoint, or are marked estimates",
      async () => {
        const body = JSON.stringify({
          model: "",
          messages: [{ role: "user", content: "How many tokens is this?" }],
        });
        for (const p of TRANSLATED) {
          const res = await fetch(d.url("/v1/messages/count_tokens"), {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: body.replace('"model":""', `"model":${JSON.stringify(p.model)}`),
          });
          const json = await res.json();
          assert.equal(res.status, 200, JSON.stringify(json));
          assert.equal(
            res.headers.get("x-pilotfish-token-count"),
            p.name === "OpenAI-compatible" ? "estimate" : "provider",
            p.name,
          );
        }
        assert.ok(up.anthropic.requests.some((r) => r.path === "/v1/messages/count_tokens"));
        assert.ok(up.gemini.requests.some((r) => r.path.endsWith(":countTokens")));
        const bedrockCount = up.bedrock.requests.findLast((r) => r.path.endsWith("/count-tokens"));
        assert.equal(bedrockCount?.signatureValid, true);
        assert.deepEqual(Object.keys(JSON.parse(bedrockCount!.body).input.converse), ["messages"]);
        // Local count with o200k: 3 (priming) + 3 + "user" (1) + the text (6 tokens).
        const local = await fetch(d.url("/v1/responses/input_tokens"), {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "compat/gpt-4o-mini", input: "How many tokens is this?" }),
        });
        assert.deepEqual(await local.json(), { object: "response.input_tokens", input_tokens: 13 });
        assert.equal(local.headers.get("x-pilotfish-token-count"), "estimate");
      },
    );

    await t.step(
      "the openai preset: Responses bytes relayed, identical to a direct call",
      async () => {
        const json = await Deno.readFile(new URL("response_text.json", FIXTURES));
        up.openai.script({ kind: "json", body: JSON.parse(new TextDecoder().decode(json)) });
        const request = { model: "gpt-4.1", input: "Tell me a story" };
        const direct = await fetch(`${up.openai.url}/v1/responses`, {
          method: "POST",
          body: JSON.stringify(request),
        }).then((r) => r.bytes());
        const via = await fetch(d.url("/v1/responses"), {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ ...request, model: "openai/gpt-4.1" }),
        });
        assert.equal(via.headers.get("x-pilotfish-provider"), "openai");
        assert.deepEqual(await via.bytes(), direct);
        const sent = up.openai.requests.at(-1)!;
        assert.equal(sent.path, "/v1/responses");
        assert.deepEqual(JSON.parse(sent.body), request);
        assert.equal(sent.headers.get("authorization"), "Bearer sk-openai-configured-0001");

        const sse = await Deno.readTextFile(new URL("stream_text.sse", FIXTURES));
        const events = sse.split(/(?<=\n\n)/);
        up.openai.script({ kind: "sse", events });
        const directStream = await fetch(`${up.openai.url}/v1/responses`, {
          method: "POST",
          body: JSON.stringify({ ...request, stream: true }),
        }).then((r) => r.bytes());
        up.openai.script({ kind: "sse", events });
        const viaStream = await fetch(d.url("/v1/responses"), {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ ...request, model: "openai/gpt-4.1", stream: true }),
        }).then((r) => r.bytes());
        assert.deepEqual(viaStream, directStream);
        assert.equal(new TextDecoder().decode(viaStream), sse);

        // The SDK over the relay, function tools and built-in tools alike reach OpenAI.
        up.openai.script({ kind: "json", body: JSON.parse(new TextDecoder().decode(json)) });
        const client = new OpenAI({ baseURL: d.url("/v1"), apiKey: "placeholder", maxRetries: 0 });
        const r = await client.responses.create({
          model: "openai/gpt-4.1",
          input: "Tell me a story",
          tools: [{ type: "web_search_preview" }],
        });
        assert.match(r.output_text, /unicorn named Lumina/);
        assert.deepEqual(JSON.parse(up.openai.requests.at(-1)!.body).tools, [
          { type: "web_search_preview" },
        ]);
      },
    );
  } finally {
    await stopAll(up, d);
  }
});
