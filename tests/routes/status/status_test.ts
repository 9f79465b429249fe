import assert from "node:assert/strict";
import { startGateway } from "../../helpers/in_process.ts";
import { startFakeUpstream } from "../../fakes/fake_upstream.ts";

const config = (url: string, extra = "") => `
providers:
  up:
    base_url: "${url}/v1"
    keys: [{ key: sk-status-secret-0001, id: main }]
    models: [gpt-4o-mini]
features:
  circuit_breaker:
    enabled: true
    failure_threshold: 1
    window_seconds: 60
    cooldown_seconds: 30
${extra}`;

const chat = (model: string) =>
  JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] });

Deno.test("GET /status: one self-contained page (inline CSS and script, nothing fetched elsewhere)", async () => {
  const gw = startGateway("metrics: { enabled: false }\n");
  try {
    const res = await gw.request("/status");
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(res.headers.get("content-security-policy") ?? "", /default-src 'none'/);
    const html = await res.text();
    assert.match(html, /<meta name="viewport"/);
    assert.doesNotMatch(html, /(src|href)=["']?(https?:)?\/\//, "no external resource");
    assert.doesNotMatch(html, /innerHTML/, "data is rendered as text only");
    assert.match(html, /fetch\("\/api\/v1\/status"/);
  } finally {
    await gw.close();
  }
});

Deno.test("GET /api/v1/status: providers, key ids (never values), breaker, today's numbers", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(config(up.url, "metrics: { enabled: false }\n"));
  try {
    up.script({ kind: "json" });
    const ok = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: chat("up/gpt-4o-mini"),
    });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    up.script({ kind: "json", status: 500, body: { error: { message: "boom" } } });
    const failed = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: chat("up/gpt-4o-mini"),
    });
    assert.equal(failed.status, 503);
    await failed.body?.cancel();

    const res = await gw.request("/api/v1/status");
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.doesNotMatch(text, /sk-status-secret/);
    const s = JSON.parse(text);
    assert.equal(s.generation, 1);
    assert.match(s.config_hash, /^[0-9a-f]{12}$/);
    assert.equal(s.fleet, null, "no Redis: no fleet");
    const p = s.providers[0];
    assert.equal(p.name, "up");
    assert.deepEqual(p.keys, [{ id: "main", status: "ok" }]);
    assert.equal(p.breaker.state, "open", "every key of the provider folded (llm-proxy's /health)");
    assert.equal(p.breaker.keys["up:gpt-4o-mini"].state, "open");
    assert.equal(typeof p.breaker.keys["up:gpt-4o-mini"].cooldown_until, "number");
    assert.equal(s.stats.requests, 2);
    assert.deepEqual(s.stats.errors, { "5xx": 1 });
    assert.deepEqual(s.stats.tokens, { input: 7, output: 3 });
    assert.deepEqual(s.stats.by_provider.up, { requests: 2, errors: 1 });
    assert.equal(typeof s.stats.latency_ms.p50, "number");
    assert.equal(typeof s.stats.overhead_ms.p99, "number");
    assert.equal(s.stats.cache.hit_rate, null);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("GET /api/v1/status: behind server.admin_token when one is set (the page shell is not)", async () => {
  const gw = startGateway(
    "server: { admin_token: adm-status-token }\nmetrics: { enabled: false }\n",
  );
  try {
    const none = await gw.request("/api/v1/status");
    assert.equal(none.status, 401);
    const body = await none.json();
    assert.equal(body.error.code, "unauthenticated");
    const wrong = await gw.request("/api/v1/status", {
      headers: { authorization: "Bearer nope" },
    });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    const right = await gw.request("/api/v1/status", {
      headers: { authorization: "Bearer adm-status-token" },
    });
    assert.equal(right.status, 200);
    assert.doesNotMatch(await right.text(), /adm-status-token/);
    const page = await gw.request("/status");
    assert.equal(page.status, 200, "the page holds no data; it asks for the token");
    await page.body?.cancel();
  } finally {
    await gw.close();
  }
});
