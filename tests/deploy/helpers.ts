/**
 * Shared by the deployment-example tests: the example configs checked by the daemon's own
 * `--check --strict`, the image's binary path from the Dockerfile, Kubernetes quantities and
 * the security settings every example container must have.
 * @module
 */
import assert from "node:assert/strict";
import { type Config, parseConfigText, referencedEnvVars } from "../../src/config/mod.ts";
import { runCli } from "../integration/daemon.ts";

export const ROOT = new URL("../../", import.meta.url).pathname;

/** Fake values for every `${VAR}` a config refers to, so it loads as it would when deployed. */
export function fakeEnv(configText: string): Record<string, string> {
  return Object.fromEntries(referencedEnvVars(configText).map((name) => [name, `test-${name}`]));
}

/** The config as the daemon reads it (strict: an unknown key is an error, not a warning). */
export function parseExampleConfig(text: string, source: string): Config {
  const env = fakeEnv(text);
  const loaded = parseConfigText(text, (name) => env[name], source, { strict: true });
  assert.deepEqual(loaded.warnings, [], `${source}: config warnings`);
  return loaded.config;
}

/**
 * Run the daemon's `--check --strict` on a config text, exactly as a user would
 * (`deno task start --check --strict --config FILE`), with a value for each `${VAR}`.
 */
export async function assertPassesCheck(text: string, source: string): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-deploy-" });
  try {
    const file = `${dir}/pilotfish.yaml`;
    await Deno.writeTextFile(file, text);
    const r = await runCli(["--check", "--strict", "--config", file], fakeEnv(text));
    assert.equal(r.code, 0, `${source}: --check failed:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout + r.stderr, /is valid/, source);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The binary the image runs (the Dockerfile's ENTRYPOINT): what exec probes must call. */
export async function imageBinary(): Promise<string> {
  const dockerfile = await Deno.readTextFile(`${ROOT}Dockerfile`);
  const line = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile);
  assert.ok(line, "Dockerfile: no exec-form ENTRYPOINT");
  const argv: unknown = JSON.parse(line[1]!);
  assert.ok(Array.isArray(argv) && typeof argv[0] === "string", "Dockerfile: ENTRYPOINT argv");
  return argv[0];
}

/** The exec probe every example uses: the binary's probe mode against the socket. */
export function probeCommand(binary: string, socket: string): string[] {
  return [binary, "--probe", "--socket", socket];
}

const QUANTITY_UNITS: Record<string, number> = {
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  m: 1e-3,
};

/** A Kubernetes quantity (`128Mi`, `100m`, `"1"`) as a number (bytes, cores). */
export function quantity(value: unknown): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|k|M|G|m|)$/.exec(String(value));
  if (!m) throw new Error(`not a Kubernetes quantity: ${JSON.stringify(value)}`);
  return Number(m[1]) * QUANTITY_UNITS[m[2]!]!;
}

/** The bench's resident-set figures (bench/main.ts, VmRSS), in bytes. */
export const RSS = { idle: 63e6, withRedis: 110e6, peak: 200e6 } as const;

/** `0660` → can the socket's group read and write it? */
export function groupCanUse(socketMode: number): boolean {
  return (socketMode & 0o060) === 0o060;
}

/** Parse `http://host:port/...` from an SDK base URL env value. */
export function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
}
