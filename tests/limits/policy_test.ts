import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import {
  checkCache,
  checksFor,
  current,
  estimateTokens,
  fingerprint,
  fits,
  remainingOf,
  retryAfterMs,
  type Rule,
  rulesOf,
  take,
  userIdOf,
} from "../../src/limits/policy.ts";
import { admitLocal, CounterMap, createMemoryBackend } from "../../src/limits/memory.ts";

const rule = (over: Partial<Rule> = {}): Rule => ({
  id: "r",
  scope: "global",
  metric: "requests",
  algorithm: "window",
  limit: 3,
  windowMs: 60_000,
  windowName: "minute",
  failMode: "open",
  ...over,
});

const config = (yaml: string) => parseConfigText(yaml, () => undefined, "t.yaml").config;

Deno.test("fixed windows: count up to the limit, reset at the window's end", () => {
  const r = rule();
  let s = current(r, undefined, 61_000);
  assert.equal(s.at, 60_000);
  for (let i = 0; i < 3; i++) {
    assert.ok(fits(r, s, 1));
    s = take(r, s, 1);
  }
  assert.equal(fits(r, s, 1), false);
  assert.equal(remainingOf(r, s), 0);
  assert.equal(retryAfterMs(r, s, 1, 100_000), 20_000);
  assert.equal(current(r, s, 119_999).level, 3, "same window");
  assert.equal(current(r, s, 120_000).level, 0, "the next window starts empty");
});

Deno.test("day windows are UTC days", () => {
  const r = rule({ windowMs: 86_400_000, windowName: "day" });
  const noon = Date.UTC(2026, 10, 30, 12);
  const s = current(r, undefined, noon);
  assert.equal(s.at, Date.UTC(2026, 10, 30));
  assert.equal(retryAfterMs(r, s, 1, noon), 12 * 3_600_000);
});

Deno.test("token bucket: burst up to capacity, refill at limit per window", () => {
  const r = rule({ algorithm: "bucket", limit: 60 });
  let s = current(r, undefined, 0);
  for (let i = 0; i < 60; i++) s = take(r, s, 1);
  assert.equal(fits(r, current(r, s, 0), 1), false, "burst spent");
  assert.equal(retryAfterMs(r, current(r, s, 0), 1, 0), 1_000);
  assert.equal(Math.floor(current(r, s, 10_000).level), 10, "one per second");
  assert.equal(current(r, s, 600_000).level, 60, "never over capacity");
});

Deno.test("optimistic first token-bearing request of a window is admitted", () => {
  const r = rule({ metric: "tokens", limit: 10 });
  const empty = current(r, undefined, 0);
  assert.ok(fits(r, empty, 50));
  assert.equal(fits(r, take(r, empty, 50), 1), false);
});

Deno.test("estimation: message text over chars_per_token (per provider), else bytes", () => {
  const est = {
    max_sample_bytes: 100,
    bytes_per_token: 4,
    chars_per_token: 4,
    provider_chars_per_token: { anthropic: 2 },
  };
  const body = {
    model: "m",
    messages: [{ role: "user", content: [{ type: "text", text: "12345678" }] }],
    system: "1234",
  };
  assert.equal(estimateTokens(est, body, 50, "openai"), 3);
  assert.equal(estimateTokens(est, body, 50, "anthropic"), 6);
  assert.equal(estimateTokens(est, body, 400, "openai"), 100, "over max_sample_bytes: bytes");
  assert.equal(
    estimateTokens(est, { contents: [{ parts: [{ text: "abcd" }] }] }, 10, undefined),
    1,
  );
});

Deno.test("reconciliation both ways, only within the window taken in", () => {
  const counters = new CounterMap();
  const backend = createMemoryBackend(counters);
  const r = rule({ metric: "tokens", limit: 100 });
  const [check] = checksFor([r], { models: [] });
  const a = backend.admit([check!], [40], 1_000);
  assert.ok(!(a instanceof Promise) && a.ok);
  backend.adjust(a.states[0]!, 20, 2_000); // used 60
  assert.equal(backend.usage(2_000)[0]!.used, 60);
  backend.adjust(a.states[0]!, -50, 3_000); // used 10
  assert.equal(backend.usage(3_000)[0]!.used, 10);
  backend.adjust(a.states[0]!, 90, 61_000); // another window: ignored
  assert.equal(backend.usage(61_000).length, 1);
  assert.equal(backend.usage(61_000)[0]!.used, 0);
});

Deno.test("llm-proxy: overrides count a user, a model or a key on their own; the global limits still apply", () => {
  const rules = rulesOf(config(`
features:
  rate_limiting:
    enabled: true
    limits:
      requests_per_minute: 10
      tokens_per_day: 1000
      overrides:
        per_user:
          alice: { requests_per_minute: 2 }
    overrides:
      per_model:
        gpt-4o: { requests_per_minute: 1 }
      per_key:
        sk-client: { requests_per_minute: 3 }
        team-key-id: { tokens_per_day: 50 }
`));
  const alice = checksFor(rules, { user: "alice", models: [] }).map((c) =>
    `${c.rule.id} ${c.scope}`
  );
  assert.deepEqual(alice, [
    "proxy.rpm global",
    "proxy.tpd global",
    "proxy.user.alice.rpm user:alice",
  ]);
  const bob = checksFor(rules, { user: "bob", models: [] }).map((c) => c.rule.id);
  assert.deepEqual(bob, ["proxy.rpm", "proxy.tpd"]);
  const model = checksFor(rules, { models: ["gpt-4o"] }).map((c) => c.scope);
  assert.deepEqual(model, ["global", "global", "model:gpt-4o"]);
  // A raw credential is matched through its hash (the only form the key scope holds) and
  // never shown; an app key id is matched as is.
  const hashed = fingerprint("sk-client");
  const byCredential = checksFor(rules, { key: hashed, models: [] });
  assert.deepEqual(byCredential.map((c) => c.scope), ["global", "global", `key:${hashed}`]);
  assert.ok(byCredential.every((c) => !c.rule.id.includes("sk-client")));
  const byId = checksFor(rules, { key: "team-key-id", models: [] }).map((c) => c.scope);
  assert.deepEqual(byId, ["global", "global", "key:team-key-id"]);
});

Deno.test("several scopes apply; the tightest refuses, nothing is taken then", () => {
  const rules = rulesOf(config(`
rate_limit:
  enabled: true
  global: { requests: 5, window: 1m }
  per_model: { m: { requests: 1, window: 1m } }
  per_provider: { p: { requests: 3, window: 10s } }
`));
  const checks = checksFor(rules, { models: ["m"], provider: "p" });
  assert.deepEqual(checks.map((c) => c.scope), ["global", "model:m", "provider:p"]);
  const counters = new CounterMap();
  assert.ok(admitLocal(counters, checks, [1, 1, 1], 0).ok);
  const refused = admitLocal(counters, checks, [1, 1, 1], 1);
  assert.equal(refused.ok, false);
  assert.equal(refused.blocked?.check.scope, "model:m");
  assert.equal(counters.get(checks[0]!, 2).level, 1, "the refused request took nothing");
});

Deno.test("user id in llm-proxy's order: header, body, metadata, query, credential, IP", () => {
  const h = (init: Record<string, string>) => new Headers(init);
  const q = (s: string) => new URLSearchParams(s);
  assert.equal(userIdOf(h({ "x-user-id": "a" }), { user: "b" }, q("llm_user_id=c"), "ip"), "a");
  assert.equal(userIdOf(h({}), { user: "b" }, q("llm_user_id=c"), "ip"), "b");
  assert.equal(userIdOf(h({}), { metadata: { user_id: "m" } }, null, "ip"), "m");
  assert.equal(userIdOf(h({}), {}, q("llm_user_id=c"), "ip"), "c");
  const cred = userIdOf(h({ authorization: "Bearer sk-secret" }), {}, null, "ip")!;
  assert.match(cred, /^cred-[0-9a-f]{16}$/);
  assert.ok(!cred.includes("secret"));
  assert.equal(userIdOf(h({}), {}, null, "10.0.0.1"), "10.0.0.1");
});

Deno.test("config: limits of 0 are unlimited; a bad limit is refused with its path", () => {
  assert.deepEqual(rulesOf(config(`features: { rate_limiting: { enabled: true } }`)), []);
  assert.throws(
    () => config(`plugins: { ratelimit: { requests_per_minute: 1.5 } }`),
    /plugins\.ratelimit\.requests_per_minute/,
  );
  // llm-proxy: zero or below is unlimited (its LimitsConfig), per user too.
  assert.deepEqual(
    rulesOf(config(`features:
  rate_limiting:
    enabled: true
    limits: { requests_per_minute: -5, tokens_per_day: -1 }
    overrides: { per_user: { carol: { requests_per_day: -2 } } }
`)),
    [],
  );
  // A window of 0 never fills and resets at no time: refused. 500ms is a window.
  for (const window of ["0s", "0ms", "0"]) {
    assert.throws(
      () => config(`rateLimit: { enabled: true, perKey: { requests: 1, window: ${window} } }`),
      /rateLimit\.perKey\.window: Must be above 0/,
      window,
    );
  }
  assert.ok(config(`rateLimit: { enabled: true, perKey: { requests: 1, window: 500ms } }`));
  // A Redis address the link cannot read is the config's error, with its path (it used to
  // leave the limits on each sidecar's share for good).
  for (const address of ["127.0.0.1:99999", "not a host", "redis://h:6379", "user@h:6379"]) {
    assert.throws(
      () =>
        config(`features: { rate_limiting: { enabled: true, redis: { address: "${address}" } } }`),
      /features\.rate_limiting\.redis\.address: Must be host:port/,
      address,
    );
  }
  // What loaded before still does: a bare host (port 6379), IPv6, and empty (an unset
  // `${REDIS_ADDR}`: the default).
  for (const address of ["[::1]:6380", "redis", "redis-0.redis.svc:6379", ""]) {
    assert.ok(config(`features: { rate_limiting: { redis: { address: "${address}" } } }`));
  }
});

Deno.test("config: Butter's ratelimit without requests_per_minute (or with 0) is Butter's 60 a minute", () => {
  for (
    const block of [
      "{}",
      "{ per_ip: true }",
      "{ requests_per_minute: 0 }",
      "{ requests_per_minute: -1 }",
    ]
  ) {
    const rules = rulesOf(config(`plugins: { ratelimit: ${block} }`));
    assert.equal(rules.length, 1, block);
    assert.equal(rules[0]!.limit, 60, block);
    assert.equal(rules[0]!.algorithm, "bucket");
  }
  assert.equal(
    rulesOf(config(`plugins: { ratelimit: { requests_per_minute: 5 } }`))[0]!.limit,
    5,
  );
});

Deno.test("checkCache() builds a scope's check once; counters are taken in place per window", () => {
  const r = rule({ scope: "user", limit: 2 });
  const cache = checkCache();
  const [a] = checksFor([r], { user: "alice", models: [] }, cache);
  const [again] = checksFor([r], { user: "alice", models: [] }, cache);
  const [bob] = checksFor([r], { user: "bob", models: [] }, cache);
  assert.equal(a, again, "same rule and user: the same check object");
  assert.notEqual(a, bob);
  assert.equal(a!.scope, "user:alice");
  assert.equal(a!.key, "r\u0000user:alice");
  const counters = new CounterMap();
  const first = admitLocal(counters, [a!], [1], 1_000);
  const stored = counters.entries.get(a!.key)!.state;
  const second = admitLocal(counters, [a!], [1], 2_000);
  assert.equal(counters.entries.get(a!.key)!.state, stored, "same window: the state is reused");
  assert.deepEqual([first.states[0]!.remaining, second.states[0]!.remaining], [1, 0]);
  assert.equal(admitLocal(counters, [a!], [1], 3_000).ok, false);
  assert.equal(admitLocal(counters, [a!], [1], 61_000).states[0]!.remaining, 1, "new window");
});
