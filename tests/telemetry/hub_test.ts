import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { configHash, metricsEnabled, tracingSettings } from "../../src/telemetry/hub.ts";
import { knownModels, modelLabel } from "../../src/telemetry/labels.ts";

const load = (yaml: string) => parseConfigText(yaml, () => undefined, "t.yaml").config;
const env = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("tracingSettings(): off by default; Butter's plugins.tracing, ours, or OTEL_* env", async (t) => {
  await t.step("off without any of them", () => {
    assert.equal(tracingSettings(load(""), env({})), null);
  });
  await t.step("Butter: host:port + insecure → http, /v1/traces appended", () => {
    const s = tracingSettings(
      load(
        'plugins:\n  tracing: { endpoint: "collector:4318", service_name: gw, insecure: true }\n',
      ),
      env({}),
    );
    assert.deepEqual(s, {
      url: "http://collector:4318/v1/traces",
      headers: {},
      serviceName: "gw",
      protocol: "http/json",
      attributes: {},
    });
    // Butter's default is insecure: true; false asks for TLS.
    const plain = tracingSettings(load('plugins:\n  tracing: { endpoint: "c:4318" }\n'), env({}));
    assert.equal(plain?.url, "http://c:4318/v1/traces");
    const secure = tracingSettings(
      load('plugins:\n  tracing: { endpoint: "c:4318", insecure: false }\n'),
      env({}),
    );
    assert.equal(secure?.url, "https://c:4318/v1/traces");
    // Without an endpoint Butter's block exports nothing ("omit to disable").
    assert.equal(
      tracingSettings(load("plugins:\n  tracing: { service_name: butter }\n"), env({})),
      null,
    );
    const full = tracingSettings(
      load('plugins:\n  tracing: { endpoint: "http://c:4318/custom" }\n'),
      env({}),
    );
    assert.equal(full?.url, "http://c:4318/custom");
  });
  await t.step(
    "OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces) and the signal-specific one as is",
    () => {
      assert.equal(
        tracingSettings(load(""), env({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4318/" }))?.url,
        "http://otel:4318/v1/traces",
      );
      const s = tracingSettings(
        load(""),
        env({
          OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4318",
          OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://traces:4318/x",
          OTEL_SERVICE_NAME: "from-env",
        }),
      );
      assert.equal(s?.url, "http://traces:4318/x");
      assert.equal(s?.serviceName, "from-env");
    },
  );
  await t.step("telemetry.tracing: enabled alone → localhost:4318; headers kept", () => {
    const s = tracingSettings(
      load("telemetry:\n  tracing: { enabled: true, headers: { x-team: a } }\n"),
      env({}),
    );
    assert.equal(s?.url, "http://localhost:4318/v1/traces");
    assert.deepEqual(s?.headers, { "x-team": "a" });
    assert.equal(s?.serviceName, "pilotfish");
  });
  await t.step(
    "OTEL_RESOURCE_ATTRIBUTES on the resource; OTEL_SERVICE_NAME wins service.name",
    () => {
      const on = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4318" };
      const s = tracingSettings(
        load(""),
        env({
          ...on,
          OTEL_RESOURCE_ATTRIBUTES:
            "deployment.environment=test, team=ml,service.name=attr,x=a%2Cb",
          OTEL_SERVICE_NAME: "from-env",
        }),
      );
      assert.deepEqual(s?.attributes, { "deployment.environment": "test", team: "ml", x: "a,b" });
      assert.equal(s?.serviceName, "from-env");
      assert.equal(s?.warnings, undefined);
      const named = tracingSettings(
        load(""),
        env({ ...on, OTEL_RESOURCE_ATTRIBUTES: "service.name=attr" }),
      );
      assert.equal(named?.serviceName, "attr", "the attributes' service.name over the config's");
      // A malformed entry discards the whole value (SDK spec), and says so.
      const bad = tracingSettings(
        load(""),
        env({ ...on, OTEL_RESOURCE_ATTRIBUTES: "team=ml,oops" }),
      );
      assert.deepEqual(bad?.attributes, {});
      assert.match(bad?.warnings?.[0] ?? "", /OTEL_RESOURCE_ATTRIBUTES ignored/);
    },
  );
  await t.step(
    "OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL: http/protobuf, http/json; grpc warned",
    () => {
      const on = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4318" };
      const protocol = (vars: Record<string, string>) => {
        const s = tracingSettings(load(""), env({ ...on, ...vars }));
        return [s?.protocol, s?.warnings];
      };
      assert.deepEqual(protocol({}), ["http/json", undefined]);
      assert.deepEqual(protocol({ OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" }), [
        "http/protobuf",
        undefined,
      ]);
      assert.deepEqual(
        protocol({
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
          OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json",
        }),
        ["http/json", undefined],
        "the traces-specific one wins",
      );
      const [p, warnings] = protocol({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "grpc" });
      assert.equal(p, "http/protobuf");
      assert.match((warnings as string[])[0]!, /"grpc" is not supported.*http\/protobuf instead/);
    },
  );
});

Deno.test("config: telemetry.* and plugins.tracing are validated, bad values refused with their path", () => {
  const bad = (yaml: string, path: RegExp) =>
    assert.throws(() => parseConfigText(yaml, () => undefined, "t.yaml"), path);
  bad("telemetry:\n  tracing: { endpoint: ftp://x }\n", /telemetry\.tracing\.endpoint/);
  bad("telemetry:\n  fleet: { interval: soon }\n", /telemetry\.fleet\.interval/);
  bad("plugins:\n  tracing: { endpoint: 4318 }\n", /plugins\.tracing\.endpoint/);
  bad("metrics:\n  per_key: maybe\n", /metrics\.per_key/);
  // Other plugins' blocks are validated by their own schemas (the rate limiter's defaults).
  assert.deepEqual(load("plugins:\n  ratelimit: { requests_per_minute: 5 }\n").plugins, {
    ratelimit: {
      requests_per_minute: 5,
      per_ip: false,
      per_app_key: false,
      app_key_limits: {},
      trusted_proxies: [],
    },
  });
});

Deno.test("metricsEnabled(): llm-gateway's metrics.enabled, or Butter's plugins.metrics", () => {
  assert.equal(metricsEnabled(load("")), true);
  assert.equal(metricsEnabled(load("metrics: { enabled: false }\n")), false);
  assert.equal(
    metricsEnabled(load("metrics: { enabled: false }\nplugins: { metrics: {} }\n")),
    true,
  );
});

Deno.test("configHash(): the same for sidecars that differ only in listeners and fleet name", () => {
  const a = load("server: { port: 9100 }\ntelemetry: { fleet: { name: a } }\n");
  const b = load("server: { port: 9200 }\ntelemetry: { fleet: { name: b } }\n");
  const c = load("server: { port: 9200 }\nmetrics: { per_key: true }\n");
  assert.equal(configHash(a), configHash(b));
  assert.notEqual(configHash(a), configHash(c));
});

Deno.test("modelLabel(): configured names (bare, prefixed, aliased) pass, the rest is `other`", () => {
  const known = knownModels(load(`
providers:
  openai: { keys: [{ key: sk-x, models: [gpt-4.1] }], models: [gpt-4o] }
routing:
  models:
    claude-sonnet: { providers: [openai] }
  aliases:
    fast: openai/gpt-4o-mini
`));
  for (const m of ["gpt-4o", "openai/gpt-4o", "gpt-4.1", "claude-sonnet", "fast", "gpt-4o-mini"]) {
    assert.equal(modelLabel(known, m), m);
  }
  assert.equal(modelLabel(known, "made-up-123"), "other");
  assert.equal(modelLabel(known, undefined), "other");
});

Deno.test("modelLabel(): priced models are named too (the built-in table, pricing.models, llm-proxy's per-model prices)", () => {
  const known = knownModels(load(`
providers:
  openai: { keys: [{ key: sk-x }] }
  up:
    base_url: http://up.test/v1
    models: { house-model: { input: 1, output: 2 } }
pricing:
  models:
    up/tuned-7b: { input: 0.1, output: 0.2 }
`));
  for (
    const m of ["gpt-4o", "gpt-4", "claude-sonnet-4-5", "house-model", "tuned-7b", "up/tuned-7b"]
  ) {
    assert.equal(modelLabel(known, m), m);
  }
  // As a client names them on the unified routes: a configured provider's prefix.
  for (const m of ["openai/gpt-4o", "up/house-model", "openai/text-embedding-3-small"]) {
    assert.equal(modelLabel(known, m), m);
  }
  assert.equal(modelLabel(known, "made-up-123"), "other");
  assert.equal(modelLabel(known, "openai/made-up-123"), "other");
  assert.equal(modelLabel(known, "nosuch/gpt-4o"), "other", "an unconfigured provider");
  const off = knownModels(load(`
providers: { openai: { keys: [{ key: sk-x }] } }
pricing: { builtin: false }
`));
  assert.equal(modelLabel(off, "gpt-4o"), "other", "the table off: its names are not labels");
});

Deno.test("examples/config/observability.yaml (the README's) passes --check", async () => {
  const { runCli } = await import("../integration/daemon.ts");
  const path = new URL("../../examples/config/observability.yaml", import.meta.url).pathname;
  const r = await runCli(["--check", "--strict", "--config", path]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /is valid/);
});

Deno.test("seed configs: llm-gateway's metrics block and Butter's plugins.metrics load with their meaning", async () => {
  const seed = async (name: string) =>
    load(
      await Deno.readTextFile(new URL(`../fixtures/seeds/${name}.yaml`, import.meta.url)),
    );
  const gateway = await seed("llm-gateway");
  assert.equal(metricsEnabled(gateway), true);
  assert.equal(gateway.metrics.endpoint, "/metrics");
  const butter = await seed("butter");
  assert.deepEqual(butter.plugins.metrics, {});
  assert.equal(metricsEnabled(butter), true);
});
