/**
 * llm-proxy's own config files load as its Go YAML reads them: its `configs/base.yml` puts
 * keys we do not have beside ones we do (several per mapping), `limits` on every model,
 * per-alias `pricing.overrides`, digits grouped with underscores and, in production, the
 * breaker's Redis as one `url`. Unknown keys are warnings; what we know is used.
 */
import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { secretsOf } from "../../src/runtime.ts";
import { planGrants } from "../../src/permissions/mod.ts";

const load = (text: string, env: Record<string, string> = {}) =>
  parseConfigText(text, (n) => env[n], "llm-proxy.yml");

Deno.test("several unknown keys in one mapping are each a warning, not a refusal", () => {
  const { config, warnings } = load(`
enabled: true
retired_models: {}
features:
  cost_tracking: { enabled: false }
  api_key_management: { enabled: true, table_name: keys }
  pii_redact: { enabled: false }
  rate_limiting:
    enabled: true
    limits: { requests_per_minute: 5 }
`);
  assert.deepEqual(warnings.filter((w) => w.includes("Unknown key")).sort(), [
    "enabled: Unknown key, ignored",
    "features.api_key_management: Unknown key, ignored",
    "features.pii_redact: Unknown key, ignored",
    "retired_models: Unknown key, ignored",
  ]);
  assert.equal(config.features.rate_limiting.limits.requests_per_minute, 5);
});

Deno.test("--strict still refuses each unknown key", () => {
  assert.throws(
    () =>
      parseConfigText("features:\n  a: 1\n  b: 2\n", () => undefined, "x.yml", { strict: true }),
    /features\.a: Unknown key/,
  );
});

Deno.test("a model's `limits` is ignored with a warning; its pricing, aliases and overrides are used", () => {
  const { config, warnings } = load(`
providers:
  openai:
    enabled: true
    default_limits: { tokens_per_minute: 450_000 }
    models:
      "gpt-4o":
        enabled: true
        aliases: ["gpt-4o-2024-05-13", "gpt-4o-2024-08-06"]
        limits: { tokens_per_minute: 450_000, requests_per_minute: 5_000, burst_tokens: 45_000 }
        pricing:
          input: 2.50
          output: 10.00
          overrides:
            "gpt-4o-2024-05-13": { input: 5.00, output: 15.00 }
      "gemini-like":
        enabled: false
        pricing:
          - { threshold: 200_000, input: 1.25, output: 10.00 }
          - { threshold: 0, input: 2.50, output: 15.00 }
      "merged":
        pricing:
          tiers: [{ threshold: 0, input: 1, output: 2 }]
`);
  assert.ok(warnings.includes("providers.openai.models.gpt-4o.limits: Unknown key, ignored"));
  assert.ok(warnings.includes("providers.openai.default_limits: Unknown key, ignored"));
  const p = config.providers.openai!;
  assert.deepEqual([...p.models], ["gpt-4o", "merged"]);
  assert.deepEqual(p.model_pricing["gpt-4o"], { input: 2.5, output: 10 });
  assert.deepEqual(p.model_pricing["gpt-4o-2024-08-06"], { input: 2.5, output: 10 });
  assert.deepEqual(p.model_pricing["gpt-4o-2024-05-13"], { input: 5, output: 15 });
  assert.deepEqual(p.model_pricing["gemini-like"], {
    input: 1.25,
    output: 10,
    long_context: { threshold: 200000, input: 2.5, output: 15 },
  });
  assert.deepEqual(p.model_pricing["merged"], { input: 1, output: 2 });
});

Deno.test("a bad price still names its key", () => {
  assert.throws(
    () =>
      load("providers:\n  openai:\n    models:\n      m: { pricing: { input: -1, output: 1 } }\n"),
    /providers\.openai\.models\.m\.pricing\.input: /,
  );
  assert.throws(
    () => load("providers:\n  openai:\n    models:\n      m: { pricing: { output: 1 } }\n"),
    /providers\.openai\.models\.m\.pricing: Expected input and output prices, or tiers/,
  );
});

Deno.test("digits grouped with underscores are numbers; a quoted value stays as written", () => {
  const { config } = load(`
features:
  rate_limiting:
    enabled: true
    limits: { requests_per_minute: 5_000, tokens_per_day: 648_000_000 }
    estimation: { max_sample_bytes: "20_000" }
`);
  assert.equal(config.features.rate_limiting.limits.requests_per_minute, 5000);
  assert.equal(config.features.rate_limiting.limits.tokens_per_day, 648000000);
  assert.equal(config.features.rate_limiting.estimation.max_sample_bytes, 20000);
  assert.throws(
    () => load("features:\n  rate_limiting:\n    limits: { requests_per_minute: 5__0 }\n"),
    /requests_per_minute: /,
  );
});

Deno.test("yes/no and on/off are booleans, as Go's YAML reads them into a bool field", () => {
  const { config } = load(`
features:
  circuit_breaker: { enabled: yes, test_mode_enabled: On, bypass_allowed: NO }
  rate_limiting: { enabled: off }
`);
  const cb = config.features.circuit_breaker;
  assert.equal(cb.enabled, true);
  assert.equal(cb.test_mode_enabled, true);
  assert.equal(cb.bypass_allowed, false);
  assert.equal(config.features.rate_limiting.enabled, false);
  assert.throws(() => load("features:\n  circuit_breaker: { enabled: yEs }\n"), /enabled: /);
});

Deno.test("the breaker's and the limiter's Redis as one url (llm-proxy production.yml)", () => {
  const { config, warnings } = load(
    `
features:
  circuit_breaker:
    enabled: true
    backend: redis
    redis: { url: "\${REDIS_URL}", db: 5 }
  rate_limiting:
    enabled: true
    backend: redis
    redis: { url: "\${EMPTY}", address: "limits:6380", password: pw2 }
    limits: { requests_per_minute: 10 }
`,
    { REDIS_URL: "rediss://:s3cret@cb-redis:6390/2" },
  );
  assert.deepEqual(warnings.filter((w) => w.includes("redis")), []);
  // url over address and password; db overrides the URL's.
  assert.deepEqual(config.features.circuit_breaker.redis, {
    url: "rediss://:s3cret@cb-redis:6390/2",
    db: 5,
  });
  // An empty url (an unset variable) falls back to address and password, as in llm-proxy.
  assert.deepEqual(config.features.rate_limiting.redis, {
    url: "redis://limits:6380",
    password: "pw2",
    db: 0,
  });
  const secrets = secretsOf(config);
  assert.ok(secrets.includes("s3cret") && secrets.includes("pw2"));
  const grants = planGrants(config, {
    configPath: null,
    configText: null,
    cwd: "/",
    env: () => undefined,
  });
  assert.ok(grants.net.includes("cb-redis:6390"), grants.net.join(","));
  assert.ok(grants.net.includes("limits:6380"), grants.net.join(","));
  assert.throws(
    () => load("features:\n  circuit_breaker:\n    redis: { url: http://x }\n"),
    /features\.circuit_breaker\.redis\.url: Must be a redis:\/\/, rediss:\/\/, redis\+sentinel:\/\/ or rediss\+sentinel:\/\/ URL/,
  );
});

Deno.test("circuit_breaker.mode: enforce (llm-proxy's later configs) is its `on`", async () => {
  const { createBreaker, createMemoryBreakerStore, breakerTiming } = await import(
    "../../src/breaker/mod.ts"
  );
  const { config, warnings } = load(`
features:
  circuit_breaker:
    enabled: true
    mode: "enforce"
`);
  assert.deepEqual(warnings, []);
  const cb = config.features.circuit_breaker;
  assert.equal(cb.mode, "on");
  const breaker = createBreaker(cb, createMemoryBreakerStore(breakerTiming(cb)), () => {});
  assert.equal(breaker.mode, "on");
  // Its README's values still load, and a typo is still refused.
  assert.equal(
    load("features: { circuit_breaker: { mode: log } }").config.features
      .circuit_breaker.mode,
    "log",
  );
  assert.throws(() => load("features: { circuit_breaker: { mode: enforcing } }"), /mode/);
});
