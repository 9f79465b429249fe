import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { GatewayError } from "../../src/errors.ts";
import type { ChatCall, ChatOutcome, ProviderAdapter } from "../../src/providers/mod.ts";
import {
  createRoutingState,
  executeWithFailover,
  FailoverExhausted,
  resolveModel,
} from "../../src/routing/mod.ts";

const SANITIZE = { sanitizeOps: true, sanitizeResources: true };
const enc = new TextEncoder();

type Step = (call: ChatCall) => Promise<ChatOutcome>;

/** A provider adapter that plays a script: one step per call, the last step repeating. */
function scripted(name: string, steps: Step[]) {
  const calls: ChatCall[] = [];
  const adapter: ProviderAdapter = {
    name,
    type: "openai",
    models: () => [],
    chat(call) {
      calls.push(call);
      const step = steps[Math.min(calls.length - 1, steps.length - 1)] as Step;
      return step(call);
    },
  };
  return { adapter, calls };
}

const ok = (text = "ok"): Step => () =>
  Promise.resolve({ kind: "json", status: 200, body: JSON.stringify({ text }) });
const fail = (status: number, headers?: Record<string, string>): Step => () =>
  Promise.reject(
    new GatewayError(status === 429 ? "rate_limited" : "upstream_error", `HTTP ${status}`, {
      status,
      upstreamStatus: status,
      ...(headers ? { headers } : {}),
    }),
  );
const refused: Step = () =>
  Promise.reject(new GatewayError("upstream_unreachable", "Connection refused"));
const timedOut: Step = () => Promise.reject(new GatewayError("upstream_timeout", "Too slow"));
/** Answers after `ms`, unless aborted first (then rejects like fetch does). */
const slow = (ms: number, text: string): Step => (call) =>
  new Promise((resolve, reject) => {
    const t = setTimeout(
      () => resolve({ kind: "json", status: 200, body: JSON.stringify({ text }) }),
      ms,
    );
    call.signal.addEventListener("abort", () => {
      clearTimeout(t);
      reject(new GatewayError("upstream_unreachable", "aborted"));
    }, { once: true });
  });
const streamOf = (chunks: string[], breakAfter?: number): Step => () => {
  let i = 0;
  return Promise.resolve({
    kind: "stream",
    status: 200,
    body: new ReadableStream<Uint8Array>({
      pull(c) {
        if (i === breakAfter) return c.error(new Error("stream broke"));
        if (i >= chunks.length) return c.close();
        c.enqueue(enc.encode(chunks[i++]));
      },
    }),
  });
};

function setup(yaml: string, adapters: ProviderAdapter[], random = () => 0) {
  const { config } = parseConfigText(yaml, () => undefined, "t.yaml");
  return {
    config,
    deps: {
      config,
      adapters: new Map(adapters.map((a) => [a.name, a])),
      state: createRoutingState(),
      random,
      now: Date.now,
      redact: (s: string) => s,
    },
  };
}

const CONFIG = `
providers:
  a: { base_url: "http://a.test/v1", keys: [{ key: ka1, id: a-1 }, { key: ka2, id: a-2 }] }
  b: { base_url: "http://b.test/v1", keys: [{ key: kb1, id: b-1 }] }
routing:
  models:
    m: { providers: [a, b] }
  failover:
    max_retries: 3
    backoff: { initial: 10ms, max: 20ms }
`;

function run(
  env: ReturnType<typeof setup>,
  model = "m",
  extra: { stream?: boolean; deadlineMs?: number } = {},
) {
  const { targets, route } = resolveModel(env.config, model);
  return executeWithFailover(env.deps, {
    requested: model,
    targets,
    route,
    invoke: (adapter, attempt, m) =>
      adapter.chat({
        ...attempt,
        body: { model, messages: [{ role: "user", content: "hi" }] },
        stream: extra.stream ?? false,
        onUsage: () => {},
      }, m),
    signal: new AbortController().signal,
    clientAuthorization: null,
    deadlineMs: extra.deadlineMs ?? 10_000,
  });
}

const outcomes = (attempts: readonly { provider: string; outcome: string }[]) =>
  attempts.map((a) => `${a.provider}:${a.outcome}`);

Deno.test("executeWithFailover() 503 then 200 on the same provider", SANITIZE, async () => {
  const a = scripted("a", [fail(503), ok("from a")]);
  const b = scripted("b", [ok("from b")]);
  const r = await run(setup(CONFIG, [a.adapter, b.adapter]));
  assert.equal(r.target.provider, "a");
  assert.deepEqual(outcomes(r.attempts), ["a:retry", "a:ok"]);
  assert.equal(b.calls.length, 0);
});

Deno.test("executeWithFailover() 500 twice moves to the next provider", SANITIZE, async () => {
  const a = scripted("a", [fail(500)]);
  const b = scripted("b", [ok("from b")]);
  const r = await run(setup(CONFIG, [a.adapter, b.adapter]));
  assert.equal(r.target.provider, "b");
  assert.deepEqual(outcomes(r.attempts), ["a:retry", "a:next", "b:ok"]);
  assert.equal(r.attempts[0]?.status, 500);
  assert.equal(r.attempts[0]?.reason, "HTTP 500");
});

Deno.test(
  "executeWithFailover() connection refused and timeout move on at once",
  SANITIZE,
  async () => {
    for (const step of [refused, timedOut]) {
      const a = scripted("a", [step]);
      const b = scripted("b", [ok()]);
      const r = await run(setup(CONFIG, [a.adapter, b.adapter]));
      assert.deepEqual(outcomes(r.attempts), ["a:next", "b:ok"]);
      assert.equal(a.calls.length, 1, "no retry against a provider that is not answering");
    }
  },
);

Deno.test(
  "executeWithFailover() passes other 4xx straight back, no retry, no failover",
  SANITIZE,
  async () => {
    for (const status of [400, 404, 422]) {
      const a = scripted("a", [fail(status)]);
      const b = scripted("b", [ok()]);
      const err = await run(setup(CONFIG, [a.adapter, b.adapter])).catch((e) => e);
      assert.ok(err instanceof FailoverExhausted);
      assert.equal(err.last.status, status);
      assert.deepEqual(outcomes(err.attempts), ["a:final"]);
      assert.equal(b.calls.length, 0);
    }
  },
);

Deno.test("executeWithFailover() honours Retry-After on the same provider", SANITIZE, async () => {
  // Provider b has a single key, so the same key must wait out its Retry-After.
  const b = scripted("b", [fail(429, { "retry-after": "1" }), ok()]);
  const started = performance.now();
  const r = await run(setup(CONFIG, [b.adapter]), "b/x");
  const waited = performance.now() - started;
  assert.deepEqual(outcomes(r.attempts), ["b:retry", "b:ok"]);
  assert.ok(waited >= 950 && waited < 2_000, `waited ${waited} ms`);
});

Deno.test(
  "executeWithFailover() does not wait past the deadline for Retry-After",
  SANITIZE,
  async () => {
    const a = scripted("a", [fail(429, { "retry-after": "30" })]);
    const b = scripted("b", [ok("b")]);
    const started = performance.now();
    const r = await run(setup(CONFIG, [a.adapter, b.adapter]), "m", { deadlineMs: 2_000 });
    assert.ok(performance.now() - started < 1_000);
    assert.equal(r.target.provider, "b");
    const alone = scripted("a", [fail(429, { "retry-after": "30" })]);
    const err = await run(setup(CONFIG, [alone.adapter]), "a/x", { deadlineMs: 2_000 }).catch((e) =>
      e
    );
    assert.equal(err.last.status, 429);
    assert.equal(err.last.info.headers["retry-after"], "30");
  },
);

Deno.test(
  "executeWithFailover() stops after max_retries and reports every attempt",
  SANITIZE,
  async () => {
    const a = scripted("a", [fail(502)]);
    const b = scripted("b", [fail(503)]);
    const err = await run(setup(CONFIG, [a.adapter, b.adapter])).catch((e) => e);
    assert.ok(err instanceof FailoverExhausted);
    assert.deepEqual(outcomes(err.attempts), ["a:retry", "a:next", "b:retry", "b:final"]);
    assert.equal(err.last.status, 503);
  },
);

Deno.test("executeWithFailover() with failover disabled makes one attempt", SANITIZE, async () => {
  const a = scripted("a", [fail(503)]);
  const b = scripted("b", [ok()]);
  const env = setup(CONFIG.replace("max_retries: 3", "enabled: false"), [a.adapter, b.adapter]);
  const err = await run(env).catch((e) => e);
  assert.deepEqual(outcomes(err.attempts), ["a:final"]);
});

Deno.test(
  "executeWithFailover() cools a 401 key and retries with the provider's other key",
  SANITIZE,
  async () => {
    const a = scripted("a", [fail(401), ok()]);
    const env = setup(CONFIG, [a.adapter]);
    const r = await run(env, "a/x");
    assert.deepEqual(outcomes(r.attempts), ["a:retry", "a:ok"]);
    const [first, second] = a.calls;
    assert.notEqual(first?.apiKey, second?.apiKey, "another key");
    const refusedId = r.attempts[0]!.key_id!;
    const cooled = env.deps.state.keyCooldown(refusedId, Date.now());
    assert.equal(cooled?.reason, "auth");
    assert.ok(cooled!.until - Date.now() > 290_000, "auth cooldown defaults to 5 minutes");
    // Later requests avoid the refused key.
    for (let i = 0; i < 20; i++) {
      const next = await run(env, "a/x");
      assert.notEqual(next.attempts[0]?.key_id, refusedId);
    }
  },
);

Deno.test("executeWithFailover() 401 with no other key is final", SANITIZE, async () => {
  const b = scripted("b", [fail(401)]);
  const err = await run(setup(CONFIG, [b.adapter]), "b/x").catch((e) => e);
  assert.equal(err.last.status, 401);
  assert.deepEqual(outcomes(err.attempts), ["b:final"]);
});

Deno.test(
  "executeWithFailover() cools a 429 key for Retry-After; other keys take its share",
  SANITIZE,
  async () => {
    const a = scripted("a", [fail(429, { "retry-after": "60" }), ok()]);
    const env = setup(CONFIG, [a.adapter], Math.random);
    const r = await run(env, "a/x", { deadlineMs: 2_000 });
    // Retry-After (60 s) exceeds the deadline: the same provider is not retried, nothing else is
    // configured for "a/x", so the 429 goes back; the key rests for 60 s.
    assert.equal(r.attempts.length >= 1, true);
    const refused = a.calls[0]!;
    const refusedId = refused.apiKey === "ka1" ? "a-1" : "a-2";
    const cooled = env.deps.state.keyCooldown(refusedId, Date.now());
    assert.equal(cooled?.reason, "rate_limit");
    assert.ok(cooled!.until - Date.now() > 55_000);
    for (let i = 0; i < 10; i++) {
      await run(env, "a/x");
      assert.notEqual(a.calls.at(-1)?.apiKey, refused.apiKey);
    }
  },
);

Deno.test("executeWithFailover() respects each key's model allowlist", SANITIZE, async () => {
  const yaml = `
providers:
  a:
    base_url: "http://a.test/v1"
    keys:
      - { key: k-mini, id: mini, models: [gpt-4o-mini] }
      - { key: k-big, id: big, models: [gpt-4o] }
`;
  const a = scripted("a", [ok()]);
  const env = setup(yaml, [a.adapter], Math.random);
  for (let i = 0; i < 20; i++) {
    await run(env, "a/gpt-4o");
    assert.equal(a.calls.at(-1)?.apiKey, "k-big");
  }
  const err = await run(env, "a/o1").catch((e) => e);
  assert.equal(err.last.code, "not_found");
  assert.match(err.last.message, /No key of provider "a" is allowed to use model "o1"/);
});

Deno.test(
  "executeWithFailover() retries a stream that fails before its first chunk",
  SANITIZE,
  async () => {
    const a = scripted("a", [streamOf(["x"], 0), streamOf(["data: 1\n\n", "data: 2\n\n"])]);
    const r = await run(setup(CONFIG, [a.adapter]), "a/x", { stream: true });
    assert.deepEqual(outcomes(r.attempts), ["a:retry", "a:ok"]);
    assert.equal(r.outcome.kind, "stream");
    if (r.outcome.kind !== "stream") return;
    const text = new TextDecoder().decode(
      new Uint8Array((await Array.fromAsync(r.outcome.body)).flatMap((c) => [...c])),
    );
    assert.equal(text, "data: 1\n\ndata: 2\n\n", "the peeked chunk is replayed, nothing lost");
  },
);

Deno.test(
  "executeWithFailover() commits to a stream once its first chunk arrived",
  SANITIZE,
  async () => {
    const a = scripted("a", [streamOf(["data: 1\n\n", "data: 2\n\n"], 1)]);
    const b = scripted("b", [ok()]);
    const r = await run(setup(CONFIG, [a.adapter, b.adapter]), "m", { stream: true });
    assert.deepEqual(outcomes(r.attempts), ["a:ok"]);
    if (r.outcome.kind !== "stream") throw new Error("expected a stream");
    const reader = r.outcome.body.getReader();
    assert.equal(new TextDecoder().decode((await reader.read()).value), "data: 1\n\n");
    await assert.rejects(reader.read(), /stream broke/);
    assert.equal(b.calls.length, 0, "no failover after the first byte");
  },
);

Deno.test(
  "executeWithFailover() hedges: a slow first provider loses to a fast second",
  SANITIZE,
  async () => {
    const yaml = CONFIG.replace(
      "m: { providers: [a, b] }",
      "m: { providers: [a, b], hedge_after: 100ms }",
    );
    const a = scripted("a", [slow(2_000, "slow a")]);
    const b = scripted("b", [slow(50, "fast b")]);
    const started = performance.now();
    const r = await run(setup(yaml, [a.adapter, b.adapter]));
    const took = performance.now() - started;
    assert.equal(r.target.provider, "b");
    assert.ok(took >= 140 && took < 600, `answered after ${took} ms (hedge_after 100 + 50)`);
    assert.deepEqual(outcomes(r.attempts).sort(), ["a:cancelled", "b:ok"]);
    assert.equal(a.calls[0]?.signal.aborted, true, "the slow attempt was aborted");
  },
);

Deno.test(
  "executeWithFailover() does not hedge when the first answers in time",
  SANITIZE,
  async () => {
    const yaml = CONFIG.replace(
      "m: { providers: [a, b] }",
      "m: { providers: [a, b], hedge_after: 300ms }",
    );
    const a = scripted("a", [slow(20, "a")]);
    const b = scripted("b", [ok()]);
    const r = await run(setup(yaml, [a.adapter, b.adapter]));
    assert.equal(r.target.provider, "a");
    assert.equal(b.calls.length, 0);
  },
);

Deno.test(
  "executeWithFailover() round-robin over scripted providers spreads the load",
  SANITIZE,
  async () => {
    const yaml = CONFIG.replace(
      "m: { providers: [a, b] }",
      "m: { providers: [a, b], strategy: round-robin }",
    );
    const a = scripted("a", [ok()]);
    const b = scripted("b", [ok()]);
    const env = setup(yaml, [a.adapter, b.adapter]);
    for (let i = 0; i < 100; i++) await run(env);
    assert.equal(a.calls.length, 50);
    assert.equal(b.calls.length, 50);
  },
);
