import assert from "node:assert/strict";
import { jsonOf } from "../outcome.ts";
import { parseConfigText } from "../../../src/config/mod.ts";
import { GatewayError } from "../../../src/errors.ts";
import { createBedrockAdapter } from "../../../src/providers/bedrock/adapter.ts";
import { createAwsCredentialProvider } from "../../../src/providers/bedrock/credentials.ts";
import { type ChatCall, createAdapters } from "../../../src/providers/mod.ts";
import type { OpenAIChatRequest, OpenAIUsage } from "../../../src/schema/openai.ts";
import { createRedactor } from "../../../src/telemetry/mod.ts";
import {
  encodeMessagesStream,
  toMessagesResponse,
  toOpenAIChatRequest,
} from "../../../src/translate/mod.ts";
import { toChatRequestFromResponses } from "../../../src/translate/responses_to_openai.ts";
import { parseResponsesRequest } from "../../../src/schema/responses.ts";
import { parseMessagesRequest } from "../../../src/schema/anthropic.ts";
import type { OpenAIChatChunk } from "../../../src/schema/openai.ts";
import { concatBytes } from "../../helpers/chunk.ts";
import {
  CONVERSE_TEXT,
  CONVERSE_TOOL_USE,
  type FakeBedrock,
  startFakeBedrock,
  STREAM_TOOL_USE,
  TEST_CREDENTIALS,
} from "../../fakes/fake_bedrock.ts";
import { callBasics } from "../../helpers/calls.ts";
import { readOpenAISse } from "../../helpers/openai_sse.ts";
import { fakeSources, gatewayError, SANITIZE } from "./helpers.ts";

const MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const ENV_CREDENTIALS = {
  AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
  AWS_SESSION_TOKEN: TEST_CREDENTIALS.sessionToken,
};
const NO_FETCH: typeof fetch = () => Promise.reject(new Error("no fetch expected"));

function configFor(endpoint: string, extra = "") {
  const { config } = parseConfigText(
    `providers:\n  bedrock:\n    sign: true\n    region: us-west-2\n    endpoint: "${endpoint}"\n${extra}`,
    () => undefined,
    "bedrock.yaml",
  );
  return config;
}

function adapterFor(
  bedrock: FakeBedrock | string,
  env: Record<string, string> = ENV_CREDENTIALS,
  fetchFn: typeof fetch = fetch,
  files: Record<string, string> = {},
) {
  const config = configFor(typeof bedrock === "string" ? bedrock : bedrock.url);
  const sources = fakeSources(env, files);
  const credentials = createAwsCredentialProvider("bedrock", sources);
  const adapter = createBedrockAdapter(config.providers.bedrock!, {
    fetch: fetchFn,
    redact: createRedactor([]),
    random: Math.random,
  }, credentials);
  return { adapter, sources };
}

function call(
  body: Partial<OpenAIChatRequest>,
  stream = false,
): ChatCall {
  return {
    body: {
      model: MODEL,
      messages: [{ role: "user", content: "Hello" }],
      ...body,
    } as OpenAIChatRequest,
    stream,
    ...callBasics(null, 5_000),
  };
}

Deno.test(
  "createBedrockAdapter() calls Converse signed, with the model id encoded once",
  SANITIZE,
  async (t) => {
    const bedrock = startFakeBedrock("us-west-2");
    const { adapter } = adapterFor(bedrock);
    try {
      await t.step("the attempt's trace context goes along, outside the signature", async () => {
        const traceparent = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
        const out = await adapter.chat({ ...call({}, false), trace: { traceparent } }, MODEL);
        assert.equal(out.kind, "json");
        const seen = bedrock.requests.at(-1)!;
        assert.equal(seen.headers.get("traceparent"), traceparent);
        assert.equal(seen.signatureValid, true);
      });

      await t.step("non-stream text", async () => {
        const out = await adapter.chat(
          call({ max_tokens: 50, temperature: 0.5 }, false),
          MODEL,
        );
        assert.equal(out.kind, "json");
        const seen = bedrock.requests.at(-1)!;
        assert.equal(seen.signatureValid, true);
        assert.equal(
          seen.rawPath,
          "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse",
        );
        assert.equal(seen.headers.get("accept"), "application/json");
        assert.equal(seen.headers.get("authorization")?.includes("/us-west-2/bedrock/"), true);
        assert.deepEqual(JSON.parse(seen.body), {
          messages: [{ role: "user", content: [{ text: "Hello" }] }],
          inferenceConfig: { maxTokens: 50, temperature: 0.5 },
        });
        if (out.kind !== "json") return;
        const completion = jsonOf(out);
        assert.equal(completion.model, MODEL);
        assert.match(completion.id, /^chatcmpl-[0-9a-f-]{36}$/, "from x-amzn-requestid");
        assert.equal(completion.choices[0].message.content, "Hello from Bedrock");
        assert.equal((await out.usage)?.total_tokens, 15);
      });

      await t.step("non-stream tool call", async () => {
        bedrock.script({ json: CONVERSE_TOOL_USE });
        const out = await adapter.chat(
          call({
            tools: [{
              type: "function",
              function: { name: "get_weather", parameters: { type: "object" } },
            }],
            tool_choice: "required",
          }),
          MODEL,
        );
        assert.equal(
          JSON.parse(bedrock.requests.at(-1)!.body).toolConfig.toolChoice.any !== undefined,
          true,
        );
        if (out.kind !== "json") return assert.fail("expected JSON");
        const completion = jsonOf(out);
        assert.equal(completion.choices[0].finish_reason, "tool_calls");
        assert.equal(completion.choices[0].message.tool_calls[0].function.name, "get_weather");
      });

      await t.step("stream: converse-stream, event-stream frames to OpenAI chunks", async () => {
        bedrock.script({ events: STREAM_TOOL_USE });
        const out = await adapter.chat(
          call({ stream: true, stream_options: { include_usage: true } }, true),
          MODEL,
        );
        const seen = bedrock.requests.at(-1)!;
        assert.equal(
          seen.rawPath,
          "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream",
        );
        assert.equal(seen.signatureValid, true);
        assert.equal(seen.headers.get("accept"), "application/vnd.amazon.eventstream");
        if (out.kind !== "stream") return assert.fail("expected a stream");
        assert.equal(out.format, "chunks");
        const events = await readOpenAISse(out.body);
        const args = events.flatMap((e) =>
          typeof e === "object" && e !== null && "choices" in e
            ? (e as {
              choices: { delta: { tool_calls?: { function: { arguments: string } }[] } }[];
            })
              .choices.flatMap((c) => c.delta.tool_calls ?? []).map((tc) => tc.function.arguments)
            : []
        );
        assert.equal(args.join(""), '{"location": "Paris"}');
        assert.equal(events.at(-1), "[DONE]");
        assert.deepEqual((events.at(-2) as { usage: OpenAIUsage }).usage.total_tokens, 340);
        assert.equal((await out.usage)?.prompt_tokens, 300);
      });

      await t.step("an AWS error keeps status and exception name", async () => {
        bedrock.script({
          error: { status: 429, type: "ThrottlingException", message: "Slow down" },
        });
        const err = await gatewayError(() => adapter.chat(call({}), MODEL));
        assert.equal(err.status, 429);
        assert.equal(err.code, "rate_limited");
        assert.equal(err.info.upstreamCode, "ThrottlingException");
        assert.equal(err.message, "Slow down");
        assert.match(err.info.upstreamHeaders?.["x-amzn-errortype"] ?? "", /^ThrottlingException:/);
      });
    } finally {
      await bedrock.close();
    }
  },
);

Deno.test(
  "createBedrockAdapter() drops cached credentials when AWS says they expired",
  SANITIZE,
  async () => {
    const bedrock = startFakeBedrock("us-west-2");
    const file = `[default]\naws_access_key_id=${TEST_CREDENTIALS.accessKeyId}\n` +
      `aws_secret_access_key=${TEST_CREDENTIALS.secretAccessKey}\n` +
      `aws_session_token=${TEST_CREDENTIALS.sessionToken}\n`;
    const { adapter, sources } = adapterFor(bedrock, { HOME: "/h" }, fetch, {
      "/h/.aws/credentials": file,
    });
    try {
      await adapter.chat(call({}), MODEL);
      bedrock.script({ error: { status: 403, type: "ExpiredTokenException", message: "expired" } });
      await gatewayError(() => adapter.chat(call({}), MODEL));
      bedrock.script({});
      await adapter.chat(call({}), MODEL);
      assert.equal(sources.reads.length, 2, "read again after ExpiredTokenException");
    } finally {
      await bedrock.close();
    }
  },
);

Deno.test("createBedrockAdapter() fails cleanly before any upstream call", SANITIZE, async (t) => {
  await t.step("no credentials: a clear 500, nothing sent", async () => {
    const { adapter } = adapterFor("http://127.0.0.1:1", {}, NO_FETCH);
    const err = await gatewayError(() => adapter.chat(call({}), MODEL));
    assert.equal(err.status, 500);
    assert.match(err.message, /Bedrock signing is on .* but no AWS credentials were found/);
  });
  await t.step("an unsupported parameter is the caller's 400, before credentials", async () => {
    const { adapter, sources } = adapterFor("http://127.0.0.1:1", { HOME: "/h" }, NO_FETCH);
    const err = await gatewayError(() => adapter.chat(call({ n: 3 }), MODEL));
    assert.equal(err.status, 400);
    assert.equal(err.info.param, "n");
    assert.equal(sources.reads.length, 0);
  });
  await t.step("a model id that could escape the path is refused", async () => {
    const { adapter } = adapterFor("http://127.0.0.1:1", ENV_CREDENTIALS, NO_FETCH);
    for (const model of ["..", "a b", "", "x?y=1", "../../x", "./x", "x#y", "%2e%2e", "x\\y"]) {
      const err = await gatewayError(() => adapter.chat(call({}), model));
      assert.equal(err.info.param, "model", model);
    }
  });
  await t.step("an ARN is encoded into one path segment", async () => {
    const urls: string[] = [];
    const { adapter } = adapterFor("http://127.0.0.1:1", ENV_CREDENTIALS, (input) => {
      urls.push(String(input));
      return Promise.resolve(Response.json(CONVERSE_TOOL_USE));
    });
    await adapter.chat(call({}), "arn:aws:bedrock:us-west-2:123456789012:inference-profile/x");
    // Slashes and dots inside an id stay inside its one segment: the path cannot move.
    await adapter.chat(call({}), "a/../../b");
    assert.deepEqual(urls, [
      "http://127.0.0.1:1/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Ainference-profile%2Fx/converse",
      "http://127.0.0.1:1/model/a%2F..%2F..%2Fb/converse",
    ]);
    assert.equal(new URL(urls[1]!).pathname, "/model/a%2F..%2F..%2Fb/converse");
  });
  await t.step("a stream answered without an event stream is an upstream error", async () => {
    const { adapter } = adapterFor(
      "http://127.0.0.1:1",
      ENV_CREDENTIALS,
      () => Promise.resolve(Response.json({ output: {} })),
    );
    const err = await gatewayError(() => adapter.chat(call({ stream: true }, true), MODEL));
    assert.equal(err.code, "upstream_error");
    assert.match(err.message, /without an event stream/);
  });
});

Deno.test(
  "createAdapters() serves Bedrock on the unified API only in signing mode",
  SANITIZE,
  async (t) => {
    const deps = { fetch: NO_FETCH, redact: createRedactor([]), random: Math.random };
    await t.step("sign: true → the Converse adapter", async () => {
      const adapter = createAdapters(configFor("http://127.0.0.1:1"), deps).get("bedrock");
      assert.equal(adapter?.type, "bedrock");
      const err = await gatewayError(() => adapter!.chat(call({ logprobs: true }), MODEL));
      assert.equal(err.info.param, "logprobs", "translation runs: it is the real adapter");
    });
    await t.step(
      "without sign → 400 (a 4xx: SDKs retry 5xx) saying to set sign: true",
      async () => {
        const { config } = parseConfigText(
          "providers:\n  bedrock: { enabled: true }\n",
          () => undefined,
          "r",
        );
        const adapter = createAdapters(config, deps).get("bedrock");
        const err = await gatewayError(() => adapter!.chat(call({}), MODEL));
        assert.ok(err instanceof GatewayError);
        assert.equal(err.status, 400);
        assert.match(err.message, /set "sign: true" on providers\.bedrock/);
      },
    );
  },
);

Deno.test(
  "embeddings on Bedrock: Titan a call per input, Cohere in batches, in order, signed",
  SANITIZE,
  async (t) => {
    const bedrock = startFakeBedrock("us-west-2");
    const { adapter } = adapterFor(bedrock);
    const embed = (model: string, body: Record<string, unknown>) =>
      adapter.embeddings!({ body: { model, ...body } as never, ...callBasics(null, 5_000) }, model);
    try {
      await t.step(
        "Titan V2: one inputText a call, dimensions passed, token counts summed",
        async () => {
          const before = bedrock.requests.length;
          const out = await embed("amazon.titan-embed-text-v2:0", {
            input: ["alpha", "be"],
            dimensions: 256,
          });
          const body = jsonOf(out) as {
            data: { index: number; embedding: number[] }[];
            usage: { prompt_tokens: number };
          };
          assert.deepEqual(body.data.map((d) => [d.index, d.embedding[0]]), [[0, 5], [1, 2]]);
          assert.equal(body.usage.prompt_tokens, 2);
          const sent = bedrock.requests.slice(before);
          assert.equal(sent.length, 2);
          assert.ok(sent.every((r) => r.signatureValid && r.rawPath.endsWith("/invoke")));
          // Sent in parallel: they may arrive in either order.
          const bodies = sent.map((r) => JSON.parse(r.body) as { inputText: string })
            .sort((a, b) => a.inputText.localeCompare(b.inputText));
          assert.deepEqual(bodies[0], { inputText: "alpha", dimensions: 256 });
        },
      );
      await t.step(
        "Cohere: texts in batches of 96, tokens from the header, base64 on request",
        async () => {
          const before = bedrock.requests.length;
          const input = Array.from({ length: 100 }, (_, i) => `t${i}`);
          const out = await embed("cohere.embed-english-v3", { input, encoding_format: "base64" });
          const body = jsonOf(out) as { data: { index: number; embedding: string }[] };
          assert.equal(body.data.length, 100);
          const first = new Float32Array(
            Uint8Array.from(atob(body.data[99]!.embedding), (c) => c.charCodeAt(0)).buffer,
          );
          assert.deepEqual([...first], [3, "t".charCodeAt(0), 0.5]);
          const sent = bedrock.requests.slice(before).map((r) => JSON.parse(r.body));
          // Sent in parallel: they may arrive in either order.
          assert.deepEqual(sent.map((b) => b.texts.length).sort((a, b) => a - b), [4, 96]);
          assert.equal(sent[0].input_type, "search_document");
        },
      );
      await t.step(
        "one Titan call failing: the failure carries what the calls that answered used",
        async () => {
          // Four at a time: the first four answer, then the fifth answers beside the one
          // that fails. Each 20-character text counts 2 tokens at the fake.
          const input = [...Array.from({ length: 5 }, (_, i) => `${i}`.repeat(20)), "!fail"];
          await assert.rejects(embed("amazon.titan-embed-text-v2:0", { input }), (err) => {
            assert.ok(err instanceof GatewayError, String(err));
            assert.equal(err.status, 400);
            assert.deepEqual(err.info.spent, {
              prompt_tokens: 10,
              completion_tokens: 0,
              total_tokens: 10,
            });
            return true;
          });
        },
      );
      await t.step("a fan-out whose first call fails carries nothing spent", async () => {
        await assert.rejects(embed("amazon.titan-embed-text-v2:0", { input: ["!fail"] }), (err) => {
          assert.ok(err instanceof GatewayError);
          assert.equal(err.info.spent, undefined);
          return true;
        });
      });
      await t.step("more than 2,048 inputs is a 400, before any call", async () => {
        const before = bedrock.requests.length;
        await assert.rejects(
          embed("amazon.titan-embed-text-v2:0", { input: Array.from({ length: 2049 }, () => "x") }),
          (err) => err instanceof GatewayError && err.status === 400 && err.info.param === "input",
        );
        assert.equal(bedrock.requests.length, before);
      });
      await t.step("another model family is a 400 naming the model, before any call", async () => {
        const before = bedrock.requests.length;
        await assert.rejects(embed("meta.llama3-70b-instruct-v1:0", { input: "x" }), (err) => {
          assert.ok(err instanceof GatewayError);
          assert.equal(err.status, 400);
          assert.equal(err.info.param, "model");
          return true;
        });
        assert.equal(bedrock.requests.length, before);
      });
    } finally {
      await bedrock.close();
    }
  },
);

Deno.test(
  "a Converse stop_sequence stop reaches /v1/messages as stop_sequence, the sequence named when Claude says it",
  SANITIZE,
  async (t) => {
    const bedrock = startFakeBedrock("us-west-2");
    const { adapter } = adapterFor(bedrock);
    const stopped = (fields?: Record<string, unknown>) => ({
      output: { message: { role: "assistant", content: [{ text: "1, 2, 3" }] } },
      stopReason: "stop_sequence",
      usage: { inputTokens: 5, outputTokens: 3, totalTokens: 8 },
      ...(fields ? { additionalModelResponseFields: fields } : {}),
    });
    const streamed = (fields?: Record<string, unknown>) => [
      { type: "messageStart", payload: { role: "assistant" } },
      { type: "contentBlockDelta", payload: { contentBlockIndex: 0, delta: { text: "1, 2" } } },
      { type: "contentBlockStop", payload: { contentBlockIndex: 0 } },
      {
        type: "messageStop",
        payload: {
          stopReason: "stop_sequence",
          ...(fields ? { additionalModelResponseFields: fields } : {}),
        },
      },
      { type: "metadata", payload: { usage: { inputTokens: 5, outputTokens: 2 } } },
    ];
    const messagesEvents = async (body: ReadableStream<OpenAIChatChunk>) => {
      const text = new TextDecoder().decode(
        concatBytes(
          await Array.fromAsync(
            encodeMessagesStream(body, { model: MODEL, provider: "bedrock", redact: (s) => s }),
          ),
        ),
      );
      return text.split("\n\n").filter((e) => e.includes("data:")).map((e) =>
        JSON.parse(e.slice(e.indexOf("data:") + 5))
      );
    };
    try {
      await t.step("Claude: the sequence is asked for and named", async () => {
        bedrock.script({ json: stopped({ stop_sequence: " 4" }) });
        const out = await adapter.chat(call({ stop: [" 4", "END"] }), MODEL);
        assert.deepEqual(
          JSON.parse(bedrock.requests.at(-1)!.body).additionalModelResponseFieldPaths,
          ["/stop_sequence"],
        );
        const completion = jsonOf(out);
        assert.equal(completion.choices[0].finish_reason, "stop", "chat: OpenAI's stop");
        const message = toMessagesResponse(completion, MODEL, "bedrock");
        assert.equal(message.stop_reason, "stop_sequence");
        assert.equal(message.stop_sequence, " 4");
      });
      await t.step("a model that does not say which: stop_sequence, null", async () => {
        bedrock.script({ json: stopped() });
        const out = await adapter.chat(call({ stop: ["END"] }), "amazon.nova-pro-v1:0");
        assert.equal(
          JSON.parse(bedrock.requests.at(-1)!.body).additionalModelResponseFieldPaths,
          undefined,
          "only Claude's answer has the field",
        );
        const message = toMessagesResponse(jsonOf(out), MODEL, "bedrock");
        assert.equal(message.stop_reason, "stop_sequence");
        assert.equal(message.stop_sequence, null);
      });
      await t.step("end_turn stays end_turn", async () => {
        bedrock.script({ json: CONVERSE_TEXT });
        const message = toMessagesResponse(jsonOf(await adapter.chat(call({}), MODEL)), MODEL, "b");
        assert.equal(message.stop_reason, "end_turn");
        assert.equal(message.stop_sequence, null);
      });
      await t.step("stream: messageStop's fields reach message_delta", async () => {
        bedrock.script({ events: streamed({ stop_sequence: "END" }) });
        const out = await adapter.chat(call({ stop: ["END"], stream: true }, true), MODEL);
        if (out.kind !== "stream" || out.format !== "chunks") return assert.fail("chunks");
        const delta = (await messagesEvents(out.body)).find((e) => e.type === "message_delta");
        assert.deepEqual(delta.delta, { stop_reason: "stop_sequence", stop_sequence: "END" });
      });
      await t.step("stream without the field: stop_sequence, null", async () => {
        bedrock.script({ events: streamed() });
        const out = await adapter.chat(call({ stop: ["END"], stream: true }, true), MODEL);
        if (out.kind !== "stream" || out.format !== "chunks") return assert.fail("chunks");
        const delta = (await messagesEvents(out.body)).find((e) => e.type === "message_delta");
        assert.deepEqual(delta.delta, { stop_reason: "stop_sequence", stop_sequence: null });
      });
    } finally {
      await bedrock.close();
    }
  },
);

Deno.test(
  "parallel_tool_calls false from /v1/responses (Codex) and /v1/messages reaches Bedrock, not a 400",
  SANITIZE,
  async (t) => {
    const bedrock = startFakeBedrock("us-west-2");
    const { adapter } = adapterFor(bedrock);
    const tool = { type: "object", properties: { cmd: { type: "string" } } };
    const sent = () => JSON.parse(bedrock.requests.at(-1)!.body);
    try {
      await t.step("a Codex-style Responses request", async () => {
        const { body } = parseResponsesRequest({
          model: MODEL,
          input: "list the files",
          tools: [{ type: "function", name: "shell", parameters: tool }],
          tool_choice: "auto",
          parallel_tool_calls: false,
        });
        const chat = toChatRequestFromResponses(body, [], "bedrock");
        bedrock.script({ json: CONVERSE_TEXT });
        const out = await adapter.chat({ ...call({}), body: chat }, MODEL);
        assert.equal(out.kind, "json");
        assert.deepEqual(sent().toolConfig.toolChoice, { auto: {} });
        assert.deepEqual(sent().additionalModelRequestFields, {
          tool_choice: { disable_parallel_tool_use: true },
        });
      });
      await t.step("an Anthropic request's disable_parallel_tool_use", async () => {
        const { body } = parseMessagesRequest({
          model: MODEL,
          max_tokens: 100,
          messages: [{ role: "user", content: "list the files" }],
          tools: [{ name: "shell", input_schema: tool }],
          tool_choice: { type: "any", disable_parallel_tool_use: true },
        });
        bedrock.script({ json: CONVERSE_TEXT });
        await adapter.chat({ ...call({}), body: toOpenAIChatRequest(body, "bedrock") }, MODEL);
        assert.deepEqual(sent().toolConfig.toolChoice, { any: {} });
        assert.deepEqual(sent().additionalModelRequestFields, {
          tool_choice: { disable_parallel_tool_use: true },
        });
      });
      await t.step("a model other than Claude: dropped, the call made", async () => {
        bedrock.script({ json: CONVERSE_TEXT });
        const out = await adapter.chat(
          call({
            tools: [{ type: "function", function: { name: "shell", parameters: tool } }],
            parallel_tool_calls: false,
          }),
          "amazon.nova-pro-v1:0",
        );
        assert.equal(out.kind, "json");
        assert.equal(sent().additionalModelRequestFields, undefined);
      });
    } finally {
      await bedrock.close();
    }
  },
);

Deno.test(
  "a conversation that opens with the assistant reaches Converse starting with a user turn",
  SANITIZE,
  async (t) => {
    const bedrock = startFakeBedrock("us-west-2");
    const { adapter } = adapterFor(bedrock);
    const sent = () => JSON.parse(bedrock.requests.at(-1)!.body);
    try {
      await t.step(
        "system, assistant greeting, user: a user turn first, the rest as sent",
        async () => {
          bedrock.script({ json: CONVERSE_TEXT });
          const out = await adapter.chat(
            call({
              messages: [
                { role: "system", content: "Be brief." },
                { role: "assistant", content: "Hi! How can I help?" },
                { role: "user", content: "Weather in Paris?" },
              ],
            }),
            MODEL,
          );
          assert.equal(out.kind, "json");
          assert.deepEqual(sent().system, [{ text: "Be brief." }]);
          assert.deepEqual(sent().messages, [
            { role: "user", content: [{ text: "." }] },
            { role: "assistant", content: [{ text: "Hi! How can I help?" }] },
            { role: "user", content: [{ text: "Weather in Paris?" }] },
          ]);
        },
      );
      await t.step("a conversation that opens with the user is untouched", async () => {
        bedrock.script({ json: CONVERSE_TEXT });
        await adapter.chat(call({}), MODEL);
        assert.deepEqual(sent().messages, [{ role: "user", content: [{ text: "Hello" }] }]);
      });
    } finally {
      await bedrock.close();
    }
  },
);

Deno.test(
  "createBedrockAdapter().countTokens() counts with the base model id, never a profile's",
  SANITIZE,
  async () => {
    const bedrock = startFakeBedrock("us-west-2");
    const { adapter } = adapterFor(bedrock);
    const base = "anthropic.claude-sonnet-4-5-20250929-v1:0";
    try {
      for (
        const model of [
          MODEL,
          `global.${base}`,
          `arn:aws:bedrock:us-west-2:123456789012:inference-profile/${MODEL}`,
          `arn:aws:bedrock:us-west-2::foundation-model/${base}`,
          base,
        ]
      ) {
        const count = await adapter.countTokens!({
          chat: { model, messages: [{ role: "user", content: "Hello" }] },
          messages: null,
          headers: {},
          responses: null,
          ...callBasics(null, 5_000),
        }, model);
        assert.equal(count.estimate, false);
        const seen = bedrock.requests.at(-1)!;
        assert.equal(seen.signatureValid, true);
        assert.equal(
          seen.rawPath,
          "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/count-tokens",
          model,
        );
      }
    } finally {
      await bedrock.close();
    }
  },
);
