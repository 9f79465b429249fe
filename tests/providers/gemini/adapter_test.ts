import assert from "node:assert/strict";
import { jsonOf } from "../outcome.ts";
import { geminiApiBase } from "../../../src/providers/gemini/adapter.ts";
import type { ChatCall, EmbeddingsCall } from "../../../src/providers/mod.ts";
import type {
  OpenAIChatRequest,
  OpenAIEmbeddingsRequest,
  OpenAIUsage,
} from "../../../src/schema/openai.ts";
import { callBasics, chatCallFor } from "../../helpers/calls.ts";
import { readOpenAISse } from "../../helpers/openai_sse.ts";
import {
  adapterWithFetch,
  type Handler,
  headersOf,
  jsonResponse as fakeJsonResponse,
  type Recorded,
  sseResponse,
} from "../../helpers/fake_fetch.ts";
import { drain, fixtureBytes, fixtureText, gatewayError, SANITIZE } from "./helpers.ts";
import { completionDetails } from "../../helpers/usage_details.ts";

const LIVE_KEY = "AIzaSyD-live-gemini-key-0123456789abcd";

const CONFIG_TEXT = `
providers:
  gemini:
    keys: [{ key: "${LIVE_KEY}" }]
  vertex-proxy:
    type: gemini
    base_url: http://127.0.0.1:8200/v1beta/
    headers: { X-Team: ml }
`;

const SETUP = { configText: CONFIG_TEXT, configName: "gemini.yaml", type: "gemini" };

/** The configured adapter whose `fetch` is `handler`, recording every request. */
const adapterWith = (handler: Handler, provider = "gemini") =>
  adapterWithFetch(SETUP, handler, provider);

const chatCall = (overrides: Partial<ChatCall> = {}, body: Partial<OpenAIChatRequest> = {}) =>
  chatCallFor({ model: "gemini-2.5-flash", apiKey: LIVE_KEY }, overrides, body);

function embeddingsCall(body: Partial<OpenAIEmbeddingsRequest> = {}) {
  const call: EmbeddingsCall = {
    body: { model: "gemini-embedding-001", input: ["hello", "world"], ...body },
    ...callBasics(LIVE_KEY),
  };
  return { call };
}

/** Gemini answers JSON with an explicit charset. */
const jsonResponse = (body: string, status = 200, headers: Record<string, string> = {}) =>
  fakeJsonResponse(body, status, { "content-type": "application/json; charset=UTF-8", ...headers });

Deno.test(
  "createGeminiAdapter() posts a translated request to :generateContent with x-goog-api-key",
  SANITIZE,
  async () => {
    const fixture = await fixtureText("response_text.json");
    const { adapter, requests } = adapterWith(() => jsonResponse(fixture));
    const { call } = chatCall({}, {
      messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }],
      temperature: 0.2,
      max_tokens: 64,
    });
    const outcome = await adapter.chat(call, "gemini-2.5-flash");

    assert.equal(requests.length, 1);
    const { url, init } = requests[0] as Recorded;
    assert.equal(
      url,
      "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
    );
    assert.equal(init.method, "POST");
    assert.equal(init.redirect, "manual");
    const headers = headersOf(requests[0]);
    assert.equal(headers.get("x-goog-api-key"), LIVE_KEY);
    assert.equal(headers.get("authorization"), null);
    assert.equal(headers.get("content-type"), "application/json");
    assert.equal(headers.get("accept"), "application/json");
    assert.deepEqual(JSON.parse(String(init.body)), {
      contents: [{ role: "user", parts: [{ text: "Hi" }] }],
      systemInstruction: { parts: [{ text: "Be brief." }] },
      generationConfig: { temperature: 0.2, maxOutputTokens: 64 },
    });

    assert.equal(outcome.kind, "json");
    assert.equal(outcome.status, 200);
    if (outcome.kind !== "json") return;
    const body = jsonOf(outcome);
    assert.equal(body.object, "chat.completion");
    assert.equal(body.id, "chatcmpl-mNfVaLq3A8SO1MkPyq2o0Qc");
    assert.equal(body.model, "gemini-2.5-flash");
    assert.equal(body.choices[0].message.content, "Hello! How can I help you today?");
    assert.equal(body.choices[0].finish_reason, "stop");
    const usage = {
      prompt_tokens: 132,
      completion_tokens: 38,
      total_tokens: 170,
      prompt_tokens_details: { cached_tokens: 100, audio_tokens: 0 },
      completion_tokens_details: completionDetails(28),
    };
    assert.deepEqual(body.usage, usage);
    assert.deepEqual(await outcome.usage, usage);
  },
);

Deno.test(
  "createGeminiAdapter() honours base_url, configured headers and model resource names",
  SANITIZE,
  async () => {
    const fixture = await fixtureText("response_text.json");
    const { adapter, requests } = adapterWith(() => jsonResponse(fixture), "vertex-proxy");
    await adapter.chat(chatCall({ apiKey: null }).call, "models/gemini-2.0-flash");
    await adapter.chat(chatCall({ apiKey: null }).call, "tunedModels/my-tune-7");
    assert.deepEqual(requests.map((r) => r.url), [
      "http://127.0.0.1:8200/v1beta/models/gemini-2.0-flash:generateContent",
      "http://127.0.0.1:8200/v1beta/tunedModels/my-tune-7:generateContent",
    ]);
    const headers = headersOf(requests[0]);
    assert.equal(headers.get("x-team"), "ml");
    assert.equal(headers.get("x-goog-api-key"), null);
  },
);

Deno.test("geminiApiBase(): the API root gets /v1beta, a versioned base_url stays", () => {
  const root = "https://generativelanguage.googleapis.com";
  assert.equal(geminiApiBase(root), `${root}/v1beta`);
  assert.equal(geminiApiBase(`${root}/`), `${root}/v1beta`);
  assert.equal(geminiApiBase(`${root}/v1beta`), `${root}/v1beta`);
  assert.equal(geminiApiBase(`${root}/v1`), `${root}/v1`);
  assert.equal(geminiApiBase(`${root}/v1alpha`), `${root}/v1alpha`);
  assert.equal(geminiApiBase("http://proxy.local/google"), "http://proxy.local/google/v1beta");
  assert.equal(geminiApiBase("http://proxy.local/v1beta2"), "http://proxy.local/v1beta2");
  // A path segment that only starts like a version is not one.
  assert.equal(geminiApiBase("http://proxy.local/v1x"), "http://proxy.local/v1x/v1beta");
});

Deno.test(
  "createGeminiAdapter(): base_url as the API root (Butter's convention) or with its version",
  SANITIZE,
  async () => {
    const fixture = await fixtureText("response_text.json");
    const setup = {
      configText: `
providers:
  root: { type: gemini, base_url: "http://127.0.0.1:8200" }
  v1: { type: gemini, base_url: "http://127.0.0.1:8200/v1" }
  beta: { type: gemini, base_url: "http://127.0.0.1:8200/gw/v1beta/" }
`,
      configName: "gemini.yaml",
      type: "gemini",
    };
    const urls: string[] = [];
    for (const provider of ["root", "v1", "beta"]) {
      const { adapter, requests } = adapterWithFetch(setup, () => jsonResponse(fixture), provider);
      await adapter.chat(chatCall().call, "gemini-2.5-flash");
      urls.push(requests[0]!.url);
    }
    assert.deepEqual(urls, [
      "http://127.0.0.1:8200/v1beta/models/gemini-2.5-flash:generateContent",
      "http://127.0.0.1:8200/v1/models/gemini-2.5-flash:generateContent",
      "http://127.0.0.1:8200/gw/v1beta/models/gemini-2.5-flash:generateContent",
    ]);
  },
);

Deno.test(
  "createGeminiAdapter() refuses model names that would change the upstream path",
  SANITIZE,
  async () => {
    const { adapter, requests } = adapterWith(() => jsonResponse("{}"));
    for (
      const model of [
        "../files/x",
        "gemini-2.5-flash?key=x",
        "models/",
        "a/b",
        "models/a:b",
        "../../x",
        "a/../../b",
        "x?key=1",
        "x#y",
        "%2e%2e",
        "models/..",
        "tunedModels/../x",
        ".",
        "x\\y",
      ]
    ) {
      const err = await gatewayError(() => adapter.chat(chatCall().call, model));
      assert.equal(err.status, 400);
      assert.equal(err.info.param, "model");
    }
    assert.equal(requests.length, 0);
  },
);

Deno.test(
  "createGeminiAdapter() moves a forwarded Bearer credential to x-goog-api-key",
  SANITIZE,
  async (t) => {
    const fixture = await fixtureText("response_text.json");
    const cases: [string, Partial<ChatCall>, string | null][] = [
      [
        "configured key wins",
        { apiKey: "configured-key", clientAuthorization: "Bearer AIzaClient" },
        "configured-key",
      ],
      [
        "client Bearer without a key",
        { apiKey: null, clientAuthorization: "Bearer AIzaC" },
        "AIzaC",
      ],
      ["client bare key", { apiKey: null, clientAuthorization: "AIzaBare" }, "AIzaBare"],
      ["neither", { apiKey: null, clientAuthorization: null }, null],
    ];
    for (const [label, overrides, expected] of cases) {
      await t.step(label, async () => {
        const { adapter, requests } = adapterWith(() => jsonResponse(fixture));
        await adapter.chat(chatCall(overrides).call, "gemini-x");
        const headers = headersOf(requests[0]);
        assert.equal(headers.get("x-goog-api-key"), expected);
        // Gemini takes a Bearer token for OAuth: the client's Authorization never travels.
        assert.equal(headers.get("authorization"), null);
        assert.ok(!requests[0]?.url.includes("key="));
      });
    }
  },
);

Deno.test(
  "createGeminiAdapter() streams from :streamGenerateContent?alt=sse and reports usage",
  SANITIZE,
  async () => {
    const sse = await fixtureBytes("stream_function_call.sse");
    const { adapter, requests } = adapterWith(() => sseResponse(sse, 7));
    const { call } = chatCall({}, {
      stream: true,
      stream_options: { include_usage: true },
      tools: [{ type: "function", function: { name: "get_weather", parameters: {} } }],
    });
    const outcome = await adapter.chat(call, "gemini-2.5-flash");
    assert.equal(
      requests[0]?.url,
      "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
    );
    assert.equal(headersOf(requests[0]).get("accept"), "text/event-stream");
    const sent = JSON.parse(String(requests[0]?.init.body));
    assert.equal(sent.stream, undefined);
    assert.equal(sent.stream_options, undefined);
    assert.deepEqual(sent.tools, [{ functionDeclarations: [{ name: "get_weather" }] }]);

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
  "createGeminiAdapter() errors the stream on a mid-stream overload",
  SANITIZE,
  async () => {
    const sse = await fixtureBytes("stream_error_midway.sse");
    const { adapter } = adapterWith(() => sseResponse(sse, 64));
    const outcome = await adapter.chat(chatCall({}, { stream: true }).call, "gemini-x");
    assert.equal(outcome.kind, "stream");
    if (outcome.kind !== "stream") return;
    const { chunks, error } = await drain(outcome.body as ReadableStream<unknown>);
    assert.equal(chunks.length, 2);
    assert.equal((error as { status?: number }).status, 503);
  },
);

Deno.test(
  "createGeminiAdapter() maps a 429 to rate_limited with retry-after from RetryInfo",
  SANITIZE,
  async () => {
    const body = await fixtureText("error_429.json");
    const { adapter } = adapterWith(() => jsonResponse(body, 429));
    const err = await gatewayError(() => adapter.chat(chatCall().call, "gemini-x"));
    assert.equal(err.code, "rate_limited");
    assert.equal(err.status, 429);
    assert.equal(err.info.upstreamCode, "RESOURCE_EXHAUSTED");
    assert.equal(err.info.provider, "gemini");
    assert.deepEqual(err.info.headers, { "retry-after": "38" });
    assert.equal(err.retryable, true);
  },
);

Deno.test(
  "createGeminiAdapter() keeps an upstream 400 message and redacts quoted keys",
  SANITIZE,
  async (t) => {
    await t.step("INVALID_ARGUMENT", async () => {
      const body = await fixtureText("error_400.json");
      const { adapter } = adapterWith(() => jsonResponse(body, 400));
      const err = await gatewayError(() => adapter.chat(chatCall().call, "gemini-x"));
      assert.equal(err.status, 400);
      assert.equal(err.info.upstreamCode, "INVALID_ARGUMENT");
      assert.match(err.message, /max_output_tokens must be positive/);
      assert.equal(err.retryable, false);
    });
    await t.step("a message quoting the key", async () => {
      const { adapter } = adapterWith(() =>
        jsonResponse(
          JSON.stringify({
            error: {
              code: 403,
              message: `Key ${LIVE_KEY} is suspended`,
              status: "PERMISSION_DENIED",
            },
          }),
          403,
        )
      );
      const err = await gatewayError(() => adapter.chat(chatCall().call, "gemini-x"));
      assert.equal(err.status, 403);
      assert.equal(err.message, "Key [REDACTED] is suspended");
    });
  },
);

Deno.test(
  "createGeminiAdapter() answers an untranslatable request with 400 before any fetch",
  SANITIZE,
  async () => {
    const { adapter, requests } = adapterWith(() => jsonResponse("{}"));
    const err = await gatewayError(() => adapter.chat(chatCall({}, { n: 2 }).call, "gemini-x"));
    assert.equal(err.status, 400);
    assert.equal(err.info.param, "n");
    assert.equal(err.message, 'Parameter "n" is not supported by provider "gemini"');
    assert.equal(requests.length, 0);
  },
);

Deno.test("createGeminiAdapter() reports upstream bodies it cannot use", SANITIZE, async (t) => {
  await t.step("a 200 that is not JSON", async () => {
    const { adapter } = adapterWith(() => new Response("<html>proxy</html>", { status: 200 }));
    const err = await gatewayError(() => adapter.chat(chatCall().call, "gemini-x"));
    assert.equal(err.code, "upstream_error");
    assert.equal(err.status, 502);
  });
  await t.step("a 200 JSON that is not a response", async () => {
    const { adapter } = adapterWith(() => jsonResponse('{"ok":true}'));
    const err = await gatewayError(() => adapter.chat(chatCall().call, "gemini-x"));
    assert.equal(err.status, 502);
  });
  await t.step("a stream request answered with JSON (no alt=sse)", async () => {
    const { adapter } = adapterWith(() => jsonResponse("[]"));
    const err = await gatewayError(() =>
      adapter.chat(chatCall({}, { stream: true }).call, "gemini-x")
    );
    assert.equal(err.status, 502);
    assert.match(err.message, /without an event stream/);
  });
  await t.step("a redirect is not followed", async () => {
    const { adapter, requests } = adapterWith(() =>
      new Response("moved", { status: 307, headers: { location: "http://elsewhere.example/" } })
    );
    const err = await gatewayError(() => adapter.chat(chatCall().call, "gemini-x"));
    assert.equal(err.info.upstreamStatus, 307);
    assert.equal(requests.length, 1);
  });
  await t.step("a refused connection", async () => {
    const { adapter } = adapterWith(() => {
      throw new TypeError("error sending request: connection refused");
    });
    const err = await gatewayError(() => adapter.chat(chatCall().call, "gemini-x"));
    assert.equal(err.code, "upstream_unreachable");
    assert.equal(err.retryable, true);
  });
});

Deno.test(
  "createGeminiAdapter().embeddings() posts to :batchEmbedContents and answers OpenAI's list",
  SANITIZE,
  async () => {
    const fixture = await fixtureText("embeddings.json");
    const { adapter, requests } = adapterWith(() => jsonResponse(fixture));
    assert.ok(adapter.embeddings);
    const { call } = embeddingsCall({ dimensions: 5 });
    const outcome = await adapter.embeddings(call, "gemini-embedding-001");

    assert.equal(
      requests[0]?.url,
      "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:batchEmbedContents",
    );
    const headers = headersOf(requests[0]);
    assert.equal(headers.get("x-goog-api-key"), LIVE_KEY);
    assert.equal(headers.get("authorization"), null);
    assert.deepEqual(JSON.parse(String(requests[0]?.init.body)), {
      requests: ["hello", "world"].map((text) => ({
        model: "models/gemini-embedding-001",
        content: { parts: [{ text }] },
        outputDimensionality: 5,
      })),
    });
    assert.equal(outcome.kind, "json");
    if (outcome.kind !== "json") return;
    const body = jsonOf(outcome);
    assert.equal(body.object, "list");
    assert.equal(body.model, "gemini-embedding-001");
    assert.deepEqual(body.data.map((d: { index: number }) => d.index), [0, 1]);
    assert.equal(body.data[1].embedding[4], -0.25);
    assert.deepEqual(body.usage, { prompt_tokens: 0, total_tokens: 0 });
    assert.deepEqual(await outcome.usage, {
      prompt_tokens: 0,
      completion_tokens: 0,
      total_tokens: 0,
    });
  },
);

Deno.test(
  "createGeminiAdapter().embeddings() splits more than 100 inputs into batches of 100 (Gemini's limit) and answers them in order",
  SANITIZE,
  async () => {
    const { adapter, requests } = adapterWith((_url, init) => {
      const sent = JSON.parse(String(init.body)) as {
        requests: { content: { parts: { text: string }[] } }[];
      };
      return jsonResponse(JSON.stringify({
        embeddings: sent.requests.map((r) => ({ values: [Number(r.content.parts[0]!.text)] })),
        usageMetadata: {
          promptTokenCount: sent.requests.length,
          totalTokenCount: sent.requests.length,
        },
      }));
    });
    const input = Array.from({ length: 250 }, (_, i) => String(i));
    const outcome = await adapter.embeddings!(
      embeddingsCall({ input }).call,
      "gemini-embedding-001",
    );
    assert.deepEqual(
      requests.map((r) => JSON.parse(String(r.init.body)).requests.length),
      [100, 100, 50],
    );
    if (outcome.kind !== "json") throw new Error("not json");
    const body = jsonOf(outcome);
    assert.deepEqual(
      body.data.map((d: { index: number; embedding: number[] }) => [d.index, d.embedding[0]]),
      input.map((_, i) => [i, i]),
    );
    assert.deepEqual(body.usage, { prompt_tokens: 250, total_tokens: 250 });
  },
);

Deno.test(
  "createGeminiAdapter().embeddings() encodes base64, refuses token arrays, maps errors",
  SANITIZE,
  async (t) => {
    await t.step("base64", async () => {
      const fixture = await fixtureText("embeddings.json");
      const { adapter } = adapterWith(() => jsonResponse(fixture));
      const outcome = await adapter.embeddings!(
        embeddingsCall({ encoding_format: "base64" }).call,
        "gemini-embedding-001",
      );
      if (outcome.kind !== "json") return assert.fail("expected JSON");
      const body = jsonOf(outcome);
      const bytes = Uint8Array.from(atob(body.data[0].embedding), (c) => c.charCodeAt(0));
      assert.equal(new Float32Array(bytes.buffer)[4], 0.5);
    });
    await t.step("token arrays, before any fetch", async () => {
      const { adapter, requests } = adapterWith(() => jsonResponse("{}"));
      const err = await gatewayError(() =>
        adapter.embeddings!(embeddingsCall({ input: [[1, 2]] }).call, "gemini-embedding-001")
      );
      assert.equal(err.status, 400);
      assert.equal(err.info.param, "input");
      assert.equal(requests.length, 0);
    });
    await t.step("an invalid key becomes a 401", async () => {
      const body = await fixtureText("error_400_api_key.json");
      const { adapter } = adapterWith(() => jsonResponse(body, 400));
      const err = await gatewayError(() =>
        adapter.embeddings!(embeddingsCall().call, "gemini-embedding-001")
      );
      assert.equal(err.status, 401);
      assert.equal(err.info.upstreamStatus, 401);
    });
  },
);
