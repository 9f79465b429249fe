import assert from "node:assert/strict";
import { jsonOf } from "../outcome.ts";
import { parseConfigText } from "../../../src/config/mod.ts";
import { GatewayError } from "../../../src/errors.ts";
import { createAdapters, MOCK_MODELS, type ProviderAdapter } from "../../../src/providers/mod.ts";
import type { ChatCall } from "../../../src/providers/mod.ts";
import type {
  OpenAIChatChunk,
  OpenAIChatRequest,
  OpenAIUsage,
} from "../../../src/schema/openai.ts";
import { readOpenAISse } from "../../helpers/openai_sse.ts";
import { createRedactor } from "../../../src/telemetry/mod.ts";
import { callBasics } from "../../helpers/calls.ts";
import { SANITIZE } from "../../helpers/sanitize.ts";

function mockAdapter(extra = ""): ProviderAdapter {
  const { config } = parseConfigText(`providers:\n  mock: {${extra}}\n`, () => undefined, "m");
  const adapters = createAdapters(config, {
    fetch: () => Promise.reject(new Error("the mock provider must not fetch")),
    redact: createRedactor([]),
    random: () => 0.5,
  });
  const adapter = adapters.get("mock");
  assert.ok(adapter);
  return adapter;
}

function chatCall(
  body: Partial<OpenAIChatRequest>,
  opts: { stream?: boolean; signal?: AbortSignal } = {},
): { call: ChatCall } {
  const call: ChatCall = {
    body: { model: "echo", messages: [{ role: "user", content: "Hello there" }], ...body },
    stream: opts.stream ?? false,
    ...callBasics(null, 5_000),
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
  return { call };
}

/** Every event of a stream as the client gets it (the edge's framing); "[DONE]" a string. */
function readEvents(
  stream: ReadableStream<Uint8Array> | ReadableStream<OpenAIChatChunk>,
): Promise<unknown[]> {
  return readOpenAISse(stream);
}

interface ChunkShape {
  object: string;
  model: string;
  choices: { delta: { role?: string; content?: string }; finish_reason: string | null }[];
  usage?: OpenAIUsage | null;
}

Deno.test("createMockAdapter() echoes the last user message with usage", SANITIZE, async () => {
  const adapter = mockAdapter();
  const { call } = chatCall({
    messages: [
      { role: "system", content: "Be brief" },
      { role: "user", content: "first" },
      { role: "assistant", content: "ok" },
      { role: "user", content: "Hello there" },
    ],
  });
  const outcome = await adapter.chat(call, "echo");
  assert.equal(outcome.kind, "json");
  if (outcome.kind !== "json") return;
  assert.equal(outcome.status, 200);
  const body = jsonOf(outcome);
  assert.equal(body.object, "chat.completion");
  assert.equal(body.model, "echo");
  assert.deepEqual(body.choices[0].message, {
    role: "assistant",
    content: "Hello there",
    refusal: null,
  });
  assert.equal(body.choices[0].finish_reason, "stop");
  // ~4 characters a token: 8+5+2+11 = 26 prompt chars → 7; 11 completion chars → 3.
  assert.deepEqual(body.usage, { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 });
  assert.deepEqual(await outcome.usage, body.usage);
});

Deno.test("createMockAdapter() echoes the text parts of multi-part content", SANITIZE, async () => {
  const { call } = chatCall({
    messages: [{
      role: "user",
      content: [
        { type: "text", text: "look" },
        { type: "image_url", image_url: { url: "data:," } },
        { type: "text", text: "here" },
      ],
    }],
  });
  const outcome = await mockAdapter().chat(call, "echo");
  assert.ok(outcome.kind === "json");
  assert.equal(jsonOf(outcome).choices[0].message.content, "look here");
});

Deno.test(
  "createMockAdapter() streams chunks, a usage chunk and [DONE] with include_usage",
  SANITIZE,
  async () => {
    const { call } = chatCall(
      {
        messages: [{ role: "user", content: "one two three" }],
        stream: true,
        stream_options: { include_usage: true },
      },
      { stream: true },
    );
    const outcome = await mockAdapter().chat(call, "echo");
    assert.equal(outcome.kind, "stream");
    if (outcome.kind !== "stream") return;
    assert.equal(outcome.status, 200);
    const events = await readEvents(outcome.body);
    assert.equal(events.at(-1), "[DONE]");
    const chunks = events.slice(0, -1) as ChunkShape[];
    for (const c of chunks) {
      assert.equal(c.object, "chat.completion.chunk");
      assert.equal(c.model, "echo");
    }
    assert.equal(chunks.length, 6);
    assert.equal(chunks[0]?.choices[0]?.delta.role, "assistant");
    assert.deepEqual(
      chunks.slice(1, 4).map((c) => c.choices[0]?.delta.content),
      ["one ", "two ", "three"],
    );
    assert.equal(chunks[4]?.choices[0]?.finish_reason, "stop");
    // Content chunks carry "usage": null, as OpenAI sends with include_usage.
    for (const c of chunks.slice(0, 5)) assert.equal(c.usage, null);
    const usage = { prompt_tokens: 4, completion_tokens: 4, total_tokens: 8 };
    assert.deepEqual(chunks[5]?.choices, []);
    assert.deepEqual(chunks[5]?.usage, usage);
    assert.deepEqual(await outcome.usage, usage);
  },
);

Deno.test(
  "createMockAdapter() streams without a usage chunk when not asked",
  SANITIZE,
  async () => {
    const { call } = chatCall({ stream: true }, { stream: true });
    const outcome = await mockAdapter().chat(call, "echo");
    assert.ok(outcome.kind === "stream");
    const events = await readEvents(outcome.body);
    assert.equal(events.at(-1), "[DONE]");
    for (const c of events.slice(0, -1) as ChunkShape[]) {
      assert.equal("usage" in c, false);
      assert.equal(c.choices.length, 1);
    }
    // The gateway still learns the usage for accounting.
    assert.deepEqual(await outcome.usage, {
      prompt_tokens: 3,
      completion_tokens: 3,
      total_tokens: 6,
    });
  },
);

Deno.test(
  "createMockAdapter() splits into stream_chunks pieces when configured",
  SANITIZE,
  async () => {
    const { call } = chatCall({ messages: [{ role: "user", content: "abcdefgh" }] }, {
      stream: true,
    });
    const outcome = await mockAdapter("stream_chunks: 4").chat(call, "echo");
    assert.ok(outcome.kind === "stream");
    const chunks = (await readEvents(outcome.body)).slice(1, -2) as ChunkShape[];
    assert.deepEqual(chunks.map((c) => c.choices[0]?.delta.content), ["ab", "cd", "ef", "gh"]);
  },
);

Deno.test("createMockAdapter() fails error-NNN models with that status", SANITIZE, async (t) => {
  const cases: [string, number, string, boolean][] = [
    ["error-400", 400, "upstream_error", false],
    ["error-429", 429, "rate_limited", true],
    ["error-500", 500, "upstream_error", true],
    ["error-503", 503, "upstream_error", true],
  ];
  for (const [model, status, code, retryable] of cases) {
    await t.step(model, async () => {
      const { call } = chatCall({});
      await assert.rejects(() => mockAdapter().chat(call, model), (err: unknown) => {
        assert.ok(err instanceof GatewayError);
        assert.equal(err.code, code);
        assert.equal(err.status, status);
        assert.equal(err.info.upstreamStatus, status);
        assert.equal(err.info.provider, "mock");
        assert.equal(err.retryable, retryable);
        return true;
      });
    });
  }
  await t.step("error-429 carries retry-after", async () => {
    await assert.rejects(() => mockAdapter().chat(chatCall({}).call, "error-429"), (err) => {
      assert.ok(err instanceof GatewayError);
      assert.deepEqual(err.info.headers, { "retry-after": "1" });
      return true;
    });
  });
});

Deno.test("createMockAdapter() fails every other flaky call with 503", SANITIZE, async () => {
  const adapter = mockAdapter();
  const results: (number | string)[] = [];
  for (let i = 0; i < 4; i++) {
    try {
      const outcome = await adapter.chat(chatCall({}).call, "flaky");
      results.push(outcome.status);
    } catch (err) {
      results.push(err instanceof GatewayError ? `error ${err.status}` : "other");
    }
  }
  assert.deepEqual(results, ["error 503", 200, "error 503", 200]);
});

Deno.test(
  "createMockAdapter() breaks stream-error-after-3 after three content chunks",
  SANITIZE,
  async (t) => {
    for (const text of ["Hi", "one two three four five"]) {
      await t.step(JSON.stringify(text), async () => {
        const { call } = chatCall({ messages: [{ role: "user", content: text }] }, {
          stream: true,
        });
        const outcome = await mockAdapter().chat(call, "stream-error-after-3");
        assert.ok(outcome.kind === "stream");
        assert.equal(outcome.format, "chunks");
        const reader = (outcome.body as ReadableStream<ChunkShape>).getReader();
        const payloads: ChunkShape[] = [];
        let failure: unknown;
        try {
          while (true) {
            const { done, value } = await reader.read();
            if (done) break;
            payloads.push(value);
          }
        } catch (err) {
          failure = err;
        }
        assert.ok(failure instanceof Error, "the stream must error, not end");
        assert.equal(payloads[0]?.choices[0]?.delta.role, "assistant");
        const content = payloads.slice(1);
        assert.equal(content.length, 3);
        for (const c of content) {
          assert.equal(c.choices[0]?.finish_reason, null);
          assert.ok(typeof c.choices[0]?.delta.content === "string");
        }
      });
    }
  },
);

Deno.test(
  "createMockAdapter() stops a slow call on abort without leaking its timer",
  SANITIZE,
  async () => {
    const abort = new AbortController();
    const { call } = chatCall({}, { signal: abort.signal });
    const pending = mockAdapter().chat(call, "slow");
    const reason = new Error("client went away");
    abort.abort(reason);
    await assert.rejects(() => pending, (err: unknown) => err === reason);
  },
);

Deno.test(
  "createMockAdapter() settles a cancelled stream's usage with what was streamed",
  SANITIZE,
  async () => {
    const { call } = chatCall({ messages: [{ role: "user", content: "aaaa bbbb cccc dddd" }] }, {
      stream: true,
    });
    const outcome = await mockAdapter().chat(call, "echo");
    assert.ok(outcome.kind === "stream");
    const reader = (outcome.body as ReadableStream<ChunkShape>).getReader();
    await reader.read(); // the role chunk
    await reader.read(); // "aaaa "
    await reader.cancel("client went away");
    // Input is known; output is estimated from the 5 characters that went out (~4 a token).
    assert.deepEqual(await outcome.usage, {
      prompt_tokens: 5,
      completion_tokens: 2,
      total_tokens: 7,
      estimated: true,
    });
  },
);

Deno.test("createMockAdapter() advertises the mock models unless configured", SANITIZE, () => {
  assert.deepEqual(mockAdapter().models(), MOCK_MODELS);
  assert.deepEqual(mockAdapter("models: [a, b]").models(), ["a", "b"]);
});

Deno.test(
  "createMockAdapter(): mock/slow ends at the attempt's timeout with 504, like an HTTP provider",
  SANITIZE,
  async () => {
    const adapter = mockAdapter();
    const { call } = chatCall({ model: "slow" });
    const started = performance.now();
    await assert.rejects(adapter.chat({ ...call, timeoutMs: 20 }, "slow"), (err: GatewayError) => {
      assert.equal(err.code, "upstream_timeout");
      assert.equal(err.status, 504);
      assert.match(err.message, /did not answer within 20 ms/);
      return true;
    });
    assert.ok(performance.now() - started < 900, "did not wait for the mock's 1 s");
  },
);

Deno.test(
  "createMockAdapter() refuses with 400 what an OpenAI upstream refuses",
  SANITIZE,
  async () => {
    const adapter = mockAdapter();
    const bad: [Partial<OpenAIChatRequest>, string][] = [
      [{ tools: [{ type: "function" }] }, "tools[0].type"],
      [{ tools: [{ type: "function", function: { name: "" } }] }, "tools[0].function.name"],
      [
        { tools: [{ type: "function", function: { name: "f", parameters: 5 } }] },
        "tools[0].function.parameters",
      ],
      [
        { tools: [{ type: "function", function: { name: "f", parameters: [] } }] },
        "tools[0].function.parameters",
      ],
      [{ tool_choice: "bogus" }, "tool_choice"],
      [{ tool_choice: "required" }, "tool_choice"],
      [{ stop: 5 }, "stop"],
      [{ response_format: { type: "json_schema" } }, "response_format.json_schema.schema"],
      [{ n: 2 }, "n"],
      [
        { messages: [{ role: "user", content: [{ type: "image_url" }] }] },
        "messages[0].content[0].image_url.url",
      ],
      [
        { messages: [{ role: "user", content: [{ type: "text", text: 3 }] }] },
        "messages[0].content[0].text",
      ],
      [{ messages: [{ role: "tool", content: "x" }] }, "messages[0].tool_call_id"],
      [
        {
          messages: [{
            role: "assistant",
            tool_calls: [{ id: "c", function: { name: "f", arguments: "{" } }],
          }],
        },
        "messages[0].tool_calls[0].function.arguments",
      ],
    ];
    for (const [body, param] of bad) {
      const { call } = chatCall(body);
      await assert.rejects(adapter.chat(call, "echo"), (err: unknown) => {
        assert.ok(err instanceof GatewayError, JSON.stringify(body));
        assert.equal(err.status, 400, JSON.stringify(body));
        assert.equal(err.info.param, param, JSON.stringify(body));
        return true;
      });
    }
    // The well-formed versions answer.
    const { call } = chatCall({
      messages: [
        { role: "system", content: [{ type: "text", text: "Be brief" }] },
        {
          role: "user",
          content: [{ type: "text", text: "Look" }, {
            type: "image_url",
            image_url: { url: "data:image/png;base64,AA==" },
          }],
        },
        {
          role: "assistant",
          content: null,
          tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{}" } }],
        },
        { role: "tool", tool_call_id: "c1", content: "done" },
        { role: "user", content: "Hello there" },
      ],
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }],
      tool_choice: { type: "function", function: { name: "f" } },
      stop: ["\n\n"],
      response_format: {
        type: "json_schema",
        json_schema: { name: "x", schema: { type: "object" } },
      },
      n: 1,
    });
    const body = jsonOf(await adapter.chat(call, "echo")) as {
      choices: { message: { content: string } }[];
    };
    assert.equal(body.choices[0]?.message.content, "Hello there");
  },
);
