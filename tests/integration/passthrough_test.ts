import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { GoogleGenAI } from "@google/genai";
import OpenAI from "openai";
import { startFakeAnthropic } from "../fakes/fake_anthropic.ts";
import { startFakeGemini } from "../fakes/fake_gemini.ts";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { chatBody, startDaemon } from "./daemon.ts";

const bytesOf = async (res: Response) => new Uint8Array(await res.arrayBuffer());

Deno.test("native passthrough relays bytes, credentials and streams untouched", async (t) => {
  const openai = startFakeUpstream();
  const anthropic = startFakeAnthropic();
  const d = await startDaemon(`
server:
  port: {{PORT}}
  socket: {{SOCKET}}
  max_body_bytes: 4096
providers:
  openai: { base_url: "${openai.url}/v1", keys: [{ key: sk-configured-openai }] }
  anthropic: { base_url: "${anthropic.url}/v1" }
`);
  try {
    await t.step("openai SDK on /openai/v1 with its own key: forwarded as sent", async () => {
      const client = new OpenAI({
        baseURL: d.url("/openai/v1"),
        apiKey: "sk-client-own",
        maxRetries: 0,
      });
      const r = await client.chat.completions.create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "hi" }],
        // A field Pilotfish does not know survives.
        ...({ custom_knob: 7 } as Record<string, unknown>),
      });
      assert.equal(r.choices[0]?.message.content, "Hello from upstream");
      const seen = openai.requests.at(-1)!;
      assert.equal(seen.path, "/v1/chat/completions");
      assert.equal(seen.headers.get("authorization"), "Bearer sk-client-own");
      assert.equal(JSON.parse(seen.body).custom_knob, 7);
      assert.equal(JSON.parse(seen.body).model, "gpt-4o-mini", "model not rewritten");
    });

    await t.step(
      "no client credential: the configured key is injected; pf_ keys never pass",
      async () => {
        await fetch(d.url("/openai/v1/chat/completions"), {
          method: "POST",
          body: chatBody("gpt-4o"),
        })
          .then((r) => r.body?.cancel());
        assert.equal(
          openai.requests.at(-1)!.headers.get("authorization"),
          "Bearer sk-configured-openai",
        );
        await fetch(d.url("/openai/v1/chat/completions?x=1"), {
          method: "POST",
          headers: { authorization: "Bearer pf_app_key_abcdef" },
          body: chatBody("gpt-4o"),
        }).then((r) => r.body?.cancel());
        assert.equal(
          openai.requests.at(-1)!.headers.get("authorization"),
          "Bearer sk-configured-openai",
        );
      },
    );

    await t.step(
      "the SSE stream is byte-identical to the upstream's, usage is logged",
      async () => {
        openai.script({ kind: "stream", includeUsage: true });
        const direct = await bytesOf(
          await fetch(`${openai.url}/v1/chat/completions`, {
            method: "POST",
            body: chatBody("gpt-4o", { stream: true }),
          }),
        );
        const via = await d.socketFetch("/openai/v1/chat/completions", {
          method: "POST",
          body: chatBody("gpt-4o", { stream: true }),
        });
        assert.equal(via.headers.get("content-type"), "text/event-stream");
        assert.deepEqual(await bytesOf(via), direct);
        await d.waitForLog(`"route":"/openai/*"`);
        await d.waitForLog(`"prompt_tokens":7`);
      },
    );

    await t.step("upstream errors pass through verbatim", async () => {
      const body = {
        error: { message: "Invalid model", type: "invalid_request_error", code: "model_not_found" },
      };
      openai.script({ kind: "json", status: 404, body });
      const res = await fetch(d.url("/openai/v1/chat/completions"), {
        method: "POST",
        body: chatBody("x"),
      });
      assert.equal(res.status, 404);
      assert.deepEqual(await res.json(), body);
      openai.script({ kind: "json" });
    });

    await t.step(
      "GET with a query string, /native/{provider}/ forwards to base_url + rest",
      async () => {
        const res = await fetch(d.url("/native/openai/models?limit=2"));
        await res.body?.cancel();
        assert.equal(openai.requests.at(-1)!.path, "/v1/models");
        assert.equal(openai.requests.at(-1)!.method, "GET");
      },
    );

    await t.step(
      "anthropic SDK on /anthropic: bytes identical to talking to the mock directly",
      async () => {
        const via = new Anthropic({
          baseURL: d.url("/anthropic"),
          apiKey: "sk-ant-client",
          maxRetries: 0,
        });
        const msg = await via.messages.create({
          model: "claude-sonnet-4-5",
          max_tokens: 100,
          messages: [{ role: "user", content: "weather?" }],
        });
        assert.equal(msg.stop_reason, "tool_use");
        const seen = anthropic.requests.at(-1)!;
        assert.equal(seen.path, "/v1/messages");
        // The SDK authenticates with x-api-key or Authorization: Bearer (newer versions): either
        // reaches Anthropic exactly as sent.
        assert.match(
          `${seen.headers.get("x-api-key")} ${seen.headers.get("authorization")}`,
          /sk-ant-client/,
        );
        assert.equal(
          seen.headers.get("content-length"),
          String(new TextEncoder().encode(seen.body).length),
        );
        assert.ok(seen.headers.get("anthropic-version"), "anthropic-version passed through");

        const request = {
          model: "claude-sonnet-4-5",
          max_tokens: 100,
          stream: true,
          messages: [{ role: "user", content: "hi" }],
        };
        const init = {
          method: "POST",
          headers: {
            "x-api-key": "k",
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
          },
          body: JSON.stringify(request),
        };
        const direct = await bytesOf(await fetch(`${anthropic.url}/v1/messages`, init));
        const proxied = await bytesOf(await fetch(d.url("/anthropic/v1/messages"), init));
        assert.deepEqual(proxied, direct);
      },
    );

    await t.step(
      "oversize bodies: 413 by Content-Length and while streaming a chunked upload",
      async () => {
        const big = "x".repeat(10_000);
        let res = await fetch(d.url("/openai/v1/files"), { method: "POST", body: big });
        assert.equal(res.status, 413);
        await res.body?.cancel();
        const enc = new TextEncoder();
        let sent = 0;
        const chunked = new ReadableStream<Uint8Array>({
          pull(c) {
            if (sent >= 10) return c.close();
            sent++;
            c.enqueue(enc.encode(big.slice(0, 1000)));
          },
        });
        res = await fetch(d.url("/openai/v1/files"), { method: "POST", body: chunked });
        assert.equal(res.status, 413);
        assert.equal((await res.json()).error.code, "payload_too_large");
      },
    );

    await t.step("bad native requests: unknown provider 404 in the route's format", async () => {
      const res = await fetch(d.url("/native/nope/x"));
      assert.equal(res.status, 404);
      assert.match((await res.json()).error.message, /Unknown provider "nope"/);
      const gem = await fetch(d.url("/gemini/v1beta/models/gemini-2.5-flash:generateContent"), {
        method: "POST",
        body: "{}",
      });
      assert.equal(gem.status, 404);
      const body = await gem.json();
      assert.equal(body.error.status, "NOT_FOUND");
      assert.equal(body.error.code, 404);
    });
  } finally {
    await d.stop();
    await openai.close();
    await anthropic.close();
  }
});

Deno.test("the Google GenAI SDK through /gemini: same answers and bytes as the mock directly", async () => {
  const gemini = startFakeGemini();
  const d = await startDaemon(`
server:
  port: {{PORT}}
  socket: {{SOCKET}}
providers:
  gemini: { base_url: "${gemini.url}/v1beta", keys: [{ key: AIza-configured-gemini-key-000000 }] }
`);
  try {
    const direct = new GoogleGenAI({ apiKey: "client-key", httpOptions: { baseUrl: gemini.url } });
    const via = new GoogleGenAI({
      apiKey: "client-key",
      httpOptions: { baseUrl: d.url("/gemini") },
    });
    const ask = { model: "gemini-2.5-flash", contents: "What's the weather in Boston?" };
    const a = await direct.models.generateContent(ask);
    const b = await via.models.generateContent(ask);
    assert.deepEqual(b.candidates, a.candidates);
    assert.deepEqual(b.usageMetadata, a.usageMetadata);
    const seen = gemini.requests.at(-1)!;
    assert.match(
      seen.path,
      /^\/v1(beta)?\/models\/gemini-2.5-flash:generateContent$/,
      "the SDK's own API version passes through",
    );
    assert.equal(seen.headers.get("x-goog-api-key"), "client-key", "the client's own key passes");

    const streamed: unknown[] = [];
    for await (const chunk of await via.models.generateContentStream(ask)) {
      streamed.push(chunk.candidates);
    }
    assert.ok(streamed.length > 0);
    assert.equal(gemini.requests.at(-1)!.search, "?alt=sse");

    // Raw bytes, SSE included, identical to the mock's.
    const init = {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ contents: [{ parts: [{ text: "hi" }] }] }),
    };
    const path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
    const directBytes = await bytesOf(await fetch(`${gemini.url}${path}`, init));
    const viaBytes = await bytesOf(await fetch(d.url(`/gemini${path}`), init));
    assert.deepEqual(viaBytes, directBytes);
    assert.equal(
      gemini.requests.at(-1)!.headers.get("x-goog-api-key"),
      "AIza-configured-gemini-key-000000",
      "injected when the client sent none",
    );
    await d.waitForLog(`"route":"/gemini/*"`);
    assert.ok(!d.logs().includes("AIza-configured-gemini-key"), "the key never reaches a log line");
  } finally {
    await d.stop();
    await gemini.close();
  }
});
