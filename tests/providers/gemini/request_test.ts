import assert from "node:assert/strict";
import { SKIP_THOUGHT_SIGNATURE, toGeminiRequest } from "../../../src/providers/gemini/request.ts";
import type { OpenAIMessage } from "../../../src/schema/openai.ts";
import { HI, requestBuilder } from "../../helpers/requests.ts";
import { gatewayError } from "./helpers.ts";

const req = requestBuilder("gemini/gemini-2.5-flash");

const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather",
    parameters: {
      $schema: "http://json-schema.org/draft-07/schema#",
      type: "object",
      properties: {
        city: { type: "string", description: "City name" },
        unit: { type: "string", enum: ["celsius", "fahrenheit"] },
      },
      required: ["city"],
      additionalProperties: false,
    },
    strict: true,
  },
};

const WEATHER_DECLARATION = {
  name: "get_weather",
  description: "Current weather",
  parameters: {
    type: "OBJECT",
    properties: {
      city: { type: "STRING", description: "City name" },
      unit: { type: "STRING", enum: ["celsius", "fahrenheit"] },
    },
    required: ["city"],
  },
};

Deno.test("toGeminiRequest() maps a minimal request to one user turn and nothing else", () => {
  assert.deepEqual(toGeminiRequest(req(HI)), {
    contents: [{ role: "user", parts: [{ text: "Hi" }] }],
  });
});

Deno.test("toGeminiRequest() moves system and developer messages to systemInstruction", () => {
  const out = toGeminiRequest(req([
    { role: "system", content: "Be brief." },
    { role: "developer", content: [{ type: "text", text: "Answer in French." }] },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Bonjour" },
    { role: "system", content: "Never use emoji." },
    { role: "user", content: "Ça va ?" },
  ]));
  assert.deepEqual(out.systemInstruction, {
    parts: [{ text: "Be brief." }, { text: "Answer in French." }, { text: "Never use emoji." }],
  });
  assert.deepEqual(out.contents, [
    { role: "user", parts: [{ text: "Hi" }] },
    { role: "model", parts: [{ text: "Bonjour" }] },
    { role: "user", parts: [{ text: "Ça va ?" }] },
  ]);
});

Deno.test("toGeminiRequest() merges same-role turns and skips empty text", () => {
  const out = toGeminiRequest(req([
    { role: "user", content: "First" },
    { role: "user", content: [{ type: "text", text: "Second" }, { type: "text", text: "" }] },
    { role: "assistant", content: "A" },
    { role: "assistant", content: [{ type: "refusal", refusal: "I can't help." }] },
    { role: "assistant", content: null },
    { role: "user", content: "" },
    { role: "user", content: "Third" },
  ]));
  assert.deepEqual(out.contents, [
    { role: "user", parts: [{ text: "First" }, { text: "Second" }] },
    { role: "model", parts: [{ text: "A" }, { text: "I can't help." }] },
    { role: "user", parts: [{ text: "Third" }] },
  ]);
});

Deno.test("toGeminiRequest() maps image_url parts to inlineData and fileData", async (t) => {
  await t.step("data: URL and http(s) URLs with a guessed MIME type", () => {
    const image = (url: string) => ({ type: "image_url", image_url: { url, detail: "high" } });
    const out = toGeminiRequest(req([{
      role: "user",
      content: [
        { type: "text", text: "Compare" },
        image("data:image/png;base64,iVBORw0KGgo="),
        image("https://example.com/cat.webp?size=large"),
        image("https://example.com/photos/DOG.PNG"),
        image("https://example.com/render"),
        { type: "image_url", image_url: "http://example.com/a.jpeg" },
      ],
    }]));
    assert.deepEqual(out.contents[0]?.parts, [
      { text: "Compare" },
      { inlineData: { mimeType: "image/png", data: "iVBORw0KGgo=" } },
      { fileData: { mimeType: "image/webp", fileUri: "https://example.com/cat.webp?size=large" } },
      { fileData: { mimeType: "image/png", fileUri: "https://example.com/photos/DOG.PNG" } },
      { fileData: { mimeType: "image/jpeg", fileUri: "https://example.com/render" } },
      { fileData: { mimeType: "image/jpeg", fileUri: "http://example.com/a.jpeg" } },
    ]);
  });
  for (const url of ["data:image/png,raw", "data:;base64,AAAA", "file:///etc/passwd", "ftp://x"]) {
    await t.step(`refuses ${url}`, async () => {
      const err = await gatewayError(() =>
        toGeminiRequest(
          req([{ role: "user", content: [{ type: "image_url", image_url: { url } }] }]),
        )
      );
      assert.equal(err.status, 400);
      assert.equal(err.info.param, "messages[0].content[0].image_url.url");
    });
  }
});

Deno.test("toGeminiRequest() maps tools with a sanitized schema and every tool_choice", async (t) => {
  const cases: [string, unknown, unknown][] = [
    ["absent", undefined, undefined],
    ["auto", "auto", { functionCallingConfig: { mode: "AUTO" } }],
    ["none", "none", { functionCallingConfig: { mode: "NONE" } }],
    ["required", "required", { functionCallingConfig: { mode: "ANY" } }],
    [
      "named function",
      { type: "function", function: { name: "get_weather" } },
      { functionCallingConfig: { mode: "ANY", allowedFunctionNames: ["get_weather"] } },
    ],
  ];
  for (const [label, choice, expected] of cases) {
    await t.step(label, () => {
      const out = toGeminiRequest(req(HI, {
        tools: [WEATHER_TOOL],
        ...(choice === undefined ? {} : { tool_choice: choice }),
      }));
      assert.deepEqual(out.tools, [{ functionDeclarations: [WEATHER_DECLARATION] }]);
      assert.deepEqual(out.toolConfig, expected);
    });
  }
  await t.step("a function without parameters (or with none) has no parameters", () => {
    const out = toGeminiRequest(req(HI, {
      tools: [
        { type: "function", function: { name: "ping" } },
        {
          type: "function",
          function: {
            name: "now",
            description: "",
            parameters: { type: "object", properties: {} },
          },
        },
      ],
    }));
    assert.deepEqual(out.tools, [{ functionDeclarations: [{ name: "ping" }, { name: "now" }] }]);
  });
  await t.step("parallel_tool_calls is dropped", () => {
    const out = toGeminiRequest(req(HI, { tools: [WEATHER_TOOL], parallel_tool_calls: false }));
    assert.equal(out.toolConfig, undefined);
  });
});

Deno.test("toGeminiRequest() handles tool_choice without tools and bad tools", async (t) => {
  await t.step("auto and none are dropped", () => {
    for (const choice of ["auto", "none"]) {
      const out = toGeminiRequest(req(HI, { tool_choice: choice }));
      assert.equal(out.toolConfig, undefined);
      assert.equal(out.tools, undefined);
    }
  });
  const cases: [string, Record<string, unknown>, string][] = [
    ["required without tools", { tool_choice: "required" }, "tool_choice"],
    ["a malformed tool_choice", { tools: [WEATHER_TOOL], tool_choice: "sometimes" }, "tool_choice"],
    [
      "a non-function tool",
      { tools: [{ type: "custom", custom: { name: "x" } }] },
      "tools[0].type",
    ],
    [
      "a function without a name",
      { tools: [{ type: "function", function: { description: "x" } }] },
      "tools[0].function.name",
    ],
  ];
  for (const [label, extra, param] of cases) {
    await t.step(label, async () => {
      const err = await gatewayError(() => toGeminiRequest(req(HI, extra)));
      assert.equal(err.status, 400);
      assert.equal(err.info.param, param);
    });
  }
});

Deno.test("toGeminiRequest() maps tool calls and names tool results from their call ids", () => {
  const out = toGeminiRequest(req([
    { role: "user", content: "Weather in Paris and Rome?" },
    {
      role: "assistant",
      content: "Checking both.",
      tool_calls: [
        {
          id: "call_a",
          type: "function",
          function: { name: "get_weather", arguments: '{"city":"Paris"}' },
          extra_content: { google: { thought_signature: "sig-1" } },
        },
        { id: "call_b", type: "function", function: { name: "get_time", arguments: "" } },
      ],
    },
    { role: "tool", tool_call_id: "call_b", content: "09:00" },
    { role: "tool", tool_call_id: "call_a", content: '{"temp_c":18,"sky":"fog"}' },
    { role: "user", content: "Which is warmer?" },
  ], { tools: [WEATHER_TOOL] }));
  assert.deepEqual(out.contents, [
    { role: "user", parts: [{ text: "Weather in Paris and Rome?" }] },
    {
      role: "model",
      parts: [
        { text: "Checking both." },
        {
          functionCall: { name: "get_weather", args: { city: "Paris" } },
          thoughtSignature: "sig-1",
        },
        { functionCall: { name: "get_time", args: {} } },
      ],
    },
    {
      role: "user",
      // In the order of the calls they answer (the client sent them the other way round).
      parts: [
        { functionResponse: { name: "get_weather", response: { temp_c: 18, sky: "fog" } } },
        { functionResponse: { name: "get_time", response: { output: "09:00" } } },
        { text: "Which is warmer?" },
      ],
    },
  ]);
});

Deno.test("toGeminiRequest() puts results of same-name parallel calls back in call order", () => {
  // Gemini 2.5 issues no call ids: it pairs a batch's responses with its calls by position.
  const call = (id: string, city: string) => ({
    id,
    type: "function",
    function: { name: "get_weather", arguments: JSON.stringify({ city }) },
  });
  const out = toGeminiRequest(req([
    { role: "user", content: "Paris and Rome?" },
    {
      role: "assistant",
      content: "",
      tool_calls: [call("call_A", "Paris"), call("call_B", "Rome")],
    },
    { role: "tool", tool_call_id: "call_B", content: "rome: hot" },
    { role: "tool", tool_call_id: "call_A", content: "paris: cold" },
  ], { tools: [WEATHER_TOOL] }));
  assert.deepEqual(out.contents.at(-1), {
    role: "user",
    parts: [
      { functionResponse: { name: "get_weather", response: { output: "paris: cold" } } },
      { functionResponse: { name: "get_weather", response: { output: "rome: hot" } } },
    ],
  });
});

Deno.test("toGeminiRequest() signs replayed calls that carry no thought signature", () => {
  // History from another provider (or a client that dropped extra_content): Gemini 3 would
  // refuse the functionCall parts without a signature.
  const out = toGeminiRequest(req([
    { role: "user", content: "Go" },
    {
      role: "assistant",
      content: null,
      tool_calls: [
        { id: "toolu_1", type: "function", function: { name: "f", arguments: "{}" } },
        { id: "toolu_2", type: "function", function: { name: "g", arguments: "{}" } },
      ],
    },
    { role: "tool", tool_call_id: "toolu_1", content: [{ type: "text", text: "done" }] },
    { role: "tool", tool_call_id: "toolu_2", content: "[1,2]" },
  ]));
  assert.deepEqual(out.contents.slice(1), [
    {
      role: "model",
      parts: [
        { functionCall: { name: "f", args: {} }, thoughtSignature: SKIP_THOUGHT_SIGNATURE },
        { functionCall: { name: "g", args: {} } },
      ],
    },
    {
      role: "user",
      parts: [
        { functionResponse: { name: "f", response: { output: "done" } } },
        { functionResponse: { name: "g", response: { output: "[1,2]" } } },
      ],
    },
  ]);
});

Deno.test("toGeminiRequest() sends back the call ids Gemini issued, and only those", () => {
  // Newer models set FunctionCall.id and expect it on the call and its FunctionResponse;
  // ids Pilotfish made up (call_…) or another provider gave (toolu_…) stay out.
  const out = toGeminiRequest(req([
    { role: "user", content: "Go" },
    {
      role: "assistant",
      tool_calls: [
        { id: "8f2kq1xz", type: "function", function: { name: "f", arguments: "{}" } },
        {
          id: "call_0123456789abcdefghijklmn",
          type: "function",
          function: { name: "g", arguments: "{}" },
        },
        { id: "toolu_01A", type: "function", function: { name: "h", arguments: "{}" } },
      ],
    },
    { role: "tool", tool_call_id: "8f2kq1xz", content: "1" },
    { role: "tool", tool_call_id: "call_0123456789abcdefghijklmn", content: "2" },
    { role: "tool", tool_call_id: "toolu_01A", content: "3" },
  ]));
  assert.deepEqual(out.contents[1]?.parts, [
    {
      functionCall: { name: "f", args: {}, id: "8f2kq1xz" },
      thoughtSignature: SKIP_THOUGHT_SIGNATURE,
    },
    { functionCall: { name: "g", args: {} } },
    { functionCall: { name: "h", args: {} } },
  ]);
  assert.deepEqual(out.contents[2]?.parts, [
    { functionResponse: { id: "8f2kq1xz", name: "f", response: { output: "1" } } },
    { functionResponse: { name: "g", response: { output: "2" } } },
    { functionResponse: { name: "h", response: { output: "3" } } },
  ]);
});

Deno.test("toGeminiRequest() pairs a reused call id with its most recent call", () => {
  const call = (name: string) => ({
    role: "assistant",
    tool_calls: [{ id: "call_0", type: "function", function: { name, arguments: "{}" } }],
  });
  const out = toGeminiRequest(req([
    { role: "user", content: "Go" },
    call("first"),
    { role: "tool", tool_call_id: "call_0", content: "1" },
    call("second"),
    { role: "tool", tool_call_id: "call_0", content: "2" },
  ]));
  assert.deepEqual(out.contents[2]?.parts, [
    { functionResponse: { name: "first", response: { output: "1" } } },
  ]);
  assert.deepEqual(out.contents[4]?.parts, [
    { functionResponse: { name: "second", response: { output: "2" } } },
  ]);
});

Deno.test("toGeminiRequest() refuses malformed tool calls and results", async (t) => {
  const cases: [string, OpenAIMessage, string][] = [
    [
      "arguments that are not JSON",
      {
        role: "assistant",
        tool_calls: [{ id: "t", type: "function", function: { name: "f", arguments: "{oops" } }],
      },
      "messages[1].tool_calls[0].function.arguments",
    ],
    [
      "arguments that are a JSON array",
      {
        role: "assistant",
        tool_calls: [{ id: "t", type: "function", function: { name: "f", arguments: "[1]" } }],
      },
      "messages[1].tool_calls[0].function.arguments",
    ],
    [
      "a call without a name",
      { role: "assistant", tool_calls: [{ id: "t", type: "function", function: {} }] },
      "messages[1].tool_calls[0].function.name",
    ],
    [
      "a tool result without tool_call_id",
      { role: "tool", content: "x" },
      "messages[1].tool_call_id",
    ],
    [
      "a tool result for an unknown call",
      { role: "tool", tool_call_id: "call_nope", content: "x" },
      "messages[1].tool_call_id",
    ],
    [
      "a legacy function_call",
      { role: "assistant", function_call: { name: "f", arguments: "{}" } },
      "messages[1].function_call",
    ],
    ["the legacy function role", { role: "function", name: "f", content: "x" }, "messages[1].role"],
  ];
  for (const [label, message, param] of cases) {
    await t.step(label, async () => {
      const err = await gatewayError(() => toGeminiRequest(req([...HI, message])));
      assert.equal(err.code, "invalid_request");
      assert.equal(err.status, 400);
      assert.equal(err.info.param, param);
    });
  }
});

Deno.test("toGeminiRequest() maps sampling, limits, stop, seed and penalties", async (t) => {
  await t.step("every mapped field", () => {
    const out = toGeminiRequest(req(HI, {
      max_tokens: 300,
      temperature: 1.4,
      top_p: 0.9,
      top_k: 40,
      stop: ["\n\nHuman:", "END"],
      seed: 7,
      presence_penalty: 0.5,
      frequency_penalty: -0.5,
      stream: true,
      stream_options: { include_usage: true },
      user: "user-42",
    }));
    assert.deepEqual(out, {
      contents: [{ role: "user", parts: [{ text: "Hi" }] }],
      generationConfig: {
        temperature: 1.4,
        topP: 0.9,
        topK: 40,
        seed: 7,
        presencePenalty: 0.5,
        frequencyPenalty: -0.5,
        maxOutputTokens: 300,
        stopSequences: ["\n\nHuman:", "END"],
      },
    });
  });
  await t.step("max_completion_tokens wins over max_tokens", () => {
    const out = toGeminiRequest(req(HI, { max_tokens: 10, max_completion_tokens: 20 }));
    assert.equal(out.generationConfig?.maxOutputTokens, 20);
  });
  await t.step("a stop string becomes a one-element list", () => {
    assert.deepEqual(toGeminiRequest(req(HI, { stop: "END" })).generationConfig, {
      stopSequences: ["END"],
    });
  });
  await t.step("wrong types are 400s naming the field", async () => {
    for (const [field, value] of [["stop", [1]], ["seed", "7"], ["top_k", "x"]] as const) {
      const err = await gatewayError(() => toGeminiRequest(req(HI, { [field]: value })));
      assert.equal(err.info.param, field);
    }
  });
});

Deno.test("toGeminiRequest() maps JSON mode to responseMimeType and responseSchema", async (t) => {
  await t.step("json_object", () => {
    const out = toGeminiRequest(req(HI, { response_format: { type: "json_object" } }));
    assert.deepEqual(out.generationConfig, { responseMimeType: "application/json" });
  });
  await t.step("json_schema keeps the property order and drops what Gemini refuses", () => {
    const schema = {
      type: "object",
      properties: {
        name: { type: "string" },
        age: { type: ["integer", "null"] },
        email: { type: "string", format: "email" },
      },
      required: ["name", "age", "email"],
      additionalProperties: false,
    };
    const out = toGeminiRequest(req(HI, {
      response_format: {
        type: "json_schema",
        json_schema: { name: "person", strict: true, schema },
      },
    }));
    assert.deepEqual(out.generationConfig, {
      responseMimeType: "application/json",
      responseSchema: {
        type: "OBJECT",
        properties: {
          name: { type: "STRING" },
          age: { type: "INTEGER", nullable: true },
          email: { type: "STRING" },
        },
        required: ["name", "age", "email"],
        propertyOrdering: ["name", "age", "email"],
      },
    });
  });
  await t.step("text adds nothing", () => {
    const out = toGeminiRequest(req(HI, { response_format: { type: "text" } }));
    assert.equal(out.generationConfig, undefined);
  });
  await t.step("json_schema without a schema, and unknown types, are 400s", async () => {
    let err = await gatewayError(() =>
      toGeminiRequest(req(HI, { response_format: { type: "json_schema", json_schema: {} } }))
    );
    assert.equal(err.info.param, "response_format.json_schema.schema");
    err = await gatewayError(() =>
      toGeminiRequest(req(HI, { response_format: { type: "grammar" } }))
    );
    assert.equal(err.info.param, "response_format.type");
  });
});

Deno.test("toGeminiRequest() refuses parameters Gemini cannot honour", async (t) => {
  const cases: [string, unknown][] = [
    ["n", 2],
    ["logprobs", true],
    ["top_logprobs", 3],
    ["logit_bias", { "50256": -100 }],
    ["audio", { voice: "alloy", format: "wav" }],
    ["modalities", ["text", "audio"]],
    ["prediction", { type: "content", content: "x" }],
    ["web_search_options", {}],
    ["functions", [{ name: "f" }]],
    ["function_call", "auto"],
  ];
  for (const [param, value] of cases) {
    await t.step(`${param}: ${JSON.stringify(value)}`, async () => {
      const err = await gatewayError(() => toGeminiRequest(req(HI, { [param]: value }), "google"));
      assert.equal(err.code, "invalid_request");
      assert.equal(err.status, 400);
      assert.equal(err.retryable, false);
      assert.equal(err.info.param, param);
      assert.equal(err.message, `Parameter "${param}" is not supported by provider "google"`);
    });
  }
});

Deno.test("toGeminiRequest() accepts neutral values and drops harmless parameters", () => {
  const out = toGeminiRequest(req(HI, {
    n: 1,
    logprobs: false,
    top_logprobs: 0,
    logit_bias: {},
    audio: null,
    modalities: ["text"],
    service_tier: "auto",
    store: false,
    metadata: { team: "ml" },
    prompt_cache_key: "k",
    safety_identifier: "hash",
    some_future_field: { x: 1 },
  }));
  assert.deepEqual(out, { contents: [{ role: "user", parts: [{ text: "Hi" }] }] });
});

Deno.test("toGeminiRequest() refuses content parts it cannot translate", async (t) => {
  const cases: [string, OpenAIMessage, string][] = [
    [
      "input_audio in a user message",
      {
        role: "user",
        content: [
          { type: "text", text: "Transcribe" },
          { type: "input_audio", input_audio: { data: "AAAA", format: "wav" } },
        ],
      },
      "messages[0].content[1].type",
    ],
    [
      "file in a user message",
      { role: "user", content: [{ type: "file", file: { file_id: "f" } }] },
      "messages[0].content[0].type",
    ],
    [
      "an image in a system message",
      { role: "system", content: [{ type: "image_url", image_url: { url: "https://x/y.png" } }] },
      "messages[0].content[0].type",
    ],
  ];
  for (const [label, message, param] of cases) {
    await t.step(label, async () => {
      const err = await gatewayError(() => toGeminiRequest(req([message, ...HI])));
      assert.equal(err.status, 400);
      assert.equal(err.info.param, param);
      assert.match(
        err.message,
        /^Content part type "\w+" in messages\[0\]\.content\[\d\] is not supported by provider "gemini"$/,
      );
    });
  }
});

Deno.test("toGeminiRequest() refuses a request with only system messages", async () => {
  const err = await gatewayError(() =>
    toGeminiRequest(req([{ role: "system", content: "Be brief." }]))
  );
  assert.equal(err.status, 400);
  assert.equal(err.info.param, "messages");
});

Deno.test("toGeminiRequest() does not mutate the client's body", () => {
  const body = req([
    { role: "system", content: "S" },
    { role: "user", content: "A" },
    { role: "user", content: [{ type: "text", text: "B" }] },
    {
      role: "assistant",
      tool_calls: [{ id: "t", type: "function", function: { name: "f", arguments: "{}" } }],
    },
    { role: "tool", tool_call_id: "t", content: "r" },
  ], {
    tools: [WEATHER_TOOL],
    response_format: {
      type: "json_schema",
      json_schema: { name: "x", schema: { type: "object" } },
    },
  });
  const before = structuredClone(body);
  toGeminiRequest(body);
  assert.deepEqual(body, before);
});

Deno.test("toGeminiRequest(): reasoning_effort is a thinking budget before Gemini 3, a thinking level from 3 on", async () => {
  const budget = (effort: string, model: string) =>
    toGeminiRequest(req(HI, { reasoning_effort: effort }), "gemini", model).generationConfig
      ?.thinkingConfig;
  assert.deepEqual(budget("low", "gemini-2.5-flash"), { thinkingBudget: 1024 });
  assert.deepEqual(budget("medium", "gemini-2.5-pro"), { thinkingBudget: 8192 });
  assert.deepEqual(budget("high", "models/gemini-2.5-flash"), { thinkingBudget: 24576 });
  assert.deepEqual(budget("none", "gemini-2.5-flash"), { thinkingBudget: 0 });
  assert.deepEqual(budget("high", "gemini-3-pro-preview"), { thinkingLevel: "high" });
  assert.deepEqual(budget("low", "gemini-3-flash"), { thinkingLevel: "low" });
  assert.deepEqual(budget("none", "gemini-3-flash"), { thinkingLevel: "minimal" });
  const err = await gatewayError(() =>
    toGeminiRequest(req(HI, { reasoning_effort: "max" }), "gemini", "gemini-2.5-flash")
  );
  assert.equal(err.info.param, "reasoning_effort");
});

Deno.test("toGeminiRequest(): JSON mode beside tools is an instruction before Gemini 3, which refuses the MIME type with function calling", async (t) => {
  const body = req([{ role: "system", content: "Be brief." }, ...HI], {
    tools: [WEATHER_TOOL],
    response_format: { type: "json_object" },
  });
  await t.step("gemini-2.5: no responseMimeType; the system instruction asks for JSON", () => {
    const out = toGeminiRequest(body, "gemini", "gemini-2.5-flash");
    assert.equal(out.generationConfig?.responseMimeType, undefined);
    assert.deepEqual(out.tools, [{ functionDeclarations: [WEATHER_DECLARATION] }]);
    assert.equal(out.systemInstruction?.parts[0]?.text, "Be brief.");
    assert.match(out.systemInstruction?.parts[1]?.text ?? "", /Respond with a single valid JSON/);
  });
  await t.step("gemini-3: the MIME type stays", () => {
    const out = toGeminiRequest(body, "gemini", "gemini-3-pro-preview");
    assert.equal(out.generationConfig?.responseMimeType, "application/json");
    assert.equal(out.systemInstruction?.parts.length, 1);
  });
  await t.step("without tools: the MIME type stays on any version", () => {
    const out = toGeminiRequest(
      req(HI, { response_format: { type: "json_object" } }),
      "gemini",
      "gemini-2.5-flash",
    );
    assert.equal(out.generationConfig?.responseMimeType, "application/json");
  });
});
