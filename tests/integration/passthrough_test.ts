import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { GoogleGenAI } from "@google/genai";
import OpenAI from "openai";
import { startFakeAnthropic } from "../fakes/fake_anthropic.ts";
import { startFakeGemini } from "../fakes/fake_gemini.ts";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { type InProcessGateway, startGateway } from "../helpers/in_process.ts";
import { chatBody } from "./daemon.ts";

const bytesOf = async (res: Response) => new Uint8Array(await res.arrayBuffer());

Deno.test("native passthrough relays bytes, credentials and streams untouched", async (t) => {
  const openai = startFakeUpstream();
  const anthropic = startFakeAnthropic();
  const gw = startGateway(`
server:
  max_body_bytes: 4096
providers:
  openai: { base_url: "${openai.url}/v1", keys: [{ key: sk-configured-openai }] }
  anthropic: { base_url: "${anthropic.url}/v1" }
`);
  try {
    await t.step("openai SDK on /openai/v1 with its own key: forwarded as sent", async () => {
      const client = new OpenAI({
        baseURL: gw.url("/openai/v1"),
        apiKey: "sk-client-own",
        maxRetries: 0,
      });
      const r = await client.chat.completions.create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "hi" }],
        // A field Pilotfish does not know survives.
        ...({ custom_knob: 7 } as Record<string, unknown>),
      });
      assert.equal(r.choices[0]?.message.content, "Hello from upstream");
      const seen = openai.requests.at(-1)!;
      assert.equal(seen.path, "/v1/chat/completions");
      assert.equal(seen.headers.get("authorization"), "Bearer sk-client-own");
      assert.equal(JSON.parse(seen.body).custom_knob, 7);
      assert.equal(JSON.parse(seen.body).model, "gpt-4o-mini", "model not rewritten");
    });

    await t.step(
      "no client credential: the configured key is injected; pf_ keys never pass",
      async () => {
        await gw.request("/openai/v1/chat/completions", {
          method: "POST",
          body: chatBody("gpt-4o"),
        })
          .then((r) => r.body?.cancel());
        assert.equal(
          openai.requests.at(-1)!.headers.get("authorization"),
          "Bearer sk-configured-openai",
        );
        await gw.request("/openai/v1/chat/completions?x=1", {
          method: "POST",
          headers: { authorization: "Bearer pf_app_key_abcdef" },
          body: chatBody("gpt-4o"),
        }).then((r) => r.body?.cancel());
        assert.equal(
          openai.requests.at(-1)!.headers.get("authorization"),
          "Bearer sk-configured-openai",
        );
      },
    );

    await t.step(
      "the SSE stream is byte-identical to the upstream's, usage is logged",
      async () => {
        openai.script({ kind: "stream", includeUsage: true });
        const direct = await bytesOf(
          await fetch(`${openai.url}/v1/chat/completions`, {
            method: "POST",
            body: chatBody("gpt-4o", { stream: true }),
          }),
        );
        const via = await gw.request("/openai/v1/chat/completions", {
          method: "POST",
          body: chatBody("gpt-4o", { stream: true }),
        });
        assert.equal(via.headers.get("content-type"), "text/event-stream");
        assert.deepEqual(await bytesOf(via), direct);
        await gw.waitForLog(`"route":"/openai/*"`);
        await gw.waitForLog(`"prompt_tokens":7`);
      },
    );

    await t.step("upstream errors pass through verbatim", async () => {
      const body = {
        error: { message: "Invalid model", type: "invalid_request_error", code: "model_not_found" },
      };
      openai.script({ kind: "json", status: 404, body });
      const res = await gw.request("/openai/v1/chat/completions", {
        method: "POST",
        body: chatBody("x"),
      });
      assert.equal(res.status, 404);
      assert.deepEqual(await res.json(), body);
      openai.script({ kind: "json" });
    });

    await t.step(
      "GET with a query string, /native/{provider}/ forwards to base_url + rest",
      async () => {
        const res = await gw.request("/native/openai/models?limit=2&llm_user_id=erin");
        await res.body?.cancel();
        assert.equal(openai.requests.at(-1)!.path, "/v1/models");
        assert.equal(openai.requests.at(-1)!.method, "GET");
        // llm-proxy's user id is the gateway's (rate limits): never forwarded.
        assert.equal(openai.requests.at(-1)!.search, "?limit=2");
      },
    );

    await t.step(
      "anthropic SDK on /anthropic: bytes identical to talking to the mock directly",
      async () => {
        const via = new Anthropic({
          baseURL: gw.url("/anthropic"),
          apiKey: "sk-ant-client",
          maxRetries: 0,
        });
        const msg = await via.messages.create({
          model: "claude-sonnet-4-5",
          max_tokens: 100,
          messages: [{ role: "user", content: "weather?" }],
        });
        assert.equal(msg.stop_reason, "tool_use");
        const seen = anthropic.requests.at(-1)!;
        assert.equal(seen.path, "/v1/messages");
        // The SDK authenticates with x-api-key or Authorization: Bearer (newer versions): either
        // reaches Anthropic exactly as sent.
        assert.match(
          `${seen.headers.get("x-api-key")} ${seen.headers.get("authorization")}`,
          /sk-ant-client/,
        );
        assert.equal(
          seen.headers.get("content-length"),
          String(new TextEncoder().encode(seen.body).length),
        );
        assert.ok(seen.headers.get("anthropic-version"), "anthropic-version passed through");

        const request = {
          model: "claude-sonnet-4-5",
          max_tokens: 100,
          stream: true,
          messages: [{ role: "user", content: "hi" }],
        };
        const init = {
          method: "POST",
          headers: {
            "x-api-key": "k",
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
          },
          body: JSON.stringify(request),
        };
        const direct = await bytesOf(await fetch(`${anthropic.url}/v1/messages`, init));
        const proxied = await bytesOf(await gw.request("/anthropic/v1/messages", init));
        assert.deepEqual(proxied, direct);
      },
    );

    await t.step(
      "oversize bodies: 413 by Content-Length and while streaming a chunked upload",
      async () => {
        const big = "x".repeat(10_000);
        let res = await gw.request("/openai/v1/files", { method: "POST", body: big });
        assert.equal(res.status, 413);
        await res.body?.cancel();
        const enc = new TextEncoder();
        let sent = 0;
        const chunked = new ReadableStream<Uint8Array>({
          pull(c) {
            if (sent >= 10) return c.close();
            sent++;
            c.enqueue(enc.encode(big.slice(0, 1000)));
          },
        });
        res = await gw.request("/openai/v1/files", { method: "POST", body: chunked });
        assert.equal(res.status, 413);
        assert.equal((await res.json()).error.code, "payload_too_large");
      },
    );

    await t.step("bad native requests: unknown provider 404 in the route's format", async () => {
      const res = await gw.request("/native/nope/x");
      assert.equal(res.status, 404);
      assert.match((await res.json()).error.message, /Unknown provider "nope"/);
      const gem = await gw.request("/gemini/v1beta/models/gemini-2.5-flash:generateContent", {
        method: "POST",
        body: "{}",
      });
      assert.equal(gem.status, 404);
      const body = await gem.json();
      assert.equal(body.error.status, "NOT_FOUND");
      assert.equal(body.error.code, 404);
    });

    await t.step(
      "/native/{provider}/*: once the provider is known, its errors are in its own API's format",
      async () => {
        const via = new Anthropic({
          baseURL: gw.url("/native/anthropic"),
          apiKey: "sk-ant-client",
          maxRetries: 0,
        });
        const before = anthropic.requests.length;
        const err = await via.messages.create({
          model: "claude-sonnet-4-5",
          max_tokens: 100,
          messages: [{ role: "user", content: "x".repeat(5000) }],
        }).then(() => null, (e: unknown) => e);
        assert.ok(err instanceof Anthropic.APIError, String(err));
        assert.equal(err.status, 413);
        const body = err.error as { type: string; error: { type: string; message: string } };
        assert.equal(body.type, "error");
        assert.equal(body.error.type, "request_too_large");
        assert.equal(anthropic.requests.length, before, "refused before any upstream call");
        // Containment and uncovered paths too; an unknown provider has no format of its own.
        const bare = await gw.request("/native/anthropic");
        assert.equal(bare.status, 404);
        assert.equal((await bare.json()).type, "error");
        const dots = await gw.request("/native/anthropic/v1/a%2F..%2Fx");
        assert.equal(dots.status, 400);
        assert.equal((await dots.json()).error.type, "invalid_request_error");
        const openaiOwn = await gw.request("/native/openai/a%2F..%2Fx");
        assert.equal((await openaiOwn.json()).error.type, "invalid_request_error");
        assert.equal(anthropic.requests.length, before);
      },
    );
  } finally {
    await gw.close();
    await openai.close();
    await anthropic.close();
  }
});

Deno.test("the Google GenAI SDK through /gemini: same answers and bytes as the mock directly", async () => {
  const gemini = startFakeGemini();
  const gw = startGateway(`
providers:
  gemini: { base_url: "${gemini.url}/v1beta", keys: [{ key: AIza-configured-gemini-key-000000 }] }
`);
  try {
    const direct = new GoogleGenAI({ apiKey: "client-key", httpOptions: { baseUrl: gemini.url } });
    const via = new GoogleGenAI({
      apiKey: "client-key",
      httpOptions: { baseUrl: gw.url("/gemini") },
    });
    const ask = { model: "gemini-2.5-flash", contents: "What's the weather in Boston?" };
    const a = await direct.models.generateContent(ask);
    const b = await via.models.generateContent(ask);
    assert.deepEqual(b.candidates, a.candidates);
    assert.deepEqual(b.usageMetadata, a.usageMetadata);
    const seen = gemini.requests.at(-1)!;
    assert.match(
      seen.path,
      /^\/v1(beta)?\/models\/gemini-2.5-flash:generateContent$/,
      "the SDK's own API version passes through",
    );
    assert.equal(seen.headers.get("x-goog-api-key"), "client-key", "the client's own key passes");

    const streamed: unknown[] = [];
    for await (const chunk of await via.models.generateContentStream(ask)) {
      streamed.push(chunk.candidates);
    }
    assert.ok(streamed.length > 0);
    assert.equal(gemini.requests.at(-1)!.search, "?alt=sse");

    // Raw bytes, SSE included, identical to the mock's.
    const init = {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ contents: [{ parts: [{ text: "hi" }] }] }),
    };
    const path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
    const directBytes = await bytesOf(await fetch(`${gemini.url}${path}`, init));
    const viaBytes = await bytesOf(await gw.request(`/gemini${path}`, init));
    assert.deepEqual(viaBytes, directBytes);
    assert.equal(
      gemini.requests.at(-1)!.headers.get("x-goog-api-key"),
      "AIza-configured-gemini-key-000000",
      "injected when the client sent none",
    );
    await gw.waitForLog(`"route":"/gemini/*"`);
    assert.ok(
      !gw.logText().includes("AIza-configured-gemini-key"),
      "the key never reaches a log line",
    );
  } finally {
    await gw.close();
    await gemini.close();
  }
});

Deno.test("native routes: whose credential reaches the provider", async (t) => {
  const openai = startFakeUpstream();
  const anthropic = startFakeAnthropic();
  const gemini = startFakeGemini();
  const gw = startGateway(`
providers:
  openai:
    base_url: "${openai.url}/v1"
    keys: [{ key: sk-conf-4o, models: [gpt-4o] }, { key: sk-conf-mini, models: [gpt-4o-mini] }]
  locked: { type: openai, base_url: "${openai.url}/v1", credential_mode: gateway, keys: [{ key: sk-conf-locked }] }
  anthropic: { base_url: "${anthropic.url}/v1", keys: [{ key: sk-ant-conf }] }
  gemini: { base_url: "${gemini.url}", keys: [{ key: AIza-conf-root }] }
  gemlocked:
    type: gemini
    base_url: "${gemini.url}/v1beta"
    credential_mode: gateway
    keys: [{ key: AIza-conf-locked }]
`);
  const post = (path: string, headers: Record<string, string>, body: string) =>
    gw.request(path, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
    }).then(async (r) => ({ status: r.status, body: await r.text() }));
  try {
    await t.step(
      "an SDK's placeholder (`unused`) is a real client credential: it passes",
      async () => {
        const client = new OpenAI({
          baseURL: gw.url("/openai/v1"),
          apiKey: "unused",
          maxRetries: 0,
        });
        await client.chat.completions.create({ model: "gpt-4o", messages: [] });
        assert.equal(openai.requests.at(-1)!.headers.get("authorization"), "Bearer unused");
      },
    );

    await t.step(
      "an empty credential counts as none: the key allowed for the model is used",
      async () => {
        for (
          const [headers, model, key] of [
            [{ authorization: "Bearer " }, "gpt-4o-mini", "sk-conf-mini"],
            [{ authorization: "Bearer" }, "gpt-4o", "sk-conf-4o"],
            [{}, "gpt-4o-mini", "sk-conf-mini"],
          ] as const
        ) {
          const r = await post("/openai/v1/chat/completions", headers, chatBody(model));
          assert.equal(r.status, 200, r.body);
          assert.equal(openai.requests.at(-1)!.headers.get("authorization"), `Bearer ${key}`);
        }
        // No configured key may serve this model: a 404 in the route's format, nothing sent.
        const before = openai.requests.length;
        const r = await post("/openai/v1/chat/completions", {}, chatBody("o3"));
        assert.equal(r.status, 404);
        assert.match(JSON.parse(r.body).error.message, /No key of provider "openai".*"o3"/);
        assert.equal(openai.requests.length, before);
      },
    );

    await t.step(
      "Gemini: an empty x-goog-api-key counts as none; base_url is the API root",
      async () => {
        const r = await post(
          "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
          { "x-goog-api-key": "" },
          JSON.stringify({ contents: [{ parts: [{ text: "hi" }] }] }),
        );
        assert.equal(r.status, 200, r.body);
        const seen = gemini.requests.at(-1)!;
        assert.equal(seen.path, "/v1beta/models/gemini-2.5-flash:generateContent");
        assert.equal(seen.headers.get("x-goog-api-key"), "AIza-conf-root");
      },
    );

    await t.step("a pf_ app key is no provider credential and is never forwarded", async () => {
      await post("/anthropic/v1/messages", {
        "x-api-key": "pf_app_key_abcdef",
        "anthropic-version": "2023-06-01",
      }, JSON.stringify({ model: "claude-sonnet-4-5", max_tokens: 5, messages: [] }));
      let seen = anthropic.requests.at(-1)!;
      assert.equal(seen.headers.get("x-api-key"), "sk-ant-conf");
      await post("/gemini/v1beta/models/gemini-2.5-flash:generateContent?key=pf_app_key_abcdef", {
        "x-butter-app-key": "pf_app_key_abcdef",
      }, "{}");
      seen = gemini.requests.at(-1)!;
      assert.equal(seen.headers.get("x-goog-api-key"), "AIza-conf-root");
      assert.equal(seen.search, "");
      for (const r of [...anthropic.requests, ...gemini.requests, ...openai.requests]) {
        assert.ok(![...r.headers].some(([, v]) => v.includes("pf_app")), "pf_ key forwarded");
        assert.ok(!(r.search ?? "").includes("pf_app"));
      }
    });

    await t.step("Anthropic clients may use Authorization: Bearer with any version", async () => {
      await post("/anthropic/v1/messages", {
        authorization: "Bearer sk-ant-oauth-client",
        "anthropic-version": "2099-01-01",
        "anthropic-beta": "oauth-2025-04-20",
      }, JSON.stringify({ model: "claude-sonnet-4-5", max_tokens: 5, messages: [] }));
      const seen = anthropic.requests.at(-1)!;
      assert.equal(seen.headers.get("authorization"), "Bearer sk-ant-oauth-client");
      assert.equal(seen.headers.get("x-api-key"), null, "no configured key added beside it");
      assert.equal(seen.headers.get("anthropic-version"), "2099-01-01");
    });

    await t.step(
      "credential_mode: gateway drops the client's credential for a configured key",
      async () => {
        const client = new OpenAI({
          baseURL: gw.url("/native/locked"),
          apiKey: "sk-client-own",
          maxRetries: 0,
        });
        await client.chat.completions.create({ model: "gpt-4o", messages: [] });
        assert.equal(openai.requests.at(-1)!.headers.get("authorization"), "Bearer sk-conf-locked");

        const via = new GoogleGenAI({
          apiKey: "AIza-client-own",
          httpOptions: { baseUrl: gw.url("/native/gemlocked") },
        });
        // /native/{p} is base_url + rest (Butter): this base_url already carries /v1beta.
        await gw.request("/native/gemlocked/models/gemini-2.5-flash:generateContent?key=AIza-q", {
          method: "POST",
          headers: { "x-goog-api-key": "AIza-client-own", authorization: "Bearer AIza-client-own" },
          body: "{}",
        }).then((r) => r.body?.cancel());
        const seen = gemini.requests.at(-1)!;
        assert.equal(seen.path, "/v1beta/models/gemini-2.5-flash:generateContent");
        assert.equal(seen.headers.get("x-goog-api-key"), "AIza-conf-locked");
        assert.equal(seen.headers.get("authorization"), null);
        assert.equal(seen.search, "", "the client's ?key= is dropped too");
        assert.ok(via, "the SDK accepts the sidecar as its base URL");

        // Its cookies are a credential too; with its own key (no injection) they pass.
        const cases = [["/native/locked", null], ["/openai/v1", "session=abc"]] as const;
        for (const [path, sent] of cases) {
          const r = await post(`${path}/chat/completions`, {
            authorization: "Bearer sk-client-own",
            cookie: "session=abc",
          }, chatBody("gpt-4o"));
          assert.equal(r.status, 200, r.body);
          assert.equal(openai.requests.at(-1)!.headers.get("cookie"), sent, path);
        }
        // Any credential parameter, in any case, goes too; the rest of the query stays.
        await gw.request(
          "/native/locked/chat/completions?KEY=q1&Key=q2&api-key=q3&api_key=q4&access_token=q5&a=1",
          { method: "POST", headers: { authorization: "Bearer sk-client-own" }, body: "{}" },
        ).then((r) => r.body?.cancel());
        const last = openai.requests.at(-1)!;
        assert.equal(last.search, "?a=1");
        assert.equal(last.headers.get("authorization"), "Bearer sk-conf-locked");
      },
    );

    await t.step("the configured keys never reach a log line", async () => {
      await gw.waitForLog(`"route":"/native/:provider/*"`);
      for (
        const key of ["sk-conf-4o", "sk-conf-mini", "sk-conf-locked", "AIza-conf", "sk-ant-conf"]
      ) {
        assert.ok(!gw.logText().includes(key), key);
      }
    });
  } finally {
    await gw.close();
    await openai.close();
    await anthropic.close();
    await gemini.close();
  }
});

Deno.test("native routes with the breaker on: a client's own credential is not a configured key's", async (t) => {
  const openai = startFakeUpstream();
  const gw = startGateway(`
providers:
  openai: { base_url: "${openai.url}/v1", keys: [{ key: sk-conf-only-4o, models: [gpt-4o], id: conf }] }
routing:
  failover: { enabled: false }
features:
  circuit_breaker:
    enabled: true
    max_transient_retries: 0
    max_rate_limit_retries: 0
`);
  const keyStatus = async () => {
    const health = await (await gw.request("/health")).json();
    return health.providers.openai.keys[0].status as string;
  };
  const send = (model: string) =>
    gw.request("/openai/v1/chat/completions", {
      method: "POST",
      headers: { authorization: "Bearer sk-client-own", "content-type": "application/json" },
      body: chatBody(model),
    }).then(async (r) => ({ status: r.status, body: await r.text() }));
  try {
    await t.step("a per-key allowlist does not 404 a request on the client's own key", async () => {
      const r = await send("o3");
      assert.equal(r.status, 200, r.body);
      assert.equal(openai.requests.at(-1)!.headers.get("authorization"), "Bearer sk-client-own");
    });

    await t.step(
      "a 401 or 429 on the client's own key does not cool the configured key",
      async () => {
        for (const status of [401, 429]) {
          openai.script({
            kind: "json",
            status,
            body: { error: { message: "no", type: "invalid_request_error", code: null } },
          });
          const r = await send("gpt-4o");
          assert.equal(r.status, status, r.body);
          assert.equal(
            openai.requests.at(-1)!.headers.get("authorization"),
            "Bearer sk-client-own",
          );
          assert.equal(await keyStatus(), "ok", `after ${status}`);
        }
        openai.script({ kind: "json" });
      },
    );

    await t.step("with no client credential the configured key is injected and used", async () => {
      const r = await gw.request("/openai/v1/chat/completions", {
        method: "POST",
        body: chatBody("gpt-4o"),
      });
      assert.equal(r.status, 200);
      await r.body?.cancel();
      assert.equal(openai.requests.at(-1)!.headers.get("authorization"), "Bearer sk-conf-only-4o");
    });
  } finally {
    await gw.close();
    await openai.close();
  }
});

Deno.test("an upstream error that echoes the gateway's injected key reaches the client redacted", async () => {
  await withOpenai(async (up, gw) => {
    const echo = (body: string) => ({
      kind: "json" as const,
      status: 401,
      body: {
        error: { message: `Incorrect API key provided: ${body}.`, type: "invalid_request_error" },
      },
    });
    up.script(echo("sk-configured-openai-0001"));
    const res = await gw.request("/openai/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody("gpt-4o-mini"),
    });
    assert.equal(res.status, 401);
    const text = await res.text();
    assert.doesNotMatch(text, /sk-configured-openai-0001/);
    assert.match(text, /Incorrect API key provided: \[REDACTED\]\./);
    // The client's own key, echoed back to the client that sent it, is its business.
    up.script(echo("sk-client-own-0001"));
    const own = await gw.request("/openai/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer sk-client-own-0001" },
      body: chatBody("gpt-4o-mini"),
    });
    assert.match(await own.text(), /sk-client-own-0001/);
  });
});

Deno.test("passthrough headers: the provider's x-request-id kept unless the client sent one; x-pilotfish-model from the answer", async () => {
  await withOpenai(async (up, gw) => {
    const call = async (headers: Record<string, string>) => {
      up.script({ kind: "json", headers: { "x-request-id": "req_oa_123" } });
      const res = await gw.request("/openai/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: chatBody("gpt-4o-mini"),
      });
      await res.body?.cancel();
      return res.headers.get("x-request-id");
    };
    assert.equal(await call({}), "req_oa_123");
    // The body streamed upstream unread; the JSON answer read whole names the model.
    up.script({ kind: "json" });
    const named = await gw.request("/openai/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody("gpt-4o-mini"),
    });
    await named.body?.cancel();
    assert.ok(named.headers.get("x-pilotfish-model"));
    assert.equal(await call({ "x-request-id": "client-id-0001" }), "client-id-0001");
    // Unified routes: ours (the provider's headers are not relayed there).
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody("openai/gpt-4o-mini"),
    });
    await res.body?.cancel();
    assert.match(res.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  });
});

Deno.test("passthrough drops the headers a Connection header names (RFC 9110 7.6.1; one rule for requests and answers)", async () => {
  await withOpenai(async (up, gw) => {
    up.script({ kind: "json" });
    const res = await gw.request("/openai/v1/chat/completions", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        connection: "keep-alive, x-hop-custom",
        "x-hop-custom": "for-this-hop-only",
        "x-end-to-end": "kept",
      },
      body: chatBody("gpt-4o-mini"),
    });
    await res.body?.cancel();
    const sent = up.requests.at(-1)!.headers;
    assert.equal(sent.get("x-hop-custom"), null);
    assert.equal(sent.get("x-end-to-end"), "kept");
  });
});

Deno.test("passthrough x-pilotfish-model on a stream and an error too: a small body's model is read before it goes upstream", async () => {
  await withOpenai(async (up, gw) => {
    // Over TCP: a client's Content-Length is what makes a body small enough to read first.
    const call = async (body: string) => {
      const res = await fetch(gw.url("/openai/v1/chat/completions"), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      await res.body?.cancel();
      return res;
    };
    up.script({ kind: "stream" });
    const stream = await call(chatBody("gpt-4o-mini", { stream: true }));
    assert.equal(stream.status, 200);
    assert.equal(stream.headers.get("x-pilotfish-model"), "gpt-4o-mini");
    up.script({ kind: "json", status: 400, body: { error: { message: "bad", type: "x" } } });
    const failed = await call(chatBody("gpt-4o-mini"));
    assert.equal(failed.status, 400);
    assert.equal(failed.headers.get("x-pilotfish-model"), "gpt-4o-mini");
    assert.equal(failed.headers.get("x-pilotfish-provider"), "openai");
    // The upstream got the client's bytes, with their length.
    const sent = up.requests.at(-1)!;
    assert.equal(sent.body, chatBody("gpt-4o-mini"));
    assert.equal(sent.headers.get("content-length"), String(chatBody("gpt-4o-mini").length));
  });
});

Deno.test("passthrough: a compressed body nothing needs to read is relayed unread, even one that is not what it claims", async () => {
  await withOpenai(async (up, gw) => {
    const notGzip = new TextEncoder().encode(chatBody("gpt-4o-mini"));
    const res = await fetch(gw.url("/openai/v1/chat/completions"), {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
      body: notGzip,
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    const sent = up.requests.at(-1)!;
    assert.equal(sent.headers.get("content-encoding"), "gzip");
    assert.equal(sent.body, chatBody("gpt-4o-mini"));
  });
});

/** `fn` against an in-process gateway whose `openai` provider is a fake upstream with a key. */
async function withOpenai(
  fn: (up: ReturnType<typeof startFakeUpstream>, gw: InProcessGateway) => Promise<void>,
): Promise<void> {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  openai: { base_url: "${up.url}/v1", keys: [{ key: sk-configured-openai-0001 }] }
`);
  try {
    await fn(up, gw);
  } finally {
    await gw.close();
    await up.close();
  }
}

Deno.test("a passthrough stream that closes before its last event does not end silently", async (t) => {
  let events: string[] = [];
  const up = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    return new Response(ReadableStream.from(events.map((e) => new TextEncoder().encode(e))), {
      headers: { "content-type": "text/event-stream" },
    });
  });
  const base = `http://127.0.0.1:${up.addr.port}`;
  const gw = startGateway(`
providers:
  openai: { base_url: "${base}/v1", keys: [{ key: sk-configured-openai }] }
  anthropic: { base_url: "${base}/v1", keys: [{ key: sk-ant-configured }] }
routing:
  failover: { first_chunk_timeout: 1s, stream_idle_timeout: 1500ms }
`);
  const chunk =
    `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"partial"}}]}\n\n`;
  const ask = (path: string, body: Record<string, unknown>) =>
    gw.request(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...body, stream: true }),
    });
  const outcome = async (res: Response) => {
    const id = res.headers.get("x-request-id")!;
    await gw.waitForLog(`"request_id":"${id}"`);
    return JSON.parse(gw.logs.find((l) => l.includes(`"request_id":"${id}"`))!).outcome;
  };
  const chat = { model: "gpt-4o", messages: [{ role: "user" as const, content: "hi" }] };
  try {
    await t.step("OpenAI: without [DONE] the client's read fails and the log says so", async () => {
      events = [chunk];
      const res = await ask("/openai/v1/chat/completions", chat);
      assert.equal(res.status, 200);
      await assert.rejects(res.text());
      assert.equal(await outcome(res), "upstream_cut");
      // The OpenAI SDK sees the break too, instead of a partial answer passed off as whole.
      const client = new OpenAI({ baseURL: gw.url("/openai/v1"), apiKey: "sk-x", maxRetries: 0 });
      await assert.rejects(async () => {
        for await (const _ of await client.chat.completions.create({ ...chat, stream: true })) {
          // read to the end
        }
      });
    });
    await t.step("OpenAI: with [DONE] it is whole", async () => {
      events = [chunk, "data: [DONE]\n\n"];
      const res = await ask("/openai/v1/chat/completions", chat);
      assert.match(await res.text(), /\[DONE\]/);
      assert.equal(await outcome(res), "complete");
    });
    await t.step("Anthropic: without message_stop it fails; an error event is an end", async () => {
      const start =
        'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":3}}}\n\n';
      events = [start];
      const cut = await ask("/anthropic/v1/messages", { ...chat, max_tokens: 5 });
      await assert.rejects(cut.text());
      events = [
        start,
        'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
      ];
      const told = await ask("/anthropic/v1/messages", { ...chat, max_tokens: 5 });
      assert.match(await told.text(), /overloaded_error/);
      assert.equal(await outcome(told), "error", "the upstream's own error event is logged as one");
    });
    await t.step(
      "OpenAI: an error event after content is relayed, and logged as an error",
      async () => {
        events = [chunk, 'data: {"error":{"message":"boom","type":"server_error"}}\n\n'];
        const res = await ask("/openai/v1/chat/completions", chat);
        assert.match(await res.text(), /boom/);
        assert.equal(await outcome(res), "error");
      },
    );
  } finally {
    await gw.close();
    await up.shutdown();
  }
});

Deno.test("a method fetch cannot send (TRACE) is the client's 405 on passthrough, never a breaker failure", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  openai: { base_url: "${up.url}/v1", keys: [{ key: sk-openai-0001 }] }
features:
  circuit_breaker: { enabled: true, failure_threshold: 2, max_transient_retries: 0 }
`);
  try {
    // fetch will not send TRACE either: a raw request, as any other client may send it.
    const { hostname, port } = new URL(gw.url("/"));
    for (let i = 0; i < 3; i++) {
      const conn = await Deno.connect({ hostname, port: Number(port) });
      await conn.write(
        new TextEncoder().encode(
          `TRACE /openai/v1/models HTTP/1.1\r\nhost: ${hostname}\r\nconnection: close\r\n\r\n`,
        ),
      );
      const text = await new Response(conn.readable).text();
      assert.match(text, /^HTTP\/1\.1 405 /);
      assert.match(text, /\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n/i);
      assert.match(text, /"code":"method_not_allowed"/);
      assert.doesNotMatch(text, /x-llm-proxy-error-class/i);
    }
    assert.equal(up.requests.length, 0);
    // The provider's breaker saw nothing: the next request goes through.
    up.script({ kind: "json", body: { object: "list", data: [] } });
    const ok = await gw.request("/openai/v1/models");
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("passthrough: a request with no body goes upstream with none (not an empty chunked one)", async (t) => {
  for (const breaker of [false, true]) {
    await t.step(`breaker ${breaker ? "on" : "off"}`, async () => {
      const up = startFakeUpstream();
      const gw = startGateway(`
providers:
  openai: { base_url: "${up.url}/v1", keys: [{ key: sk-openai-0001 }] }
features:
  circuit_breaker: { enabled: ${breaker} }
`);
      try {
        // The OpenAI SDK's files.del(): DELETE with neither Content-Length nor Transfer-Encoding.
        up.script({ kind: "json", body: { id: "file-1", object: "file", deleted: true } });
        const del = await fetch(gw.url("/openai/v1/files/file-1"), { method: "DELETE" });
        assert.equal(del.status, 200);
        await del.body?.cancel();
        const sent = up.requests.at(-1)!;
        assert.equal(sent.method, "DELETE");
        assert.equal(sent.headers.get("transfer-encoding"), null);
        assert.equal(sent.headers.get("content-length"), null);
        assert.equal(sent.body, "");
        // A chunked upload still goes up with its bytes.
        up.script({ kind: "json", body: { id: "batch-1", object: "batch" } });
        const chunked = await fetch(gw.url("/openai/v1/batches"), {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: ReadableStream.from([new TextEncoder().encode('{"input_file_id":"file-1"}')]),
        });
        assert.equal(chunked.status, 200);
        await chunked.body?.cancel();
        assert.equal(up.requests.at(-1)!.body, '{"input_file_id":"file-1"}');
      } finally {
        await gw.close();
        await up.close();
      }
    });
  }
});
