import assert from "node:assert/strict";
import OpenAI from "openai";
import { startFakeAnthropic } from "../fakes/fake_anthropic.ts";
import { startGateway } from "../helpers/in_process.ts";

Deno.test("npm:openai → Pilotfish → Anthropic: text, image input, usage, errors", async (t) => {
  const anthropic = startFakeAnthropic();
  const gw = startGateway(`
providers:
  anthropic: { base_url: "${anthropic.url}/v1", keys: [{ key: sk-ant-configured-0001 }] }
routing:
  failover: { enabled: false }
`);
  const client = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "placeholder", maxRetries: 0 });
  try {
    await t.step("plain text with usage (cache tokens counted as prompt)", async () => {
      anthropic.script({ json: "response_text", sse: "stream_text" });
      const r = await client.chat.completions.create({
        model: "anthropic/claude-sonnet-4-5",
        messages: [{ role: "system", content: "Be kind." }, { role: "user", content: "Hello" }],
        max_tokens: 256,
      });
      assert.equal(r.choices[0]?.message.content, "Hello! How can I help you today?");
      assert.equal(r.choices[0]?.finish_reason, "stop");
      assert.equal(r.usage?.prompt_tokens, 132);
      assert.equal(r.usage?.completion_tokens, 10);
      const sent = anthropic.requests.at(-1)!;
      assert.equal(sent.headers.get("x-api-key"), "sk-ant-configured-0001");
      assert.equal(sent.headers.get("authorization"), null, "the SDK's placeholder never leaves");
      assert.equal(JSON.parse(sent.body).system, "Be kind.");
      assert.equal(JSON.parse(sent.body).max_tokens, 256);
    });

    await t.step("streamed text with include_usage", async () => {
      const stream = await client.chat.completions.create({
        model: "anthropic/claude-sonnet-4-5",
        messages: [{ role: "user", content: "Hello" }],
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = "";
      let usage: OpenAI.CompletionUsage | undefined;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? "";
        if (chunk.usage) usage = chunk.usage;
      }
      assert.ok(text.length > 0);
      assert.ok(usage && usage.prompt_tokens > 0 && usage.completion_tokens > 0);
    });

    await t.step("image input (data: URL) becomes a base64 image block", async () => {
      await client.chat.completions.create({
        model: "anthropic/claude-sonnet-4-5",
        messages: [{
          role: "user",
          content: [
            { type: "text", text: "What is this?" },
            { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } },
            { type: "image_url", image_url: { url: "https://example.com/cat.jpg" } },
          ],
        }],
      });
      const content = JSON.parse(anthropic.requests.at(-1)!.body).messages[0].content;
      assert.deepEqual(content[1], {
        type: "image",
        source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" },
      });
      assert.deepEqual(content[2], {
        type: "image",
        source: { type: "url", url: "https://example.com/cat.jpg" },
      });
    });

    await t.step("errors keep their status and message; unsupported params are 400s", async () => {
      anthropic.script({ errorStatus: 529, errorFixture: "error_529" });
      await assert.rejects(
        client.chat.completions.create({
          model: "anthropic/claude-sonnet-4-5",
          messages: [{ role: "user", content: "x" }],
        }),
        (err: unknown) =>
          err instanceof OpenAI.APIError && err.status === 529 && /Overloaded/i.test(err.message),
      );
      anthropic.script({ errorStatus: 400, errorFixture: "error_400" });
      await assert.rejects(
        client.chat.completions.create({
          model: "anthropic/claude-sonnet-4-5",
          messages: [{ role: "user", content: "x" }],
        }),
        (err: unknown) => err instanceof OpenAI.BadRequestError,
      );
      const before = anthropic.requests.length;
      await assert.rejects(
        client.chat.completions.create({
          model: "anthropic/claude-sonnet-4-5",
          messages: [{ role: "user", content: "x" }],
          n: 2,
        }),
        (err: unknown) => err instanceof OpenAI.BadRequestError && /"n"/.test(err.message),
      );
      assert.equal(anthropic.requests.length, before, "rejected before any upstream call");
    });
  } finally {
    await gw.close();
    await anthropic.close();
  }
});

Deno.test("npm:openai → Pilotfish → Anthropic: reasoning_effort thinks, the answer is its text", async (t) => {
  const anthropic = startFakeAnthropic();
  const gw = startGateway(`
providers:
  anthropic: { base_url: "${anthropic.url}/v1", keys: [{ key: sk-ant-configured-0001 }] }
routing:
  failover: { enabled: false }
`);
  const client = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "placeholder", maxRetries: 0 });
  const ask = {
    model: "anthropic/claude-sonnet-4-5",
    messages: [{ role: "user" as const, content: "27 × 453?" }],
  };
  try {
    anthropic.script({ json: "response_thinking", sse: "stream_thinking" });
    await t.step("JSON: thinking sent, thinking blocks left out of the answer", async () => {
      const r = await client.chat.completions.create({ ...ask, reasoning_effort: "medium" });
      assert.equal(r.choices[0]?.message.content, "27 × 453 = 12,231.");
      assert.equal(r.usage?.completion_tokens, 96, "thinking counts as output, as reasoning does");
      const sent = JSON.parse(anthropic.requests.at(-1)!.body);
      assert.deepEqual(sent.thinking, { type: "enabled", budget_tokens: 8192 });
      assert.equal(sent.max_tokens, 8192 + 4096);
    });
    await t.step("stream: thinking and signature deltas make no chunks", async () => {
      const stream = await client.chat.completions.create({
        ...ask,
        reasoning_effort: "low",
        max_completion_tokens: 2048,
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = "";
      let usage: OpenAI.CompletionUsage | undefined;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? "";
        if (chunk.usage) usage = chunk.usage;
      }
      assert.equal(text, "27 × 453 = 12,231.");
      assert.equal(usage?.completion_tokens, 96);
      const sent = JSON.parse(anthropic.requests.at(-1)!.body);
      assert.deepEqual(sent.thinking, { type: "enabled", budget_tokens: 1024 });
      assert.equal(sent.max_tokens, 2048);
    });
    await t.step("a limit below the least budget: a 400 the SDK raises, nothing sent", async () => {
      const before = anthropic.requests.length;
      await assert.rejects(
        client.chat.completions.create({
          ...ask,
          reasoning_effort: "high",
          max_completion_tokens: 512,
        }),
        (err: unknown) =>
          err instanceof OpenAI.BadRequestError && /max_completion_tokens/.test(err.message),
      );
      assert.equal(anthropic.requests.length, before);
    });
  } finally {
    await gw.close();
    await anthropic.close();
  }
});

Deno.test("Claude's thinking is reported as reasoning_tokens (estimated, within the output): chat and /v1/responses, JSON and stream", async (t) => {
  const anthropic = startFakeAnthropic();
  const gw = startGateway(`
providers:
  anthropic: { base_url: "${anthropic.url}/v1", keys: [{ key: sk-ant-configured-0001 }] }
routing:
  failover: { enabled: false }
`);
  const client = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "placeholder", maxRetries: 0 });
  const model = "anthropic/claude-sonnet-4-5";
  const input = "27 × 453?";
  // The fixtures' thinking text: 60 characters in the JSON answer, 33 in the stream (~4 a
  // token); Claude reports 96 output tokens, thinking included, and no figure of its own.
  const JSON_REASONING = 15;
  const STREAM_REASONING = 9;
  /** The log line of the request just answered. */
  const lastLine = () =>
    gw.logs.map((l) => JSON.parse(l)).filter((l) => l.msg === "request").at(-1) as Record<
      string,
      unknown
    >;
  try {
    await t.step("chat, JSON", async () => {
      anthropic.script({ json: "response_thinking", sse: "stream_thinking" });
      const r = await client.chat.completions.create({
        model,
        messages: [{ role: "user", content: input }],
        reasoning_effort: "medium",
      });
      assert.equal(r.usage?.completion_tokens, 96, "the output as Claude reported it");
      assert.equal(r.usage?.completion_tokens_details?.reasoning_tokens, JSON_REASONING);
      assert.equal(lastLine().reasoning_tokens, JSON_REASONING);
    });
    await t.step("chat, stream", async () => {
      const stream = await client.chat.completions.create({
        model,
        messages: [{ role: "user", content: input }],
        reasoning_effort: "low",
        stream: true,
        stream_options: { include_usage: true },
      });
      let usage: OpenAI.CompletionUsage | undefined;
      for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
      assert.equal(usage?.completion_tokens, 96);
      assert.equal(usage?.completion_tokens_details?.reasoning_tokens, STREAM_REASONING);
      assert.equal(lastLine().reasoning_tokens, STREAM_REASONING);
    });
    await t.step("responses, JSON", async () => {
      const r = await client.responses.create({ model, input, reasoning: { effort: "medium" } });
      assert.equal(r.output_text, "27 × 453 = 12,231.");
      assert.equal(r.usage?.output_tokens, 96);
      assert.equal(r.usage?.output_tokens_details.reasoning_tokens, JSON_REASONING);
    });
    await t.step("responses, stream", async () => {
      const stream = await client.responses.create({
        model,
        input,
        reasoning: { effort: "low" },
        stream: true,
      });
      let usage: OpenAI.Responses.ResponseUsage | undefined;
      for await (const event of stream) {
        if (event.type === "response.completed") usage = event.response.usage;
      }
      assert.equal(usage?.output_tokens, 96);
      assert.equal(usage?.output_tokens_details.reasoning_tokens, STREAM_REASONING);
    });
    await t.step("an answer without thinking reports none", async () => {
      anthropic.script({ json: "response_text", sse: "stream_text" });
      const r = await client.chat.completions.create({
        model,
        messages: [{ role: "user", content: input }],
      });
      assert.equal(r.usage?.completion_tokens_details?.reasoning_tokens ?? 0, 0);
      assert.equal(lastLine().reasoning_tokens, undefined);
    });
  } finally {
    await gw.close();
    await anthropic.close();
  }
});
