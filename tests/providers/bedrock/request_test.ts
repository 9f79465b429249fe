import assert from "node:assert/strict";
import { toConverseRequest } from "../../../src/providers/bedrock/request.ts";
import { GatewayError } from "../../../src/errors.ts";
import { HI, requestBuilder, WEATHER_TOOL } from "../../helpers/requests.ts";
import { gatewayError } from "./helpers.ts";

const MODEL_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const req = requestBuilder(MODEL_ID);

const WEATHER_SPEC = {
  toolSpec: {
    name: "get_weather",
    description: "Current weather",
    inputSchema: {
      json: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  },
};

Deno.test("toConverseRequest() maps a minimal request without inventing parameters", () => {
  assert.deepEqual(toConverseRequest(req(HI)), {
    messages: [{ role: "user", content: [{ text: "Hi" }] }],
  });
});

Deno.test("toConverseRequest() hoists system and developer messages into system blocks", () => {
  const out = toConverseRequest(req([
    { role: "system", content: "Be brief." },
    { role: "developer", content: [{ type: "text", text: "Answer in French." }] },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Bonjour" },
    { role: "system", content: "Never use emoji." },
    { role: "user", content: "Ça va ?" },
  ]));
  assert.deepEqual(out.system, [
    { text: "Be brief." },
    { text: "Answer in French." },
    { text: "Never use emoji." },
  ]);
  assert.deepEqual(out.messages, [
    { role: "user", content: [{ text: "Hi" }] },
    { role: "assistant", content: [{ text: "Bonjour" }] },
    { role: "user", content: [{ text: "Ça va ?" }] },
  ]);
});

Deno.test("toConverseRequest() merges consecutive same-role messages and skips blank text", () => {
  const out = toConverseRequest(req([
    { role: "user", content: "First" },
    { role: "user", content: [{ type: "text", text: "Second" }, { type: "text", text: "  " }] },
    { role: "assistant", content: "" },
    { role: "assistant", content: "A" },
  ]));
  assert.deepEqual(out.messages, [
    { role: "user", content: [{ text: "First" }, { text: "Second" }] },
    { role: "assistant", content: [{ text: "A" }] },
  ]);
});

Deno.test("toConverseRequest() maps inference parameters into inferenceConfig", async (t) => {
  await t.step("max_completion_tokens wins, temperature clamped to 1, stop as a list", () => {
    const out = toConverseRequest(req(HI, {
      max_tokens: 50,
      max_completion_tokens: 200,
      temperature: 1.6,
      top_p: 0.9,
      stop: "END",
      seed: 7,
      user: "u-1",
      store: false,
      metadata: { a: "b" },
    }));
    assert.deepEqual(out.inferenceConfig, {
      maxTokens: 200,
      temperature: 1,
      topP: 0.9,
      stopSequences: ["END"],
    });
    assert.deepEqual(Object.keys(out).sort(), ["inferenceConfig", "messages"]);
  });
  await t.step("Claude 4.1 and later get temperature or topP, not both: temperature wins", () => {
    const both = req(HI, { temperature: 0.5, top_p: 0.9 });
    assert.deepEqual(toConverseRequest(both, "bedrock", MODEL_ID).inferenceConfig, {
      temperature: 0.5,
    });
    assert.deepEqual(
      toConverseRequest(req(HI, { top_p: 0.9 }), "bedrock", MODEL_ID).inferenceConfig,
      { topP: 0.9 },
    );
    for (const model of ["us.anthropic.claude-sonnet-4-20250514-v1:0", "amazon.nova-pro-v1:0"]) {
      assert.deepEqual(toConverseRequest(both, "bedrock", model).inferenceConfig, {
        temperature: 0.5,
        topP: 0.9,
      }, model);
    }
  });
  await t.step("max_tokens alone, stop array", () => {
    const out = toConverseRequest(req(HI, { max_tokens: 64, temperature: 0.2, stop: ["a", "b"] }));
    assert.deepEqual(out.inferenceConfig, {
      maxTokens: 64,
      temperature: 0.2,
      stopSequences: ["a", "b"],
    });
  });
  await t.step("a bad stop is a 400 naming it", async () => {
    const err = await gatewayError(() => toConverseRequest(req(HI, { stop: [1] })));
    assert.equal(err.status, 400);
    assert.equal(err.info.param, "stop");
  });
});

Deno.test("toConverseRequest() refuses parameters Converse cannot honour, by name", async (t) => {
  const cases: [string, unknown][] = [
    ["n", 2],
    ["logprobs", true],
    ["top_logprobs", 3],
    ["presence_penalty", 0.5],
    ["frequency_penalty", -1],
    ["logit_bias", { "42": 5 }],
    ["audio", { voice: "alloy" }],
    ["modalities", ["text", "audio"]],
    ["functions", [{ name: "f" }]],
  ];
  for (const [param, value] of cases) {
    await t.step(param, async () => {
      const err = await gatewayError(() => toConverseRequest(req(HI, { [param]: value }), "aws"));
      assert.equal(err.status, 400);
      assert.equal(err.info.param, param);
      assert.equal(err.message, `Parameter "${param}" is not supported by provider "aws"`);
    });
  }
  await t.step("neutral values pass", () => {
    toConverseRequest(req(HI, {
      n: 1,
      logprobs: false,
      presence_penalty: 0,
      frequency_penalty: 0,
      logit_bias: {},
      modalities: ["text"],
      parallel_tool_calls: true,
    }));
  });
});

Deno.test("toConverseRequest() translates images to bytes or S3 locations", async (t) => {
  await t.step("data: URL → base64 bytes with the format from the media type", () => {
    const out = toConverseRequest(req([{
      role: "user",
      content: [
        { type: "text", text: "What is this?" },
        { type: "image_url", image_url: { url: "data:image/jpeg;base64,/9j/4AAQ", detail: "low" } },
        { type: "image_url", image_url: { url: "s3://bucket/cats/tabby.PNG" } },
      ],
    }]));
    assert.deepEqual(out.messages[0]?.content, [
      { text: "What is this?" },
      { image: { format: "jpeg", source: { bytes: "/9j/4AAQ" } } },
      { image: { format: "png", source: { s3Location: { uri: "s3://bucket/cats/tabby.PNG" } } } },
    ]);
  });
  await t.step("an http(s) URL is refused, not fetched", async () => {
    const err = await gatewayError(() =>
      toConverseRequest(req([{
        role: "user",
        content: [{ type: "image_url", image_url: { url: "https://example.com/cat.png" } }],
      }]))
    );
    assert.equal(err.status, 400);
    assert.equal(err.info.param, "messages[0].content[0].image_url.url");
    assert.match(err.message, /does not fetch images by URL/);
  });
  await t.step("an unsupported media type is refused", async () => {
    const err = await gatewayError(() =>
      toConverseRequest(req([{
        role: "user",
        content: [{ type: "image_url", image_url: { url: "data:image/tiff;base64,AAAA" } }],
      }]))
    );
    assert.match(err.message, /Image type "image\/tiff"/);
  });
  await t.step("audio parts are refused", async () => {
    const err = await gatewayError(() =>
      toConverseRequest(req([{
        role: "user",
        content: [{ type: "input_audio", input_audio: { data: "AAAA", format: "wav" } }],
      }]))
    );
    assert.equal(err.info.param, "messages[0].content[0].type");
  });
});

Deno.test("toConverseRequest() translates a tool round trip", () => {
  const out = toConverseRequest(req([
    { role: "user", content: "Weather in Paris and Rome?" },
    {
      role: "assistant",
      content: null,
      tool_calls: [
        {
          id: "tooluse_1",
          type: "function",
          function: { name: "get_weather", arguments: '{"city":"Paris"}' },
        },
        { id: "tooluse_2", type: "function", function: { name: "get_weather", arguments: "" } },
      ],
    },
    { role: "tool", tool_call_id: "tooluse_1", content: "18°C" },
    { role: "tool", tool_call_id: "tooluse_2", content: [{ type: "text", text: "21°C" }] },
    { role: "user", content: "Thanks" },
  ], { tools: [WEATHER_TOOL], tool_choice: "auto" }));
  assert.deepEqual(out.messages, [
    { role: "user", content: [{ text: "Weather in Paris and Rome?" }] },
    {
      role: "assistant",
      content: [
        { toolUse: { toolUseId: "tooluse_1", name: "get_weather", input: { city: "Paris" } } },
        { toolUse: { toolUseId: "tooluse_2", name: "get_weather", input: {} } },
      ],
    },
    {
      role: "user",
      content: [
        { toolResult: { toolUseId: "tooluse_1", content: [{ text: "18°C" }] } },
        { toolResult: { toolUseId: "tooluse_2", content: [{ text: "21°C" }] } },
        { text: "Thanks" },
      ],
    },
  ]);
  assert.deepEqual(out.toolConfig, { tools: [WEATHER_SPEC], toolChoice: { auto: {} } });
});

Deno.test("toConverseRequest() puts tool results before text in a merged user turn", () => {
  const out = toConverseRequest(req([
    { role: "user", content: "Go" },
    {
      role: "assistant",
      tool_calls: [{ id: "t1", type: "function", function: { name: "f", arguments: "{}" } }],
    },
    { role: "user", content: "(also, hurry)" },
    { role: "tool", tool_call_id: "t1", content: "" },
  ], { tools: [WEATHER_TOOL] }));
  assert.deepEqual(out.messages[2], {
    role: "user",
    content: [
      { toolResult: { toolUseId: "t1", content: [{ text: " " }] } },
      { text: "(also, hurry)" },
    ],
  });
});

Deno.test("toConverseRequest() maps tools and tool_choice", async (t) => {
  await t.step("no tool_choice: tools only (Converse defaults to auto)", () => {
    const bare = { type: "function", function: { name: "ping" } };
    assert.deepEqual(toConverseRequest(req(HI, { tools: [bare] })).toolConfig, {
      tools: [{
        toolSpec: { name: "ping", inputSchema: { json: { type: "object", properties: {} } } },
      }],
    });
  });
  await t.step("required → any", () => {
    const out = toConverseRequest(req(HI, { tools: [WEATHER_TOOL], tool_choice: "required" }));
    assert.deepEqual(out.toolConfig?.toolChoice, { any: {} });
  });
  await t.step("a named function → tool", () => {
    const out = toConverseRequest(req(HI, {
      tools: [WEATHER_TOOL],
      tool_choice: { type: "function", function: { name: "get_weather" } },
    }));
    assert.deepEqual(out.toolConfig?.toolChoice, { tool: { name: "get_weather" } });
  });
  await t.step("none without tool history → no toolConfig at all", () => {
    const out = toConverseRequest(req(HI, { tools: [WEATHER_TOOL], tool_choice: "none" }));
    assert.equal(out.toolConfig, undefined);
  });
  await t.step("none, or no tools, with tool history: the history as text, no toolConfig", () => {
    const history = [
      { role: "user" as const, content: "Go" },
      {
        role: "assistant" as const,
        content: null,
        tool_calls: [{
          id: "t1",
          type: "function" as const,
          function: { name: "get_weather", arguments: '{"city":"Paris"}' },
        }],
      },
      { role: "tool" as const, tool_call_id: "t1", content: "21C" },
      { role: "user" as const, content: "Summarise" },
    ];
    for (const extra of [{ tools: [WEATHER_TOOL], tool_choice: "none" }, {}]) {
      const out = toConverseRequest(req(history, extra));
      assert.equal(out.toolConfig, undefined, JSON.stringify(extra));
      assert.deepEqual(out.messages, [
        { role: "user", content: [{ text: "Go" }] },
        {
          role: "assistant",
          content: [{ text: '[called tool get_weather (t1) with {"city":"Paris"}]' }],
        },
        {
          role: "user",
          content: [{ text: "[result of get_weather (t1): 21C]" }, { text: "Summarise" }],
        },
      ]);
    }
  });
  await t.step("forcing a tool without tools is a 400", async () => {
    const err = await gatewayError(() => toConverseRequest(req(HI, { tool_choice: "required" })));
    assert.equal(err.info.param, "tool_choice");
  });
  await t.step("auto and none without tools are fine", () => {
    assert.equal(toConverseRequest(req(HI, { tool_choice: "auto" })).toolConfig, undefined);
    assert.equal(toConverseRequest(req(HI, { tool_choice: "none" })).toolConfig, undefined);
  });
  await t.step("a malformed tool is a 400 naming it", async () => {
    const err = await gatewayError(() =>
      toConverseRequest(req(HI, { tools: [{ type: "function", function: { name: "" } }] }))
    );
    assert.equal(err.info.param, "tools[0].function.name");
  });
});

Deno.test("toConverseRequest() appends a JSON instruction for response_format", () => {
  const out = toConverseRequest(req([{ role: "system", content: "Be terse." }, ...HI], {
    response_format: {
      type: "json_schema",
      json_schema: { name: "answer", schema: { type: "object" } },
    },
  }));
  assert.equal(out.system?.length, 2);
  assert.equal(out.system?.[0]?.text, "Be terse.");
  assert.match(
    out.system?.[1]?.text ?? "",
    /named "answer".*\n<json_schema>\n\{"type":"object"\}/s,
  );
});

Deno.test("toConverseRequest() refuses conversations it cannot express", async (t) => {
  await t.step("only system messages", async () => {
    const err = await gatewayError(() =>
      toConverseRequest(req([{ role: "system", content: "x" }]))
    );
    assert.equal(err.info.param, "messages");
  });
  await t.step("a tool message without tool_call_id", async () => {
    const err = await gatewayError(() =>
      toConverseRequest(req([...HI, { role: "tool", content: "x" }]))
    );
    assert.equal(err.info.param, "messages[1].tool_call_id");
  });
  await t.step("tool call arguments that are not a JSON object", async () => {
    const err = await gatewayError(() =>
      toConverseRequest(req([...HI, {
        role: "assistant",
        tool_calls: [{ id: "t", type: "function", function: { name: "f", arguments: "[1]" } }],
      }]))
    );
    assert.equal(err.info.param, "messages[1].tool_calls[0].function.arguments");
  });
  await t.step("the legacy function role", async () => {
    const err = await gatewayError(() =>
      toConverseRequest(req([...HI, { role: "function", name: "f", content: "x" }]))
    );
    assert.equal(err.info.param, "messages[1].role");
  });
});

Deno.test("toConverseRequest() does not mutate its input", () => {
  const body = req([{ role: "user", content: "Hi" }], { tools: [WEATHER_TOOL], temperature: 2 });
  const copy = structuredClone(body);
  toConverseRequest(body);
  assert.deepEqual(body, copy);
});

Deno.test("toConverseRequest(): top_k reaches Claude as an additional field, and is refused for other families", () => {
  const body = { model: "m", messages: [{ role: "user" as const, content: "Hi" }], top_k: 5 };
  for (
    const model of [
      "anthropic.claude-3-haiku-20240307-v1:0",
      "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    ]
  ) {
    assert.deepEqual(toConverseRequest(body, "bedrock", model).additionalModelRequestFields, {
      top_k: 5,
    });
  }
  assert.throws(
    () => toConverseRequest(body, "bedrock", "meta.llama3-70b-instruct-v1:0"),
    (err: unknown) =>
      err instanceof GatewayError && err.status === 400 && err.info.param === "top_k",
  );
  const { top_k: _, ...plain } = body;
  assert.equal(
    toConverseRequest(plain, "bedrock", "meta.llama3").additionalModelRequestFields,
    undefined,
  );
});

Deno.test("toConverseRequest(): reasoning_effort is Claude's extended thinking; other models refuse it", async () => {
  const out = toConverseRequest(
    req(HI, { reasoning_effort: "medium", temperature: 0.3, top_p: 0.5 }),
    "aws",
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
  );
  assert.deepEqual(out.additionalModelRequestFields, {
    thinking: { type: "enabled", budget_tokens: 8192 },
  });
  assert.deepEqual(out.inferenceConfig, { maxTokens: 8192 + 4096 });
  const limited = toConverseRequest(
    req(HI, { reasoning_effort: "high", max_tokens: 5000, top_p: 0.99 }),
    "aws",
    "anthropic.claude-3-7-sonnet-20250219-v1:0",
  );
  assert.deepEqual(limited.additionalModelRequestFields, {
    thinking: { type: "enabled", budget_tokens: 2500 },
  });
  assert.deepEqual(limited.inferenceConfig, { maxTokens: 5000, topP: 0.99 });
  const err = await gatewayError(() =>
    toConverseRequest(req(HI, { reasoning_effort: "high" }), "aws", "meta.llama3-70b-instruct-v1:0")
  );
  assert.equal(err.info.param, "reasoning_effort");
  assert.match(err.message, /model "meta\.llama3-70b-instruct-v1:0"/);
  // "none" asks for nothing a model lacks.
  const none = toConverseRequest(
    req(HI, { reasoning_effort: "none" }),
    "aws",
    "meta.llama3-70b-instruct-v1:0",
  );
  assert.equal(none.additionalModelRequestFields, undefined);
});

Deno.test("toConverseRequest(): toolUseIds Bedrock refuses are rewritten, at most 64 characters, paired", () => {
  const long = `call.${"x".repeat(80)}`;
  const out = toConverseRequest(req([
    { role: "user", content: "Weather?" },
    {
      role: "assistant",
      content: null,
      tool_calls: [{
        id: long,
        type: "function",
        function: { name: "get_weather", arguments: "{}" },
      }],
    },
    { role: "tool", tool_call_id: long, content: "Sunny" },
  ], { tools: [WEATHER_TOOL] }));
  const use = out.messages[1]!.content[0] as { toolUse: { toolUseId: string } };
  const result = out.messages[2]!.content[0] as { toolResult: { toolUseId: string } };
  assert.match(use.toolUse.toolUseId, /^[a-zA-Z0-9_-]{1,64}$/);
  assert.equal(use.toolUse.toolUseId.length, 64);
  assert.equal(result.toolResult.toolUseId, use.toolUse.toolUseId);
});

Deno.test("toConverseRequest(): parallel_tool_calls false is Claude's disable_parallel_tool_use, dropped elsewhere, never a 400", async (t) => {
  const tools = { tools: [WEATHER_TOOL], parallel_tool_calls: false };
  await t.step("Claude, no tool_choice: tool_choice with its type", () => {
    const out = toConverseRequest(req(HI, tools), "bedrock", MODEL_ID);
    assert.deepEqual(out.additionalModelRequestFields, {
      tool_choice: { type: "auto", disable_parallel_tool_use: true },
    });
    assert.equal(out.toolConfig?.toolChoice, undefined);
  });
  await t.step("Claude, a forced tool: the flag alone beside toolConfig.toolChoice", () => {
    const out = toConverseRequest(
      req(HI, { ...tools, tool_choice: { type: "function", function: { name: "get_weather" } } }),
      "bedrock",
      MODEL_ID,
    );
    assert.deepEqual(out.toolConfig?.toolChoice, { tool: { name: "get_weather" } });
    assert.deepEqual(out.additionalModelRequestFields, {
      tool_choice: { disable_parallel_tool_use: true },
    });
  });
  await t.step("Claude with top_k: both additional fields", () => {
    const out = toConverseRequest(req(HI, { ...tools, top_k: 5 }), "bedrock", MODEL_ID);
    assert.deepEqual(out.additionalModelRequestFields, {
      top_k: 5,
      tool_choice: { type: "auto", disable_parallel_tool_use: true },
    });
  });
  await t.step("another family: dropped", () => {
    const out = toConverseRequest(req(HI, tools), "bedrock", "amazon.nova-pro-v1:0");
    assert.equal(out.additionalModelRequestFields, undefined);
    assert.equal(out.toolConfig?.tools.length, 1);
  });
  await t.step("no tools (or tool_choice none): nothing to say, nothing sent", () => {
    for (const extra of [{}, { tools: [WEATHER_TOOL], tool_choice: "none" }]) {
      const out = toConverseRequest(
        req(HI, { ...extra, parallel_tool_calls: false }),
        "bedrock",
        MODEL_ID,
      );
      assert.equal(out.additionalModelRequestFields, undefined);
      assert.equal(out.toolConfig, undefined);
    }
  });
  await t.step("true is the default: nothing sent", () => {
    const out = toConverseRequest(req(HI, { ...tools, parallel_tool_calls: true }), "b", MODEL_ID);
    assert.equal(out.additionalModelRequestFields, undefined);
  });
});
