import assert from "node:assert/strict";
import {
  DEFAULT_MAX_TOKENS,
  toAnthropicRequest,
} from "../../../src/providers/anthropic/request.ts";
import type { OpenAIMessage } from "../../../src/schema/openai.ts";
import { HI, requestBuilder, WEATHER_TOOL } from "../../helpers/requests.ts";
import { gatewayError } from "./helpers.ts";

const MODEL = "claude-sonnet-4-5";

const req = requestBuilder("anthropic/claude");

Deno.test("toAnthropicRequest() maps a minimal request and defaults max_tokens", () => {
  assert.deepEqual(toAnthropicRequest(req(HI), MODEL), {
    model: MODEL,
    messages: [{ role: "user", content: "Hi" }],
    max_tokens: DEFAULT_MAX_TOKENS,
  });
  assert.equal(DEFAULT_MAX_TOKENS, 4096);
});

Deno.test("toAnthropicRequest() hoists system and developer messages in order", () => {
  const out = toAnthropicRequest(
    req([
      { role: "system", content: "Be brief." },
      { role: "developer", content: [{ type: "text", text: "Answer in French." }] },
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Bonjour" },
      { role: "system", content: "Never use emoji." },
      { role: "user", content: "Ça va ?" },
    ]),
    MODEL,
  );
  assert.equal(out.system, "Be brief.\n\nAnswer in French.\n\nNever use emoji.");
  assert.deepEqual(out.messages, [
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Bonjour" },
    { role: "user", content: "Ça va ?" },
  ]);
});

Deno.test("toAnthropicRequest() merges consecutive same-role messages into one turn", () => {
  const out = toAnthropicRequest(
    req([
      { role: "user", content: "First" },
      { role: "user", content: [{ type: "text", text: "Second" }] },
      { role: "assistant", content: "A" },
      { role: "assistant", content: "B" },
      { role: "user", content: "" }, // empty: Anthropic refuses empty text blocks
      { role: "user", content: "Third" },
    ]),
    MODEL,
  );
  assert.deepEqual(out.messages, [
    {
      role: "user",
      content: [{ type: "text", text: "First" }, { type: "text", text: "Second" }],
    },
    { role: "assistant", content: [{ type: "text", text: "A" }, { type: "text", text: "B" }] },
    { role: "user", content: "Third" },
  ]);
});

Deno.test("toAnthropicRequest() maps image_url parts to base64 and url sources", async (t) => {
  await t.step("data: URL and https URL", () => {
    const out = toAnthropicRequest(
      req([{
        role: "user",
        content: [
          { type: "text", text: "Compare" },
          { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } },
          { type: "image_url", image_url: { url: "https://example.com/cat.jpg", detail: "high" } },
        ],
      }]),
      MODEL,
    );
    assert.deepEqual(out.messages[0]?.content, [
      { type: "text", text: "Compare" },
      { type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } },
      { type: "image", source: { type: "url", url: "https://example.com/cat.jpg" } },
    ]);
  });
  for (
    const url of ["data:image/png,rawbytes", "data:;base64,AAAA", "file:///etc/passwd", "ftp://x"]
  ) {
    await t.step(`refuses ${url}`, async () => {
      const err = await gatewayError(() =>
        toAnthropicRequest(
          req([{ role: "user", content: [{ type: "image_url", image_url: { url } }] }]),
          MODEL,
        )
      );
      assert.equal(err.status, 400);
      assert.equal(err.info.param, "messages[0].content[0].image_url.url");
    });
  }
});

Deno.test("toAnthropicRequest() maps tools and every tool_choice form", async (t) => {
  const cases: [string, unknown, unknown][] = [
    ["absent", undefined, undefined],
    ["auto", "auto", { type: "auto" }],
    ["required", "required", { type: "any" }],
    ["none", "none", { type: "none" }],
    [
      "named function",
      { type: "function", function: { name: "get_weather" } },
      { type: "tool", name: "get_weather" },
    ],
  ];
  for (const [label, choice, expected] of cases) {
    await t.step(label, () => {
      const out = toAnthropicRequest(
        req(HI, {
          tools: [WEATHER_TOOL],
          ...(choice === undefined ? {} : { tool_choice: choice }),
        }),
        MODEL,
      );
      assert.deepEqual(out.tools, [{
        name: "get_weather",
        description: "Current weather",
        input_schema: WEATHER_TOOL.function.parameters,
      }]);
      assert.deepEqual(out.tool_choice, expected);
    });
  }
  await t.step("a function without parameters gets an empty object schema", () => {
    const out = toAnthropicRequest(
      req(HI, { tools: [{ type: "function", function: { name: "ping" } }] }),
      MODEL,
    );
    assert.deepEqual(out.tools, [{
      name: "ping",
      input_schema: { type: "object", properties: {} },
    }]);
  });
});

Deno.test("toAnthropicRequest() maps parallel_tool_calls:false to disable_parallel_tool_use", async (t) => {
  const cases: [string, unknown, unknown][] = [
    ["no tool_choice", undefined, { type: "auto", disable_parallel_tool_use: true }],
    ["required", "required", { type: "any", disable_parallel_tool_use: true }],
    [
      "named",
      { type: "function", function: { name: "get_weather" } },
      { type: "tool", name: "get_weather", disable_parallel_tool_use: true },
    ],
    ["none keeps its shape", "none", { type: "none" }],
  ];
  for (const [label, choice, expected] of cases) {
    await t.step(label, () => {
      const out = toAnthropicRequest(
        req(HI, {
          tools: [WEATHER_TOOL],
          parallel_tool_calls: false,
          ...(choice === undefined ? {} : { tool_choice: choice }),
        }),
        MODEL,
      );
      assert.deepEqual(out.tool_choice, expected);
    });
  }
  await t.step("parallel_tool_calls:true changes nothing", () => {
    const out = toAnthropicRequest(
      req(HI, { tools: [WEATHER_TOOL], parallel_tool_calls: true }),
      MODEL,
    );
    assert.equal(out.tool_choice, undefined);
  });
});

Deno.test("toAnthropicRequest() handles tool_choice without tools", async (t) => {
  await t.step("auto and none are dropped", () => {
    for (const choice of ["auto", "none"]) {
      const out = toAnthropicRequest(req(HI, { tool_choice: choice }), MODEL);
      assert.equal(out.tool_choice, undefined);
      assert.equal(out.tools, undefined);
    }
  });
  await t.step("required is a 400", async () => {
    const err = await gatewayError(() =>
      toAnthropicRequest(req(HI, { tool_choice: "required" }), MODEL)
    );
    assert.equal(err.info.param, "tool_choice");
  });
  await t.step("a malformed tool_choice is a 400", async () => {
    const err = await gatewayError(() =>
      toAnthropicRequest(req(HI, { tools: [WEATHER_TOOL], tool_choice: "sometimes" }), MODEL)
    );
    assert.equal(err.info.param, "tool_choice");
  });
  await t.step("a non-function tool is a 400", async () => {
    const err = await gatewayError(() =>
      toAnthropicRequest(req(HI, { tools: [{ type: "custom", custom: { name: "x" } }] }), MODEL)
    );
    assert.equal(err.info.param, "tools[0].type");
  });
});

Deno.test("toAnthropicRequest() maps tool calls and merges tool results into one user turn", () => {
  const out = toAnthropicRequest(
    req([
      { role: "user", content: "Weather in Paris and Rome?" },
      {
        role: "assistant",
        content: "Checking both.",
        tool_calls: [
          {
            id: "toolu_1",
            type: "function",
            function: { name: "get_weather", arguments: '{"city":"Paris"}' },
          },
          {
            id: "toolu_2",
            type: "function",
            function: { name: "get_weather", arguments: '{"city":"Rome"}' },
          },
        ],
      },
      { role: "tool", tool_call_id: "toolu_1", content: "18°C" },
      { role: "tool", tool_call_id: "toolu_2", content: [{ type: "text", text: "24°C" }] },
      { role: "user", content: "Which is warmer?" },
    ], { tools: [WEATHER_TOOL] }),
    MODEL,
  );
  assert.deepEqual(out.messages, [
    { role: "user", content: "Weather in Paris and Rome?" },
    {
      role: "assistant",
      content: [
        { type: "text", text: "Checking both." },
        { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } },
        { type: "tool_use", id: "toolu_2", name: "get_weather", input: { city: "Rome" } },
      ],
    },
    {
      role: "user",
      content: [
        { type: "tool_result", tool_use_id: "toolu_1", content: "18°C" },
        { type: "tool_result", tool_use_id: "toolu_2", content: [{ type: "text", text: "24°C" }] },
        { type: "text", text: "Which is warmer?" },
      ],
    },
  ]);
});

Deno.test("toAnthropicRequest() puts tool results before text in a merged user turn", () => {
  const out = toAnthropicRequest(
    req([
      { role: "user", content: "Go" },
      {
        role: "assistant",
        content: null,
        tool_calls: [{ id: "t1", type: "function", function: { name: "f", arguments: "" } }],
      },
      { role: "user", content: "(tool output follows)" },
      { role: "tool", tool_call_id: "t1", content: "done" },
    ], { tools: [WEATHER_TOOL] }),
    MODEL,
  );
  assert.deepEqual(out.messages.slice(1), [
    { role: "assistant", content: [{ type: "tool_use", id: "t1", name: "f", input: {} }] },
    {
      role: "user",
      content: [
        { type: "tool_result", tool_use_id: "t1", content: "done" },
        { type: "text", text: "(tool output follows)" },
      ],
    },
  ]);
});

Deno.test("toAnthropicRequest() refuses malformed tool calls and results", async (t) => {
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
      "a legacy function_call",
      { role: "assistant", function_call: { name: "f", arguments: "{}" } },
      "messages[1].function_call",
    ],
    ["the legacy function role", { role: "function", name: "f", content: "x" }, "messages[1].role"],
  ];
  for (const [label, message, param] of cases) {
    await t.step(label, async () => {
      const err = await gatewayError(() =>
        toAnthropicRequest(req([{ role: "user", content: "Hi" }, message]), MODEL)
      );
      assert.equal(err.code, "invalid_request");
      assert.equal(err.status, 400);
      assert.equal(err.info.param, param);
    });
  }
});

Deno.test("toAnthropicRequest() maps sampling, limits, stop, stream and user", async (t) => {
  await t.step("every mapped field", () => {
    const out = toAnthropicRequest(
      req(HI, {
        max_tokens: 300,
        temperature: 0.7,
        top_p: 0.9,
        top_k: 40,
        stop: ["\n\nHuman:", "END"],
        stream: true,
        user: "user-42",
      }),
      "claude-sonnet-4-20250514",
    );
    assert.deepEqual(out, {
      model: "claude-sonnet-4-20250514",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 300,
      temperature: 0.7,
      top_p: 0.9,
      top_k: 40,
      stop_sequences: ["\n\nHuman:", "END"],
      stream: true,
      metadata: { user_id: "user-42" },
    });
  });
  await t.step("Claude 4.1 and later take temperature or top_p, not both: temperature wins", () => {
    for (const model of ["claude-sonnet-4-5", "claude-opus-4-1-20250805", "claude-haiku-4-5"]) {
      const both = toAnthropicRequest(req(HI, { temperature: 0.7, top_p: 1 }), model);
      assert.equal(both.temperature, 0.7, model);
      assert.equal(both.top_p, undefined, model);
      const alone = toAnthropicRequest(req(HI, { top_p: 0.8 }), model);
      assert.equal(alone.top_p, 0.8, model);
    }
    for (const model of ["claude-sonnet-4-20250514", "claude-3-7-sonnet-latest"]) {
      const both = toAnthropicRequest(req(HI, { temperature: 0.7, top_p: 0.9 }), model);
      assert.deepEqual([both.temperature, both.top_p], [0.7, 0.9], model);
    }
  });
  await t.step("max_completion_tokens wins over max_tokens", () => {
    const out = toAnthropicRequest(req(HI, { max_tokens: 10, max_completion_tokens: 20 }), MODEL);
    assert.equal(out.max_tokens, 20);
  });
  await t.step("temperature above Anthropic's 1 is clamped", () => {
    assert.equal(toAnthropicRequest(req(HI, { temperature: 1.8 }), MODEL).temperature, 1);
    assert.equal(toAnthropicRequest(req(HI, { temperature: 0 }), MODEL).temperature, 0);
  });
  await t.step("a stop string becomes a one-element list", () => {
    assert.deepEqual(toAnthropicRequest(req(HI, { stop: "END" }), MODEL).stop_sequences, ["END"]);
  });
  await t.step("stop of the wrong type is a 400", async () => {
    const err = await gatewayError(() => toAnthropicRequest(req(HI, { stop: [1] }), MODEL));
    assert.equal(err.info.param, "stop");
  });
  await t.step("safety_identifier stands in for a missing user", () => {
    const out = toAnthropicRequest(req(HI, { safety_identifier: "hash-1" }), MODEL);
    assert.deepEqual(out.metadata, { user_id: "hash-1" });
  });
  await t.step("stream:false is not sent", () => {
    assert.equal(toAnthropicRequest(req(HI, { stream: false }), MODEL).stream, undefined);
  });
});

Deno.test("toAnthropicRequest() turns JSON mode into a system instruction", async (t) => {
  await t.step("json_object", () => {
    const out = toAnthropicRequest(
      req([{ role: "system", content: "You extract data." }, ...HI], {
        response_format: { type: "json_object" },
      }),
      MODEL,
    );
    assert.match(
      out.system ?? "",
      /^You extract data\.\n\nRespond with a single valid JSON object/,
    );
  });
  await t.step("json_schema includes the schema", () => {
    const schema = { type: "object", properties: { name: { type: "string" } } };
    const out = toAnthropicRequest(
      req(HI, {
        response_format: { type: "json_schema", json_schema: { name: "person", schema } },
      }),
      MODEL,
    );
    assert.match(out.system ?? "", /named "person" that conforms to this JSON Schema/);
    assert.ok(out.system?.includes(JSON.stringify(schema)), out.system ?? "no system prompt");
  });
  await t.step("text adds nothing", () => {
    const out = toAnthropicRequest(req(HI, { response_format: { type: "text" } }), MODEL);
    assert.equal(out.system, undefined);
  });
  await t.step("json_schema without a schema is a 400", async () => {
    const err = await gatewayError(() =>
      toAnthropicRequest(
        req(HI, { response_format: { type: "json_schema", json_schema: { name: "x" } } }),
        MODEL,
      )
    );
    assert.equal(err.info.param, "response_format.json_schema.schema");
  });
});

Deno.test("toAnthropicRequest() refuses parameters Anthropic cannot honour", async (t) => {
  const cases: [string, unknown][] = [
    ["n", 2],
    ["logprobs", true],
    ["top_logprobs", 3],
    ["presence_penalty", 0.5],
    ["frequency_penalty", -1],
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
      const err = await gatewayError(() =>
        toAnthropicRequest(req(HI, { [param]: value }), MODEL, "claude")
      );
      assert.equal(err.code, "invalid_request");
      assert.equal(err.status, 400);
      assert.equal(err.retryable, false);
      assert.equal(err.info.param, param);
      assert.equal(err.message, `Parameter "${param}" is not supported by provider "claude"`);
    });
  }
});

Deno.test("toAnthropicRequest() accepts neutral values and drops harmless parameters", () => {
  const out = toAnthropicRequest(
    req(HI, {
      n: 1,
      logprobs: false,
      top_logprobs: 0,
      presence_penalty: 0,
      frequency_penalty: 0,
      logit_bias: {},
      audio: null,
      modalities: ["text"],
      seed: 7,
      service_tier: "auto",
      store: false,
      metadata: { team: "ml" },
      prompt_cache_key: "k",
      stream_options: { include_usage: true },
      some_future_field: { x: 1 },
    }),
    MODEL,
  );
  assert.deepEqual(out, {
    model: MODEL,
    messages: [{ role: "user", content: "Hi" }],
    max_tokens: DEFAULT_MAX_TOKENS,
  });
});

Deno.test("toAnthropicRequest() refuses content parts it cannot translate", async (t) => {
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
      const err = await gatewayError(() => toAnthropicRequest(req([message, ...HI]), MODEL));
      assert.equal(err.status, 400);
      assert.equal(err.info.param, param);
      assert.match(
        err.message,
        /^Content part type "\w+" in messages\[0\]\.content\[\d\] is not supported by provider "anthropic"$/,
      );
    });
  }
});

Deno.test("toAnthropicRequest() keeps an assistant refusal part as text", () => {
  const out = toAnthropicRequest(
    req([...HI, { role: "assistant", content: [{ type: "refusal", refusal: "I can't help." }] }]),
    MODEL,
  );
  assert.deepEqual(out.messages[1], { role: "assistant", content: "I can't help." });
});

Deno.test("toAnthropicRequest() refuses a request with only system messages", async () => {
  const err = await gatewayError(() =>
    toAnthropicRequest(req([{ role: "system", content: "Be brief." }]), MODEL)
  );
  assert.equal(err.status, 400);
  assert.equal(err.info.param, "messages");
});

Deno.test("toAnthropicRequest() does not mutate the client's body", () => {
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
    parallel_tool_calls: false,
    response_format: { type: "json_object" },
  });
  const before = structuredClone(body);
  toAnthropicRequest(body, MODEL);
  assert.deepEqual(body, before);
});

Deno.test("toAnthropicRequest(): reasoning_effort is extended thinking, within Claude's rules", async (t) => {
  const TOOL_LOOP: OpenAIMessage[] = [
    { role: "user", content: "Weather in Paris?" },
    {
      role: "assistant",
      content: null,
      tool_calls: [{
        id: "call_1",
        type: "function",
        function: { name: "get_weather", arguments: '{"city":"Paris"}' },
      }],
    },
    { role: "tool", tool_call_id: "call_1", content: "Sunny" },
  ];
  await t.step("a budget on Google's scale, with room for the answer when no limit is set", () => {
    for (
      const [effort, budget] of [["minimal", 1024], ["low", 1024], ["medium", 8192], [
        "high",
        24576,
      ]] as const
    ) {
      const out = toAnthropicRequest(req(HI, { reasoning_effort: effort }), MODEL);
      assert.deepEqual(out.thinking, { type: "enabled", budget_tokens: budget }, effort);
      assert.equal(out.max_tokens, budget + 4096, effort);
    }
  });
  await t.step("the client's limit counts the thinking, and leaves the answer room", () => {
    // [limit, effort, budget]: the answer keeps 4,096 tokens, or half of a smaller limit.
    for (
      const [limit, effort, budget] of [
        [10_000, "high", 5_904],
        [30_000, "high", 24_576],
        [5_000, "medium", 2_500],
        [1_500, "low", 1_024],
        [1_025, "high", 1_024],
      ] as const
    ) {
      const out = toAnthropicRequest(
        req(HI, { reasoning_effort: effort, max_completion_tokens: limit }),
        MODEL,
      );
      assert.deepEqual(out.thinking, { type: "enabled", budget_tokens: budget }, String(limit));
      assert.equal(out.max_tokens, limit);
    }
  });
  await t.step(
    "sampling as thinking takes it: temperature and top_k unset, top_p >= 0.95 kept",
    () => {
      const out = toAnthropicRequest(
        req(HI, { reasoning_effort: "low", temperature: 0.2, top_k: 5, top_p: 0.97 }),
        MODEL,
      );
      assert.equal(out.temperature, undefined);
      assert.equal(out.top_k, undefined);
      assert.equal(out.top_p, 0.97);
      const lower = toAnthropicRequest(req(HI, { reasoning_effort: "low", top_p: 0.5 }), MODEL);
      assert.equal(lower.top_p, undefined);
    },
  );
  await t.step("none, or a turn answering tool calls, goes without thinking", () => {
    const none = toAnthropicRequest(req(HI, { reasoning_effort: "none", temperature: 0.2 }), MODEL);
    assert.equal(none.thinking, undefined);
    assert.equal(none.temperature, 0.2);
    const loop = toAnthropicRequest(
      req(TOOL_LOOP, { reasoning_effort: "high", tools: [WEATHER_TOOL] }),
      MODEL,
    );
    assert.equal(loop.thinking, undefined);
    assert.equal(loop.max_tokens, 4096);
    // An assistant prefill: thinking does not take one.
    const prefill = toAnthropicRequest(
      req([...HI, { role: "assistant", content: "Sure," }], { reasoning_effort: "high" }),
      MODEL,
    );
    assert.equal(prefill.thinking, undefined);
  });
  await t.step(
    "refused with a 400 naming the field: a limit too small, a forced tool, a bad value",
    async () => {
      for (
        const [extra, param] of [
          [{ max_tokens: 1024 }, "max_tokens"],
          [{ max_completion_tokens: 500 }, "max_completion_tokens"],
          [{ max_completion_tokens: null, max_tokens: 500 }, "max_tokens"],
          [{ tools: [WEATHER_TOOL], tool_choice: "required" }, "tool_choice"],
          [{
            tools: [WEATHER_TOOL],
            tool_choice: { type: "function", function: { name: "get_weather" } },
          }, "tool_choice"],
        ] as const
      ) {
        const err = await gatewayError(() =>
          toAnthropicRequest(req(HI, { reasoning_effort: "low", ...extra }), MODEL, "claude")
        );
        assert.equal(err.status, 400);
        assert.equal(err.info.param, param, JSON.stringify(extra));
      }
      const err = await gatewayError(() =>
        toAnthropicRequest(req(HI, { reasoning_effort: "extreme" }), MODEL, "claude")
      );
      assert.equal(err.info.param, "reasoning_effort");
      assert.match(err.message, /none, minimal, low, medium, high/);
    },
  );
});

Deno.test("toAnthropicRequest(): tool-call ids Anthropic refuses are rewritten, calls and results paired", () => {
  const call = (id: string) => ({
    role: "assistant" as const,
    content: null,
    tool_calls: [{
      id,
      type: "function" as const,
      function: { name: "get_weather", arguments: "{}" },
    }],
  });
  const result = (id: string, content: string) => ({
    role: "tool" as const,
    tool_call_id: id,
    content,
  });
  const out = toAnthropicRequest(
    req([
      { role: "user", content: "Weather?" },
      // Another backend's id shape, then an id it reused on the next turn.
      call("functions.get_weather:0"),
      result("functions.get_weather:0", "Sunny"),
      call("call_0"),
      result("call_0", "Rain"),
      call("call_0"),
      result("call_0", "Snow"),
      call("toolu_01Valid"),
      result("toolu_01Valid", "Fog"),
    ], { tools: [WEATHER_TOOL] }),
    MODEL,
  );
  const blocks = out.messages.flatMap((m) => Array.isArray(m.content) ? m.content : []);
  const uses = blocks.filter((b) => b.type === "tool_use").map((b) => (b as { id: string }).id);
  const results = blocks.filter((b) => b.type === "tool_result")
    .map((b) => (b as { tool_use_id: string }).tool_use_id);
  assert.deepEqual(uses, ["functions_get_weather_0", "call_0", "call_0_2", "toolu_01Valid"]);
  assert.deepEqual(results, uses, "each result answers its own call");
  for (const id of uses) assert.match(id, /^[a-zA-Z0-9_-]{1,64}$/);
  // One turn calling twice under one id: the results take the calls in order.
  const twice = toAnthropicRequest(
    req([
      { role: "user", content: "Weather?" },
      {
        role: "assistant",
        content: null,
        tool_calls: [
          { id: "call_0", type: "function", function: { name: "get_weather", arguments: "{}" } },
          { id: "call_0", type: "function", function: { name: "get_weather", arguments: "{}" } },
        ],
      },
      result("call_0", "Sunny"),
      result("call_0", "Rain"),
    ], { tools: [WEATHER_TOOL] }),
    MODEL,
  );
  const last = twice.messages.at(-1)!.content as { tool_use_id: string }[];
  assert.deepEqual(last.map((b) => b.tool_use_id), ["call_0", "call_0_2"]);
});

Deno.test("toAnthropicRequest() without tools: a history's tool calls and results become text (Anthropic refuses the blocks without tools)", () => {
  const history: OpenAIMessage[] = [
    { role: "user", content: "Weather in Paris?" },
    {
      role: "assistant",
      content: null,
      tool_calls: [{
        id: "call_9",
        type: "function",
        function: { name: "get_weather", arguments: '{"city":"Paris"}' },
      }],
    },
    {
      role: "tool",
      tool_call_id: "call_9",
      content: [
        { type: "text", text: "18°C" },
        { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } },
      ],
    },
    { role: "user", content: "Summarise." },
  ];
  const out = toAnthropicRequest(req(history), MODEL);
  assert.equal(out.tools, undefined);
  assert.deepEqual(out.messages, [
    { role: "user", content: "Weather in Paris?" },
    {
      role: "assistant",
      content: [{ type: "text", text: '[called tool get_weather (call_9) with {"city":"Paris"}]' }],
    },
    {
      role: "user",
      content: [
        { type: "text", text: "[result of get_weather (call_9): 18°C]" },
        {
          type: "image",
          source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" },
        },
        { type: "text", text: "Summarise." },
      ],
    },
  ]);
  const json = JSON.stringify(out.messages);
  assert.doesNotMatch(json, /tool_use|tool_result/);
  // With tools offered, the blocks stay blocks.
  const withTools = toAnthropicRequest(req(history, { tools: [WEATHER_TOOL] }), MODEL);
  assert.match(JSON.stringify(withTools.messages), /"type":"tool_use".*"type":"tool_result"/);
});

Deno.test("toAnthropicRequest(): a tool result no earlier call names is a 400, with tools or without", async () => {
  const orphan: OpenAIMessage[] = [
    { role: "user", content: "hi" },
    { role: "tool", tool_call_id: "zzz", content: "x" },
  ];
  for (const tools of [undefined, [WEATHER_TOOL]]) {
    const err = await gatewayError(() =>
      toAnthropicRequest(req(orphan, tools ? { tools } : {}), MODEL)
    );
    assert.equal(err.status, 400);
    assert.equal(err.info.param, "messages[1].tool_call_id");
    assert.match(err.message, /"zzz" does not match a tool call/);
  }
});
