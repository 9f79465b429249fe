import assert from "node:assert/strict";
import OpenAI from "openai";
import {
  CONVERSE_TOOL_USE,
  startFakeBedrock,
  STREAM_TEXT,
  STREAM_TOOL_USE,
  TEST_CREDENTIALS,
} from "../fakes/fake_bedrock.ts";
import { startDaemon } from "./daemon.ts";

const MODEL_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const MODEL = `bedrock/${MODEL_ID}`;
const RAW_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0";

const WEATHER_TOOL: OpenAI.Chat.ChatCompletionTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather",
    parameters: {
      type: "object",
      properties: { location: { type: "string" }, unit: { type: "string" } },
      required: ["location"],
    },
  },
};

Deno.test("Bedrock signing mode: npm:openai → Pilotfish (signs) → Converse", async (t) => {
  const bedrock = startFakeBedrock("us-west-2");
  // Failover is off so the throttling step reaches the client on the first answer.
  const d = await startDaemon(
    `
server:
  port: {{PORT}}
  socket: {{SOCKET}}
providers:
  bedrock:
    sign: true
    region: us-west-2
    endpoint: "${bedrock.url}"
routing:
  failover: { enabled: false }
`,
    {
      env: {
        AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
        AWS_SESSION_TOKEN: TEST_CREDENTIALS.sessionToken,
      },
    },
  );
  const client = new OpenAI({ baseURL: d.url("/v1"), apiKey: "sk-placeholder", maxRetries: 0 });
  const lastSent = () => {
    const r = bedrock.requests.at(-1);
    assert.ok(r, "Bedrock received no request");
    return { ...r, json: JSON.parse(r.body) };
  };
  try {
    await t.step("non-stream text: signed by Pilotfish, verified by the fake", async () => {
      bedrock.script({});
      const { data: completion, response } = await client.chat.completions.create({
        model: MODEL,
        messages: [
          { role: "system", content: "Be brief." },
          { role: "user", content: "Hello" },
        ],
        max_tokens: 100,
        temperature: 0.3,
      }).withResponse();
      assert.equal(response.headers.get("x-pilotfish-provider"), "bedrock");
      assert.equal(completion.object, "chat.completion");
      assert.equal(completion.model, MODEL_ID);
      assert.equal(completion.choices[0]?.message.content, "Hello from Bedrock");
      assert.equal(completion.choices[0]?.finish_reason, "stop");
      assert.equal(completion.usage?.prompt_tokens, 11);
      assert.equal(completion.usage?.completion_tokens, 4);

      const sent = lastSent();
      assert.equal(sent.signatureValid, true, "the fake verified Pilotfish's SigV4 signature");
      assert.equal(sent.rawPath, `/model/${RAW_MODEL}/converse`);
      assert.ok(sent.rawPath.includes("%3A"));
      assert.equal(sent.headers.get("x-amz-security-token"), TEST_CREDENTIALS.sessionToken);
      assert.ok(!sent.headers.get("authorization")?.includes("sk-placeholder"));
      assert.deepEqual(sent.json, {
        messages: [{ role: "user", content: [{ text: "Hello" }] }],
        system: [{ text: "Be brief." }],
        inferenceConfig: { maxTokens: 100, temperature: 0.3 },
      });
    });

    await t.step("stream text with include_usage", async () => {
      bedrock.script({ events: STREAM_TEXT });
      const stream = await client.chat.completions.create({
        model: MODEL,
        messages: [{ role: "user", content: "Hello" }],
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = "";
      let finish: string | null = null;
      let usage: OpenAI.CompletionUsage | null | undefined;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? "";
        finish = chunk.choices[0]?.finish_reason ?? finish;
        if (chunk.usage) usage = chunk.usage;
      }
      assert.equal(text, "Hello from Bedrock");
      assert.equal(finish, "stop");
      assert.equal(usage?.prompt_tokens, 21);
      assert.equal(usage?.completion_tokens, 9);
      assert.equal(usage?.total_tokens, 30);
      const sent = lastSent();
      assert.equal(sent.signatureValid, true);
      assert.equal(sent.rawPath, `/model/${RAW_MODEL}/converse-stream`);
    });

    await t.step("a tool call, non-stream", async () => {
      bedrock.script({ json: CONVERSE_TOOL_USE });
      const completion = await client.chat.completions.create({
        model: MODEL,
        messages: [{ role: "user", content: "Weather in Paris?" }],
        tools: [WEATHER_TOOL],
        tool_choice: { type: "function", function: { name: "get_weather" } },
      });
      const choice = completion.choices[0];
      assert.equal(choice?.finish_reason, "tool_calls");
      assert.equal(choice?.message.content, "Let me check.");
      const call = choice?.message.tool_calls?.[0];
      assert.ok(call?.type === "function");
      assert.equal(call.id, "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
      assert.equal(call.function.name, "get_weather");
      assert.deepEqual(JSON.parse(call.function.arguments), { location: "Paris", unit: "celsius" });
      const sent = lastSent();
      assert.equal(sent.signatureValid, true);
      assert.deepEqual(sent.json.toolConfig, {
        tools: [{
          toolSpec: {
            name: "get_weather",
            description: "Current weather",
            inputSchema: { json: WEATHER_TOOL.function.parameters },
          },
        }],
        toolChoice: { tool: { name: "get_weather" } },
      });
    });

    await t.step(
      "a streamed tool call, arguments split across deltas, then its result",
      async () => {
        bedrock.script({ events: STREAM_TOOL_USE });
        const stream = await client.chat.completions.create({
          model: MODEL,
          messages: [{ role: "user", content: "Weather in Paris?" }],
          tools: [WEATHER_TOOL],
          stream: true,
        });
        let text = "";
        let id = "";
        let name = "";
        const pieces: string[] = [];
        let finish: string | null = null;
        for await (const chunk of stream) {
          const choice = chunk.choices[0];
          text += choice?.delta.content ?? "";
          for (const tc of choice?.delta.tool_calls ?? []) {
            assert.equal(tc.index, 0);
            if (tc.id) id = tc.id;
            if (tc.function?.name) name = tc.function.name;
            if (tc.function?.arguments) pieces.push(tc.function.arguments);
          }
          finish = choice?.finish_reason ?? finish;
        }
        assert.equal(text, "Checking.");
        assert.equal(id, "tooluse_stream01");
        assert.equal(name, "get_weather");
        assert.deepEqual(pieces, ['{"locat', 'ion": "Par', 'is"}']);
        assert.deepEqual(JSON.parse(pieces.join("")), { location: "Paris" });
        assert.equal(finish, "tool_calls");
        assert.equal(lastSent().signatureValid, true);

        // The client sends the call back with its result: toolUse, then toolResult.
        bedrock.script({});
        await client.chat.completions.create({
          model: MODEL,
          messages: [
            { role: "user", content: "Weather in Paris?" },
            {
              role: "assistant",
              content: text,
              tool_calls: [{
                id,
                type: "function",
                function: { name, arguments: pieces.join("") },
              }],
            },
            { role: "tool", tool_call_id: id, content: "18°C, cloudy" },
          ],
          tools: [WEATHER_TOOL],
        });
        const sent = lastSent();
        assert.equal(sent.signatureValid, true, "a non-ASCII body is signed as sent");
        assert.deepEqual(sent.json.messages.slice(1), [
          {
            role: "assistant",
            content: [
              { text: "Checking." },
              { toolUse: { toolUseId: id, name: "get_weather", input: { location: "Paris" } } },
            ],
          },
          {
            role: "user",
            content: [{ toolResult: { toolUseId: id, content: [{ text: "18°C, cloudy" }] } }],
          },
        ]);
      },
    );

    await t.step("embeddings through the OpenAI SDK: Titan via InvokeModel", async () => {
      bedrock.script({});
      const res = await client.embeddings.create({
        model: "bedrock/amazon.titan-embed-text-v2:0",
        input: ["first text", "second"],
      });
      assert.equal(res.data.length, 2);
      // The SDK asks for base64 and decodes it: the fake's vector says which text it was.
      assert.deepEqual(res.data.map((d) => d.embedding[0]), [10, 6]);
      assert.ok(res.usage.prompt_tokens > 0);
      assert.ok(lastSent().signatureValid);
    });

    await t.step("an upstream ThrottlingException reaches the SDK as 429", async () => {
      bedrock.script({
        error: { status: 429, type: "ThrottlingException", message: "Too many requests" },
      });
      const before = bedrock.requests.length;
      await assert.rejects(
        () =>
          client.chat.completions.create({
            model: MODEL,
            messages: [{ role: "user", content: "Hi" }],
          }),
        (err: unknown) => {
          assert.ok(err instanceof OpenAI.RateLimitError, `got ${err}`);
          assert.equal(err.status, 429);
          // OpenAI's type for a 429; the exception's name is the code.
          assert.equal(err.type, "rate_limit_error");
          assert.equal(err.code, "ThrottlingException");
          assert.match(err.message, /Too many requests/);
          return true;
        },
      );
      assert.equal(bedrock.requests.length, before + 1, "no retry with failover disabled");
      assert.equal(bedrock.requests.at(-1)?.signatureValid, true);
    });
  } finally {
    await d.stop();
    await bedrock.close();
  }
  const logs = d.logs();
  assert.ok(!logs.includes(TEST_CREDENTIALS.secretAccessKey), "the secret key reached a log line");
  assert.ok(!logs.includes(TEST_CREDENTIALS.sessionToken), "the session token reached a log line");
});

Deno.test("Bedrock signing mode without AWS credentials: a clear 500, no upstream call", async () => {
  const bedrock = startFakeBedrock("us-west-2");
  const dir = await Deno.makeTempDir({ prefix: "pf-aws-" });
  const d = await startDaemon(
    `
server:
  port: {{PORT}}
  socket: {{SOCKET}}
providers:
  bedrock: { sign: true, region: us-west-2, endpoint: "${bedrock.url}" }
routing:
  failover: { enabled: false }
`,
    // Empty values count as unset; the credentials file named does not exist. (HOME stays:
    // Deno finds its module cache through it.)
    {
      env: {
        AWS_ACCESS_KEY_ID: "",
        AWS_SECRET_ACCESS_KEY: "",
        AWS_SESSION_TOKEN: "",
        AWS_PROFILE: "",
        AWS_SHARED_CREDENTIALS_FILE: `${dir}/credentials`,
      },
    },
  );
  const client = new OpenAI({ baseURL: d.url("/v1"), apiKey: "sk-placeholder", maxRetries: 0 });
  try {
    await assert.rejects(
      () =>
        client.chat.completions.create({
          model: MODEL,
          messages: [{ role: "user", content: "Hi" }],
        }),
      (err: unknown) => {
        assert.ok(err instanceof OpenAI.InternalServerError, `got ${err}`);
        assert.equal(err.status, 500);
        assert.match(
          err.message,
          /Bedrock signing is on for provider "bedrock" but no AWS credentials were found \(set AWS_ACCESS_KEY_ID/,
        );
        assert.doesNotMatch(err.message, /not granted/, "the planner grants what resolution reads");
        return true;
      },
    );
    assert.equal(bedrock.requests.length, 0);
    // Still serving.
    const ok = await fetch(d.url("/healthz"));
    assert.equal(await ok.text(), "ok");
  } finally {
    await d.stop();
    await bedrock.close();
    await Deno.remove(dir, { recursive: true });
  }
});
