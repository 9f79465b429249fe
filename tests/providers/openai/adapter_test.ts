import assert from "node:assert/strict";
import type { ChatCall } from "../../../src/providers/mod.ts";
import { markTranslated, type OpenAIChatRequest } from "../../../src/schema/openai.ts";
import { chatCallFor } from "../../helpers/calls.ts";
import { concatBytes } from "../../helpers/chunk.ts";
import {
  adapterWithFetch,
  type Handler,
  jsonResponse,
  type Recorded,
  sseResponse,
} from "../../helpers/fake_fetch.ts";
import { gatewayError as expectGatewayError } from "../../helpers/gateway_error.ts";
import { SANITIZE } from "../../helpers/sanitize.ts";

const LIVE_KEY = "sk-live-abcdef123456";

const CONFIG_TEXT = `
providers:
  openai:
    keys: [{ key: "${LIVE_KEY}" }]
    headers: { OpenAI-Organization: org-test }
  local:
    base_url: http://127.0.0.1:8000/v1/
`;

const SETUP = { configText: CONFIG_TEXT, configName: "openai.yaml" };

/** An adapter whose `fetch` is `handler`, recording every request. */
const adapterWith = (handler: Handler, provider = "openai") =>
  adapterWithFetch(SETUP, handler, provider);

const chatCall = (overrides: Partial<ChatCall> = {}, body: Partial<OpenAIChatRequest> = {}) =>
  chatCallFor({ model: "gpt-4o", apiKey: LIVE_KEY }, overrides, body);

const USAGE = { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 };

const COMPLETION = {
  id: "chatcmpl-1",
  object: "chat.completion",
  choices: [{ index: 0, message: { role: "assistant", content: "Hello" } }],
  usage: USAGE,
};

/** Expect `promise` to reject with a GatewayError and return it. */
const gatewayError = (promise: Promise<unknown>) =>
  expectGatewayError(promise, "expected the call to fail");

Deno.test(
  "createOpenAIAdapter() sends the request to base_url with the configured key",
  SANITIZE,
  async () => {
    const { adapter, requests } = adapterWith(() => jsonResponse(COMPLETION));
    const { call } = chatCall({}, {
      temperature: 0.3,
      logit_bias: { "50256": -100 },
      vendor_field: { nested: [1, 2] },
    });
    const outcome = await adapter.chat(call, "gpt-4o-mini");

    assert.equal(requests.length, 1);
    const { url, init } = requests[0] as Recorded;
    assert.equal(url, "https://api.openai.com/v1/chat/completions");
    assert.equal(init.method, "POST");
    assert.equal(init.redirect, "manual");
    assert.ok(init.signal instanceof AbortSignal);
    const headers = new Headers(init.headers);
    assert.equal(headers.get("authorization"), `Bearer ${LIVE_KEY}`);
    assert.equal(headers.get("content-type"), "application/json");
    assert.equal(headers.get("accept"), "application/json");
    assert.equal(headers.get("openai-organization"), "org-test");
    assert.deepEqual(JSON.parse(String(init.body)), {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "Hi" }],
      temperature: 0.3,
      logit_bias: { "50256": -100 },
      vendor_field: { nested: [1, 2] },
    });
    // The client's body object is not mutated by the model patch.
    assert.equal(call.body.model, "gpt-4o");

    assert.equal(outcome.kind, "json");
    assert.equal(outcome.status, 200);
    if (outcome.kind !== "json") return;
    // Relayed byte for byte, never re-encoded, tagged with its wire format.
    assert.equal(outcome.format, "openai_json");
    assert.deepEqual(outcome.body, new TextEncoder().encode(JSON.stringify(COMPLETION)));
    assert.deepEqual(await outcome.usage, USAGE);
  },
);

Deno.test(
  "createOpenAIAdapter() forwards client auth only when no key is configured",
  SANITIZE,
  async (t) => {
    const cases: [string, Partial<ChatCall>, string | null][] = [
      [
        "configured key wins",
        { apiKey: "sk-configured-1", clientAuthorization: "Bearer c" },
        "Bearer sk-configured-1",
      ],
      [
        "client auth without a key",
        { apiKey: null, clientAuthorization: "Bearer client-9" },
        "Bearer client-9",
      ],
      ["neither", { apiKey: null, clientAuthorization: null }, null],
    ];
    for (const [label, overrides, expected] of cases) {
      await t.step(label, async () => {
        const { adapter, requests } = adapterWith(() => jsonResponse(COMPLETION));
        await adapter.chat(chatCall(overrides).call, "gpt-4o");
        assert.equal(new Headers(requests[0]?.init.headers).get("authorization"), expected);
      });
    }
  },
);

Deno.test(
  "createOpenAIAdapter() keeps the body as sent when the model is unchanged",
  SANITIZE,
  async () => {
    const { adapter, requests } = adapterWith(() => jsonResponse(COMPLETION), "local");
    const { call } = chatCall({}, { model: "llama-3" });
    await adapter.chat(call, "llama-3");
    assert.equal(requests[0]?.url, "http://127.0.0.1:8000/v1/chat/completions");
    assert.equal(requests[0]?.init.body, JSON.stringify(call.body));
  },
);

Deno.test(
  "createOpenAIAdapter() passes a stream through and taps its usage",
  SANITIZE,
  async () => {
    const sse = new TextEncoder().encode(
      'data: {"choices":[{"index":0,"delta":{"content":"Hé 🐟"}}],"usage":null}\n\n' +
        `data: {"choices":[],"usage":${JSON.stringify(USAGE)}}\n\n` +
        "data: [DONE]\n\n",
    );
    const { adapter, requests } = adapterWith(() =>
      sseResponse(sse, 7, "text/event-stream; charset=utf-8")
    );
    const { call } = chatCall({ stream: true }, {
      stream: true,
      stream_options: { include_usage: true },
    });
    const outcome = await adapter.chat(call, "gpt-4o");
    assert.equal(new Headers(requests[0]?.init.headers).get("accept"), "text/event-stream");
    assert.equal(outcome.kind, "stream");
    if (outcome.kind !== "stream") return;
    assert.equal(outcome.status, 200);
    // The same-schema fast path: the upstream's bytes, usage tapped on the side.
    assert.equal(outcome.format, "openai_sse");
    assert.deepEqual(
      concatBytes(await Array.fromAsync(outcome.body as ReadableStream<Uint8Array>)),
      sse,
    );
    assert.deepEqual(await outcome.usage, USAGE);
  },
);

Deno.test("createOpenAIAdapter() redacts the key an upstream 401 quotes", SANITIZE, async () => {
  const { adapter } = adapterWith(() =>
    jsonResponse({
      error: {
        message: `Incorrect API key provided: ${LIVE_KEY}. You can find your API key at ...`,
        type: "invalid_request_error",
        param: null,
        code: "invalid_api_key",
      },
    }, 401)
  );
  const err = await gatewayError(adapter.chat(chatCall().call, "gpt-4o"));
  assert.equal(err.code, "upstream_error");
  assert.equal(err.status, 401);
  assert.equal(err.info.upstreamStatus, 401);
  assert.equal(err.info.provider, "openai");
  assert.equal(err.info.upstreamType, "invalid_request_error");
  assert.equal(err.info.upstreamCode, "invalid_api_key");
  assert.equal(err.retryable, false);
  assert.ok(!err.message.includes("abcdef123456"), err.message);
  assert.match(err.message, /^Incorrect API key provided: \[REDACTED\]/);
});

Deno.test(
  "createOpenAIAdapter() keeps an upstream 503 status and marks it retryable",
  SANITIZE,
  async () => {
    const { adapter } = adapterWith(() =>
      jsonResponse({ error: { message: "The server is overloaded", type: "server_error" } }, 503)
    );
    const err = await gatewayError(adapter.chat(chatCall().call, "gpt-4o"));
    assert.equal(err.code, "upstream_error");
    assert.equal(err.status, 503);
    assert.equal(err.info.upstreamStatus, 503);
    assert.equal(err.message, "The server is overloaded");
    assert.equal(err.retryable, true);
  },
);

Deno.test(
  "createOpenAIAdapter() maps an upstream 429 to rate_limited with retry-after",
  SANITIZE,
  async () => {
    const { adapter } = adapterWith(() =>
      jsonResponse({ error: { message: "Rate limit reached" } }, 429, { "retry-after": "7" })
    );
    const err = await gatewayError(adapter.chat(chatCall().call, "gpt-4o"));
    assert.equal(err.code, "rate_limited");
    assert.equal(err.status, 429);
    assert.deepEqual(err.info.headers, { "retry-after": "7" });
    assert.equal(err.retryable, true);
  },
);

Deno.test("createOpenAIAdapter() refuses to follow a redirect", SANITIZE, async () => {
  const { adapter } = adapterWith(() =>
    new Response("moved", { status: 302, headers: { location: "http://elsewhere.example/" } })
  );
  const err = await gatewayError(adapter.chat(chatCall().call, "gpt-4o"));
  assert.equal(err.code, "upstream_error");
  assert.equal(err.info.upstreamStatus, 302);
});

Deno.test(
  "createOpenAIAdapter(): a translated request reaches OpenAI's own API with max_completion_tokens and no top_k",
  SANITIZE,
  async () => {
    const sent = async (provider: string, mark: boolean) => {
      const { adapter, requests } = adapterWith(() => jsonResponse(COMPLETION), provider);
      const { call } = chatCall({}, { max_tokens: 50, top_k: 5 } as Partial<OpenAIChatRequest>);
      const body = mark ? markTranslated({ ...call.body }) : call.body;
      await adapter.chat({ ...call, body }, "gpt-5");
      return JSON.parse(String(requests[0]?.init.body));
    };
    // From /v1/messages or /v1/responses: reasoning models refuse max_tokens, OpenAI refuses top_k.
    const official = await sent("openai", true);
    assert.equal(official.max_completion_tokens, 50);
    assert.equal("max_tokens" in official, false);
    assert.equal("top_k" in official, false);
    // What a chat client sent goes as sent; other compatible servers get the translation as is.
    const asSent = await sent("openai", false);
    assert.equal(asSent.max_tokens, 50);
    const compatible = await sent("local", true);
    assert.equal(compatible.max_tokens, 50);
    assert.equal(compatible.top_k, 5);
  },
);

Deno.test("createOpenAIAdapter() reports a 200 body that is not JSON", SANITIZE, async () => {
  const { adapter } = adapterWith(() => new Response("<html>proxy</html>", { status: 200 }));
  const err = await gatewayError(adapter.chat(chatCall().call, "gpt-4o"));
  assert.equal(err.code, "upstream_error");
  assert.equal(err.status, 502);
});

Deno.test("createOpenAIAdapter() reports a 200 JSON body cut short", SANITIZE, async () => {
  for (const text of ['{"id": "x", trunc', '{"id": "x"} trailing', "{"]) {
    const { adapter } = adapterWith(() =>
      new Response(text, { status: 200, headers: { "content-type": "application/json" } })
    );
    const err = await gatewayError(adapter.chat(chatCall().call, "gpt-4o"));
    assert.equal(err.code, "upstream_error", text);
    assert.match(err.message, /not JSON/);
  }
  const { adapter } = adapterWith(() => new Response(` ${JSON.stringify(COMPLETION)}\n`));
  assert.equal((await adapter.chat(chatCall().call, "gpt-4o")).kind, "json");
});

Deno.test(
  "createOpenAIAdapter() refuses a streaming request answered without an event stream",
  SANITIZE,
  async () => {
    // A server that ignores `stream`: relayed, the client's SDK would read no event at all.
    const { adapter } = adapterWith(() => jsonResponse(COMPLETION));
    const err = await gatewayError(adapter.chat(chatCall({ stream: true }).call, "gpt-4o"));
    assert.equal(err.code, "upstream_error");
    assert.equal(err.status, 502);
    assert.match(err.message, /without an event stream/);
  },
);

Deno.test(
  "createOpenAIAdapter() maps a fetch TypeError to upstream_unreachable 502",
  SANITIZE,
  async () => {
    const { adapter } = adapterWith(() => {
      throw new TypeError("error sending request: connection refused");
    });
    const err = await gatewayError(adapter.chat(chatCall().call, "gpt-4o"));
    assert.equal(err.code, "upstream_unreachable");
    assert.equal(err.status, 502);
    assert.equal(err.retryable, true);
    assert.equal(err.info.provider, "openai");
    assert.match(err.message, /connection refused/);
    assert.ok(err.cause instanceof TypeError);
  },
);

/** A fetch that never answers, but rejects like the real one when its signal aborts. */
function neverAnswers(_url: string, init: RequestInit): Promise<Response> {
  return new Promise((_resolve, reject) => {
    const signal = init.signal;
    assert.ok(signal);
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

Deno.test(
  "createOpenAIAdapter() times out a silent upstream with upstream_timeout 504",
  SANITIZE,
  async () => {
    const { adapter, requests } = adapterWith(neverAnswers);
    const started = performance.now();
    const err = await gatewayError(adapter.chat(chatCall({ timeoutMs: 50 }).call, "gpt-4o"));
    const elapsed = performance.now() - started;
    assert.equal(err.code, "upstream_timeout");
    assert.equal(err.status, 504);
    assert.equal(err.retryable, true);
    assert.match(err.message, /50 ms/);
    assert.ok(elapsed >= 45 && elapsed < 5_000, `took ${elapsed} ms`);
    // The upstream request itself was aborted, so a real connection would be closed.
    assert.equal(requests[0]?.init.signal?.aborted, true);
  },
);

Deno.test(
  "createOpenAIAdapter() reports a client abort as 499, not retryable",
  SANITIZE,
  async () => {
    const abort = new AbortController();
    abort.abort(new Error("client went away"));
    const { adapter } = adapterWith(neverAnswers);
    const err = await gatewayError(adapter.chat(chatCall({ signal: abort.signal }).call, "gpt-4o"));
    assert.equal(err.code, "client_closed");
    assert.equal(err.status, 499);
    assert.equal(err.retryable, false);
  },
);

Deno.test(
  "createOpenAIAdapter() asks OpenAI's own API for stream usage, under any provider name",
  SANITIZE,
  async (t) => {
    const setup = {
      configText: `
providers:
  openai: { keys: [{ key: "${LIVE_KEY}" }] }
  company-openai: { type: openai, base_url: https://api.openai.com/v1, keys: [{ key: k }] }
  local: { base_url: http://127.0.0.1:8000/v1/ }
  local-on: { base_url: http://127.0.0.1:8001/v1/, stream_usage: true }
  openai-off: { type: openai, base_url: https://api.openai.com/v1, stream_usage: false }
`,
      configName: "usage.yaml",
    };
    const sse = new TextEncoder().encode("data: [DONE]\n\n");
    for (
      const [provider, asked] of [
        ["openai", true],
        ["company-openai", true],
        ["local", false],
        ["local-on", true],
        ["openai-off", false],
      ] as const
    ) {
      await t.step(provider, async () => {
        const { adapter, requests } = adapterWithFetch(setup, () => sseResponse(sse, 1), provider);
        const { call } = chatCall({ stream: true }, { stream: true });
        const outcome = await adapter.chat(call, "gpt-4o");
        if (outcome.kind === "stream") await outcome.body.cancel();
        const sent = JSON.parse(String(requests[0]?.init.body));
        assert.equal(sent.stream_options?.include_usage === true, asked, JSON.stringify(sent));
      });
    }
  },
);
