import assert from "node:assert/strict";
import {
  fromAnthropicResponse,
  toFinishReason,
  toOpenAIUsage,
} from "../../../src/providers/anthropic/response.ts";
import { fixtureJson, gatewayError } from "./helpers.ts";
import { completionDetails } from "../../helpers/usage_details.ts";

const CREATED = 1_700_000_000;

Deno.test("fromAnthropicResponse() translates a text answer", async () => {
  const out = fromAnthropicResponse(
    await fixtureJson("response_text.json"),
    "claude-x",
    CREATED,
  );
  assert.deepEqual(out, {
    id: "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL",
    object: "chat.completion",
    created: CREATED,
    model: "claude-sonnet-4-5-20250929",
    choices: [{
      index: 0,
      message: { role: "assistant", content: "Hello! How can I help you today?", refusal: null },
      logprobs: null,
      finish_reason: "stop",
    }],
    usage: {
      // 12 uncached + 20 written to the cache + 100 read from it
      prompt_tokens: 132,
      completion_tokens: 10,
      total_tokens: 142,
      prompt_tokens_details: { cached_tokens: 100, audio_tokens: 0, cache_write_tokens: 20 },
      completion_tokens_details: completionDetails(),
    },
    system_fingerprint: null,
  });
});

Deno.test("fromAnthropicResponse() names the stop sequence that ended the answer", async (t) => {
  const message = (extra: Record<string, unknown>) => ({
    id: "msg_s",
    type: "message",
    role: "assistant",
    model: "claude-x",
    content: [{ type: "text", text: "1, 2, 3" }],
    usage: { input_tokens: 3, output_tokens: 5 },
    ...extra,
  });
  const cases: [string, Record<string, unknown>, string | null | undefined][] = [
    ["a stop sequence, named", { stop_reason: "stop_sequence", stop_sequence: "END" }, "END"],
    ["a stop sequence, unnamed", { stop_reason: "stop_sequence", stop_sequence: null }, null],
    ["a natural end", { stop_reason: "end_turn", stop_sequence: null }, undefined],
    ["a length stop", { stop_reason: "max_tokens", stop_sequence: null }, undefined],
  ];
  for (const [label, extra, expected] of cases) {
    await t.step(label, () => {
      const choice = fromAnthropicResponse(message(extra), "claude-x", CREATED).choices[0];
      assert.equal(choice.stop_sequence, expected);
      assert.equal("stop_sequence" in choice, expected !== undefined);
    });
  }
});

Deno.test("fromAnthropicResponse() translates tool_use blocks to tool_calls", async () => {
  const out = fromAnthropicResponse(
    await fixtureJson("response_tool_use.json"),
    "claude-x",
    CREATED,
  );
  const choice = out.choices[0];
  assert.equal(choice.finish_reason, "tool_calls");
  assert.equal(choice.message.content, "I'll check the weather in San Francisco.");
  assert.deepEqual(choice.message.tool_calls, [
    {
      id: "toolu_01A09q90qw90lq917835lq9",
      type: "function",
      function: {
        name: "get_weather",
        arguments: JSON.stringify({ location: "San Francisco, CA", unit: "celsius" }),
      },
    },
    {
      id: "toolu_01B7fq2w3e4r5t6y7u8i9o0p",
      type: "function",
      function: { name: "get_time", arguments: "{}" },
    },
  ]);
  assert.deepEqual(out.usage, {
    prompt_tokens: 472,
    completion_tokens: 89,
    total_tokens: 561,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: completionDetails(),
  });
});

Deno.test("fromAnthropicResponse() gives null content when the answer is only tool calls", () => {
  const out = fromAnthropicResponse(
    {
      id: "msg_1",
      type: "message",
      role: "assistant",
      model: "claude-x",
      content: [
        { type: "thinking", thinking: "…", signature: "sig" },
        { type: "tool_use", id: "toolu_9", name: "f", input: { a: 1 } },
      ],
      stop_reason: "tool_use",
      usage: { input_tokens: 3, output_tokens: 4 },
    },
    "claude-x",
    CREATED,
  );
  assert.equal(out.choices[0].message.content, null);
  assert.equal(out.choices[0].message.tool_calls?.[0]?.function.arguments, '{"a":1}');
});

Deno.test("fromAnthropicResponse() gives empty content for an empty answer", () => {
  const out = fromAnthropicResponse(
    { id: "msg_2", content: [], stop_reason: "end_turn", usage: { input_tokens: 1 } },
    "claude-fallback",
    CREATED,
  );
  assert.equal(out.choices[0].message.content, "");
  assert.equal(out.choices[0].message.tool_calls, undefined);
  assert.equal(out.model, "claude-fallback");
  assert.deepEqual(out.usage, {
    prompt_tokens: 1,
    completion_tokens: 0,
    total_tokens: 1,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: completionDetails(),
  });
});

Deno.test("toFinishReason() maps every Anthropic stop_reason", () => {
  const cases: [unknown, string | null][] = [
    ["end_turn", "stop"],
    ["stop_sequence", "stop"],
    ["pause_turn", "stop"],
    ["max_tokens", "length"],
    ["model_context_window_exceeded", "length"],
    ["tool_use", "tool_calls"],
    ["refusal", "content_filter"],
    ["something_new", "stop"],
    [null, null],
  ];
  for (const [reason, expected] of cases) {
    assert.equal(toFinishReason(reason), expected, `${reason}`);
  }
});

Deno.test("toOpenAIUsage() tolerates missing and null counts", () => {
  assert.deepEqual(toOpenAIUsage(undefined), {
    prompt_tokens: 0,
    completion_tokens: 0,
    total_tokens: 0,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: completionDetails(),
  });
  assert.deepEqual(
    toOpenAIUsage({
      input_tokens: 5,
      output_tokens: 2,
      cache_creation_input_tokens: null,
      cache_read_input_tokens: null,
    }),
    {
      prompt_tokens: 5,
      completion_tokens: 2,
      total_tokens: 7,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: completionDetails(),
    },
  );
});

Deno.test("fromAnthropicResponse() refuses a body that is not a message", async () => {
  for (const body of [null, "text", { type: "error" }, { id: "x", content: "no" }]) {
    const err = await gatewayError(() => fromAnthropicResponse(body, "m", CREATED, "claude"));
    assert.equal(err.code, "upstream_error");
    assert.equal(err.status, 502);
    assert.equal(err.info.provider, "claude");
  }
});

Deno.test("fromAnthropicResponse() estimates reasoning_tokens from thinking text, within output_tokens", () => {
  const answer = (outputTokens: number) => ({
    id: "msg_r",
    content: [
      { type: "thinking", thinking: "y".repeat(400), signature: "sig" },
      { type: "redacted_thinking", data: "encrypted" },
      { type: "text", text: "Done." },
    ],
    stop_reason: "end_turn",
    usage: { input_tokens: 5, output_tokens: outputTokens },
  });
  // 400 characters ~ 100 tokens.
  let usage = fromAnthropicResponse(answer(150), "claude-x", CREATED).usage;
  assert.equal(usage.completion_tokens, 150, "the output as Claude reported it");
  assert.deepEqual(usage.completion_tokens_details, completionDetails(100));
  // Capped: never more than the output Claude counted.
  usage = fromAnthropicResponse(answer(40), "claude-x", CREATED).usage;
  assert.equal(usage.completion_tokens, 40);
  assert.deepEqual(usage.completion_tokens_details, completionDetails(40));
});
