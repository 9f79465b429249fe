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

Deno.test("`deno task start` run bare beside a gateway.yaml loads it (llm-gateway's Quick Start)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pf-plan-cli-found-" });
  try {
    await Deno.writeTextFile(
      `${dir}/gateway.yaml`,
      "providers:\n  - name: openai\n    apiKey: ${PF_FOUND_KEY}\n    models: [gpt-4o-mini]\n" +
        "routing:\n  defaultProvider: openai\n",
    );
    const run = (cwd: string, ...args: string[]) =>
      new Deno.Command("sh", {
        args: [`${ROOT}scripts/start.sh`, "--check", ...args],
        cwd,
        env: { DENO: Deno.execPath(), PF_FOUND_KEY: "sk-found" },
        stdout: "piped",
        stderr: "piped",
      }).output();
    const text = (o: Deno.CommandOutput) =>
      new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
    // Its ${VAR} is granted as well: the file is planned for, not just read.
    const found = await run(dir);
    assert.equal(found.code, 0, text(found));
    assert.match(text(found), /Config gateway\.yaml \(llm-gateway dialect\) is valid/);
    // A named config wins, and an empty one is the embedded default.
    const embedded = await run(dir, "--config", "");
    assert.equal(embedded.code, 0, text(embedded));
    assert.doesNotMatch(text(embedded), /gateway\.yaml/);
    // Elsewhere, nothing is found.
    const elsewhere = await run(ROOT);
    assert.equal(elsewhere.code, 0, text(elsewhere));
    assert.doesNotMatch(text(elsewhere), /gateway\.yaml/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
