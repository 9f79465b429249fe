/**
 * Butter's keys beyond its `config.example.yaml`, with Butter's meaning: each loads without a
 * warning and does what Butter's README and config say, or warns like any unknown key.
 */
import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";

const load = (text: string, env: Record<string, string> = {}) =>
  parseConfigText(text, (n) => env[n], "butter.yaml");

Deno.test("providers.<p>.credential_mode: stored (Butter's default) is our gateway", () => {
  const { config, warnings } = load(`
providers:
  openai:
    credential_mode: stored
    keys: [{ key: sk-test-000000000001 }]
  anthropic:
    credential_mode: passthrough
`);
  assert.deepEqual(warnings, []);
  const openai = config.providers.openai!;
  assert.equal(openai.credential_mode, "gateway");
  // Written explicitly, as with `gateway`: native routes use the configured keys too.
  assert.equal(openai.native_credential_mode, "gateway");
  assert.equal(config.providers.anthropic!.credential_mode, "passthrough");
  assert.throws(
    () => load("providers: { openai: { credential_mode: storedd } }"),
    /credential_mode/,
  );
});

Deno.test("server.max_request_bytes negative is Butter's no cap: the largest bound we hold", async () => {
  const { NO_CAP_BODY_BYTES } = await import("../../src/config/schema.ts");
  const { config, warnings } = load("server: { max_request_bytes: -1 }\nproviders: { mock: {} }\n");
  assert.deepEqual(warnings, []);
  assert.equal(config.server.max_body_bytes, NO_CAP_BODY_BYTES);
  assert.ok(NO_CAP_BODY_BYTES > 10 * 1024 * 1024);
  // Ours still wins when both are written; 0 is neither a size nor Butter's "no cap".
  const both = load("server: { max_request_bytes: -1, max_body_bytes: 2048 }");
  assert.equal(both.config.server.max_body_bytes, 2048);
  assert.throws(() => load("server: { max_request_bytes: 0 }"), /max_request_bytes/);

  // A body past the 10 MiB default is read, on a unified route.
  const { startGateway } = await import("../helpers/in_process.ts");
  const gw = startGateway(config);
  try {
    const big = "x".repeat(11 * 1024 * 1024);
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "mock/echo", messages: [{ role: "user", content: big }] }),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  } finally {
    await gw.close();
  }
});

Deno.test("plugins.metrics.per_key_metrics (Butter: an app_key label on every metric) is metrics.per_key", () => {
  const on = load("plugins:\n  metrics:\n    per_key_metrics: true\n");
  assert.deepEqual(on.warnings, []);
  assert.equal(on.config.metrics.per_key, true);
  assert.equal(load("plugins: { metrics: {} }").config.metrics.per_key, false);
  // Ours wins when both are written.
  const both = load("plugins: { metrics: { per_key_metrics: true } }\nmetrics: { per_key: false }");
  assert.equal(both.config.metrics.per_key, false);
});

Deno.test("plugins.requestlog: log_bodies/body_max_bytes are request-body logging, log_app_key logs the key's id", async () => {
  const yaml = `
providers: { mock: {} }
app_keys:
  require_key: true
  header: X-Butter-App-Key
  keys: [{ key: btr_requestlog_key_000001, label: ci }]
  persistence: { enabled: false }
plugins:
  requestlog:
    level: info
    log_bodies: true
    body_max_bytes: 64
    log_app_key: true
    request_id_header: X-Request-ID
`;
  const { config, warnings } = load(yaml);
  assert.equal(config.logging.request_body, true);
  assert.equal(config.logging.request_body_max_bytes, 64);
  // Only the part not honoured is said: Butter also logs response bodies.
  assert.deepEqual(warnings, [
    "plugins.requestlog.log_bodies: Request bodies are logged (secrets redacted, as logging.request_body); response bodies are not",
  ]);
  // Butter's default truncation when only log_bodies is given; ours win when written.
  assert.equal(
    load("plugins: { requestlog: { log_bodies: true } }").config.logging.request_body_max_bytes,
    1024,
  );
  const ours = load(
    "logging: { request_body: false }\nplugins: { requestlog: { log_bodies: true } }",
  );
  assert.equal(ours.config.logging.request_body, false);
  // A request id header we cannot honour warns (an error under --strict); an unknown sub-key too.
  const other = load("plugins: { requestlog: { request_id_header: X-Trace-Id, colour: red } }");
  assert.deepEqual([...other.warnings].sort(), [
    "plugins.requestlog.colour: Unknown key, ignored",
    "plugins.requestlog.request_id_header: Not supported (the request id is read from and echoed in X-Request-ID); ignored",
  ]);
  assert.throws(
    () =>
      parseConfigText(
        "plugins: { requestlog: { request_id_header: X-Trace-Id } }",
        () => undefined,
        "b.yaml",
        { strict: true },
      ),
    /request_id_header: Not supported/,
  );

  const { startGateway } = await import("../helpers/in_process.ts");
  const gw = startGateway(config);
  try {
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-butter-app-key": "btr_requestlog_key_000001",
      },
      body: JSON.stringify({ model: "mock/echo", messages: [{ role: "user", content: "hello" }] }),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    const line = gw.logs.map((l) => JSON.parse(l)).find((l) => l.msg === "request");
    assert.ok(line, gw.logText());
    assert.match(line.app_key, /^cfg_[0-9a-f]{16}$/);
    assert.ok(String(line.request_body).includes("hello"));
    assert.doesNotMatch(gw.logText(), /btr_requestlog_key_000001/);
  } finally {
    await gw.close();
  }
});

Deno.test("values Butter reads as its defaults load so: weight 0 is 1, multiplier 0 is 2, requestlog.level warning is warn, an unknown one info", () => {
  const { config, warnings } = load(`
providers:
  openai: { keys: [{ key: sk-butter-000000001, weight: 0 }] }
routing:
  failover: { backoff: { multiplier: 0 } }
plugins:
  requestlog: { level: verbose }
`);
  assert.equal(config.providers.openai?.keys[0]?.weight, 1);
  assert.equal(config.routing.failover.backoff.multiplier, 2);
  assert.equal(config.plugins.requestlog?.level, "info");
  assert.ok(
    warnings.some((w) => w.startsWith('plugins.requestlog.level: Unknown level "verbose"')),
    warnings.join("\n"),
  );
  assert.equal(
    load("plugins: { requestlog: { level: WARNING } }").config.plugins.requestlog?.level,
    "warn",
  );
  // A negative value is still wrong, and a multiplier between 0 and 1 would shrink backoff.
  assert.throws(() =>
    load("providers:\n  openai: { keys: [{ key: sk-b-0000000001, weight: -1 }] }\n")
  );
  assert.throws(() => load("routing: { failover: { backoff: { multiplier: 0.5 } } }"));
});
