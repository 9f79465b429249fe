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
  // A URL the link cannot read is refused at load (and by --check), not at start; the URL
  // itself (it may hold a password) is not repeated.
  for (const url of ["redis://127.0.0.1:99999", "rediss://:pw@[::1/0"]) {
    assert.throws(
      () => load(`state:\n  backend: redis\n  redis: { url: "${url}" }\n`),
      (err: Error) =>
        /state\.redis\.url: Not a valid Redis URL/.test(err.message) && !err.message.includes(url),
    );
  }
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

Deno.test("llm-proxy form: OpenAI, Anthropic and Gemini are served on the client's credential", async (t) => {
  const grantsOf = (config: import("../../src/config/mod.ts").Config) =>
    planGrants(config, { configPath: null, configText: null, cwd: "/", env: () => undefined })
      .net;

  await t.step("its dev config (`enabled` and `features`, no providers)", () => {
    const { config, dialect, notes, warnings } = load(`
enabled: true
features:
  cost_tracking: { enabled: true }
  rate_limiting: { enabled: false }
`);
    assert.deepEqual(Object.keys(config.providers).sort(), ["anthropic", "gemini", "openai"]);
    // Said once at start (info) and by --check, as a note: it widens the hosts served.
    assert.equal(dialect, "llm-proxy");
    assert.match(notes?.[0] ?? "", /Read as an llm-proxy file: openai, anthropic and gemini/);
    assert.deepEqual(warnings.filter((w) => !w.includes("Unknown key")), []);
    const openai = config.providers.openai!;
    assert.equal(openai.base_url, "https://api.openai.com/v1");
    assert.equal(openai.credential_mode, "passthrough");
    assert.deepEqual(openai.keys, []);
    assert.equal(config.providers.anthropic!.base_url, "https://api.anthropic.com/v1");
    assert.equal(config.providers.gemini!.base_url, "https://generativelanguage.googleapis.com");
    const net = grantsOf(config);
    for (
      const host of ["api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com"]
    ) {
      assert.ok(net.some((h) => h.startsWith(host)), net.join(","));
    }
  });

  await t.step("pricing entries keep theirs; Bedrock stays opt-in", () => {
    const { config } = load(`
features: { rate_limiting: { enabled: false } }
providers:
  openai:
    models:
      "gpt-4o": { enabled: true, pricing: { input: 2.5, output: 10 } }
  anthropic: { enabled: false }
  bedrock:
    models:
      "anthropic.claude-3-haiku-20240307-v1:0": { pricing: { input: 0.25, output: 1.25 } }
`);
    assert.deepEqual(Object.keys(config.providers).sort(), ["gemini", "openai"]);
    assert.deepEqual(config.providers.openai!.model_pricing["gpt-4o"], { input: 2.5, output: 10 });
    const on = load(`
features: {}
providers:
  bedrock: { enabled: true }
`).config;
    assert.deepEqual(Object.keys(on.providers).sort(), [
      "anthropic",
      "bedrock",
      "gemini",
      "openai",
    ]);
  });

  await t.step("a config that says how to connect is served as written", () => {
    const { config } = load(`
features: { circuit_breaker: { enabled: true } }
providers:
  openai: { keys: [{ key: sk-configured-0001 }] }
`);
    assert.deepEqual(Object.keys(config.providers), ["openai"]);
    assert.equal(config.providers.openai!.credential_mode, "gateway");
    const butter = load(`
providers:
  up: { base_url: "http://up.test/v1" }
`).config;
    assert.deepEqual(Object.keys(butter.providers), ["up"]);
    // Pilotfish configs with a breaker or limits block, whose providers connect by preset
    // name and their own keys: only what they name is served, nothing is switched off.
    for (
      const text of [
        "providers:\n  ollama: { models: [llama3] }\n",
        "providers:\n  mock: { latency: 5ms }\n",
        "providers:\n  groq: { headers: { x-team: a } }\n",
        "providers:\n  openai: { models: [gpt-4o] }\n",
        "providers:\n  openai: { timeout: 30s }\n",
        "providers:\n  bedrock: { region: us-east-1, sign: true }\n",
        "providers:\n  bedrock: { endpoint: 'http://bedrock.test' }\n",
      ]
    ) {
      const loaded = load(`features: { circuit_breaker: { enabled: true } }\n${text}`);
      const named = Object.keys(parseConfigText(text, () => undefined, "x.yml").config.providers);
      assert.deepEqual(Object.keys(loaded.config.providers), named, text);
      assert.equal(loaded.dialect, undefined, text);
      const net = grantsOf(loaded.config);
      assert.ok(!net.some((h) => h.startsWith("api.anthropic.com")), `${text}: ${net}`);
    }
    // No llm-proxy marker at all: nothing is added.
    assert.deepEqual(Object.keys(load("server: { port: 9002 }\n").config.providers), []);
  });

  await t.step("its README's curl reaches OpenAI with the client's key", async () => {
    const { gateway, post } = await import("../pipeline/support.ts");
    const gw = gateway({
      config: "enabled: true\nfeatures:\n  rate_limiting: { enabled: false }\n",
      handler: (url) =>
        Response.json({
          id: "chatcmpl-1",
          object: "chat.completion",
          created: 1,
          model: "gpt-3.5-turbo",
          choices: [{
            index: 0,
            message: { role: "assistant", content: "hi" },
            finish_reason: "stop",
          }],
          usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
          url,
        }),
    });
    const res = await gw.request(
      "/openai/v1/chat/completions",
      post(
        { model: "gpt-3.5-turbo", messages: [{ role: "user", content: "Hello, world!" }] },
        { authorization: "Bearer sk-client-own-key-0001" },
      ),
    );
    assert.equal(res.status, 200);
    assert.equal((await res.json()).choices[0].message.content, "hi");
    const sent = gw.upstream[0]!;
    assert.equal(sent.url, "https://api.openai.com/v1/chat/completions");
    assert.equal(
      new Headers(sent.init.headers).get("authorization"),
      "Bearer sk-client-own-key-0001",
    );
    const health = await (await gw.request("/health")).json();
    assert.equal(health.providers.openai.status, "healthy");
  });
});
