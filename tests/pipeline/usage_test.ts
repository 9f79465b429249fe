/**
 * Usage is data, exact per attempt: a hedge loser that finished keeps its own usage on its
 * attempt while the winner's is the exchange's (no last writer wins), and a stream the
 * client cancels reports what was streamed.
 */
import assert from "node:assert/strict";
import type { EventOf } from "../../src/pipeline/events.ts";
import type { Stage } from "../../src/pipeline/stages.ts";
import { CONFIG, gateway, post, requestLines, UPSTREAM } from "./support.ts";

const SANITIZE = { sanitizeOps: true, sanitizeResources: true };

const HEDGED = `
providers:
  a: { base_url: "http://a.test/v1", keys: [{ key: sk-a-configured-0001 }] }
  b: { base_url: "http://b.test/v1", keys: [{ key: sk-b-configured-0002 }] }
routing:
  models:
    m: { providers: [a, b], hedge_after: 1ms }
`;

function completion(provider: string, prompt: number, completionTokens: number) {
  return new Response(
    JSON.stringify({
      id: `chatcmpl-${provider}`,
      object: "chat.completion",
      created: 1,
      model: "m",
      choices: [{
        index: 0,
        message: { role: "assistant", content: provider },
        finish_reason: "stop",
      }],
      usage: {
        prompt_tokens: prompt,
        completion_tokens: completionTokens,
        total_tokens: prompt + completionTokens,
      },
    }),
    { headers: { "content-type": "application/json" } },
  );
}

Deno.test(
  "a hedge loser that finished keeps its own usage; the winner's is reported",
  SANITIZE,
  async () => {
    // a is slow: it answers only once b has been asked (the hedge started), and it ignores the
    // abort that losing sends, as an upstream that had already finished would.
    const bAsked = Promise.withResolvers<void>();
    const gw = gateway({
      config: HEDGED,
      handler: async (url) => {
        if (url.startsWith("http://a.test")) {
          await bAsked.promise;
          return completion("a", 100, 50);
        }
        bAsked.resolve();
        return completion("b", 10, 5);
      },
    });
    const res = await gw.request(
      "/v1/chat/completions",
      post({
        model: "m",
        messages: [{ role: "user", content: "hi" }],
      }),
    );
    assert.equal(res.status, 200);
    const answer = await res.json();

    const end = gw.events.find((e) => e.type === "request_end") as EventOf<"request_end">;
    const ex = end.exchange;
    assert.equal(ex.attempts.length, 2);
    const winner = ex.attempts.find((a) => a.outcome === "ok")!;
    const loser = ex.attempts.find((a) => a.outcome === "cancelled")!;
    assert.equal(answer.choices[0].message.content, winner.provider);
    const own = {
      a: { prompt_tokens: 100, completion_tokens: 50, total_tokens: 150 },
      b: {
        prompt_tokens: 10,
        completion_tokens: 5,
        total_tokens: 15,
      },
    } as const;
    // Each attempt has its own usage...
    assert.deepEqual(await winner.usage, own[winner.provider as "a" | "b"]);
    assert.deepEqual(await loser.usage, own[loser.provider as "a" | "b"]);
    // ...the exchange reports the winner's, whatever order they settled in.
    assert.deepEqual(end.usage, own[winner.provider as "a" | "b"]);
    assert.deepEqual(ex.usage, end.usage);
    const line = requestLines(gw.logs)[0]!;
    assert.equal(line.prompt_tokens, own[winner.provider as "a" | "b"].prompt_tokens);
    // attempt_end carries each attempt's own usage, before request_end.
    const ends = gw.events.filter((e) => e.type === "attempt_end") as EventOf<"attempt_end">[];
    assert.equal(ends.length, 2);
    for (const e of ends) assert.deepEqual(e.usage, own[e.attempt.provider as "a" | "b"]);
    const order = gw.events.map((e) => e.type);
    assert.ok(order.lastIndexOf("attempt_end") < order.indexOf("request_end"), order.join());
    assert.ok(order.includes("hedge"), order.join());
  },
);

Deno.test("a cancelled stream reports what was streamed", SANITIZE, async (t) => {
  const enc = new TextEncoder();
  const ev = (type: string, data: Record<string, unknown>) =>
    enc.encode(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  /** An Anthropic stream that sends its start and some text, then stays open. */
  const hanging = () => {
    const cancelled = Promise.withResolvers<void>();
    const parts = [
      ev("message_start", {
        message: { id: "m1", model: "claude-x", usage: { input_tokens: 25 } },
      }),
      ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
      ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: "Hello world!" } }),
    ];
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        const next = parts.shift();
        if (next) c.enqueue(next);
        // then nothing more: a slow upstream
      },
      cancel() {
        cancelled.resolve();
      },
    });
    return {
      cancelled: cancelled.promise,
      response: new Response(body, { headers: { "content-type": "text/event-stream" } }),
    };
  };

  // /v1/chat/completions translates (typed chunks: output is estimated from the content
  // that went out); /v1/messages relays Anthropic's bytes (the fast path: the tap reports
  // message_start's input and counts the delta text that went out for the same estimate).
  const cases: [string, number][] = [["/v1/chat/completions", 3], ["/v1/messages", 3]];
  for (const [path, output] of cases) {
    await t.step(path, async () => {
      const upstream = hanging();
      const gw = gateway({
        config: CONFIG,
        handler: (url, init) =>
          url.startsWith("http://claude.test") ? upstream.response : UPSTREAM(url, init),
      });
      const res = await gw.request(
        path,
        post({
          model: "claude/claude-x",
          max_tokens: 16,
          stream: true,
          messages: [{ role: "user", content: "hi" }],
        }),
      );
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      const seen = new TextDecoder();
      let text = "";
      while (!text.includes("Hello world!")) text += seen.decode((await reader.read()).value);
      await reader.cancel("client went away");
      await upstream.cancelled;

      const end = gw.events.find((e) => e.type === "request_end") as EventOf<"request_end">;
      assert.equal(end.outcome, "client_abort");
      // Input as message_start counted it (the upstream never reached message_delta).
      assert.deepEqual(
        { prompt: end.usage?.prompt_tokens, completion: end.usage?.completion_tokens },
        { prompt: 25, completion: output },
      );
      const line = requestLines(gw.logs)[0]!;
      assert.equal(line.outcome, "client_abort");
      assert.equal(line.prompt_tokens, 25);
      assert.equal(line.completion_tokens, output);
    });
  }
});

Deno.test("a complete answer's usage is the upstream's own count", SANITIZE, async () => {
  const gw = gateway();
  const res = await gw.request(
    "/v1/chat/completions",
    post({
      model: "up/gpt-up",
      stream: true,
      messages: [{ role: "user", content: "hi" }],
    }),
  );
  await res.text();
  const end = gw.events.find((e) => e.type === "request_end") as EventOf<"request_end">;
  assert.deepEqual(end.usage, { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 });
});

Deno.test(
  "a stream_chunk stage that drops or replaces chunks does not change what is billed",
  SANITIZE,
  async (t) => {
    const stages: Record<string, NonNullable<Stage["stream_chunk"]>> = {
      drop: () => null,
      // A replacement that keeps nothing of the chunk: no usage, other content.
      replace: (_ex, c) => ({
        id: c.id,
        object: c.object,
        created: c.created,
        model: c.model,
        choices: [{
          index: 0,
          delta: { content: "a much longer replacement text" },
          finish_reason: null,
        }],
      }),
    };
    for (const [name, stream_chunk] of Object.entries(stages)) {
      await t.step(name, async () => {
        const gw = gateway({
          stages: [{ name, fail_mode: "closed", timeout_ms: 1_000, stream_chunk }],
        });
        const res = await gw.request(
          "/v1/chat/completions",
          post({ model: "up/gpt-up", stream: true, messages: [{ role: "user", content: "hi" }] }),
        );
        await res.text();
        const end = gw.events.find((e) => e.type === "request_end") as EventOf<"request_end">;
        assert.deepEqual(end.usage, { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 });
        const line = requestLines(gw.logs)[0]!;
        assert.equal(line.completion_tokens, 5);
        assert.equal(line.usage_estimated, undefined);
      });
    }
  },
);
