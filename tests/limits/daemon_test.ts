/**
 * Through the real daemon (its permissions derived from the config), each dialect's config:
 * request N+1 is a 429 with every header, admitted answers' Remaining decreases, and the
 * limited request makes no upstream call. The llm-proxy one counts in Redis.
 */
import assert from "node:assert/strict";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startRedisServer } from "../helpers/redis_server.ts";
import { chatBody, startDaemon } from "../integration/daemon.ts";

const HEADERS = [
  "retry-after",
  "x-ratelimit-limit",
  "x-ratelimit-remaining",
  "x-ratelimit-reset",
  "x-ratelimit-reason",
  "x-ratelimit-metric",
  "x-ratelimit-window",
  "x-ratelimit-scope",
];

async function limitedAfter(url: string, n: number, model: string): Promise<Response> {
  const remaining: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await fetch(url, { method: "POST", body: chatBody(model) });
    await res.body?.cancel();
    assert.equal(res.status, 200);
    remaining.push(res.headers.get("x-ratelimit-remaining") ?? "");
  }
  assert.deepEqual(remaining, Array.from({ length: n }, (_, i) => String(n - 1 - i)));
  const res = await fetch(url, { method: "POST", body: chatBody(model) });
  assert.equal(res.status, 429);
  for (const h of HEADERS) assert.ok(res.headers.get(h), `missing ${h}`);
  await res.body?.cancel();
  return res;
}

Deno.test("daemon: llm-proxy rate_limiting on Redis, llm-gateway rateLimit, Butter ratelimit", async (t) => {
  const up = startFakeUpstream();
  const redis = await startRedisServer();
  try {
    await t.step("llm-proxy dialect, Redis backend", async () => {
      const d = await startDaemon(`
server: { port: {{PORT}}, socket: "{{SOCKET}}" }
providers:
  up: { base_url: "${up.url}/v1" }
features:
  rate_limiting:
    enabled: true
    backend: redis
    redis: { address: "127.0.0.1:${redis.port}" }
    limits: { requests_per_minute: 2 }
`);
      try {
        // Shared once the link is up (until then each sidecar is on its share: 2 of 2 here).
        for (let i = 0; i < 200; i++) {
          const h = await (await fetch(d.url("/health"))).json();
          if (h.rate_limiting.mode === "shared") break;
          await new Promise((r) => setTimeout(r, 25));
        }
        const h = await (await fetch(d.url("/health"))).json();
        assert.equal(h.rate_limiting.mode, "shared", JSON.stringify(h.rate_limiting));
        const before = up.requests.length;
        const res = await limitedAfter(d.url("/v1/chat/completions"), 2, "up/gpt-4o");
        assert.equal(res.headers.get("x-ratelimit-scope"), "global");
        assert.equal(up.requests.length - before, 2);
      } finally {
        assert.equal(await d.stop(), 0);
      }
    });
    await t.step("llm-gateway dialect", async () => {
      const d = await startDaemon(`
server: { port: {{PORT}} }
providers:
  - name: up
    baseUrl: "${up.url}/v1"
    models: [gpt-4o]
rateLimit:
  enabled: true
  perModel:
    gpt-4o: { requests: 2, window: 1m }
`);
      try {
        const before = up.requests.length;
        const res = await limitedAfter(d.url("/v1/chat/completions"), 2, "gpt-4o");
        assert.equal(res.headers.get("x-ratelimit-scope"), "model:gpt-4o");
        assert.equal(up.requests.length - before, 2);
      } finally {
        assert.equal(await d.stop(), 0);
      }
    });
    await t.step("Butter dialect", async () => {
      const d = await startDaemon(`
server: { port: {{PORT}}, socket: "{{SOCKET}}" }
providers:
  up: { base_url: "${up.url}/v1" }
plugins:
  ratelimit:
    requests_per_minute: 2
    per_ip: true
`);
      try {
        const before = up.requests.length;
        const res = await limitedAfter(d.url("/v1/chat/completions"), 2, "up/gpt-4o");
        assert.equal(res.headers.get("x-ratelimit-scope"), "ip:127.0.0.1");
        assert.equal(up.requests.length - before, 2);
      } finally {
        assert.equal(await d.stop(), 0);
      }
    });
  } finally {
    await redis.stop();
    await up.close();
  }
});
