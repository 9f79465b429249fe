import assert from "node:assert/strict";
import {
  fromGeminiEmbedResponse,
  toGeminiEmbedRequest,
} from "../../../src/providers/gemini/embeddings.ts";
import type { OpenAIEmbeddingsRequest } from "../../../src/schema/openai.ts";
import { fixtureJson, gatewayError } from "./helpers.ts";

const RESOURCE = "models/gemini-embedding-001";

function body(extra: Partial<OpenAIEmbeddingsRequest> & Record<string, unknown>) {
  return { model: "gemini/gemini-embedding-001", input: "hello", ...extra };
}

/** OpenAI's base64 embedding → the float32 values it encodes. */
function decodeFloat32(b64: string): number[] {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return Array.from(new Float32Array(bytes.buffer));
}

Deno.test("toGeminiEmbedRequest() sends one request per input with outputDimensionality", () => {
  assert.deepEqual(
    toGeminiEmbedRequest(body({ input: ["hello", "world"], dimensions: 768, user: "u" }), RESOURCE),
    {
      requests: [
        { model: RESOURCE, content: { parts: [{ text: "hello" }] }, outputDimensionality: 768 },
        { model: RESOURCE, content: { parts: [{ text: "world" }] }, outputDimensionality: 768 },
      ],
    },
  );
  assert.deepEqual(toGeminiEmbedRequest(body({}), RESOURCE), {
    requests: [{ model: RESOURCE, content: { parts: [{ text: "hello" }] } }],
  });
});

Deno.test("toGeminiEmbedRequest() refuses token arrays and bad options", async (t) => {
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ["a token array", { input: [1, 2, 3] }, "input", /Token-array "input" is not supported/],
    ["token arrays", { input: [[1, 2], [3]] }, "input", /Token-array/],
    ["an empty list", { input: [] }, "input", /non-empty array of strings/],
    ["mixed input", { input: ["a", 1] }, "input", /non-empty array of strings/],
    ["zero dimensions", { dimensions: 0 }, "dimensions", /positive integer/],
    ["hex encoding", { encoding_format: "hex" }, "encoding_format", /"float" or "base64"/],
  ];
  for (const [label, extra, param, message] of cases) {
    await t.step(label, async () => {
      const err = await gatewayError(() =>
        toGeminiEmbedRequest(body(extra as Partial<OpenAIEmbeddingsRequest>), RESOURCE)
      );
      assert.equal(err.status, 400);
      assert.equal(err.info.param, param);
      assert.match(err.message, message);
    });
  }
});

Deno.test("fromGeminiEmbedResponse() answers OpenAI's list with float vectors", async () => {
  const { body: out, usage } = fromGeminiEmbedResponse(
    await fixtureJson("embeddings.json"),
    "gemini-embedding-001",
    2,
    "float",
  );
  assert.deepEqual(out, {
    object: "list",
    data: [
      {
        object: "embedding",
        index: 0,
        embedding: [0.013168523, -0.008711934, -0.046782676, 0.00069823025, 0.5],
      },
      {
        object: "embedding",
        index: 1,
        embedding: [-0.024011375, 0.0039912416, 0.0094127655, -0.017300256, -0.25],
      },
    ],
    model: "gemini-embedding-001",
    usage: { prompt_tokens: 0, total_tokens: 0 },
  });
  assert.deepEqual(usage, { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
});

Deno.test("fromGeminiEmbedResponse() encodes base64 as little-endian float32", async () => {
  const json = await fixtureJson("embeddings.json") as { embeddings: { values: number[] }[] };
  const { body: out } = fromGeminiEmbedResponse(json, "m", 2, "base64");
  for (const [i, item] of out.data.entries()) {
    assert.equal(typeof item.embedding, "string");
    assert.deepEqual(
      decodeFloat32(item.embedding as string),
      json.embeddings[i]?.values.map(Math.fround),
    );
  }
  // 0.5 is 0x3f000000: little-endian bytes 00 00 00 3f.
  const { body: half } = fromGeminiEmbedResponse(
    { embeddings: [{ values: [0.5] }] },
    "m",
    1,
    "base64",
  );
  assert.equal(half.data[0]?.embedding, "AAAAPw==");
});

Deno.test("fromGeminiEmbedResponse() uses usageMetadata when Gemini reports it", () => {
  const { body: out, usage } = fromGeminiEmbedResponse(
    { embeddings: [{ values: [0.1] }], usageMetadata: { promptTokenCount: 4, totalTokenCount: 4 } },
    "m",
    1,
    "float",
  );
  assert.deepEqual(out.usage, { prompt_tokens: 4, total_tokens: 4 });
  assert.deepEqual(usage, { prompt_tokens: 4, completion_tokens: 0, total_tokens: 4 });
});

Deno.test("fromGeminiEmbedResponse() refuses a body without the expected embeddings", async () => {
  const bodies = [
    null,
    { embeddings: "no" },
    { embeddings: [{ values: [0.1] }] },
    { embeddings: [{ values: ["x"] }, { values: [] }] },
  ];
  for (const json of bodies) {
    const err = await gatewayError(() => fromGeminiEmbedResponse(json, "m", 2, "float", "google"));
    assert.equal(err.code, "upstream_error");
    assert.equal(err.status, 502);
    assert.equal(err.info.provider, "google");
  }
});
