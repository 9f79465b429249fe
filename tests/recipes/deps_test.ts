/**
 * A first `deno task start` downloads only what the daemon imports: Deno fetches every npm
 * package in the config's lockfile at start, so deno.json/deno.lock hold the daemon's imports
 * only and the test SDKs live in tests/deno.json/tests/deno.lock. These checks keep the two
 * configs in step and the daemon's lockfile free of test packages.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;
const readJson = async (path: string) => JSON.parse(await Deno.readTextFile(`${ROOT}${path}`));

/** The packages the daemon may bring in (src/ imports nothing else). */
const DAEMON_PACKAGES =
  /^npm:\/?(hono|yaml|valibot|@redis\/client|gpt-tokenizer|@extism\/extism|@smithy\/[a-z0-9-]+|@opentelemetry\/[a-z0-9-]+)@/;

Deno.test("deps: the daemon's config and lockfile hold only the daemon's packages", async () => {
  const config = await readJson("deno.json");
  const lock = await readJson("deno.lock");
  for (const spec of Object.values(config.imports as Record<string, string>)) {
    assert.match(
      spec,
      DAEMON_PACKAGES,
      `deno.json imports ${spec}: test-only? put it in tests/deno.json`,
    );
  }
  for (const spec of Object.keys(lock.specifiers as Record<string, string>)) {
    assert.match(
      spec,
      DAEMON_PACKAGES,
      `deno.lock locks ${spec}: run \`deno install\` to prune it`,
    );
  }
});

Deno.test("deps: tests/deno.json is deno.json plus the test SDKs, with the same settings", async () => {
  const root = await readJson("deno.json");
  const tests = await readJson("tests/deno.json");
  for (const [name, spec] of Object.entries(root.imports as Record<string, string>)) {
    assert.equal(
      tests.imports[name],
      spec,
      `tests/deno.json must import ${name} as deno.json does`,
    );
  }
  assert.deepEqual(tests.compilerOptions, root.compilerOptions);
  assert.deepEqual(tests.fmt, root.fmt);
  assert.deepEqual(tests.lint.rules, root.lint.rules);
  const lock = await readJson("tests/deno.lock");
  const rootLock = await readJson("deno.lock");
  for (const [spec, version] of Object.entries(rootLock.specifiers as Record<string, string>)) {
    assert.equal(
      lock.specifiers[spec],
      version,
      `tests/deno.lock must lock ${spec} as deno.lock does`,
    );
  }
});

Deno.test("deps: the daemon's module graph reaches no package outside deno.json", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--config", `${ROOT}deno.json`, `${ROOT}src/main.ts`],
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  const roots = new Set<string>();
  for (const m of info.modules as { specifier: string; npmPackage?: string }[]) {
    if (m.specifier.startsWith("npm:")) roots.add(m.specifier);
  }
  for (const spec of roots) assert.match(spec, DAEMON_PACKAGES);
  assert.ok([...roots].some((s) => /^npm:\/?hono@/.test(s)), [...roots].join(", "));
});
