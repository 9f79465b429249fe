import assert from "node:assert/strict";
import OpenAI from "openai";
import { DEFAULT_ENV_KEYS, embeddedDefault } from "../../src/config/mod.ts";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway } from "../helpers/in_process.ts";
import { chatBody, startDaemon } from "./daemon.ts";

/** The daemon's listeners; the in-process gateway has none to configure. */
const SERVER = "server:\n  port: {{PORT}}\n  socket: {{SOCKET}}\n";

const CONFIG = (upstream: string) => `
${SERVER}providers:
  mock: {}
  up:
    base_url: ${upstream}/v1
    keys:
      - key: sk-configured-key-0001
  open:
    type: openai
    base_url: ${upstream}/v1
routing:
  aliases:
    fast: up/gpt-4o-mini
`;

async function readAll(res: Response): Promise<string> {
  return await res.text();
}

Deno.test("daemon serves chat completions over TCP and the Unix socket", async (t) => {
  const upstream = startFakeUpstream();
  const d = await startDaemon(CONFIG(upstream.url));
  try {
    await t.step("mock provider, non-stream over TCP", async () => {
      const res = await fetch(d.url("/v1/chat/completions"), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chatBody("mock/echo"),
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-pilotfish-provider"), "mock");
      const json = await res.json();
      assert.equal(json.object, "chat.completion");
      assert.equal(json.choices[0].message.content, "hi");
      assert.equal(
        json.usage.total_tokens,
        json.usage.prompt_tokens + json.usage.completion_tokens,
      );
    });

    await t.step("mock provider, stream over the Unix socket ends in [DONE]", async () => {
      const res = await d.socketFetch("/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chatBody("mock/echo", { stream: true }),
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
      const text = await readAll(res);
      assert.ok(text.trimEnd().endsWith("data: [DONE]"), text);
      assert.match(text, /"chat\.completion\.chunk"/);
    });

    await t.step("socket file has the configured mode", async () => {
      const st = await Deno.stat(d.socket);
      assert.equal((st.mode ?? 0) & 0o777, 0o660);
    });

    await t.step(
      "OpenAI-compatible upstream gets the configured key, never the client's",
      async () => {
        upstream.script({ kind: "json" });
        const res = await fetch(d.url("/v1/chat/completions"), {
          method: "POST",
          headers: {
            "content-type": "application/json",
            authorization: "Bearer placeholder-from-sdk",
          },
          body: JSON.stringify({
            model: "fast",
            messages: [{ role: "user", content: "hi" }],
            custom_field: { kept: true },
            "x-gateway": { metadata: { feature: "t" } },
          }),
        });
        assert.equal(res.status, 200);
        assert.equal((await res.json()).choices[0].message.content, "Hello from upstream");
        const seen = upstream.requests.at(-1)!;
        assert.equal(seen.path, "/v1/chat/completions");
        assert.equal(seen.headers.get("authorization"), "Bearer sk-configured-key-0001");
        const forwarded = JSON.parse(seen.body);
        assert.equal(forwarded.model, "gpt-4o-mini");
        assert.deepEqual(forwarded.custom_field, { kept: true });
        assert.equal(forwarded["x-gateway"], undefined);
      },
    );

    await t.step(
      "a provider without keys forwards the client's credential; pf_ keys never",
      async () => {
        await fetch(d.url("/v1/chat/completions"), {
          method: "POST",
          headers: { authorization: "Bearer sk-client-own" },
          body: chatBody("open/gpt-4o-mini"),
        }).then((r) => r.body?.cancel());
        assert.equal(
          upstream.requests.at(-1)!.headers.get("authorization"),
          "Bearer sk-client-own",
        );
        await fetch(d.url("/v1/chat/completions"), {
          method: "POST",
          headers: { authorization: "Bearer pf_app_key_123456" },
          body: chatBody("open/gpt-4o-mini"),
        }).then((r) => r.body?.cancel());
        assert.equal(upstream.requests.at(-1)!.headers.get("authorization"), null);
      },
    );

    await t.step("upstream stream is relayed chunk by chunk with usage", async () => {
      upstream.script({ kind: "stream", includeUsage: true });
      const res = await d.socketFetch("/v1/chat/completions", {
        method: "POST",
        body: chatBody("up/gpt-4o-mini", { stream: true, stream_options: { include_usage: true } }),
      });
      const text = await readAll(res);
      assert.match(text, /"content":" upstream"/);
      assert.match(text, /"total_tokens":10/);
      assert.ok(text.endsWith("data: [DONE]\n\n"));
      await d.waitForLog(`"prompt_tokens":7`);
    });

    await t.step("GET /v1/models lists provider/model ids and aliases", async () => {
      const json = await (await fetch(d.url("/v1/models"))).json();
      const ids = json.data.map((m: { id: string }) => m.id);
      assert.ok(ids.includes("mock/echo"));
      assert.ok(ids.includes("fast"));
    });

    await t.step("health endpoints", async () => {
      assert.equal(await (await fetch(d.url("/healthz"))).text(), "ok");
      const readyRes = await fetch(d.url("/ready"));
      assert.equal(readyRes.status, 200);
      await readyRes.body?.cancel();
      const health = await (await d.socketFetch("/health")).json();
      assert.equal(health.status, "healthy");
      assert.equal(typeof health.timestamp, "number");
      assert.equal(health.providers.up.status, "healthy");
    });
  } finally {
    assert.equal(await d.stop(), 0);
    await upstream.close();
  }
});

Deno.test("the official openai SDK works against the gateway (non-stream and stream)", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(CONFIG(upstream.url).replace(SERVER, ""));
  try {
    const client = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "unused", maxRetries: 0 });
    const completion = await client.chat.completions.create({
      model: "mock/echo",
      messages: [{ role: "user", content: "Say hello" }],
    });
    assert.equal(completion.choices[0]?.message.content, "Say hello");

    const stream = await client.chat.completions.create({
      model: "mock/echo",
      messages: [{ role: "user", content: "one two three" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) usage = chunk.usage.total_tokens;
    }
    assert.equal(text, "one two three");
    assert.ok(usage > 0);

    upstream.script({ kind: "stream" });
    const viaUpstream = await client.chat.completions.create({
      model: "up/gpt-4o-mini",
      messages: [{ role: "user", content: "x" }],
      stream: true,
    });
    let upstreamText = "";
    for await (const chunk of viaUpstream) upstreamText += chunk.choices[0]?.delta.content ?? "";
    assert.equal(upstreamText, "Hello from upstream");

    await assert.rejects(
      client.chat.completions.create({
        model: "nope/x",
        messages: [{ role: "user", content: "x" }],
      }),
      (err: unknown) =>
        err instanceof OpenAI.NotFoundError && /Unknown model "nope\/x"/.test(err.message),
    );
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("GET /v1/models lists what an OpenAI-compatible provider serves when none are configured", async () => {
  const up = startFakeUpstream();
  up.script({
    kind: "json",
    body: {
      object: "list",
      data: [{ id: "gpt-4o", object: "model" }, { id: "gpt-4o-mini", object: "model" }],
    },
  });
  const gw = startGateway(`
providers:
  listed: { base_url: "${up.url}/v1", keys: [{ key: sk-list-0001 }] }
  fixed: { base_url: "${up.url}/v1", models: [only-this] }
`);
  try {
    const json = await (await gw.request("/v1/models")).json();
    const ids = json.data.map((m: { id: string }) => m.id);
    assert.ok(ids.includes("listed/gpt-4o") && ids.includes("listed/gpt-4o-mini"), ids.join());
    assert.ok(ids.includes("fixed/only-this"));
    assert.ok(!ids.includes("fixed/gpt-4o"), "configured models win over discovery");
    const asked = up.requests.filter((r) => r.path === "/v1/models");
    assert.equal(asked.length, 1);
    assert.equal(asked[0]?.headers.get("authorization"), "Bearer sk-list-0001");
    await (await gw.request("/v1/models")).body?.cancel();
    assert.equal(up.requests.filter((r) => r.path === "/v1/models").length, 1, "cached");
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("the embedded default never answers a bare or misspelled model with the mock", async (t) => {
  const gw = startGateway(embeddedDefault(() => undefined).config);
  const client = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "unused", maxRetries: 0 });
  try {
    await t.step("mock/... is answered by the mock", async () => {
      const r = await client.chat.completions.create({
        model: "mock/echo",
        messages: [{ role: "user", content: "hi" }],
      });
      assert.equal(r.choices[0]?.message.content, "hi");
    });

    await t.step("a bare or misspelled model is a 404 naming the env vars", async () => {
      for (const model of ["gpt-4o-mini", "opneai/gpt-4o"]) {
        for (const stream of [false, true]) {
          const res = await fetch(gw.url("/v1/chat/completions"), {
            method: "POST",
            body: chatBody(model, { stream }),
          });
          assert.equal(res.status, 404);
          assert.match(res.headers.get("content-type") ?? "", /application\/json/);
          const { error } = await res.json();
          assert.equal(error.type, "not_found_error");
          assert.equal(error.param, "model");
          assert.ok(error.message.includes(`"${model}"`), error.message);
          assert.match(error.message, /Configured providers: mock/);
          for (const name of DEFAULT_ENV_KEYS) assert.ok(error.message.includes(name), name);
        }
      }
      await assert.rejects(
        client.chat.completions.create({
          model: "gpt-4o-mini",
          messages: [{ role: "user", content: "hi" }],
        }),
        (err: unknown) => err instanceof OpenAI.NotFoundError && /OPENAI_API_KEY/.test(err.message),
      );
    });

    await t.step("a native route with no provider of its kind names its env var too", async () => {
      for (
        const [path, key] of [
          ["/openai/v1/chat/completions", "OPENAI_API_KEY"],
          ["/anthropic/v1/messages", "ANTHROPIC_API_KEY"],
          ["/gemini/v1beta/models/g:generateContent", "GEMINI_API_KEY"],
        ] as const
      ) {
        const res = await fetch(gw.url(path), { method: "POST", body: "{}" });
        assert.equal(res.status, 404, path);
        const text = await res.text();
        assert.match(text, new RegExp(`set ${key}`), path);
        assert.doesNotMatch(text, /configured: none/, path);
      }
    });
  } finally {
    await gw.close();
  }
});

Deno.test("GET /v1/models/{id}: the SDK's models.retrieve gets the listed entry, a 404 for others", async () => {
  const gw = startGateway("providers:\n  mock: {}\n");
  try {
    const client = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "x", maxRetries: 0 });
    const model = await client.models.retrieve("mock/echo");
    assert.deepEqual(model, { id: "mock/echo", object: "model", created: 0, owned_by: "mock" });
    await assert.rejects(
      () => client.models.retrieve("nope/nothing"),
      // The 404 names what is configured.
      (e: unknown) =>
        e instanceof OpenAI.NotFoundError &&
        /Configured providers: mock; models: mock\/echo, .*GET \/v1\/models lists/.test(e.message),
    );
    const post = await gw.request("/v1/models/mock/echo", { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET");
    await post.body?.cancel();
  } finally {
    await gw.close();
  }
});
