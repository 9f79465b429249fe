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
