/**
 * `POST /v1/messages` answers that go through the canonical (OpenAI) form: a stage rewrote
 * the request, read the answer, or wants the stream's chunks, or the provider does not speak
 * the Messages API. What ended the answer must survive the round trip.
 * @module
 */
import assert from "node:assert/strict";
import type { Stage } from "../../src/pipeline/stages.ts";
import type { Handler } from "../helpers/fake_fetch.ts";
import { CONFIG, gateway, post, UPSTREAM } from "../pipeline/support.ts";

const enc = new TextEncoder();

/** The Anthropic upstream of `support.ts`, but its answers end on `stop` (or naturally). */
function claudeStoppingOn(stop: string | null): Handler {
  const reason = stop === null ? "end_turn" : "stop_sequence";
  return (url, init) => {
    if (!url.startsWith("http://claude.test/v1/messages")) return UPSTREAM(url, init);
    const body = JSON.parse(String(init.body));
    if (body.stream) {
      const ev = (type: string, data: Record<string, unknown>) =>
        `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
      return new Response(
        enc.encode(
          ev("message_start", {
            message: { id: "msg_1", model: "claude-x", usage: { input_tokens: 9 } },
          }) +
            ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } }) +
            ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: "1, 2" } }) +
            ev("content_block_stop", { index: 0 }) +
            ev("message_delta", {
              delta: { stop_reason: reason, stop_sequence: stop },
              usage: { output_tokens: 3 },
            }) +
            ev("message_stop", {}),
        ),
        { headers: { "content-type": "text/event-stream" } },
      );
    }
    return Response.json({
      id: "msg_1",
      type: "message",
      role: "assistant",
      model: "claude-x",
      content: [{ type: "text", text: "1, 2" }],
      stop_reason: reason,
      stop_sequence: stop,
      usage: { input_tokens: 9, output_tokens: 3 },
    });
  };
}

const STAGE = { fail_mode: "closed", timeout_ms: 5_000 } as const;

/** Each way an Anthropic answer reaches a Messages client through the canonical form. */
const CANONICAL_PATHS: [string, Stage][] = [
  ["a pre_llm rewrite (the request goes out translated)", {
    ...STAGE,
    name: "rewrite",
    pre_llm: (_ex, req) => ({ action: "rewrite", body: req.body }),
  }],
  ["a post_llm rewrite of the answer", {
    ...STAGE,
    name: "rewrite",
    post_llm: (_ex, res) =>
      res.stream || !res.body ? undefined : { action: "rewrite", body: { ...res.body } },
  }],
  ["a stream_chunk stage", { ...STAGE, name: "chunks", stream_chunk: () => undefined }],
];

/** stop_reason and stop_sequence as the client reads them, from JSON or the event stream. */
async function stopOf(res: Response): Promise<[unknown, unknown]> {
  assert.equal(res.status, 200);
  if (res.headers.get("content-type")?.includes("text/event-stream")) {
    const text = await res.text();
    const delta = /event: message_delta\ndata: (.*)\n/.exec(text);
    assert.ok(delta, text);
    const d = JSON.parse(delta[1]!).delta;
    return [d.stop_reason, d.stop_sequence];
  }
  const json = await res.json();
  return [json.stop_reason, json.stop_sequence];
}

const ask = (model: string, stream: boolean, extra: Record<string, unknown> = {}) =>
  post({
    model,
    max_tokens: 16,
    messages: [{ role: "user", content: "count" }],
    stop_sequences: ["END", "STOP"],
    stream,
    ...extra,
  });

Deno.test("/v1/messages: an Anthropic answer ended by a stop sequence names it through the canonical form", async (t) => {
  for (const [label, stage] of CANONICAL_PATHS) {
    for (const stream of [false, true]) {
      await t.step(`${label}, ${stream ? "stream" : "JSON"}`, async () => {
        const stopped = gateway({ stages: [stage], handler: claudeStoppingOn("END") });
        const res = await stopped.request("/v1/messages", ask("claude/claude-x", stream));
        assert.deepEqual(await stopOf(res), ["stop_sequence", "END"]);
        // Its neighbour: a natural end is still end_turn, with no sequence.
        const natural = gateway({ stages: [stage], handler: claudeStoppingOn(null) });
        const res2 = await natural.request("/v1/messages", ask("claude/claude-x", stream));
        assert.deepEqual(await stopOf(res2), ["end_turn", null]);
      });
    }
  }
});

Deno.test("/v1/messages: an upstream that does not say a stop sequence matched ends on end_turn", async (t) => {
  const handler: Handler = (url, init) => {
    if (url.startsWith("http://gem.test/")) {
      const candidate = {
        content: { role: "model", parts: [{ text: "1, 2" }] },
        // Gemini's STOP is "natural stop point of the model or provided stop sequence".
        finishReason: "STOP",
        index: 0,
      };
      const usageMetadata = { promptTokenCount: 4, candidatesTokenCount: 3, totalTokenCount: 7 };
      const answer = { candidates: [candidate], usageMetadata, modelVersion: "gemini-x" };
      return url.includes(":streamGenerateContent")
        ? new Response(enc.encode(`data: ${JSON.stringify(answer)}\r\n\r\n`), {
          headers: { "content-type": "text/event-stream" },
        })
        : Response.json(answer);
    }
    return UPSTREAM(url, init);
  };
  const gw = gateway({ config: withGemini(), handler });
  for (const stream of [false, true]) {
    await t.step(
      `OpenAI-compatible, finish_reason "stop", ${stream ? "stream" : "JSON"}`,
      async () => {
        const res = await gw.request("/v1/messages", ask("up/gpt-up", stream));
        assert.deepEqual(await stopOf(res), ["end_turn", null]);
      },
    );
    await t.step(`Gemini, finishReason "STOP", ${stream ? "stream" : "JSON"}`, async () => {
      const res = await gw.request("/v1/messages", ask("gem/gemini-x", stream));
      assert.deepEqual(await stopOf(res), ["end_turn", null]);
    });
  }
  await t.step("vLLM's stop_reason names the matched string", async () => {
    const vllm = gateway({
      handler: (url, init) =>
        url.startsWith("http://up.test/v1/chat/completions")
          ? Response.json({
            id: "chatcmpl-1",
            object: "chat.completion",
            created: 1,
            model: "m",
            choices: [{
              index: 0,
              message: { role: "assistant", content: "1, 2" },
              finish_reason: "stop",
              stop_reason: "END",
            }],
            usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
          })
          : UPSTREAM(url, init),
    });
    const res = await vllm.request("/v1/messages", ask("up/gpt-up", false));
    assert.deepEqual(await stopOf(res), ["stop_sequence", "END"]);
  });
});

function withGemini(): string {
  return CONFIG.replace(
    "routing:",
    `  gem: { type: gemini, base_url: "http://gem.test/v1beta", keys: [{ key: gm-key-0003 }] }\nrouting:`,
  );
}
