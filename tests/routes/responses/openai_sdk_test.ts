/**
 * `POST /v1/responses` through the real app, driven by the official OpenAI SDK
 * (`client.responses.create`): translated to chat completions for an OpenAI-compatible
 * upstream, streamed and not, a function tool round trip through `previous_response_id`,
 * and the stored responses behind GET/DELETE `/v1/responses/{id}`.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, jsonSchema, stepCountIs, tool } from "ai";
import { startFakeUpstream } from "../../fakes/fake_upstream.ts";
import { startGateway } from "../../helpers/in_process.ts";

const FIXTURES = new URL("../../fixtures/openai/", import.meta.url);
const fixture = (name: string) => Deno.readTextFile(new URL(name, FIXTURES));
const sseEvents = async (name: string) => (await fixture(name)).split(/(?<=\n\n)/);

const WEATHER = {
  type: "function" as const,
  name: "get_weather",
  description: "Current weather for a location",
  parameters: {
    type: "object",
    properties: { location: { type: "string" }, unit: { type: "string" } },
    required: ["location"],
  },
  strict: false,
};

function compatGateway(url: string) {
  return startGateway(`
providers:
  compat:
    base_url: ${url}/v1
    keys: [{ key: sk-compat-configured-0001 }]
routing:
  aliases:
    fast: compat/gpt-4o-mini
`);
}

Deno.test("client.responses.create reaches an OpenAI-compatible provider, translated", async (t) => {
  const up = startFakeUpstream();
  const gw = compatGateway(up.url);
  const client = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "placeholder", maxRetries: 0 });
  try {
    await t.step("text, not streamed: chat request out, response object back", async () => {
      const response = await client.responses.create({
        model: "fast",
        instructions: "Be brief.",
        input: "Say hello",
        max_output_tokens: 50,
        temperature: 0.2,
        metadata: { ticket: "T-1" },
      });
      assert.equal(response.object, "response");
      assert.match(response.id, /^resp_/);
      assert.equal(response.status, "completed");
      assert.equal(response.output_text, "Hello from upstream");
      assert.deepEqual(response.metadata, { ticket: "T-1" });
      assert.deepEqual(response.usage, {
        input_tokens: 7,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: 3,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: 10,
      });
      const sent = JSON.parse(up.requests.at(-1)!.body);
      assert.equal(up.requests.at(-1)!.path, "/v1/chat/completions");
      assert.deepEqual(sent.messages, [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Say hello" },
      ]);
      assert.equal(sent.max_tokens, 50);
      assert.equal(sent.temperature, 0.2);
      assert.equal(sent.metadata, undefined);
    });

    await t.step(
      "streamed: the Responses event sequence, numbered, usage on completed",
      async () => {
        up.script({ kind: "stream", includeUsage: true });
        const stream = await client.responses.create({ model: "fast", input: "Hi", stream: true });
        const events: { type: string; sequence_number: number }[] = [];
        let text = "";
        let completed: OpenAI.Responses.Response | null = null;
        for await (const event of stream) {
          events.push(event);
          if (event.type === "response.output_text.delta") text += event.delta;
          if (event.type === "response.completed") completed = event.response;
        }
        assert.equal(text, "Hello from upstream");
        assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
        assert.deepEqual(events.map((e) => e.type).filter((t, i, all) => all.indexOf(t) === i), [
          "response.created",
          "response.in_progress",
          "response.output_item.added",
          "response.content_part.added",
          "response.output_text.delta",
          "response.output_text.done",
          "response.content_part.done",
          "response.output_item.done",
          "response.completed",
        ]);
        assert.equal(completed?.usage?.input_tokens, 7);
        assert.equal(completed?.usage?.output_tokens, 3);
        assert.deepEqual(completed?.output.map((i) => i.type), ["message"]);
        assert.equal(JSON.parse(up.requests.at(-1)!.body).stream_options.include_usage, true);
      },
    );

    await t.step("a function tool round trip through previous_response_id", async () => {
      up.script({ kind: "json", body: JSON.parse(await fixture("response_tool_calls.json")) });
      const first = await client.responses.create({
        model: "fast",
        input: [{ role: "user", content: [{ type: "input_text", text: "Weather in Paris?" }] }],
        tools: [WEATHER],
        tool_choice: "auto",
      });
      const calls = first.output.filter((i) => i.type === "function_call");
      assert.equal(calls.length, 2);
      assert.equal(calls[0]!.call_id, "call_DdmO9pD3xa9XTPNJ32zg2hcA");
      assert.equal(calls[0]!.name, "get_weather");
      assert.deepEqual(JSON.parse(calls[0]!.arguments), { location: "Paris, FR", unit: "celsius" });
      assert.equal(first.usage?.input_tokens_details.cached_tokens, 1024);

      up.script({ kind: "json" });
      const second = await client.responses.create({
        model: "fast",
        previous_response_id: first.id,
        input: calls.map((c) => ({
          type: "function_call_output" as const,
          call_id: c.call_id,
          output: c.name === "get_weather" ? "18C, sunny" : "12:00",
        })),
        tools: [WEATHER],
      });
      assert.equal(second.output_text, "Hello from upstream");
      assert.equal(second.previous_response_id, first.id);
      const sent = JSON.parse(up.requests.at(-1)!.body);
      assert.deepEqual(sent.messages, [
        { role: "user", content: [{ type: "text", text: "Weather in Paris?" }] },
        {
          role: "assistant",
          content: "Let me check both.",
          tool_calls: [
            {
              id: "call_DdmO9pD3xa9XTPNJ32zg2hcA",
              type: "function",
              function: {
                name: "get_weather",
                arguments: '{"location": "Paris, FR", "unit": "celsius"}',
              },
            },
            {
              id: "call_ABC123def456ghi789jkl0",
              type: "function",
              function: { name: "get_time", arguments: "{}" },
            },
          ],
        },
        { role: "tool", tool_call_id: "call_DdmO9pD3xa9XTPNJ32zg2hcA", content: "18C, sunny" },
        { role: "tool", tool_call_id: "call_ABC123def456ghi789jkl0", content: "12:00" },
      ]);
      assert.deepEqual(sent.tools, [{
        type: "function",
        function: {
          name: "get_weather",
          description: "Current weather for a location",
          parameters: WEATHER.parameters,
          strict: false,
        },
      }]);
    });

    await t.step("streamed function calls: one item per call, arguments as deltas", async () => {
      up.script({ kind: "sse", events: await sseEvents("stream_tool_calls.sse") });
      const stream = await client.responses.create({
        model: "fast",
        input: "Weather in Paris?",
        tools: [WEATHER],
        stream: true,
      });
      const args = new Map<string, string>();
      const done: OpenAI.Responses.ResponseFunctionToolCall[] = [];
      let final: OpenAI.Responses.Response | null = null;
      for await (const event of stream) {
        if (event.type === "response.function_call_arguments.delta") {
          args.set(event.item_id, (args.get(event.item_id) ?? "") + event.delta);
        }
        if (event.type === "response.output_item.done" && event.item.type === "function_call") {
          done.push(event.item);
        }
        if (event.type === "response.completed") final = event.response;
      }
      assert.deepEqual(done.map((c) => [c.call_id, c.name]), [
        ["call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather"],
        ["call_ABC123def456ghi789jkl0", "get_time"],
      ]);
      for (const c of done) assert.equal(args.get(c.id!) ?? "", c.arguments);
      assert.deepEqual(JSON.parse(done[0]!.arguments), { location: "Paris, FR", unit: "celsius" });
      assert.deepEqual(final?.output.map((i) => i.type), [
        "message",
        "function_call",
        "function_call",
      ]);
      // The streamed response is kept too: the round trip continues from it.
      const stored = await client.responses.retrieve(final!.id);
      assert.equal(stored.output.length, 3);
    });

    await t.step(
      "a stream that breaks after commit ends with response.failed, numbered",
      async () => {
        up.script({ kind: "sse", events: await sseEvents("stream_error_midway.sse") });
        const res = await gw.request("/v1/responses", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "fast", input: "hi", stream: true }),
        });
        assert.equal(res.status, 200);
        const events = (await res.text()).trim().split("\n\n").map((e) => {
          const [event, data] = e.split("\ndata: ");
          return { event: event!.slice("event: ".length), data: JSON.parse(data!) };
        });
        assert.deepEqual(events.map((e) => e.data.sequence_number), events.map((_, i) => i));
        const last = events.at(-1)!;
        assert.equal(last.event, "response.failed");
        assert.equal(last.data.response.status, "failed");
        assert.ok(last.data.response.error.message.length > 0);
        assert.equal(last.data.response.error.code, "server_error");
        assert.ok(events.every((e) => e.event === e.data.type));
        // The output is what was sent: the message cut short, with its text so far.
        const sent = events.filter((e) => e.event === "response.output_text.delta")
          .map((e) => e.data.delta).join("");
        assert.ok(sent.length > 0);
        const [item] = last.data.response.output;
        assert.equal(item.status, "incomplete");
        assert.equal(item.content[0].text, sent);
        // Kept as OpenAI keeps a failed response: retrieve gives its status and error.
        const stored = await client.responses.retrieve(last.data.response.id);
        assert.equal(stored.status, "failed");
        assert.equal(stored.error?.code, "server_error");
        // The failure is told in usage too: the input as estimated (OpenAI counts it at the
        // end, and the stream broke before), not 0, as the request is billed.
        assert.ok(last.data.response.usage.input_tokens > 0, JSON.stringify(last.data.response));
        // The `error` event before it makes the SDK throw: a reader of the text deltas alone
        // does not end as if the answer were whole.
        const errorEvent = events.at(-2)!;
        assert.equal(errorEvent.event, "error");
        up.script({ kind: "sse", events: await sseEvents("stream_error_midway.sse") });
        let text = "";
        await assert.rejects(async () => {
          const stream = await client.responses.create({
            model: "fast",
            input: "hi",
            stream: true,
          });
          for await (const event of stream) {
            if (event.type === "response.output_text.delta") text += event.delta;
          }
        });
        assert.equal(text, sent);
      },
    );

    await t.step("a truncated answer is incomplete: max_output_tokens", async () => {
      const body = JSON.parse(await fixture("response_text.json"));
      body.choices[0].finish_reason = "length";
      up.script({ kind: "json", body });
      const r = await client.responses.create({ model: "fast", input: "hi", max_output_tokens: 5 });
      assert.equal(r.status, "incomplete");
      assert.deepEqual(r.incomplete_details, { reason: "max_output_tokens" });
      assert.equal(r.max_output_tokens, 5);
    });

    await t.step("GET and DELETE a kept response; an unknown id is 404", async () => {
      up.script({ kind: "json" });
      const made = await client.responses.create({ model: "fast", input: "keep me" });
      const got = await client.responses.retrieve(made.id);
      assert.equal(got.id, made.id);
      assert.equal(got.output_text, "Hello from upstream");
      // What it was given: the input, not its output; and it was never a background one.
      const items = [];
      for await (const item of client.responses.inputItems.list(made.id)) items.push(item);
      assert.deepEqual(
        items.map((i) => (i as { content?: { text?: string }[] }).content?.[0]?.text),
        ["keep me"],
      );
      await assert.rejects(client.responses.cancel(made.id), OpenAI.BadRequestError);
      // A message gets a msg_ id when kept: the same one under a later response of the chain.
      const first = (items[0] as { id: string }).id;
      assert.match(first, /^msg_/);
      up.script({ kind: "json" });
      const next = await client.responses.create({
        model: "fast",
        input: "and then",
        previous_response_id: made.id,
      });
      const chained = [];
      for await (const item of client.responses.inputItems.list(next.id, { order: "asc" })) {
        chained.push((item as { id: string }).id);
      }
      assert.equal(chained[0], first);
      assert.equal(chained.length, 3, "its input, the first answer, this input");
      assert.match(chained[2]!, /^msg_/);
      // More than a page: the SDK follows last_id.
      up.script({ kind: "json" });
      const long = await client.responses.create({
        model: "fast",
        input: Array.from({ length: 25 }, (_, i) => ({ role: "user" as const, content: `m${i}` })),
      });
      const all = [];
      for await (const item of client.responses.inputItems.list(long.id, { order: "asc" })) {
        all.push((item as { content?: { text?: string }[] }).content?.[0]?.text);
      }
      assert.deepEqual(all, Array.from({ length: 25 }, (_, i) => `m${i}`));
      await client.responses.delete(made.id);
      await assert.rejects(client.responses.retrieve(made.id), (err: unknown) => {
        assert.ok(err instanceof OpenAI.NotFoundError);
        return true;
      });
      const raw = await gw.request("/v1/responses/resp_unknown");
      assert.equal(raw.status, 404);
      const body = await raw.json();
      // OpenAI's own answer: an invalid request, param and code null.
      assert.deepEqual(body.error, {
        message: "Response with id 'resp_unknown' not found.",
        type: "invalid_request_error",
        param: null,
        code: null,
      });
    });

    await t.step("store: false keeps nothing", async () => {
      up.script({ kind: "json" });
      const made = await client.responses.create({ model: "fast", input: "x", store: false });
      assert.equal((await gw.request(`/v1/responses/${made.id}`)).status, 404);
    });

    await t.step("bad input is a 400 in OpenAI's format, before any upstream call", async () => {
      const before = up.requests.length;
      const cases: [unknown, RegExp][] = [
        [{ input: "x" }, /"model"/],
        [{ model: "fast" }, /"input"/],
        [{ model: "fast", input: 3 }, /"input" must be/],
        [{ model: "fast", input: "x", tools: [{ type: "web_search" }] }, /web_search.*built-in/],
        [{ model: "fast", input: "x", previous_response_id: "resp_nope" }, /resp_nope/],
        [{ model: "fast", input: [{ type: "computer_call" }] }, /computer_call/],
        [{ model: "fast", input: "x", temperature: 5 }, /temperature/],
      ];
      for (const [body, message] of cases) {
        const res = await gw.request("/v1/responses", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        const json = await res.json();
        assert.equal(res.status, 400, JSON.stringify(json));
        assert.equal(json.error.type, "invalid_request_error");
        assert.match(json.error.message, message);
      }
      assert.equal(up.requests.length, before);
    });
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("the AI SDK's multi-step tool loop (item_reference to kept items) on a translated provider", async () => {
  const up = startFakeUpstream();
  const gw = compatGateway(up.url);
  up.script({
    kind: "json",
    body: {
      id: "chatcmpl-tools",
      object: "chat.completion",
      created: 1_700_000_000,
      model: "gpt-4o-mini",
      choices: [{
        index: 0,
        message: {
          role: "assistant",
          content: "Checking.",
          tool_calls: [{
            id: "call_1",
            type: "function",
            function: { name: "weather", arguments: '{"city":"Paris"}' },
          }],
        },
        finish_reason: "tool_calls",
      }],
      usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 },
    },
  });
  const provider = createOpenAI({ baseURL: gw.url("/v1"), apiKey: "placeholder" });
  try {
    const result = await generateText({
      model: provider("fast"),
      prompt: "Weather in Paris?",
      tools: {
        weather: tool({
          inputSchema: jsonSchema<{ city: string }>({
            type: "object",
            properties: { city: { type: "string" } },
          }),
          execute: ({ city }) => {
            up.script({ kind: "json" });
            return Promise.resolve(`18C in ${city}`);
          },
        }),
      },
      stopWhen: stepCountIs(3),
    });
    assert.equal(result.text, "Hello from upstream");
    assert.equal(result.steps.length, 2);
    const second = JSON.parse(up.requests.at(-1)!.body);
    assert.deepEqual(second.messages, [
      { role: "user", content: [{ type: "text", text: "Weather in Paris?" }] },
      {
        role: "assistant",
        content: "Checking.",
        tool_calls: [{
          id: "call_1",
          type: "function",
          function: { name: "weather", arguments: '{"city":"Paris"}' },
        }],
      },
      { role: "tool", tool_call_id: "call_1", content: "18C in Paris" },
    ]);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("a translated stream cut by a rate limit fails as rate_limit_exceeded, with the input counted", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  claude: { type: anthropic, base_url: ${up.url}/v1, keys: [{ key: sk-ant-configured-0001 }] }
routing:
  failover: { enabled: false }
`);
  const ev = (type: string, data: Record<string, unknown>) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  try {
    up.script({
      kind: "sse",
      events: [
        ev("message_start", {
          message: {
            id: "msg_1",
            model: "claude-x",
            usage: { input_tokens: 25, output_tokens: 1 },
          },
        }),
        ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
        ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: "Hel" } }),
        ev("error", {
          error: { type: "rate_limit_error", message: "Number of requests too high" },
        }),
      ],
    });
    const res = await gw.request("/v1/responses", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "claude/claude-x", input: "hi", stream: true }),
    });
    const events = (await res.text()).trim().split("\n\n");
    const last = JSON.parse(events.at(-1)!.split("\ndata: ")[1]!);
    assert.equal(last.type, "response.failed");
    assert.equal(last.response.error.code, "rate_limit_exceeded");
    assert.equal(last.response.usage.input_tokens, 25);
    assert.equal(last.response.output[0].content[0].text, "Hel");
  } finally {
    await gw.close();
    await up.close();
  }
});
