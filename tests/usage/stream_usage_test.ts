/**
 * Streams: Pilotfish asks OpenAI-family upstreams for `include_usage` and hides the extra
 * chunk from clients that did not ask; a stream cut short is charged for what was streamed,
 * estimated (and marked so) when the upstream sent no counts.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startHoldingUpstream } from "../fakes/holding_upstream.ts";
import { startGateway } from "../helpers/in_process.ts";
import { assertUsd, json, lineOf } from "./support.ts";

const HI = [{ role: "user", content: "Hi" }];

Deno.test("stream_usage: include_usage is asked upstream and its chunk stripped unless the client asked", async (t) => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  up: { type: openai, base_url: ${up.url}, keys: [{ key: sk-up }], stream_usage: true }
pricing:
  models:
    "up/gpt-4o-mini": { input: 1, output: 2 }
`);
  const client = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "sk-x", maxRetries: 0 });
  try {
    await t.step(
      "the client did not ask: no usage chunk reaches it, the stream is billed",
      async () => {
        up.script({ kind: "stream", includeUsage: true });
        const res = await gw.request(
          "/v1/chat/completions",
          json({ model: "up/gpt-4o-mini", messages: HI, stream: true }),
        );
        const text = await res.text();
        const sent = JSON.parse(up.requests.at(-1)!.body);
        assert.deepEqual(sent.stream_options, { include_usage: true });
        assert.doesNotMatch(text, /"choices":\[\]/);
        assert.match(text, /data: \[DONE\]\n\n$/);
        // 7 × 1 + 3 × 2 = 13 per 1M
        const line = await lineOf(gw, res);
        assertUsd(line.cost_usd, 0.000013);
        assert.equal(line.usage_estimated, undefined);
      },
    );

    await t.step("the client asked (official SDK): it gets the usage chunk", async () => {
      up.script({ kind: "stream", includeUsage: true });
      const stream = await client.chat.completions.create({
        model: "up/gpt-4o-mini",
        messages: [{ role: "user", content: "Hi" }],
        stream: true,
        stream_options: { include_usage: true },
      });
      let usage: OpenAI.CompletionUsage | null | undefined;
      let text = "";
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? "";
        if (chunk.usage) usage = chunk.usage;
      }
      assert.equal(text, "Hello from upstream");
      assert.equal(usage?.total_tokens, 10);
    });
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("a cancelled stream without upstream counts is billed as estimated", async () => {
  const piece = (content: string) =>
    `data: ${
      JSON.stringify({
        id: "c",
        object: "chat.completion.chunk",
        created: 1,
        model: "o-test",
        choices: [{ index: 0, delta: { content }, finish_reason: null }],
      })
    }\n\n`;
  // 4 pieces of 10 characters: 40 characters streamed → ceil(40 / 4) = 10 output tokens.
  const pieces = ["0123456789", "abcdefghij", "klmnopqrst", "uvwxyzABCD"];
  const up = startHoldingUpstream(pieces.map(piece));
  const gw = startGateway(`
providers:
  up: { type: openai, base_url: ${up.url}, keys: [{ key: sk-up }] }
pricing:
  models:
    "up/o-test": { input: 2, output: 8 }
`);
  try {
    const res = await gw.request(
      "/v1/chat/completions",
      json({ model: "up/o-test", messages: HI, stream: true }),
    );
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!pieces.every((p) => seen.includes(p))) seen += (await reader.read()).value ?? "";
    await reader.cancel("client went away");
    await up.cancelled;
    const line = await lineOf(gw, res);
    assert.equal(line.usage_estimated, true);
    assert.equal(line.completion_tokens, 10);
    // The prompt, never counted upstream, is estimated from the messages sent:
    // JSON.stringify(HI) is 31 characters → 8 tokens. 8 × 2 + 10 × 8 = 96 per 1M.
    assert.equal(line.prompt_tokens, 8);
    assertUsd(line.cost_usd, 0.000096);
    const report = await gw.runtime.usage.report({ period: "hour", since: 0, until: 8.64e15 });
    assert.equal(report.estimated_requests, 1);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("a cancelled Gemini stream keeps the output and thinking Gemini had counted", async () => {
  // Gemini repeats its cumulative usageMetadata on every event; the stream hangs after two.
  const event = (text: string, candidates: number) =>
    `data: ${
      JSON.stringify({
        candidates: [{ content: { role: "model", parts: [{ text }] } }],
        usageMetadata: {
          promptTokenCount: 3000,
          cachedContentTokenCount: 2000,
          candidatesTokenCount: candidates,
          thoughtsTokenCount: 700,
          totalTokenCount: 3700 + candidates,
        },
        modelVersion: "gemini-2.5-flash",
        responseId: "r1",
      })
    }\r\n\r\n`;
  const up = startHoldingUpstream([event("Hello", 10), event(" there", 20)]);
  const gw = startGateway(`
providers:
  gemini: { type: gemini, base_url: ${up.url}, keys: [{ key: AIza-test-key-00000000000000 }] }
`);
  try {
    const res = await gw.request(
      "/v1/chat/completions",
      json({ model: "gemini/gemini-2.5-flash", messages: HI, stream: true }),
    );
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes(" there")) seen += (await reader.read()).value ?? "";
    await reader.cancel("client went away");
    await up.cancelled;
    const line = await lineOf(gw, res);
    assert.equal(line.prompt_tokens, 3000);
    assert.equal(line.completion_tokens, 720);
    assert.equal(line.reasoning_tokens, 700);
    // Built-in gemini-2.5-flash: 1000 × 0.3 + 2000 × 0.075 + 720 × 2.5 per 1M.
    assertUsd(line.cost_usd, 0.00225);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("a passthrough stream that ends without counts is billed as estimated, not free", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  openai: { base_url: ${up.url}/v1, keys: [{ key: sk-up }] }
pricing:
  models:
    "openai/gpt-4o-mini": { input: 2, output: 8 }
`);
  try {
    // Priced as the model the answer names (the body streamed upstream unread).
    // "Hello from upstream": 19 characters → ceil(19 / 4) = 5 output tokens; no usage chunk.
    up.script({ kind: "stream" });
    const body = JSON.stringify({ model: "gpt-4o-mini", messages: HI, stream: true });
    const res = await gw.request("/openai/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": String(body.length) },
      body,
    });
    const text = await res.text();
    assert.doesNotMatch(text, /"usage":\{/);
    const line = await lineOf(gw, res);
    assert.equal(line.usage_estimated, true);
    assert.equal(line.completion_tokens, 5);
    // The prompt from the body's declared length, ~4 bytes a token.
    assert.equal(line.prompt_tokens, Math.ceil(body.length / 4));
    assertUsd(line.cost_usd, (Math.ceil(body.length / 4) * 2 + 5 * 8) / 1e6);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("a legacy completions stream without counts (/openai/v1/completions) is billed as estimated", async () => {
  const chunk = (text: string) =>
    `data: ${
      JSON.stringify({
        id: "cmpl-1",
        object: "text_completion",
        created: 1,
        model: "gpt-3.5-turbo-instruct",
        choices: [{ text, index: 0, logprobs: null, finish_reason: null }],
      })
    }\n\n`;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.arrayBuffer();
    return new Response(chunk("Hello from") + chunk(" upstream!!") + "data: [DONE]\n\n", {
      headers: { "content-type": "text/event-stream" },
    });
  });
  const gw = startGateway(`
providers:
  openai: { base_url: "http://127.0.0.1:${server.addr.port}/v1", keys: [{ key: sk-up }] }
pricing:
  models:
    "openai/gpt-3.5-turbo-instruct": { input: 1.5, output: 2 }
`);
  try {
    const body = JSON.stringify({
      model: "gpt-3.5-turbo-instruct",
      prompt: "hello hello hello hello",
      stream: true,
    });
    const res = await gw.request("/openai/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": String(body.length) },
      body,
    });
    await res.text();
    const line = await lineOf(gw, res);
    assert.equal(line.usage_estimated, true);
    // "Hello from upstream!!": 21 characters of text, ceil(21 / 4) = 6 output tokens.
    assert.equal(line.completion_tokens, 6);
    assert.equal(line.prompt_tokens, Math.ceil(body.length / 4));
    assert.ok((line.cost_usd as number) > 0);
  } finally {
    await gw.close();
    await server.shutdown();
  }
});

/** An upstream that sends `frames` (any content type) and then holds until cancelled. */
function hangingFrames(frames: Uint8Array[], contentType: string) {
  const cancelled = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.arrayBuffer();
    return new Response(
      new ReadableStream<Uint8Array>({
        start(controller) {
          for (const f of frames) controller.enqueue(f);
        },
        cancel() {
          cancelled.resolve();
        },
      }),
      { headers: { "content-type": contentType } },
    );
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    cancelled: cancelled.promise,
    close: () => server.shutdown(),
  };
}

Deno.test("a passthrough stream the client leaves is billed for what it streamed (Anthropic, Bedrock), never free", async (t) => {
  const enc = new TextEncoder();
  const sse = (type: string, data: Record<string, unknown>) =>
    enc.encode(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  // 40 characters of text in each.
  const text = ["0123456789", "abcdefghij", "klmnopqrst", "uvwxyzABCD"];
  const leave = async (res: Response, last: string) => {
    const reader = res.body!.getReader();
    let seen = "";
    while (!seen.includes(last)) {
      const { value } = await reader.read();
      seen += new TextDecoder().decode(value ?? new Uint8Array());
    }
    await reader.cancel("client went away");
  };
  await t.step(
    "/anthropic: message_start's output count of 1 is no count of what followed",
    async () => {
      const up = hangingFrames([
        sse("message_start", {
          message: { id: "m", model: "claude-x", usage: { input_tokens: 100, output_tokens: 1 } },
        }),
        ...text.map((t) =>
          sse("content_block_delta", { index: 0, delta: { type: "text_delta", text: t } })
        ),
      ], "text/event-stream");
      const gw = startGateway(`
providers:
  anthropic: { base_url: ${up.url}/v1, keys: [{ key: sk-ant }] }
pricing:
  models:
    "anthropic/claude-x": { input: 2, output: 8 }
`);
      try {
        const res = await gw.request("/anthropic/v1/messages", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "claude-x", max_tokens: 50, stream: true, messages: HI }),
        });
        await leave(res, "uvwxyzABCD");
        await up.cancelled;
        const line = await lineOf(gw, res);
        assert.equal(line.usage_estimated, true);
        assert.equal(line.prompt_tokens, 100);
        assert.equal(line.completion_tokens, 10);
      } finally {
        await gw.close();
        await up.close();
      }
    },
  );
  await t.step(
    "/bedrock ConverseStream: output from the deltas, input from the request's size",
    async () => {
      const { eventFrame } = await import("../fakes/fake_bedrock.ts");
      const up = hangingFrames([
        eventFrame({ type: "messageStart", payload: { role: "assistant" } }),
        ...text.map((t) =>
          eventFrame({
            type: "contentBlockDelta",
            payload: { contentBlockIndex: 0, delta: { text: t } },
          })
        ),
      ], "application/vnd.amazon.eventstream");
      const gw = startGateway(`
providers:
  bedrock: { enabled: true, region: us-east-1, endpoint: "${up.url}" }
pricing:
  models:
    "bedrock/anthropic.claude-x": { input: 2, output: 8 }
`);
      try {
        const body = JSON.stringify({
          messages: [{ role: "user", content: [{ text: "x".repeat(400) }] }],
        });
        const res = await gw.request("/bedrock/model/anthropic.claude-x/converse-stream", {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "content-length": String(body.length),
            authorization:
              "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00",
          },
          body,
        });
        await leave(res, "uvwxyzABCD");
        await up.cancelled;
        const line = await lineOf(gw, res);
        assert.equal(line.usage_estimated, true);
        assert.equal(line.completion_tokens, 10);
        assert.equal(line.prompt_tokens, Math.ceil(body.length / 4));
        assert.ok((line.cost_usd as number) > 0);
      } finally {
        await gw.close();
        await up.close();
      }
    },
  );
});

Deno.test("after failover, an estimated stream's log line has the prompt estimated too", async () => {
  const bad = startFakeUpstream();
  const good = startFakeUpstream();
  const gw = startGateway(`
providers:
  bad: { type: openai, base_url: ${bad.url}/v1, keys: [{ key: sk-a }] }
  good: { type: openai, base_url: ${good.url}/v1, keys: [{ key: sk-b }] }
routing:
  models:
    m: { providers: [bad, good] }
  failover: { max_retries: 0 }
`);
  try {
    bad.script({
      kind: "json",
      status: 500,
      body: { error: { message: "x", type: "server_error" } },
    });
    good.script({ kind: "stream", chunks: ["Hello", " there"] });
    const res = await gw.request(
      "/v1/chat/completions",
      json({ model: "m", stream: true, messages: HI }),
    );
    await res.text();
    const line = await lineOf(gw, res);
    assert.equal((line as unknown as { attempts: unknown[] }).attempts.length, 2);
    assert.equal(line.usage_estimated, true);
    // JSON.stringify(HI) is 31 characters → 8 tokens, as for a single attempt.
    assert.equal(line.prompt_tokens, 8);
  } finally {
    await gw.close();
    await bad.close();
    await good.close();
  }
});

Deno.test("a prompt estimate leaves long base64 runs out: an image is not billed per byte", async () => {
  const { textChars } = await import("../../src/streaming/mod.ts");
  const image = "iVBORw0KGgo" + "A".repeat(200_000);
  const text = JSON.stringify([{
    role: "user",
    content: [{ type: "text", text: "What is this?" }, {
      type: "image_url",
      image_url: { url: `data:image/png;base64,${image}` },
    }],
  }]);
  const counted = textChars(text);
  assert.ok(counted < 200, `${counted} characters counted`);
  assert.equal(textChars("a short prompt"), 14);
});

Deno.test("native /openai/v1/responses: usage is read off the answer, JSON and streamed", async (t) => {
  const usage = {
    input_tokens: 1000,
    input_tokens_details: { cached_tokens: 400 },
    output_tokens: 500,
    output_tokens_details: { reasoning_tokens: 200 },
    total_tokens: 1500,
  };
  const response = {
    id: "resp_1",
    object: "response",
    status: "completed",
    model: "gpt-4o",
    output: [{
      type: "message",
      id: "msg_1",
      role: "assistant",
      status: "completed",
      content: [{ type: "output_text", text: "Hello", annotations: [] }],
    }],
    usage,
  };
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  openai: { base_url: ${up.url}/v1, keys: [{ key: sk-up }] }
pricing:
  models:
    "openai/gpt-4o": { input: 1, cache_read: 0.1, output: 4, reasoning: 8 }
`);
  // 600 × 1 + 400 × 0.1 + 300 × 4 + 200 × 8 = 3440 per 1M
  const cost = 0.00344;
  const ask = (stream: boolean) =>
    gw.request(
      "/openai/v1/responses",
      json({ model: "gpt-4o", input: "Hi", ...(stream ? { stream: true } : {}) }),
    );
  try {
    await t.step("JSON: the cost header, the log line", async () => {
      up.script({ kind: "json", body: response });
      const res = await ask(false);
      assert.equal(res.status, 200);
      assertUsd(Number(res.headers.get("x-pilotfish-cost-usd")), cost);
      await res.body?.cancel();
      const line = await lineOf(gw, res);
      assert.equal(line.prompt_tokens, 1000);
      assert.equal(line.completion_tokens, 500);
      assertUsd(line.cost_usd, cost);
    });
    await t.step("streamed: from response.completed, not estimated", async () => {
      const event = (type: string, extra: Record<string, unknown>, n: number) =>
        `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: n, ...extra })}\n\n`;
      up.script({
        kind: "sse",
        events: [
          event("response.created", {
            response: { ...response, status: "in_progress", usage: null },
          }, 0),
          event("response.output_text.delta", {
            item_id: "msg_1",
            output_index: 0,
            content_index: 0,
            delta: "Hello",
          }, 1),
          event("response.completed", { response }, 2),
        ],
      });
      const res = await ask(true);
      assert.equal(res.status, 200);
      await res.text();
      const line = await lineOf(gw, res);
      assert.equal(line.prompt_tokens, 1000);
      assert.equal(line.completion_tokens, 500);
      assert.equal(line.usage_estimated, undefined);
      assertUsd(line.cost_usd, cost);
    });
  } finally {
    await gw.close();
    await up.close();
  }
});
