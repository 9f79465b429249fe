/**
 * A configured key that an upstream echoes inside a stream (an error event in a 200 answer,
 * relayed as bytes) never reaches the client: unified relays and native passthrough alike,
 * split across network writes or not.
 */
import assert from "node:assert/strict";
import { startGateway } from "../helpers/in_process.ts";

const OPENAI_KEY = "sk-OPENAI-SECRET-0123456789abcdef";
const ANTHROPIC_KEY = "sk-ant-SECRET-fedcba9876543210";

/** Writes each piece as its own chunk, a few ms apart (so they arrive as separate reads). */
function sse(pieces: string[]): Response {
  const enc = new TextEncoder();
  return new Response(
    new ReadableStream({
      async start(controller) {
        for (const p of pieces) {
          controller.enqueue(enc.encode(p));
          await new Promise((r) => setTimeout(r, 5));
        }
        controller.close();
      },
    }),
    { headers: { "content-type": "text/event-stream" } },
  );
}

/** Answers every stream with content first, then an error event echoing the key it got. */
function echoUpstream() {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    const path = new URL(req.url).pathname;
    const key = req.headers.get("x-api-key") ??
      (req.headers.get("authorization") ?? "").replace(/^Bearer\s+/i, "");
    const half = Math.floor(key.length / 2);
    const message = (k: string) => `Incorrect API key provided: ${k}`;
    if (path.endsWith("/messages")) {
      const error = JSON.stringify({
        type: "error",
        error: { type: "authentication_error", message: message(key) },
      });
      const cut = error.indexOf(key) + half;
      return sse([
        `event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"claude","content":[],"usage":{"input_tokens":3,"output_tokens":0}}}\n\n`,
        `event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n`,
        `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n`,
        `event: error\ndata: ${error.slice(0, cut)}`,
        `${error.slice(cut)}\n\n`,
      ]);
    }
    if (path.endsWith("/responses")) {
      const error = JSON.stringify({
        type: "error",
        code: "invalid_api_key",
        message: message(key),
        sequence_number: 3,
      });
      const cut = error.indexOf(key) + half;
      return sse([
        `event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","output":[]}}\n\n`,
        `event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}\n\n`,
        `event: error\ndata: ${error.slice(0, cut)}`,
        `${error.slice(cut)}\n\n`,
      ]);
    }
    const error = JSON.stringify({
      error: { message: message(key), type: "invalid_request_error" },
    });
    const cut = error.indexOf(key) + half;
    return sse([
      `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}\n\n`,
      `data: ${error.slice(0, cut)}`,
      `${error.slice(cut)}\n\n`,
    ]);
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

Deno.test("a configured key echoed in a stream's error event is [REDACTED] on every relayed route", async () => {
  const up = echoUpstream();
  const gw = startGateway(`
providers:
  openai: { base_url: "${up.url}/v1", keys: [{ key: ${OPENAI_KEY} }] }
  anthropic: { base_url: "${up.url}", keys: [{ key: ${ANTHROPIC_KEY} }] }
`);
  const post = async (path: string, body: Record<string, unknown>) => {
    const res = await fetch(gw.url(path), {
      method: "POST",
      headers: { "content-type": "application/json", "anthropic-version": "2023-06-01" },
      body: JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  };
  const messages = [{ role: "user", content: "hi" }];
  try {
    const cases: [string, string, Record<string, unknown>][] = [
      ["chat", "/v1/chat/completions", { model: "openai/gpt-4o", stream: true, messages }],
      ["native", "/openai/v1/chat/completions", { model: "gpt-4o", stream: true, messages }],
      ["native any", "/native/openai/chat/completions", {
        model: "gpt-4o",
        stream: true,
        messages,
      }],
      ["messages", "/v1/messages", {
        model: "anthropic/claude-sonnet-4-5",
        max_tokens: 10,
        stream: true,
        messages,
      }],
      ["native anthropic", "/anthropic/v1/messages", {
        model: "claude-sonnet-4-5",
        max_tokens: 10,
        stream: true,
        messages,
      }],
      ["responses", "/v1/responses", { model: "openai/gpt-4o", stream: true, input: "hi" }],
    ];
    for (const [name, path, body] of cases) {
      const { status, text } = await post(path, body);
      assert.equal(status, 200, name);
      assert.match(text, /Hi/, name);
      assert.match(text, /Incorrect API key provided: \[REDACTED\]/, `${name}: ${text}`);
      assert.doesNotMatch(text, /SECRET/, name);
    }
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("only credentials are scrubbed: a provider's other header values in an answer stay as written", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    const secret = req.headers.get("x-api-key") ?? "";
    return sse([
      `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Welcome to My Application, released 2023-06-01"},"finish_reason":null}]}\n\n`,
      `data: {"error":{"message":"bad key ${secret}"}}\n\n`,
    ]);
  });
  const gw = startGateway(`
providers:
  other:
    type: openai
    base_url: "http://127.0.0.1:${server.addr.port}/v1"
    headers: { x-title: "My Application", x-api-date: "2023-06-01", x-api-key: "hdr-SECRET-0123456789" }
`);
  try {
    const res = await fetch(gw.url("/v1/chat/completions"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "other/m",
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    const text = await res.text();
    assert.match(text, /Welcome to My Application, released 2023-06-01/);
    assert.match(text, /bad key \[REDACTED\]/);
    assert.doesNotMatch(text, /SECRET/);
  } finally {
    await gw.close();
    await server.shutdown();
  }
});

Deno.test("a configured key echoed in the text of a translated stream (Anthropic, Gemini) is [REDACTED], across network writes", async () => {
  const GEMINI_KEY = "AIza-GEMINI-SECRET-0123456789";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    const key = req.headers.get("x-api-key") ?? req.headers.get("x-goog-api-key") ??
      new URL(req.url).searchParams.get("key") ?? "";
    const half = Math.floor(key.length / 2);
    if (new URL(req.url).pathname.endsWith("/messages")) {
      const delta = (text: string) =>
        `event: content_block_delta\ndata: ${
          JSON.stringify({
            type: "content_block_delta",
            index: 0,
            delta: { type: "text_delta", text },
          })
        }\n\n`;
      const echo = delta(`your key is ${key}`);
      const cut = echo.indexOf(key) + half;
      return sse([
        `event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"claude","content":[],"usage":{"input_tokens":3,"output_tokens":0}}}\n\n`,
        `event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n`,
        echo.slice(0, cut),
        echo.slice(cut),
        `event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n`,
        `event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}\n\n`,
        `event: message_stop\ndata: {"type":"message_stop"}\n\n`,
      ]);
    }
    const chunk = (text: string, finish?: string) =>
      `data: ${
        JSON.stringify({
          candidates: [{
            content: { role: "model", parts: [{ text }] },
            index: 0,
            ...(finish ? { finishReason: finish } : {}),
          }],
          ...(finish
            ? {
              usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 5, totalTokenCount: 8 },
            }
            : {}),
        })
      }\r\n\r\n`;
    const whole = chunk(`your key is ${key}`);
    const cut = whole.indexOf(key) + half;
    return sse([whole.slice(0, cut), whole.slice(cut), chunk(".", "STOP")]);
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  const gw = startGateway(`
providers:
  anthropic: { base_url: "${base}", keys: [{ key: ${ANTHROPIC_KEY} }] }
  gemini: { base_url: "${base}", keys: [{ key: ${GEMINI_KEY} }] }
`);
  try {
    for (const model of ["anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash"]) {
      const res = await fetch(gw.url("/v1/chat/completions"), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model, stream: true, messages: [{ role: "user", content: "hi" }] }),
      });
      const text = await res.text();
      assert.equal(res.status, 200, model);
      const said = text.split("\n").filter((l) => l.startsWith("data: {")).map((l) =>
        (JSON.parse(l.slice(6)) as { choices: { delta: { content?: string } }[] }).choices[0]
          ?.delta.content ?? ""
      ).join("");
      assert.match(said, /your key is \[REDACTED\]/, `${model}: ${text}`);
      assert.doesNotMatch(text, /SECRET/, model);
    }
  } finally {
    await gw.close();
    await server.shutdown();
  }
});

Deno.test("a configured key echoed in a whole JSON answer is [REDACTED], in the answer and the cache", async () => {
  const GEMINI_KEY = "AIzaSECRETgeminikey0123456789abcdefgh";
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    const path = new URL(req.url).pathname;
    seen.push(path);
    const key = req.headers.get("x-api-key") ?? req.headers.get("x-goog-api-key") ??
      (req.headers.get("authorization") ?? "").replace(/^Bearer\s+/i, "");
    const text = `Your key is ${key}`;
    const json = (body: unknown) =>
      new Response(JSON.stringify(body), { headers: { "content-type": "application/json" } });
    if (path.endsWith("/messages")) {
      return json({
        id: "msg_1",
        type: "message",
        role: "assistant",
        model: "claude",
        content: [{ type: "text", text }],
        stop_reason: "end_turn",
        stop_sequence: null,
        usage: { input_tokens: 3, output_tokens: 4 },
      });
    }
    if (path.includes(":generateContent")) {
      return json({
        candidates: [{ content: { role: "model", parts: [{ text }] }, finishReason: "STOP" }],
        usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 4, totalTokenCount: 7 },
      });
    }
    return json({
      id: "c",
      object: "chat.completion",
      created: 1,
      model: "gpt-4o",
      choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: "stop" }],
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
    });
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  const gw = startGateway(`
providers:
  openai: { base_url: "${url}/v1", keys: [{ key: ${OPENAI_KEY} }] }
  anthropic: { base_url: "${url}", keys: [{ key: ${ANTHROPIC_KEY} }] }
  gemini: { base_url: "${url}", keys: [{ key: ${GEMINI_KEY} }] }
cache: { enabled: true }
`);
  const messages = [{ role: "user", content: "hi" }];
  try {
    for (
      const [path, model] of [
        ["/v1/chat/completions", "openai/gpt-4o"],
        ["/v1/chat/completions", "anthropic/claude-sonnet-4-5"],
        ["/v1/chat/completions", "gemini/gemini-2.5-flash"],
        ["/v1/messages", "anthropic/claude-sonnet-4-5"],
      ]
    ) {
      // The second is the cache's answer.
      for (const round of ["miss", "hit"]) {
        const res = await fetch(gw.url(path!), {
          method: "POST",
          headers: { "content-type": "application/json", "anthropic-version": "2023-06-01" },
          body: JSON.stringify({ model, max_tokens: 10, messages }),
        });
        const text = await res.text();
        assert.equal(res.status, 200, `${model} ${round}: ${text}`);
        assert.match(text, /Your key is \[REDACTED\]/, `${model} ${round}: ${text}`);
        assert.doesNotMatch(text, /SECRET/, `${model} ${round}`);
      }
    }
    // Every second request was the cache's; the Messages request found the entry the same
    // request in chat form left (one canonical key).
    assert.equal(seen.length, 3, seen.join(" "));
  } finally {
    await gw.close();
    await server.shutdown();
  }
});
