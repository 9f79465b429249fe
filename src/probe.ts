/**
 * `--probe`: is the daemon this config describes ready? For exec probes (Kubernetes
 * `startupProbe`/`livenessProbe`, compose `healthcheck`) in images without a shell or curl.
 * It resolves the listen addresses exactly as the daemon does (config file, env, flags),
 * sends one `GET /ready` over the Unix socket when the socket exists, else over the TCP port,
 * and exits 0 on a 200, 1 on anything else or when the timeout passes, with one line on
 * stderr. It starts no listener and touches nothing but that one connection (the planner's
 * probe grants: src/permissions/plan.ts `planProbeGrants`).
 * @module
 */
import { applyOverrides, type CliOptions } from "./cli.ts";
import YAML from "yaml";
import { type Config, ConfigError, loadConfig, parseConfigText } from "./config/mod.ts";
import { probeHost } from "./permissions/plan.ts";

export type ProbeTarget =
  | { readonly transport: "unix"; readonly path: string }
  | { readonly transport: "tcp"; readonly hostname: string; readonly port: number };

export type ProbeResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Enough for any status line; a longer first line is not HTTP. */
const MAX_STATUS_LINE = 8 * 1024;

export function describeTarget(target: ProbeTarget): string {
  if (target.transport === "unix") return `unix:${target.path}`;
  const host = target.hostname.includes(":") ? `[${target.hostname}]` : target.hostname;
  return `${host}:${target.port}`;
}

/**
 * Where the daemon for `cli` answers: its socket when configured and present (it is the
 * sidecar's main door and needs no port), else its TCP listener.
 */
export async function probeTarget(
  cli: CliOptions,
  env: (name: string) => string | undefined,
): Promise<ProbeTarget | { readonly error: string }> {
  const server = await listenSettings(cli, env);
  if ("error" in server) return server;
  let socketState = "";
  if (server.socket !== "") {
    try {
      if ((await Deno.stat(server.socket)).isSocket) {
        return { transport: "unix", path: server.socket };
      }
      socketState = ` (${server.socket} is not a socket)`;
    } catch (err) {
      socketState = err instanceof Deno.errors.NotFound
        ? ` (no socket at ${server.socket})`
        : ` (cannot stat ${server.socket}: ${(err as Error).name})`;
    }
  }
  if (server.tcp) {
    return { transport: "tcp", hostname: probeHost(server.host), port: server.port };
  }
  return { error: `nothing to probe: TCP is disabled${socketState || " and so is the socket"}` };
}

/**
 * Where the daemon for `cli` listens, as it resolved it. A running daemon keeps its config
 * when an edit on disk is refused, so a probe must not fail it for that (a liveness probe
 * would kill a healthy pod): when the file no longer loads, its `server` section alone, else
 * the flags on the defaults, still say where it listens. The planner uses this for the
 * probe's grants too.
 */
export async function listenSettings(
  cli: CliOptions,
  env: (name: string) => string | undefined,
): Promise<Config["server"] | { readonly error: string }> {
  try {
    return applyOverrides((await loadConfig(cli.configPath, env)).config, cli).server;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return await serverOnly(cli, env) ??
      { error: `cannot tell where the daemon listens: ${err.problems[0] ?? err.message}` };
  }
}

/**
 * The listen settings when the whole file does not load: its `server` section alone (a typo
 * elsewhere says nothing about where the daemon listens), else, when `--socket` or `--port`
 * say it, the defaults under the flags; null when neither can tell.
 */
async function serverOnly(
  cli: CliOptions,
  env: (name: string) => string | undefined,
): Promise<Config["server"] | null> {
  const parse = (section: unknown) =>
    applyOverrides(
      parseConfigText(JSON.stringify({ server: section ?? {} }), env, cli.configPath ?? "-")
        .config,
      cli,
    ).server;
  try {
    const raw: unknown = YAML.parse(await Deno.readTextFile(cli.configPath!));
    const section = raw !== null && typeof raw === "object"
      ? (raw as Record<string, unknown>).server
      : undefined;
    if (section !== undefined) return parse(section);
  } catch { /* unreadable, not YAML, or a bad server section: the flags may still say */ }
  if (cli.socket === undefined && cli.port === undefined) return null;
  try {
    return parse({});
  } catch {
    return null;
  }
}

/**
 * One `GET /ready` over a fresh connection, with a hand-written HTTP/1.1 request: a fetch
 * client would also need a net grant for the URL's placeholder host. Settles within
 * `timeoutMs` whatever the peer does (accepts and stalls, drips bytes, never answers).
 */
export async function probeReady(target: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
  const where = describeTarget(target);
  let conn: Deno.Conn | null = null;
  let timedOut = false;
  const { promise: deadline, resolve: expire } = Promise.withResolvers<null>();
  const timer = setTimeout(() => {
    timedOut = true;
    expire(null);
    // Unblocks a pending read or write on a peer that accepted and went quiet.
    try {
      conn?.close();
    } catch { /* already closed */ }
  }, timeoutMs);
  const late = (): ProbeResult => ({
    ok: false,
    reason: `no answer from ${where} within ${timeoutMs}ms`,
  });
  try {
    const connecting = target.transport === "unix"
      ? Deno.connect({ transport: "unix", path: target.path })
      : Deno.connect({ hostname: target.hostname, port: target.port });
    // A connect that hangs (a filtered port) is bounded by the same deadline.
    conn = await Promise.race([connecting, deadline]);
    if (conn === null) {
      connecting.then((c) => c.close(), () => {});
      return late();
    }
    const host = target.transport === "unix" ? "localhost" : where;
    await writeAll(
      conn,
      new TextEncoder().encode(
        `GET /ready HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: pilotfish-probe\r\n` +
          `Accept: */*\r\nConnection: close\r\n\r\n`,
      ),
    );
    const line = await readStatusLine(conn);
    if (line === null) {
      return timedOut ? late() : {
        ok: false,
        reason: `${where} closed the connection without an HTTP answer`,
      };
    }
    const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(line)?.[1];
    if (status === undefined) return { ok: false, reason: `${where} did not answer HTTP` };
    if (status === "200") return { ok: true };
    return { ok: false, reason: `GET /ready on ${where} answered ${status} (not ready)` };
  } catch (err) {
    if (timedOut) return late();
    return { ok: false, reason: connectFailure(err, where, target) };
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed by the timer or the peer */ }
  }
}

/** `--probe` from the CLI: exit code 0 (ready) or 1, one `pilotfish: probe ...` line on failure. */
export async function runProbe(
  cli: CliOptions,
  env: (name: string) => string | undefined,
): Promise<number> {
  const target = await probeTarget(cli, env);
  const result: ProbeResult = "error" in target
    ? { ok: false, reason: target.error }
    : await probeReady(target, cli.probeTimeoutMs);
  if (result.ok) return 0;
  Deno.stderr.writeSync(new TextEncoder().encode(`pilotfish: probe failed: ${result.reason}\n`));
  return 1;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** The first line of the answer, or null when the peer closes first. */
async function readStatusLine(conn: Deno.Conn): Promise<string | null> {
  const buf = new Uint8Array(MAX_STATUS_LINE);
  let filled = 0;
  while (filled < buf.length) {
    const n = await conn.read(buf.subarray(filled));
    if (n === null) break;
    filled += n;
    const end = buf.subarray(0, filled).indexOf(0x0a);
    if (end >= 0) return new TextDecoder().decode(buf.subarray(0, end)).replace(/\r$/, "");
  }
  return filled === 0 ? null : new TextDecoder().decode(buf.subarray(0, filled));
}

function connectFailure(err: unknown, where: string, target: ProbeTarget): string {
  if (err instanceof Deno.errors.ConnectionRefused || err instanceof Deno.errors.NotFound) {
    return `nothing is listening on ${where}`;
  }
  if (err instanceof Deno.errors.NotCapable) {
    const flags = target.transport === "unix"
      ? `--allow-net=unix:${target.path} --allow-read=${target.path} --allow-write=${target.path}`
      : `--allow-net=${where}`;
    return `this process may not connect to ${where} (missing ${flags}; ` +
      "`deno task start --probe` grants it)";
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return `cannot reach ${where}: ${e.name}: ${e.message.split("\n", 1)[0]}`;
}
