import assert from "node:assert/strict";
import type { ResponsesItem } from "../../src/schema/responses.ts";
import { toChatRequestFromResponses } from "../../src/translate/responses_to_openai.ts";
import { responsesParam, responsesText } from "../../src/translate/responses_fields.ts";

/**
 * Instructions, consecutive calls, their outputs (one with an image), a user turn with an
 * image, an assistant turn a call joins, and a developer turn: chat's indices differ.
 */
const INPUT: ResponsesItem[] = [
  { role: "user", content: "Weather?" },
  { type: "function_call", call_id: "c1", name: "weather", arguments: "{}" },
  { type: "function_call", call_id: "c2", name: "time", arguments: "{}" },
  { type: "function_call_output", call_id: "c1", output: "sunny" },
  {
    type: "function_call_output",
    call_id: "c2",
    output: [
      { type: "input_text", text: "noon" },
      { type: "input_image", image_url: "ftp://x/clock.png" },
    ],
  },
  {
    type: "message",
    role: "user",
    content: [
      { type: "input_text", text: "a" },
      { type: "input_image", image_url: "https://example.com/a.png", detail: "high" },
    ],
  },
  { role: "assistant", content: [{ type: "output_text", text: "Checking" }] },
  { type: "function_call", call_id: "c3", name: "weather", arguments: "{}" },
  { role: "developer", content: [{ type: "input_text", text: "Be terse" }] },
];

const canonical = () =>
  toChatRequestFromResponses(
    {
      model: "m",
      instructions: "Be brief",
      input: INPUT,
      tools: [{ type: "function", name: "weather" }],
    },
    [],
    "p",
  );

Deno.test("responsesParam() names the input item and field behind a canonical message field", () => {
  const body = canonical();
  // The chat form the cases below index into.
  assert.deepEqual(body.messages.map((m) => m.role), [
    "system",
    "user",
    "assistant",
    "tool",
    "tool",
    "user",
    "user",
    "assistant",
    "developer",
  ]);
  const cases: [string, string][] = [
    ["messages", "input"],
    ["messages[0].content", "instructions"],
    ["messages[1].content", "input[0].content"],
    ["messages[1].role", "input[0]"],
    ["messages[2].tool_calls[0].id", "input[1].call_id"],
    ["messages[2].tool_calls[1].function.arguments", "input[2].arguments"],
    ["messages[2].tool_calls[1].function.name", "input[2].name"],
    ["messages[2].tool_calls[0].function", "input[1]"],
    ["messages[2].tool_calls[1].type", "input[2].type"],
    ["messages[2].tool_calls", "input[1]"],
    ["messages[2].content", "input[1]"],
    ["messages[2].content[0].text", "input[1]"],
    ["messages[3].tool_call_id", "input[3].call_id"],
    ["messages[3].content", "input[3].output"],
    ["messages[4].role", "input[4]"],
    ["messages[5].content[0].image_url.url", "input[4].output[1].image_url"],
    ["messages[5].content", "input[4].output"],
    ["messages[5].role", "input[4].output"],
    ["messages[6].content[1].image_url.url", "input[5].content[1].image_url"],
    ["messages[6].content[1].image_url", "input[5].content[1].image_url"],
    ["messages[6].content[1].image_url.detail", "input[5].content[1].detail"],
    ["messages[6].content[0].text", "input[5].content[0].text"],
    ["messages[6].content[0].type", "input[5].content[0].type"],
    ["messages[6].content[7]", "input[5].content"],
    ["messages[7].content", "input[6].content"],
    ["messages[7].tool_calls[0].function.name", "input[7].name"],
    ["messages[8].content", "input[8].content"],
    ["messages[9].content", "input"],
    ["tools[0].function.parameters", "tools[0].parameters"],
    ["reasoning_effort", "reasoning.effort"],
    ["response_format.json_schema.schema", "text.format.schema"],
    ["stream_options.include_usage", "stream"],
    ["temperature", "temperature"],
    ["input[3].call_id", "input[3].call_id"],
  ];
  for (const [chat, client] of cases) assert.equal(responsesParam(chat, body), client, chat);
});

Deno.test("responsesParam(): a string input, kept history and referenced items are whole fields", () => {
  const text = toChatRequestFromResponses(
    { model: "m", instructions: "x", input: "hi" },
    [],
    "p",
  );
  assert.equal(responsesParam("messages[1].content", text), "input");
  assert.equal(responsesParam("messages[0].content", text), "instructions");

  const history: ResponsesItem[] = [
    { role: "user", content: [{ type: "input_text", text: "q" }] },
    { id: "fc_1", type: "function_call", call_id: "c1", name: "f", arguments: "{}" },
  ];
  const chained = toChatRequestFromResponses(
    {
      model: "m",
      input: [
        { type: "function_call_output", call_id: "c1", output: "r" },
        { type: "item_reference", id: "fc_1" },
        { type: "function_call", call_id: "c2", name: "g", arguments: "{}" },
      ],
    },
    history,
    "p",
  );
  assert.deepEqual(chained.messages.map((m) => m.role), ["user", "assistant", "tool", "assistant"]);
  assert.equal(responsesParam("messages[0].content[0].text", chained), "previous_response_id");
  assert.equal(responsesParam("messages[1].tool_calls[0].id", chained), "previous_response_id");
  assert.equal(responsesParam("messages[2].tool_call_id", chained), "input[0].call_id");
  // The referenced call's fields are the kept item's: the client wrote only the reference.
  assert.equal(responsesParam("messages[3].tool_calls[0].function.arguments", chained), "input[1]");
  assert.equal(responsesParam("messages[3].tool_calls[1].function.name", chained), "input[2].name");
});

Deno.test("responsesParam(): without the translation's record (a stage's rewrite), a message field is input", () => {
  const rewritten = { ...canonical() };
  assert.equal(responsesParam("messages[6].content[1].image_url.url", rewritten), "input");
  assert.equal(responsesParam("messages[3].tool_call_id"), "input");
  assert.equal(responsesParam("tools[1].function.name"), "tools[1].name");
});

Deno.test("responsesText() names the client's fields in an error message", () => {
  const body = canonical();
  const cases: [string, string, string][] = [
    [
      "Invalid 'messages[6].content[1].image_url.url': Expected a base64-encoded data URL.",
      "messages[6].content[1].image_url.url",
      "Invalid 'input[5].content[1].image_url': Expected a base64-encoded data URL.",
    ],
    [
      'Image type "image/heic" in messages[6].content[1].image_url.url is not supported',
      "messages[6].content[1].image_url.url",
      'Image type "image/heic" in input[5].content[1].image_url is not supported',
    ],
    [
      '"reasoning_effort" is not supported by provider "p"',
      "reasoning_effort",
      '"reasoning.effort" is not supported by provider "p"',
    ],
    [
      "max_completion_tokens is too large: 99999.",
      "max_completion_tokens",
      "max_output_tokens is too large: 99999.",
    ],
    [
      "Invalid 'messages[3].tool_call_id': no call c1 before it; see tools[0].function.parameters",
      "messages[3].tool_call_id",
      "Invalid 'input[3].call_id': no call c1 before it; see tools[0].parameters",
    ],
    ['"input[2].call_id" is missing', "input[2].call_id", '"input[2].call_id" is missing'],
  ];
  for (const [text, param, client] of cases) {
    assert.equal(responsesText(text, param, body), client, text);
  }
});
