/**
 * `server.read_timeout`/`write_timeout` from each dialect that writes them: Butter's
 * snake_case keys and llm-gateway's `readTimeout`/`writeTimeout`, from the seed configs as
 * committed, land on the same keys in ms; unset means no limit.
 */
import assert from "node:assert/strict";
import { ConfigError, parseConfigText } from "../../src/config/mod.ts";

const FIXTURES = new URL("../fixtures/seeds/", import.meta.url).pathname;
const KEYS: Record<string, string> = {
  OPENAI_API_KEY: "sk-seed-openai-000001",
  ANTHROPIC_API_KEY: "sk-ant-seed-000002",
  OPENROUTER_API_KEY: "sk-or-seed-000003",
};
const env = (name: string) => KEYS[name];

function problemsOf(text: string): readonly string[] {
  try {
    parseConfigText(text, env, "gateway.yaml");
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("Butter's read_timeout: 30s / write_timeout: 120s load as ms", async () => {
  const text = await Deno.readTextFile(`${FIXTURES}butter.yaml`);
  const { config } = parseConfigText(text, env, "butter.yaml");
  assert.equal(config.server.read_timeout, 30_000);
  assert.equal(config.server.write_timeout, 120_000);
});

Deno.test("llm-gateway's readTimeout / writeTimeout map onto the same keys", async () => {
  const text = await Deno.readTextFile(`${FIXTURES}llm-gateway.yaml`);
  const { config, dialect } = parseConfigText(text, env, "llm-gateway.yaml");
  assert.equal(dialect, "llm-gateway");
  assert.equal(config.server.read_timeout, 30_000);
  assert.equal(config.server.write_timeout, 120_000);

  const small = parseConfigText(
    `
server: { readTimeout: 250ms, writeTimeout: 1m }
providers:
  - name: openai
    apiKey: sk-gw-openai-0001
`,
    env,
    "gateway.yaml",
  );
  assert.equal(small.dialect, "llm-gateway");
  assert.equal(small.config.server.read_timeout, 250);
  assert.equal(small.config.server.write_timeout, 60_000);
});

Deno.test("unset: no limit (the keys stay undefined)", () => {
  const { config } = parseConfigText("server: { port: 9100 }\n", env, "gateway.yaml");
  assert.equal(config.server.read_timeout, undefined);
  assert.equal(config.server.write_timeout, undefined);
});

Deno.test("a bad duration is refused under the name the file used", () => {
  assert.ok(
    problemsOf("server: { write_timeout: forever }\n").some((p) =>
      p.startsWith('server.write_timeout: Invalid duration "forever"')
    ),
  );
  assert.ok(
    problemsOf(`
server: { writeTimeout: 2 minutes }
providers:
  - name: openai
    apiKey: sk-gw-openai-0001
`).some((p) => p.startsWith('server.writeTimeout: Invalid duration "2 minutes"')),
  );
});
