import assert from "node:assert/strict";
import { applyOverrides, CliError, isFile, parseCli } from "../src/cli.ts";
import { parseConfigText } from "../src/config/mod.ts";

const env = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("parseCli() reads flags, with env standing in for missing ones", async (t) => {
  await t.step("no flags, no env: embedded default, no overrides", () => {
    const cli = parseCli([], env({}));
    assert.equal(cli.configPath, null);
    assert.equal(cli.port, undefined);
    assert.equal(cli.check, false);
  });
  await t.step("PILOTFISH_CONFIG and PORT from env", () => {
    const cli = parseCli([], env({ PILOTFISH_CONFIG: "/etc/pf.yaml", PORT: "9100" }));
    assert.equal(cli.configPath, "/etc/pf.yaml");
    assert.equal(cli.port, 9100);
  });
  await t.step("flags win over env", () => {
    const cli = parseCli(
      ["--config", "a.yaml", "--port", "9200", "--host", "0.0.0.0", "--socket", "", "--check"],
      env({ PILOTFISH_CONFIG: "/etc/pf.yaml", PORT: "9100" }),
    );
    assert.equal(cli.configPath, "a.yaml");
    assert.equal(cli.port, 9200);
    assert.equal(cli.host, "0.0.0.0");
    assert.equal(cli.socket, "");
    assert.equal(cli.check, true);
  });
  await t.step("a leading -- (npm's habit: deno task start -- --port 9100) is ignored", () => {
    const cli = parseCli(["--", "--port", "9100", "--check"], env({}));
    assert.equal(cli.port, 9100);
    assert.equal(cli.check, true);
  });
  await t.step("bad input is a CliError naming the problem", () => {
    assert.throws(
      () => parseCli(["--port", "http"], env({})),
      (e: unknown) => e instanceof CliError && /Invalid port "http" \(--port\)/.test(e.message),
    );
    assert.throws(
      () => parseCli([], env({ PORT: "70000" })),
      (e: unknown) => e instanceof CliError && /Invalid port "70000" \(PORT\)/.test(e.message),
    );
    assert.throws(
      () => parseCli(["--host", "bad_host!"], env({})),
      (e: unknown) => e instanceof CliError && /Invalid --host: "bad_host!"/.test(e.message),
    );
    assert.throws(
      () => parseCli(["--socket", "/tmp/a,b.sock"], env({})),
      (e: unknown) => e instanceof CliError && /Invalid --socket: .*comma/.test(e.message),
    );
    assert.throws(
      () => parseCli([], env({ PILOTFISH_CONFIG: "/etc/p,f.yaml" })),
      (e: unknown) => e instanceof CliError && /Invalid --config: .*comma/.test(e.message),
    );
    assert.throws(
      () => parseCli(["--strict"], env({})),
      (e: unknown) => e instanceof CliError && /--strict only applies with --check/.test(e.message),
    );
    assert.throws(() => parseCli(["--bogus"], env({})), CliError);
    assert.throws(() => parseCli(["stray"], env({})), CliError);
  });
});

Deno.test("applyOverrides() puts flags and env above the config file", () => {
  const { config } = parseConfigText(
    "server:\n  port: 9300\n  host: 127.0.0.2\n",
    () => undefined,
    "t",
  );
  const same = applyOverrides(config, parseCli([], env({})));
  assert.equal(same, config, "no overrides: the same frozen object");
  const out = applyOverrides(config, parseCli(["--socket", "/tmp/x.sock"], env({ PORT: "9400" })));
  assert.equal(out.server.port, 9400);
  assert.equal(out.server.host, "127.0.0.2");
  assert.equal(out.server.socket, "/tmp/x.sock");
  assert.ok(Object.isFrozen(out.server));
});

Deno.test("parseCli() reads --version, --help, --check and --strict", () => {
  const cli = parseCli(["--check", "--strict"], env({}));
  assert.equal(cli.check, true);
  assert.equal(cli.strict, true);
  assert.equal(cli.version, false);
  assert.equal(parseCli(["--version"], env({})).version, true);
  assert.equal(parseCli(["-V"], env({})).version, true);
  assert.equal(parseCli(["-h"], env({})).help, true);
  assert.equal(parseCli([], env({})).strict, false);
});

Deno.test("parseCli() takes Go's one-dash long options (Butter's `-config config.yaml`)", () => {
  const cli = parseCli(["-config", "config.yaml", "-port=9100", "-check", "-h"], env({}));
  assert.equal(cli.configPath, "config.yaml");
  assert.equal(cli.port, 9100);
  assert.equal(cli.check, true);
  assert.equal(cli.help, true);
  assert.throws(() => parseCli(["-nope"], env({})), CliError);
});

Deno.test("parseCli() finds ./gateway.yaml when no config is named (llm-gateway's Quick Start)", () => {
  const here = (name: string) => name === "gateway.yaml";
  assert.equal(parseCli([], env({}), here).configPath, "gateway.yaml");
  assert.equal(parseCli([], env({}), here).configFound, true);
  assert.equal(parseCli(["--config", "gateway.yaml"], env({}), here).configFound, undefined);
  // Named configs win; an empty name asks for the embedded default; no file, no config.
  assert.equal(parseCli(["--config", "mine.yaml"], env({}), here).configPath, "mine.yaml");
  assert.equal(
    parseCli([], env({ PILOTFISH_CONFIG: "env.yaml" }), here).configPath,
    "env.yaml",
  );
  assert.equal(parseCli(["--config", ""], env({}), here).configPath, null);
  assert.equal(parseCli([], env({ PILOTFISH_CONFIG: "" }), here).configPath, null);
  assert.equal(parseCli([], env({}), () => false).configPath, null);
});

Deno.test("parseCli(): a working directory it may not look in is said (the compiled binary), never for a named config", () => {
  const barred = () => null;
  const cli = parseCli([], env({}), barred);
  assert.equal(cli.configPath, null);
  assert.equal(cli.configUnchecked, true);
  assert.equal(cli.configFound, undefined);
  assert.equal(parseCli([], env({}), () => false).configUnchecked, undefined);
  assert.equal(parseCli(["--config", ""], env({}), barred).configUnchecked, undefined);
  assert.equal(parseCli(["--config", "a.yaml"], env({}), barred).configUnchecked, undefined);
  assert.equal(
    parseCli([], env({ PILOTFISH_CONFIG: "a.yaml" }), barred).configUnchecked,
    undefined,
  );
});

Deno.test("isFile(): true, false, or null when this process may not look", async () => {
  assert.equal(isFile(new URL(import.meta.url).pathname), true);
  assert.equal(isFile("/nonexistent/gateway.yaml"), false);
  // A process granted read on another folder only, as the compiled binary is.
  const cli = new URL("../src/cli.ts", import.meta.url).href;
  const barred = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-read=/nonexistent", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = barred.stdin.getWriter();
  await w.write(
    new TextEncoder().encode(
      `import { isFile } from "${cli}"; console.log(JSON.stringify(isFile("gateway.yaml")));`,
    ),
  );
  await w.close();
  const res = await barred.output();
  assert.equal(
    new TextDecoder().decode(res.stdout).trim(),
    "null",
    new TextDecoder().decode(res.stderr),
  );
});
