import assert from "node:assert/strict";
import { GatewayError } from "../../src/errors.ts";
import { parseMessagesRequest, toAnthropicError } from "../../src/schema/anthropic.ts";

const GOOD = {
  model: "claude-sonnet-4-5",
  max_tokens: 1024,
  system: [{ type: "text", text: "Be brief.", cache_control: { type: "ephemeral" } }],
  messages: [
    {
      role: "user",
      content: [
        { type: "text", text: "What is in this image?" },
        {
          type: "image",
          source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" },
        },
        { type: "image", source: { type: "url", url: "https://example.com/a.png" } },
        { type: "document", source: { type: "text", media_type: "text/plain", data: "notes" } },
      ],
    },
    {
      role: "assistant",
      content: [
        { type: "thinking", thinking: "Hmm", signature: "sig" },
        { type: "tool_use", id: "toolu_1", name: "look", input: { zoom: 2 } },
      ],
    },
    {
      role: "user",
      content: [
        { type: "tool_result", tool_use_id: "toolu_1", content: [{ type: "text", text: "a cat" }] },
        { type: "tool_result", tool_use_id: "toolu_1", content: "again", is_error: true },
      ],
    },
    { role: "assistant", content: "A cat." },
    { role: "system", content: [{ type: "text", text: "Now answer in French." }] },
  ],
  tools: [
    { name: "look", description: "Look closer", input_schema: { type: "object" } },
    { type: "web_search_20250305", name: "web_search", max_uses: 3 },
  ],
  tool_choice: { type: "auto", disable_parallel_tool_use: true },
  stream: true,
  temperature: 0.5,
  top_p: 0.9,
  top_k: 40,
  stop_sequences: ["\n\nHuman:"],
  metadata: { user_id: "u-1" },
  thinking: { type: "enabled", budget_tokens: 2048 },
  vendor_extension: { keep: "me" },
};

/** Expect parseMessagesRequest(raw) to throw invalid_request naming `param`. */
function assertRejects(raw: unknown, param: string, message?: RegExp): void {
  assert.throws(() => parseMessagesRequest(raw), (err: unknown) => {
    assert.ok(err instanceof GatewayError, `expected GatewayError, got ${err}`);
    assert.equal(err.code, "invalid_request");
    assert.equal(err.status, 400);
    assert.equal(err.info.param, param);
    assert.ok(err.message.includes(param === "body" ? "JSON object" : param), err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

const withField = (field: string, value: unknown) => ({ ...GOOD, [field]: value });
const withContent = (content: unknown) => ({
  ...GOOD,
  messages: [{ role: "user", content }],
});

Deno.test("parseMessagesRequest() accepts a full request and keeps unknown fields", () => {
  const { body, gateway } = parseMessagesRequest(structuredClone(GOOD));
  assert.deepEqual(body, GOOD);
  assert.deepEqual(gateway, {});
});

Deno.test("parseMessagesRequest() strips x-gateway from the body and parses it", () => {
  const { body, gateway } = parseMessagesRequest({
    ...GOOD,
    "x-gateway": { timeout: 3, provider: "anthropic", cache: true },
  });
  assert.equal("x-gateway" in body, false);
  assert.deepEqual(body, GOOD);
  assert.deepEqual(gateway, { timeout: 3, provider: "anthropic", cache: true });
  assertRejects({ ...GOOD, "x-gateway": { timeout: -1 } }, "x-gateway.timeout");
  assertRejects({ ...GOOD, "x-gateway": "fast" }, "x-gateway");
});

Deno.test("parseMessagesRequest() requires max_tokens, as Anthropic does", () => {
  const { max_tokens: _, ...without } = GOOD;
  assertRejects(without, "max_tokens", /Missing required field "max_tokens"/);
  assertRejects(withField("max_tokens", null), "max_tokens", /Missing/);
  assertRejects(withField("max_tokens", "1024"), "max_tokens", /integer/);
  assertRejects(withField("max_tokens", 10.5), "max_tokens", /integer/);
  assertRejects(withField("max_tokens", -1), "max_tokens", /at least 0/);
  // 0 pre-warms Anthropic's prompt cache; the translation refuses it for other providers.
  assert.equal(parseMessagesRequest(withField("max_tokens", 0)).body.max_tokens, 0);
});

Deno.test("parseMessagesRequest() names the field for each malformed top-level value", () => {
  assertRejects([GOOD], "body");
  assertRejects("hello", "body");
  assertRejects({ ...GOOD, model: undefined }, "model", /Missing/);
  assertRejects(withField("model", ""), "model");
  assertRejects(withField("model", 7), "model");
  assertRejects({ ...GOOD, messages: undefined }, "messages", /Missing/);
  assertRejects(withField("messages", {}), "messages");
  assertRejects(withField("messages", []), "messages", /at least one/);
  assertRejects(withField("system", 5), "system");
  assertRejects(withField("system", [{ type: "image" }]), "system[0].type");
  assertRejects(withField("system", [{ type: "text" }]), "system[0].text");
  assertRejects(withField("stream", "yes"), "stream");
  assertRejects(withField("temperature", 1.5), "temperature", /between 0 and 1/);
  assertRejects(withField("temperature", "hot"), "temperature");
  assertRejects(withField("top_p", -0.1), "top_p");
  assertRejects(withField("top_k", 2.5), "top_k");
  assertRejects(withField("stop_sequences", "STOP"), "stop_sequences");
  assertRejects(withField("stop_sequences", [1]), "stop_sequences");
  assertRejects(withField("metadata", "u"), "metadata");
  assertRejects(withField("metadata", { user_id: 5 }), "metadata.user_id");
  assertRejects(withField("thinking", { budget_tokens: 5 }), "thinking.type");
});

Deno.test("parseMessagesRequest() names the message and block at fault", () => {
  assertRejects(withField("messages", ["hi"]), "messages[0]");
  assertRejects(withField("messages", [{ content: "x" }]), "messages[0].role", /Missing/);
  assertRejects(
    withField("messages", [{ role: "wizard", content: "x" }]),
    "messages[0].role",
    /"user", "assistant" or "system"; got "wizard"/,
  );
  // System turns hold instructions: text only.
  assertRejects(
    withField("messages", [{ role: "system", content: [{ type: "image" }] }]),
    "messages[0].content[0].type",
  );
  assertRejects(withField("messages", [{ role: "user" }]), "messages[0].content", /Missing/);
  assertRejects(withContent(5), "messages[0].content");
  assertRejects(withContent(["text"]), "messages[0].content[0].type");
  assertRejects(withContent([{ text: "no type" }]), "messages[0].content[0].type");
  assertRejects(withContent([{ type: "text", text: 5 }]), "messages[0].content[0].text");
  assertRejects(withContent([{ type: "image" }]), "messages[0].content[0].source.type");
  assertRejects(
    withContent([{ type: "image", source: { type: "base64", media_type: "image/png" } }]),
    "messages[0].content[0].source.data",
  );
  assertRejects(
    withContent([{ type: "image", source: { type: "url" } }]),
    "messages[0].content[0].source.url",
  );
  assertRejects(
    withContent([{ type: "tool_use", name: "f", input: {} }]),
    "messages[0].content[0].id",
  );
  assertRejects(
    withContent([{ type: "tool_use", id: "t", name: "f", input: "{}" }]),
    "messages[0].content[0].input",
  );
  assertRejects(withContent([{ type: "tool_result" }]), "messages[0].content[0].tool_use_id");
  assertRejects(
    withContent([{ type: "tool_result", tool_use_id: "t", is_error: "yes" }]),
    "messages[0].content[0].is_error",
  );
  assertRejects(
    withContent([{ type: "tool_result", tool_use_id: "t", content: [{ type: "text" }] }]),
    "messages[0].content[0].content[0].text",
  );
});

Deno.test("parseMessagesRequest() keeps block types it does not know for the provider to judge", () => {
  const raw = withContent([{ type: "container_upload", file_id: "file_1" }]);
  assert.deepEqual(parseMessagesRequest(raw).body.messages, raw.messages);
});

Deno.test("parseMessagesRequest() checks tools and tool_choice", () => {
  assertRejects(withField("tools", {}), "tools");
  assertRejects(withField("tools", [{ input_schema: {} }]), "tools[0].name");
  assertRejects(withField("tools", [{ name: "f" }]), "tools[0].input_schema");
  assertRejects(withField("tools", [{ name: "f", type: "custom" }]), "tools[0].input_schema");
  assertRejects(
    withField("tools", [{ name: "f", input_schema: {}, description: 1 }]),
    "tools[0].description",
  );
  assertRejects(withField("tool_choice", "auto"), "tool_choice.type");
  assertRejects(withField("tool_choice", { type: "required" }), "tool_choice.type");
  assertRejects(withField("tool_choice", { type: "tool" }), "tool_choice.name");
  assertRejects(
    withField("tool_choice", { type: "any", disable_parallel_tool_use: "yes" }),
    "tool_choice.disable_parallel_tool_use",
  );
});

Deno.test("toAnthropicError() keeps an Anthropic upstream type, else maps the status", () => {
  const cases: [GatewayError, string][] = [
    [new GatewayError("invalid_request", "bad"), "invalid_request_error"],
    [new GatewayError("not_found", "nope"), "not_found_error"],
    [new GatewayError("payload_too_large", "big"), "request_too_large"],
    [new GatewayError("rate_limited", "slow"), "rate_limit_error"],
    [new GatewayError("upstream_timeout", "late"), "timeout_error"],
    [new GatewayError("upstream_unreachable", "down"), "api_error"],
    [new GatewayError("upstream_error", "x", { status: 529 }), "overloaded_error"],
    // An Anthropic upstream's type (kept as the code) wins above 499 ...
    [
      new GatewayError("upstream_error", "x", { status: 500, upstreamCode: "overloaded_error" }),
      "overloaded_error",
    ],
    // ... an OpenAI-format type, even one Anthropic has a word for, does not.
    [
      new GatewayError("upstream_error", "x", {
        status: 500,
        upstreamType: "invalid_request_error",
        upstreamCode: null,
      }),
      "api_error",
    ],
    [
      new GatewayError("upstream_error", "x", {
        status: 529,
        upstreamType: "invalid_request_error",
      }),
      "overloaded_error",
    ],
    // An OpenAI provider's type is not Anthropic's vocabulary: the status decides.
    [
      new GatewayError("upstream_error", "x", { status: 400, upstreamType: "invalid_value" }),
      "invalid_request_error",
    ],
    [new GatewayError("internal", "oops"), "api_error"],
  ];
  for (const [err, type] of cases) {
    assert.deepEqual(toAnthropicError(err), {
      type: "error",
      error: { type, message: err.message },
    });
  }
});

Deno.test("toAnthropicError(): a 4xx is typed by its status, whatever another format called it", () => {
  // OpenAI types a bad key `invalid_request_error`, a word Anthropic has too.
  const cases: [number, string | undefined, string][] = [
    [401, "invalid_request_error", "authentication_error"],
    [403, "invalid_request_error", "permission_error"],
    [404, "invalid_request_error", "not_found_error"],
    [529, "overloaded_error", "overloaded_error"],
    // Another 4xx: Anthropic's "also for other 4XX status codes", its own type if it gave one.
    [409, undefined, "invalid_request_error"],
    [422, undefined, "invalid_request_error"],
    [422, "not_found_error", "not_found_error"],
    [500, "api_error", "api_error"],
    [503, "overloaded_error", "overloaded_error"],
  ];
  // The Anthropic upstream's type, kept as the code (providers/anthropic/errors.ts).
  for (const [status, upstreamCode, type] of cases) {
    const err = new GatewayError("upstream_error", "m", {
      status,
      upstreamStatus: status,
      ...(upstreamCode ? { upstreamCode } : {}),
    });
    assert.equal(toAnthropicError(err).error.type, type, `${status} ${upstreamCode}`);
  }
});

Deno.test("parseMessagesRequest() refuses empty turns and text blocks, as Anthropic does", () => {
  const turns = (...messages: unknown[]) => withField("messages", messages);
  const ALL = /all messages must have non-empty content except for the optional final assistant/;
  assertRejects(turns({ role: "user", content: [] }), "messages[0].content", ALL);
  assertRejects(turns({ role: "user", content: "" }), "messages[0].content", ALL);
  assertRejects(
    turns(
      { role: "user", content: "a" },
      { role: "assistant", content: "b" },
      { role: "user", content: [] },
    ),
    "messages[2].content",
    ALL,
  );
  assertRejects(
    turns({ role: "user", content: [{ type: "text", text: "" }] }),
    "messages[0].content[0]",
    /text content blocks must be non-empty/,
  );
  // The final assistant turn may be empty (a prefill of nothing).
  const ok = parseMessagesRequest(
    turns({ role: "user", content: "a" }, { role: "assistant", content: "" }),
  );
  assert.equal(ok.body.messages.length, 2);
});

Deno.test("parseMessagesRequest() takes the image types the Messages API takes", () => {
  const image = (media_type: string) =>
    withField("messages", [{
      role: "user",
      content: [{ type: "image", source: { type: "base64", media_type, data: "AAAA" } }],
    }]);
  for (const ok of ["image/jpeg", "image/png", "image/gif", "image/webp"]) {
    assert.ok(parseMessagesRequest(image(ok)));
  }
  for (const bad of ["image/bmp", "text/plain", "application/pdf"]) {
    assertRejects(image(bad), "messages[0].content[0].source.media_type", /must be one of/);
  }
});
