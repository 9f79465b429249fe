import assert from "node:assert/strict";
import { startGateway, testClock } from "../../helpers/in_process.ts";
import { completionBody, startFakeUpstream } from "../../fakes/fake_upstream.ts";
import { parseConfigText } from "../../../src/config/mod.ts";
import { preloadTelemetry } from "../../../src/telemetry/hub.ts";
import type { Exchange } from "../../../src/pipeline/exchange.ts";
import {
  type BreakerStore,
  breakerTiming,
  createMemoryBreakerStore,
} from "../../../src/breaker/mod.ts";

const config = (url: string, extra = "") => `
providers:
  up:
    base_url: "${url}/v1"
    keys: [{ key: sk-metrics-0001 }]
    models: [gpt-4o-mini]
routing:
  failover:
    backoff: { initial: 5ms, max: 10ms }
features:
  circuit_breaker:
    enabled: true
    failure_threshold: 1
    window_seconds: 60
    cooldown_seconds: 30
${extra}`;

const chat = (model: string, stream = false) =>
  JSON.stringify({
    model,
    stream,
    ...(stream ? { stream_options: { include_usage: true } } : {}),
    messages: [{ role: "user", content: "hi" }],
  });

/** The value of one series (`name{labels}`) in a Prometheus text body, or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** Start a gateway with OpenTelemetry already imported (as `src/main.ts` does). */
async function gateway(yaml: string, now?: () => number) {
  await preloadTelemetry(parseConfigText(yaml, () => undefined, "t.yaml").config);
  return startGateway(yaml, {}, now ? { now } : {});
}

Deno.test("GET /metrics: llm-gateway's series, GenAI histograms and pilotfish_* after traffic", async () => {
  const up = startFakeUpstream();
  const gw = await gateway(config(up.url));
  try {
    up.script({ kind: "json" });
    for (let i = 0; i < 2; i++) {
      const res = await gw.request("/v1/chat/completions", {
        method: "POST",
        body: chat("up/gpt-4o-mini"),
      });
      assert.equal(res.status, 200);
      const overhead = Number(res.headers.get("x-pilotfish-overhead-ms"));
      assert.ok(overhead >= 0 && overhead < 1000);
      await res.body?.cancel();
    }
    // Bad input reaches no provider: not usage, so not in llm-gateway's request count either
    // (its README shows total_requests and llm_gateway_requests_total equal).
    const bad = await gw.request("/v1/chat/completions", { method: "POST", body: "{}" });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    const usage = await gw.runtime.usage.report({ period: "hour", since: 0, until: 8.64e15 });
    assert.equal(usage.total_requests, 2);
    const res = await gw.request("/metrics");
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.equal(sample(text, "llm_gateway_requests_total"), 2);
    assert.equal(sample(text, "llm_gateway_tokens_total"), 20);
    assert.equal(sample(text, 'llm_gateway_provider_requests_total{provider="up"}'), 2);
    assert.equal(
      sample(
        text,
        'pilotfish_requests_total{route="/v1/chat/completions",status="200",provider="up"}',
      ),
      2,
    );
    assert.match(text, /# TYPE gen_ai_client_token_usage histogram/);
    assert.match(
      text,
      /gen_ai_client_token_usage_sum\{gen_ai_operation_name="chat",gen_ai_provider_name="up",gen_ai_request_model="up\/gpt-4o-mini",gen_ai_response_model="gpt-4o-mini",gen_ai_token_type="input"\} 14/,
    );
    assert.match(text, /gen_ai_client_operation_duration_count\{[^}]*\} 2/);
    // Every response has its overhead, the bad request too.
    assert.match(text, /pilotfish_overhead_seconds_count\{route="\/v1\/chat\/completions"\} 3/);
    assert.match(text, /pilotfish_config_generation\{hash="[0-9a-f]{12}"\} 1/);
    // A scrape is counted under its own route, not the catch-all's.
    const again = await (await gw.request("/metrics")).text();
    assert.match(again, /pilotfish_requests_total\{route="\/metrics",status="200"/);
    assert.doesNotMatch(again, /route="\/\*"/);
    assert.doesNotMatch(text, /sk-metrics-0001/);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("GET /metrics: a breaker trip shows as a transition, a fast-fail and the key's state", async () => {
  const up = startFakeUpstream();
  const clock = testClock();
  // With the response cache on: a miss that then made no call is not usage either.
  const gw = await gateway(config(up.url, "cache: { enabled: true }"), clock.now);
  try {
    up.script({ kind: "json", status: 500, body: { error: { message: "boom" } } });
    for (let i = 0; i < 2; i++) {
      const res = await gw.request("/v1/chat/completions", {
        method: "POST",
        body: chat("up/gpt-4o-mini"),
      });
      assert.equal(res.status, 503);
      await res.body?.cancel();
    }
    // llm-proxy's safety valve while open: one real call, counted with reason and outcome.
    const bypass = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: {
        "x-llm-proxy-bypass-circuit": "1",
        "x-llm-proxy-bypass-reason": "no_fallback_configured",
      },
      body: chat("up/gpt-4o-mini"),
    });
    await bypass.body?.cancel();
    const text = await (await gw.request("/metrics")).text();
    assert.equal(
      sample(
        text,
        'pilotfish_breaker_bypass_total{provider="up",model="gpt-4o-mini",reason="no_fallback_configured",outcome="provider_degraded"}',
      ),
      1,
    );
    assert.equal(
      sample(text, 'pilotfish_breaker_transitions_total{provider="up",from="closed",to="open"}'),
      1,
    );
    assert.equal(sample(text, 'pilotfish_breaker_state{provider="up",key="up:gpt-4o-mini"}'), 2);
    // Past its cooldown the key is half-open, as /health says, before any request moves it.
    clock.advance(31_000);
    const later = await (await gw.request("/metrics")).text();
    assert.equal(sample(later, 'pilotfish_breaker_state{provider="up",key="up:gpt-4o-mini"}'), 1);
    assert.equal(
      sample(text, 'pilotfish_breaker_fast_fails_total{provider="up",model="gpt-4o-mini"}'),
      1,
    );
    // The fast-fail made no upstream call: not among the attempts.
    const calls = [...text.matchAll(/^pilotfish_upstream_attempts_total\{[^}]*\} (\d+)/gm)]
      .reduce((n, m) => n + Number(m[1]), 0);
    assert.equal(calls, up.requests.length);
    // Nor among llm-gateway's requests (those that reached a provider or the cache), nor the
    // provider's: two of the three did; all three are in pilotfish_requests_total.
    assert.equal(sample(text, "llm_gateway_requests_total"), 2);
    assert.equal(sample(text, 'llm_gateway_provider_requests_total{provider="up"}'), 2);
    const all = [
      ...text.matchAll(/^pilotfish_requests_total\{route="\/v1\/chat\/completions"[^}]*\} (\d+)/gm),
    ]
      .reduce((n, m) => n + Number(m[1]), 0);
    assert.equal(all, 3);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("GET /metrics: pilotfish_breaker_state shows a key the fleet's store opened, not only local transitions", async () => {
  const up = startFakeUpstream();
  const clock = testClock();
  const yaml = config(up.url);
  await preloadTelemetry(parseConfigText(yaml, () => undefined, "t.yaml").config);
  // The store another sidecar writes to (Redis): its open keys reach this one's view with
  // no transition made here.
  let store: BreakerStore | undefined;
  const gw = startGateway(yaml, {}, {
    now: clock.now,
    breakerStore: (cfg) =>
      store = createMemoryBreakerStore(breakerTiming(cfg.features.circuit_breaker)),
  });
  const state = async (key: string) =>
    sample(
      await (await gw.request("/metrics")).text(),
      `pilotfish_breaker_state{provider="up",key="${key}"}`,
    );
  try {
    assert.equal(await state("up:gpt-4o-mini"), undefined, "nothing known yet");
    assert.equal(await store!.recordFailure("up:gpt-4o-mini", "up", clock.now()), true);
    // A model no config names is labelled `other`, as on every other series.
    assert.equal(await store!.recordFailure("up:made-up", "up", clock.now()), true);
    assert.equal(await state("up:gpt-4o-mini"), 2, "open, as this sidecar fast-fails it");
    assert.equal(await state("up:other"), 2);
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: chat("up/gpt-4o-mini"),
    });
    assert.equal(res.status, 503, "it acts on that state");
    await res.body?.cancel();
    assert.equal(up.requests.length, 0);
    clock.advance(31_000);
    assert.equal(await state("up:gpt-4o-mini"), 1, "half-open past its cooldown");
    await store!.closeKey("up:gpt-4o-mini", "up");
    assert.equal(await state("up:gpt-4o-mini"), 0, "closed by the fleet: the series stays, at 0");
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("GET /metrics: embeddings record input tokens only; chat records both", async () => {
  const up = startFakeUpstream();
  const gw = await gateway(config(up.url));
  try {
    up.script({
      kind: "json",
      body: {
        object: "list",
        data: [{ object: "embedding", index: 0, embedding: [0.1] }],
        model: "gpt-4o-mini",
        usage: { prompt_tokens: 5, total_tokens: 5 },
      },
    });
    const res = await gw.request("/v1/embeddings", {
      method: "POST",
      body: JSON.stringify({ model: "up/gpt-4o-mini", input: "hi" }),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    up.script({ kind: "json" });
    const chatRes = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: chat("up/gpt-4o-mini"),
    });
    await chatRes.body?.cancel();
    const text = await (await gw.request("/metrics")).text();
    const counts = (op: string) =>
      [...text.matchAll(/^gen_ai_client_token_usage_count\{([^}]*)\} (\S+)$/gm)]
        .filter((m) => m[1]!.includes(`gen_ai_operation_name="${op}"`))
        .map((m) => /gen_ai_token_type="(\w+)"/.exec(m[1]!)![1]).sort();
    assert.deepEqual(counts("embeddings"), ["input"]);
    assert.deepEqual(counts("chat"), ["input", "output"]);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("GET /metrics: gen_ai_response_model is the model the upstream reported, bounded", async () => {
  const up = startFakeUpstream();
  const gw = await gateway(config(up.url));
  const answered = (text: string) =>
    [...text.matchAll(/^gen_ai_client_operation_duration_count\{([^}]*)\}/gm)]
      .map((m) => /gen_ai_response_model="([^"]*)"/.exec(m[1]!)![1]).sort();
  try {
    up.script({ kind: "json", body: completionBody("hi", "gpt-4o-mini-2024-07-18") });
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: chat("up/gpt-4o-mini"),
    });
    await res.body?.cancel();
    assert.deepEqual(answered(await (await gw.request("/metrics")).text()), [
      "gpt-4o-mini-2024-07-18",
    ]);
    // A model no config names, echoed back by its upstream, mints no label.
    up.script({ kind: "json", body: completionBody("hi", "made-up-echo") });
    const echo = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: chat("up/made-up-echo"),
    });
    await echo.body?.cancel();
    assert.deepEqual(answered(await (await gw.request("/metrics")).text()), [
      "gpt-4o-mini-2024-07-18",
      "other",
    ]);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("GET /metrics: a cache hit's gen_ai_response_model is what its stored answer names", async (t) => {
  for (const stream of [false, true]) {
    await t.step(stream ? "replayed as a stream" : "JSON", async () => {
      const up = startFakeUpstream();
      const gw = await gateway(config(up.url, "cache: { enabled: true, streaming: true }\n"));
      try {
        up.script({ kind: "json", body: completionBody("hi", "gpt-4o-mini-2024-07-18") });
        for (const asStream of [false, stream]) {
          const res = await gw.request("/v1/chat/completions", {
            method: "POST",
            body: chat("up/gpt-4o-mini", asStream),
          });
          await res.text();
        }
        assert.equal(up.requests.length, 1, "the second answer came from the cache");
        await gw.waitForLog('"cache":"hit"');
        const text = await (await gw.request("/metrics")).text();
        const models = [...text.matchAll(/^gen_ai_client_operation_duration_count\{([^}]*)\}/gm)]
          .map((m) => /gen_ai_response_model="([^"]*)"/.exec(m[1]!)![1]);
        assert.deepEqual([...new Set(models)], ["gpt-4o-mini-2024-07-18"]);
      } finally {
        await gw.close();
        await up.close();
      }
    });
  }
});

Deno.test("GET /metrics: 10,000 distinct model names collapse to `other` (bounded series)", async () => {
  const up = startFakeUpstream();
  const gw = await gateway(config(up.url));
  try {
    up.script({ kind: "json" });
    const countSeries = async () =>
      (await (await gw.request("/metrics")).text()).split("\n").filter((l) =>
        l !== "" && !l.startsWith("#")
      ).length;
    const flood = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const res = await gw.request("/v1/chat/completions", {
          method: "POST",
          body: chat(`up/flood-${i}`),
        });
        await res.body?.cancel();
      }
    };
    // Every series a request of this shape makes exists after the first few.
    await flood(0, 100);
    await countSeries(); // the scrape's own series (route="/metrics") exist from here on
    const before = await countSeries();
    await flood(100, 10_000);
    const text = await (await gw.request("/metrics")).text();
    assert.equal(await countSeries(), before, "no series per model name");
    assert.equal(sample(text, "llm_gateway_requests_total"), 10_000);
    assert.doesNotMatch(text, /flood-/);
    assert.match(text, /gen_ai_request_model="other"/);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("metrics.enabled: false: no /metrics (404), Butter's plugins.metrics turns it on", async () => {
  const off = startGateway("metrics: { enabled: false }\n");
  try {
    const res = await off.request("/metrics");
    assert.equal(res.status, 404);
    await res.body?.cancel();
  } finally {
    await off.close();
  }
  const on = await gateway("metrics: { enabled: false }\nplugins: { metrics: {} }\n");
  try {
    const res = await on.request("/metrics");
    assert.equal(res.status, 200);
    await res.body?.cancel();
  } finally {
    await on.close();
  }
  const moved = await gateway("metrics: { endpoint: /prom }\n");
  try {
    const res = await moved.request("/prom");
    assert.equal(res.status, 200);
    await res.body?.cancel();
  } finally {
    await moved.close();
  }
});

Deno.test("GET /metrics and /api/v1/status: the cache, rate-limit and bypass events other stages emit", async () => {
  const up = startFakeUpstream();
  const gw = await gateway(config(up.url));
  try {
    // The stages that emit these (cache, rate limits) are other modules: here the test
    // emits them on the bus, with a real exchange, as those stages will.
    let exchange: Exchange | undefined;
    const off = gw.runtime.events.subscribe((e) => {
      if (e.type === "request_start") exchange = e.exchange;
    }, ["request_start"]);
    up.script({ kind: "json" });
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: chat("up/gpt-4o-mini"),
    });
    await res.body?.cancel();
    off();
    assert.ok(exchange);
    const bus = gw.runtime.events;
    bus.emit({ type: "cache", exchange, result: "hit" });
    bus.emit({ type: "cache", exchange, result: "hit" });
    bus.emit({ type: "cache", exchange, result: "miss" });
    bus.emit({
      type: "rate_limit",
      exchange,
      decision: "deny",
      limits: [{
        check: {
          label: {
            scope: "app_key",
            metric: "requests",
            window: "minute",
            key: "app_key:requests",
            row: "app_key:requests:minute",
          },
        },
        limit: 10,
        remaining: 0,
      }],
    });
    bus.emit({
      type: "breaker_decision",
      exchange,
      provider: "up",
      model: "made-up-model",
      decision: "bypass",
      reason: "no_fallback_configured",
      outcome: "none",
    });
    const text = await (await gw.request("/metrics")).text();
    assert.equal(sample(text, "llm_gateway_cache_hits_total"), 2);
    assert.equal(sample(text, 'pilotfish_cache_lookups_total{result="miss"}'), 1);
    assert.equal(
      sample(
        text,
        'pilotfish_rate_limit_decisions_total{scope="app_key",decision="deny",metric="requests"}',
      ),
      1,
    );
    assert.equal(
      sample(
        text,
        'pilotfish_breaker_bypass_total{provider="up",model="other",reason="no_fallback_configured",outcome="none"}',
      ),
      1,
    );
    const status = await (await gw.request("/api/v1/status")).json();
    assert.deepEqual(status.stats.cache, { hits: 2, misses: 1, hit_rate: 2 / 3 });
    assert.deepEqual(status.stats.rate_limits, [
      { scope: "app_key", metric: "requests", window: "minute", used: 10, limit: 10, denied: 1 },
    ]);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("GET /metrics and /api/v1/status count the tokens billed: an estimated prompt too", async () => {
  const up = startFakeUpstream();
  const gw = await gateway(config(up.url));
  try {
    // A passthrough stream with no counts: its prompt is estimated from the request, as the
    // access log and /api/v1/usage bill it.
    up.script({ kind: "stream" });
    const res = await gw.request("/native/up/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "gpt-4o-mini",
        stream: true,
        messages: [{ role: "user", content: "x".repeat(400) }],
      }),
    });
    assert.equal(res.status, 200);
    await res.text();
    const id = res.headers.get("x-request-id")!;
    await gw.waitForLog(`"request_id":"${id}"`);
    const line = JSON.parse(gw.logs.find((l) => l.includes(id))!) as {
      prompt_tokens: number;
      completion_tokens: number;
    };
    assert.ok(line.prompt_tokens > 0, "the prompt is estimated");
    const text = await (await gw.request("/metrics")).text();
    assert.equal(
      sample(text, "llm_gateway_tokens_total"),
      line.prompt_tokens + line.completion_tokens,
    );
    // The model the native body named is the request's model label (not `other`).
    assert.match(text, /gen_ai_request_model="gpt-4o-mini"/);
    const status = await (await gw.request("/api/v1/status")).json() as {
      stats: { tokens: { input: number; output: number } };
    };
    assert.equal(status.stats.tokens.input, line.prompt_tokens);
    assert.equal(status.stats.tokens.output, line.completion_tokens);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("a native passthrough stream counts as active while it runs and records its time to first chunk", async () => {
  const up = startFakeUpstream();
  const gw = await gateway(config(up.url, "").replace(/features:[\s\S]*$/, ""));
  const metrics = async () => await (await gw.request("/metrics")).text();
  try {
    up.script({
      kind: "sse",
      events: [
        `data: ${
          JSON.stringify({
            id: "c",
            object: "chat.completion.chunk",
            created: 1,
            model: "gpt-4o-mini",
            choices: [{ index: 0, delta: { content: "Hi" }, finish_reason: null }],
          })
        }\n\n`,
      ],
      thenHang: true,
    });
    const res = await gw.request("/openai/v1/chat/completions", {
      method: "POST",
      body: chat("gpt-4o-mini", true),
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    await reader.read(); // the first content has gone through
    assert.equal(sample(await metrics(), "pilotfish_active_streams"), 1);
    await reader.cancel();
    await gw.waitForLog('"msg":"request"');
    const text = await metrics();
    assert.equal(sample(text, "pilotfish_active_streams"), 0);
    const ttfc = text.split("\n").find((l) =>
      l.startsWith("gen_ai_client_operation_time_to_first_chunk_count") &&
      l.includes('gen_ai_provider_name="up"')
    );
    assert.ok(
      ttfc !== undefined && Number(ttfc.split(" ").at(-1)) === 1,
      text.split("\n").filter((l) => l.includes("first_chunk")).join("\n"),
    );
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("time to first chunk carries the duration histogram's labels, the response model too", async () => {
  const up = startFakeUpstream();
  const gw = await gateway(config(up.url));
  try {
    up.script({ kind: "stream" });
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: chat("up/gpt-4o-mini", true),
    });
    await res.text();
    await gw.waitForLog('"msg":"request"');
    const text = await (await gw.request("/metrics")).text();
    const labelOf = (family: string) =>
      /gen_ai_request_model="([^"]*)"/.exec(
        text.split("\n").find((l) => l.startsWith(`${family}_count{`)) ?? "",
      )?.[1];
    assert.equal(labelOf("gen_ai_client_operation_duration"), "up/gpt-4o-mini");
    assert.equal(labelOf("gen_ai_client_operation_time_to_first_chunk"), "up/gpt-4o-mini");
    const labelsOf = (family: string) =>
      /\{([^}]*)\}/.exec(text.split("\n").find((l) => l.startsWith(`${family}_count{`)) ?? "")
        ?.[1];
    assert.equal(
      labelsOf("gen_ai_client_operation_time_to_first_chunk"),
      labelsOf("gen_ai_client_operation_duration"),
    );
    assert.match(labelsOf("gen_ai_client_operation_duration")!, /gen_ai_response_model="/);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("GET /metrics: a native passthrough request is labelled with the model its body names", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-up-0001 }], models: [gpt-4o] }
`);
  try {
    const res = await gw.request("/native/up/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(res.status, 200);
    await res.text();
    const text = await (await gw.request("/metrics")).text();
    assert.match(text, /gen_ai_client_token_usage_count\{[^}]*gen_ai_request_model="gpt-4o"/);
    assert.doesNotMatch(text, /gen_ai_request_model="other"/);
  } finally {
    await gw.close();
    await up.close();
  }
});
