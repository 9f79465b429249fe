import assert from "node:assert/strict";
import OpenAI from "openai";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { closedPort, startGateway } from "../helpers/in_process.ts";
import { chatBody } from "./daemon.ts";

interface OpenAIError {
  error: { message: string; type: string; param: string | null; code: string | null };
}

async function post(url: string, body: BodyInit, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  const json = await res.json() as OpenAIError;
  return { status: res.status, json, headers: res.headers };
}

Deno.test("every bad request gets a clear OpenAI error, never a 500 or a hang", async (t) => {
  const upstream = startFakeUpstream();
  const down = closedPort();
  const gw = startGateway(`
server:
  max_body_bytes: 2048
routing:
  failover: { enabled: false }
providers:
  mock: {}
  up:
    base_url: ${upstream.url}/v1
    timeout: 300ms
    keys: [{ key: sk-test-0001 }]
  down:
    base_url: http://127.0.0.1:${down}/v1
`);
  const url = gw.url("/v1/chat/completions");
  try {
    await t.step("malformed JSON → 400", async () => {
      const r = await post(url, "{not json");
      assert.equal(r.status, 400);
      assert.equal(r.json.error.type, "invalid_request_error");
      assert.match(r.json.error.message, /not valid JSON/);
    });

    await t.step("missing and invalid fields → 400 naming the field", async () => {
      const cases: [unknown, string][] = [
        [{ messages: [{ role: "user", content: "x" }] }, "model"],
        [{ model: "mock/echo" }, "messages"],
        [{ model: "mock/echo", messages: [] }, "messages"],
        [{ model: "mock/echo", messages: [{ content: "x" }] }, "messages[0].role"],
        [{ model: "mock/echo", messages: [{ role: "wizard", content: "x" }] }, "messages[0].role"],
        [{ model: "mock/echo", messages: [{ role: "user", content: 5 }] }, "messages[0].content"],
        [
          { model: "mock/echo", messages: [{ role: "user", content: "x" }], stream: "yes" },
          "stream",
        ],
        [
          { model: "mock/echo", messages: [{ role: "user", content: "x" }], temperature: 9 },
          "temperature",
        ],
        [[1, 2], "body"],
      ];
      for (const [body, param] of cases) {
        const r = await post(url, JSON.stringify(body));
        assert.equal(r.status, 400, JSON.stringify(body));
        assert.equal(r.json.error.param, param);
        assert.ok(
          r.json.error.message.includes(param === "body" ? "JSON object" : param),
          r.json.error.message,
        );
      }
    });

    await t.step("empty body → 400", async () => {
      const r = await post(url, "");
      assert.equal(r.status, 400);
    });

    await t.step("body over max_body_bytes → 413 (declared length)", async () => {
      const big = chatBody("mock/echo").replace('"hi"', `"${"x".repeat(5000)}"`);
      const r = await post(url, big);
      assert.equal(r.status, 413);
      assert.match(r.json.error.message, /2048 bytes/);
    });

    await t.step(
      "body over max_body_bytes → 413 (chunked, no length: counted while reading)",
      async () => {
        const enc = new TextEncoder();
        let sent = 0;
        const stream = new ReadableStream<Uint8Array>({
          pull(c) {
            if (sent > 100_000) return c.close();
            sent += 1000;
            c.enqueue(enc.encode(sent === 1000 ? `{"model":"mock/echo","x":"` : "y".repeat(1000)));
          },
        });
        const r = await post(url, stream);
        assert.equal(r.status, 413);
      },
    );

    await t.step("unknown provider → 404 listing what is configured", async () => {
      const r = await post(url, chatBody("nosuch/model"));
      assert.equal(r.status, 404);
      assert.match(r.json.error.message, /Unknown model "nosuch\/model"/);
      assert.match(r.json.error.message, /mock, up, down/);
      assert.equal(r.headers.get("x-pilotfish-provider"), null, "no provider was chosen");
      assert.equal(r.headers.get("x-pilotfish-attempts"), null);
    });

    await t.step("x-gateway.provider naming an unknown provider → 404", async () => {
      const r = await post(url, chatBody("gpt-4o", { "x-gateway": { provider: "zzz" } }));
      assert.equal(r.status, 404);
      assert.match(r.json.error.message, /Unknown provider "zzz"/);
    });

    await t.step("upstream unreachable → 502", async () => {
      const r = await post(url, chatBody("down/gpt-4o"));
      assert.equal(r.status, 502);
      assert.equal(r.json.error.code, "upstream_unreachable");
      assert.match(r.json.error.message, /Provider "down" is unreachable/);
      assert.equal(r.headers.get("x-pilotfish-provider"), "down");
      assert.equal(r.headers.get("x-pilotfish-model"), "gpt-4o");
      assert.equal(r.headers.get("x-pilotfish-attempts"), "1");
    });

    await t.step("upstream timeout → 504", async () => {
      upstream.script({ kind: "hang" });
      const started = performance.now();
      const r = await post(url, chatBody("up/gpt-4o"));
      assert.equal(r.status, 504);
      assert.equal(r.json.error.code, "upstream_timeout");
      // It names the limit that ran out.
      assert.match(
        r.json.error.message,
        /did not answer within 300 ms \(providers\.up\.timeout ran out\)$/,
      );
      assert.ok(performance.now() - started < 5_000);
      assert.equal(r.headers.get("x-pilotfish-provider"), "up");
      assert.equal(r.headers.get("x-pilotfish-model"), "gpt-4o");
      assert.equal(r.headers.get("x-pilotfish-attempts"), "1");
    });

    await t.step("x-gateway.timeout overrides the provider timeout", async () => {
      // Slower than the provider's 300ms timeout on purpose, within the request's 2s.
      upstream.script({ kind: "json", delayMs: 600 });
      const r = await post(url, chatBody("up/gpt-4o", { "x-gateway": { timeout: 2 } }));
      assert.equal(r.status, 200);
      // A shorter one cuts the call, and says so.
      upstream.script({ kind: "hang" });
      const cut = await post(url, chatBody("up/gpt-4o", { "x-gateway": { timeout: 0.1 } }));
      assert.equal(cut.status, 504);
      assert.match(cut.json.error.message, /\(x-gateway\.timeout ran out\)$/);
    });

    await t.step("upstream 4xx keeps its status and message; 429 keeps Retry-After", async () => {
      upstream.script({
        kind: "json",
        status: 400,
        body: {
          error: {
            message: "Invalid 'messages': too short",
            type: "invalid_request_error",
            code: null,
          },
        },
      });
      let r = await post(url, chatBody("up/gpt-4o"));
      assert.equal(r.status, 400);
      assert.equal(r.json.error.message, "Invalid 'messages': too short");
      assert.equal(r.json.error.type, "invalid_request_error");
      upstream.script({
        kind: "json",
        status: 429,
        headers: { "retry-after": "7" },
        body: {
          error: { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" },
        },
      });
      r = await post(url, chatBody("up/gpt-4o"));
      assert.equal(r.status, 429);
      assert.equal(r.headers.get("retry-after"), "7");
      assert.equal(r.json.error.code, "rate_limit_exceeded");
      assert.equal(r.headers.get("x-pilotfish-provider"), "up");
      assert.equal(r.headers.get("x-pilotfish-model"), "gpt-4o");
      assert.equal(r.headers.get("x-pilotfish-attempts"), "1", "failover disabled: one call");
    });

    await t.step("mock error models answer with their status", async () => {
      assert.equal((await post(url, chatBody("mock/error-500"))).status, 500);
      assert.equal((await post(url, chatBody("mock/error-429"))).status, 429);
    });

    await t.step("wrong method → 405 with Allow; unknown route → 404", async () => {
      const res = await fetch(url);
      assert.equal(res.status, 405);
      assert.equal(res.headers.get("allow"), "POST");
      assert.equal(((await res.json()) as OpenAIError).error.code, "method_not_allowed");
      const nf = await gw.request("/v1/nothing");
      assert.equal(nf.status, 404);
      await nf.body?.cancel();
    });

    await t.step(
      "a stream that breaks after its first chunk ends with an in-stream error event",
      async () => {
        const res = await fetch(url, {
          method: "POST",
          body: chatBody("mock/stream-error-after-3", { stream: true }),
        });
        assert.equal(res.status, 200);
        const text = await res.text();
        const events = text.split("\n\n").filter(Boolean);
        const last = JSON.parse(events.at(-1)!.replace(/^data: /, ""));
        assert.equal(last.error.code, "upstream_error");
        assert.equal(events.filter((e) => e.includes('"content"')).length >= 3, true);
      },
    );
    assert.doesNotMatch(gw.logText(), /"status":500.*unhandled/);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("wrong method on every known route outside /v1 → 405 with Allow (the admin routes after their token)", async () => {
  const gw = startGateway(`
server: { admin_token: adm-405 }
providers: { mock: {} }
app_keys: { enabled: true, persistence: { enabled: false } }
`);
  const admin = { authorization: "Bearer adm-405" };
  try {
    const table: [string, string, string, Record<string, string>?][] = [
      ["PUT", "/healthz", "GET"],
      ["POST", "/ready", "GET"],
      ["POST", "/health", "GET"],
      ["POST", "/status", "GET"],
      ["POST", "/api/v1/status", "GET"],
      ["DELETE", "/metrics", "GET"],
      ["PUT", "/api/v1/usage", "GET", admin],
      ["GET", "/api/v1/cache/clear", "POST", admin],
      ["GET", "/api/v1/reload", "POST", admin],
      ["DELETE", "/api/v1/breaker/reset", "POST", admin],
      ["POST", "/api/v1/providers/status", "GET", admin],
      ["PUT", "/api/v1/keys", "GET, POST", admin],
      ["PUT", "/api/v1/keys/key_x", "GET, PATCH, DELETE", admin],
      ["GET", "/api/v1/keys/key_x/rotate", "POST", admin],
      ["POST", "/api/v1/keys/key_x/usage", "GET", admin],
      ["PUT", "/v1/app-keys", "GET, POST", admin],
    ];
    for (const [method, path, methods, headers] of table) {
      const res = await gw.request(path, { method, ...(headers ? { headers } : {}) });
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get("allow"), methods, `${method} ${path}`);
      assert.equal((await res.json()).error.code, "method_not_allowed");
    }
    // The admin token still comes first: without it, a wrong method is a 401.
    const res = await gw.request("/api/v1/usage", { method: "PUT" });
    assert.equal(res.status, 401);
    await res.body?.cancel();
  } finally {
    await gw.close();
  }
});

Deno.test("a request refused before any call still names the provider routing chose, with 0 attempts", async () => {
  const gw = startGateway(`
providers:
  mock: {}
  claude: { type: anthropic, base_url: "http://127.0.0.1:${closedPort()}/v1", keys: [{ key: sk-ant-0001 }] }
`);
  try {
    const cases: [string, unknown, string][] = [
      ["/v1/embeddings", { model: "claude/claude-x", input: "hi" }, "claude"],
      ["/v1/messages/count_tokens", {
        model: "mock/echo",
        messages: [{ role: "user", content: "hi" }],
      }, "mock"],
    ];
    for (const [path, body, provider] of cases) {
      const res = await gw.request(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 400, path);
      assert.equal(res.headers.get("x-pilotfish-provider"), provider, path);
      assert.equal(res.headers.get("x-pilotfish-attempts"), "0", path);
      await res.body?.cancel();
    }
  } finally {
    await gw.close();
  }
});

Deno.test("an OpenAI upstream's error reaches the SDK with its param and code as sent", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-up-0001 }] }
routing:
  failover: { enabled: false }
`);
  const client = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "x", maxRetries: 0 });
  const ask = () =>
    client.chat.completions.create({
      model: "up/gpt-4o",
      messages: [{ role: "user", content: "hi" }],
    });
  try {
    up.script({
      kind: "json",
      status: 400,
      body: {
        error: {
          message: "Invalid value for messages",
          type: "invalid_request_error",
          param: "messages",
          code: "invalid_value",
        },
      },
    });
    await assert.rejects(ask, (e: unknown) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.equal(e.param, "messages");
      assert.equal(e.code, "invalid_value");
      assert.equal(e.type, "invalid_request_error");
      return true;
    });
    up.script({
      kind: "json",
      status: 500,
      body: {
        error: {
          message: "The server had an error",
          type: "server_error",
          param: null,
          code: null,
        },
      },
    });
    await assert.rejects(ask, (e: unknown) => {
      assert.ok(e instanceof OpenAI.InternalServerError);
      assert.equal(e.code, null);
      assert.equal(e.param, null);
      return true;
    });
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("a model name too long to echo in a header: 400 naming it on unified routes, no header on passthrough", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  openai: { base_url: "${up.url}/v1", keys: [{ key: sk-configured }] }
`);
  try {
    const long = "openai/" + "m".repeat(17_000);
    const client = new OpenAI({ apiKey: "unused", baseURL: gw.url("/v1"), maxRetries: 0 });
    await assert.rejects(
      () =>
        client.chat.completions.create({
          model: long,
          messages: [{ role: "user", content: "hi" }],
        }),
      (err: unknown) =>
        err instanceof OpenAI.BadRequestError && err.param === "model" &&
        /at most 512/.test(err.message),
    );
    const messages = await fetch(gw.url("/v1/messages"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: long,
        max_tokens: 5,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    assert.equal(messages.status, 400);
    assert.equal((await messages.json()).error.type, "invalid_request_error");
    assert.equal(up.requests.length, 0);
    // Native passthrough relays it (the provider judges it); the header is left out.
    up.script({ kind: "json", status: 404, body: { error: { message: "no such model" } } });
    const native = await fetch(gw.url("/openai/v1/chat/completions"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m".repeat(17_000), messages: [] }),
    });
    assert.equal(native.status, 404);
    assert.equal(native.headers.get("x-pilotfish-model"), null);
    assert.equal(native.headers.get("x-pilotfish-provider"), "openai");
    await native.body?.cancel();
    assert.ok(gw.logs.every((l) => l.length < 4_000), "the log line stays short");
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("an OpenAI API the unified routes do not serve: a 404 that names the passthrough", async () => {
  const gw = startGateway("providers:\n  mock: {}\n");
  try {
    for (const path of ["/v1/completions", "/v1/audio/speech", "/v1/images/generations"]) {
      const res = await gw.request(path, { method: "POST", body: "{}" });
      assert.equal(res.status, 404, path);
      const { error } = await res.json();
      assert.equal(error.code, "not_found");
      assert.ok(error.message.includes(`/openai${path}`), error.message);
      assert.ok(error.message.includes(`/native/{provider}${path.slice(3)}`), error.message);
    }
  } finally {
    await gw.close();
  }
});

Deno.test("an Anthropic API the unified routes do not serve: its 404 names the Anthropic passthrough", async () => {
  const gw = startGateway("providers:\n  mock: {}\n");
  try {
    const res = await gw.request("/v1/messages/batches", { method: "GET" });
    assert.equal(res.status, 404);
    const body = await res.json();
    assert.equal(body.type, "error");
    assert.ok(body.error.message.includes("/anthropic/v1/messages/batches"), body.error.message);
    assert.ok(!body.error.message.includes("/openai/"), body.error.message);
  } finally {
    await gw.close();
  }
});

Deno.test("the Anthropic passthrough's own errors carry request-id, which Anthropic's SDKs read", async () => {
  const gw = startGateway(`
providers:
  anthropic: { type: anthropic, base_url: "http://127.0.0.1:9", keys: [{ key: sk-ant-test-0001 }] }
`);
  try {
    for (const path of ["/anthropic/v2/foo", "/anthropic/"]) {
      const res = await gw.request(path, { method: "POST", body: "{}" });
      assert.equal(res.status, 404, path);
      assert.equal((await res.json()).type, "error", path);
      assert.match(res.headers.get("request-id") ?? "", /^[0-9a-f-]{36}$/, path);
      assert.equal(res.headers.get("request-id"), res.headers.get("x-request-id"), path);
    }
    // Not on other families: OpenAI's SDKs read x-request-id.
    const openai = await gw.request("/openai/v2/foo", { method: "POST", body: "{}" });
    await openai.body?.cancel();
    assert.equal(openai.headers.get("request-id"), null);
  } finally {
    await gw.close();
  }
});

Deno.test("an error body that quotes the request redacts a configured key or an app key a client put there", async () => {
  const secret = "sk-gatewaysecretOPENAI1234567890";
  const appKey = "pf_HV7Xq1w2e3r4t5y6u7i8o9p0";
  const gw = startGateway(`
providers:
  openai: { base_url: "http://127.0.0.1:${closedPort()}/v1", keys: [{ key: ${secret} }] }
`);
  try {
    const asked: [string, RequestInit][] = [
      ["/v1/chat/completions", {
        method: "POST",
        body: JSON.stringify({ model: secret, messages: [{ role: "user", content: "hi" }] }),
      }],
      ["/v1/chat/completions", {
        method: "POST",
        body: JSON.stringify({
          model: "openai/gpt-4o",
          "x-gateway": { provider: appKey },
          messages: [{ role: "user", content: "hi" }],
        }),
      }],
      [`/v1/foo/${appKey}`, { method: "GET" }],
      [`/v1/messages/${appKey}`, { method: "GET" }],
      [`/openai/v1/${secret}//x`, { method: "GET" }],
    ];
    for (const [path, init] of asked) {
      const res = await gw.request(path, {
        ...init,
        headers: { "content-type": "application/json" },
      });
      const text = await res.text();
      assert.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status}`);
      assert.ok(!text.includes(secret) && !text.includes(appKey), `${path}: ${text}`);
      // Each quotes what it was asked, but the secret.
      if (!path.startsWith("/openai/")) assert.ok(text.includes("[REDACTED]"), `${path}: ${text}`);
      JSON.parse(text);
    }
    // The help text of an app-key refusal names the header and keeps its example.
    const gw2 = startGateway("providers:\n  mock: {}\napp_keys: { require_key: true }\n");
    try {
      const res = await gw2.request("/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "mock/echo", messages: [{ role: "user", content: "hi" }] }),
      });
      assert.equal(res.status, 401);
      const { error } = await res.json();
      assert.ok(error.message.includes("Authorization: Bearer pf_\u2026"), error.message);
    } finally {
      await gw2.close();
    }
  } finally {
    await gw.close();
  }
});
