import { createRedactor } from "../../src/telemetry/redact.ts";
import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import {
  breakerTiming,
  createBreaker,
  createMemoryBreakerStore,
  normaliseReason,
  readRequestFlags,
} from "../../src/breaker/mod.ts";

function setup(extra = "") {
  const { config } = parseConfigText(
    `
features:
  circuit_breaker:
    enabled: true
    failure_threshold: 3
    window_seconds: 60
    cooldown_seconds: 30
    per_provider_rollup_threshold: 2
    per_provider_rollup_window_seconds: 300
${extra}`,
    () => undefined,
    "cb.yaml",
  );
  const cb = config.features.circuit_breaker;
  const store = createMemoryBreakerStore(breakerTiming(cb));
  const breaker = createBreaker(cb, store, () => {});
  return { breaker, store, cb };
}

/** The breaker writes in the background; let those promises settle. */
const settle = () => new Promise((r) => setTimeout(r, 0));
const fail = { probe: false, bypass: null, counts: true };

Deno.test("breaker: threshold failures in the window open the key; open fast-fails", async () => {
  const { breaker } = setup();
  const t0 = 1_000_000;
  const key = breaker.key("openai", "gpt-4o");
  assert.equal(key, "openai:gpt-4o");
  assert.equal(
    breaker.key("openai", undefined),
    "openai",
    "bare provider when the model is unknown",
  );
  for (let i = 0; i < 2; i++) breaker.record("openai", key, "provider_degraded", fail, t0 + i);
  await settle();
  assert.deepEqual(breaker.admit("openai", key, t0 + 10), { kind: "allow" });
  breaker.record("openai", key, "provider_degraded", fail, t0 + 20);
  await settle();
  assert.deepEqual(breaker.admit("openai", key, t0 + 30), { kind: "reject", reason: "open" });
  assert.equal(breaker.available("openai", key, t0 + 30), false);
  // llm-proxy's provider view folds its keys: the worst state, failures summed.
  assert.equal(breaker.health("openai", t0 + 30).state, "open");
  assert.equal(breaker.health("openai", t0 + 30).failures, 3);
  assert.equal(
    breaker.health("openai", t0 + 30).cooldown_until,
    Math.floor((t0 + 20 + 30_000) / 1000),
  );
  assert.deepEqual(breaker.health("openai", t0 + 30).keys, {
    "openai:gpt-4o": {
      state: "open",
      failures: 3,
      cooldown_until: Math.floor((t0 + 20 + 30_000) / 1000),
    },
  });
  // Rate limits and client errors never count.
  const other = breaker.key("openai", "o1");
  for (let i = 0; i < 5; i++) {
    breaker.record("openai", other, "localized_rate_limit", fail, t0);
    breaker.record("openai", other, "client_error", fail, t0);
  }
  await settle();
  assert.deepEqual(breaker.admit("openai", other, t0), { kind: "allow" });
  // Failures outside the window do not add up.
  const slow = breaker.key("openai", "slow");
  for (let i = 0; i < 3; i++) {
    breaker.record("openai", slow, "provider_degraded", fail, t0 + i * 61_000);
  }
  await settle();
  assert.deepEqual(breaker.admit("openai", slow, t0 + 130_000), { kind: "allow" });
});

Deno.test("breaker: one half-open probe; success closes, failure re-opens", async () => {
  const { breaker } = setup();
  const t0 = 2_000_000;
  const key = "anthropic:claude";
  for (let i = 0; i < 3; i++) breaker.record("anthropic", key, "provider_degraded", fail, t0);
  await settle();
  const after = t0 + 30_001;
  assert.equal(breaker.health("anthropic", after).keys?.["anthropic:claude"]?.state, "half_open");
  const [a, b] = await Promise.all([
    breaker.admit("anthropic", key, after),
    breaker.admit("anthropic", key, after),
  ]);
  assert.deepEqual([a, b].map((d) => d.kind).sort(), ["probe", "reject"], "exactly one probe");
  breaker.record(
    "anthropic",
    key,
    "provider_degraded",
    { probe: true, bypass: null, counts: true },
    after,
  );
  await settle();
  assert.deepEqual(breaker.admit("anthropic", key, after + 1), { kind: "reject", reason: "open" });
  const later = after + 30_001;
  assert.equal((await breaker.admit("anthropic", key, later)).kind, "probe");
  breaker.record("anthropic", key, "success", { probe: true, bypass: null, counts: true }, later);
  await settle();
  assert.deepEqual(breaker.admit("anthropic", key, later + 1), { kind: "allow" });
  assert.equal(breaker.health("anthropic", later + 1).state, "closed");
  assert.equal(breaker.health("anthropic", later + 1).keys, undefined, "no key left open");
  assert.equal(breaker.counters.probes.get("anthropic|claude|failed"), 1);
  assert.equal(breaker.counters.probes.get("anthropic|claude|succeeded"), 1);
});

Deno.test("breaker: per-model isolation until the per-provider rollup trips, then recovery", async () => {
  const { breaker } = setup();
  const t0 = 3_000_000;
  for (let i = 0; i < 3; i++) breaker.record("gemini", "gemini:pro", "provider_degraded", fail, t0);
  await settle();
  assert.deepEqual(
    breaker.admit("gemini", "gemini:flash", t0),
    { kind: "allow" },
    "sibling unaffected",
  );
  for (let i = 0; i < 3; i++) {
    breaker.record("gemini", "gemini:flash", "provider_degraded", fail, t0);
  }
  await settle();
  // Two distinct open keys ≥ threshold 2: the whole provider fast-fails, even closed keys.
  assert.deepEqual(breaker.admit("gemini", "gemini:lite", t0 + 1), {
    kind: "reject",
    reason: "rollup",
  });
  const h = breaker.health("gemini", t0 + 1);
  assert.equal(h.rollup?.open, true);
  assert.equal(h.rollup?.count, 2);
  assert.deepEqual(h.rollup?.open_keys.sort(), ["gemini:flash", "gemini:pro"]);
  // A provider with nothing open still lists its open keys: none.
  assert.deepEqual(breaker.health("other", t0 + 1).rollup?.open_keys, []);
  // A successful probe drops its key from the rollup; the provider recovers.
  const after = t0 + 30_001;
  assert.equal(
    (await breaker.admit("gemini", "gemini:pro", after)).kind,
    "probe",
    "probes run under a rollup",
  );
  breaker.record(
    "gemini",
    "gemini:pro",
    "success",
    { probe: true, bypass: null, counts: true },
    after,
  );
  await settle();
  assert.deepEqual(breaker.admit("gemini", "gemini:lite", after + 1), { kind: "allow" });
});

Deno.test("breaker: bypass still feeds failures but never closes; log mode only observes", async () => {
  const { breaker } = setup();
  const t0 = 4_000_000;
  const key = "openai:gpt-4o";
  const bypass = { probe: false, bypass: "manual_debug", counts: true };
  for (let i = 0; i < 3; i++) breaker.record("openai", key, "provider_degraded", bypass, t0);
  await settle();
  assert.equal(
    (await breaker.admit("openai", key, t0)).kind,
    "reject",
    "bypass failures opened it",
  );
  breaker.record("openai", key, "success", bypass, t0 + 1);
  await settle();
  assert.equal(
    (await breaker.admit("openai", key, t0 + 2)).kind,
    "reject",
    "a bypass success does not close",
  );
  assert.equal(breaker.counters.bypasses.get("openai|gpt-4o|manual_debug|provider_degraded"), 3);

  const log = setup("    mode: log").breaker;
  for (let i = 0; i < 3; i++) log.record("openai", key, "provider_degraded", fail, t0);
  await settle();
  assert.deepEqual(log.admit("openai", key, t0), { kind: "allow" }, "log mode never rejects");
  assert.equal(log.health("openai", t0).keys?.[key]?.state, "open", "but it tracks the state");
  assert.equal(log.counters.fastFails.get("openai|gpt-4o|open"), 1, "and counts what it would do");
});

Deno.test("breaker: degraded signal is llm-proxy's exact message and header", () => {
  const { breaker } = setup();
  const err = breaker.degraded("openai");
  assert.equal(err.status, 503);
  assert.equal(
    err.message,
    "[LLM_PROXY_PROVIDER_DEGRADED] Provider openai is currently degraded or unavailable. Please try again later.",
  );
  assert.deepEqual(err.info.headers, { "x-llm-proxy-error-class": "provider_degraded" });
  const custom = setup('    degraded_signal: "[MY_COMPANY_UPSTREAM_DOWN]"').breaker.degraded(
    "gemini",
  );
  assert.match(
    custom.message,
    /^\[MY_COMPANY_UPSTREAM_DOWN\] Provider gemini is currently degraded/,
  );
});

Deno.test("breaker: sustained global rate limits escalate to degraded", () => {
  const { breaker } = setup("    global_rate_limit_escalation_window: 60");
  const key = "openai:gpt-4o";
  assert.equal(breaker.escalate(key, "global_rate_limit", 0), "global_rate_limit");
  assert.equal(breaker.escalate(key, "global_rate_limit", 30_000), "global_rate_limit");
  assert.equal(breaker.escalate(key, "global_rate_limit", 60_000), "provider_degraded");
  assert.equal(breaker.escalate(key, "success", 61_000), "success");
  assert.equal(
    breaker.escalate(key, "global_rate_limit", 62_000),
    "global_rate_limit",
    "reset by success",
  );
  // Not sustained: a burst a window after the last one starts a new run, it does not escalate.
  const other = "openai:gpt-4.1";
  assert.equal(breaker.escalate(other, "global_rate_limit", 0), "global_rate_limit");
  assert.equal(breaker.escalate(other, "global_rate_limit", 7_200_000), "global_rate_limit");
  assert.equal(breaker.escalate(other, "global_rate_limit", 7_230_000), "global_rate_limit");
  assert.equal(breaker.escalate(other, "global_rate_limit", 7_260_000), "provider_degraded");
});

Deno.test("readRequestFlags() reads bypass and test mode from headers or the query", () => {
  const { cb } = setup(
    "    test_mode_enabled: true\n    bypass_reason_allowlist: [no_fallback_configured, manual_debug]",
  );
  const h = (map: Record<string, string>) => (name: string) => map[name] ?? null;
  const q = (s = "") => new URLSearchParams(s);
  for (const v of ["1", "true", "YES", " yes "]) {
    assert.ok(readRequestFlags(h({ "x-llm-proxy-bypass-circuit": v }), q(), cb).bypass, v);
  }
  assert.equal(
    readRequestFlags(h({ "x-llm-proxy-bypass-circuit": "0" }), q(), cb).bypass,
    undefined,
  );
  assert.deepEqual(
    readRequestFlags(
      h({}),
      q("llm_proxy_bypass_circuit=1&llm_proxy_bypass_reason=manual_debug"),
      cb,
    ).bypass,
    { reason: "manual_debug" },
  );
  assert.equal(
    readRequestFlags(h({}), q("llm_proxy_test_mode=force_degraded"), cb).testMode,
    "force_degraded",
  );
  const off = setup("    bypass_allowed: false").cb;
  assert.equal(
    readRequestFlags(h({ "x-llm-proxy-bypass-circuit": "1" }), q(), off).bypass,
    undefined,
  );
  assert.equal(
    readRequestFlags(h({ "x-llm-proxy-test-mode": "force_degraded" }), q(), off).testMode,
    undefined,
  );
});

Deno.test("normaliseReason() bounds tag cardinality", () => {
  const { cb } = setup();
  assert.equal(normaliseReason("  ", cb), "unspecified");
  assert.equal(normaliseReason(undefined, cb), "unspecified");
  assert.equal(normaliseReason("Final Retry|Tier", cb), "final_retry_tier");
  assert.equal(normaliseReason("x".repeat(100), cb).length, 64);
  const allow = setup("    bypass_reason_allowlist: [no_fallback_configured]").cb;
  assert.equal(normaliseReason("no_fallback_configured", allow), "no_fallback_configured");
  assert.equal(normaliseReason("whatever", allow), "other");
  // A credential never becomes a label, even lower-cased: a configured key, an app key.
  const secret = createRedactor(["sk-gatewaysecretOPENAI1234567890"], { bearer: false }).holds;
  assert.equal(normaliseReason("sk-gatewaysecretOPENAI1234567890", cb, secret), "redacted");
  assert.equal(normaliseReason("pf_doi3lzqbealq-qtcpjbbm", allow, secret), "redacted");
  assert.equal(normaliseReason("manual_debug", cb, secret), "manual_debug");
  const headers: Record<string, string> = {
    "x-llm-proxy-bypass-circuit": "1",
    "x-llm-proxy-bypass-reason": "pf_doi3lzqbealq-qtcp",
  };
  const flags = readRequestFlags((n) => headers[n] ?? null, new URLSearchParams(), cb, secret);
  assert.equal(flags.bypass?.reason, "redacted");
});

Deno.test("breaker health: the provider folds its bare and model keys, as llm-proxy's ProviderStatsFor", async () => {
  const { breaker } = setup();
  const t0 = 3_000_000;
  for (let i = 0; i < 3; i++) breaker.record("openai", "openai", "provider_degraded", fail, t0);
  await settle();
  let h = breaker.health("openai", t0 + 1);
  assert.equal(h.state, "open");
  assert.equal(h.failures, 3);
  assert.equal(h.cooldown_until, Math.floor((t0 + 30_000) / 1000));
  assert.equal(h.keys, undefined, "the bare key is the provider's own state, not a model key");
  // One failure on a model key: summed in; the earliest open cooldown stays.
  breaker.record("openai", "openai:gpt-4o", "provider_degraded", fail, t0 + 5_000);
  await settle();
  h = breaker.health("openai", t0 + 5_001);
  assert.equal(h.state, "open");
  assert.equal(h.failures, 4);
  assert.equal(h.cooldown_until, Math.floor((t0 + 30_000) / 1000));
  assert.deepEqual(h.keys, { "openai:gpt-4o": { state: "closed", failures: 1 } });
  // The bare key half-open and a model key open: open is worse; its cooldown is the one left.
  for (let i = 0; i < 2; i++) {
    breaker.record("openai", "openai:gpt-4o", "provider_degraded", fail, t0 + 29_000);
  }
  await settle();
  h = breaker.health("openai", t0 + 30_001);
  assert.equal(h.state, "open");
  assert.equal(h.cooldown_until, Math.floor((t0 + 29_000 + 30_000) / 1000));
});
