import assert from "node:assert/strict";
import { GatewayError } from "../../src/errors.ts";
import {
  type MessagesStreamContext,
  toMessagesResponse,
  toMessagesStream,
  toMessagesUsage,
  toStopReason,
} from "../../src/translate/mod.ts";
import { CHUNK_SIZES, concatBytes, rechunk, streamOf } from "../helpers/chunk.ts";

const SANITIZE = { sanitizeOps: true, sanitizeResources: true } as const;
const FIXTURES = new URL("../fixtures/openai/", import.meta.url);
const SECRET = "sk-proj-secret-abcdef123456";

const fixture = (name: string) => Deno.readFile(new URL(name, FIXTURES));
const fixtureJson = async (name: string): Promise<unknown> =>
  JSON.parse(await Deno.readTextFile(new URL(name, FIXTURES)));

const ctx: MessagesStreamContext = {
  model: "requested-model",
  provider: "openai",
  redact: (s) => s.replaceAll(SECRET, "[REDACTED]"),
};

/** Translate `sse` delivered in `n`-byte pieces; returns the bytes and the error, if any. */
async function translate(sse: Uint8Array, n: number) {
  const reader = toMessagesStream(streamOf(rechunk(sse, n)), ctx).getReader();
  const chunks: Uint8Array[] = [];
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { bytes: concatBytes(chunks), error: undefined };
      chunks.push(value);
    }
  } catch (error) {
    return { bytes: concatBytes(chunks), error };
  }
}

/** Anthropic SSE → [event name, payload] pairs; asserts each `event:` matches its `type`. */
function parseAnthropicSse(bytes: Uint8Array): [string, Record<string, unknown>][] {
  const text = new TextDecoder().decode(bytes);
  if (text === "") return [];
  assert.ok(text.endsWith("\n\n"), `stream must end with a blank line: ${JSON.stringify(text)}`);
  return text.slice(0, -2).split("\n\n").map((block) => {
    const m = /^event: (\w+)\ndata: (.*)$/.exec(block);
    assert.ok(m, `not an Anthropic event: ${JSON.stringify(block)}`);
    const payload = JSON.parse(m[2] as string);
    assert.equal(payload.type, m[1]);
    return [m[1] as string, payload];
  });
}

/**
 * Every block starts, gets deltas for its own index only, and stops before the next starts,
 * as Anthropic streams them. Returns the number of blocks.
 */
function assertSequentialBlocks(events: [string, Record<string, unknown>][]): number {
  let open: number | null = null;
  let expected = 0;
  for (const [name, payload] of events) {
    if (name === "content_block_start") {
      assert.equal(open, null, "a block started before the last one stopped");
      assert.equal(payload.index, expected++);
      open = payload.index as number;
    } else if (name === "content_block_delta") assert.equal(payload.index, open);
    else if (name === "content_block_stop") {
      assert.equal(payload.index, open);
      open = null;
    }
  }
  assert.equal(open, null);
  return expected;
}

const enc = (s: string) => new TextEncoder().encode(s);
const chunk = (choice: Record<string, unknown> | null, extra: Record<string, unknown> = {}) =>
  `data: ${
    JSON.stringify({
      id: "chatcmpl-x1",
      object: "chat.completion.chunk",
      model: "gpt-4o-mini",
      choices: choice ? [{ index: 0, finish_reason: null, ...choice }] : [],
      ...extra,
    })
  }\n\n`;

// ---- JSON ----------------------------------------------------------------------------------

Deno.test("toMessagesResponse() translates text and tool calls into content blocks", async () => {
  const json = await fixtureJson("response_tool_calls.json");
  assert.deepEqual(toMessagesResponse(json, "requested", "openai"), {
    id: "msg_B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    type: "message",
    role: "assistant",
    model: "gpt-4o-2024-08-06",
    content: [
      { type: "text", text: "Let me check both." },
      {
        type: "tool_use",
        id: "call_DdmO9pD3xa9XTPNJ32zg2hcA",
        name: "get_weather",
        input: { location: "Paris, FR", unit: "celsius" },
      },
      { type: "tool_use", id: "call_ABC123def456ghi789jkl0", name: "get_time", input: {} },
    ],
    stop_reason: "tool_use",
    stop_sequence: null,
    usage: {
      input_tokens: 176,
      output_tokens: 58,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 1024,
    },
  });
});

Deno.test("toMessagesResponse() translates a plain answer", async () => {
  const json = await fixtureJson("response_text.json");
  const message = toMessagesResponse(json, "requested", "openai");
  assert.deepEqual(message.content, [{ type: "text", text: "Bonjour à toi 🌊!" }]);
  assert.equal(message.stop_reason, "end_turn");
  assert.deepEqual(message.usage, {
    input_tokens: 19,
    output_tokens: 6,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
  });
});

Deno.test("toMessagesResponse() fills what a sparse compatible server leaves out", () => {
  const message = toMessagesResponse(
    {
      choices: [{
        message: {
          content: [{ type: "text", text: "a" }, { type: "text", text: "b" }],
          tool_calls: [{ function: { name: "f", arguments: "" } }],
        },
        finish_reason: "stop",
      }],
    },
    "requested",
    "local",
  );
  assert.match(message.id, /^msg_\w+$/);
  assert.equal(message.model, "requested");
  assert.equal(message.content[0]?.type, "text");
  const use = message.content[1];
  assert.ok(use?.type === "tool_use");
  assert.match(use.id, /^toolu_\w{24}$/);
  assert.deepEqual(use.input, {});
  // Tool calls ended with "stop" still report tool_use, or agent loops would not run them.
  assert.equal(message.stop_reason, "tool_use");
  assert.deepEqual(message.usage, {
    input_tokens: 0,
    output_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
  });
});

Deno.test("toMessagesResponse() keeps a refusal as text and leaves no empty text block", () => {
  const refusal = toMessagesResponse(
    { choices: [{ message: { content: null, refusal: "I can't help." }, finish_reason: "stop" }] },
    "m",
    "openai",
  );
  assert.deepEqual(refusal.content, [{ type: "text", text: "I can't help." }]);
  assert.equal(refusal.stop_reason, "refusal", "OpenAI's refusal field: Anthropic's refusal");
  assert.equal(refusal.stop_sequence, null);
  const empty = toMessagesResponse(
    { choices: [{ message: { content: "" }, finish_reason: "length" }] },
    "m",
    "openai",
  );
  assert.deepEqual(empty.content, []);
  assert.equal(empty.stop_reason, "max_tokens");
});

Deno.test("toMessagesResponse() refuses bodies it cannot translate with 502", () => {
  const bad: unknown[] = [
    null,
    [],
    { object: "list" },
    { choices: [] },
    { choices: [{ message: "hi" }] },
    {
      choices: [{
        message: { tool_calls: [{ id: "c", function: { name: "f", arguments: "{oops" } }] },
      }],
    },
    {
      choices: [{
        message: { tool_calls: [{ id: "c", function: { name: "f", arguments: "[1]" } }] },
      }],
    },
  ];
  for (const body of bad) {
    assert.throws(() => toMessagesResponse(body, "m", "openai"), (err: unknown) => {
      assert.ok(err instanceof GatewayError);
      assert.equal(err.code, "upstream_error");
      assert.equal(err.status, 502);
      assert.match(err.message, /Provider "openai"/);
      return true;
    });
  }
});

Deno.test("toStopReason() maps OpenAI finish reasons", () => {
  const cases: [unknown, boolean, string][] = [
    ["stop", false, "end_turn"],
    ["length", false, "max_tokens"],
    ["tool_calls", true, "tool_use"],
    ["function_call", false, "tool_use"],
    ["content_filter", false, "refusal"],
    ["something_new", false, "end_turn"],
    [null, false, "end_turn"],
    ["stop", true, "tool_use"],
    ["length", true, "max_tokens"],
  ];
  for (const [finish, tools, expected] of cases) {
    assert.equal(toStopReason(finish, tools), expected, `${finish} (tools: ${tools})`);
  }
});

Deno.test("toMessagesUsage() splits canonical prompt tokens into input, cache reads and writes", () => {
  // Anthropic's input 12 + writes 300 + reads 40 = canonical prompt 352.
  assert.deepEqual(
    toMessagesUsage({
      prompt_tokens: 352,
      completion_tokens: 5,
      total_tokens: 357,
      prompt_tokens_details: { cached_tokens: 40, cache_write_tokens: 300 },
    }),
    {
      input_tokens: 12,
      output_tokens: 5,
      cache_creation_input_tokens: 300,
      cache_read_input_tokens: 40,
    },
  );
  // Inconsistent counts never go negative.
  const u = toMessagesUsage({
    prompt_tokens: 10,
    completion_tokens: 1,
    prompt_tokens_details: { cached_tokens: 8, cache_write_tokens: 50 },
  });
  assert.deepEqual([u.input_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens], [
    0,
    8,
    2,
  ]);
});

Deno.test("toMessagesResponse() gives an Anthropic message id back unchanged", () => {
  const body = {
    id: "chatcmpl-msg_01Abc",
    object: "chat.completion",
    created: 1,
    model: "m",
    choices: [{ index: 0, message: { role: "assistant", content: "x" }, finish_reason: "stop" }],
  };
  assert.equal(toMessagesResponse(body, "m", "up").id, "msg_01Abc");
  assert.equal(toMessagesResponse({ ...body, id: "chatcmpl-abc" }, "m", "up").id, "msg_abc");
});

// ---- Stream --------------------------------------------------------------------------------

for (const name of ["stream_text", "stream_tool_calls"]) {
  Deno.test(
    `toMessagesStream() translates ${name}.sse to the golden Anthropic events at 1, 7, 64 bytes`,
    SANITIZE,
    async (t) => {
      const sse = await fixture(`${name}.sse`);
      const golden = new TextDecoder().decode(await fixture(`${name}.anthropic.sse`));
      for (const n of CHUNK_SIZES) {
        await t.step(`${n}-byte chunks`, async () => {
          const { bytes, error } = await translate(sse, n);
          assert.equal(error, undefined);
          assert.equal(new TextDecoder().decode(bytes), golden);
        });
      }
      await t.step("CRLF line ends", async () => {
        const crlf = enc(new TextDecoder().decode(sse).replaceAll("\n", "\r\n"));
        const { bytes } = await translate(crlf, 7);
        assert.equal(new TextDecoder().decode(bytes), golden);
      });
    },
  );
}

Deno.test("toMessagesStream() golden tool stream follows Anthropic's event order", async () => {
  const events = parseAnthropicSse(await fixture("stream_tool_calls.anthropic.sse"));
  const names = events.map(([name]) => name);
  assert.equal(names[0], "message_start");
  assert.deepEqual(names.slice(-2), ["message_delta", "message_stop"]);
  assert.equal(assertSequentialBlocks(events), 3);
  const json = events
    .filter(([name, p]) => name === "content_block_delta" && p.index === 1)
    .map(([, p]) => (p.delta as { partial_json: string }).partial_json)
    .join("");
  assert.deepEqual(JSON.parse(json), { location: "Paris, FR", unit: "celsius" });
});

Deno.test(
  "toMessagesStream() ends an in-stream OpenAI error as a GatewayError",
  SANITIZE,
  async () => {
    const sse = enc(
      new TextDecoder().decode(await fixture("stream_error_midway.sse")).replace(
        "Sorry about that!",
        `key ${SECRET}`,
      ),
    );
    for (const n of CHUNK_SIZES) {
      const { bytes, error } = await translate(sse, n);
      assert.ok(error instanceof GatewayError, String(error));
      assert.equal(error.code, "upstream_error");
      assert.equal(error.info.upstreamType, "server_error");
      assert.match(error.message, /\[REDACTED\]/);
      assert.ok(!error.message.includes(SECRET));
      // What was said before the failure did reach the client.
      const events = parseAnthropicSse(bytes);
      assert.deepEqual(events.map(([name]) => name), [
        "message_start",
        "content_block_start",
        "content_block_delta",
      ]);
    }
  },
);

Deno.test("toMessagesStream() sends nothing before the first content", SANITIZE, async () => {
  // A failure right after the role chunk must leave routing free to fail over.
  const sse = enc(chunk({ delta: { role: "assistant", content: "" } }) + 'data: {"error":{}}\n\n');
  const { bytes, error } = await translate(sse, 64);
  assert.ok(error instanceof GatewayError);
  assert.equal(bytes.length, 0);
});

Deno.test(
  "toMessagesStream() refuses a stream that ends before it is complete",
  SANITIZE,
  async () => {
    const cases = [
      chunk({ delta: { content: "Half a sen" } }),
      chunk({ delta: { content: "x" } }) + "data: {not json}\n\n",
      chunk({ delta: { content: "x" } }) + "data: 42\n\n",
    ];
    for (const sse of cases) {
      const { error } = await translate(enc(sse), 7);
      assert.ok(error instanceof GatewayError, sse);
      assert.match(error.message, /Stream from provider "openai"/);
    }
  },
);

Deno.test(
  "toMessagesStream() completes without [DONE] once a finish reason arrived",
  SANITIZE,
  async () => {
    const sse = chunk({ delta: { content: "ok" } }) + chunk({ delta: {}, finish_reason: "length" });
    const { bytes, error } = await translate(enc(sse), 7);
    assert.equal(error, undefined);
    const events = parseAnthropicSse(bytes);
    assert.equal(events.at(-1)?.[0], "message_stop");
    const delta = events.at(-2)?.[1] as { delta: { stop_reason: string } };
    assert.equal(delta.delta.stop_reason, "max_tokens");
  },
);

Deno.test(
  "toMessagesStream() answers an empty completion with a valid empty message",
  SANITIZE,
  async () => {
    const sse = chunk({ delta: { role: "assistant" }, finish_reason: "stop" }) + "data: [DONE]\n\n";
    const { bytes } = await translate(enc(sse), 64);
    const events = parseAnthropicSse(bytes);
    assert.deepEqual(events.map(([name]) => name), [
      "message_start",
      "message_delta",
      "message_stop",
    ]);
    const start = events[0]?.[1] as { message: Record<string, unknown> };
    assert.equal(start.message.id, "msg_x1");
    assert.equal(start.message.model, "gpt-4o-mini");
    assert.deepEqual(start.message.content, []);
  },
);

Deno.test(
  "toMessagesStream() handles tool calls without an index and text after tools",
  SANITIZE,
  async () => {
    const sse = [
      chunk({ delta: { tool_calls: [{ id: "c1", function: { name: "a", arguments: '{"x":' } }] } }),
      chunk({ delta: { tool_calls: [{ function: { arguments: "1}" } }] } }),
      chunk({ delta: { tool_calls: [{ id: "c2", function: { name: "b", arguments: "{}" } }] } }),
      chunk({ delta: { content: "done" } }),
      chunk({ delta: {}, finish_reason: "stop" }),
      chunk(null, { usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } }),
      "data: [DONE]\n\n",
    ].join("");
    const events = parseAnthropicSse((await translate(enc(sse), 7)).bytes);
    const starts = events.filter(([n]) => n === "content_block_start").map(([, p]) => p);
    assert.deepEqual(starts.map((p) => [p.index, (p.content_block as { type: string }).type]), [
      [0, "tool_use"],
      [1, "tool_use"],
      [2, "text"],
    ]);
    const argsOf = (index: number) =>
      events.filter(([n, p]) => n === "content_block_delta" && p.index === index)
        .map(([, p]) => (p.delta as { partial_json: string }).partial_json).join("");
    assert.equal(argsOf(0), '{"x":1}');
    assert.equal(argsOf(1), "{}");
    const end = events.at(-2)?.[1] as { delta: { stop_reason: string }; usage: unknown };
    assert.equal(end.delta.stop_reason, "tool_use");
    assert.deepEqual(end.usage, {
      input_tokens: 5,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      output_tokens: 2,
    });
  },
);

Deno.test(
  "toMessagesStream() keeps blocks sequential when a server interleaves tool calls",
  SANITIZE,
  async () => {
    const call = (index: number, args: string, head?: { id: string; name: string }) => ({
      index,
      ...(head ? { id: head.id, type: "function" } : {}),
      function: { ...(head ? { name: head.name } : {}), arguments: args },
    });
    const sse = [
      chunk({
        delta: {
          tool_calls: [call(0, "", { id: "c0", name: "a" }), call(1, "", { id: "c1", name: "b" })],
        },
      }),
      chunk({ delta: { tool_calls: [call(0, '{"x":')] } }),
      chunk({ delta: { tool_calls: [call(1, '{"y":')] } }),
      chunk({ delta: { tool_calls: [call(0, "1}")] } }),
      chunk({ delta: { tool_calls: [call(2, "{}", { id: "c2", name: "c" })] } }),
      chunk({ delta: { tool_calls: [call(1, "2}")] } }),
      chunk({ delta: {}, finish_reason: "tool_calls" }),
      "data: [DONE]\n\n",
    ].join("");
    for (const n of CHUNK_SIZES) {
      const { bytes, error } = await translate(enc(sse), n);
      assert.equal(error, undefined);
      const events = parseAnthropicSse(bytes);
      assert.equal(assertSequentialBlocks(events), 3);
      const blocks = events.filter(([e]) => e === "content_block_start")
        .map(([, p]) => p.content_block as { id: string; name: string });
      assert.deepEqual(blocks.map((b) => [b.id, b.name]), [["c0", "a"], ["c1", "b"], ["c2", "c"]]);
      const argsOf = (index: number) =>
        events.filter(([e, p]) => e === "content_block_delta" && p.index === index)
          .map(([, p]) => (p.delta as { partial_json: string }).partial_json).join("");
      assert.deepEqual([argsOf(0), argsOf(1), argsOf(2)], ['{"x":1}', '{"y":2}', "{}"]);
    }
  },
);

Deno.test(
  "toMessagesStream() gives the estimate, not zeros, when the upstream sent no usage",
  SANITIZE,
  async () => {
    const sse = chunk({ delta: { content: "Hello there" } }) +
      chunk({ delta: {}, finish_reason: "stop" }) + "data: [DONE]\n\n";
    const stream = toMessagesStream(streamOf([enc(sse)]), {
      ...ctx,
      estimatedInput: () => 9,
      billed: () => ({ prompt_tokens: 0, completion_tokens: 3, total_tokens: 3, estimated: true }),
    });
    const events = parseAnthropicSse(new Uint8Array(await new Response(stream).arrayBuffer()));
    const start = events[0]?.[1] as { message: { usage: { input_tokens: number } } };
    assert.equal(start.message.usage.input_tokens, 9);
    const end = events.at(-2)?.[1] as { usage: Record<string, number> };
    assert.deepEqual(end.usage, {
      input_tokens: 9,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      output_tokens: 3,
    });
  },
);

Deno.test("toMessagesStream() cancelling the result cancels the upstream", SANITIZE, async () => {
  const { promise: cancelled, resolve } = Promise.withResolvers<unknown>();
  const upstream = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(enc(chunk({ delta: { content: "first" } })));
    },
    cancel: resolve,
  });
  const reader = toMessagesStream(upstream, ctx).getReader();
  await reader.read();
  await reader.cancel("client left");
  // The cancel travels back through each pipe stage; it arrives, whatever the reason says.
  await cancelled;
});

Deno.test(
  "toMessagesStream() a refusal streamed in OpenAI's refusal deltas ends with stop_reason refusal",
  SANITIZE,
  async () => {
    const refused = enc(
      chunk({ delta: { role: "assistant", refusal: "" } }) +
        chunk({ delta: { refusal: "I can't help" } }) +
        chunk({ delta: { refusal: " with that." } }) +
        chunk({ delta: {}, finish_reason: "stop" }) + "data: [DONE]\n\n",
    );
    const { bytes, error } = await translate(refused, 64);
    assert.equal(error, undefined);
    const events = parseAnthropicSse(bytes);
    const text = events
      .filter(([name]) => name === "content_block_delta")
      .map(([, p]) => (p.delta as { text: string }).text)
      .join("");
    assert.equal(text, "I can't help with that.");
    const delta = events.find(([name]) => name === "message_delta")![1].delta as Record<
      string,
      unknown
    >;
    assert.equal(delta.stop_reason, "refusal");
    // Content, then nothing refused: an ordinary end.
    const answered = enc(
      chunk({ delta: { role: "assistant", content: "Sure." } }) +
        chunk({ delta: {}, finish_reason: "stop" }) + "data: [DONE]\n\n",
    );
    const plain = parseAnthropicSse((await translate(answered, 64)).bytes);
    const end = plain.find(([name]) => name === "message_delta")![1].delta as Record<
      string,
      unknown
    >;
    assert.equal(end.stop_reason, "end_turn");
  },
);
