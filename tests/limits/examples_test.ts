/** The README's rate-limit config examples pass `--check` and mean what they say. */
import assert from "node:assert/strict";
import { loadConfig } from "../../src/config/mod.ts";
import { rulesOf } from "../../src/limits/mod.ts";
import { runCli } from "../integration/daemon.ts";
import { EXAMPLES } from "../helpers/recipes.ts";

const ENV = { OPENAI_API_KEY: "sk-recipe-check" };

for (const name of ["limits", "limits_gateway", "limits_butter"]) {
  Deno.test(`README recipe: examples/config/${name}.yaml passes --check`, async () => {
    const r = await runCli(
      ["--check", "--strict", "--config", `${EXAMPLES}config/${name}.yaml`],
      ENV,
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
}

Deno.test("README recipes: the example limits become these rules", async () => {
  const rules = async (name: string) => {
    const { config } = await loadConfig(
      `${EXAMPLES}config/${name}.yaml`,
      (k) => ENV[k as "OPENAI_API_KEY"],
    );
    return rulesOf(config).map((r) =>
      `${r.id} ${r.scope} ${r.metric} ${r.limit}/${r.windowName} ${r.algorithm}`
    );
  };
  assert.deepEqual(await rules("limits"), [
    "proxy.rpm global requests 600/minute window",
    "proxy.tpm global tokens 200000/minute window",
    "proxy.tpd global tokens 5000000/day window",
    "proxy.user.batch-jobs.rpm user requests 60/minute window",
    "proxy.user.batch-jobs.tpd user tokens 1000000/day window",
  ]);
  assert.deepEqual(await rules("limits_gateway"), [
    "gw.global global requests 10000/minute window",
    "gw.key key requests 1000/minute window",
    "gw.model.gpt-4o model requests 100/minute window",
    "gw.provider.openai provider requests 5000/minute window",
  ]);
  assert.deepEqual(await rules("limits_butter"), ["butter.ip ip requests 60/minute bucket"]);
});
