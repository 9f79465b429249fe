/**
 * The chunks of a stream Pilotfish writes itself (a translated answer, a cache replay): the
 * role chunk says `content: null` when the answer opens with a tool call, as OpenAI's does,
 * so the official SDK's stream helper ends with `content: null` and not `""`.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import {
  createOpenAIChunkSender,
  createOpenAIChunkWriter,
} from "../../src/streaming/openai_chunks.ts";
import type { OpenAIChatChunk } from "../../src/schema/openai.ts";
import { startFakeAnthropic } from "../fakes/fake_anthropic.ts";
import { startGateway } from "../helpers/in_process.ts";

function sent(first: OpenAIChatChunk["choices"][number]["delta"]): OpenAIChatChunk[] {
  const writer = createOpenAIChunkWriter({
    id: "chatcmpl-1",
    created: 1,
    model: "m",
    includeUsage: false,
  });
  const sender = createOpenAIChunkSender(() => writer);
  const out: OpenAIChatChunk[] = [];
  const controller = {
    enqueue: (c: OpenAIChatChunk) => out.push(c),
  } as unknown as TransformStreamDefaultController<OpenAIChatChunk>;
  sender.send(controller, sender.chunk(first, null));
  return out;
}

Deno.test("createOpenAIChunkSender(): the role chunk's content is null before a tool call, '' before text", () => {
  const tool = sent({
    tool_calls: [{
      index: 0,
      id: "call_1",
      type: "function",
      function: { name: "f", arguments: "" },
    }],
  });
  assert.deepEqual(tool[0]?.choices[0]?.delta, { role: "assistant", content: null, refusal: null });
  const text = sent({ content: "Hi" });
  assert.deepEqual(text[0]?.choices[0]?.delta, { role: "assistant", content: "", refusal: null });
});

Deno.test("a translated tool-call-only stream ends with content null in the OpenAI SDK, served and replayed from the cache", async (t) => {
  const anthropic = startFakeAnthropic();
  anthropic.script({ sse: "stream_tool_only" });
  const gw = startGateway(`
providers:
  claude:
    type: anthropic
    base_url: ${anthropic.url}/v1
    keys: [{ key: sk-ant-0001 }]
cache:
  enabled: true
  streaming: true
`);
  const client = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "sk-x", maxRetries: 0 });
  const request = {
    model: "claude/claude-sonnet-4-5",
    messages: [{ role: "user" as const, content: "Weather in Paris?" }],
    tools: [{
      type: "function" as const,
      function: {
        name: "get_weather",
        parameters: { type: "object", properties: { location: { type: "string" } } },
      },
    }],
  };
  try {
    for (const [name, calls] of [["translated", 1], ["replayed from the cache", 1]] as const) {
      await t.step(name, async () => {
        const stream = client.chat.completions.stream(request);
        const final = await stream.finalChatCompletion();
        const message = final.choices[0]?.message;
        assert.equal(message?.content, null);
        assert.equal(message?.tool_calls?.[0]?.type, "function");
        const call = message?.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
        assert.equal(call.function.name, "get_weather");
        assert.equal(call.function.arguments, '{"location": "Paris"}');
        assert.equal(final.choices[0]?.finish_reason, "tool_calls");
        assert.equal(anthropic.requests.length, calls);
      });
    }
  } finally {
    await gw.close();
    await anthropic.close();
  }
});
