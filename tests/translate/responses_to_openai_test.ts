/**
 * toChatRequestFromResponses(): the item rules the goldens do not show — item references
 * into the kept conversation, consecutive calls merged into one assistant turn, and the
 * fields refused rather than dropped.
 */
import assert from "node:assert/strict";
import { GatewayError } from "../../src/errors.ts";
import type { ResponsesItem, ResponsesRequest } from "../../src/schema/responses.ts";
import { toChatRequestFromResponses } from "../../src/translate/responses_to_openai.ts";
import { responsesParam } from "../../src/translate/responses_fields.ts";
import { toGeminiRequest } from "../../src/providers/gemini/request.ts";

const HISTORY: ResponsesItem[] = [
  { type: "message", role: "user", content: "Weather and time?" },
  { type: "function_call", id: "fc_1", call_id: "call_a", name: "weather", arguments: "{}" },
  { type: "function_call", id: "fc_2", call_id: "call_b", name: "time", arguments: "{}" },
];

function refused(body: Partial<ResponsesRequest>, param: RegExp): void {
  assert.throws(
    () => toChatRequestFromResponses({ model: "m", input: "x", ...body }, [], "up"),
    (err: unknown) => {
      assert.ok(err instanceof GatewayError);
      assert.equal(err.status, 400);
      assert.match(String(err.info.param), param);
      return true;
    },
  );
}

Deno.test("toChatRequestFromResponses() merges consecutive calls and resolves item references", () => {
  // The AI SDK's second step: the earlier turn by reference, then the tool output.
  const referenced = new Map(HISTORY.slice(1).map((item) => [item.id as string, item]));
  const chat = toChatRequestFromResponses(
    {
      model: "m",
      input: [
        { role: "user", content: "Weather and time?" },
        { type: "item_reference", id: "fc_1" },
        { type: "item_reference", id: "fc_2" },
        {
          type: "function_call_output",
          call_id: "call_a",
          output: [{ type: "input_text", text: "18C" }],
        },
      ],
    },
    [],
    "up",
    referenced,
  );
  assert.deepEqual(chat.messages, [
    { role: "user", content: "Weather and time?" },
    {
      role: "assistant",
      content: null,
      tool_calls: [
        { id: "call_a", type: "function", function: { name: "weather", arguments: "{}" } },
        { id: "call_b", type: "function", function: { name: "time", arguments: "{}" } },
      ],
    },
    { role: "tool", tool_call_id: "call_a", content: "18C" },
  ]);
  // The same items from the kept conversation (previous_response_id) resolve alike.
  const continued = toChatRequestFromResponses(
    { model: "m", input: [{ type: "item_reference", id: "fc_2" }] },
    HISTORY,
    "up",
  );
  assert.equal(continued.messages.length, 2);
});

Deno.test("toChatRequestFromResponses() refuses what it cannot translate, naming it", () => {
  refused({ input: [{ type: "item_reference", id: "fc_unknown" }] }, /input\[0\]\.id/);
  refused(
    { input: [{ role: "user", content: [{ type: "input_file", file_id: "f" }] }] },
    /content\[0\]\.type/,
  );
  refused(
    { input: [{ role: "user", content: [{ type: "input_image", file_id: "f" }] }] },
    /image_url/,
  );
  refused({ input: [{ role: "tool", content: "x" }] }, /input\[0\]\.role/);
  refused({ input: [{ type: "function_call_output", output: "x" }] }, /call_id/);
  refused({ tools: [{ type: "file_search" }] }, /tools\[0\]\.type/);
  refused({ tool_choice: { type: "web_search_preview" } }, /tool_choice/);
  refused({ truncation: "auto" }, /truncation/);
  refused({ background: true }, /background/);
  refused({ text: { format: { type: "json_schema" } } }, /text\.format/);
  refused({ input: [] }, /input/);
  // A schema that is not an object was replaced with an empty one: the tool lost its schema.
  refused(
    { tools: [{ type: "function", name: "f", parameters: "notobj" }] },
    /^tools\[0\]\.parameters$/,
  );
  // `include`: a list of OpenAI's values; logprobs cannot be had through chat completions.
  refused({ include: "notarray" } as Partial<ResponsesRequest>, /^include$/);
  refused({ include: ["bogus"] }, /^include\[0\]$/);
  refused(
    { include: ["reasoning.encrypted_content", "message.output_text.logprobs"] },
    /^include\[1\]$/,
  );
  // The values naming outputs a translated answer has none of change nothing.
  toChatRequestFromResponses(
    {
      model: "m",
      input: "x",
      include: ["reasoning.encrypted_content", "file_search_call.results"],
    },
    [],
    "up",
  );
  // An object for arguments was sent on as "{}": the call's arguments silently lost.
  refused(
    {
      input: [{
        type: "function_call",
        call_id: "c1",
        name: "f",
        arguments: { city: "Paris" } as unknown as string,
      }],
    },
    /^input\[0\]\.arguments$/,
  );
});

Deno.test("toChatRequestFromResponses() maps the generation settings", () => {
  const chat = toChatRequestFromResponses(
    {
      model: "m",
      input: "x",
      stream: true,
      reasoning: { effort: "low" },
      text: { format: { type: "json_object" } },
      tool_choice: "required",
      truncation: "disabled",
      metadata: { k: "v" },
    },
    [],
    "up",
  );
  assert.deepEqual(chat, {
    model: "m",
    messages: [{ role: "user", content: "x" }],
    stream: true,
    stream_options: { include_usage: true },
    tool_choice: "required",
    response_format: { type: "json_object" },
    reasoning_effort: "low",
  });
});

Deno.test("a function_call item's extra_content (a Gemini thought signature) goes back to Gemini", () => {
  const extra = { google: { thought_signature: "CqQCAVSoXO7sig" } };
  const body: ResponsesRequest = {
    model: "m",
    input: [
      { role: "user", content: "Weather?" },
      {
        type: "function_call",
        id: "fc_1",
        call_id: "call_a",
        name: "weather",
        arguments: "{}",
        extra_content: extra,
      },
      { type: "function_call_output", call_id: "call_a", output: "18C" },
    ],
  };
  // Replayed by the client, and kept by the gateway (previous_response_id): both carry it.
  for (
    const chat of [
      toChatRequestFromResponses(body, [], "gemini"),
      toChatRequestFromResponses(
        { model: "m", input: [{ type: "function_call_output", call_id: "call_a", output: "18C" }] },
        (body.input as ResponsesItem[]).slice(0, 2),
        "gemini",
      ),
    ]
  ) {
    const calls = chat.messages[1]?.tool_calls as Record<string, unknown>[];
    const call = calls[0] as Record<string, unknown>;
    assert.deepEqual(call.extra_content, extra);
    const gemini = toGeminiRequest(chat, "gemini");
    const part = gemini.contents[1]?.parts[0] as Record<string, unknown>;
    assert.equal(part.thoughtSignature, "CqQCAVSoXO7sig");
  }
});

Deno.test("responsesParam() names the Responses field behind a chat field", () => {
  const cases: [string, string][] = [
    ["reasoning_effort", "reasoning.effort"],
    ["max_completion_tokens", "max_output_tokens"],
    ["response_format.json_schema.schema", "text.format.schema"],
    ["tools[2].function.name", "tools[2].name"],
    ["tools[0].type", "tools[0].type"],
    ["tool_choice.function.name", "tool_choice.name"],
    ["messages[3].tool_call_id", "input"],
    ["temperature", "temperature"],
  ];
  for (const [chat, responses] of cases) assert.equal(responsesParam(chat), responses, chat);
});

Deno.test("toChatRequestFromResponses(): a function output's images follow the run of tool messages in a user turn", () => {
  const chat = toChatRequestFromResponses(
    {
      model: "m",
      input: [
        ...HISTORY,
        {
          type: "function_call_output",
          call_id: "call_a",
          output: [
            { type: "input_text", text: "The chart:" },
            { type: "input_image", image_url: "data:image/png;base64,iVBORw0KGgo=" },
          ],
        },
        { type: "function_call_output", call_id: "call_b", output: "12:00" },
        { role: "user", content: "Explain" },
      ],
    },
    [],
    "up",
  );
  assert.deepEqual(chat.messages.slice(2), [
    { role: "tool", tool_call_id: "call_a", content: "The chart:" },
    { role: "tool", tool_call_id: "call_b", content: "12:00" },
    {
      role: "user",
      content: [{ type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } }],
    },
    { role: "user", content: "Explain" },
  ]);
});
