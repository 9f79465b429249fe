/**
 * Phase one of `deno task start` on a config with problems: the flags still grant the
 * file's `${VARS}`, so `--check` (and a start) report the config's problems, not a
 * missing env permission at the first variable.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("an invalid config that uses ${VARS}: `deno task start --check` lists its problems", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pf-plan-cli-" });
  try {
    const path = `${dir}/bad.yaml`;
    await Deno.writeTextFile(
      path,
      'providers:\n  local:\n    base_url: "not a url ${PF_AUDIT_X:-}"\n    timeout: ${PF_AUDIT_T:-5s}\n',
    );
    const plan = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--no-prompt",
        "--config",
        `${ROOT}deno.json`,
        "--allow-read",
        "--allow-env",
        `${ROOT}src/permissions/plan_cli.ts`,
        "--check",
        "--config",
        path,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const flags = new TextDecoder().decode(plan.stdout);
    assert.match(flags, /--allow-env=[^ ]*PF_AUDIT_X/);
    assert.match(flags, /--allow-env=[^ ]*PF_AUDIT_T/);

    // Go's one-dash form too (Butter's `-config`): the file is still found and granted.
    for (const flags of [["--config", path], [`-config=${path}`]]) {
      const check = await new Deno.Command("sh", {
        args: [`${ROOT}scripts/start.sh`, "--check", ...flags],
        env: { DENO: Deno.execPath() },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const out = new TextDecoder().decode(check.stdout) + new TextDecoder().decode(check.stderr);
      assert.equal(check.code, 1, out);
      assert.match(out, /providers\.local\.base_url: Must be an http:\/\/ or https:\/\/ URL/);
      assert.doesNotMatch(out, /Missing permission/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
