import assert from "node:assert/strict";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway, testClock } from "../helpers/in_process.ts";
import { chatBody } from "./daemon.ts";

const DEGRADED_BODY =
  '{"error":{"message":"[LLM_PROXY_PROVIDER_DEGRADED] Provider up is currently degraded or unavailable. Please try again later.","type":"provider_degraded","code":"provider_degraded"}}';

const config = (url: string, extra = "") => `
providers:
  up: { base_url: "${url}/v1", keys: [{ key: sk-cb-0001 }] }
routing:
  failover:
    backoff: { initial: 5ms, max: 10ms }
features:
  circuit_breaker:
    enabled: true
    failure_threshold: 2
    window_seconds: 60
    cooldown_seconds: 1
    max_transient_retries: 1
    retry_contribution_mode: "log"
    test_mode_enabled: true
${extra}`;

Deno.test("breaker end to end: trip, fast-fail byte-exact, half-open probe, bypass, test mode", async (t) => {
  const up = startFakeUpstream();
  // The cooldowns pass on this clock, not by waiting them out.
  const clock = testClock();
  const gw = startGateway(config(up.url, "    per_provider_rollup_threshold: 2\n"), {}, {
    now: clock.now,
  });
  const ask = (model: string, init: RequestInit = {}, query = "") =>
    gw.request(`/v1/chat/completions${query}`, {
      method: "POST",
      body: chatBody(model),
      ...init,
    });
  try {
    await t.step(
      "terminal degraded failures get the degraded signal and trip the breaker",
      async () => {
        up.script({ kind: "json", status: 500, body: { error: { message: "boom" } } });
        for (let i = 0; i < 2; i++) {
          const res = await ask("up/gpt-4o");
          assert.equal(res.status, 503);
          assert.equal(res.headers.get("x-llm-proxy-error-class"), "provider_degraded");
          assert.equal(await res.text(), DEGRADED_BODY);
        }
        assert.equal(up.requests.length, 4, "each request: one try plus one transient retry");
      },
    );

    await t.step("open: fast-fail without touching the upstream, same body", async () => {
      const before = up.requests.length;
      const res = await ask("up/gpt-4o");
      assert.equal(res.status, 503);
      assert.equal(await res.text(), DEGRADED_BODY);
      assert.equal(up.requests.length, before);
    });

    await t.step("per-model isolation: a sibling model still flows", async () => {
      up.script({ kind: "json" });
      const res = await ask("up/gpt-4o-mini");
      assert.equal(res.status, 200);
      await res.body?.cancel();
    });

    await t.step("/health reports the open key, llm-proxy's block and legacy fields", async () => {
      const h = await (await gw.request("/health")).json();
      assert.equal(h.features.circuit_breaker, true);
      assert.equal(h.circuit_breaker.enabled, true);
      assert.equal(h.circuit_breaker.mode, "on");
      assert.equal(h.circuit_breaker.backend, "memory");
      assert.equal(h.circuit_breaker.degraded_signal, "[LLM_PROXY_PROVIDER_DEGRADED]");
      // llm-proxy's provider view folds its keys: one model open shows the provider open.
      assert.equal(h.circuit_breaker.providers.up.state, "open");
      assert.ok(h.circuit_breaker.providers.up.failures > 0);
      assert.equal(h.circuit_breaker.total_failures, h.circuit_breaker.providers.up.failures);
      assert.equal(h.circuit_breaker.providers.up.keys["up:gpt-4o"].state, "open");
      assert.equal(
        typeof h.circuit_breaker.providers.up.keys["up:gpt-4o"].cooldown_until,
        "number",
      );
      assert.equal(h.circuit_breaker.providers.up.rollup.threshold, 2);
      assert.deepEqual(h.circuit_breaker.providers.up.rollup.open_keys, ["up:gpt-4o"]);
      assert.equal(h.providers.up.circuit_state, "open");
      assert.equal(h.providers.up.circuit_failures, h.circuit_breaker.providers.up.failures);
    });

    await t.step(
      "bypass: one real call (the real 5xx comes back), still counted, never closes",
      async () => {
        up.script({ kind: "json", status: 502, body: { error: { message: "bad gateway" } } });
        const before = up.requests.length;
        let res = await ask("up/gpt-4o", {
          headers: {
            "x-llm-proxy-bypass-circuit": "1",
            "x-llm-proxy-bypass-reason": "Manual Debug",
          },
        });
        assert.equal(res.status, 502, "the real upstream answer, not a synthetic 503");
        await res.body?.cancel();
        assert.equal(up.requests.length, before + 1, "single-shot: no retries");
        up.script({ kind: "json" });
        res = await ask("up/gpt-4o", {}, "?llm_proxy_bypass_circuit=true");
        assert.equal(res.status, 200);
        await res.body?.cancel();
        res = await ask("up/gpt-4o");
        assert.equal(res.status, 503, "a bypass success does not close the breaker");
        assert.equal(res.headers.get("x-pilotfish-attempts"), "0", "a fast-fail is no call");
        await res.body?.cancel();
      },
    );

    await t.step(
      "half-open after the cooldown: a failed probe re-opens, a good one closes",
      async () => {
        clock.advance(1_100);
        up.script({ kind: "json", status: 503, body: { error: { message: "still down" } } });
        let res = await ask("up/gpt-4o");
        assert.equal(res.status, 503);
        await res.body?.cancel();
        const probes = up.requests.length;
        res = await ask("up/gpt-4o");
        assert.equal(res.status, 503);
        await res.body?.cancel();
        assert.equal(up.requests.length, probes, "re-opened: fast-fail again");
        clock.advance(1_100);
        up.script({ kind: "json" });
        res = await ask("up/gpt-4o");
        assert.equal(res.status, 200, "probe succeeded");
        await res.body?.cancel();
        res = await ask("up/gpt-4o");
        assert.equal(res.status, 200, "closed");
        await res.body?.cancel();
      },
    );

    await t.step("test mode: force_degraded and force_transient_recover", async () => {
      let res = await ask("up/gpt-4o", { headers: { "x-llm-proxy-test-mode": "force_degraded" } });
      assert.equal(res.status, 503);
      assert.equal(await res.text(), DEGRADED_BODY);
      const before = up.requests.length;
      res = await ask("up/gpt-4o", {}, "?llm_proxy_test_mode=force_transient_recover");
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-pilotfish-attempts"), "2");
      await res.body?.cancel();
      assert.equal(
        up.requests.length,
        before + 1,
        "the simulated failure never reached the upstream",
      );
    });

    await t.step("the rollup: two open models fast-fail the whole provider", async () => {
      up.script({ kind: "json", status: 500, body: { error: { message: "boom" } } });
      for (const model of ["m1", "m1", "m2", "m2"]) {
        await ask(`up/${model}`).then((r) => r.body?.cancel());
      }
      up.script({ kind: "json" });
      const before = up.requests.length;
      const res = await ask("up/fresh-model");
      assert.equal(res.status, 503, "a closed key fast-fails under the rollup");
      await res.body?.cancel();
      assert.equal(up.requests.length, before);
      const h = await (await gw.request("/health")).json();
      assert.equal(h.circuit_breaker.providers.up.rollup.open, true);
      assert.equal(h.circuit_breaker.providers.up.rollup.count, 2);
    });
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("breaker mode log observes only; the degraded signal follows the route's format", async () => {
  const up = startFakeUpstream();
  up.script({ kind: "json", status: 500, body: { error: { message: "boom" } } });
  const gw = startGateway(config(up.url, "    mode: log\n"));
  try {
    for (let i = 0; i < 4; i++) {
      const res = await gw.request("/v1/chat/completions", {
        method: "POST",
        body: chatBody("up/gpt-4o"),
      });
      assert.equal(res.status, 500, "log mode passes the real error through");
      await res.body?.cancel();
    }
    assert.equal(up.requests.length, 8, "never fast-fails");
    const h = await (await gw.request("/health")).json();
    assert.equal(h.circuit_breaker.mode, "log");
    assert.equal(h.circuit_breaker.providers.up.keys["up:gpt-4o"].state, "open");
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("breaker on native passthrough: llm-proxy's own routes trip, fast-fail and strip the switches", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  openai: { base_url: "${up.url}/v1" }
routing:
  failover:
    backoff: { initial: 5ms, max: 10ms }
features:
  circuit_breaker:
    enabled: true
    failure_threshold: 2
    cooldown_seconds: 60
    max_transient_retries: 1
    test_mode_enabled: true
`);
  const call = (query = "", headers: Record<string, string> = {}) =>
    gw.request(`/openai/v1/chat/completions${query}`, {
      method: "POST",
      headers: { authorization: "Bearer sk-client", ...headers },
      body: chatBody("gpt-4o"),
    });
  try {
    up.script({ kind: "json", status: 503, body: { error: { message: "overloaded" } } });
    for (let i = 0; i < 2; i++) {
      const res = await call();
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("x-llm-proxy-error-class"), "provider_degraded");
      assert.equal(
        await res.text(),
        '{"error":{"message":"[LLM_PROXY_PROVIDER_DEGRADED] Provider openai is currently degraded or unavailable. Please try again later.","type":"provider_degraded","code":"provider_degraded"}}',
      );
    }
    assert.equal(up.requests.length, 4, "a transient retry each, with the held body re-sent");
    assert.deepEqual(JSON.parse(up.requests[1]!.body), JSON.parse(chatBody("gpt-4o")));
    const before = up.requests.length;
    const fast = await call();
    assert.equal(fast.status, 503);
    await fast.body?.cancel();
    assert.equal(up.requests.length, before, "open: no upstream call");

    // Bypass by query parameter: one real call; the switches never reach the provider.
    up.script({ kind: "json" });
    const res = await call(
      "?llm_proxy_bypass_circuit=1&llm_proxy_bypass_reason=final_retry_tier&keep=me",
      {
        "x-llm-proxy-test-mode": "nonsense",
      },
    );
    assert.equal(res.status, 200);
    await res.body?.cancel();
    const seen = up.requests.at(-1)!;
    assert.equal(seen.headers.get("x-llm-proxy-test-mode"), null);
    assert.equal(seen.path, "/v1/chat/completions");
    assert.equal(seen.search, "?keep=me", "bypass parameters stripped, the rest kept");
    // A client error is the caller's: passed straight through, never counted.
    up.script({ kind: "json", status: 400, body: { error: { message: "bad" } } });
    const bad = await call("?llm_proxy_bypass_circuit=yes");
    assert.equal(bad.status, 400);
    assert.deepEqual(await bad.json(), { error: { message: "bad" } });
  } finally {
    await gw.close();
    await up.close();
  }
});

/** An OpenAI-style upstream answering from a queue of statuses (then 200s), recording hits. */
function startSequenced() {
  const queue: { status: number; headers?: Record<string, string> }[] = [];
  let hits = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    hits++;
    const next = queue.shift() ?? { status: 200 };
    const body = next.status === 200
      ? {
        id: "chatcmpl-seq",
        object: "chat.completion",
        created: 1,
        model: "gpt-4o",
        choices: [{
          index: 0,
          message: { role: "assistant", content: "ok" },
          finish_reason: "stop",
        }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      }
      : { error: { message: `HTTP ${next.status}`, type: "server_error" } };
    return Response.json(body, { status: next.status, headers: next.headers ?? {} });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    hits: () => hits,
    then: (...items: { status: number; headers?: Record<string, string> }[]) =>
      queue.push(...items),
    close: () => server.shutdown(),
  };
}

Deno.test("the breaker's own retries hold with routing.failover disabled, on every route", async (t) => {
  const up = startSequenced();
  const gw = startGateway(`
providers:
  openai: { base_url: "${up.url}/v1", keys: [{ key: sk-cb-0002 }] }
routing:
  failover:
    enabled: false
    backoff: { initial: 5ms, max: 10ms }
features:
  circuit_breaker:
    enabled: true
    failure_threshold: 100
    max_transient_retries: 1
    max_rate_limit_retries: 1
    test_mode_enabled: true
`);
  const routes: [string, string, Record<string, string>][] = [
    ["unified", "/v1/chat/completions", {}],
    ["passthrough", "/openai/v1/chat/completions", { authorization: "Bearer sk-client" }],
  ];
  // Unified routes name the provider in the model; the native route is the provider.
  const ask = (path: string, headers: Record<string, string>) =>
    gw.request(path, {
      method: "POST",
      headers,
      body: chatBody(path.startsWith("/v1/") ? "openai/gpt-4o" : "gpt-4o"),
    });
  try {
    for (const [name, path, headers] of routes) {
      await t.step(`${name}: one transient 503 is retried, not a degraded signal`, async () => {
        const before = up.hits();
        up.then({ status: 503 });
        const res = await ask(path, headers);
        assert.equal(res.status, 200);
        await res.body?.cancel();
        assert.equal(up.hits(), before + 2);
      });

      await t.step(`${name}: a 429 is retried after its Retry-After`, async () => {
        const before = up.hits();
        // The gateway really waits out Retry-After: that wait is what this step measures.
        up.then({ status: 429, headers: { "retry-after": "1" } });
        const started = performance.now();
        const res = await ask(path, headers);
        const took = performance.now() - started;
        assert.equal(res.status, 200);
        await res.body?.cancel();
        assert.equal(up.hits(), before + 2);
        assert.ok(took >= 950 && took < 3_000, `took ${took} ms`);
      });

      await t.step(`${name}: the budget spent, the degraded signal (failover or not)`, async () => {
        const before = up.hits();
        up.then({ status: 503 }, { status: 503 });
        const res = await ask(path, headers);
        assert.equal(res.status, 503);
        assert.equal(res.headers.get("x-llm-proxy-error-class"), "provider_degraded");
        assert.equal(res.headers.get("x-pilotfish-provider"), "openai");
        assert.equal(res.headers.get("x-pilotfish-model"), "gpt-4o");
        assert.equal(res.headers.get("x-pilotfish-attempts"), "2");
        assert.match(await res.text(), /\[LLM_PROXY_PROVIDER_DEGRADED\] Provider openai/);
        assert.equal(up.hits(), before + 2);
      });

      await t.step(`${name}: force_transient_recover recovers on the retry`, async () => {
        const before = up.hits();
        const res = await ask(path, {
          ...headers,
          "x-llm-proxy-test-mode": "force_transient_recover",
        });
        assert.equal(res.status, 200);
        await res.body?.cancel();
        assert.equal(up.hits(), before + 1, "the simulated failure never left the sidecar");
      });
    }
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("bypass with the first provider's circuit open: that provider, once, not the next one", async () => {
  const up = startFakeUpstream();
  const backup = startFakeUpstream();
  const gw = startGateway(`
providers:
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-cb-0001 }] }
  backup: { base_url: "${backup.url}/v1", keys: [{ key: sk-cb-0002 }] }
routing:
  models:
    m: { providers: [up, backup], strategy: priority }
  failover: { enabled: true, max_retries: 0, backoff: { initial: 5ms, max: 10ms } }
features:
  circuit_breaker: { enabled: true, failure_threshold: 2, max_transient_retries: 0 }
`);
  const ask = (headers: Record<string, string> = {}) =>
    gw.request("/v1/chat/completions", { method: "POST", body: chatBody("m"), headers });
  try {
    up.script({ kind: "json", status: 500, body: { error: { message: "boom" } } });
    backup.script({ kind: "json" });
    for (let i = 0; i < 2; i++) await (await ask()).body?.cancel();
    // Open now: a plain request goes to the backup without calling `up`.
    const calls = up.requests.length;
    const plain = await ask();
    assert.equal(plain.headers.get("x-pilotfish-provider"), "backup");
    await plain.body?.cancel();
    assert.equal(up.requests.length, calls);
    // A bypass skips the circuit check: one call to `up`, and its real 500.
    const backupCalls = backup.requests.length;
    const bypass = await ask({ "x-llm-proxy-bypass-circuit": "1" });
    assert.equal(bypass.status, 500);
    await bypass.body?.cancel();
    assert.equal(up.requests.length, calls + 1);
    assert.equal(backup.requests.length, backupCalls);
  } finally {
    await gw.close();
    await up.close();
    await backup.close();
  }
});

Deno.test("unified routes: a stream that fails after its commit counts against the provider's breaker; a client leaving does not", async () => {
  const up = startFakeUpstream();
  const chunk = `data: ${
    JSON.stringify({
      id: "c",
      object: "chat.completion.chunk",
      choices: [{ index: 0, delta: { content: "partial" } }],
    })
  }\n\n`;
  const gw = startGateway(`
providers:
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-up-0001 }] }
routing:
  failover: { enabled: false }
features:
  circuit_breaker:
    enabled: true
    failure_threshold: 2
    cooldown_seconds: 60
    max_transient_retries: 0
    max_rate_limit_retries: 0
`);
  const stream = async () => {
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody("up/gpt-4o", { stream: true }),
    });
    assert.equal(res.status, 200);
    return res;
  };
  const key = async () =>
    (await (await gw.request("/health")).json()).circuit_breaker.providers.up.keys?.["up:gpt-4o"];
  try {
    // A client that leaves mid-stream says nothing of the provider.
    up.script({ kind: "sse", events: [chunk], thenHang: true });
    const left = await stream();
    const reader = left.body!.getReader();
    await reader.read();
    await reader.cancel();
    assert.equal(await key(), undefined, "no failure for a client's leaving");
    // Cut by the upstream after its first content, twice: the key opens.
    for (let i = 0; i < 2; i++) {
      up.script({ kind: "sse", events: [chunk], thenBreak: true });
      await (await stream()).text();
    }
    const k = await key();
    assert.equal(k.state, "open");
    assert.equal(k.failures, 2);
  } finally {
    await gw.close();
    await up.close();
  }
});
