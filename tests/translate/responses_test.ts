/**
 * Golden translation fixtures, Responses API ↔ every upstream format: a Responses request
 * through the canonical chat form to each provider's request; each provider's JSON answer
 * and stream (re-chunked at 1, 7 and 64 bytes) back to a Responses object and event
 * sequence. Goldens live in tests/fixtures/responses/golden; generated ids and times are
 * replaced by stable placeholders. `UPDATE_GOLDEN=1` rewrites them (review the diff).
 */
import assert from "node:assert/strict";
import { toChatRequestFromResponses } from "../../src/translate/responses_to_openai.ts";
import {
  createResponsesStreamTransformer,
  type ResponsesContext,
  toResponsesObject,
} from "../../src/translate/openai_to_responses.ts";
import type { ResponsesObject, ResponsesRequest } from "../../src/schema/responses.ts";
import type { OpenAIChatChunk } from "../../src/schema/openai.ts";
import { toAnthropicRequest } from "../../src/providers/anthropic/request.ts";
import { fromAnthropicResponse } from "../../src/providers/anthropic/response.ts";
import { toOpenAIStream as anthropicStream } from "../../src/providers/anthropic/stream.ts";
import { toGeminiRequest } from "../../src/providers/gemini/request.ts";
import { fromGeminiResponse } from "../../src/providers/gemini/response.ts";
import { toOpenAIStream as geminiStream } from "../../src/providers/gemini/stream.ts";
import { toConverseRequest } from "../../src/providers/bedrock/request.ts";
import { fromConverseResponse } from "../../src/providers/bedrock/response.ts";
import { toOpenAIStream as bedrockStream } from "../../src/providers/bedrock/stream.ts";
import { decodeOpenAISse } from "../../src/streaming/openai_sse.ts";
import { CONVERSE_TOOL_USE, eventFrame, STREAM_TOOL_USE } from "../fakes/fake_bedrock.ts";
import { CHUNK_SIZES, concatBytes, rechunk, streamOf } from "../helpers/chunk.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url);
const GOLDEN = new URL("../fixtures/responses/golden/", import.meta.url);
const UPDATE = Deno.env.get("UPDATE_GOLDEN") === "1";
const redact = (text: string) => text;

const readText = (path: string) => Deno.readTextFile(new URL(path, FIXTURES));
const readJson = async (path: string) => JSON.parse(await readText(path));

/** Compare `actual` with the golden file `name` (or write it with UPDATE_GOLDEN=1). */
async function golden(name: string, actual: string): Promise<void> {
  const url = new URL(name, GOLDEN);
  if (UPDATE) await Deno.writeTextFile(url, actual);
  assert.equal(actual, await Deno.readTextFile(url), `golden ${name}`);
}

const json = (v: unknown) => JSON.stringify(v, null, 2) + "\n";

/**
 * Generated ids (`resp_`, `msg_`, `fc_` + 32 hex; Gemini's `call_` + 24) → `<resp_1>`, … by
 * first appearance.
 */
function stable(text: string): string {
  const seen = new Map<string, string>();
  const counts: Record<string, number> = {};
  const ids = /\b(resp|msg|fc)_[0-9a-f]{32}\b|\b(call)_[0-9a-z]{24}\b/g;
  return text.replace(ids, (id, ours: string | undefined, theirs: string | undefined) => {
    const kind = ours ?? theirs ?? "id";
    let name = seen.get(id);
    if (name === undefined) {
      counts[kind] = (counts[kind] ?? 0) + 1;
      name = `<${kind}_${counts[kind]}>`;
      seen.set(id, name);
    }
    return name;
  });
}

function context(request: ResponsesRequest, provider: string): ResponsesContext {
  return {
    id: "resp_00000000000000000000000000000000",
    createdAt: 1_700_000_000,
    model: request.model,
    request,
    provider,
    redact,
  };
}

Deno.test("a Responses request becomes each provider's request (golden)", async (t) => {
  const request = await readJson("responses/request_tools.json") as ResponsesRequest;
  const chat = toChatRequestFromResponses(request, [], "any");
  await t.step("canonical chat request", () => golden("request.chat.json", json(chat)));
  await t.step(
    "Anthropic Messages",
    () => golden("request.anthropic.json", json(toAnthropicRequest(chat, "claude-x", "anthropic"))),
  );
  // Converse has no switch for parallel tool calls and no JSON mode common to its models:
  // the request without them shows its message and tool translation.
  const { response_format: _format, parallel_tool_calls: _parallel, ...plain } = chat;
  await t.step(
    "Gemini generateContent",
    () => golden("request.gemini.json", json(toGeminiRequest({ ...chat }, "gemini"))),
  );
  await t.step(
    "Bedrock Converse",
    () => golden("request.bedrock.json", json(toConverseRequest(plain, "bedrock"))),
  );
});

Deno.test("each provider's JSON answer becomes a Responses object (golden)", async (t) => {
  const request: ResponsesRequest = { model: "any/model", input: "Weather in Paris?" };
  const cases: [string, () => Promise<Record<string, unknown>>][] = [
    ["openai", () => readJson("openai/response_tool_calls.json")],
    [
      "anthropic",
      async () =>
        fromAnthropicResponse(
          await readJson("anthropic/response_tool_use.json"),
          "claude-x",
          undefined,
          "anthropic",
        ) as unknown as Record<string, unknown>,
    ],
    [
      "gemini",
      async () =>
        fromGeminiResponse(await readJson("gemini/response_function_call.json"), "gemini-x", {
          provider: "gemini",
        }) as unknown as Record<string, unknown>,
    ],
    [
      "bedrock",
      () =>
        Promise.resolve(
          fromConverseResponse(CONVERSE_TOOL_USE, {
            model: "bedrock-x",
            id: "bedrock-id",
            provider: "bedrock",
          }) as unknown as Record<string, unknown>,
        ),
    ],
  ];
  for (const [provider, completion] of cases) {
    await t.step(provider, async () => {
      const object = toResponsesObject(await completion(), context(request, provider));
      await golden(`response.${provider}.json`, stable(json(object)));
    });
  }
});

Deno.test("each provider's stream becomes the Responses event sequence, at 1, 7 and 64 bytes", async (t) => {
  const request: ResponsesRequest = { model: "any/model", input: "Weather?", stream: true };
  const bedrockBytes = concatBytes(STREAM_TOOL_USE.map(eventFrame));
  const cases: [
    string,
    Uint8Array,
    (body: ReadableStream<Uint8Array>) => ReadableStream<OpenAIChatChunk>,
  ][] = [
    [
      "openai",
      await Deno.readFile(new URL("openai/stream_tool_calls.sse", FIXTURES)),
      (body) => decodeOpenAISse(body, "openai", redact),
    ],
    [
      "anthropic",
      await Deno.readFile(new URL("anthropic/stream_tool_use.sse", FIXTURES)),
      (body) =>
        anthropicStream(body, {
          model: "claude-x",
          includeUsage: true,
          onUsage: () => {},
          provider: "anthropic",
          redact,
        }),
    ],
    [
      "gemini",
      await Deno.readFile(new URL("gemini/stream_function_call.sse", FIXTURES)),
      (body) => {
        let n = 0;
        return geminiStream(body, {
          model: "gemini-x",
          includeUsage: true,
          onUsage: () => {},
          provider: "gemini",
          redact,
          created: 1_700_000_000,
          newId: () => `call_gemini_${++n}`,
        });
      },
    ],
    [
      "bedrock",
      bedrockBytes,
      (body) =>
        bedrockStream(body, {
          model: "bedrock-x",
          id: "chatcmpl-bedrock",
          includeUsage: true,
          onUsage: () => {},
          provider: "bedrock",
          redact,
          created: 1_700_000_000,
        }),
    ],
  ];
  for (const [provider, bytes, decode] of cases) {
    await t.step(provider, async () => {
      for (const size of CHUNK_SIZES) {
        let kept: ResponsesObject | null = null;
        const encoder = createResponsesStreamTransformer(
          context(request, provider),
          (r) => kept = r,
        );
        const out = decode(streamOf(rechunk(bytes, size))).pipeThrough(encoder.stream);
        const text = stable(await new Response(out).text());
        await golden(`stream.${provider}.sse`, text);
        // The final object is the stored one, and the last event carries it.
        assert.ok(kept !== null);
        const last = text.trim().split("\n\n").at(-1)!;
        assert.equal(
          stable(JSON.stringify(JSON.parse(last.split("\ndata: ")[1]!).response)),
          stable(JSON.stringify(kept)),
        );
      }
    });
  }
});

Deno.test("a function call without arguments is {} in the Responses object and stream", async () => {
  const request = { model: "m", input: "hi" } as ResponsesRequest;
  const completion = {
    id: "c",
    object: "chat.completion",
    created: 1,
    model: "m",
    choices: [{
      index: 0,
      message: {
        role: "assistant",
        content: null,
        tool_calls: [{ id: "call_1", type: "function", function: { name: "now", arguments: "" } }],
      },
      finish_reason: "tool_calls",
    }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  };
  const object = toResponsesObject(completion, context(request, "p"));
  assert.equal((object.output[0] as { arguments?: string }).arguments, "{}");

  const chunks: OpenAIChatChunk[] = [
    {
      id: "c",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      choices: [{
        index: 0,
        delta: {
          tool_calls: [{
            index: 0,
            id: "call_1",
            type: "function",
            function: { name: "now", arguments: "" },
          }],
        },
        finish_reason: null,
      }],
    } as OpenAIChatChunk,
    {
      id: "c",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      choices: [{ index: 0, delta: {}, finish_reason: "tool_calls" }],
    } as OpenAIChatChunk,
  ];
  const t = createResponsesStreamTransformer(context(request, "p"), () => {});
  const text = new TextDecoder().decode(
    concatBytes(await Array.fromAsync(ReadableStream.from(chunks).pipeThrough(t.stream))),
  );
  const done = text.split("\n").find((l) => l.includes('function_call_arguments.done"'));
  assert.ok(done?.includes('"arguments":"{}"'), String(done));
  assert.ok(text.includes('"delta":"{}"'));
});

/** Chat chunks of one choice, each with `delta` (and a finish reason on the last). */
function chunksOf(deltas: Record<string, unknown>[], finish: string): OpenAIChatChunk[] {
  return deltas.map((delta, i) =>
    ({
      id: "c",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      choices: [{ index: 0, delta, finish_reason: i === deltas.length - 1 ? finish : null }],
    }) as OpenAIChatChunk
  );
}

/** The events of `chunks` translated, parsed, and the final response object. */
async function eventsOf(chunks: OpenAIChatChunk[]) {
  let final: ResponsesObject | null = null;
  const request = { model: "m", input: "hi" } as ResponsesRequest;
  const t = createResponsesStreamTransformer(context(request, "p"), (r) => (final = r));
  const text = new TextDecoder().decode(
    concatBytes(await Array.fromAsync(ReadableStream.from(chunks).pipeThrough(t.stream))),
  );
  const events = text.split("\n").filter((l) => l.startsWith("data: "))
    .map((l) => JSON.parse(l.slice(6)) as Record<string, unknown>);
  return { events, final: final as ResponsesObject | null };
}

Deno.test("interleaved parallel tool calls keep each call's arguments, no delta after its done", async () => {
  const call = (index: number, fields: Record<string, unknown>) => ({
    tool_calls: [{ index, ...fields }],
  });
  const { events, final } = await eventsOf(chunksOf([
    call(0, { id: "call_a", type: "function", function: { name: "weather", arguments: "" } }),
    call(1, { id: "call_b", type: "function", function: { name: "weather", arguments: "" } }),
    call(0, { function: { arguments: '{"city":' } }),
    call(1, { function: { arguments: '{"city":' } }),
    call(0, { function: { arguments: '"Paris"}' } }),
    call(1, { function: { arguments: '"Rome"}' } }),
  ], "tool_calls"));
  const args = final!.output.map((o) => (o as { arguments?: string }).arguments);
  assert.deepEqual(args, ['{"city":"Paris"}', '{"city":"Rome"}']);
  const closed = new Set<number>();
  for (const e of events) {
    if (e.type === "response.output_item.done") closed.add(e.output_index as number);
    if (e.type === "response.function_call_arguments.delta") {
      assert.ok(!closed.has(e.output_index as number), `delta after done: ${JSON.stringify(e)}`);
    }
  }
  const done = events.filter((e) => e.type === "response.function_call_arguments.done");
  assert.deepEqual(done.map((e) => e.arguments), ['{"city":"Paris"}', '{"city":"Rome"}']);
  assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
});

Deno.test("a stream cut at its length limit marks its items incomplete, as the JSON answer does", async () => {
  const { events, final } = await eventsOf(
    chunksOf([{ role: "assistant", content: "Hel" }, { content: "lo" }], "length"),
  );
  assert.equal(final!.status, "incomplete");
  assert.equal((final!.output[0] as { status: string }).status, "incomplete");
  const done = events.find((e) => e.type === "response.output_item.done");
  assert.equal((done!.item as { status: string }).status, "incomplete");
});

Deno.test("a refusal is a refusal part, not output_text, in the Responses object and stream", async () => {
  const request = { model: "m", input: "hi" } as ResponsesRequest;
  const object = toResponsesObject({
    id: "c",
    object: "chat.completion",
    created: 1,
    model: "m",
    choices: [{
      index: 0,
      message: { role: "assistant", content: null, refusal: "I can't help with that." },
      finish_reason: "stop",
    }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  }, context(request, "p"));
  assert.deepEqual((object.output[0] as { content: unknown }).content, [
    { type: "refusal", refusal: "I can't help with that." },
  ]);

  const { events, final } = await eventsOf(
    chunksOf([{ role: "assistant", refusal: "I can't" }, { refusal: " help." }], "stop"),
  );
  assert.deepEqual(events.map((e) => e.type), [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.refusal.delta",
    "response.refusal.delta",
    "response.refusal.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
  ]);
  assert.deepEqual(events[3]!.part, { type: "refusal", refusal: "" });
  assert.equal(events[6]!.refusal, "I can't help.");
  assert.deepEqual((final!.output[0] as { content: unknown }).content, [
    { type: "refusal", refusal: "I can't help." },
  ]);
});
