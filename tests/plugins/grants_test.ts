/** The permission planner's grants for wasm_plugins: exactly the plugin files, and no more. */
import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { planGrants } from "../../src/permissions/mod.ts";

const plan = (yaml: string) =>
  planGrants(parseConfigText(yaml, () => undefined, "grants.yaml").config, {
    configPath: null,
    configText: null,
    cwd: "/srv/app",
  });

Deno.test("planGrants(): read on each plugin file and the worker module; allowed_hosts on net", () => {
  const without = plan("providers: { mock: {} }\n");
  const g = plan(`
providers: { mock: {} }
wasm_plugins:
  - { name: a, path: plugins/a.wasm }
  - { name: b, path: /opt/b.wasm, allowed_hosts: ["api.example.com"] }
`);
  assert.ok(g.read.includes("/srv/app/plugins/a.wasm"));
  assert.ok(g.read.includes("/opt/b.wasm"));
  assert.ok(g.read.some((p) => p.endsWith("/src/plugins/worker.ts")));
  assert.ok(g.read.some((p) => p.endsWith("/src/plugins/instance.ts")));
  assert.ok(g.net.includes("api.example.com"));
  assert.ok(!without.read.some((p) => p.endsWith(".wasm") || p.endsWith("worker.ts")));
  assert.ok(!without.env.includes("EXTISM_ENABLE_WASI_OUTPUT"));
  // Nothing broad: no directory of plugins, no wildcard.
  assert.ok(!g.read.includes("/srv/app/plugins"));
});

Deno.test("allowed_hosts refuses wildcards (Deno grants exact hosts)", () => {
  assert.throws(
    () => plan(`wasm_plugins:\n  - { name: a, path: a.wasm, allowed_hosts: ["*.example.com"] }\n`),
    /exact host names/,
  );
});
