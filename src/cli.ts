import { parseArgs } from "node:util";
import type { Config } from "./config/mod.ts";
import { parseDuration } from "./config/duration.ts";
import { hostProblem, pathProblem, socketPathProblem } from "./config/load.ts";

export interface CliOptions {
  readonly configPath: string | null;
  /** The config was found in the working directory (`FOUND_CONFIG`), not named. */
  readonly configFound?: boolean;
  /**
   * None was named and this process may not look in the working directory (the compiled
   * binary's fixed grants): a `FOUND_CONFIG` there, if any, goes unread.
   */
  readonly configUnchecked?: boolean;
  readonly host?: string;
  readonly port?: number;
  readonly socket?: string;
  readonly check: boolean;
  /** With `--check`: unknown keys are errors. */
  readonly strict: boolean;
  readonly help: boolean;
  readonly version: boolean;
  /** `--probe`: ask a running daemon's `/ready` and exit 0/1 (exec probes). */
  readonly probe: boolean;
  /** `--probe-timeout`, in ms. */
  readonly probeTimeoutMs: number;
}

/** How long `--probe` waits for `/ready` unless `--probe-timeout` says otherwise. */
export const DEFAULT_PROBE_TIMEOUT_MS = 2_000;

export const USAGE = `Usage: pilotfish [--config FILE] [--host HOST] [--port PORT] [--socket PATH]
       pilotfish --check [--strict] [--config FILE]
       pilotfish --probe [--probe-timeout 2s] [--config FILE] [--socket PATH | --host HOST --port PORT]
       pilotfish --version | --help

Pilotfish is an LLM gateway sidecar: OpenAI/Anthropic-compatible routes on a Unix socket and a
localhost TCP port. Run it with \`deno task start [flags]\` (exact permissions) or the compiled binary.

  --config FILE   YAML config (env PILOTFISH_CONFIG). Without either, ./gateway.yaml when
                  the working directory has one (llm-gateway's Quick Start), else the
                  embedded default. Pilotfish's own keys, Butter's config.example.yaml,
                  llm-proxy's features.* and llm-gateway's gateway.yaml are all accepted.
  --host HOST     TCP listen address (default 127.0.0.1)
  --port PORT     TCP port (env PORT; default 9002)
  --socket PATH   Unix socket path ("" disables it; default /tmp/pilotfish.sock)
  --check         validate the config, list every problem with its key path, exit 1 if any
  --strict        with --check: unknown keys are errors (they are warnings otherwise)
  --probe         GET /ready from the daemon this config (and flags) describe, over its socket
                  when it exists, else its TCP port; exit 0 when ready, 1 otherwise (one line
                  on stderr). Starts nothing: for exec probes in images without a shell.
  --probe-timeout how long --probe waits, e.g. 500ms or 5s (default 2s)
  --version       print "pilotfish <version>"
  -h, --help      this text

Go's one-dash spelling works too (-config config.yaml, as Butter's README starts it).
Precedence: flag > env > config file > embedded default.
`;

/**
 * Go's flag syntax, one dash for a long option (`-config config.yaml`, `-port=9002`): Butter's
 * README starts it so. A single letter after one dash stays a short option (`-h`).
 */
function goStyle(arg: string): string {
  return /^-[a-z][a-z-]+(?:=|$)/.test(arg) ? `-${arg}` : arg;
}

export class CliError extends Error {
  override readonly name = "CliError";
}

/**
 * The config found without being named: llm-gateway's Quick Start runs its binary bare in the
 * directory that holds its `gateway.yaml`, and its users bring that habit along.
 */
export const FOUND_CONFIG = "gateway.yaml";

/**
 * Parse argv and the env vars that stand in for flags. Precedence: flag > env > config file.
 * `isFile` answers whether the working directory holds `FOUND_CONFIG` (I/O stays with the
 * caller), null when it may not look; an empty `--config` or `PILOTFISH_CONFIG` asks for the
 * embedded default outright.
 */
export function parseCli(
  args: string[],
  env: (name: string) => string | undefined,
  isFile: (path: string) => boolean | null = () => false,
): CliOptions {
  let values;
  try {
    ({ values } = parseArgs({
      // npm's habit, `deno task start -- --port 9100`: a leading `--` separates nothing here.
      args: (args[0] === "--" ? args.slice(1) : args).map(goStyle),
      options: {
        config: { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        socket: { type: "string" },
        check: { type: "boolean", default: false },
        strict: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
        version: { type: "boolean", short: "V", default: false },
        probe: { type: "boolean", default: false },
        "probe-timeout": { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  const portText = values.port ?? env("PORT");
  let port: number | undefined;
  if (portText !== undefined && portText !== "") {
    port = Number(portText);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new CliError(
        `Invalid port "${portText}" (${values.port !== undefined ? "--port" : "PORT"})`,
      );
    }
  }
  let probeTimeoutMs = DEFAULT_PROBE_TIMEOUT_MS;
  const timeoutText = values["probe-timeout"];
  if (timeoutText !== undefined) {
    if (!values.probe) throw new CliError("--probe-timeout only applies with --probe");
    const ms = parseDuration(timeoutText);
    if (ms === null || ms <= 0) {
      throw new CliError(
        `Invalid --probe-timeout "${timeoutText}" (a duration such as 500ms or 2s)`,
      );
    }
    probeTimeoutMs = ms;
  }
  if (values.strict && !values.check) throw new CliError("--strict only applies with --check");
  const named = values.config ?? env("PILOTFISH_CONFIG");
  const here = named === undefined ? isFile(FOUND_CONFIG) : false;
  const found = here === true;
  const configPath = named ?? (found ? FOUND_CONFIG : null);
  if (values.host !== undefined) {
    const problem = hostProblem(values.host);
    if (problem !== null) throw new CliError(`Invalid --host: ${problem}`);
  }
  for (const [flag, path] of [["--config", configPath], ["--socket", values.socket]] as const) {
    const problem = path ? pathProblem(path) : null;
    if (problem !== null) throw new CliError(`Invalid ${flag}: ${problem}`);
  }
  const socketProblem = values.socket ? socketPathProblem(values.socket) : null;
  if (socketProblem !== null) throw new CliError(`Invalid --socket: ${socketProblem}`);
  return {
    configPath: configPath === "" ? null : configPath,
    ...(found ? { configFound: true } : {}),
    ...(here === null ? { configUnchecked: true } : {}),
    ...(values.host !== undefined ? { host: values.host } : {}),
    ...(port !== undefined ? { port } : {}),
    ...(values.socket !== undefined ? { socket: values.socket } : {}),
    check: values.check ?? false,
    strict: values.strict ?? false,
    help: values.help ?? false,
    version: values.version ?? false,
    probe: values.probe ?? false,
    probeTimeoutMs,
  };
}

/**
 * Whether `path` is a file; null when this process may not look (the compiled binary's fixed
 * grants: that binary is given `--config`, and says at start that it could not look).
 */
export function isFile(path: string): boolean | null {
  try {
    return Deno.statSync(path).isFile;
  } catch (err) {
    return err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied
      ? null
      : false;
  }
}

/** Apply flag/env overrides on top of the loaded config. */
export function applyOverrides(config: Config, cli: CliOptions): Config {
  if (cli.host === undefined && cli.port === undefined && cli.socket === undefined) return config;
  return Object.freeze({
    ...config,
    server: Object.freeze({
      ...config.server,
      ...(cli.host !== undefined ? { host: cli.host } : {}),
      ...(cli.port !== undefined ? { port: cli.port } : {}),
      ...(cli.socket !== undefined ? { socket: cli.socket } : {}),
    }),
  });
}
