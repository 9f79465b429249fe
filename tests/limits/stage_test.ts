/**
 * The limiter through the real app, one test per seed dialect: request N+1 gets a 429 in the
 * route's format with every header, admitted answers carry decreasing headers, and a
 * limited request never reaches the upstream (nor the breaker).
 */
import assert from "node:assert/strict";
import type { Config } from "../../src/config/mod.ts";
import { completionBody, startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway, testClock } from "../helpers/in_process.ts";
import type { Stage } from "../../src/pipeline/stages.ts";
import { createControl } from "../../src/pipeline/control.ts";
import { buildRuntime } from "../../src/runtime.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { breakerTiming, createMemoryBreakerStore } from "../../src/breaker/mod.ts";
import { fingerprint } from "../../src/limits/policy.ts";
import { lineOf } from "../usage/support.ts";

const chat = (extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify({
    model: "up/gpt-4o",
    messages: [{ role: "user", content: "hello there" }],
    ...extra,
  }),
});

const LIMIT_HEADERS = [
  "retry-after",
  "x-ratelimit-limit",
  "x-ratelimit-remaining",
  "x-ratelimit-reset",
  "x-ratelimit-reason",
  "x-ratelimit-metric",
  "x-ratelimit-window",
  "x-ratelimit-scope",
];

async function drain(res: Response): Promise<Response> {
  await res.body?.cancel();
  return res;
}

Deno.test("llm-proxy features.rate_limiting: N+1 is a 429 with every header, no upstream call", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  up: { base_url: "${up.url}/v1" }
features:
  circuit_breaker: { enabled: true, failure_threshold: 1 }
  rate_limiting:
    enabled: true
    limits: { requests_per_minute: 3 }
`);
  try {
    const remaining: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await drain(await gw.request("/v1/chat/completions", chat()));
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-ratelimit-limit"), "3");
      assert.ok(res.headers.get("x-ratelimit-reset"));
      remaining.push(res.headers.get("x-ratelimit-remaining")!);
    }
    assert.deepEqual(remaining, ["2", "1", "0"]);
    const limited = await gw.request("/v1/chat/completions", chat());
    assert.equal(limited.status, 429);
    for (const h of LIMIT_HEADERS) assert.ok(limited.headers.get(h), `missing ${h}`);
    assert.equal(limited.headers.get("x-ratelimit-reason"), "minute limit exceeded");
    assert.equal(limited.headers.get("x-ratelimit-metric"), "requests");
    assert.equal(limited.headers.get("x-ratelimit-window"), "minute");
    assert.equal(limited.headers.get("x-ratelimit-scope"), "global");
    assert.equal(limited.headers.get("x-ratelimit-remaining"), "0");
    // PRODUCT: the x-pilotfish-* headers where a provider was chosen; no call was made.
    assert.equal(limited.headers.get("x-pilotfish-provider"), "up");
    assert.equal(limited.headers.get("x-pilotfish-model"), "gpt-4o");
    assert.equal(limited.headers.get("x-pilotfish-attempts"), "0");
    const body = await limited.json();
    assert.equal(body.error.code, "rate_limit_exceeded");
    assert.equal(up.requests.length, 3, "the limited request reached no upstream");
    // The Anthropic route answers in its own format.
    const msg = await gw.request("/v1/messages", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "up/gpt-4o",
        max_tokens: 5,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    assert.equal(msg.status, 429);
    assert.equal((await msg.json()).type, "error");
    assert.equal(msg.headers.get("x-ratelimit-scope"), "global");
    // Never a breaker failure.
    const health = await (await gw.request("/health")).json();
    assert.equal(health.circuit_breaker.providers.up.state, "closed");
    assert.equal(health.circuit_breaker.providers.up.failures, 0);
    assert.equal(health.rate_limiting.backend, "memory");
    assert.equal(health.rate_limiting.usage[0].used, 3);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("llm-proxy per_user overrides apply in llm-proxy's user id order", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  up: { base_url: "${up.url}/v1" }
features:
  rate_limiting:
    enabled: true
    limits:
      requests_per_minute: 100
      overrides:
        per_user:
          alice: { requests_per_minute: 1 }
`);
  try {
    const first = await drain(
      await gw.request("/v1/chat/completions", chat({}, { "x-user-id": "alice" })),
    );
    assert.equal(first.status, 200);
    assert.equal(first.headers.get("x-ratelimit-limit"), "1");
    // The body's user field names the same user.
    const second = await gw.request("/v1/chat/completions", chat({ user: "alice" }));
    assert.equal(second.status, 429);
    assert.equal(second.headers.get("x-ratelimit-scope"), "user:alice");
    await second.body?.cancel();
    // The query parameter too; another user is under the global limit only.
    const third = await drain(
      await gw.request("/v1/chat/completions?llm_user_id=alice", chat()),
    );
    assert.equal(third.status, 429);
    const bob = await drain(await gw.request("/v1/chat/completions", chat({ user: "bob" })));
    assert.equal(bob.status, 200);
    assert.equal(bob.headers.get("x-ratelimit-limit"), "100");
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("llm-proxy overrides tighten a user, model or key; the global limit still holds the total", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  up: { base_url: "${up.url}/v1" }
features:
  rate_limiting:
    enabled: true
    limits:
      requests_per_minute: 3
    overrides:
      per_user: { vip: { requests_per_minute: 1000 } }
      per_model: { gpt-4o-mini: { requests_per_minute: 1 } }
      per_key: { sk-client: { requests_per_minute: 1 } }
`);
  const send = async (extra: Record<string, unknown>, headers: Record<string, string> = {}) => {
    const res = await drain(await gw.request("/v1/chat/completions", chat(extra, headers)));
    return `${res.status} ${res.headers.get("x-ratelimit-scope") ?? ""}`.trim();
  };
  try {
    // The model's own limit: one a minute.
    assert.equal(await send({ model: "up/gpt-4o-mini" }), "200");
    assert.equal(await send({ model: "up/gpt-4o-mini" }), "429 model:gpt-4o-mini");
    // The key's (a client credential), one a minute.
    assert.equal(await send({}, { authorization: "Bearer sk-client" }), "200");
    assert.equal(
      await send({}, { authorization: "Bearer sk-client" }),
      `429 key:${fingerprint("sk-client")}`,
    );
    // A user allowed 1000 is still held by the global 3: two were admitted already.
    assert.equal(await send({ user: "vip" }), "200");
    assert.equal(await send({ user: "vip" }), "429 global");
    assert.equal(await send({}), "429 global");
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("llm-proxy token limits: estimates admit, real usage reconciles, windows roll", async () => {
  const up = startFakeUpstream();
  const clock = testClock();
  // 7 prompt tokens per answer (the fake's usage); "hello there" estimates at 3 tokens.
  up.script({ kind: "json", body: completionBody("ok") });
  const gw = startGateway(
    `
providers:
  up: { base_url: "${up.url}/v1" }
features:
  rate_limiting:
    enabled: true
    limits: { tokens_per_minute: 20 }
`,
    {},
    { now: clock.now },
  );
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await drain(await gw.request("/v1/chat/completions", chat()))).status);
    }
    // Reconciled up to 7 each: 7, 14, then 14 + 3 fits (17), reconciled to 21: the 4th is over.
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    clock.advance(60_000);
    const next = await drain(await gw.request("/v1/chat/completions", chat()));
    assert.equal(next.status, 200, "a new minute starts empty");
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("a cache hit gives back its token estimate (no provider tokens used); it still counts as a request", async () => {
  const up = startFakeUpstream();
  const clock = testClock();
  const gw = startGateway(
    `
providers:
  up: { base_url: "${up.url}/v1" }
cache: { enabled: true }
features:
  rate_limiting:
    enabled: true
    limits: { tokens_per_minute: 20, requests_per_minute: 6 }
`,
    {},
    { now: clock.now },
  );
  try {
    // The first is answered upstream (7 prompt tokens); the next five are hits of it.
    const seen: string[] = [];
    for (let i = 0; i < 7; i++) {
      const res = await drain(await gw.request("/v1/chat/completions", chat()));
      seen.push(`${res.status} ${res.headers.get("x-cache") ?? "-"}`);
    }
    // Tokens: 7 spent once; hits give their estimate back, so 20 a minute never runs out.
    // Requests: six a minute, hits included: the seventh is refused.
    assert.deepEqual(seen, [
      "200 MISS",
      "200 HIT",
      "200 HIT",
      "200 HIT",
      "200 HIT",
      "200 HIT",
      "429 -",
    ]);
    assert.equal(up.requests.length, 1);
    const tokens = gw.runtime.limits!.usage().find((r) => r.metric === "tokens")!;
    assert.equal(tokens.used, 7);
  } finally {
    await gw.close();
    await up.close();
  }
});

/** One provider at `baseUrl`, no failover, 2 requests a minute (and `extra` config). */
const twoPerMinute = (baseUrl: string, extra = "") => `
${extra}
providers:
  up: { base_url: "${baseUrl}" }
routing: { failover: { enabled: false } }
features:
  rate_limiting:
    enabled: true
    limits: { requests_per_minute: 2 }
`;

Deno.test("a 5xx that used nothing gives back its request and token estimate; a 4xx keeps them", async (t) => {
  const up = startFakeUpstream();
  const clock = testClock();
  const gw = startGateway(
    `
providers:
  up: { base_url: "${up.url}/v1" }
routing: { failover: { enabled: false } }
features:
  rate_limiting:
    enabled: true
    limits: { requests_per_minute: 2, tokens_per_minute: 1000 }
`,
    {},
    { now: clock.now },
  );
  try {
    const failing = { kind: "json", status: 500, body: { error: { message: "boom" } } } as const;
    for (let i = 0; i < 4; i++) {
      up.script(failing);
      const res = await drain(await gw.request("/v1/chat/completions", chat()));
      assert.equal(res.status, 500, `failure ${i} is the upstream's, not a 429`);
      // An admitted request's error carries the limit's headers too.
      assert.equal(res.headers.get("x-ratelimit-limit"), "2");
    }
    const rows = (await (await gw.request("/health")).json()).rate_limiting.usage as {
      metric: string;
      used: number;
    }[];
    assert.deepEqual(rows.map((r) => [r.metric, r.used]), [["requests", 0], ["tokens", 0]]);
    // A client error is the client's request: it counts.
    up.script({ kind: "json", status: 400, body: { error: { message: "bad" } } });
    await drain(await gw.request("/v1/chat/completions", chat()));
    up.script({ kind: "json", body: completionBody("ok") });
    assert.equal((await drain(await gw.request("/v1/chat/completions", chat()))).status, 200);
    assert.equal((await drain(await gw.request("/v1/chat/completions", chat()))).status, 429);
  } finally {
    await gw.close();
  }
  // Request limits alone give back too (Butter's and llm-gateway's dialects have no tokens);
  // a call the client's own deadline cut may still run upstream: it keeps its quota.
  const only = startGateway(twoPerMinute(`${up.url}/v1`));
  try {
    await t.step("requests only: upstream 5xx answers cost nothing", async () => {
      for (let i = 0; i < 4; i++) {
        up.script({ kind: "json", status: 500, body: { error: { message: "boom" } } });
        const res = await drain(await only.request("/v1/chat/completions", chat()));
        assert.equal(res.status, 500, `failure ${i} is the upstream's, not a 429`);
      }
    });
    await t.step("a native route's relayed 5xx costs nothing either", async () => {
      for (let i = 0; i < 4; i++) {
        up.script({ kind: "json", status: 503, body: { error: { message: "down" } } });
        const res = await drain(
          await only.request("/native/up/chat/completions", chat()),
        );
        assert.equal(res.status, 503, `failure ${i} is the upstream's, not a 429`);
      }
    });
    await t.step("a call cut by x-gateway.timeout keeps its quota", async () => {
      const slow = () => chat({ "x-gateway": { timeout: 0.05 } });
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) {
        up.script({ kind: "json", body: completionBody("late"), delayMs: 500 });
        statuses.push((await drain(await only.request("/v1/chat/completions", slow()))).status);
      }
      assert.deepEqual(statuses, [504, 504, 429]);
    });
  } finally {
    await only.close();
    await up.close();
  }
});

Deno.test("a provider that refuses the connection: the request is given back, and it is no usage", async () => {
  // A port nobody listens on: the call never leaves.
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close();
  const gw = startGateway(
    twoPerMinute(`http://127.0.0.1:${port}/v1`, "server: { admin_token: admin-token-0001 }"),
  );
  try {
    for (let i = 0; i < 4; i++) {
      const res = await drain(await gw.request("/v1/chat/completions", chat()));
      assert.equal(res.status, 502, `attempt ${i}: the provider's failure, not a 429`);
    }
    const usage = await (await gw.request("/api/v1/usage", {
      headers: { authorization: "Bearer admin-token-0001" },
    })).json();
    assert.equal(usage.total_requests, 0);
  } finally {
    await gw.close();
  }
});

Deno.test("llm-gateway rateLimit: global, perKey and perModel; the tightest decides", async () => {
  const up = startFakeUpstream();
  const setKey: Stage = {
    name: "test_app_key",
    fail_mode: "closed",
    timeout_ms: 1000,
    pre_http(ex) {
      const key = ex.headers.get("x-test-key");
      if (key !== null) ex.principal.appKey = key;
    },
  };
  const gw = startGateway(
    `
providers:
  - name: up
    baseUrl: "${up.url}/v1"
    models: [gpt-4o, gpt-4o-mini]
rateLimit:
  enabled: true
  global: { requests: 100, window: 1m }
  perKey: { requests: 2, window: 1m }
  perModel:
    gpt-4o-mini: { requests: 1, window: 1h }
`,
    {},
    { stages: () => [setKey] },
  );
  const ask = (model: string, key: string) =>
    gw.request("/v1/chat/completions", chat({ model }, { "x-test-key": key }));
  try {
    assert.equal((await drain(await ask("gpt-4o", "app-1"))).status, 200);
    const second = await drain(await ask("gpt-4o", "app-1"));
    assert.equal(second.status, 200);
    assert.equal(second.headers.get("x-ratelimit-remaining"), "0");
    const third = await ask("gpt-4o", "app-1");
    assert.equal(third.status, 429);
    assert.equal(third.headers.get("x-ratelimit-scope"), "key:app-1");
    await third.body?.cancel();
    assert.equal((await drain(await ask("gpt-4o-mini", "app-2"))).status, 200);
    const model = await ask("gpt-4o-mini", "app-3");
    assert.equal(model.status, 429);
    assert.equal(model.headers.get("x-ratelimit-scope"), "model:gpt-4o-mini");
    assert.equal(model.headers.get("x-ratelimit-window"), "hour");
    await model.body?.cancel();
    assert.equal(up.requests.length, 3);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("Butter plugins.ratelimit: a token bucket that refills, per IP", async () => {
  const up = startFakeUpstream();
  const clock = testClock();
  const gw = startGateway(
    `
providers:
  up: { base_url: "${up.url}/v1" }
plugins:
  ratelimit:
    requests_per_minute: 2
    per_ip: false
`,
    {},
    { now: clock.now },
  );
  try {
    assert.equal((await drain(await gw.request("/v1/chat/completions", chat()))).status, 200);
    assert.equal((await drain(await gw.request("/v1/chat/completions", chat()))).status, 200);
    const limited = await drain(await gw.request("/v1/chat/completions", chat()));
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get("retry-after"), "30");
    clock.advance(30_000);
    assert.equal((await drain(await gw.request("/v1/chat/completions", chat()))).status, 200);
    assert.equal(up.requests.length, 3);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("passthrough routes are limited too, in their own error format", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  openai: { base_url: "${up.url}/v1", keys: [{ key: sk-test-0001 }] }
features:
  rate_limiting:
    enabled: true
    limits: { requests_per_minute: 1 }
`);
  try {
    // The provider's own headers of the same names give way to the gateway's limit.
    up.script({
      kind: "json",
      headers: { "x-ratelimit-limit": "999", "x-ratelimit-remaining": "9" },
    });
    const ok = await drain(
      await gw.request("/openai/v1/chat/completions", chat({ model: "gpt-4o" })),
    );
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("x-ratelimit-limit"), "1");
    assert.equal(ok.headers.get("x-ratelimit-remaining"), "0");
    const limited = await gw.request("/openai/v1/chat/completions", chat({ model: "gpt-4o" }));
    assert.equal(limited.status, 429);
    for (const h of LIMIT_HEADERS) assert.ok(limited.headers.get(h), `missing ${h}`);
    assert.equal((await limited.json()).error.code, "rate_limit_exceeded");
    assert.equal(up.requests.length, 1);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("Redis unreachable: fail_mode open admits this sidecar's share, closed refuses; /health says so", async () => {
  const up = startFakeUpstream();
  // A port held by a listener that never answers: no other test can take it meanwhile.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const gw = startGateway(`
providers:
  up: { base_url: "${up.url}/v1" }
state:
  backend: redis
  redis: { url: "redis://127.0.0.1:${silent.addr.port}" }
features:
  rate_limiting:
    enabled: true
    fleet_size: 4
    limits: { requests_per_minute: 8 }
rate_limit:
  enabled: true
  per_model:
    closed-model: { requests: 100, window: 1m, fail_mode: closed }
`);
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      statuses.push((await drain(await gw.request("/v1/chat/completions", chat()))).status);
    }
    assert.deepEqual(statuses, [200, 200, 429], "a share of 8 / 4 = 2");
    const closed = await gw.request(
      "/v1/chat/completions",
      chat({ model: "up/closed-model" }),
    );
    assert.equal(closed.status, 429);
    // The closed limit is the one reported (the global share, exhausted too, is open).
    assert.equal(closed.headers.get("x-ratelimit-reason"), "rate limit store unavailable");
    assert.equal(closed.headers.get("x-ratelimit-scope"), "model:closed-model");
    assert.equal(closed.headers.get("x-ratelimit-limit"), "100");
    assert.match((await closed.json()).error.message, /\(model:closed-model\) refuses/);
    const health = await (await gw.request("/health")).json();
    assert.equal(health.rate_limiting.backend, "redis");
    assert.equal(health.rate_limiting.mode, "fallback");
    assert.equal(health.rate_limiting.fallback_share, 0.25);
    assert.match(health.rate_limiting.notice, /share/);
    // The usage rows count against the share too, as the headers do.
    const global = health.rate_limiting.usage.find((r: { scope: string; metric: string }) =>
      r.scope === "global" && r.metric === "requests"
    );
    assert.deepEqual([global.limit, global.used, global.remaining], [2, 2, 0]);
    assert.equal(up.requests.length, 2);
  } finally {
    await gw.close();
    await up.close();
    silent.close();
  }
});

Deno.test("control.state().limits: usage per scope; memory counters outlive a config reload", async () => {
  const up = startFakeUpstream();
  const yaml = `
providers:
  up: { base_url: "${up.url}/v1" }
features:
  rate_limiting:
    enabled: true
    limits:
      requests_per_minute: 5
      overrides: { per_user: { carol: { requests_per_minute: 2 } } }
`;
  const gw = startGateway(yaml);
  const parsed = (text: string) => parseConfigText(text, () => undefined, "x.yaml").config;
  // A config generation on the same owner (the routing state), as a reload builds it.
  const generation = (config: Config, n: number) =>
    buildRuntime(config, n, {
      fetch,
      random: Math.random,
      routing: gw.runtime.routing,
      breakerStore: createMemoryBreakerStore(breakerTiming(config.features.circuit_breaker)),
      write: () => {},
    });
  try {
    await drain(await gw.request("/v1/chat/completions", chat()));
    await drain(await gw.request("/v1/chat/completions", chat({ user: "carol" })));
    const control = createControl({ current: () => gw.runtime });
    const limits = control.state().limits!;
    assert.equal(limits.health.backend, "memory");
    const rows = limits.usage.map((r) => `${r.scope} ${r.used}/${r.limit}`).sort();
    // carol's request counts against her own limit and the global one (llm-proxy's scopes).
    assert.deepEqual(rows, ["global 2/5", "user:carol 1/2"]);
    // A new generation of the same config keeps counting where the last one was.
    const next = generation(gw.runtime.config, 2);
    try {
      assert.deepEqual(
        next.limits!.usage().map((r) => `${r.scope} ${r.used}`).sort(),
        ["global 2", "user:carol 1"],
      );
    } finally {
      next.retire();
      await next.dispose();
    }
    // A reload that drops carol's override no longer reports her counter (nor enforces it).
    const dropped = generation(parsed(yaml.replace(/ +overrides:.*\n/, "")), 3);
    try {
      assert.deepEqual(dropped.limits!.usage().map((r) => `${r.scope} ${r.used}`), ["global 2"]);
    } finally {
      dropped.retire();
      await dropped.dispose();
    }
    // A reload that changes the limit: usage shows the one in force at once, before any
    // request (what /health and the status page read).
    for (const [rpm, shown] of [[3, "global 2/3 left 1"], [50, "global 2/50 left 48"]] as const) {
      const changed = generation(
        parsed(
          yaml.replace(/ +overrides:.*\n/, "").replace(
            "requests_per_minute: 5",
            `requests_per_minute: ${rpm}`,
          ),
        ),
        4,
      );
      try {
        assert.deepEqual(
          changed.limits!.usage().map((r) => `${r.scope} ${r.used}/${r.limit} left ${r.remaining}`),
          [shown],
        );
      } finally {
        changed.retire();
        await changed.dispose();
      }
    }
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("an upstream's X-LLM-Input-Tokens reconciles the estimate (passthrough)", async () => {
  const up = startFakeUpstream();
  up.script({ kind: "json", body: completionBody("ok"), headers: { "x-llm-input-tokens": "50" } });
  const gw = startGateway(`
providers:
  openai: { base_url: "${up.url}/v1", keys: [{ key: sk-test-0001 }] }
features:
  rate_limiting:
    enabled: true
    limits: { tokens_per_minute: 1000 }
`);
  try {
    const res = await drain(
      await gw.request("/openai/v1/chat/completions", chat({ model: "gpt-4o" })),
    );
    assert.equal(res.status, 200);
    // "hello there" is estimated at 3 tokens; the upstream said 50.
    const used = gw.runtime.limits!.usage().find((r) => r.metric === "tokens")!.used;
    assert.equal(used, 50);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("a stream the upstream reports no usage for keeps its estimate (never 0 tokens)", async (t) => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  openai: { base_url: "${up.url}/v1", keys: [{ key: sk-test-0001 }], stream_usage: false }
features:
  rate_limiting:
    enabled: true
    limits: { tokens_per_minute: 100000 }
`);
  const content = "a".repeat(400);
  const used = () => gw.runtime.limits!.usage().find((r) => r.metric === "tokens")?.used ?? 0;
  try {
    const routes: [string, string][] = [
      ["/openai/v1/chat/completions", "gpt-4o"],
      ["/v1/chat/completions", "openai/gpt-4o"],
    ];
    for (const [route, model] of routes) {
      await t.step(route, async () => {
        const before = used();
        up.script({ kind: "stream" });
        const res = await gw.request(
          route,
          chat({ model, stream: true, messages: [{ role: "user", content }] }),
        );
        assert.equal(res.status, 200);
        const remaining = Number(res.headers.get("x-ratelimit-remaining"));
        const estimate = 100000 - remaining - before;
        assert.ok(estimate >= 80, `estimated ${estimate}`);
        await res.text();
        await lineOf(gw, res);
        assert.equal(used() - before, estimate, "the estimate stands");
      });
    }
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("a stream's answer carries the headers; its 429 is a JSON error before any stream", async () => {
  const up = startFakeUpstream();
  up.script({ kind: "stream", includeUsage: true });
  const gw = startGateway(`
providers:
  up: { base_url: "${up.url}/v1" }
features:
  rate_limiting:
    enabled: true
    limits: { requests_per_minute: 1 }
`);
  try {
    const res = await gw.request("/v1/chat/completions", chat({ stream: true }));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-ratelimit-remaining"), "0");
    assert.match(await res.text(), /\[DONE\]/);
    const limited = await gw.request("/v1/chat/completions", chat({ stream: true }));
    assert.equal(limited.status, 429);
    assert.equal((await limited.json()).error.code, "rate_limit_exceeded");
    assert.equal(up.requests.length, 1);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("a day limit's 429 says llm-proxy's `daily limit exceeded`", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  up: { base_url: "${up.url}/v1" }
features:
  rate_limiting:
    enabled: true
    limits: { requests_per_day: 1 }
`);
  try {
    assert.equal((await drain(await gw.request("/v1/chat/completions", chat()))).status, 200);
    const limited = await drain(await gw.request("/v1/chat/completions", chat()));
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get("x-ratelimit-reason"), "daily limit exceeded");
    assert.equal(limited.headers.get("x-ratelimit-window"), "day");
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("Butter per_app_key: a request with a key counts in its key's bucket only (per_app_key_rpm, app_key_limits by value)", async () => {
  const up = startFakeUpstream();
  const yaml = `
providers:
  up: { base_url: "${up.url}/v1" }
app_keys:
  enabled: true
  header: X-Butter-App-Key
  keys:
    - { key: btr_bucket_key_a_000001, label: a }
    - { key: btr_bucket_key_b_000002, label: b }
  persistence: { enabled: false }
plugins:
  ratelimit:
    requests_per_minute: 3
    per_app_key: true
    per_app_key_rpm: 2
    app_key_limits:
      btr_bucket_key_b_000002: 1
`;
  const { parseConfigText } = await import("../../src/config/mod.ts");
  const loaded = parseConfigText(yaml, () => undefined, "b.yaml");
  assert.deepEqual(loaded.warnings, []);
  // The key's value is not kept: app_key_limits holds its hash.
  assert.doesNotMatch(JSON.stringify(loaded.config.plugins), /btr_bucket_key_b/);
  const gw = startGateway(loaded.config);
  const as = (key?: string) =>
    gw.request("/v1/chat/completions", chat({}, key ? { "x-butter-app-key": key } : {}));
  try {
    const a = [];
    for (let i = 0; i < 3; i++) a.push(await drain(await as("btr_bucket_key_a_000001")));
    assert.deepEqual(a.map((r) => r.status), [200, 200, 429]);
    assert.match(a[2]!.headers.get("x-ratelimit-scope")!, /^key:cfg_[0-9a-f]{16}$/);
    assert.equal(a[2]!.headers.get("x-ratelimit-limit"), "2");
    const b = [];
    for (let i = 0; i < 2; i++) b.push(await drain(await as("btr_bucket_key_b_000002")));
    assert.deepEqual(b.map((r) => r.status), [200, 429]);
    assert.equal(b[1]!.headers.get("x-ratelimit-limit"), "1");
    // Keyed requests took nothing from the global bucket: three requests without a key pass.
    const bare = [];
    for (let i = 0; i < 4; i++) bare.push(await drain(await as()));
    assert.deepEqual(bare.map((r) => r.status), [200, 200, 200, 429]);
    assert.equal(bare[3]!.headers.get("x-ratelimit-scope"), "global");
    assert.equal(up.requests.length, 6);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("llm-gateway rateLimit.perKey: a client with no credential is counted by its address", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  - name: up
    baseUrl: "${up.url}/v1"
    models: [gpt-4o]
rateLimit:
  enabled: true
  perKey: { requests: 2, window: 1m }
`);
  const ask = (headers: Record<string, string> = {}) =>
    fetch(gw.url("/v1/chat/completions"), chat({ model: "gpt-4o" }, headers));
  try {
    assert.equal((await drain(await ask())).status, 200);
    assert.equal((await drain(await ask())).status, 200);
    // Dropping the header does not step around the limit.
    const third = await ask();
    assert.equal(third.status, 429);
    assert.equal(third.headers.get("x-ratelimit-scope"), "key:ip-127.0.0.1");
    await third.body?.cancel();
    // A client credential has its own bucket (hashed), as before.
    assert.equal((await drain(await ask({ authorization: "Bearer key-a" }))).status, 200);
  } finally {
    await gw.close();
    await up.close();
  }
});
