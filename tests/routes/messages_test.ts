/**
 * `POST /v1/messages` answers that go through the canonical (OpenAI) form: a stage rewrote
 * the request, read the answer, or wants the stream's chunks, or the provider does not speak
 * the Messages API. What ended the answer must survive the round trip.
 * @module
 */
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
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

Deno.test("/v1/chat/completions: the same answer has OpenAI's fields only (no stop_sequence)", async (t) => {
  for (const stream of [false, true]) {
    await t.step(stream ? "stream" : "JSON", async () => {
      const gw = gateway({ handler: claudeStoppingOn("END") });
      const res = await gw.request(
        "/v1/chat/completions",
        post({
          model: "claude/claude-x",
          messages: [{ role: "user", content: "count" }],
          stop: ["END"],
          stream,
        }),
      );
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.ok(!text.includes("stop_sequence"), text);
      assert.match(text, /"finish_reason":"stop"/);
    });
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

// ---- 400s name the client's fields --------------------------------------------------------

/** Two more providers: Gemini, and OpenAI's API answering 400s as OpenAI does (with `param`). */
const ERRORS_CONFIG = CONFIG.replace(
  "routing:",
  `  gem: { type: gemini, base_url: "http://gem.test/v1beta", keys: [{ key: gm-key-0003 }] }
  openai: { type: openai, base_url: "http://oai.test/v1", keys: [{ key: sk-oai-0004 }] }
routing:`,
);

/** OpenAI's 400 for what the client got wrong, in OpenAI's words, naming chat's field. */
const OPENAI_400: Handler = (url, init) => {
  if (!url.startsWith("http://oai.test/")) return UPSTREAM(url, init);
  const body = JSON.parse(String(init.body));
  const error = (param: string, message: string) =>
    Response.json({ error: { message, type: "invalid_request_error", param, code: null } }, {
      status: 400,
    });
  if (Array.isArray(body.stop) && body.stop.length > 4) {
    return error(
      "stop",
      `Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length ${body.stop.length} instead.`,
    );
  }
  if (body.max_completion_tokens > 16384) {
    return error(
      "max_completion_tokens",
      `max_completion_tokens is too large: ${body.max_completion_tokens}. This model supports at most 16384 completion tokens.`,
    );
  }
  const long = body.messages.findIndex((m: { content: unknown }) =>
    typeof m.content === "string" && m.content.length > 20
  );
  return error(
    `messages[${long}].content`,
    `Invalid 'messages[${long}].content': string too long. Expected a string with maximum length 20.`,
  );
};

/** A conversation whose chat form shifts every index: a system prompt, a tool result. */
const HISTORY = [
  { role: "user", content: "Weather?" },
  {
    role: "assistant",
    content: [{ type: "tool_use", id: "toolu_1", name: "weather", input: { city: "Oslo" } }],
  },
  {
    role: "user",
    content: [
      { type: "tool_result", tool_use_id: "toolu_1", content: "sunny and far too verbose" },
      { type: "text", text: "Thanks. And this one?" },
      { type: "image", source: { type: "url", url: "ftp://example.com/a.png" } },
    ],
  },
];

Deno.test("/v1/messages: a 400 on the translated request names the field as the client sent it", async (t) => {
  const gw = gateway({ config: ERRORS_CONFIG, handler: OPENAI_400 });
  const anthropic = new Anthropic({
    baseURL: "http://gateway.test",
    apiKey: "sk-client",
    maxRetries: 0,
    fetch: (input, init) => gw.request(String(input), init),
  });
  const tools = [{ name: "weather", input_schema: { type: "object" as const } }];
  /** The client's 400: Anthropic's envelope, as the SDK reads it; its message is returned. */
  const refused = async (body: Record<string, unknown>): Promise<string> => {
    const err = await anthropic.messages.create({
      max_tokens: 64,
      system: "Be brief.",
      messages: HISTORY,
      ...body,
    } as unknown as Anthropic.MessageCreateParamsNonStreaming).then(
      () => assert.fail("not refused"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof Anthropic.BadRequestError, String(err));
    const envelope = err.error as { type: string; error: { type: string; message: string } };
    assert.equal(envelope.type, "error");
    assert.equal(envelope.error.type, "invalid_request_error");
    assert.deepEqual(Object.keys(envelope.error).sort(), ["message", "type"]);
    return envelope.error.message;
  };
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    [
      "Gemini refuses an image URL: the client's block and its source.url",
      { model: "gem/gemini-x" },
      '"messages[2].content[2].source.url" must be a data: URL or an http(s) URL',
      /image_url|messages\[4\]/,
    ],
    [
      "Gemini refuses a tool schema: tools[i].input_schema",
      {
        model: "gem/gemini-x",
        messages: [{ role: "user", content: "Hi" }],
        tools: [{ name: "f", input_schema: { type: "object", properties: { a: { $ref: "#" } } } }],
      },
      '"tools[0].input_schema" refers to "#"',
      /function\.parameters/,
    ],
    [
      "OpenAI refuses a tool result: the client's tool_result block",
      { model: "openai/gpt-4o", tools },
      "Invalid 'messages[2].content[0].content': string too long.",
      /messages\[3\]/,
    ],
    [
      "OpenAI refuses the stop list: stop_sequences",
      {
        model: "openai/gpt-4o",
        messages: [{ role: "user", content: "Hi" }],
        stop_sequences: ["a", "b", "c", "d", "e"],
      },
      "Invalid 'stop_sequences': array too long.",
      /'stop'/,
    ],
    [
      "OpenAI refuses the limit: max_tokens",
      { model: "openai/gpt-4o", messages: [{ role: "user", content: "Hi" }], max_tokens: 20_000 },
      "max_tokens is too large: 20000.",
      /max_completion_tokens/,
    ],
  ];
  for (const [label, body, names, chat] of cases) {
    await t.step(label, async () => {
      const message = await refused(body);
      assert.ok(message.includes(names), message);
      assert.doesNotMatch(message, chat);
    });
  }

  await t.step("a streaming request's 400 names the client's field too", async () => {
    const message = await refused({ model: "gem/gemini-x", stream: true });
    assert.ok(message.includes('"messages[2].content[2].source.url"'), message);
  });

  await t.step("the client's own mistakes keep its indices (nothing to map back)", async () => {
    const message = await refused({
      model: "gem/gemini-x",
      messages: [
        { role: "user", content: "Hi" },
        {
          role: "user",
          content: [{
            type: "document",
            source: { type: "text", media_type: "text/plain", data: "d" },
          }],
        },
      ],
    });
    assert.ok(message.includes("messages[1].content[0]"), message);
  });

  await t.step("/v1/chat/completions keeps OpenAI's envelope and chat's names", async () => {
    const res = await gw.request(
      "/v1/chat/completions",
      post({
        model: "openai/gpt-4o",
        messages: [{ role: "user", content: "Hi" }],
        stop: [1, 2, 3, 4, 5].map(String),
      }),
    );
    assert.equal(res.status, 400);
    const body = await res.json();
    assert.equal(body.error.param, "stop");
    assert.match(body.error.message, /^Invalid 'stop': array too long/);
  });
});
