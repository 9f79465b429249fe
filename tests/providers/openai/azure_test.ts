import assert from "node:assert/strict";
import { parseConfigText } from "../../../src/config/mod.ts";
import { createAdapters } from "../../../src/providers/mod.ts";
import { createRedactor } from "../../../src/telemetry/mod.ts";

/** The azure adapter of `yaml`, over a fetch that records each call and answers a completion. */
function recordingAzure(yaml: string) {
  const { config } = parseConfigText(yaml, () => undefined, "azure.yaml");
  const calls: { url: string; headers: Headers }[] = [];
  const fakeFetch = ((url: string, init: RequestInit) => {
    calls.push({ url, headers: new Headers(init.headers) });
    return Promise.resolve(Response.json({ id: "x", choices: [], object: "chat.completion" }));
  }) as typeof fetch;
  const adapter = createAdapters(config, {
    fetch: fakeFetch,
    redact: createRedactor([]),
    random: Math.random,
  }).get("azure")!;
  return { adapter, calls };
}

/** A one-message chat call for `model`, with the configured key unless `apiKey` says. */
function chatCall(
  model: string,
  apiKey: string | null = "azure-key-123",
  clientAuthorization: string | null = null,
) {
  return {
    signal: new AbortController().signal,
    timeoutMs: 1_000,
    apiKey,
    clientAuthorization,
    body: { model, messages: [{ role: "user" as const, content: "hi" }] },
    stream: false as const,
  };
}

Deno.test("Azure OpenAI: deployment URL, api-version and api-key header", async () => {
  const { config } = parseConfigText(
    `
providers:
  azure:
    base_url: https://my-resource.openai.azure.com
    api_version: 2024-10-21
    deployments: { gpt-4o: prod-gpt4o }
    keys: [{ key: azure-key-123 }]
`,
    () => undefined,
    "azure.yaml",
  );
  const seen: { url: string; headers: Headers; body: unknown }[] = [];
  const fakeFetch = ((url: string, init: RequestInit) => {
    seen.push({ url, headers: new Headers(init.headers), body: JSON.parse(String(init.body)) });
    return Promise.resolve(
      new Response(
        JSON.stringify({ object: "list", data: [], usage: { prompt_tokens: 1, total_tokens: 1 } }),
        {
          headers: { "content-type": "application/json" },
        },
      ),
    );
  }) as typeof fetch;
  const adapter = createAdapters(config, {
    fetch: fakeFetch,
    redact: createRedactor([]),
    random: Math.random,
  })
    .get("azure")!;
  const base = {
    signal: new AbortController().signal,
    timeoutMs: 1_000,
    apiKey: "azure-key-123",
    clientAuthorization: null,
  };
  await adapter.chat({
    ...base,
    body: { model: "gpt-4o", messages: [{ role: "user", content: "hi" }] },
    stream: false,
  }, "gpt-4o");
  await adapter.embeddings!(
    { ...base, body: { model: "text-embedding-3-small", input: "hi" } },
    "text-embedding-3-small",
  );
  assert.equal(
    seen[0]?.url,
    "https://my-resource.openai.azure.com/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21",
  );
  assert.equal(seen[0]?.headers.get("api-key"), "azure-key-123");
  assert.equal(seen[0]?.headers.get("authorization"), null);
  assert.equal(
    seen[1]?.url,
    "https://my-resource.openai.azure.com/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21",
  );
});

Deno.test("Azure OpenAI needs its resource endpoint", () => {
  assert.throws(
    () =>
      parseConfigText("providers:\n  azure: { keys: [{ key: k }] }\n", () => undefined, "a.yaml"),
    /providers\.azure\.base_url: Required for a provider of type "azure"/,
  );
});

Deno.test("Azure OpenAI: a model name is one path segment, or a 400 before any call", async () => {
  const { adapter, calls } = recordingAzure(`
providers:
  azure:
    base_url: https://my-resource.openai.azure.com
    deployments: { dotted: "..", gpt-4o: prod-gpt4o }
    keys: [{ key: azure-key-123 }]
`);
  const chat = (model: string) => adapter.chat(chatCall(model), model);
  const encoded: [string, string][] = [
    ["../../x", "..%2F..%2Fx"],
    ["a/../../b", "a%2F..%2F..%2Fb"],
    ["x?key=1", "x%3Fkey%3D1"],
    ["x#y", "x%23y"],
    ["%2e%2e", "%252e%252e"],
  ];
  for (const [model, segment] of encoded) {
    await chat(model);
    const url = new URL(calls.at(-1)!.url);
    assert.equal(url.host, "my-resource.openai.azure.com", model);
    assert.equal(url.pathname, `/openai/deployments/${segment}/chat/completions`, model);
    assert.equal(url.search, "?api-version=2024-10-21", model);
  }
  const sent = calls.length;
  for (const model of ["..", ".", "", "dotted"]) {
    await assert.rejects(
      chat(model),
      (err: Error & { status?: number; info?: { param?: string } }) => {
        assert.equal(err.status, 400, model);
        assert.equal(err.info?.param, "model", model);
        return true;
      },
    );
  }
  assert.equal(calls.length, sent, "refused names never reach Azure");
});

Deno.test("Azure OpenAI: a model named like an Object member is its own deployment", async () => {
  const { adapter, calls } = recordingAzure(`
providers:
  azure:
    base_url: https://my-resource.openai.azure.com
    keys: [{ key: azure-key-123 }]
`);
  for (const model of ["constructor", "toString", "hasOwnProperty"]) {
    await adapter.chat(chatCall(model), model);
    assert.equal(
      new URL(calls.at(-1)!.url).pathname,
      `/openai/deployments/${model}/chat/completions`,
    );
  }
});

Deno.test("Azure OpenAI: a forwarded client credential goes as api-key; an Entra ID token as Bearer", async () => {
  const { adapter, calls } = recordingAzure(
    "providers:\n  azure: { base_url: https://my-resource.openai.azure.com }\n",
  );
  const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwcyJ9.c2lnbmF0dXJl";
  for (const clientAuthorization of ["Bearer 0123456789abcdef0123456789abcdef", `Bearer ${jwt}`]) {
    await adapter.chat(chatCall("gpt-4o", null, clientAuthorization), "gpt-4o");
  }
  assert.equal(calls[0]?.headers.get("api-key"), "0123456789abcdef0123456789abcdef");
  assert.equal(calls[0]?.headers.get("authorization"), null);
  assert.equal(calls[1]?.headers.get("authorization"), `Bearer ${jwt}`);
  assert.equal(calls[1]?.headers.get("api-key"), null);
});
