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
