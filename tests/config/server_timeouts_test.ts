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

Deno.test("a provider waits as long as Butter's write_timeout unless it has a timeout of its own; llm-gateway's keep 60 s", async () => {
  const butter = parseConfigText(await Deno.readTextFile(`${FIXTURES}butter.yaml`), env, "b.yaml");
  for (const p of Object.values(butter.config.providers)) assert.equal(p.timeout, 120_000);
  const own = parseConfigText(
    "server: { write_timeout: 120s }\nproviders:\n  openai: { keys: [{ key: sk-x-000000001 }], timeout: 30s }\n  mock: {}\n",
    env,
    "c.yaml",
  );
  assert.equal(own.config.providers.openai?.timeout, 30_000);
  assert.equal(own.config.providers.mock?.timeout, 120_000);
  const unset = parseConfigText("providers:\n  mock: {}\n", env, "d.yaml");
  assert.equal(unset.config.providers.mock?.timeout, 60_000);
  const gateway = parseConfigText(
    "server: { port: 8080, writeTimeout: 120s }\nproviders:\n  - { name: openai, apiKey: sk-x-000000001 }\n",
    env,
    "gateway.yaml",
  );
  assert.equal(gateway.config.providers.openai?.timeout, 60_000);
});

Deno.test("routing.failover.deadline unwritten: stretched to the longest provider timeout; written: as written", () => {
  const long = parseConfigText(
    "providers:\n  - { name: openai, apiKey: sk-x-000000001, timeout: 300s }\n",
    env,
    "gateway.yaml",
  );
  assert.equal(long.config.providers.openai?.timeout, 300_000);
  assert.equal(long.config.routing.failover.deadline, 300_000);
  const short = parseConfigText("providers:\n  mock: { timeout: 10s }\n", env, "a.yaml");
  assert.equal(short.config.routing.failover.deadline, 120_000);
  const written = parseConfigText(
    "providers:\n  mock: { timeout: 300s }\nrouting: { failover: { deadline: 90s } }\n",
    env,
    "b.yaml",
  );
  assert.equal(written.config.routing.failover.deadline, 90_000);
});
