/**
 * A translated stream ends when the upstream's last event arrives, not when the upstream
 * closes its connection (some hold it open after `message_stop` or `[DONE]`): the client gets
 * its own closing events at once, and the log says the answer was whole.
 */
import assert from "node:assert/strict";
import { startGateway } from "../helpers/in_process.ts";
import { startHoldingUpstream } from "../fakes/holding_upstream.ts";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";

/** The whole body, or a failure (the body cancelled) if it is still open after `ms`. */
async function readWithin(res: Response, ms: number): Promise<string> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), ms);
  });
  let text = "";
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), late]);
      if (next === "late") {
        await reader.cancel();
        throw new Error(`the stream was still open after ${ms} ms`);
      }
      if (next.done) return text;
      text += next.value;
    }
  } finally {
    clearTimeout(timer);
  }
}

const sse = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

Deno.test("Anthropic → chat completions: message_stop ends the client's stream, the upstream held open", async () => {
  const up = startHoldingUpstream([
    sse("message_start", {
      type: "message_start",
      message: { id: "msg_1", model: "claude-x", usage: { input_tokens: 7, output_tokens: 1 } },
    }),
    sse("content_block_start", {
      type: "content_block_start",
      index: 0,
      content_block: { type: "text", text: "" },
    }),
    sse("content_block_delta", {
      type: "content_block_delta",
      index: 0,
      delta: { type: "text_delta", text: "Hello" },
    }),
    sse("content_block_stop", { type: "content_block_stop", index: 0 }),
    sse("message_delta", {
      type: "message_delta",
      delta: { stop_reason: "end_turn" },
      usage: { output_tokens: 2 },
    }),
    sse("message_stop", { type: "message_stop" }),
  ]);
  const gw = startGateway(`
providers:
  anthropic: { base_url: "${up.url}/v1", keys: [{ key: sk-ant-test-0000001 }] }
`);
  try {
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "anthropic/claude-x",
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    const text = await readWithin(res, 5_000);
    assert.match(text, /"content":"Hello"/);
    assert.match(text, /"finish_reason":"stop"/);
    assert.match(text, /data: \[DONE\]\n\n$/);
    await up.cancelled; // the held connection is let go
    const id = res.headers.get("x-request-id")!;
    await gw.waitForLog(`"request_id":"${id}"`);
    const line = JSON.parse(gw.logs.find((l) => l.includes(`"request_id":"${id}"`))!);
    assert.equal(line.outcome, "complete");
    assert.equal(line.completion_tokens, 2);
    assert.equal(line.usage_estimated, undefined);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("OpenAI → /v1/messages: [DONE] ends the client's stream with message_stop, the upstream held open", async () => {
  const event = (fields: Record<string, unknown>) =>
    `data: ${
      JSON.stringify({
        id: "c1",
        object: "chat.completion.chunk",
        created: 1,
        model: "gpt-x",
        ...fields,
      })
    }\n\n`;
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
    event({ choices: [{ index: 0, delta, finish_reason: finish }] });
  const up = startHoldingUpstream([
    chunk({ role: "assistant", content: "" }),
    chunk({ content: "Hi" }),
    chunk({}, "stop"),
    event({ choices: [], usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 } }),
    "data: [DONE]\n\n",
  ]);
  const gw = startGateway(`
providers:
  openai: { base_url: "${up.url}/v1", keys: [{ key: sk-test-0000001 }] }
`);
  try {
    const res = await gw.request("/v1/messages", {
      method: "POST",
      headers: { "content-type": "application/json", "anthropic-version": "2023-06-01" },
      body: JSON.stringify({
        model: "openai/gpt-x",
        max_tokens: 10,
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    const text = await readWithin(res, 5_000);
    assert.match(text, /"text":"Hi"/);
    assert.match(text, /event: message_stop\n/);
    await up.cancelled;
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("a stream request answered whole (a 504 before its first byte) is logged as a whole answer", async () => {
  const up = startFakeUpstream();
  up.script({ kind: "hang" });
  const gw = startGateway(`
providers:
  up:
    base_url: ${up.url}/v1
    keys: [{ key: sk-up-0001 }]
routing:
  failover: { enabled: false }
`);
  try {
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "up/gpt-4o-mini",
        stream: true,
        messages: [{ role: "user", content: "hi" }],
        "x-gateway": { first_chunk_timeout: 0.05 },
      }),
    });
    assert.equal(res.status, 504);
    assert.equal((await res.json()).error.code, "upstream_timeout");
    const id = res.headers.get("x-request-id")!;
    await gw.waitForLog(`"request_id":"${id}"`);
    const line = JSON.parse(gw.logs.find((l) => l.includes(`"request_id":"${id}"`))!);
    assert.equal(line.status, 504);
    // Not `complete`: the client got no answer; a whole one has no outcome (README, logs).
    assert.equal("outcome" in line, false, JSON.stringify(line));
  } finally {
    await gw.close();
    await up.close();
  }
});
