import assert from "node:assert/strict";
import { ConfigError, parseConfigText } from "../../../src/config/mod.ts";

const env = (vars: Record<string, string>) => (name: string) => vars[name];
const KEYS = env({ OPENAI_API_KEY: "sk-gw-openai-0001", ANTHROPIC_API_KEY: "sk-gw-ant-0002" });

function problemsOf(text: string): readonly string[] {
  try {
    parseConfigText(text, KEYS, "gateway.yaml");
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("llm-gateway's quick-start config maps onto providers, routing and failover", () => {
  const text = `
providers:
  - name: openai
    apiKey: \${OPENAI_API_KEY}
    models: [gpt-4, gpt-4-turbo]
    maxRetries: 2
    timeout: 30s
  - name: anthropic
    apiKey: \${ANTHROPIC_API_KEY}
    models: [claude-3-haiku]
routing:
  defaultProvider: openai
  fallbackChain: [openai, anthropic]
  modelMappings:
    cheap: { provider: anthropic, model: claude-3-haiku }
cache:
  enabled: true
  ttl: 1h
  maxSize: 512
rateLimit:
  enabled: true
  global: { requests: 10000, window: 1m }
  perKey: { requests: 1000, window: 1m }
  perModel:
    gpt-4: { requests: 100, window: 1m }
logging:
  format: console
  requestBody: true
`;
  const { config, warnings, dialect } = parseConfigText(text, KEYS, "gateway.yaml");
  assert.equal(dialect, "llm-gateway");
  assert.deepEqual(warnings, []);
  assert.deepEqual(Object.keys(config.providers), ["openai", "anthropic"]);
  assert.deepEqual(config.providers.openai?.keys.map((k) => k.key), ["sk-gw-openai-0001"]);
  assert.equal(config.providers.openai?.timeout, 30_000);
  assert.deepEqual(config.providers.anthropic?.models, ["claude-3-haiku"]);
  assert.equal(config.routing.default_provider, "openai");
  // Each listed model: its provider first, then the rest of the fallback chain.
  assert.deepEqual(config.routing.models["gpt-4"]?.providers, ["openai", "anthropic"]);
  assert.deepEqual(config.routing.models["claude-3-haiku"]?.providers, ["anthropic", "openai"]);
  assert.equal(config.routing.aliases.cheap, "anthropic/claude-3-haiku");
  assert.equal(config.providers.openai?.max_retries, 2);
  // A model no provider lists: the default provider, then along the chain.
  assert.deepEqual(config.routing.fallback, ["openai", "anthropic"]);
  assert.deepEqual(config.cache, {
    enabled: true,
    backend: "memory",
    ttl: 3_600_000,
    max_size_mb: 512,
    scope: "global",
    streaming: false,
  });
  assert.deepEqual(config.rate_limit, {
    enabled: true,
    global: { requests: 10000, window: 60_000 },
    per_key: { requests: 1000, window: 60_000 },
    per_model: { "gpt-4": { requests: 100, window: 60_000 } },
    per_provider: {},
  });
  assert.equal(config.logging.format, "console");
  assert.equal(config.logging.request_body, true);
});

Deno.test("llm-gateway priority orders providers when there is no fallbackChain", () => {
  const { config } = parseConfigText(
    `
providers:
  - { name: backup, baseUrl: "http://127.0.0.1:9/v1", models: [m1], priority: 2 }
  - { name: main, baseUrl: "http://127.0.0.1:8/v1", models: [m1, m2], priority: 1 }
`,
    KEYS,
    "g.yaml",
  );
  assert.equal(config.routing.default_provider, "main", "the first by priority");
  assert.deepEqual(config.routing.models.m1?.providers, ["main", "backup"]);
  assert.deepEqual(config.routing.models.m2?.providers, ["main", "backup"]);
});

Deno.test("llm-gateway problems are reported under the key path the user wrote", () => {
  const problems = problemsOf(`
providers:
  - name: openai
    apiKey: sk-aaaaaaaa
  - name: azure
    baseUrl: ftp://nope
    timeout: soon
    maxRetries: -1
    priority: first
  - apiKey: orphan
  - name: openai
routing:
  fallbackChain: [openai, opena1]
  modelMappings:
    fast: { provider: nobody, model: x }
server:
  readTimeout: never
  cors:
    allowedOrigins: "*"
rateLimit:
  perKey: { requests: 0, window: 1x }
cache:
  maxSize: lots
logging:
  format: pretty
`);
  const expected = [
    "providers[1].baseUrl: Must be an http:// or https:// URL",
    'providers[1].timeout: Invalid duration "soon"',
    "providers[1].maxRetries: Invalid value",
    "providers[1].priority: Expected a number",
    "providers[2].name: Required",
    'providers[3].name: Duplicate provider "openai"',
    'routing.fallbackChain[1]: Unknown provider "opena1"',
    'routing.modelMappings.fast: Unknown provider "nobody"',
    'server.readTimeout: Invalid duration "never"',
    "server.cors.allowedOrigins:",
    "rateLimit.perKey.requests:",
    'rateLimit.perKey.window: Invalid duration "1x"',
    "cache.maxSize:",
    "logging.format:",
  ];
  for (const start of expected) {
    assert.ok(
      problems.some((p) => p.startsWith(start)),
      `no "${start}" in:\n${problems.join("\n")}`,
    );
  }
});

Deno.test("llm-gateway unknown keys warn under the user's path, and fail under strict", () => {
  const text = "providers:\n  - name: openai\n    apiKey: sk-aaaaaaaa\n    colour: red\n";
  const { warnings } = parseConfigText(text, KEYS, "g.yaml");
  assert.deepEqual(warnings, ["providers[0].colour: Unknown key, ignored"]);
  assert.throws(
    () => parseConfigText(text, KEYS, "g.yaml", { strict: true }),
    (err: unknown) =>
      err instanceof ConfigError && err.problems.includes("providers[0].colour: Unknown key"),
  );
});

Deno.test("llm-gateway: an unset apiKey warns on its key; maxRetries stays per provider", () => {
  const { config, warnings } = parseConfigText(
    `
providers:
  - { name: openai, apiKey: "\${NOT_SET}", maxRetries: 1 }
  - { name: groq, apiKey: gsk-abcdefgh, maxRetries: 4 }
`,
    KEYS,
    "g.yaml",
  );
  assert.equal(config.providers.openai?.max_retries, 1);
  assert.equal(config.providers.groq?.max_retries, 4);
  assert.ok(
    warnings.includes("providers[0].apiKey: Empty (is its env var set?); the key is not used"),
  );
  assert.ok(!warnings.some((w) => w.includes("maxRetries")));
});

Deno.test("a Pilotfish-native config is not read as llm-gateway", () => {
  const { dialect } = parseConfigText(
    "providers:\n  mock: {}\nlogging:\n  request_body: true\n",
    KEYS,
    "n.yaml",
  );
  assert.equal(dialect, undefined);
});

Deno.test("llm-gateway: a required baseUrl left out is named baseUrl, as the user would write it", () => {
  const problems = problemsOf(`
providers:
  - { name: azure, apiKey: abc }
`);
  assert.ok(
    problems.some((p) =>
      p.startsWith('providers[0].baseUrl: Required for a provider of type "azure"')
    ),
    problems.join("\n"),
  );
});

Deno.test("llm-gateway: without server.port it listens on 8080, as llm-gateway does", () => {
  const bare = parseConfigText(
    "providers:\n  - { name: openai, apiKey: sk-1 }\n",
    KEYS,
    "gateway.yaml",
  );
  assert.equal(bare.config.server.port, 8080);
  const set = parseConfigText(
    "server: { port: 9100 }\nproviders:\n  - { name: openai, apiKey: sk-1 }\n",
    KEYS,
    "gateway.yaml",
  );
  assert.equal(set.config.server.port, 9100);
  // Our own dialect keeps its default, also when it borrows one of llm-gateway's keys.
  const native = parseConfigText("providers: { mock: {} }\n", KEYS, "pilotfish.yaml");
  assert.equal(native.config.server.port, 9002);
  const borrowing = parseConfigText(
    "providers: { mock: {} }\ncache: { enabled: true, maxSize: 64 }\n",
    KEYS,
    "pilotfish.yaml",
  );
  assert.equal(borrowing.config.server.port, 9002);
  assert.equal(borrowing.config.cache.max_size_mb, 64);
  // Its routing or server keys are its own file's (a providers map set by Helm, say): 8080.
  const mapped = parseConfigText(
    "providers: { openai: { keys: [{ key: sk-1 }] } }\nrouting: { defaultProvider: openai }\n",
    KEYS,
    "gateway.yaml",
  );
  assert.equal(mapped.config.server.port, 8080);
});
