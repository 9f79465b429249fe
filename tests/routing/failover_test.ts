import { callsMade } from "../../src/routing/attempt.ts";
import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { GatewayError } from "../../src/errors.ts";
import type { ChatCall, ChatOutcome, ProviderAdapter } from "../../src/providers/mod.ts";
import {
  createRoutingState,
  executeWithFailover,
  FailoverExhausted,
  resolveModel,
  runFailover,
} from "../../src/routing/mod.ts";
import { breakerTiming, createBreaker, createMemoryBreakerStore } from "../../src/breaker/mod.ts";
import { noUsage } from "../../src/streaming/mod.ts";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway } from "../helpers/in_process.ts";

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
  Promise.resolve({
    kind: "json",
    status: 200,
    format: "object",
    body: { text },
    usage: noUsage(),
  });
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
      () =>
        resolve({ kind: "json", status: 200, format: "object", body: { text }, usage: noUsage() }),
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
    format: "openai_sse",
    usage: noUsage(),
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
  const cb = config.features.circuit_breaker;
  // Built only when the config enables it, as the runtime does.
  const breaker = cb.enabled
    ? createBreaker(cb, createMemoryBreakerStore(breakerTiming(cb)), () => {})
    : undefined;
  return {
    config,
    deps: {
      config,
      adapters: new Map(adapters.map((a) => [a.name, a])),
      state: createRoutingState(),
      random,
      now: Date.now,
      redact: (s: string) => s,
      ...(breaker ? { breaker } : {}),
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
  extra: {
    stream?: boolean;
    deadlineMs?: number;
    clientAuthorization?: string;
    fallbackAuthorization?: string;
    testMode?: "force_degraded" | "force_transient_recover";
    signal?: AbortSignal;
  } = {},
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
      }, m),
    signal: extra.signal ?? new AbortController().signal,
    clientAuthorization: extra.clientAuthorization ?? null,
    ...(extra.fallbackAuthorization !== undefined
      ? { fallbackAuthorization: extra.fallbackAuthorization }
      : {}),
    ...(extra.testMode ? { testMode: extra.testMode } : {}),
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

Deno.test(
  "executeWithFailover() max_retries is per provider: max_retries + 1 tries, then the next",
  SANITIZE,
  async () => {
    const a = scripted("a", [fail(500)]);
    const b = scripted("b", [ok("from b")]);
    const r = await run(setup(CONFIG, [a.adapter, b.adapter]));
    assert.equal(r.target.provider, "b");
    assert.deepEqual(outcomes(r.attempts), ["a:retry", "a:retry", "a:retry", "a:next", "b:ok"]);
    assert.equal(a.calls.length, 4, "max_retries: 3 → four tries on a");
    assert.equal(r.attempts[0]?.status, 500);
    assert.equal(r.attempts[0]?.reason, "HTTP 500");
    // A single-provider model gets Butter's retries too (not one, as a total would give).
    const alone = scripted("a", [fail(503), fail(503), fail(503), ok("fourth")]);
    const r2 = await run(setup(CONFIG, [alone.adapter]), "a/x");
    assert.deepEqual(outcomes(r2.attempts), ["a:retry", "a:retry", "a:retry", "a:ok"]);
  },
);

Deno.test(
  "executeWithFailover() a provider's own max_retries wins over routing.failover.max_retries",
  SANITIZE,
  async () => {
    const yaml = CONFIG.replace(
      "keys: [{ key: ka1, id: a-1 }, { key: ka2, id: a-2 }] }",
      "keys: [{ key: ka1, id: a-1 }, { key: ka2, id: a-2 }], max_retries: 1 }",
    );
    const a = scripted("a", [fail(500)]);
    const b = scripted("b", [ok("from b")]);
    const r = await run(setup(yaml, [a.adapter, b.adapter]));
    assert.deepEqual(outcomes(r.attempts), ["a:retry", "a:next", "b:ok"]);
  },
);

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

Deno.test("executeWithFailover() honours Retry-After on the same provider", SANITIZE, async (t) => {
  // Provider b has a single key, so the same key must wait out a 429's Retry-After; a 5xx's
  // is the provider's own, waited out whatever keys it has (a has two).
  for (
    const [label, provider, status] of [
      ["429, one key", "b", 429],
      ["503, one key", "b", 503],
      ["503, another key ready", "a", 503],
    ] as const
  ) {
    await t.step(label, async () => {
      const up = scripted(provider, [fail(status, { "retry-after": "1" }), ok()]);
      const started = performance.now();
      const r = await run(setup(CONFIG, [up.adapter]), `${provider}/x`);
      const waited = performance.now() - started;
      assert.deepEqual(outcomes(r.attempts), [`${provider}:retry`, `${provider}:ok`]);
      assert.ok(waited >= 950 && waited < 2_000, `waited ${waited} ms`);
    });
  }
  await t.step("429, another key ready: only the backoff", async () => {
    const a = scripted("a", [fail(429, { "retry-after": "1" }), ok()]);
    const started = performance.now();
    const r = await run(setup(CONFIG, [a.adapter]), "a/x");
    assert.deepEqual(outcomes(r.attempts), ["a:retry", "a:ok"]);
    assert.ok(performance.now() - started < 500);
    assert.notEqual(a.calls[0]?.apiKey, a.calls[1]?.apiKey);
  });
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
  "executeWithFailover() moves on when a Retry-After outlasts backoff.max and another provider is configured",
  SANITIZE,
  async () => {
    // backoff.max is 20 ms: a's 2 s rest is not waited while b can answer now. (A 429 with
    // another key of a's ready is retried on that key first: the test above.)
    const slow = scripted("a", [fail(503, { "retry-after": "2" })]);
    const next = scripted("b", [ok("b")]);
    const started = performance.now();
    const moved = await run(setup(CONFIG, [slow.adapter, next.adapter]), "m");
    assert.ok(performance.now() - started < 1_000, "waited");
    assert.deepEqual(outcomes(moved.attempts), ["a:next", "b:ok"]);
    // Within the cap, a retry on the same provider still waits it out.
    const a = scripted("a", [fail(503, { "retry-after": "0.01" }), ok()]);
    const b = scripted("b", [ok("b")]);
    const r = await run(setup(CONFIG, [a.adapter, b.adapter]), "m");
    assert.deepEqual(outcomes(r.attempts), ["a:retry", "a:ok"]);
  },
);

Deno.test(
  "executeWithFailover() exhausts every provider's retries and reports every attempt",
  SANITIZE,
  async () => {
    const a = scripted("a", [fail(502)]);
    const b = scripted("b", [fail(503)]);
    const yaml = CONFIG.replace("max_retries: 3", "max_retries: 1");
    const err = await run(setup(yaml, [a.adapter, b.adapter])).catch((e) => e);
    assert.ok(err instanceof FailoverExhausted);
    assert.deepEqual(outcomes(err.attempts), ["a:retry", "a:next", "b:retry", "b:final"]);
    assert.equal(err.last.status, 503);
    // The error to answer with names the provider tried last and how many attempts there were.
    assert.equal(err.last.info.headers?.["x-pilotfish-provider"], "b");
    assert.equal(err.last.info.headers?.["x-pilotfish-model"], "m");
    assert.equal(err.last.info.headers?.["x-pilotfish-attempts"], "4");
  },
);

Deno.test(
  "executeWithFailover() max_attempts caps the calls across providers (0 = no cap)",
  SANITIZE,
  async () => {
    const a = scripted("a", [fail(502)]);
    const b = scripted("b", [ok()]);
    const capped = CONFIG.replace("max_retries: 3", "max_retries: 3\n    max_attempts: 3");
    const err = await run(setup(capped, [a.adapter, b.adapter])).catch((e) => e);
    assert.ok(err instanceof FailoverExhausted);
    assert.deepEqual(outcomes(err.attempts), ["a:retry", "a:retry", "a:final"]);
    assert.equal(b.calls.length, 0);
    assert.equal(err.last.info.headers?.["x-pilotfish-attempts"], "3");
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
  // Listed, but no call was made.
  assert.equal(err.attempts.length, 1);
  assert.equal(err.attempts[0].no_call, true);
  assert.equal(callsMade(err.attempts), 0);
});

Deno.test(
  "executeWithFailover(): a request refused before it left is no upstream call",
  SANITIZE,
  async () => {
    // A translation that cannot carry a field: no upstream was asked.
    const untranslatable: Step = () =>
      Promise.reject(new GatewayError("invalid_request", "cannot carry n", { param: "n" }));
    const a = scripted("a", [untranslatable]);
    const refusedRun = await run(setup(CONFIG, [a.adapter]), "a/x").catch((e) => e);
    assert.equal(refusedRun.attempts[0].no_call, true);
    assert.equal(callsMade(refusedRun.attempts), 0);
    // An upstream's own 400, a timeout and a refused connection each were a call.
    for (const step of [fail(400), timedOut, refused]) {
      const b = scripted("a", [step]);
      const answered = await run(setup(CONFIG, [b.adapter]), "a/x").catch((e) => e);
      assert.equal(answered.attempts[0].no_call, undefined);
      assert.equal(callsMade(answered.attempts), 1);
    }
  },
);

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
      new Uint8Array(
        (await Array.fromAsync(r.outcome.body as ReadableStream<Uint8Array>)).flatMap((
          c,
        ) => [...c]),
      ),
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
    const reader = (r.outcome.body as ReadableStream<Uint8Array>).getReader();
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

/** Fails with `status` after `ms`, unless aborted first. */
const slowFail = (ms: number, status: number): Step => (call) =>
  new Promise((_, reject) => {
    const t = setTimeout(() => fail(status)(call).catch(reject), ms);
    call.signal.addEventListener("abort", () => {
      clearTimeout(t);
      reject(new GatewayError("upstream_unreachable", "aborted"));
    }, { once: true });
  });

Deno.test(
  "hedging keeps the first candidate's retries, and every retry is hedged",
  SANITIZE,
  async (t) => {
    const yaml = CONFIG.replace(
      "m: { providers: [a, b] }",
      "m: { providers: [a, b], hedge_after: 30ms }",
    );
    await t.step("both sides of a hedge fail: the first candidate is retried", async () => {
      const a = scripted("a", [slowFail(60, 503), ok("a again")]);
      const b = scripted("b", [slowFail(40, 503), slow(2_000, "b late")]);
      const r = await run(setup(yaml, [a.adapter, b.adapter]));
      assert.equal(r.target.provider, "a");
      // The retry answered before hedge_after: no hedge this time.
      assert.deepEqual(outcomes(r.attempts), ["a:retry", "b:retry", "a:ok"]);
    });
    await t.step("a fast failure's retry is hedged after hedge_after", async () => {
      const a = scripted("a", [fail(503), slow(2_000, "a hangs")]);
      const b = scripted("b", [slow(10, "b")]);
      const started = performance.now();
      const r = await run(setup(yaml, [a.adapter, b.adapter]));
      assert.equal(r.target.provider, "b");
      assert.ok(performance.now() - started < 1_000, "not held by the hanging retry");
      assert.deepEqual(outcomes(r.attempts), ["a:retry", "a:cancelled", "b:ok"]);
    });
    await t.step("a hedge that failed on its own is a failure, not a lost race", async () => {
      const a = scripted("a", [slow(120, "a")]);
      const b = scripted("b", [fail(503)]);
      const r = await run(setup(yaml, [a.adapter, b.adapter]));
      assert.equal(r.target.provider, "a");
      const bRecord = r.attempts.find((x) => x.provider === "b");
      assert.equal(bRecord?.outcome, "next");
      assert.equal(bRecord?.reason, "HTTP 503");
    });
    await t.step(
      "a hedge side refused with 429 rests its key, as any attempt's would",
      async () => {
        const a = scripted("a", [slow(120, "a")]);
        const b = scripted("b", [fail(429, { "retry-after": "30" })]);
        const env = setup(yaml, [a.adapter, b.adapter]);
        const r = await run(env);
        assert.equal(r.target.provider, "a");
        assert.equal(env.deps.state.keyCooldown("b-1", Date.now())?.reason, "rate_limit");
      },
    );
  },
);

Deno.test(
  "an attempt the deadline ended the request after is final, not moved on",
  SANITIZE,
  async () => {
    const a = scripted("a", [slowFail(80, 503)]);
    const b = scripted("b", [ok()]);
    const yaml = CONFIG.replace("max_retries: 3", "max_retries: 0");
    const env = setup(yaml, [a.adapter, b.adapter]);
    const r = await runFailover(env.deps, {
      requested: "m",
      ...resolveModel(env.config, "m"),
      invoke: (adapter, attempt, m) =>
        adapter.chat({ ...attempt, body: { model: m, messages: [] }, stream: false }, m),
      signal: new AbortController().signal,
      clientAuthorization: null,
      deadlineMs: 50,
    });
    assert.equal(r.ok, false);
    assert.equal(b.calls.length, 0);
    assert.deepEqual(r.attempts.map((x) => `${x.provider}:${x.outcome}`), ["a:final"]);
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

/** One provider, llm-proxy's breaker on; `failover` and `cb` lines are spliced in. */
const breakerConfig = (failover: string, cb = "") => `
providers:
  a: { base_url: "http://a.test/v1", keys: [{ key: ka1, id: a-1 }] }
  b: { base_url: "http://b.test/v1", keys: [{ key: kb1, id: b-1 }] }
routing:
  models:
    m: { providers: [a, b] }
  failover:
    ${failover}
    backoff: { initial: 1ms, max: 2ms }
features:
  circuit_breaker:
    enabled: true
    failure_threshold: 50
    test_mode_enabled: true
${cb}`;

Deno.test(
  "executeWithFailover() breaker retries a transient failure with failover disabled",
  SANITIZE,
  async () => {
    const a = scripted("a", [fail(503), ok("recovered")]);
    const r = await run(setup(breakerConfig("enabled: false"), [a.adapter]), "a/x");
    assert.deepEqual(outcomes(r.attempts), ["a:retry", "a:ok"]);
    // max_transient_retries (default 2) bounds it: three 503s end in the degraded signal.
    const down = scripted("a", [fail(503)]);
    const err = await run(setup(breakerConfig("enabled: false"), [down.adapter]), "a/x")
      .catch((e) => e);
    assert.ok(err instanceof FailoverExhausted);
    assert.deepEqual(outcomes(err.attempts), ["a:retry", "a:retry", "a:final"]);
    assert.equal(err.last.code, "provider_degraded");
    assert.equal(err.last.status, 503);
    assert.equal(err.last.info.headers?.["x-llm-proxy-error-class"], "provider_degraded");
    assert.equal(err.last.info.headers?.["x-pilotfish-provider"], "a");
    assert.equal(err.last.info.headers?.["x-pilotfish-model"], "x");
    assert.equal(err.last.info.headers?.["x-pilotfish-attempts"], "3");
  },
);

Deno.test(
  "executeWithFailover() breaker rate-limit retries honour Retry-After with failover disabled",
  SANITIZE,
  async () => {
    const a = scripted("a", [fail(429, { "retry-after": "1" }), ok()]);
    const env = setup(
      breakerConfig("enabled: false", "    max_rate_limit_retries: 1\n"),
      [a.adapter],
    );
    const started = performance.now();
    const r = await run(env, "a/x");
    const waited = performance.now() - started;
    assert.deepEqual(outcomes(r.attempts), ["a:retry", "a:ok"]);
    assert.ok(waited >= 950 && waited < 2_000, `waited ${waited} ms`);
    // The budget is the breaker's: once spent, the 429 itself goes back (never degraded).
    const limited = scripted("a", [fail(429, { "retry-after": "0" })]);
    const err = await run(
      setup(breakerConfig("enabled: false", "    max_rate_limit_retries: 1\n"), [
        limited.adapter,
      ]),
      "a/x",
    ).catch((e) => e);
    assert.deepEqual(outcomes(err.attempts), ["a:retry", "a:final"]);
    assert.equal(err.last.status, 429);
  },
);

Deno.test(
  "executeWithFailover() with the breaker on, its budgets replace max_retries per class",
  SANITIZE,
  async () => {
    // Failover on: a's 503 gets max_transient_retries (1), then b is tried.
    const a = scripted("a", [fail(503)]);
    const b = scripted("b", [ok("b")]);
    const env = setup(
      breakerConfig("max_retries: 3", "    max_transient_retries: 1\n"),
      [a.adapter, b.adapter],
    );
    const r = await run(env);
    assert.deepEqual(outcomes(r.attempts), ["a:retry", "a:next", "b:ok"]);
    // max_transient_retries: 0 means no retry of a degraded failure, failover or not.
    const once = scripted("a", [fail(503), ok()]);
    const err = await run(
      setup(breakerConfig("enabled: false", "    max_transient_retries: 0\n"), [once.adapter]),
      "a/x",
    ).catch((e) => e);
    assert.deepEqual(outcomes(err.attempts), ["a:final"]);
    assert.equal(err.last.code, "provider_degraded");
  },
);

Deno.test(
  "executeWithFailover() breaker: a refused connection moves on at once, or is retried alone",
  SANITIZE,
  async () => {
    const a = scripted("a", [refused]);
    const b = scripted("b", [ok()]);
    const r = await run(setup(breakerConfig("max_retries: 2"), [a.adapter, b.adapter]));
    assert.deepEqual(outcomes(r.attempts), ["a:next", "b:ok"]);
    // Nowhere else to go: llm-proxy's transient retries apply to a connection failure too.
    const alone = scripted("a", [refused, ok()]);
    const r2 = await run(setup(breakerConfig("enabled: false"), [alone.adapter]), "a/x");
    assert.deepEqual(outcomes(r2.attempts), ["a:retry", "a:ok"]);
  },
);

Deno.test(
  "executeWithFailover() force_transient_recover retries once even with no retry budget",
  SANITIZE,
  async () => {
    const a = scripted("a", [ok("real")]);
    const env = setup(
      breakerConfig("enabled: false", "    max_transient_retries: 0\n"),
      [a.adapter],
    );
    const r = await run(env, "a/x", { testMode: "force_transient_recover" });
    assert.deepEqual(outcomes(r.attempts), ["a:retry", "a:ok"]);
    assert.equal(a.calls.length, 1, "the simulated failure never reached the provider");
    // A real failure on the retry is then judged normally: no budget, so it is final.
    const down = scripted("a", [fail(503)]);
    const err = await run(
      setup(breakerConfig("enabled: false", "    max_transient_retries: 0\n"), [down.adapter]),
      "a/x",
      { testMode: "force_transient_recover" },
    ).catch((e) => e);
    assert.deepEqual(outcomes(err.attempts), ["a:retry", "a:final"]);
    assert.equal(err.last.code, "provider_degraded");
  },
);

Deno.test(
  "executeWithFailover() force_degraded names the routed provider in headers, no attempt",
  SANITIZE,
  async () => {
    const a = scripted("a", [ok()]);
    const err = await run(setup(breakerConfig("enabled: true"), [a.adapter]), "a/x", {
      testMode: "force_degraded",
    }).catch((e) => e);
    assert.ok(err instanceof FailoverExhausted);
    assert.equal(err.last.code, "provider_degraded");
    assert.equal(err.last.info.headers?.["x-pilotfish-provider"], "a");
    assert.equal(err.last.info.headers?.["x-pilotfish-attempts"], "0");
    assert.equal(a.calls.length, 0);
  },
);

Deno.test(
  "executeWithFailover() a client that left is not retried and does not count against the provider",
  SANITIZE,
  async () => {
    const client = new AbortController();
    const a = scripted("a", [() => {
      client.abort();
      return Promise.reject(
        new GatewayError("upstream_timeout", "Client closed the request", { status: 499 }),
      );
    }]);
    const yaml = breakerConfig("max_retries: 3").replace(
      "failure_threshold: 50",
      "failure_threshold: 1",
    );
    const env = setup(yaml, [a.adapter]);
    const err = await run(env, "a/x", { signal: client.signal }).catch((e) => e);
    assert.ok(err instanceof FailoverExhausted);
    assert.deepEqual(outcomes(err.attempts), ["a:final"]);
    assert.equal(err.attempts[0]?.reason, "client_abort");
    assert.notEqual(err.last.code, "provider_degraded");
    await new Promise((r) => setTimeout(r, 0)); // breaker writes settle in the background
    const key = env.deps.breaker!.key("a", "x");
    assert.equal(env.deps.breaker!.available("a", key, Date.now()), true, "still closed");
  },
);

Deno.test(
  "executeWithFailover() a client that leaves a stream before its content: the attempt keeps the upstream's 200",
  SANITIZE,
  async () => {
    const client = new AbortController();
    let reads = 0;
    const a = scripted("a", [() =>
      Promise.resolve({
        kind: "stream",
        status: 200,
        format: "openai_sse",
        usage: noUsage(),
        body: new ReadableStream<Uint8Array>({
          pull(c) {
            // A role-only chunk (no content yet), then the client leaves while it waits.
            if (reads++ === 0) {
              c.enqueue(enc.encode(
                'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n',
              ));
            } else client.abort();
          },
        }),
      })]);
    const env = setup(CONFIG, [a.adapter]);
    const err = await run(env, "a/x", { stream: true, signal: client.signal }).catch((e) => e);
    assert.ok(err instanceof FailoverExhausted);
    assert.equal(err.attempts[0]?.reason, "client_abort");
    assert.equal(err.attempts[0]?.status, 200, "what the upstream sent, not a 502 of ours");
  },
);

Deno.test(
  "executeWithFailover() the client's own credential: no configured key chosen, cooled or required",
  SANITIZE,
  async () => {
    const yaml = `
providers:
  a:
    base_url: "http://a.test/v1"
    keys:
      - { key: k-mini, id: mini, models: [gpt-4o-mini] }
      - { key: k-big, id: big }
  b: { base_url: "http://b.test/v1", keys: [{ key: kb1, id: b-1, models: [gpt-4o] }] }
`;
    // 401, 403 and 429 on the client's credential: passed back, no configured key rests.
    for (const status of [401, 403, 429]) {
      const a = scripted("a", [fail(status, { "retry-after": "60" })]);
      const env = setup(yaml, [a.adapter]);
      const err = await run(env, "a/gpt-4o", {
        clientAuthorization: "Bearer sk-client",
        deadlineMs: 500,
      }).catch((e) => e);
      assert.ok(err instanceof FailoverExhausted, String(err));
      assert.equal(err.last.status, status);
      for (const call of a.calls) {
        assert.equal(call.apiKey, null, "no configured key is sent");
        assert.equal(call.clientAuthorization, "Bearer sk-client");
      }
      assert.equal(a.calls.length, 1, `${status}: no retry with a configured key`);
      assert.equal(err.attempts[0]?.key_id, null);
      for (const id of ["mini", "big"]) {
        assert.equal(env.deps.state.keyCooldown(id, Date.now()), null, `${status} cooled ${id}`);
      }
    }
    // No configured key admits "o1", yet the client's own credential may use it.
    const b = scripted("b", [ok()]);
    const r = await run(setup(yaml, [b.adapter]), "b/o1", {
      clientAuthorization: "Bearer sk-client",
    });
    assert.equal(r.attempts[0]?.outcome, "ok");
    assert.equal(b.calls[0]?.clientAuthorization, "Bearer sk-client");
    // Without it, the allowlist still applies: 404 naming the provider and model.
    const err = await run(setup(yaml, [b.adapter]), "b/o1").catch((e) => e);
    assert.equal(err.last.code, "not_found");
    assert.match(err.last.message, /No key of provider "b" is allowed to use model "o1"/);
  },
);

Deno.test(
  "executeWithFailover() fallbackAuthorization reaches only providers without configured keys",
  SANITIZE,
  async () => {
    const yaml = `
providers:
  keyed: { base_url: "http://k.test/v1", keys: [{ key: k-own, id: own }] }
  keyless: { base_url: "http://n.test/v1" }
  relay: { base_url: "http://r.test/v1", keys: [{ key: k-r }], credential_mode: passthrough }
`;
    const keyed = scripted("keyed", [ok()]);
    const keyless = scripted("keyless", [ok()]);
    const relay = scripted("relay", [ok()]);
    const env = setup(yaml, [keyed.adapter, keyless.adapter, relay.adapter]);
    for (const model of ["keyed/x", "keyless/x", "relay/x"]) {
      await run(env, model, { fallbackAuthorization: "Bearer sk-client" });
    }
    assert.equal(keyed.calls[0]?.apiKey, "k-own");
    assert.equal(keyed.calls[0]?.clientAuthorization, null, "never forwarded beside a key");
    assert.equal(keyless.calls[0]?.apiKey, null);
    assert.equal(keyless.calls[0]?.clientAuthorization, "Bearer sk-client");
    assert.equal(relay.calls[0]?.apiKey, null);
    assert.equal(relay.calls[0]?.clientAuthorization, "Bearer sk-client");
    // A passthrough provider's client that sent no credential (or only its pf_ app key, which
    // is never one) gets a configured key, as on the native routes: not an unauthenticated call.
    await run(env, "relay/x");
    assert.equal(relay.calls[1]?.apiKey, "k-r");
    assert.equal(relay.calls[1]?.clientAuthorization, null);
  },
);

Deno.test(
  "executeWithFailover() keys written as unset env vars: the client's credential is not sent in their place",
  SANITIZE,
  async () => {
    const yaml = `
providers:
  unset: { base_url: "http://u.test/v1", keys: [{ key: "" }] }
routing:
  default_provider: unset
`;
    const unset = scripted("unset", [ok()]);
    const env = setup(yaml, [unset.adapter]);
    assert.equal(env.deps.config.providers.unset?.keys_unset, true);
    await run(env, "x", { fallbackAuthorization: "Bearer sk-client" }).catch(() => {});
    for (const call of unset.calls) {
      assert.equal(call.clientAuthorization, null);
      assert.equal(call.apiKey, null);
    }
  },
);

Deno.test(
  "failover: the client's credential goes only to providers on the origin of the first that takes it",
  async () => {
    const yaml = `
providers:
  home: { base_url: "http://api.one.test/v1", credential_mode: passthrough }
  region: { base_url: "http://api.one.test/eu/v1", credential_mode: passthrough }
  other: { base_url: "http://api.two.test/v1", keys: [{ key: k-two }], credential_mode: passthrough }
  open: { base_url: "http://local.test/v1" }
routing:
  models:
    m: { providers: [home, region, other, open] }
  failover:
    backoff: { initial: 1ms, max: 1ms }
    max_retries: 0
`;
    const home = scripted("home", [fail(503)]);
    const region = scripted("region", [fail(503)]);
    const other = scripted("other", [fail(503)]);
    const open = scripted("open", [ok()]);
    const env = setup(yaml, [home.adapter, region.adapter, other.adapter, open.adapter]);
    await run(env, "m", { fallbackAuthorization: "Bearer sk-one-client" });
    assert.equal(home.calls[0]?.clientAuthorization, "Bearer sk-one-client");
    // The same service's other base path: the same host, the same credential.
    assert.equal(region.calls[0]?.clientAuthorization, "Bearer sk-one-client");
    // Another vendor's host: its own key, as for a client that sent none.
    assert.equal(other.calls[0]?.clientAuthorization, null);
    assert.equal(other.calls[0]?.apiKey, "k-two");
    // A keyless one elsewhere (a local model server): called without a credential.
    assert.equal(open.calls[0]?.clientAuthorization, null);
    assert.equal(open.calls[0]?.apiKey, null);
  },
);

Deno.test("routing.failover config: Butter's keys, max_attempts, the deprecated alias", () => {
  const load = (failover: string) =>
    parseConfigText(`routing:\n  failover:\n${failover}`, () => undefined, "f.yaml");
  let loaded = load("    enabled: true\n");
  assert.equal(loaded.config.routing.failover.max_retries, 2, "per-provider default");
  assert.equal(loaded.config.routing.failover.max_attempts, 0, "no total cap by default");
  assert.deepEqual(loaded.warnings, []);
  loaded = load("    retries_per_provider: 4\n");
  assert.equal(loaded.config.routing.failover.max_retries, 4);
  assert.equal(
    "retries_per_provider" in loaded.config.routing.failover,
    false,
    "one key in the loaded config",
  );
  assert.deepEqual(loaded.warnings, [
    "routing.failover.retries_per_provider: Deprecated, read as max_retries (retries per provider)",
  ]);
  loaded = load("    max_retries: 1\n    retries_per_provider: 4\n");
  assert.equal(loaded.config.routing.failover.max_retries, 1, "max_retries wins");
  assert.match(loaded.warnings[0] ?? "", /retries_per_provider: Deprecated and ignored/);
  for (
    const [bad, path] of [
      ["    max_attempts: -1\n", "routing.failover.max_attempts"],
      ["    max_retries: lots\n", "routing.failover.max_retries"],
      ["    retries_per_provider: 1.5\n", "routing.failover.retries_per_provider"],
    ]
  ) {
    assert.throws(
      () => load(bad!),
      (e: Error & { problems?: string[] }) =>
        (e.problems ?? []).some((p) => p.startsWith(`${path}: `)),
      bad,
    );
  }
});

Deno.test(
  "runFailover() keeps each attempt's own usage: a hedge loser that answered has its own",
  SANITIZE,
  async () => {
    const yaml = CONFIG.replace(
      "m: { providers: [a, b] }",
      "m: { providers: [a, b], hedge_after: 1ms }",
    );
    const usage = (n: number) => ({ prompt_tokens: n, completion_tokens: n, total_tokens: 2 * n });
    const bCalled = Promise.withResolvers<void>();
    // a answers only once b was asked, and ignores losing (an upstream that had finished).
    const a = scripted("a", [async () => {
      await bCalled.promise;
      return {
        kind: "json",
        status: 200,
        format: "object",
        body: {},
        usage: Promise.resolve(usage(100)),
      };
    }]);
    const b = scripted("b", [() => {
      bCalled.resolve();
      return Promise.resolve({
        kind: "json",
        status: 200,
        format: "object",
        body: {},
        usage: Promise.resolve(usage(1)),
      });
    }]);
    const env = setup(yaml, [a.adapter, b.adapter]);
    const { targets, route } = resolveModel(env.config, "m");
    const r = await runFailover(env.deps, {
      requested: "m",
      targets,
      route,
      invoke: (adapter, attempt, m) =>
        adapter.chat({ ...attempt, body: { model: m, messages: [] }, stream: false }, m),
      signal: new AbortController().signal,
      clientAuthorization: null,
      deadlineMs: 10_000,
    });
    assert.ok(r.ok, "a discriminated result, not a throw");
    const byProvider = Object.fromEntries(r.attempts.map((x) => [x.provider, x]));
    assert.deepEqual(await byProvider.a?.usage, usage(100));
    assert.deepEqual(await byProvider.b?.usage, usage(1));
    assert.deepEqual(await r.outcome.usage, await byProvider[r.target.provider]?.usage);
  },
);

Deno.test(
  "runFailover() answers a failure as data, with the error to render",
  SANITIZE,
  async () => {
    const env = setup(CONFIG, [scripted("a", [fail(400)]).adapter]);
    const { targets, route } = resolveModel(env.config, "a/x");
    const r = await runFailover(env.deps, {
      requested: "a/x",
      targets,
      route,
      invoke: (adapter, attempt, m) =>
        adapter.chat({ ...attempt, body: { model: m, messages: [] }, stream: false }, m),
      signal: new AbortController().signal,
      clientAuthorization: null,
      deadlineMs: 10_000,
    });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.error.status, 400);
    assert.equal(r.error.info.headers?.["x-pilotfish-attempts"], "1");
    assert.equal(r.target?.provider, "a");
  },
);

/**
 * A client that leaves while the gateway waits to retry `status`: no retry, no error of the
 * gateway's own; logged as a 499 client_abort at info, the attempt keeping its status.
 */
async function leavesDuringBackoff(extraConfig: string, status: number, headers = {}) {
  const upstream = startFakeUpstream();
  const gw = startGateway(`
providers:
  up: { base_url: "${upstream.url}/v1", keys: [{ key: sk-up-0001 }] }
routing:
  failover: { max_retries: 2, retry_on: [429, 503], backoff: { initial: 10s, max: 10s } }
${extraConfig}`);
  try {
    upstream.script({ kind: "json", status, headers, body: { error: { message: "not now" } } });
    const client = new AbortController();
    const pending = gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "up/gpt-4o-mini",
        messages: [{ role: "user", content: "hi" }],
      }),
      signal: client.signal,
    });
    // Left once the gateway is waiting to retry.
    const waiting = Promise.withResolvers<void>();
    gw.runtime.events.subscribe(() => waiting.resolve(), ["retry"]);
    await waiting.promise;
    client.abort();
    const res = await pending;
    // nginx's "client closed request": not a 500 of the gateway's own, nor what it left during.
    assert.equal(res.status, 499);
    await res.body?.cancel();
    assert.equal(upstream.requests.length, 1, "no retry for a client that left");
    const lines = gw.logs.map((l) => JSON.parse(l));
    assert.ok(!lines.some((l) => l.msg === "unhandled error"), gw.logText());
    const line = lines.find((l) => l.msg === "request");
    assert.equal(line?.outcome, "client_abort");
    assert.equal(line?.status, 499);
    assert.equal(line?.level, "info");
    assert.equal(line?.attempts?.[0]?.outcome, "retry");
    assert.equal(line?.attempts?.[0]?.status, status);
  } finally {
    await gw.close();
    await upstream.close();
  }
}

Deno.test("a client that leaves during a retry's backoff: no retry, no error of the gateway's own, logged as client_abort", async (t) => {
  await t.step(
    "a 429 with Retry-After",
    () => leavesDuringBackoff("", 429, { "retry-after": "5" }),
  );
  // The degraded signal would otherwise answer for the 503.
  await t.step("a 503 with the breaker on", () =>
    leavesDuringBackoff(
      "features:\n  circuit_breaker: { enabled: true, failure_threshold: 10, max_transient_retries: 2 }\n",
      503,
    ));
});

Deno.test(
  "executeWithFailover(): a target the open breaker held back is listed as skipped when another answered",
  SANITIZE,
  async () => {
    // a fails until its breaker opens (failure_threshold 2), then b answers without a being tried.
    const yaml = breakerConfig("max_retries: 0").replace(
      "failure_threshold: 50",
      "failure_threshold: 2",
    );
    const a = scripted("a", [fail(500)]);
    const b = scripted("b", [ok("from b")]);
    const env = setup(yaml, [a.adapter, b.adapter]);
    for (let i = 0; i < 3; i++) await run(env).catch(() => {});
    const tried = a.calls.length;
    const r = await run(env);
    assert.equal(a.calls.length, tried, "a was not called");
    const skippedA = r.attempts.find((x) => x.outcome === "skipped");
    assert.equal(skippedA?.provider, "a");
    assert.equal(skippedA?.reason, "circuit_open");
    assert.equal(skippedA?.no_call, true);
    assert.equal(callsMade(r.attempts), 1, "one call: b's");
  },
);

Deno.test("a client's own x-gateway timeouts cut its call but never count against the provider's breaker", async (t) => {
  const upstream = startFakeUpstream();
  const gw = startGateway(`
providers:
  up: { base_url: "${upstream.url}/v1", keys: [{ key: sk-up-0001 }] }
features:
  circuit_breaker: { enabled: true, failure_threshold: 2, max_transient_retries: 0 }
`);
  const ask = (extra: Record<string, unknown>) =>
    gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "up/gpt-4o-mini",
        messages: [{ role: "user", content: "hi" }],
        ...extra,
      }),
    });
  try {
    await t.step("x-gateway.timeout shorter than the answer: 504, twice", async () => {
      for (let i = 0; i < 2; i++) {
        upstream.script({ kind: "json", delayMs: 300 });
        const res = await ask({ "x-gateway": { timeout: 0.05 } });
        assert.equal(res.status, 504);
        assert.equal(res.headers.get("x-llm-proxy-error-class"), null);
        await res.body?.cancel();
      }
    });
    await t.step("x-gateway.first_chunk_timeout shorter than the first chunk: twice", async () => {
      for (let i = 0; i < 2; i++) {
        upstream.script({ kind: "stream", chunks: ["late"], delayMs: 300 });
        const res = await ask({ stream: true, "x-gateway": { first_chunk_timeout: 0.05 } });
        assert.notEqual(res.headers.get("x-llm-proxy-error-class"), "provider_degraded");
        await res.body?.cancel();
      }
    });
    await t.step("the provider is healthy for everyone else", async () => {
      upstream.script({ kind: "json" });
      const res = await ask({});
      assert.equal(res.status, 200);
      await res.body?.cancel();
    });
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("a target the unified API cannot call is passed over: the chain goes on, and an outage is not answered as its 400", async (t) => {
  const upstream = startFakeUpstream();
  const gw = startGateway(`
providers:
  up: { base_url: "${upstream.url}/v1", keys: [{ key: sk-up-0001 }] }
  unsigned: { type: bedrock, region: us-east-1 }
routing:
  failover: { max_retries: 0 }
  models:
    outage-then-unsigned: { providers: [up, unsigned], model: gpt-4o-mini }
    unsigned-then-up: { providers: [unsigned, up], model: gpt-4o-mini }
`);
  const ask = (model: string) =>
    gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
    });
  try {
    await t.step("the chain ends on it: the provider's 503 is the answer", async () => {
      upstream.script({ kind: "json", status: 503, body: { error: { message: "overloaded" } } });
      const res = await ask("outage-then-unsigned");
      assert.equal(res.status, 503);
      assert.match((await res.json()).error.message, /overloaded/);
    });
    await t.step("the chain starts on it: the next target answers", async () => {
      upstream.script({ kind: "json" });
      const res = await ask("unsigned-then-up");
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-pilotfish-provider"), "up");
      await res.body?.cancel();
    });
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("a stream that ends cleanly after its opening events only fails over (nothing reached the client)", async () => {
  const first = startFakeUpstream();
  const second = startFakeUpstream();
  const role = `data: ${
    JSON.stringify({
      id: "c",
      object: "chat.completion.chunk",
      choices: [{ index: 0, delta: { role: "assistant", content: "" } }],
    })
  }\n\n`;
  first.script({ kind: "sse", events: [role] });
  second.script({ kind: "stream" });
  const gw = startGateway(`
providers:
  first: { base_url: "${first.url}/v1", keys: [{ key: sk-first-0001 }] }
  second: { base_url: "${second.url}/v1", keys: [{ key: sk-second-0001 }] }
routing:
  models:
    m: { providers: [first, second] }
  failover: { max_retries: 0, backoff: { initial: 1ms, max: 1ms } }
`);
  try {
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "m",
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-pilotfish-provider"), "second");
    assert.equal(res.headers.get("x-pilotfish-attempts"), "2");
    assert.match(await res.text(), /data: \[DONE\]/);
  } finally {
    await gw.close();
    await first.close();
    await second.close();
  }
});
