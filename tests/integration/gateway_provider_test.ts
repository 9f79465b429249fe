/**
 * `x-gateway.provider` (llm-gateway's body extension) overrides routing on every unified
 * route: the request goes to that provider with the requested model, even when
 * `routing.models` / `routing.default_provider` send the model elsewhere.
 */
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { startFakeAnthropic } from "../fakes/fake_anthropic.ts";
import { completionBody, startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway } from "../helpers/in_process.ts";

const EMBEDDINGS = {
  object: "list",
  data: [{ object: "embedding", index: 0, embedding: [0.25, -0.5] }],
  model: "text-embedding-3-small",
  usage: { prompt_tokens: 2, total_tokens: 2 },
};

interface XGateway {
  "x-gateway": { provider: string };
}

Deno.test("x-gateway.provider overrides routing on chat, embeddings and messages", async (t) => {
  const routed = startFakeUpstream();
  const pinned = startFakeUpstream();
  const anthropic = startFakeAnthropic();
  const gw = startGateway(`
providers:
  openai: { base_url: "${routed.url}/v1", keys: [{ key: sk-routed-0001 }] }
  groq: { base_url: "${pinned.url}/v1", keys: [{ key: sk-pinned-0002 }] }
  anthropic: { base_url: "${anthropic.url}/v1", keys: [{ key: sk-ant-0003 }] }
  mock: {}
routing:
  default_provider: openai
  models:
    gpt-4: { providers: [openai] }
    text-embedding-3-small: { providers: [openai] }
`);
  const openai = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "unused", maxRetries: 0 });
  const post = (path: string, body: unknown) =>
    fetch(gw.url(path), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const messages = [{ role: "user" as const, content: "Hello!" }];
  try {
    await t.step("llm-gateway's README example reaches the pinned provider", async () => {
      const res = await post("/v1/chat/completions", {
        model: "gpt-4",
        messages,
        "x-gateway": { cache: false, timeout: 30, provider: "anthropic", metadata: { a: 1 } },
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-pilotfish-provider"), "anthropic");
      assert.equal(res.headers.get("x-pilotfish-model"), "gpt-4");
      assert.equal((await res.json()).object, "chat.completion");
      const sent = JSON.parse(anthropic.requests.at(-1)!.body);
      assert.equal(sent.model, "gpt-4");
      assert.equal("x-gateway" in sent, false);
      assert.equal(routed.requests.length, 0);
    });

    await t.step("the openai SDK's extra body field, non-stream and stream", async () => {
      pinned.script({ kind: "json", body: completionBody("from the pin", "gpt-4") });
      const params: OpenAI.ChatCompletionCreateParamsNonStreaming & XGateway = {
        model: "gpt-4",
        messages,
        "x-gateway": { provider: "groq" },
      };
      const { data, response } = await openai.chat.completions.create(params).withResponse();
      assert.equal(data.choices[0]?.message.content, "from the pin");
      assert.equal(response.headers.get("x-pilotfish-provider"), "groq");
      const sent = pinned.requests.at(-1)!;
      assert.equal(sent.headers.get("authorization"), "Bearer sk-pinned-0002");
      assert.equal(JSON.parse(sent.body).model, "gpt-4");
      assert.equal("x-gateway" in JSON.parse(sent.body), false);

      pinned.script({ kind: "stream" });
      const streamParams: OpenAI.ChatCompletionCreateParamsStreaming & XGateway = {
        ...params,
        stream: true,
      };
      let text = "";
      for await (const chunk of await openai.chat.completions.create(streamParams)) {
        text += chunk.choices[0]?.delta.content ?? "";
      }
      assert.equal(text, "Hello from upstream");
      assert.equal(routed.requests.length, 0);
    });

    await t.step("the pin's own name for the model is used (provider/model prefix)", async () => {
      pinned.script({ kind: "json" });
      const res = await post("/v1/chat/completions", {
        model: "groq/llama-3.3-70b",
        messages,
        "x-gateway": { provider: "groq" },
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      assert.equal(JSON.parse(pinned.requests.at(-1)!.body).model, "llama-3.3-70b");
    });

    await t.step("embeddings through the SDK go to the pinned provider", async () => {
      pinned.script({ kind: "json", body: EMBEDDINGS });
      const params: OpenAI.EmbeddingCreateParams & XGateway = {
        model: "text-embedding-3-small",
        input: "hi",
        encoding_format: "float",
        "x-gateway": { provider: "groq" },
      };
      const { data, response } = await openai.embeddings.create(params).withResponse();
      assert.deepEqual(data.data[0]?.embedding, [0.25, -0.5]);
      assert.equal(response.headers.get("x-pilotfish-provider"), "groq");
      const sent = pinned.requests.at(-1)!;
      assert.equal(sent.path, "/v1/embeddings");
      assert.equal(JSON.parse(sent.body).model, "text-embedding-3-small");
      assert.equal(routed.requests.length, 0);
    });

    await t.step("embeddings pinned to a provider without an embeddings API: 400", async () => {
      const res = await post("/v1/embeddings", {
        model: "text-embedding-3-small",
        input: "hi",
        "x-gateway": { provider: "anthropic" },
      });
      assert.equal(res.status, 400);
      assert.match((await res.json()).error.message, /Provider "anthropic" has no embeddings API/);
    });

    await t.step("the Anthropic SDK's /v1/messages goes to the pinned provider", async () => {
      pinned.script({ kind: "json", body: completionBody("translated", "claude-x") });
      const client = new Anthropic({ baseURL: gw.url(""), apiKey: "unused", maxRetries: 0 });
      const params: Anthropic.MessageCreateParamsNonStreaming & XGateway = {
        model: "claude-x",
        max_tokens: 50,
        messages,
        "x-gateway": { provider: "groq" },
      };
      const { data, response } = await client.messages.create(params).withResponse();
      assert.equal(response.headers.get("x-pilotfish-provider"), "groq");
      assert.deepEqual(data.content, [{ type: "text", text: "translated" }]);
      const sent = JSON.parse(pinned.requests.at(-1)!.body);
      assert.equal(sent.model, "claude-x");
      assert.equal("x-gateway" in sent, false);
      assert.equal(routed.requests.length, 0);
    });

    await t.step("an unconfigured provider is a 404 listing the configured ones", async () => {
      for (
        const [path, body] of [
          ["/v1/chat/completions", { model: "gpt-4", messages }],
          ["/v1/embeddings", { model: "text-embedding-3-small", input: "hi" }],
        ] as const
      ) {
        const res = await post(path, { ...body, "x-gateway": { provider: "azure" } });
        assert.equal(res.status, 404, path);
        const { error } = await res.json();
        assert.equal(error.type, "not_found_error");
        assert.equal(error.param, "x-gateway.provider");
        assert.match(error.message, /Unknown provider "azure".*openai, groq, anthropic, mock/);
      }
      const res = await post("/v1/messages", {
        model: "claude-x",
        max_tokens: 5,
        messages,
        "x-gateway": { provider: "azure" },
      });
      assert.equal(res.status, 404);
      const json = await res.json();
      assert.equal(json.type, "error");
      assert.equal(json.error.type, "not_found_error");
      assert.match(json.error.message, /Unknown provider "azure".*openai, groq, anthropic, mock/);
    });

    await t.step("a malformed provider is a 400 in the route's format", async () => {
      for (const provider of [42, "", ["groq"]]) {
        let res = await post("/v1/chat/completions", {
          model: "gpt-4",
          messages,
          "x-gateway": { provider },
        });
        assert.equal(res.status, 400);
        assert.equal((await res.json()).error.param, "x-gateway.provider");
        res = await post("/v1/messages", {
          model: "claude-x",
          max_tokens: 5,
          messages,
          "x-gateway": { provider },
        });
        assert.equal(res.status, 400);
        const json = await res.json();
        assert.equal(json.type, "error");
        assert.equal(json.error.type, "invalid_request_error");
        assert.match(json.error.message, /x-gateway\.provider/);
      }
    });
    assert.equal(routed.requests.length, 0);
  } finally {
    await gw.close();
    await routed.close();
    await pinned.close();
    await anthropic.close();
  }
});
