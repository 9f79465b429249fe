/**
 * Cost is a contract: per provider and per route, the bill equals the figure computed by
 * hand from the mocks' exact usage numbers, to the micro-dollar. Cache reads are billed at
 * the cache-read rate (never as normal input), cache writes at the write rate, reasoning at
 * its own rate where one is configured. Prices are per million tokens.
 */
import assert from "node:assert/strict";
import { ConverseCommand, ConverseStreamCommand } from "@aws-sdk/client-bedrock-runtime";
import { bedrockClientVia } from "../fakes/bedrock_client.ts";
import { type BedrockEvent, startFakeBedrock } from "../fakes/fake_bedrock.ts";
import { startFakeAnthropic } from "../fakes/fake_anthropic.ts";
import { startFakeGemini } from "../fakes/fake_gemini.ts";
import { completionBody, startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway } from "../helpers/in_process.ts";
import { assertUsd, json, lineById, lineOf } from "./support.ts";

const HI = [{ role: "user", content: "Hi" }];

/** OpenAI usage with cache reads (included in prompt_tokens) and reasoning (in completion). */
const OPENAI_USAGE = {
  prompt_tokens: 1200,
  completion_tokens: 300,
  total_tokens: 1500,
  prompt_tokens_details: { cached_tokens: 1000, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 200, audio_tokens: 0 },
};
// up/o-test: input 2, cache_read 0.5, output 8, reasoning 12 (per 1M):
// 200 × 2 + 1000 × 0.5 + 100 × 8 + 200 × 12 = 400 + 500 + 800 + 2400 = 4100 → $0.0041
const OPENAI_COST = 0.0041;

function sse(chunks: unknown[]): string[] {
  return [...chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`), "data: [DONE]\n\n"];
}

function chunk(delta: Record<string, unknown>, finish: string | null = null) {
  return {
    id: "chatcmpl-g",
    object: "chat.completion.chunk",
    created: 1,
    model: "o-test",
    choices: [{ index: 0, delta, finish_reason: finish }],
  };
}

Deno.test("golden cost: OpenAI (unified JSON and stream, native passthrough JSON and stream)", async (t) => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  up: { type: openai, base_url: ${up.url}, keys: [{ key: sk-up }] }
pricing:
  models:
    "up/o-test": { input: 2, cache_read: 0.5, output: 8, reasoning: 12 }
`);
  const body = { ...completionBody("Hello", "o-test"), usage: OPENAI_USAGE };
  const stream = sse([
    chunk({ role: "assistant", content: "" }),
    chunk({ content: "Hello" }),
    chunk({}, "stop"),
    { ...chunk({}), choices: [], usage: OPENAI_USAGE },
  ]);
  try {
    await t.step("unified JSON: header, log line and rollup agree", async () => {
      up.script({ kind: "json", body });
      const res = await gw.request(
        "/v1/chat/completions",
        json({ model: "up/o-test", messages: HI }),
      );
      assert.equal(res.status, 200);
      await res.json();
      assertUsd(Number(res.headers.get("x-pilotfish-cost-usd")), OPENAI_COST, "header");
      const line = await lineOf(gw, res);
      assertUsd(line.cost_usd, OPENAI_COST, "log");
      assert.equal(line.cached_tokens, 1000);
      assert.equal(line.reasoning_tokens, 200);
    });

    await t.step("unified stream (include_usage): billed from the usage chunk", async () => {
      up.script({ kind: "sse", events: stream });
      const res = await gw.request(
        "/v1/chat/completions",
        json({
          model: "up/o-test",
          messages: HI,
          stream: true,
          stream_options: { include_usage: true },
        }),
      );
      assert.equal(res.headers.get("x-pilotfish-cost-usd"), null, "no header on a stream");
      await res.text();
      assertUsd((await lineOf(gw, res)).cost_usd, OPENAI_COST, "log");
    });

    await t.step("native passthrough JSON and stream: the same bill", async () => {
      up.script({ kind: "json", body });
      const res = await gw.request(
        "/native/up/chat/completions",
        json({ model: "o-test", messages: HI }, { authorization: "Bearer sk-client" }),
      );
      assert.equal(res.status, 200);
      await res.text();
      assertUsd((await lineOf(gw, res)).cost_usd, OPENAI_COST, "passthrough JSON");
      // Read whole before it went out: the answer carries its cost, as unified ones do.
      assertUsd(Number(res.headers.get("x-pilotfish-cost-usd")), OPENAI_COST, "passthrough header");
      up.script({ kind: "sse", events: stream });
      const res2 = await gw.request(
        "/native/up/chat/completions",
        json({ model: "o-test", messages: HI, stream: true }, {
          authorization: "Bearer sk-client",
        }),
      );
      await res2.text();
      assertUsd((await lineOf(gw, res2)).cost_usd, OPENAI_COST, "passthrough stream");
      assert.equal(
        res2.headers.get("x-pilotfish-cost-usd"),
        null,
        "a stream's cost is known at its end",
      );
    });

    await t.step("the built-in table prices gpt-4o-mini (fake's 7 + 3 tokens)", async () => {
      up.script({ kind: "json" });
      const res = await gw.request(
        "/v1/chat/completions",
        json({ model: "up/gpt-4o-mini", messages: HI }),
      );
      await res.json();
      // 7 × 0.15 + 3 × 0.60 = 2.85 per 1M → $0.00000285
      assertUsd(Number(res.headers.get("x-pilotfish-cost-usd")), 0.00000285, "header");
    });

    await t.step(
      "an unpriced model has no cost (no header, null in the log), tokens kept",
      async () => {
        up.script({ kind: "json", body: completionBody("x", "homegrown-1") });
        const res = await gw.request(
          "/v1/chat/completions",
          json({ model: "up/homegrown-1", messages: HI }),
        );
        await res.json();
        assert.equal(res.headers.get("x-pilotfish-cost-usd"), null);
        const line = await lineOf(gw, res);
        assert.equal(line.cost_usd, undefined);
        assert.equal(line.prompt_tokens, 7);
      },
    );

    await t.step("the rollups sum the four priced o-test requests exactly", async () => {
      const report = await gw.runtime.usage.report({ period: "hour", since: 0, until: 8.64e15 });
      assertUsd(report.by_model["o-test"]?.cost, 4 * OPENAI_COST, "by_model");
      assert.equal(report.by_model["o-test"]?.cached_tokens, 4000);
      assert.equal(report.by_model["o-test"]?.reasoning_tokens, 800);
      assert.equal(report.total_requests, 6);
    });
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("golden cost: Anthropic cache writes and reads (built-in claude-sonnet-4-5 prices)", async (t) => {
  const anthropic = startFakeAnthropic();
  const gw = startGateway(`
providers:
  anthropic: { base_url: ${anthropic.url}, keys: [{ key: sk-ant-test }] }
`);
  // claude-sonnet-4-5 (built-in): input 3, cache_write 3.75, cache_read 0.30, output 15.
  // response_text.json: input 12 (cache excluded), cache_creation 20, cache_read 100, output 10:
  // 12 × 3 + 20 × 3.75 + 100 × 0.3 + 10 × 15 = 36 + 75 + 30 + 150 = 291 → $0.000291
  const JSON_COST = 0.000291;
  // stream_text.sse: input 25, cache_read 5, output 15 (message_delta):
  // 25 × 3 + 5 × 0.3 + 15 × 15 = 75 + 1.5 + 225 = 301.5 → $0.0003015
  const STREAM_COST = 0.0003015;
  const messages = { model: "claude-sonnet-4-5", max_tokens: 64, messages: HI };
  try {
    await t.step("unified JSON (/v1/chat/completions, translated)", async () => {
      anthropic.script({ json: "response_text", sse: "stream_text" });
      const res = await gw.request(
        "/v1/chat/completions",
        json({ model: "anthropic/claude-sonnet-4-5", messages: HI }),
      );
      const out = await res.json();
      // The client sees OpenAI's convention: prompt_tokens counts the cached tokens.
      assert.equal(out.usage.prompt_tokens, 132);
      assert.equal(out.usage.prompt_tokens_details.cached_tokens, 100);
      assertUsd(Number(res.headers.get("x-pilotfish-cost-usd")), JSON_COST, "header");
      const line = await lineOf(gw, res);
      assert.equal(line.cache_write_tokens, 20);
      assertUsd(line.cost_usd, JSON_COST, "log");
    });

    await t.step(
      "unified stream (translated) and /v1/messages stream (bytes relayed)",
      async () => {
        const res = await gw.request(
          "/v1/chat/completions",
          json({ model: "anthropic/claude-sonnet-4-5", messages: HI, stream: true }),
        );
        await res.text();
        assertUsd((await lineOf(gw, res)).cost_usd, STREAM_COST, "chat stream");
        const res2 = await gw.request(
          "/v1/messages",
          json({ ...messages, model: "anthropic/claude-sonnet-4-5", stream: true }),
        );
        await res2.text();
        assertUsd((await lineOf(gw, res2)).cost_usd, STREAM_COST, "messages stream");
      },
    );

    await t.step("/v1/messages JSON and native passthrough JSON and stream", async () => {
      const res = await gw.request(
        "/v1/messages",
        json({ ...messages, model: "anthropic/claude-sonnet-4-5" }),
      );
      await res.json();
      assertUsd(Number(res.headers.get("x-pilotfish-cost-usd")), JSON_COST, "messages header");
      const res2 = await gw.request("/anthropic/v1/messages", json(messages));
      await res2.text();
      assertUsd((await lineOf(gw, res2)).cost_usd, JSON_COST, "passthrough JSON");
      assertUsd(Number(res2.headers.get("x-pilotfish-cost-usd")), JSON_COST, "passthrough header");
      const res3 = await gw.request("/anthropic/v1/messages", json({ ...messages, stream: true }));
      await res3.text();
      assertUsd((await lineOf(gw, res3)).cost_usd, STREAM_COST, "passthrough stream");
    });
  } finally {
    await gw.close();
    await anthropic.close();
  }
});

Deno.test("golden cost: Gemini implicit cache and thinking tokens (built-in gemini-2.5-flash)", async (t) => {
  const gemini = startFakeGemini();
  const gw = startGateway(`
providers:
  gemini: { base_url: ${gemini.url}, keys: [{ key: gm-test }] }
`);
  // gemini-2.5-flash (built-in): input 0.30, cache_read 0.075, output 2.50 (thinking too).
  // response_text.json: promptTokenCount 132 incl. cachedContentTokenCount 100,
  // candidates 10 + thoughts 28: 32 × 0.3 + 100 × 0.075 + 38 × 2.5 = 9.6 + 7.5 + 95 = 112.1
  const JSON_COST = 0.0001121;
  // stream_text.sse: prompt 30 incl. cached 5, candidates 15:
  // 25 × 0.3 + 5 × 0.075 + 15 × 2.5 = 7.5 + 0.375 + 37.5 = 45.375
  const STREAM_COST = 0.000045375;
  const native = { contents: [{ role: "user", parts: [{ text: "Hi" }] }] };
  try {
    gemini.script({ json: "response_text", sse: "stream_text" });
    await t.step("unified JSON and stream", async () => {
      const res = await gw.request(
        "/v1/chat/completions",
        json({ model: "gemini/gemini-2.5-flash", messages: HI }),
      );
      const out = await res.json();
      assert.equal(out.usage.completion_tokens_details.reasoning_tokens, 28);
      assertUsd(Number(res.headers.get("x-pilotfish-cost-usd")), JSON_COST, "header");
      const res2 = await gw.request(
        "/v1/chat/completions",
        json({ model: "gemini/gemini-2.5-flash", messages: HI, stream: true }),
      );
      await res2.text();
      assertUsd((await lineOf(gw, res2)).cost_usd, STREAM_COST, "stream");
    });

    await t.step("native passthrough JSON and stream", async () => {
      const res = await gw.request(
        "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
        json(native),
      );
      await res.text();
      const line = await lineOf(gw, res);
      assert.equal(line.cached_tokens, 100);
      assert.equal(line.reasoning_tokens, 28);
      assertUsd(line.cost_usd, JSON_COST, "passthrough JSON");
      const res2 = await gw.request(
        "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        json(native),
      );
      await res2.text();
      assertUsd((await lineOf(gw, res2)).cost_usd, STREAM_COST, "passthrough stream");
    });
  } finally {
    await gw.close();
    await gemini.close();
  }
});

Deno.test("golden cost: Bedrock Converse cache reads and writes through SigV4 passthrough", async (t) => {
  const MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
  const bedrock = startFakeBedrock("us-west-2");
  const gw = startGateway(`
providers:
  bedrock: { enabled: true, region: us-west-2, endpoint: "${bedrock.url}" }
`);
  const usage = {
    inputTokens: 50,
    outputTokens: 40,
    totalTokens: 390,
    cacheReadInputTokens: 200,
    cacheWriteInputTokens: 100,
  };
  // anthropic.claude-sonnet-4-5 (built-in, geo prefix stripped): 3 / 3.75 / 0.30 / 15:
  // 50 × 3 + 100 × 3.75 + 200 × 0.3 + 40 × 15 = 150 + 375 + 60 + 600 = 1185 at the global
  // rates; a US geographic profile of Claude 4.5 costs 10 % more → $0.0013035
  const COST = 0.0013035;
  const events: BedrockEvent[] = [
    { type: "messageStart", payload: { role: "assistant" } },
    { type: "contentBlockDelta", payload: { contentBlockIndex: 0, delta: { text: "Hi" } } },
    { type: "contentBlockStop", payload: { contentBlockIndex: 0 } },
    { type: "messageStop", payload: { stopReason: "end_turn" } },
    { type: "metadata", payload: { usage, metrics: { latencyMs: 10 } } },
  ];
  bedrock.script({
    json: {
      output: { message: { role: "assistant", content: [{ text: "Hi" }] } },
      stopReason: "end_turn",
      usage,
      metrics: { latencyMs: 10 },
    },
    events,
  });
  const client = bedrockClientVia(gw.url(""), { prefix: "/bedrock" });
  const hello = {
    modelId: MODEL,
    messages: [{ role: "user" as const, content: [{ text: "Hi" }] }],
  };
  /** The log line of the request to this Bedrock operation (its path ends with it). */
  const lineFor = async (operation: string) => {
    await gw.waitForLog(`/${operation}"`);
    const line = gw.logs.find((l) => l.includes(`/${operation}"`)) as string;
    return await lineById(gw, (JSON.parse(line) as { request_id: string }).request_id);
  };
  try {
    await t.step("Converse JSON", async () => {
      await client.send(new ConverseCommand(hello));
      const line = await lineFor("converse");
      assert.equal(line.cache_write_tokens, 100);
      assert.equal(line.cached_tokens, 200);
      assertUsd(line.cost_usd, COST, "Converse");
    });
    await t.step("ConverseStream event-stream frames", async () => {
      const r = await client.send(new ConverseStreamCommand(hello));
      for await (const _ of r.stream!) { /* drain */ }
      assertUsd((await lineFor("converse-stream")).cost_usd, COST, "ConverseStream");
    });
  } finally {
    client.destroy();
    await gw.close();
    await bedrock.close();
  }
});
