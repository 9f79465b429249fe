import assert from "node:assert/strict";
import { GoogleGenAI } from "@google/genai";
import OpenAI from "openai";
import { SKIP_THOUGHT_SIGNATURE } from "../../src/providers/gemini/request.ts";
import { startFakeGemini } from "../fakes/fake_gemini.ts";
import { startGateway } from "../helpers/in_process.ts";

const KEY = "gm-test-key-0001";

const WEATHER_TOOL: OpenAI.Chat.ChatCompletionTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather",
    parameters: {
      $schema: "http://json-schema.org/draft-07/schema#",
      type: "object",
      properties: {
        location: { type: "string" },
        unit: { type: ["string", "null"], enum: ["celsius", "fahrenheit", null] },
      },
      required: ["location"],
      additionalProperties: false,
    },
    strict: true,
  },
};

/** What Gemini receives for WEATHER_TOOL: the OpenAPI subset, types as enum names. */
const WEATHER_DECLARATION = {
  name: "get_weather",
  description: "Current weather",
  parameters: {
    type: "OBJECT",
    properties: {
      location: { type: "STRING" },
      unit: { type: "STRING", nullable: true, enum: ["celsius", "fahrenheit"] },
    },
    required: ["location"],
  },
};

/** A tool call as the SDK returns it, with Gemini's thought signature beside it. */
type SignedToolCall = OpenAI.Chat.ChatCompletionMessageToolCall & {
  extra_content?: { google?: { thought_signature?: string } };
};

Deno.test("the Gemini adapter end to end, driven by the openai SDK", async (t) => {
  const gemini = startFakeGemini();
  // Failover is off so the 429 step reaches the client on the first answer.
  const gw = startGateway(`
providers:
  gemini:
    base_url: ${gemini.url}/v1beta
    keys: [{ key: ${KEY} }]
routing:
  failover: { enabled: false }
`);
  const client = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "sk-placeholder", maxRetries: 0 });
  const lastSent = () => {
    const r = gemini.requests.at(-1);
    assert.ok(r, "Gemini received no request");
    return { ...r, json: JSON.parse(r.body) };
  };
  try {
    await t.step("plain text: translated request, answer, usage", async () => {
      gemini.script({ json: "response_text" });
      const { data: completion, response } = await client.chat.completions.create({
        model: "gemini/gemini-2.5-flash",
        messages: [
          { role: "system", content: "Be brief." },
          { role: "user", content: "Hello" },
        ],
        temperature: 0.3,
        max_tokens: 100,
        stop: ["END"],
      }).withResponse();
      assert.equal(response.headers.get("x-pilotfish-provider"), "gemini");
      assert.equal(response.headers.get("x-pilotfish-model"), "gemini-2.5-flash");
      assert.equal(completion.object, "chat.completion");
      assert.equal(completion.model, "gemini-2.5-flash");
      assert.equal(completion.choices[0]?.message.content, "Hello! How can I help you today?");
      assert.equal(completion.choices[0]?.finish_reason, "stop");
      assert.equal(completion.usage?.prompt_tokens, 132);
      assert.equal(completion.usage?.completion_tokens, 38);
      assert.equal(completion.usage?.total_tokens, 170);
      assert.equal(completion.usage?.prompt_tokens_details?.cached_tokens, 100);
      assert.equal(completion.usage?.completion_tokens_details?.reasoning_tokens, 28);

      const sent = lastSent();
      assert.equal(sent.method, "POST");
      assert.equal(sent.path, "/v1beta/models/gemini-2.5-flash:generateContent");
      assert.equal(sent.search, "");
      assert.equal(sent.headers.get("x-goog-api-key"), KEY);
      // The SDK's placeholder key is never forwarded, in any header.
      assert.equal(sent.headers.get("authorization"), null);
      assert.deepEqual(sent.json, {
        contents: [{ role: "user", parts: [{ text: "Hello" }] }],
        systemInstruction: { parts: [{ text: "Be brief." }] },
        generationConfig: { temperature: 0.3, maxOutputTokens: 100, stopSequences: ["END"] },
      });
    });

    await t.step("a tool call, and the thought signature's round trip", async () => {
      gemini.script({ json: "response_function_call" });
      const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [
        { role: "user", content: "Weather in SF? Earlier you checked Paris." },
        {
          role: "assistant",
          content: null,
          tool_calls: [{
            id: "call_from_openai",
            type: "function",
            function: { name: "get_weather", arguments: '{"location":"Paris"}' },
          }],
        },
        { role: "tool", tool_call_id: "call_from_openai", content: '{"temp_c":18}' },
      ];
      const completion = await client.chat.completions.create({
        model: "gemini/gemini-2.5-flash",
        messages,
        tools: [WEATHER_TOOL],
        tool_choice: "auto",
      });
      const choice = completion.choices[0];
      assert.equal(choice?.finish_reason, "tool_calls");
      const calls = (choice?.message.tool_calls ?? []) as SignedToolCall[];
      assert.equal(calls.length, 2);
      const [weather, time] = calls;
      assert.ok(weather?.type === "function" && time?.type === "function");
      assert.equal(weather.function.name, "get_weather");
      assert.deepEqual(JSON.parse(weather.function.arguments), {
        location: "San Francisco, CA",
        unit: "celsius",
      });
      assert.equal(time.function.name, "get_time");
      assert.match(weather.id, /^call_\w+$/);
      assert.notEqual(weather.id, time.id);
      const signature = weather.extra_content?.google?.thought_signature;
      assert.equal(signature, "CtwBAVSoXO5fQvKx3M0Zt1e0q2u9VJfZ0cYh8n1pB4zQe6Wm");

      let sent = lastSent().json;
      assert.deepEqual(sent.tools, [{ functionDeclarations: [WEATHER_DECLARATION] }]);
      assert.deepEqual(sent.toolConfig, { functionCallingConfig: { mode: "AUTO" } });
      assert.deepEqual(sent.contents.slice(1), [
        {
          role: "model",
          parts: [{
            functionCall: { name: "get_weather", args: { location: "Paris" } },
            // History from another provider carries no signature: the documented stand-in.
            thoughtSignature: SKIP_THOUGHT_SIGNATURE,
          }],
        },
        {
          role: "user",
          parts: [{ functionResponse: { name: "get_weather", response: { temp_c: 18 } } }],
        },
      ]);

      // The client appends the assistant message as received: Gemini gets its signature back.
      gemini.script({ json: "response_text" });
      await client.chat.completions.create({
        model: "gemini/gemini-2.5-flash",
        messages: [
          ...messages,
          choice!.message as OpenAI.Chat.ChatCompletionMessageParam,
          { role: "tool", tool_call_id: weather.id, content: "21C, sunny" },
          { role: "tool", tool_call_id: time.id, content: "09:41" },
        ],
        tools: [WEATHER_TOOL],
      });
      sent = lastSent().json;
      assert.deepEqual(sent.contents.slice(3), [
        {
          role: "model",
          parts: [
            { text: "I'll check the weather and the time." },
            {
              functionCall: {
                name: "get_weather",
                args: { location: "San Francisco, CA", unit: "celsius" },
              },
              thoughtSignature: signature,
            },
            { functionCall: { name: "get_time", args: {} } },
          ],
        },
        {
          role: "user",
          parts: [
            { functionResponse: { name: "get_weather", response: { output: "21C, sunny" } } },
            { functionResponse: { name: "get_time", response: { output: "09:41" } } },
          ],
        },
      ]);
    });

    await t.step("a streamed tool call with include_usage", async () => {
      gemini.script({ sse: "stream_function_call" });
      const stream = await client.chat.completions.create({
        model: "gemini/gemini-2.5-flash",
        messages: [{ role: "user", content: "Weather and time in SF?" }],
        tools: [WEATHER_TOOL],
        stream: true,
        stream_options: { include_usage: true },
      });
      const names = new Map<number, string>();
      const args = new Map<number, string>();
      let text = "";
      let finish: string | null = null;
      let usage: OpenAI.CompletionUsage | null | undefined;
      for await (const chunk of stream) {
        const choice = chunk.choices[0];
        text += choice?.delta.content ?? "";
        for (const tc of choice?.delta.tool_calls ?? []) {
          if (tc.function?.name) names.set(tc.index, tc.function.name);
          args.set(tc.index, (args.get(tc.index) ?? "") + (tc.function?.arguments ?? ""));
        }
        finish = choice?.finish_reason ?? finish;
        if (chunk.usage) usage = chunk.usage;
      }
      assert.equal(text, "Let me check the weather.");
      assert.deepEqual([...names.entries()], [[0, "get_weather"], [1, "get_time"]]);
      assert.deepEqual(JSON.parse(args.get(0)!), {
        location: "San Francisco, CA",
        unit: "fahrenheit",
      });
      assert.deepEqual(JSON.parse(args.get(1)!), { timezone: "America/Los_Angeles" });
      assert.equal(finish, "tool_calls");
      assert.equal(usage?.prompt_tokens, 472);
      assert.equal(usage?.completion_tokens, 89);
      assert.equal(usage?.completion_tokens_details?.reasoning_tokens, 28);

      const sent = lastSent();
      assert.equal(sent.path, "/v1beta/models/gemini-2.5-flash:streamGenerateContent");
      assert.equal(sent.search, "?alt=sse");
      assert.equal(sent.headers.get("x-goog-api-key"), KEY);
      assert.equal(sent.json.stream, undefined);
      assert.deepEqual(sent.json.tools, [{ functionDeclarations: [WEATHER_DECLARATION] }]);
    });

    await t.step("streamed text with usage", async () => {
      gemini.script({ sse: "stream_text" });
      const stream = await client.chat.completions.create({
        model: "gemini/gemini-2.5-flash",
        messages: [{ role: "user", content: "Say something fishy" }],
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = "";
      let usage: OpenAI.CompletionUsage | null | undefined;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? "";
        if (chunk.usage) usage = chunk.usage;
      }
      assert.equal(text, "Hé, the 🐟 swims — 日本語 along.\n");
      assert.equal(usage?.prompt_tokens, 30);
      assert.equal(usage?.completion_tokens, 15);
      assert.equal(usage?.prompt_tokens_details?.cached_tokens, 5);
    });

    await t.step("image input as a data: URL", async () => {
      gemini.script({ json: "response_text" });
      const png =
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
      const completion = await client.chat.completions.create({
        model: "gemini/gemini-2.5-flash",
        messages: [{
          role: "user",
          content: [
            { type: "text", text: "What is in this image?" },
            {
              type: "image_url",
              image_url: { url: `data:image/png;base64,${png}`, detail: "low" },
            },
          ],
        }],
      });
      assert.equal(completion.choices[0]?.finish_reason, "stop");
      assert.deepEqual(lastSent().json.contents, [{
        role: "user",
        parts: [
          { text: "What is in this image?" },
          { inlineData: { mimeType: "image/png", data: png } },
        ],
      }]);
    });

    await t.step("embeddings (the SDK asks for base64 by default)", async () => {
      // Values equal to their float32 rounding prove the base64 path was taken.
      const { data: r, response } = await client.embeddings.create({
        model: "gemini/gemini-embedding-001",
        input: ["hello", "world"],
        dimensions: 5,
      }).withResponse();
      assert.equal(response.headers.get("x-pilotfish-provider"), "gemini");
      assert.equal(r.data.length, 2);
      assert.deepEqual(
        r.data[1]?.embedding,
        [-0.024011375, 0.0039912416, 0.0094127655, -0.017300256, -0.25].map(Math.fround),
      );
      const sent = lastSent();
      assert.equal(sent.path, "/v1beta/models/gemini-embedding-001:batchEmbedContents");
      assert.equal(sent.headers.get("x-goog-api-key"), KEY);
      assert.deepEqual(sent.json.requests[1], {
        model: "models/gemini-embedding-001",
        content: { parts: [{ text: "world" }] },
        outputDimensionality: 5,
      });
    });

    await t.step("an untranslatable request is a 400 that never reaches Gemini", async () => {
      const before = gemini.requests.length;
      await assert.rejects(
        () =>
          client.chat.completions.create({
            model: "gemini/gemini-2.5-flash",
            messages: [{ role: "user", content: "Hi" }],
            logprobs: true,
          }),
        (err: unknown) => {
          assert.ok(err instanceof OpenAI.BadRequestError);
          assert.equal(err.param, "logprobs");
          assert.match(err.message, /Parameter "logprobs" is not supported by provider "gemini"/);
          return true;
        },
      );
      assert.equal(gemini.requests.length, before);
    });

    await t.step("an upstream 429 RESOURCE_EXHAUSTED is the SDK's RateLimitError", async () => {
      gemini.script({ errorStatus: 429, errorFixture: "error_429" });
      const before = gemini.requests.length;
      await assert.rejects(
        () =>
          client.chat.completions.create({
            model: "gemini/gemini-2.5-flash",
            messages: [{ role: "user", content: "Hi" }],
          }),
        (err: unknown) => {
          assert.ok(err instanceof OpenAI.RateLimitError, `got ${err}`);
          assert.equal(err.status, 429);
          assert.equal(err.code, "RESOURCE_EXHAUSTED");
          assert.match(err.message, /You exceeded your current quota/);
          // Gemini sends no Retry-After; its RetryInfo delay (37.28s) stands in.
          assert.equal(err.headers.get("retry-after"), "38");
          assert.equal(err.headers.get("x-pilotfish-attempts"), "1");
          return true;
        },
      );
      assert.equal(gemini.requests.length, before + 1, "no retry with failover disabled");
    });
  } finally {
    await gw.close();
    await gemini.close();
  }
  assert.ok(!gw.logText().includes(KEY), "the Gemini key reached a log line");
});

Deno.test("Gemini base_url: the API root (Butter's convention) and a versioned one both work", async (t) => {
  for (const [form, suffix] of [["API root", ""], ["ending in /v1beta", "/v1beta"]] as const) {
    await t.step(form, async () => {
      const gemini = startFakeGemini();
      const gw = startGateway(`
providers:
  gemini: { base_url: "${gemini.url}${suffix}", keys: [{ key: ${KEY} }] }
`);
      try {
        // Translated: the adapter adds /v1beta to the API root, keeps a versioned base as is.
        gemini.script({ json: "response_text" });
        const client = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "sk-x", maxRetries: 0 });
        const completion = await client.chat.completions.create({
          model: "gemini/gemini-2.5-flash",
          messages: [{ role: "user", content: "Hello" }],
        });
        assert.equal(completion.choices[0]?.message.content, "Hello! How can I help you today?");
        assert.equal(
          gemini.requests.at(-1)!.path,
          "/v1beta/models/gemini-2.5-flash:generateContent",
        );

        // Native, with Google's own SDK: its version segment reaches the API root either way.
        const via = new GoogleGenAI({
          apiKey: "AIza-client-key",
          httpOptions: { baseUrl: gw.url("/gemini") },
        });
        const answer = await via.models.generateContent({
          model: "gemini-2.5-flash",
          contents: "Hello",
        });
        assert.equal(answer.text, "Hello! How can I help you today?");
        const seen = gemini.requests.at(-1)!;
        assert.match(seen.path, /^\/v1(beta)?\/models\/gemini-2\.5-flash:generateContent$/);
        assert.equal(seen.headers.get("x-goog-api-key"), "AIza-client-key");
        for (const version of ["v1", "v1beta"]) {
          const res = await fetch(
            gw.url(`/gemini/${version}/models/gemini-2.5-flash:generateContent`),
            { method: "POST", body: JSON.stringify({ contents: [{ parts: [{ text: "hi" }] }] }) },
          );
          assert.equal(res.status, 200);
          await res.body?.cancel();
          assert.equal(
            gemini.requests.at(-1)!.path,
            `/${version}/models/gemini-2.5-flash:generateContent`,
          );
          assert.equal(gemini.requests.at(-1)!.headers.get("x-goog-api-key"), KEY, "injected");
        }
      } finally {
        await gw.close();
        await gemini.close();
      }
    });
  }
});
