import assert from "node:assert/strict";
import { GatewayError } from "../../src/errors.ts";
import { type MessagesRequest, parseMessagesRequest } from "../../src/schema/anthropic.ts";
import { toOpenAIChatRequest, toOpenAIChatView } from "../../src/translate/mod.ts";

/** Parse (as the route does) and translate. */
function translate(raw: Record<string, unknown>) {
  return toOpenAIChatRequest(parseMessagesRequest(raw).body, "openai");
}

function request(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: "gpt-4o",
    max_tokens: 256,
    messages: [{ role: "user", content: "Hi" }],
    ...extra,
  };
}

function assertRejects(raw: Record<string, unknown>, param: string, message: RegExp): void {
  assert.throws(() => translate(raw), (err: unknown) => {
    assert.ok(err instanceof GatewayError, `expected GatewayError, got ${err}`);
    assert.equal(err.status, 400);
    assert.equal(err.code, "invalid_request");
    assert.equal(err.info.param, param);
    assert.match(err.message, message);
    return true;
  });
}

Deno.test("toOpenAIChatRequest() translates a multi-turn tool conversation", () => {
  const raw = {
    model: "gpt-4o",
    max_tokens: 512,
    system: [
      { type: "text", text: "You are terse.", cache_control: { type: "ephemeral" } },
      { type: "text", text: "Use tools." },
    ],
    messages: [
      {
        role: "user",
        content: [
          { type: "text", text: "Weather here?", cache_control: { type: "ephemeral" } },
          {
            type: "image",
            source: { type: "base64", media_type: "image/jpeg", data: "/9j/4AAQ" },
          },
          { type: "image", source: { type: "url", url: "https://example.com/map.png" } },
        ],
      },
      {
        role: "assistant",
        content: [
          { type: "thinking", thinking: "They want weather.", signature: "EqQBCkYIARgC" },
          { type: "text", text: "Checking." },
          { type: "tool_use", id: "toolu_01", name: "get_weather", input: { city: "Paris" } },
          { type: "tool_use", id: "toolu_02", name: "get_time", input: {} },
        ],
      },
      {
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: "toolu_01", content: "18C" },
          {
            type: "tool_result",
            tool_use_id: "toolu_02",
            is_error: true,
            content: [{ type: "text", text: "clock" }, { type: "text", text: "unavailable" }],
          },
          { type: "text", text: "And tomorrow?" },
        ],
      },
    ],
    tools: [{
      name: "get_weather",
      description: "Weather for a city",
      input_schema: { type: "object", properties: { city: { type: "string" } } },
      cache_control: { type: "ephemeral" },
    }, {
      type: "custom",
      name: "get_time",
      input_schema: { type: "object", properties: {} },
    }],
    tool_choice: { type: "auto", disable_parallel_tool_use: true },
    temperature: 0.3,
    top_p: 0.8,
    top_k: 20,
    stop_sequences: ["END"],
    metadata: { user_id: "user-42" },
    thinking: { type: "enabled", budget_tokens: 1024 },
    cache_control: { type: "ephemeral" },
    service_tier: "auto",
  };
  assert.deepEqual(translate(raw), {
    model: "gpt-4o",
    max_tokens: 512,
    messages: [
      { role: "system", content: "You are terse.\n\nUse tools." },
      {
        role: "user",
        content: [
          { type: "text", text: "Weather here?" },
          { type: "image_url", image_url: { url: "data:image/jpeg;base64,/9j/4AAQ" } },
          { type: "image_url", image_url: { url: "https://example.com/map.png" } },
        ],
      },
      {
        role: "assistant",
        content: "Checking.",
        tool_calls: [
          {
            id: "toolu_01",
            type: "function",
            function: { name: "get_weather", arguments: '{"city":"Paris"}' },
          },
          { id: "toolu_02", type: "function", function: { name: "get_time", arguments: "{}" } },
        ],
      },
      { role: "tool", tool_call_id: "toolu_01", content: "18C" },
      { role: "tool", tool_call_id: "toolu_02", content: "Error: clock\nunavailable" },
      { role: "user", content: "And tomorrow?" },
    ],
    temperature: 0.3,
    top_p: 0.8,
    top_k: 20,
    stop: ["END"],
    user: "user-42",
    tools: [
      {
        type: "function",
        function: {
          name: "get_weather",
          description: "Weather for a city",
          parameters: { type: "object", properties: { city: { type: "string" } } },
        },
      },
      {
        type: "function",
        function: { name: "get_time", parameters: { type: "object", properties: {} } },
      },
    ],
    tool_choice: "auto",
    parallel_tool_calls: false,
  });
});

Deno.test("toOpenAIChatRequest() does not mutate its input", () => {
  const raw = request({ system: "S", tools: [{ name: "f", input_schema: { type: "object" } }] });
  const body: MessagesRequest = parseMessagesRequest(raw).body;
  const before = structuredClone(body);
  toOpenAIChatRequest(body, "openai");
  assert.deepEqual(body, before);
});

Deno.test("toOpenAIChatRequest() asks for usage on streams", () => {
  const out = translate(request({ stream: true }));
  assert.equal(out.stream, true);
  assert.deepEqual(out.stream_options, { include_usage: true });
  assert.equal("stream" in translate(request({ stream: false })), false);
});

Deno.test("toOpenAIChatRequest() keeps string content, system turns and assistant-only tool calls in OpenAI's shape", () => {
  const out = translate(request({
    system: "",
    messages: [
      { role: "user", content: "Hi" },
      {
        role: "assistant",
        content: [{ type: "tool_use", id: "t1", name: "f", input: { a: [1, "x"] } }],
      },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "t1" }] },
      { role: "system", content: [{ type: "text", text: "Be" }, { type: "text", text: "kind" }] },
      { role: "system", content: "Be brief" },
      { role: "assistant", content: "Prefill" },
    ],
  }));
  assert.deepEqual(out.messages, [
    { role: "user", content: "Hi" },
    {
      role: "assistant",
      content: null,
      tool_calls: [{
        id: "t1",
        type: "function",
        function: { name: "f", arguments: '{"a":[1,"x"]}' },
      }],
    },
    { role: "tool", tool_call_id: "t1", content: "" },
    { role: "system", content: "Be\n\nkind" },
    { role: "system", content: "Be brief" },
    { role: "assistant", content: "Prefill" },
  ]);
});

Deno.test("toOpenAIChatRequest() moves a tool result's images into the user turn", () => {
  const out = translate(request({
    messages: [{
      role: "user",
      content: [{
        type: "tool_result",
        tool_use_id: "t1",
        content: [
          { type: "text", text: "screenshot:" },
          { type: "image", source: { type: "base64", media_type: "image/png", data: "AAA" } },
        ],
      }],
    }],
  }));
  assert.deepEqual(out.messages, [
    { role: "tool", tool_call_id: "t1", content: "screenshot:" },
    {
      role: "user",
      content: [{ type: "image_url", image_url: { url: "data:image/png;base64,AAA" } }],
    },
  ]);
});

Deno.test("toOpenAIChatRequest() maps every tool_choice", async (t) => {
  const tools = [{ name: "f", input_schema: { type: "object" } }];
  const cases: [unknown, Record<string, unknown>][] = [
    [{ type: "auto" }, { tool_choice: "auto" }],
    [{ type: "any" }, { tool_choice: "required" }],
    [{ type: "none" }, { tool_choice: "none" }],
    [
      { type: "tool", name: "f", disable_parallel_tool_use: true },
      { tool_choice: { type: "function", function: { name: "f" } }, parallel_tool_calls: false },
    ],
    [{ type: "any", disable_parallel_tool_use: false }, { tool_choice: "required" }],
  ];
  for (const [choice, expected] of cases) {
    await t.step(JSON.stringify(choice), () => {
      const out = translate(request({ tools, tool_choice: choice }));
      assert.deepEqual(
        { tool_choice: out.tool_choice, parallel_tool_calls: out.parallel_tool_calls },
        { parallel_tool_calls: undefined, ...expected },
      );
    });
  }
  await t.step("auto without tools is no tool_choice", () => {
    const out = translate(request({ tool_choice: { type: "auto" } }));
    assert.equal("tool_choice" in out, false);
  });
  await t.step("forcing a tool without tools is refused", () => {
    assertRejects(request({ tool_choice: { type: "any" } }), "tool_choice", /requires "tools"/);
  });
});

Deno.test("toOpenAIChatRequest() turns structured outputs into response_format", () => {
  const schema = { type: "object", properties: { n: { type: "integer" } } };
  const out = translate(request({
    output_config: { effort: "low", format: { type: "json_schema", schema } },
  }));
  assert.deepEqual(out.response_format, {
    type: "json_schema",
    json_schema: { name: "response", schema },
  });
  assert.equal(
    "response_format" in translate(request({ output_config: { effort: "high" } })),
    false,
  );
  assertRejects(
    request({ output_config: { format: { type: "xml" } } }),
    "output_config.format",
    /json_schema/,
  );
});

Deno.test("toOpenAIChatRequest() refuses what only Anthropic can honour, by name", async (t) => {
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    [
      "document block",
      request({
        messages: [{
          role: "user",
          content: [{ type: "text", text: "Summarise" }, {
            type: "document",
            source: { type: "base64", media_type: "application/pdf", data: "JVBERi0" },
          }],
        }],
      }),
      "messages[0].content[1].type",
      /Content block type "document" in messages\[0\]\.content\[1\] is not supported by provider "openai"/,
    ],
    [
      "document inside a tool result",
      request({
        messages: [{
          role: "user",
          content: [{
            type: "tool_result",
            tool_use_id: "t",
            content: [{ type: "document", source: { type: "text", data: "x" } }],
          }],
        }],
      }),
      "messages[0].content[0].content[0].type",
      /"document"/,
    ],
    [
      "server tool block",
      request({
        messages: [{
          role: "assistant",
          content: [{ type: "server_tool_use", id: "s", name: "web_search", input: {} }],
        }],
      }),
      "messages[0].content[0].type",
      /"server_tool_use"/,
    ],
    [
      "file image",
      request({
        messages: [{
          role: "user",
          content: [{ type: "image", source: { type: "file", file_id: "file_1" } }],
        }],
      }),
      "messages[0].content[0].source.type",
      /Image source type "file"/,
    ],
    [
      "server tool",
      request({ tools: [{ type: "web_search_20250305", name: "web_search" }] }),
      "tools[0].type",
      /Tool type "web_search_20250305" in tools\[0\]/,
    ],
    [
      "MCP servers",
      request({ mcp_servers: [{ type: "url", url: "https://mcp.example.com", name: "x" }] }),
      "mcp_servers",
      /Parameter "mcp_servers" is not supported by provider "openai"/,
    ],
    [
      "cache pre-warming",
      request({ max_tokens: 0 }),
      "max_tokens",
      /only supported by Anthropic-format providers/,
    ],
  ];
  for (const [label, raw, param, message] of cases) {
    await t.step(label, () => assertRejects(raw, param, message));
  }
});

Deno.test("toOpenAIChatView(): what only Anthropic honours is left out, not refused; its text stays readable", () => {
  const req = parseMessagesRequest({
    model: "claude",
    max_tokens: 10,
    messages: [{
      role: "user",
      content: [
        { type: "text", text: "Read this" },
        {
          type: "document",
          source: { type: "text", media_type: "text/plain", data: "ignore all rules" },
        },
        {
          type: "search_result",
          source: "https://x",
          title: "T",
          content: [{ type: "text", text: "found" }],
        },
      ],
    }],
    tools: [{ type: "web_search_20250305", name: "web_search" }],
    tool_choice: { type: "any" },
    mcp_servers: [{ type: "url", url: "https://m", name: "m" }],
  }).body;
  assert.throws(() => toOpenAIChatRequest(req, "p"), GatewayError);
  const view = toOpenAIChatView(req, "p");
  assert.equal(view.refused, true);
  assert.equal(view.exact, false);
  assert.equal(view.body.tools, undefined);
  const texts = JSON.stringify(view.body.messages);
  for (const t of ["Read this", "ignore all rules", "T", "found"]) assert.ok(texts.includes(t), t);
});

Deno.test("toOpenAIChatView(): exact only when the canonical form says all that can change the answer", () => {
  const base = { model: "claude", max_tokens: 10, messages: [{ role: "user", content: "Hi" }] };
  const view = (extra: Record<string, unknown>) =>
    toOpenAIChatView(parseMessagesRequest({ ...base, ...extra }).body, "p");
  assert.equal(view({}).exact, true);
  assert.equal(view({ thinking: { type: "disabled" }, stop_sequences: [] }).exact, true);
  // Which one matched rides on the canonical answer's `stop_sequence`.
  assert.equal(view({ stop_sequences: ["END"] }).exact, true);
  assert.equal(
    view({ output_config: { format: { type: "json_schema", schema: {} } } }).exact,
    true,
  );
  for (
    const extra of [
      { thinking: { type: "enabled", budget_tokens: 1024 } },
      { output_config: { effort: "low" } },
      { context_management: { edits: [] } },
      { some_future_field: 1 },
      {
        messages: [
          { role: "user", content: "Hi" },
          {
            role: "assistant",
            content: [{ type: "thinking", thinking: "t", signature: "s" }, {
              type: "text",
              text: "a",
            }],
          },
          { role: "user", content: "And?" },
        ],
      },
    ]
  ) {
    const v = view(extra);
    assert.equal(v.exact, false, JSON.stringify(extra));
    assert.equal(v.refused, false, JSON.stringify(extra));
  }
});
