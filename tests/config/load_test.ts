import assert from "node:assert/strict";
import { ConfigError, embeddedDefault, loadConfig, parseConfigText } from "../../src/config/mod.ts";
import type { EnvLookup } from "../../src/config/interpolate.ts";

function envOf(vars: Record<string, string>): EnvLookup {
  return (name) => vars[name];
}

const NO_ENV: EnvLookup = () => undefined;

/** Run `fn`, expect a ConfigError, return its problems. */
function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.problems;
  }
  assert.fail("expected a ConfigError");
}

/** Assert one problem starts with `path: ` and mentions every `words`. */
function assertProblem(problems: readonly string[], path: string, ...words: string[]): void {
  const hit = problems.find((p) => p.startsWith(`${path}: `));
  assert.ok(hit, `no problem for "${path}" in:\n${problems.join("\n")}`);
  for (const w of words) assert.ok(hit.includes(w), `"${hit}" does not mention "${w}"`);
}

// Verbatim from the Butter README, "Example config.yaml".
const BUTTER_EXAMPLE = `server:
  address: ":8080"
  read_timeout: 30s
  write_timeout: 120s

providers:
  openai:
    base_url: https://api.openai.com/v1
    keys:
      - key: "\${OPENAI_API_KEY}"
        weight: 1

  anthropic:
    base_url: https://api.anthropic.com/v1
    keys:
      - key: "\${ANTHROPIC_API_KEY}"
        weight: 1

  openrouter:
    base_url: https://openrouter.ai/api/v1
    keys:
      - key: "\${OPENROUTER_API_KEY}"
        weight: 1

routing:
  default_provider: openrouter
  models:
    "gpt-4o":
      providers: [openai, openrouter]
      strategy: priority
    "claude-sonnet-4-20250514":
      providers: [anthropic, openrouter]
      strategy: priority
  failover:
    enabled: true
    max_retries: 3
    retry_on: [429, 500, 502, 503, 504]
    backoff:
      initial: 100ms
      multiplier: 2.0
      max: 5s

plugins:
  ratelimit:
    requests_per_minute: 60
    per_ip: false
  requestlog:
    level: info
  metrics: {}
`;

// Verbatim from the llm-proxy README (Circuit Breaker → Configuration), commented redis block included.
const LLM_PROXY_CIRCUIT_BREAKER = `features:
  circuit_breaker:
    enabled: true                       # gate the whole feature
    backend: "memory"                   # "memory" (single instance) or "redis" (multi-instance)
    failure_threshold: 5                # terminal failures in the window that trip the circuit
    window_seconds: 120                 # sliding-window TTL for the failure counter
    cooldown_seconds: 300               # how long the circuit stays open before a probe
    max_transient_retries: 2            # retries for degraded-class failures
    max_rate_limit_retries: 2           # retries for rate-limit failures
    retry_contribution_mode: "log"      # "off" | "log" | "on" — whether retried failures count
    global_rate_limit_escalation_window: 60  # seconds of sustained global 429s → degraded
    degraded_signal: ""                 # override the body marker; empty → "[LLM_PROXY_PROVIDER_DEGRADED]"
    test_mode_enabled: false            # prod: leave off.  Enables X-LLM-Proxy-Test-Mode header.
    bypass_allowed: true                # honour X-LLM-Proxy-Bypass-Circuit; set false to disable.
    bypass_reason_allowlist: []         # if non-empty, only these values appear verbatim
                                        # on the \`circuit.bypass\` Datadog tag — anything
                                        # else is normalised to \`other\`.  Bounds tag
                                        # cardinality.  Empty (default) accepts any
                                        # well-formed reason.
    per_provider_rollup_threshold: 0    # 0 = rollup disabled.  Recommended prod: 3.
    per_provider_rollup_window_seconds: 300  # sliding window for the rollup signal.
    # redis:                            # required when backend == "redis"
    #   address: "localhost:6379"
    #   password: ""
    #   db: 0
`;

// Verbatim from the llm-proxy README (Rate Limiting, minimal dev example).
const LLM_PROXY_RATE_LIMITING = `features:
  rate_limiting:
    enabled: true
    backend: "memory" # single instance only
    estimation:
      max_sample_bytes: 20000
      bytes_per_token: 4 # Fallback to request size (Content-Length based)
      chars_per_token: 4 # Default for message-based estimation
      # Optional per-provider overrides (recommended)
      provider_chars_per_token:
        openai: 5      # ~185–190 tokens per 1k chars (from scripts/token_estimation.py)
        anthropic: 3   # ~290–315 tokens per 1k chars (from scripts/token_estimation.py)
    limits:
      requests_per_minute: 0   # 0 = unlimited (dev defaults)
      tokens_per_minute: 0
`;

const BUTTER_ENV = envOf({
  OPENAI_API_KEY: "sk-openai-test-1",
  ANTHROPIC_API_KEY: "sk-ant-test-2",
  OPENROUTER_API_KEY: "sk-or-test-3",
});

Deno.test("parseConfigText() loads Butter's example config unchanged", () => {
  const { config, warnings, source } = parseConfigText(BUTTER_EXAMPLE, BUTTER_ENV, "butter.yaml");
  assert.deepEqual(warnings, []);
  assert.equal(source, "butter.yaml");

  assert.equal(config.server.host, "0.0.0.0");
  assert.equal(config.server.port, 8080);
  assert.equal(config.server.read_timeout, 30_000);
  assert.equal(config.server.write_timeout, 120_000);

  assert.deepEqual(Object.keys(config.providers).sort(), ["anthropic", "openai", "openrouter"]);
  const openai = config.providers.openai;
  assert.ok(openai);
  assert.equal(openai.type, "openai");
  assert.equal(openai.base_url, "https://api.openai.com/v1");
  assert.deepEqual(openai.keys, [{
    key: "sk-openai-test-1",
    weight: 1,
    models: [],
    id: "openai#0",
  }]);
  assert.equal(config.providers.anthropic?.type, "anthropic");
  assert.equal(config.providers.anthropic?.base_url, "https://api.anthropic.com/v1");
  assert.equal(config.providers.anthropic?.keys[0]?.key, "sk-ant-test-2");
  assert.equal(config.providers.openrouter?.type, "openai");
  assert.equal(config.providers.openrouter?.base_url, "https://openrouter.ai/api/v1");

  assert.equal(config.routing.default_provider, "openrouter");
  assert.deepEqual(config.routing.models["gpt-4o"], {
    providers: ["openai", "openrouter"],
    strategy: "priority",
  });
  assert.deepEqual(config.routing.models["claude-sonnet-4-20250514"]?.providers, [
    "anthropic",
    "openrouter",
  ]);
  assert.deepEqual(config.routing.failover, {
    enabled: true,
    max_retries: 3, // Butter's meaning: retries per provider
    max_attempts: 0,
    retry_on: [429, 500, 502, 503, 504],
    backoff: { initial: 100, multiplier: 2, max: 5_000 },
    deadline: 120_000,
  });
  assert.deepEqual(config.plugins, {
    ratelimit: {
      requests_per_minute: 60,
      per_ip: false,
      per_app_key: false,
      app_key_limits: {},
      trusted_proxies: [],
    },
    requestlog: { level: "info" },
    metrics: {},
  });
});

Deno.test("parseConfigText() warns about empty keys when Butter's env vars are unset", () => {
  const { config, warnings } = parseConfigText(BUTTER_EXAMPLE, NO_ENV, "butter.yaml");
  assert.deepEqual(warnings.toSorted(), [
    "providers.anthropic.keys[0].key: Empty (is its env var set?); the key is not used",
    "providers.openai.keys[0].key: Empty (is its env var set?); the key is not used",
    "providers.openrouter.keys[0].key: Empty (is its env var set?); the key is not used",
  ]);
  // Still a usable config: the providers stay, without keys.
  assert.deepEqual(Object.keys(config.providers).sort(), ["anthropic", "openai", "openrouter"]);
  for (const p of Object.values(config.providers)) assert.deepEqual(p.keys, []);
  assert.equal(config.routing.default_provider, "openrouter");
});

Deno.test("parseConfigText(): a key is trimmed; one no header can carry is refused, never quoted", () => {
  const yaml = "providers:\n  openai:\n    keys:\n      - key: ${K1}\n      - key: ${K2}\n";
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const ok = parseConfigText(yaml, env({ K1: "sk-one-0001\n", K2: "  sk-two-0002 " }), "k.yaml");
  assert.deepEqual(ok.config.providers.openai!.keys.map((k) => k.key), [
    "sk-one-0001",
    "sk-two-0002",
  ]);
  const secret = "sk-live-SECRET-1234567890";
  assert.throws(
    () =>
      parseConfigText(
        yaml,
        env({ K1: `${secret}\nsk-live-OTHER-0987654321`, K2: "sk-live-caf\u00e9-0002" }),
        "k.yaml",
      ),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.problems[0]!, /keys\[0\]\.key: Contains a line break \(at character 26\)/);
      assert.match(err.problems[1]!, /keys\[1\]\.key: Contains a non-ASCII character/);
      assert.doesNotMatch(err.message, /SECRET|caf/);
      return true;
    },
  );
  // A disabled provider never sends its keys: one no header can carry is not a reason to refuse.
  const off = parseConfigText(
    "providers:\n  openai:\n    enabled: false\n    keys:\n      - key: ${K1}\n",
    env({ K1: "sk-a\nsk-b" }),
    "k.yaml",
  );
  assert.equal(off.config.providers.openai, undefined);
  // With a schema error elsewhere, the key's problem is listed with it (one --check, all).
  assert.throws(
    () =>
      parseConfigText(
        `server: { port: notaport }\n${yaml}`,
        env({ K1: "sk a", K2: "sk-two-0002" }),
        "k.yaml",
      ),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.ok(err.problems.some((p) => p.startsWith("server.port:")), err.message);
      assert.ok(err.problems.some((p) => /keys\[0\]\.key: Contains a space/.test(p)), err.message);
      return true;
    },
  );
  // …unless the provider is off, however the switch is spelled.
  assert.throws(
    () =>
      parseConfigText(
        `server: { port: notaport }\nproviders:\n  openai:\n    enabled: "no"\n    keys:\n      - key: "sk a"\n`,
        NO_ENV,
        "k.yaml",
      ),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.ok(!err.problems.some((p) => /keys\[0\]/.test(p)), err.message);
      return true;
    },
  );
});

Deno.test("parseConfigText() loads llm-proxy's features.circuit_breaker block unchanged", () => {
  const { config, warnings } = parseConfigText(LLM_PROXY_CIRCUIT_BREAKER, NO_ENV, "cb.yaml");
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.features.circuit_breaker, {
    enabled: true,
    backend: "memory",
    failure_threshold: 5,
    window_seconds: 120,
    cooldown_seconds: 300,
    max_transient_retries: 2,
    max_rate_limit_retries: 2,
    retry_contribution_mode: "log",
    global_rate_limit_escalation_window: 60,
    degraded_signal: "",
    test_mode_enabled: false,
    bypass_allowed: true,
    bypass_reason_allowlist: [],
    per_provider_rollup_threshold: 0,
    per_provider_rollup_window_seconds: 300,
  });
});

Deno.test("parseConfigText() defaults features.circuit_breaker to llm-proxy's README values", () => {
  const readme = parseConfigText(LLM_PROXY_CIRCUIT_BREAKER, NO_ENV, "cb.yaml").config;
  const defaults = parseConfigText("", NO_ENV, "empty.yaml").config;
  const cb = defaults.features.circuit_breaker;
  // "Disabled by default"; the backend falls back to the global state.backend when unset.
  assert.equal(cb.enabled, false);
  assert.equal(cb.backend, undefined);
  for (const [key, value] of Object.entries(readme.features.circuit_breaker)) {
    if (key === "enabled" || key === "backend") continue;
    assert.deepEqual((cb as Record<string, unknown>)[key], value, `default of ${key}`);
  }
});

Deno.test("parseConfigText() accepts llm-proxy's circuit_breaker redis block when uncommented", () => {
  const text = LLM_PROXY_CIRCUIT_BREAKER
    .replace('backend: "memory"', 'backend: "redis"')
    .replaceAll("    # redis:", "    redis:")
    .replaceAll("    #   ", "      ");
  const { config, warnings } = parseConfigText(text, NO_ENV, "cb.yaml");
  assert.deepEqual(warnings, []);
  assert.equal(config.features.circuit_breaker.backend, "redis");
  // Read as one connection: the address as a URL, no password, database 0.
  assert.deepEqual(config.features.circuit_breaker.redis, {
    url: "redis://localhost:6379",
    db: 0,
  });
});

Deno.test("parseConfigText() loads llm-proxy's features.rate_limiting block unchanged", () => {
  const { config, warnings } = parseConfigText(LLM_PROXY_RATE_LIMITING, NO_ENV, "rl.yaml");
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.features.rate_limiting, {
    enabled: true,
    backend: "memory",
    estimation: {
      max_sample_bytes: 20000,
      bytes_per_token: 4,
      chars_per_token: 4,
      provider_chars_per_token: { openai: 5, anthropic: 3 },
    },
    limits: {
      requests_per_minute: 0,
      tokens_per_minute: 0,
      requests_per_day: 0,
      tokens_per_day: 0,
      overrides: { per_user: {}, per_model: {}, per_key: {} },
    },
    overrides: { per_user: {}, per_model: {}, per_key: {} },
    fleet_size: 1,
  });
});

Deno.test("parseConfigText() loads Butter's config and llm-proxy's features together", () => {
  const text = `${BUTTER_EXAMPLE}\n${LLM_PROXY_CIRCUIT_BREAKER}`;
  const { config, warnings } = parseConfigText(text, BUTTER_ENV, "both.yaml");
  assert.deepEqual(warnings, []);
  assert.equal(config.features.circuit_breaker.enabled, true);
  assert.equal(config.server.port, 8080);
});

Deno.test("parseConfigText() applies the documented defaults to an empty file", () => {
  const { config, warnings } = parseConfigText("", NO_ENV, "empty.yaml");
  assert.deepEqual(warnings, []);
  assert.equal(config.server.host, "127.0.0.1");
  assert.equal(config.server.port, 9002);
  assert.equal(config.server.socket, "/tmp/pilotfish.sock");
  assert.equal(config.server.socket_mode, 0o660);
  assert.equal(config.server.tcp, true);
  assert.equal(config.server.max_body_bytes, 10 * 1024 * 1024);
  assert.equal(config.server.admin_token, "");
  assert.equal(config.logging.level, "info");
  assert.equal(config.state.backend, "memory");
  assert.deepEqual(config.providers, {});
  assert.equal(config.routing.default_provider, "");
  assert.equal(config.routing.failover.enabled, true);
  assert.equal(config.routing.failover.max_retries, 2);
  assert.deepEqual(config.routing.key_cooldown, { auth: 300_000, rate_limit: 30_000 });
  assert.equal(config.features.rate_limiting.enabled, false);
});

Deno.test("parseConfigText() maps server.address to host and port", async (t) => {
  const load = (server: string) =>
    parseConfigText(`server:\n${server}`, NO_ENV, "addr.yaml").config.server;
  await t.step('":8080" listens on every interface', () => {
    const s = load('  address: ":8080"');
    assert.equal(s.host, "0.0.0.0");
    assert.equal(s.port, 8080);
  });
  await t.step('"localhost:9100" keeps the host', () => {
    const s = load('  address: "localhost:9100"');
    assert.equal(s.host, "localhost");
    assert.equal(s.port, 9100);
  });
  await t.step("explicit host and port win over address", () => {
    const s = load('  address: ":8080"\n  host: 127.0.0.1\n  port: 9000');
    assert.equal(s.host, "127.0.0.1");
    assert.equal(s.port, 9000);
  });
  await t.step("a malformed address is an error on server.address", () => {
    assertProblem(problemsOf(() => load('  address: "nonsense"')), "server.address", "nonsense");
    assertProblem(problemsOf(() => load('  address: ":99999"')), "server.address", "99999");
  });
  await t.step("a host that is neither an IP address nor a host name is an error", () => {
    for (
      const host of [
        "127.0.0.1",
        "0.0.0.0",
        "::1",
        "::",
        "[::]",
        "localhost",
        "pf-sidecar.svc",
        "my_app",
      ]
    ) {
      assert.equal(load(`  host: "${host}"`).host, host);
    }
    assertProblem(problemsOf(() => load('  host: "no such host"')), "server.host", "no such host");
    assertProblem(problemsOf(() => load('  host: "bad_host!"')), "server.host", "bad_host!");
    assertProblem(problemsOf(() => load('  host: ":"')), "server.host", "IPv6");
    assertProblem(problemsOf(() => load('  host: "[::1"')), "server.host", "IPv6");
    assertProblem(problemsOf(() => load('  address: "a b:80"')), "server.address", "a b");
  });
  await t.step("a socket or state path with a comma cannot be granted: an error", () => {
    assertProblem(problemsOf(() => load('  socket: "/tmp/a,b.sock"')), "server.socket", "comma");
    assertProblem(
      problemsOf(() => parseConfigText('state: { path: "/x/a,b.db" }', NO_ENV, "s.yaml")),
      "state.path",
      "comma",
    );
  });
});

Deno.test("parseConfigText() parses server.socket_mode as octal", () => {
  const mode = (m: string) =>
    parseConfigText(`server:\n  socket_mode: "${m}"`, NO_ENV, "s.yaml").config.server.socket_mode;
  assert.equal(mode("0600"), 0o600);
  assert.equal(mode("644"), 0o644);
  assertProblem(problemsOf(() => mode("0999")), "server.socket_mode", "octal");
  const off = parseConfigText('server:\n  socket: ""', NO_ENV, "s.yaml").config.server;
  assert.equal(off.socket, "");
});

Deno.test("parseConfigText() turns unknown keys into warnings, not errors", () => {
  const text = [
    "server:",
    "  port: 9100",
    "  colour: blue",
    "providers:",
    "  openai:",
    "    keys: [{ key: sk-test-123456 }]",
    "    organisation: acme",
    "extras: true",
  ].join("\n");
  const { config, warnings } = parseConfigText(text, NO_ENV, "u.yaml");
  assert.deepEqual(warnings.toSorted(), [
    "extras: Unknown key, ignored",
    "providers.openai.organisation: Unknown key, ignored",
    "server.colour: Unknown key, ignored",
  ]);
  assert.equal(config.server.port, 9100);
  assert.equal("colour" in config.server, false);
  assert.equal("organisation" in (config.providers.openai ?? {}), false);
  assert.equal("extras" in config, false);
});

Deno.test("parseConfigText() reports every schema error at once, each with its key path", () => {
  const text = [
    "server:",
    "  port: abc",
    "  read_timeout: 5x",
    "  socket_mode: rw",
    "providers:",
    "  openai:",
    "    timeout: soon",
  ].join("\n");
  const problems = problemsOf(() => parseConfigText(text, NO_ENV, "bad.yaml"));
  assert.equal(problems.length, 4, problems.join("\n"));
  assertProblem(problems, "server.port", "number");
  assertProblem(problems, "server.read_timeout", '"5x"');
  assertProblem(problems, "server.socket_mode", "octal");
  assertProblem(problems, "providers.openai.timeout", '"soon"');
});

// BUG (src/config/load.ts validateConfig): when the schema pass finds any error, the
// function throws before the cross-reference checks (unknown providers in routing.*,
// unknown provider names) run, so `--check` lists only part of the problems and the user
// has to fix-and-rerun. Fix: run the reference checks even when the schema fails (on the
// raw interpolated tree, defensively) and throw once with both lists.
Deno.test({
  name: "parseConfigText() reports schema and reference errors together",

  fn() {
    const text = [
      "server:",
      "  port: abc",
      "  read_timeout: 5x",
      "providers:",
      "  openai: {}",
      "routing:",
      "  models:",
      "    gpt-4o: { providers: [openai, nope] }",
    ].join("\n");
    const problems = problemsOf(() => parseConfigText(text, NO_ENV, "bad.yaml"));
    assertProblem(problems, "server.port", "number");
    assertProblem(problems, "server.read_timeout", '"5x"');
    assertProblem(problems, "routing.models.gpt-4o.providers[1]", '"nope"');
  },
});

Deno.test("--check --strict lists every unknown key, several in one mapping among them", () => {
  const text = [
    "server:",
    "  foo: 1",
    "  bar: 2",
    "providers:",
    "  openai:",
    "    zed: 1",
    "    zod: 2",
    "    timeout: soon",
  ].join("\n");
  const problems = problemsOf(() => parseConfigText(text, NO_ENV, "u.yaml", { strict: true }));
  for (const path of ["server.foo", "server.bar", "providers.openai.zed", "providers.openai.zod"]) {
    assert.ok(problems.includes(`${path}: Unknown key`), problems.join("\n"));
  }
  assertProblem(problems, "providers.openai.timeout", '"soon"');
  assert.equal(problems.length, 5, problems.join("\n"));
});

Deno.test("--check lists the listener problems beside a schema error elsewhere", () => {
  const text = [
    "server:",
    '  host: "bad host!"',
    `  socket: /tmp/${"s".repeat(120)}.sock`,
    "  read_timeout: 30x",
    "providers:",
    "  mock: { latency: 5x }",
  ].join("\n");
  const problems = problemsOf(() => parseConfigText(text, NO_ENV, "l.yaml"));
  assertProblem(problems, "server.read_timeout", '"30x"');
  assertProblem(problems, "providers.mock.latency", '"5x"');
  assertProblem(problems, "server.host", "bad host!");
  assertProblem(problems, "server.socket", "at most");
  const butter = problemsOf(() =>
    parseConfigText('server:\n  address: "nohost"\n  read_timeout: 30x\n', NO_ENV, "b.yaml")
  );
  assertProblem(butter, "server.address", '"host:port"');
  assertProblem(butter, "server.read_timeout", '"30x"');
});

Deno.test("parseConfigText() reports every reference error at once", () => {
  const text = [
    "providers:",
    "  openai: {}",
    "  mystery:",
    '    keys: [{ key: "k-123456" }]',
    "  custom:",
    "    type: openai",
    "routing:",
    "  default_provider: nope",
    "  aliases:",
    "    fast: ghost/gpt-4o-mini",
    "    broken: no-slash",
    "  models:",
    "    gpt-4o:",
    "      providers: [openai, nope]",
    "      weights: [1]",
  ].join("\n");
  const problems = problemsOf(() => parseConfigText(text, NO_ENV, "refs.yaml"));
  assertProblem(problems, "providers.mystery", '"mystery"', "type", "base_url");
  assertProblem(problems, "providers.custom.base_url", "Required", '"openai"');
  assertProblem(problems, "routing.default_provider", '"nope"', "configured: openai");
  assertProblem(problems, "routing.aliases.fast", '"ghost"');
  assertProblem(problems, "routing.aliases.broken", "provider/model", '"no-slash"');
  assertProblem(problems, "routing.models.gpt-4o.providers[1]", '"nope"');
  assertProblem(problems, "routing.models.gpt-4o.weights", "2 weights");
  assert.equal(problems.length, 7, problems.join("\n"));
});

Deno.test("parseConfigText() accepts an unknown provider name given a type or base_url", () => {
  const text = [
    "providers:",
    "  local-llm:",
    "    base_url: http://127.0.0.1:8080/v1/",
    "  claude:",
    "    type: anthropic",
    "    base_url: https://claude.example/v1",
    "routing:",
    "  aliases:",
    "    fast: local-llm/llama-3",
  ].join("\n");
  const { config } = parseConfigText(text, NO_ENV, "p.yaml");
  assert.equal(config.providers["local-llm"]?.type, "openai");
  assert.equal(config.providers["local-llm"]?.base_url, "http://127.0.0.1:8080/v1");
  assert.equal(config.providers.claude?.type, "anthropic");
});

Deno.test("parseConfigText() throws ConfigError on YAML syntax errors", () => {
  let caught: unknown;
  try {
    parseConfigText("server:\n  port: [1\n", NO_ENV, "broken.yaml");
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError);
  assert.equal(caught.source, "broken.yaml");
  // One problem with its position, not one per echo of the same mistake.
  assert.equal(caught.problems.length, 1, caught.problems.join("\n"));
  assert.match(caught.problems[0]!, /^YAML syntax at line \d+, column \d+: /);
  assert.match(caught.message, /^Invalid config broken\.yaml:\n {2}- YAML syntax at line /);

  const dup = problemsOf(() => parseConfigText("server: {}\nserver: {}\n", NO_ENV, "d.yaml"));
  assert.deepEqual(dup, ["YAML syntax at line 2, column 1: Map keys must be unique"]);
});

Deno.test("parseConfigText() refuses a document that is not a mapping", () => {
  const problems = problemsOf(() => parseConfigText("- a\n- b\n", NO_ENV, "list.yaml"));
  assertProblem(problems, "(root)", "mapping");
});

Deno.test("parseConfigText() substitutes env vars without letting them change the structure", () => {
  const hostile = "x\nport: 1\nproviders: {evil: {base_url: http://evil.example}}";
  const text = [
    "server:",
    '  admin_token: "${ADMIN_TOKEN}"',
    "providers:",
    "  openai:",
    "    base_url: ${OPENAI_BASE_URL:-https://api.openai.com/v1}",
    '    keys: [{ key: "${OPENAI_API_KEY}" }]',
  ].join("\n");
  const { config } = parseConfigText(
    text,
    envOf({ ADMIN_TOKEN: hostile, OPENAI_API_KEY: "sk-from-env" }),
    "env.yaml",
  );
  assert.equal(config.server.admin_token, hostile);
  assert.equal(config.server.port, 9002);
  assert.deepEqual(Object.keys(config.providers), ["openai"]);
  assert.equal(config.providers.openai?.base_url, "https://api.openai.com/v1");
  assert.equal(config.providers.openai?.keys[0]?.key, "sk-from-env");
});

// BUG (src/config/interpolate.ts + schema.ts): substitution runs after YAML parsing, so
// every substituted value is a string, and numeric fields refuse it: the common
// `port: ${PORT:-9002}` fails with "expected number, received string". Fix: in schema.ts
// wrap number fields (port, nonNegInt, max_body_bytes, weights, ...) in
// `z.preprocess((v) => typeof v === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v, ...)`
// (and booleans likewise for "true"/"false").
Deno.test({
  name: "parseConfigText() accepts an env-substituted number in a numeric field",

  fn() {
    const text = "server:\n  port: ${PORT:-9002}\n";
    assert.equal(parseConfigText(text, envOf({ PORT: "9100" }), "p.yaml").config.server.port, 9100);
    assert.equal(parseConfigText(text, NO_ENV, "p.yaml").config.server.port, 9002);
  },
});

// BUG (src/config/duration.ts): a bare number means seconds (`timeout: 30`), but the same
// value from the environment (`timeout: ${TIMEOUT:-30}` → the string "30") is refused as
// `Invalid duration "30"`. Fix: in parseDuration, after trimming, treat a string matching
// /^\d+(\.\d+)?$/ as seconds, like the number branch.
Deno.test({
  name: "parseConfigText() accepts an env-substituted bare number of seconds as a duration",

  fn() {
    const text = "providers:\n  openai:\n    timeout: ${TIMEOUT:-30}\n";
    const { config } = parseConfigText(text, NO_ENV, "t.yaml");
    assert.equal(config.providers.openai?.timeout, 30_000);
  },
});

// BUG (src/config/load.ts): a section whose entries are all commented out parses as YAML
// null (`server:` followed only by comments), and the schema refuses it with
// `server: Invalid input: expected object, received null` instead of using the defaults.
// Fix: before safeParse, drop mapping entries whose value is null (e.g. a small
// `dropNulls(tree)` pass in validateConfig), so `prefault({})`/`default()` apply.
Deno.test({
  name: "parseConfigText() treats a section with everything commented out as empty",

  fn() {
    const text = "server:\n  # port: 9100\nfeatures:\n  circuit_breaker:\n    # enabled: true\n";
    const { config } = parseConfigText(text, NO_ENV, "c.yaml");
    assert.equal(config.server.port, 9002);
    assert.equal(config.features.circuit_breaker.enabled, false);
  },
});

Deno.test("parseConfigText() returns a deeply frozen config", () => {
  const { config } = parseConfigText(BUTTER_EXAMPLE, BUTTER_ENV, "butter.yaml");
  const nodes: unknown[] = [
    config,
    config.server,
    config.providers,
    config.providers.openai,
    config.providers.openai?.keys,
    config.providers.openai?.keys[0],
    config.routing.models["gpt-4o"]?.providers,
    config.routing.failover.backoff,
    config.features.circuit_breaker,
    config.plugins,
  ];
  for (const node of nodes) assert.ok(Object.isFrozen(node), JSON.stringify(node));
  assert.throws(() => {
    (config.server as { port: number }).port = 1;
  }, TypeError);
  assert.throws(() => {
    (config.routing.failover.retry_on as number[]).push(418);
  }, TypeError);
});

Deno.test("embeddedDefault() serves the mock provider when no API key is set", () => {
  const { config, warnings, source } = embeddedDefault(NO_ENV);
  assert.equal(source, "embedded default");
  assert.deepEqual(warnings, []);
  assert.deepEqual(Object.keys(config.providers), ["mock"]);
  assert.equal(config.providers.mock?.type, "mock");
  // The mock answers mock/... only: bare models have no default provider (a 404, not an echo).
  assert.equal(config.routing.default_provider, "");
  assert.equal(config.server.host, "127.0.0.1");
  assert.equal(config.server.port, 9002);
  assert.equal(config.server.socket, "/tmp/pilotfish.sock");
  assert.ok(Object.isFrozen(config));
});

Deno.test("embeddedDefault() enables OpenAI from OPENAI_API_KEY and routes to it", () => {
  const { config } = embeddedDefault(envOf({ OPENAI_API_KEY: "sk-env-key-123" }));
  assert.deepEqual(Object.keys(config.providers).sort(), ["mock", "openai"]);
  assert.equal(config.routing.default_provider, "openai");
  assert.equal(config.providers.openai?.base_url, "https://api.openai.com/v1");
  assert.deepEqual(config.providers.openai?.keys.map((k) => k.key), ["sk-env-key-123"]);
});

Deno.test("embeddedDefault() has no default provider when only other providers are set", () => {
  const { config } = embeddedDefault(envOf({ ANTHROPIC_API_KEY: "sk-ant-1", GROQ_API_KEY: "" }));
  assert.deepEqual(Object.keys(config.providers).sort(), ["anthropic", "mock"]);
  assert.equal(config.routing.default_provider, "");
});

Deno.test("loadConfig() reads a file, and refuses a missing one with ConfigError", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-load-" });
  try {
    const path = `${dir}/pilotfish.yaml`;
    await Deno.writeTextFile(path, "server:\n  port: 9123\n");
    const loaded = await loadConfig(path, NO_ENV);
    assert.equal(loaded.source, path);
    assert.equal(loaded.config.server.port, 9123);

    await assert.rejects(() => loadConfig(`${dir}/missing.yaml`, NO_ENV), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assertProblem(err.problems, "Cannot read file");
      return true;
    });
    assert.equal((await loadConfig(null, NO_ENV)).source, "embedded default");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseConfigText() duration defaults are milliseconds", () => {
  const { config } = parseConfigText("providers:\n  mock: {}\n", NO_ENV, "d.yaml");
  assert.equal(config.server.drain_timeout, 30_000);
  assert.equal(config.server.reload_interval, 1_000);
  assert.equal(config.providers.mock?.timeout, 60_000);
  assert.equal(config.providers.mock?.latency, 0);
  assert.deepEqual(config.routing.failover.backoff, { initial: 100, multiplier: 2, max: 5_000 });
  assert.equal(config.routing.failover.deadline, 120_000);
  assert.deepEqual(config.routing.key_cooldown, { auth: 300_000, rate_limit: 30_000 });
});

Deno.test("parseConfigText() gives a YAML error's line and column", () => {
  const problems = problemsOf(() =>
    parseConfigText("server:\n  port: 9100\n\tsocket: x\n", NO_ENV, "tab.yaml")
  );
  assert.deepEqual(problems, [
    "YAML syntax at line 3, column 1: Tabs are not allowed as indentation",
  ]);
});

Deno.test("parseConfigText() reads llm-proxy's day limits and per-user overrides", () => {
  const text = [
    "features:",
    "  rate_limiting:",
    "    limits:",
    "      requests_per_day: 1000",
    "      tokens_per_day: 500000",
    "      overrides:",
    "        per_user:",
    '          "u-1": { requests_per_minute: 5, tokens_per_day: 100 }',
  ].join("\n");
  const { config, warnings } = parseConfigText(text, NO_ENV, "rl.yaml");
  assert.deepEqual(warnings, []);
  const limits = config.features.rate_limiting.limits;
  assert.equal(limits.requests_per_day, 1000);
  assert.equal(limits.tokens_per_day, 500000);
  assert.deepEqual(limits.overrides.per_user["u-1"], {
    requests_per_minute: 5,
    tokens_per_minute: 0,
    requests_per_day: 0,
    tokens_per_day: 100,
  });
  // llm-proxy reads zero or below as unlimited (its LimitsConfig): loaded, as 0.
  const negative = parseConfigText(
    text.replace("tokens_per_day: 100", "tokens_per_day: -1"),
    NO_ENV,
    "rl.yaml",
  ).config.features.rate_limiting.limits;
  assert.equal(negative.overrides.per_user["u-1"]?.tokens_per_day, 0);
  assertProblem(
    problemsOf(() =>
      parseConfigText(text.replace("tokens_per_day: 100", "tokens_per_day: 1.5"), NO_ENV, "rl.yaml")
    ),
    "features.rate_limiting.limits.overrides.per_user.u-1.tokens_per_day",
  );
});

Deno.test("parseConfigText() validates cache, rate_limit, metrics and logging keys", () => {
  const { config } = parseConfigText(
    "logging:\n  format: console\n  request_body: true\nmetrics:\n  endpoint: /metrics\n",
    NO_ENV,
    "ok.yaml",
  );
  assert.equal(config.logging.format, "console");
  assert.equal(config.logging.request_body, true);
  assert.equal(config.logging.request_body_max_bytes, 4096);
  assert.equal(config.metrics.enabled, true);
  assert.equal(config.cache.enabled, false);
  const problems = problemsOf(() =>
    parseConfigText(
      "cache:\n  backend: disk\nmetrics:\n  endpoint: metrics\nlogging:\n  request_body: sometimes\n",
      NO_ENV,
      "bad.yaml",
    )
  );
  assertProblem(problems, "cache.backend");
  assertProblem(problems, "metrics.endpoint", "path");
  assertProblem(problems, "logging.request_body");
});

Deno.test("parseConfigText() reads Butter's server.max_request_bytes as the body limit", () => {
  const butter = parseConfigText("server:\n  max_request_bytes: 33554432\n", NO_ENV, "b.yaml");
  assert.deepEqual(butter.warnings, []);
  assert.equal(butter.config.server.max_body_bytes, 33554432);
  const both = parseConfigText(
    "server:\n  max_request_bytes: 33554432\n  max_body_bytes: 1024\n",
    NO_ENV,
    "b.yaml",
  );
  assert.equal(both.config.server.max_body_bytes, 1024);
});

Deno.test("a value where a mapping belongs says so, not that a key is missing", () => {
  const problems = (text: string) => {
    try {
      parseConfigText(text, () => undefined, "c.yaml");
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.problems;
    }
    assert.fail(`accepted: ${text}`);
  };
  assert.deepEqual(problems("rateLimit: { enabled: true, global: 100 }\n"), [
    "rateLimit.global: Expected a mapping of keys but received 100",
  ]);
  assert.deepEqual(problems("plugins:\n  ratelimit: true\n"), [
    "plugins.ratelimit: Expected a mapping of keys but received true",
  ]);
  assert.deepEqual(
    problems("features:\n  rate_limiting:\n    overrides: { per_user: { alice: 5 } }\n"),
    ["features.rate_limiting.overrides.per_user.alice: Expected a mapping of keys but received 5"],
  );
  // A key left out of a mapping that is there is still a missing key.
  assert.deepEqual(problems("rateLimit: { enabled: true, perKey: { window: 1m } }\n"), [
    "rateLimit.perKey.requests: Missing required key",
  ]);
});

Deno.test("a required key left out is missing, not unknown; unknown keys beside an error are still listed", () => {
  const text = `
providers:
  mock: {}
  openai:
    keys:
      - weight: 1
wasm_plugins:
  - name: x
plugins:
  ratelimit: { requests_per_second: 5 }
`;
  assert.throws(
    () => parseConfigText(text, () => undefined, "c.yaml"),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.ok(
        err.problems.includes("providers.openai.keys[0].key: Missing required key"),
        err.message,
      );
      assert.ok(err.problems.includes("wasm_plugins[0].path: Missing required key"), err.message);
      assert.ok(!err.problems.some((p) => p.includes("Unknown key")), err.message);
      assert.ok(
        err.warnings.includes("plugins.ratelimit.requests_per_second: Unknown key, ignored"),
        JSON.stringify(err.warnings),
      );
      return true;
    },
  );
});

Deno.test("a reload refuses an empty file; a start reads it as an empty config", () => {
  for (const text of ["", "\n", "# only a comment\n"]) {
    const problems = problemsOf(() => parseConfigText(text, NO_ENV, "p.yaml", { reload: true }));
    assert.match(problems[0]!, /The file is empty/);
    assert.deepEqual(Object.keys(parseConfigText(text, NO_ENV, "p.yaml").config.providers), []);
  }
});

Deno.test("a credential written in the wrong shape is named by its path, never echoed", () => {
  for (
    const text of [
      'providers:\n  anthropic:\n    keys: "sk-ant-api03-AbCdEfGh1234567890"\n',
      'providers:\n  openai:\n    keys: [{ key: sk-x-0001, weight: "sk-proj-Weight9876543210" }]\n',
      'server:\n  admin_token: ["adm-Secret-Token-112233"]\n',
    ]
  ) {
    const err = (() => {
      try {
        parseConfigText(text, () => undefined, "x.yaml");
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error(`accepted: ${text}`);
    })();
    const out = err.problems.join("\n");
    for (const secret of ["AbCdEfGh1234567890", "Weight9876543210", "Secret-Token-112233"]) {
      assert.ok(!out.includes(secret), out);
    }
    assert.match(out, /^(providers\.\w+\.keys|server\.admin_token)/, out);
  }
  // Elsewhere the offending value still helps.
  assert.throws(
    () => parseConfigText("logging:\n  format: xml\n", () => undefined, "x.yaml"),
    /logging\.format: .*"xml"/,
  );
});

Deno.test("server.admin_token is trimmed, as provider keys are (a secret file's line break)", () => {
  const { config } = parseConfigText(
    "server:\n  admin_token: ${ADM}\n",
    (n) => (n === "ADM" ? "adm-token-1\n" : undefined),
    "x.yaml",
  );
  assert.equal(config.server.admin_token, "adm-token-1");
});

Deno.test("YAML errors carry a line and column: an unresolved alias, the end of the file", () => {
  const problem = (text: string) => {
    try {
      parseConfigText(text, () => undefined, "x.yaml");
    } catch (e) {
      return (e as ConfigError).problems.join("\n");
    }
    throw new Error(`accepted: ${text}`);
  };
  assert.match(
    problem("server:\n  port: &a 1\n  x: *b\n"),
    /^YAML syntax at line 3, column 6: Unresolved alias/,
  );
  // An unterminated quote on the last line: that line, not one past the end.
  assert.match(
    problem('a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: "abc\n'),
    /^YAML syntax at line 6, column \d+: Missing closing "quote/,
  );
  // A billion-laughs file is refused at its first alias.
  const laughs = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
  for (let i = 1; i < 12; i++) {
    const p = String.fromCharCode(97 + i - 1);
    const q = String.fromCharCode(97 + i);
    laughs.push(`${q}: &${q} [${Array(10).fill(`*${p}`).join(", ")}]`);
  }
  assert.match(problem(laughs.join("\n") + "\n"), /^YAML syntax at line 2, column \d+: .*alias/i);
});

Deno.test("a base_url with credentials or a query string is refused at load, its values not shown", () => {
  const config = `
providers:
  inurl:
    type: openai
    base_url: "http://user:pw-SECRET@127.0.0.1:9/v1?key=QSECRET&api-version=2024-10-21"
    keys: [{ key: sk-2 }]
`;
  assert.throws(
    () => parseConfigText(config, () => undefined, "c.yaml"),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const text = err.problems.join("\n");
      assert.match(text, /providers\.inurl\.base_url: Must not have a query string/);
      assert.match(text, /providers\.inurl\.base_url: Must not hold credentials/);
      assert.doesNotMatch(text, /pw-SECRET|QSECRET/);
      return true;
    },
  );
});

Deno.test("an unquoted numeric secret is refused without echoing its digits", () => {
  for (
    const yaml of [
      "server:\n  admin_token: 98765432109876\n",
      "providers:\n  openai:\n    keys:\n      - key: 12345678901234567890\n",
    ]
  ) {
    assert.throws(
      () => parseConfigText(yaml, envOf({}), "n.yaml"),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.doesNotMatch(err.message, /98765432109876|1234567890123/);
        assert.match(err.message, /received a number \(quote it/);
        return true;
      },
    );
  }
});

Deno.test("a bad number under a key's path (weight: -1) gets no advice to quote it", () => {
  // 0 is Butter's "unset" (weight 1): tests/config/butter_keys_test.ts.
  for (const weight of ["-1", "-0.5"]) {
    assert.throws(
      () =>
        parseConfigText(
          `providers:\n  openai:\n    keys:\n      - { key: sk-weight-0001, weight: ${weight} }\n`,
          envOf({}),
          "w.yaml",
        ),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /providers\.openai\.keys\[0\]\.weight/);
        assert.doesNotMatch(err.message, /quote it/);
        return true;
      },
    );
  }
});

Deno.test("parseConfigText(): credential_mode gateway on Bedrock is refused, not ignored", () => {
  const noEnv = () => undefined;
  assert.throws(
    () =>
      parseConfigText(
        "providers:\n  bedrock:\n    enabled: true\n    credential_mode: gateway\n",
        noEnv,
        "b.yaml",
      ),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.problems[0]!,
        /providers\.bedrock\.credential_mode: "gateway" cannot apply to Bedrock/,
      );
      return true;
    },
  );
  // passthrough (the relay's own behaviour) stays accepted.
  parseConfigText(
    "providers:\n  bedrock:\n    enabled: true\n    credential_mode: passthrough\n",
    noEnv,
    "b.yaml",
  );
});
