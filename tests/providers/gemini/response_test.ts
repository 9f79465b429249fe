import assert from "node:assert/strict";
import {
  fromGeminiResponse,
  toFinishReason,
  toOpenAIUsage,
} from "../../../src/providers/gemini/response.ts";
import { counterIds, fixtureJson, gatewayError } from "./helpers.ts";
import { completionDetails } from "../../helpers/usage_details.ts";

const CREATED = 1_700_000_000;

const opts = () => ({ created: CREATED, newId: counterIds() });

Deno.test("fromGeminiResponse() translates a text answer with cached and thinking tokens", async () => {
  const out = fromGeminiResponse(await fixtureJson("response_text.json"), "gemini-x", opts());
  assert.deepEqual(out, {
    id: "chatcmpl-mNfVaLq3A8SO1MkPyq2o0Qc",
    object: "chat.completion",
    created: CREATED,
    model: "gemini-2.5-flash",
    choices: [{
      index: 0,
      message: { role: "assistant", content: "Hello! How can I help you today?", refusal: null },
      logprobs: null,
      finish_reason: "stop",
    }],
    usage: {
      // promptTokenCount already includes the 100 cached tokens.
      prompt_tokens: 132,
      // 10 candidate tokens + 28 thinking tokens, billed as output.
      completion_tokens: 38,
      total_tokens: 170,
      prompt_tokens_details: { cached_tokens: 100, audio_tokens: 0 },
      completion_tokens_details: completionDetails(28),
    },
    system_fingerprint: null,
  });
});

Deno.test("fromGeminiResponse() translates functionCall parts to tool_calls", async () => {
  const out = fromGeminiResponse(
    await fixtureJson("response_function_call.json"),
    "gemini-x",
    opts(),
  );
  const choice = out.choices[0];
  assert.equal(choice.finish_reason, "tool_calls");
  assert.equal(choice.message.content, "I'll check the weather and the time.");
  assert.deepEqual(choice.message.tool_calls, [
    {
      id: "call_id0",
      type: "function",
      function: {
        name: "get_weather",
        arguments: JSON.stringify({ location: "San Francisco, CA", unit: "celsius" }),
      },
      extra_content: {
        google: { thought_signature: "CtwBAVSoXO5fQvKx3M0Zt1e0q2u9VJfZ0cYh8n1pB4zQe6Wm" },
      },
    },
    { id: "call_id1", type: "function", function: { name: "get_time", arguments: "{}" } },
  ]);
  assert.deepEqual(out.usage, {
    prompt_tokens: 472,
    completion_tokens: 89,
    total_tokens: 561,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: completionDetails(28),
  });
});

Deno.test("fromGeminiResponse() uses Gemini's call id and random ids by default", () => {
  const body = {
    candidates: [{
      content: {
        parts: [
          { functionCall: { id: "fc_7", name: "f", args: { a: 1 } } },
          { functionCall: { name: "g" } },
          { functionCall: { name: "g" } },
        ],
      },
      finishReason: "STOP",
    }],
  };
  const calls = fromGeminiResponse(body, "gemini-x").choices[0].message.tool_calls ?? [];
  assert.equal(calls[0]?.id, "fc_7");
  assert.equal(calls[0]?.function.arguments, '{"a":1}');
  assert.match(calls[1]?.id ?? "", /^call_[a-z0-9]{24}$/);
  assert.notEqual(calls[1]?.id, calls[2]?.id);
  assert.equal(calls[1]?.function.arguments, "{}");
});

Deno.test("fromGeminiResponse() leaves thought summaries out of the answer", () => {
  const out = fromGeminiResponse(
    {
      candidates: [{
        content: {
          role: "model",
          parts: [
            { text: "**Weighing options**\nThe user wants...", thought: true },
            { text: "Go with B." },
            { executableCode: { language: "PYTHON", code: "print(1)" } },
          ],
        },
        finishReason: "STOP",
      }],
      usageMetadata: { promptTokenCount: 5, candidatesTokenCount: 4, thoughtsTokenCount: 50 },
    },
    "gemini-fallback",
    opts(),
  );
  assert.equal(out.choices[0].message.content, "Go with B.");
  assert.equal(out.model, "gemini-fallback");
  assert.equal(out.id, "chatcmpl-id0");
  assert.equal(out.usage.completion_tokens, 54);
});

Deno.test("fromGeminiResponse() reports a blocked prompt as an empty filtered answer", async () => {
  const out = fromGeminiResponse(await fixtureJson("response_blocked.json"), "gemini-x", opts());
  assert.equal(out.choices[0].message.content, "");
  assert.equal(out.choices[0].finish_reason, "content_filter");
  assert.equal(out.usage.prompt_tokens, 9);
});

Deno.test("fromGeminiResponse() gives empty content for a candidate stopped by safety", () => {
  const out = fromGeminiResponse(
    { candidates: [{ finishReason: "SAFETY", index: 0 }] },
    "gemini-x",
    opts(),
  );
  assert.equal(out.choices[0].message.content, "");
  assert.equal(out.choices[0].finish_reason, "content_filter");
  assert.equal(out.choices[0].message.tool_calls, undefined);
});

Deno.test("toFinishReason() maps every Gemini finishReason", () => {
  const cases: [unknown, boolean, string | null][] = [
    ["STOP", false, "stop"],
    ["STOP", true, "tool_calls"],
    ["MAX_TOKENS", false, "length"],
    ["MAX_TOKENS", true, "length"],
    ["SAFETY", false, "content_filter"],
    ["RECITATION", false, "content_filter"],
    ["BLOCKLIST", false, "content_filter"],
    ["PROHIBITED_CONTENT", false, "content_filter"],
    ["SPII", true, "content_filter"],
    ["IMAGE_SAFETY", false, "content_filter"],
    ["LANGUAGE", false, "stop"],
    ["OTHER", false, "stop"],
    ["MALFORMED_FUNCTION_CALL", false, "stop"],
    ["FINISH_REASON_UNSPECIFIED", false, "stop"],
    ["SOMETHING_NEW", true, "tool_calls"],
    [undefined, false, null],
  ];
  for (const [reason, tools, expected] of cases) {
    assert.equal(toFinishReason(reason, tools), expected, `${reason} (tools: ${tools})`);
  }
});

Deno.test("toOpenAIUsage() adds tool-use prompt tokens and tolerates missing counts", () => {
  assert.deepEqual(toOpenAIUsage(undefined), {
    prompt_tokens: 0,
    completion_tokens: 0,
    total_tokens: 0,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: completionDetails(),
  });
  assert.deepEqual(
    toOpenAIUsage({
      promptTokenCount: 10,
      toolUsePromptTokenCount: 90,
      candidatesTokenCount: 5,
      totalTokenCount: 105,
      thoughtsTokenCount: null,
    }),
    {
      prompt_tokens: 100,
      completion_tokens: 5,
      total_tokens: 105,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: completionDetails(),
    },
  );
});

Deno.test("fromGeminiResponse() refuses a body that is not a GenerateContentResponse", async () => {
  for (const body of [null, "text", [], { candidates: "no" }, { ok: true }, { candidates: [] }]) {
    const err = await gatewayError(() =>
      fromGeminiResponse(body, "m", { created: CREATED, provider: "google" })
    );
    assert.equal(err.code, "upstream_error");
    assert.equal(err.status, 502);
    assert.equal(err.info.provider, "google");
  }
});
