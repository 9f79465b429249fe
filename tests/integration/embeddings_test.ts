import assert from "node:assert/strict";
import OpenAI from "openai";
import { embeddedDefault } from "../../src/config/mod.ts";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway } from "../helpers/in_process.ts";

const EMBEDDINGS = {
  object: "list",
  data: [
    { object: "embedding", index: 0, embedding: [0.1, -0.2, 0.3] },
    { object: "embedding", index: 1, embedding: [0.4, 0.5, -0.6] },
  ],
  model: "text-embedding-3-small",
  usage: { prompt_tokens: 5, total_tokens: 5 },
};

Deno.test("POST /v1/embeddings through the openai SDK, with failover and errors", async (t) => {
  const broken = startFakeUpstream();
  const up = startFakeUpstream();
  broken.script({ kind: "json", status: 503, body: { error: { message: "down" } } });
  up.script({ kind: "json", body: EMBEDDINGS });
  const gw = startGateway(`
providers:
  claude: { type: anthropic, base_url: "${broken.url}/v1", keys: [{ key: sk-ant-x }] }
  broken: { base_url: "${broken.url}/v1" }
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-embed-0001 }] }
routing:
  models:
    text-embedding-3-small: { providers: [broken, up] }
  failover:
    backoff: { initial: 5ms, max: 10ms }
`);
  const client = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "unused", maxRetries: 0 });
  try {
    await t.step("float vectors, usage, failover to the working provider", async () => {
      const { data: r, response } = await client.embeddings.create({
        model: "text-embedding-3-small",
        input: ["hello", "world"],
        encoding_format: "float",
      }).withResponse();
      assert.equal(r.data.length, 2);
      assert.deepEqual(r.data[1]?.embedding, [0.4, 0.5, -0.6]);
      assert.equal(r.usage.prompt_tokens, 5);
      assert.equal(response.headers.get("x-pilotfish-provider"), "up");
      const seen = up.requests.at(-1)!;
      assert.equal(seen.path, "/v1/embeddings");
      assert.equal(seen.headers.get("authorization"), "Bearer sk-embed-0001");
      assert.deepEqual(JSON.parse(seen.body).input, ["hello", "world"]);
    });

    await t.step("bad input is a 400 naming the field", async () => {
      for (
        const [body, param] of [
          [{ model: "up/x" }, "input"],
          [{ model: "up/x", input: [] }, "input"],
          [{ model: "up/x", input: "a", encoding_format: "hex" }, "encoding_format"],
          [{ model: "up/x", input: "a", dimensions: 0 }, "dimensions"],
          [{ input: "a" }, "model"],
          // OpenAI's 2,048 inputs, on every provider: no request fans out without bound.
          [{ model: "up/x", input: Array.from({ length: 2049 }, () => "x") }, "input"],
          [{ model: "up/x", input: [1, -1] }, "input"],
          [{ model: "up/x", input: "a", user: 5 }, "user"],
        ] as const
      ) {
        const res = await gw.request("/v1/embeddings", {
          method: "POST",
          body: JSON.stringify(body),
        });
        assert.equal(res.status, 400);
        assert.equal((await res.json()).error.param, param);
      }
      // null is unset, as the SDKs send it.
      up.script({
        kind: "json",
        body: {
          object: "list",
          data: [],
          model: "x",
          usage: { prompt_tokens: 1, total_tokens: 1 },
        },
      });
      const res = await gw.request("/v1/embeddings", {
        method: "POST",
        body: JSON.stringify({
          model: "up/x",
          input: "a",
          encoding_format: null,
          dimensions: null,
        }),
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    });

    await t.step("a provider without embeddings is a clear 400; unknown model 404", async () => {
      let res = await gw.request("/v1/embeddings", {
        method: "POST",
        body: JSON.stringify({ model: "claude/claude-sonnet-4-5", input: "a" }),
      });
      assert.equal(res.status, 400);
      assert.match((await res.json()).error.message, /Provider "claude" has no embeddings API/);
      res = await gw.request("/v1/embeddings", {
        method: "POST",
        body: JSON.stringify({ model: "nope/x", input: "a" }),
      });
      assert.equal(res.status, 404);
      await res.body?.cancel();
    });
  } finally {
    await gw.close();
    await broken.close();
    await up.close();
  }
});

Deno.test("embeddings on the embedded default: a bare model is a 404 naming the env vars", async () => {
  const gw = startGateway(embeddedDefault(() => undefined).config);
  try {
    const res = await fetch(gw.url("/v1/embeddings"), {
      method: "POST",
      body: JSON.stringify({ model: "text-embedding-3-small", input: "hi" }),
    });
    assert.equal(res.status, 404);
    const { error } = await res.json();
    assert.equal(error.type, "not_found_error");
    assert.equal(error.param, "model");
    assert.match(error.message, /"text-embedding-3-small".*OPENAI_API_KEY.*GEMINI_API_KEY/);
  } finally {
    await gw.close();
  }
});

Deno.test("embeddings an upstream did not count are estimated from the input, billed and marked, not free", async () => {
  const up = startFakeUpstream();
  const { usage: _none, ...uncounted } = EMBEDDINGS;
  up.script({ kind: "json", body: uncounted });
  const gw = startGateway(`
providers:
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-embed-0001 }] }
pricing:
  models:
    "up/emb": { input: 1, output: 0 }
`);
  try {
    const res = await gw.request("/v1/embeddings", {
      method: "POST",
      body: JSON.stringify({ model: "up/emb", input: ["a".repeat(400), "b".repeat(400)] }),
    });
    assert.equal(res.status, 200);
    // About 4 characters a token: 200 tokens at $1 per million. The answer carries them as
    // OpenAI's always does (SDKs read `usage`); the texts' characters only, not the JSON's.
    assert.deepEqual((await res.json()).usage, { prompt_tokens: 200, total_tokens: 200 });
    const cost = Number(res.headers.get("x-pilotfish-cost-usd"));
    assert.ok(cost >= 0.00019 && cost <= 0.00021, `cost ${cost}`);
    await gw.waitForLog('"msg":"request"');
    const line = JSON.parse(gw.logs.find((l) => l.includes('"msg":"request"'))!);
    assert.equal(line.usage_estimated, true);
    assert.equal(line.prompt_tokens, 200);
    // Token ids count as themselves.
    up.script({ kind: "json", body: uncounted });
    const ids = await gw.request("/v1/embeddings", {
      method: "POST",
      body: JSON.stringify({
        model: "up/emb",
        input: [Array.from({ length: 400 }, (_, i) => 1000 + i)],
      }),
    });
    assert.deepEqual((await ids.json()).usage, { prompt_tokens: 400, total_tokens: 400 });
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("the mock embeds offline: the same input the same unit vector, in either encoding, through the SDK", async () => {
  const gw = startGateway(embeddedDefault(() => undefined).config);
  const client = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "unused", maxRetries: 0 });
  try {
    const floats = await client.embeddings.create({
      model: "mock/echo",
      input: ["hello", "world", "hello"],
      encoding_format: "float",
    });
    assert.equal(floats.data.length, 3);
    const [a, b, c] = floats.data.map((d) => d.embedding);
    assert.equal(a!.length, 8);
    assert.deepEqual(a, c, "the same input, the same vector");
    assert.notDeepEqual(a, b);
    assert.ok(Math.abs(a!.reduce((n, v) => n + v * v, 0) - 1) < 1e-5, "unit length");
    assert.ok(floats.usage.prompt_tokens > 0);
    // The Node SDK asks for base64 by default and decodes it.
    const decoded = await client.embeddings.create({
      model: "mock/echo",
      input: "hello",
      dimensions: 4,
    });
    assert.equal(decoded.data[0]!.embedding.length, 4);
    const failing = await gw.request("/v1/embeddings", {
      method: "POST",
      body: JSON.stringify({ model: "mock/error-503", input: "a" }),
    });
    assert.equal(failing.status, 503);
    await failing.body?.cancel();
    // More dimensions than OpenAI's largest model: a 400 at once, as OpenAI answers, not a
    // vector of 300 million floats built on the daemon's thread.
    const huge = await gw.request("/v1/embeddings", {
      method: "POST",
      body: JSON.stringify({ model: "mock/echo", input: "x", dimensions: 300_000_000 }),
    });
    assert.equal(huge.status, 400);
    const err = (await huge.json()).error;
    assert.match(err.message, /'dimensions' = 300000000: an integer from 1 to 3072/);
    assert.equal(huge.headers.get("x-pilotfish-attempts"), "1");
    // Nor a fraction, a negative size, or 2,048 inputs of 3,072 (the answer is bounded).
    for (
      const body of [
        { dimensions: 1.5, input: "x" },
        { dimensions: -4, input: "x" },
        { dimensions: 3072, input: Array.from({ length: 2048 }, () => "x") },
      ]
    ) {
      const res = await gw.request("/v1/embeddings", {
        method: "POST",
        body: JSON.stringify({ model: "mock/echo", ...body }),
      });
      assert.ok(res.status === 400, `${JSON.stringify(body).slice(0, 40)}: ${res.status}`);
      await res.body?.cancel();
    }
  } finally {
    await gw.close();
  }
});

Deno.test("an embeddings fan-out that fails part-way bills the batches that were answered", async () => {
  // Gemini's batchEmbedContents: 100 texts a batch, no token counts; a batch holding `!fail`
  // is refused, as a real API refuses a bad input.
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.json() as { requests: { content: { parts: { text: string }[] } }[] };
    const texts = body.requests.map((r) => r.content.parts[0]!.text);
    if (texts.includes("!fail")) {
      return Response.json(
        { error: { code: 400, message: "Invalid input", status: "INVALID_ARGUMENT" } },
        { status: 400 },
      );
    }
    return Response.json({ embeddings: texts.map(() => ({ values: [1, 0] })) });
  });
  const gw = startGateway(`
providers:
  g: { type: gemini, base_url: "http://127.0.0.1:${server.addr.port}", keys: [{ key: g-key-0001 }] }
pricing:
  models:
    "g/text-embedding-004": { input: 1, output: 0 }
`);
  try {
    const input = [...Array.from({ length: 100 }, () => "x".repeat(40)), "!fail"];
    const res = await gw.request("/v1/embeddings", {
      method: "POST",
      body: JSON.stringify({ model: "g/text-embedding-004", input }),
    });
    assert.equal(res.status, 400);
    await res.body?.cancel();
    await gw.waitForLog('"msg":"request"');
    const line = JSON.parse(gw.logs.find((l) => l.includes('"msg":"request"'))!);
    // The first batch (100 texts of 40 characters) was answered: ~1,000 tokens at $1 a million.
    assert.equal(line.prompt_tokens, 1000, JSON.stringify(line));
    assert.equal(line.cost_usd, 0.001);
    assert.equal(line.usage_estimated, true);
  } finally {
    await gw.close();
    await server.shutdown();
  }
});

Deno.test("embeddings Gemini did not count: the answer's usage is the estimate it is billed, not 0", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.json() as { requests: unknown[] };
    return Response.json({ embeddings: body.requests.map(() => ({ values: [1, 0] })) });
  });
  const gw = startGateway(`
providers:
  g: { type: gemini, base_url: "http://127.0.0.1:${server.addr.port}", keys: [{ key: g-key-0001 }] }
`);
  try {
    const res = await gw.request("/v1/embeddings", {
      method: "POST",
      body: JSON.stringify({
        model: "g/gemini-embedding-001",
        input: ["x".repeat(40), "y".repeat(40)],
      }),
    });
    assert.equal(res.status, 200);
    const json = await res.json();
    await gw.waitForLog('"msg":"request"');
    const line = JSON.parse(gw.logs.find((l) => l.includes('"msg":"request"'))!);
    assert.equal(line.usage_estimated, true);
    assert.ok(line.prompt_tokens > 0);
    assert.deepEqual(json.usage, {
      prompt_tokens: line.prompt_tokens,
      total_tokens: line.prompt_tokens,
    });
    // Named as Google's SDKs name it, the model is priced as itself.
    const named = await gw.request("/v1/embeddings", {
      method: "POST",
      body: JSON.stringify({ model: "g/models/gemini-embedding-001", input: "x".repeat(40) }),
    });
    assert.equal(named.status, 200);
    await named.body?.cancel();
    assert.ok(Number(named.headers.get("x-pilotfish-cost-usd")) > 0, "priced");
  } finally {
    await gw.close();
    await server.shutdown();
  }
});

Deno.test("Gemini embeddings on its native route are billed on the request's size (Gemini counts none)", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    return Response.json(
      new URL(req.url).pathname.endsWith(":batchEmbedContents")
        ? { embeddings: [{ values: [1, 0] }] }
        : { embedding: { values: [1, 0] } },
    );
  });
  const gw = startGateway(`
providers:
  gemini: { base_url: "http://127.0.0.1:${server.addr.port}", keys: [{ key: g-key-0001 }] }
`);
  try {
    const text = "x".repeat(400);
    for (
      const [method, body] of [
        ["embedContent", { content: { parts: [{ text }] } }],
        [
          "batchEmbedContents",
          { requests: [{ model: "models/gemini-embedding-001", content: { parts: [{ text }] } }] },
        ],
      ] as const
    ) {
      const res = await gw.request(`/gemini/v1beta/models/gemini-embedding-001:${method}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 200, method);
      await res.body?.cancel();
      assert.ok(Number(res.headers.get("x-pilotfish-cost-usd")) > 0, `${method}: billed`);
    }
    await gw.waitForLog('"msg":"request"');
    const lines = gw.logs.filter((l) => l.includes('"msg":"request"')).map((l) => JSON.parse(l));
    for (const line of lines) {
      assert.equal(line.usage_estimated, true);
      assert.ok(line.prompt_tokens >= 100, String(line.prompt_tokens));
    }
  } finally {
    await gw.close();
    await server.shutdown();
  }
});
