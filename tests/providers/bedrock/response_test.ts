import assert from "node:assert/strict";
import {
  fromConverseResponse,
  toFinishReason,
  toOpenAIUsage,
} from "../../../src/providers/bedrock/response.ts";
import { CONVERSE_TEXT, CONVERSE_TOOL_USE } from "../../fakes/fake_bedrock.ts";
import { gatewayError } from "./helpers.ts";
import { completionDetails } from "../../helpers/usage_details.ts";

const CTX = {
  model: "us.anthropic.claude-sonnet-4-5",
  id: "req-1",
  provider: "bedrock",
  created: 1,
};

Deno.test("fromConverseResponse() maps a text answer", () => {
  assert.deepEqual(fromConverseResponse(CONVERSE_TEXT, CTX), {
    id: "chatcmpl-req-1",
    object: "chat.completion",
    created: 1,
    model: "us.anthropic.claude-sonnet-4-5",
    choices: [{
      index: 0,
      message: { role: "assistant", content: "Hello from Bedrock", refusal: null },
      logprobs: null,
      finish_reason: "stop",
    }],
    usage: {
      prompt_tokens: 11,
      completion_tokens: 4,
      total_tokens: 15,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: completionDetails(),
    },
    system_fingerprint: null,
  });
});

Deno.test("fromConverseResponse() maps toolUse blocks to tool_calls", () => {
  const out = fromConverseResponse(CONVERSE_TOOL_USE, CTX);
  assert.deepEqual(out.choices[0].message, {
    role: "assistant",
    content: "Let me check.",
    refusal: null,
    tool_calls: [{
      id: "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
      type: "function",
      function: { name: "get_weather", arguments: '{"location":"Paris","unit":"celsius"}' },
    }],
  });
  assert.equal(out.choices[0].finish_reason, "tool_calls");
});

Deno.test("fromConverseResponse() gives null content beside tool calls alone", () => {
  const out = fromConverseResponse({
    output: {
      message: {
        role: "assistant",
        content: [
          { reasoningContent: { reasoningText: { text: "hmm" } } },
          { toolUse: { toolUseId: "t", name: "f", input: {} } },
        ],
      },
    },
    stopReason: "tool_use",
    usage: { inputTokens: 1, outputTokens: 1, totalTokens: 2 },
  }, CTX);
  assert.equal(out.choices[0].message.content, null);
  assert.equal(out.choices[0].message.tool_calls?.[0]?.function.arguments, "{}");
});

Deno.test("toFinishReason() maps every Converse stopReason", () => {
  const cases: [unknown, string | null][] = [
    ["end_turn", "stop"],
    ["stop_sequence", "stop"],
    ["max_tokens", "length"],
    ["model_context_window_exceeded", "length"],
    ["tool_use", "tool_calls"],
    ["guardrail_intervened", "content_filter"],
    ["content_filtered", "content_filter"],
    ["malformed_model_output", "stop"],
    ["something_new", "stop"],
    [undefined, null],
  ];
  for (const [reason, finish] of cases) assert.equal(toFinishReason(reason), finish, `${reason}`);
});

Deno.test("toOpenAIUsage() counts cache reads and writes as prompt tokens", () => {
  assert.deepEqual(
    toOpenAIUsage({
      inputTokens: 10,
      outputTokens: 5,
      totalTokens: 1015,
      cacheReadInputTokens: 800,
      cacheWriteInputTokens: 200,
    }),
    {
      prompt_tokens: 1010,
      completion_tokens: 5,
      total_tokens: 1015,
      prompt_tokens_details: { cached_tokens: 800, audio_tokens: 0, cache_write_tokens: 200 },
      completion_tokens_details: completionDetails(),
    },
  );
  assert.deepEqual(toOpenAIUsage(undefined), {
    prompt_tokens: 0,
    completion_tokens: 0,
    total_tokens: 0,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: completionDetails(),
  });
});

Deno.test("fromConverseResponse() refuses a body that is not a Converse answer", async () => {
  const err = await gatewayError(() => fromConverseResponse({ message: "hi" }, CTX));
  assert.equal(err.code, "upstream_error");
  assert.match(err.message, /not a Converse response/);
});

Deno.test("fromConverseResponse() estimates reasoning_tokens from reasoning text, within outputTokens", () => {
  const answer = (reasoning: unknown[], outputTokens: number) => ({
    output: {
      message: {
        role: "assistant",
        content: [...reasoning, { text: "12,231" }],
      },
    },
    stopReason: "end_turn",
    usage: { inputTokens: 10, outputTokens, totalTokens: 10 + outputTokens },
  });
  const thought = { reasoningContent: { reasoningText: { text: "x".repeat(40), signature: "s" } } };
  // 40 characters ~ 10 tokens; the output stays as reported.
  let usage = fromConverseResponse(answer([thought], 30), CTX).usage;
  assert.equal(usage.completion_tokens, 30);
  assert.deepEqual(usage.completion_tokens_details, completionDetails(10));
  // Never more than the output reported.
  usage = fromConverseResponse(answer([thought], 4), CTX).usage;
  assert.deepEqual(usage.completion_tokens_details, completionDetails(4));
  // Redacted reasoning has no text: none counted (OpenAI's zeros, as with no reasoning).
  usage = fromConverseResponse(answer([{ reasoningContent: { redactedContent: "AAAA" } }], 30), CTX)
    .usage;
  assert.equal(usage.completion_tokens_details.reasoning_tokens, 0);
  assert.equal(
    fromConverseResponse(answer([], 30), CTX).usage.completion_tokens_details.reasoning_tokens,
    0,
  );
});
