/**
 * examples/systemd: the unit has the hardening the README promises (checked by value, and by
 * `systemd-analyze security --offline` when systemd-analyze is on the machine), `systemd-
 * analyze verify` finds nothing to say about it, and the config it starts passes the daemon's
 * `--check --strict`. verify runs against a throwaway root holding this machine's units, the
 * unit, and a stand-in at the ExecStart path (the compiled binary is not built here).
 */
import assert from "node:assert/strict";
import { assertPassesCheck, parseExampleConfig, ROOT } from "./helpers.ts";

const DIR = `${ROOT}examples/systemd/`;
const UNIT = "pilotfish.service";

function findOnPath(name: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch { /* not in this directory */ }
  }
  return null;
}

const ANALYZE = findOnPath("systemd-analyze");
/** `systemd-analyze security --offline` arrived in systemd 250. */
const ANALYZE_VERSION = ANALYZE === null ? 0 : Number(
  /systemd (\d+)/.exec(
    new TextDecoder().decode(
      new Deno.Command(ANALYZE, { args: ["--version"] }).outputSync().stdout,
    ),
  )?.[1] ?? 0,
);
/** Shown in the test's name when it is skipped, so the report says why. */
const SKIPPED = ANALYZE === null
  ? " (skipped: systemd-analyze is not installed; apt-get install systemd)"
  : ANALYZE_VERSION < 250
  ? ` (skipped: systemd ${ANALYZE_VERSION} has no security --offline; 250+ has)`
  : "";

/** `[Section]` → its `Key=value` lines in order (repeatable keys stay separate). */
function parseUnit(text: string): Map<string, [string, string][]> {
  const sections = new Map<string, [string, string][]>();
  let current: [string, string][] | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = [];
      sections.set(header[1]!, current);
      continue;
    }
    const eq = line.indexOf("=");
    assert.ok(current && eq > 0, `not a unit line: ${line}`);
    current.push([line.slice(0, eq), line.slice(eq + 1)]);
  }
  return sections;
}

function values(unit: Map<string, [string, string][]>, key: string): string[] {
  return (unit.get("Service") ?? []).filter(([k]) => k === key).map(([, v]) => v);
}

/** The hardening and wiring of the unit, as problems (`[]`: all there). */
async function unitProblems(text: string): Promise<string[]> {
  const unit = parseUnit(text);
  const one = (key: string) => values(unit, key).at(-1);
  const problems: string[] = [];
  const want: Record<string, string> = {
    ProtectSystem: "strict",
    ProtectHome: "yes",
    PrivateTmp: "yes",
    NoNewPrivileges: "yes",
    CapabilityBoundingSet: "",
    RestrictAddressFamilies: "AF_UNIX AF_INET AF_INET6",
    RuntimeDirectory: "pilotfish",
  };
  for (const [key, value] of Object.entries(want)) {
    if (one(key) !== value) problems.push(`${key}=${value} (is ${one(key) ?? "unset"})`);
  }
  if (!values(unit, "SystemCallFilter").includes("@system-service")) {
    problems.push("SystemCallFilter=@system-service");
  }
  const user = one("User");
  if (one("DynamicUser") !== "yes" && (!user || user === "root" || user === "0")) {
    problems.push("a dedicated User= or DynamicUser=yes");
  }
  if (!one("EnvironmentFile")) problems.push("EnvironmentFile= for the keys");
  if (one("ExecReload") !== undefined) problems.push("no ExecReload= (the file is hot reloaded)");
  if (one("MemoryDenyWriteExecute") === "yes") {
    problems.push("MemoryDenyWriteExecute=yes breaks V8's JIT");
  }
  const exec = one("ExecStart")?.split(/\s+/) ?? [];
  if (exec[0] !== "/usr/local/bin/pilotfish" || exec[1] !== "--config" || !exec[2]) {
    return [...problems, `ExecStart=/usr/local/bin/pilotfish --config FILE (is ${exec.join(" ")})`];
  }

  // The config it starts: the socket in the RuntimeDirectory, drained before the stop timeout.
  const example = `${DIR}${exec[2].slice(exec[2].lastIndexOf("/") + 1)}`;
  const config = parseExampleConfig(await Deno.readTextFile(example), example);
  const runtimeDirs = [`/run/${one("RuntimeDirectory")}`, `/var/run/${one("RuntimeDirectory")}`];
  const socketDir = config.server.socket.slice(0, config.server.socket.lastIndexOf("/"));
  if (!runtimeDirs.includes(socketDir)) problems.push(`the socket is not in ${runtimeDirs[0]}`);
  if ((config.server.socket_mode & 0o060) !== 0o060) problems.push("socket_mode 0660");
  const stop = /^(\d+)s$/.exec(one("TimeoutStopSec") ?? "");
  if (!stop || Number(stop[1]) * 1000 <= config.server.drain_timeout) {
    problems.push("TimeoutStopSec= must exceed server.drain_timeout");
  }
  return problems;
}

/** `systemd-analyze verify` in a throwaway root: everything it prints is a problem. */
async function verifyProblems(unitText: string): Promise<string[]> {
  const root = await Deno.makeTempDir({ prefix: "pilotfish-systemd-" });
  try {
    const units = ["/usr/lib/systemd/system", "/lib/systemd/system"].find((d) => {
      try {
        return Deno.statSync(d).isDirectory;
      } catch {
        return false;
      }
    });
    assert.ok(units, "no system unit directory to verify against");
    await Deno.mkdir(`${root}/usr/lib/systemd`, { recursive: true });
    const cp = await new Deno.Command("cp", { args: ["-a", units, `${root}/usr/lib/systemd/`] })
      .output();
    assert.equal(cp.code, 0, new TextDecoder().decode(cp.stderr));
    const exec = /^ExecStart=(\/\S+)/m.exec(unitText)?.[1];
    assert.ok(exec !== undefined, "ExecStart= with an absolute path");
    await Deno.mkdir(`${root}${exec.slice(0, exec.lastIndexOf("/"))}`, { recursive: true });
    await Deno.writeTextFile(`${root}${exec}`, "#!/bin/sh\n", { mode: 0o755 });
    await Deno.mkdir(`${root}/etc/systemd/system`, { recursive: true });
    await Deno.writeTextFile(`${root}/etc/systemd/system/${UNIT}`, unitText);
    const out = await new Deno.Command(ANALYZE!, {
      args: ["verify", "--man=no", `--root=${root}`, UNIT],
      env: { SYSTEMD_LOG_COLOR: "0" },
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    const lines = text.split("\n").filter((l) => l.trim() !== "");
    return out.code === 0 ? lines : [`exit ${out.code}`, ...lines];
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const unitText = await Deno.readTextFile(`${DIR}${UNIT}`);

Deno.test("pilotfish.service: hardened as the README says, socket in its RuntimeDirectory", async () => {
  assert.deepEqual(await unitProblems(unitText), []);
});

Deno.test("the unit check names each missing hardening setting", async () => {
  const cases: [string, string, string][] = [
    ["ProtectSystem=strict", "ProtectSystem=full", "ProtectSystem=strict (is full)"],
    [
      "CapabilityBoundingSet=\n",
      "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
      "CapabilityBoundingSet= (is CAP_NET_BIND_SERVICE)",
    ],
    ["User=pilotfish\n", "User=root\n", "a dedicated User= or DynamicUser=yes"],
    [
      "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
      "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
      "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 (is AF_UNIX AF_INET AF_INET6 AF_NETLINK)",
    ],
    ["TimeoutStopSec=30s", "TimeoutStopSec=5s", "TimeoutStopSec= must exceed server.drain_timeout"],
    [
      "[Install]",
      "MemoryDenyWriteExecute=yes\n\n[Install]",
      "MemoryDenyWriteExecute=yes breaks V8's JIT",
    ],
  ];
  for (const [from, to, expected] of cases) {
    assert.ok(unitText.includes(from), from);
    const problems = await unitProblems(unitText.replace(from, to));
    assert.ok(problems.includes(expected), `${to}: ${problems.join("; ")}`);
  }
});

Deno.test({
  name: `pilotfish.service: systemd-analyze verify has nothing to say${SKIPPED}`,
  ignore: ANALYZE === null,
  async fn() {
    assert.deepEqual(await verifyProblems(unitText), []);
  },
});

Deno.test({
  name: `systemd-analyze verify reports a misspelt directive and a bad value${SKIPPED}`,
  ignore: ANALYZE === null,
  async fn() {
    const bad = unitText.replace(
      "ProtectSystem=strict",
      "ProtectSystem=bogus\nProtectSytem=strict",
    );
    const problems = (await verifyProblems(bad)).join("\n");
    assert.match(problems, /Failed to parse protect system value, ignoring: bogus/);
    assert.match(problems, /Unknown key '?ProtectSytem'? in section \[?Service\]?/);
  },
});

Deno.test({
  name: `pilotfish.service: systemd-analyze security rates its exposure OK (<= 2.0)${SKIPPED}`,
  ignore: ANALYZE_VERSION < 250,
  async fn() {
    const out = await new Deno.Command(ANALYZE!, {
      args: ["security", "--offline=yes", "--threshold=20", "--no-pager", `${DIR}${UNIT}`],
      env: { SYSTEMD_COLORS: "0" },
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    const level = /Overall exposure level for \S+: (\d+\.\d+)/.exec(text)?.[1];
    assert.ok(level !== undefined, text + new TextDecoder().decode(out.stderr));
    assert.ok(Number(level) <= 2.0, `exposure ${level}:\n${text}`);
    assert.equal(out.code, 0, text);
  },
});

Deno.test("pilotfish.sysusers creates the unit's User= and Group=", async () => {
  const sysusers = await Deno.readTextFile(`${DIR}pilotfish.sysusers`);
  const line = sysusers.split("\n").find((l) => l.startsWith("u "));
  const unit = parseUnit(unitText);
  assert.equal(line?.split(/\s+/)[1], values(unit, "User")[0]);
  // A `u` line creates the group of the same name too.
  assert.equal(values(unit, "Group")[0], values(unit, "User")[0]);
});

Deno.test("examples/systemd/pilotfish.yaml passes the daemon's --check --strict", async () => {
  const file = `${DIR}pilotfish.yaml`;
  await assertPassesCheck(await Deno.readTextFile(file), file);
});
