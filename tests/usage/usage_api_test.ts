import assert from "node:assert/strict";
import { join } from "node:path";
import { completionBody, startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway, testClock } from "../helpers/in_process.ts";
import { startRedisServer } from "../helpers/redis_server.ts";
import { assertUsd, json } from "./support.ts";

const ADMIN = "admin-secret-0002";
const AUTH = { authorization: `Bearer ${ADMIN}` };

function yaml(upstream: string, extra = ""): string {
  return `
server: { admin_token: ${ADMIN} }
providers:
  up: { type: openai, base_url: ${upstream}, keys: [{ key: sk-up }] }
pricing:
  models:
    "up/m1": { input: 1, output: 2 }
    "up/m2": { input: 10, output: 20 }
${extra}`;
}

// The fake answers 7 prompt + 3 completion tokens: m1 costs 7 + 6 = 13 per 1M, m2 130.
const M1 = 0.000013;
const M2 = 0.00013;

Deno.test("GET /api/v1/usage: llm-gateway's fields, breakdowns, since/until, bad input", async (t) => {
  const up = startFakeUpstream();
  const clock = testClock();
  const gw = startGateway(yaml(up.url), {}, { now: clock.now });
  const chat = async (model: string, gateway: Record<string, unknown> = {}) => {
    up.script({ kind: "json", body: completionBody("ok", model) });
    const res = await gw.request(
      "/v1/chat/completions",
      json({ model: `up/${model}`, messages: [{ role: "user", content: "hi" }], ...gateway }),
    );
    assert.equal(res.status, 200);
    await res.body?.cancel();
  };
  const usage = async (query = "") => {
    const res = await gw.request(`/api/v1/usage${query}`, { headers: AUTH });
    return { status: res.status, body: await res.json() };
  };
  try {
    const start = clock.now();
    await chat("m1", { "x-gateway": { metadata: { feature: "search", user_id: "u1" } } });
    await chat("m1", { "x-gateway": { metadata: { feature: "chat" } }, user: "u2" });
    clock.advance(2 * 3_600_000);
    await chat("m2", { "x-gateway": { metadata: { feature: "search", user_id: "u1" } } });

    await t.step("totals with llm-gateway's exact field names", async () => {
      const { status, body } = await usage();
      assert.equal(status, 200);
      assert.equal(body.total_requests, 3);
      assert.equal(body.total_tokens, 30);
      assertUsd(body.total_cost, 2 * M1 + M2);
      // No cache here: every request is a miss, so the two add up to the requests as in
      // llm-gateway's README (423 + 1,100 = 1,523).
      assert.equal(body.cache_hits, 0);
      assert.equal(body.cache_misses, 3);
    });

    await t.step("breakdowns by provider, model, feature and user", async () => {
      const { body } = await usage();
      assert.equal(body.by_provider.up.requests, 3);
      assertUsd(body.by_model.m1.cost, 2 * M1);
      assertUsd(body.by_model.m2.cost, M2);
      assert.equal(body.by_feature.search.requests, 2);
      assertUsd(body.by_feature.search.cost, M1 + M2);
      assert.equal(body.by_feature.chat.requests, 1);
      assert.deepEqual(Object.keys(body.by_user), ["u1", "u2"]);
      assert.equal(body.by_user.u1.requests, 2);
      assert.equal(body.buckets.length, 2, "two hours with traffic");
    });

    await t.step("since / until select hours; period=day sums the day", async () => {
      const later = new Date(start + 3_600_000).toISOString();
      const { body } = await usage(`?since=${encodeURIComponent(later)}`);
      assert.equal(body.total_requests, 1);
      assertUsd(body.total_cost, M2);
      const early = await usage(`?until=${Math.floor((start + 3_600_000) / 1000)}`);
      assert.equal(early.body.total_requests, 2);
      // `until` inside an hour counts that hour whole, and says where it ends.
      const hour = 3_600_000;
      const mid = Math.floor(start / hour) * hour + hour / 2;
      const half = await usage(`?until=${encodeURIComponent(new Date(mid).toISOString())}`);
      assert.equal(half.body.until, new Date(mid + hour / 2).toISOString());
      assert.equal(half.body.total_requests, 2);
      // A window that has not started yet, without `until`: empty, not a 400.
      const next = new Date(Math.floor(clock.now() / 3_600_000) * 3_600_000 + 3_600_000);
      const ahead = await usage(`?since=${encodeURIComponent(next.toISOString())}`);
      assert.equal(ahead.status, 200);
      assert.equal(ahead.body.total_requests, 0);
      assert.deepEqual(ahead.body.buckets, []);
      const day = await usage("?period=day");
      assert.equal(day.body.period, "day");
      assert.equal(day.body.total_requests, 3);
    });

    await t.step("bad filters are a 400 in OpenAI's error format", async () => {
      for (
        const q of [
          "?since=yesterday",
          "?period=week",
          "?since=2026-01-02&until=2026-01-01",
          "?since=2026-02-30", // V8 would read March 2nd
        ]
      ) {
        const { status, body } = await usage(q);
        assert.equal(status, 400, q);
        assert.equal(body.error.type, "invalid_request_error", q);
      }
    });

    await t.step(
      "a call that names no model (a passthrough GET) has no by_model entry",
      async () => {
        up.script({ kind: "json", body: { object: "list", data: [] } });
        const res = await gw.request("/native/up/models");
        assert.equal(res.status, 200);
        await res.body?.cancel();
        const { body } = await usage();
        assert.deepEqual(Object.keys(body.by_model).sort(), ["m1", "m2"]);
      },
    );

    await t.step("the admin token guards it", async () => {
      const res = await gw.request("/api/v1/usage");
      assert.equal(res.status, 401);
      await res.body?.cancel();
    });
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("by_user: the user a request names in any route's own terms", async () => {
  const up = startFakeUpstream();
  // The breaker on: a native route's body is read before it goes upstream.
  const gw = startGateway(yaml(up.url, "features: { circuit_breaker: { enabled: true } }"));
  try {
    const send = async (path: string, body: Record<string, unknown>) => {
      up.script({ kind: "json", body: completionBody("ok", "m1") });
      const res = await gw.request(path, json(body));
      assert.equal(res.status, 200, path);
      await res.body?.cancel();
    };
    const messages = [{ role: "user", content: "hi" }];
    await send("/v1/chat/completions", { model: "up/m1", messages, user: "chat-user" });
    await send("/v1/messages", {
      model: "up/m1",
      max_tokens: 10,
      messages,
      metadata: { user_id: "messages-user" },
    });
    // A native route's body, when Pilotfish read it (it streams upstream unread otherwise).
    await send("/native/up/chat/completions", { model: "m1", messages, user: "native-user" });
    const res = await gw.request("/api/v1/usage", { headers: AUTH });
    const body = await res.json();
    assert.deepEqual(Object.keys(body.by_user).sort(), [
      "chat-user",
      "messages-user",
      "native-user",
    ]);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("usage in the embedded SQLite file (state.path) survives a restart", async () => {
  const dir = await Deno.makeTempDir();
  const up = startFakeUpstream();
  const config = yaml(up.url, `state: { path: "${join(dir, "pilotfish.db")}" }`);
  const send = async (gw: ReturnType<typeof startGateway>) => {
    up.script({ kind: "json", body: completionBody("ok", "m2") });
    const res = await gw.request(
      "/v1/chat/completions",
      json({ model: "up/m2", messages: [{ role: "user", content: "hi" }] }),
    );
    await res.body?.cancel();
  };
  try {
    const first = startGateway(config);
    await send(first);
    await send(first);
    await first.close(); // flushes what is pending
    const second = startGateway(config);
    try {
      await send(second);
      const res = await second.request("/api/v1/usage", { headers: AUTH });
      const body = await res.json();
      assert.equal(body.total_requests, 3);
      assertUsd(body.total_cost, 3 * M2);
    } finally {
      await second.close();
    }
  } finally {
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fleet: three gateways on one redis-server; rollups sum exactly", async () => {
  const redis = await startRedisServer();
  const up = startFakeUpstream();
  const config = yaml(up.url, `state: { backend: redis, redis: { url: "${redis.url}" } }`);
  const fleet = [startGateway(config), startGateway(config), startGateway(config)];
  try {
    for (const gw of fleet) await gw.runtime.usage.ready();
    let n = 0;
    for (const [i, gw] of fleet.entries()) {
      for (let k = 0; k <= i; k++) {
        up.script({ kind: "json", body: completionBody("ok", k % 2 ? "m2" : "m1") });
        const res = await gw.request(
          "/v1/chat/completions",
          json({ model: k % 2 ? "up/m2" : "up/m1", messages: [{ role: "user", content: "hi" }] }),
        );
        await res.body?.cancel();
        n++;
      }
    }
    for (const gw of fleet) await gw.runtime.usage.flush();
    // 1 + 2 + 3 requests: m1 on k = 0, 2 (four of them), m2 on k = 1 (two).
    for (const gw of fleet) {
      const res = await gw.request("/api/v1/usage", { headers: AUTH });
      const body = await res.json();
      assert.equal(body.total_requests, n);
      assert.equal(body.total_tokens, n * 10);
      assertUsd(body.total_cost, 4 * M1 + 2 * M2);
      assert.equal(body.by_model.m1.requests, 4);
    }
  } finally {
    for (const gw of fleet) await gw.close();
    await up.close();
    await redis.stop();
  }
});
