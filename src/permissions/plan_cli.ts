/**
 * Phase one of `deno task start` (see scripts/start.sh): runs with read+env only, loads the
 * config the daemon will load, and prints the exact `--allow-*` flags for phase two.
 * With `--probe` it prints what the probe needs instead (connect to the socket or port, read
 * the config): no provider hosts, no credentials, no listening.
 * On a config error it prints the flags `--check` needs, so the daemon reports the problems.
 */
import { CliError, FOUND_CONFIG, isFile, parseCli } from "../cli.ts";
import { ConfigError, DEFAULT_ENV_KEYS, loadConfig, referencedEnvVars } from "../config/mod.ts";
import { applyOverrides } from "../cli.ts";
import { DAEMON_ENV, grantsToFlags, planGrants, planProbeGrants, shellQuote } from "./mod.ts";
import { resolve } from "node:path";
import { listenSettings } from "../probe.ts";

const env = (name: string) => Deno.env.get(name);
const cwd = Deno.cwd();
let flags: string[];
try {
  const cli = parseCli(Deno.args, env, isFile);
  // A missing or unreadable file is the loader's ConfigError (one clear line), read first.
  const loaded = cli.probe ? null : await loadConfig(cli.configPath, env);
  const text = cli.configPath === null
    ? null
    : await Deno.readTextFile(cli.configPath).catch(() => null);
  const ctx = { configPath: cli.configPath, configText: text, env, cwd };
  if (loaded === null) {
    // Where the daemon listens, even when the file on disk no longer loads (src/probe.ts).
    const server = await listenSettings(cli, env);
    if ("error" in server) throw new ConfigError(cli.configPath ?? "-", [server.error]);
    flags = grantsToFlags(planProbeGrants(server, ctx));
  } else {
    flags = grantsToFlags(planGrants(applyOverrides(loaded.config, cli), ctx));
  }
} catch (err) {
  if (!(err instanceof ConfigError || err instanceof CliError)) throw err;
  const path = configArg(Deno.args) ?? env("PILOTFISH_CONFIG") ??
    (isFile(FOUND_CONFIG) ? FOUND_CONFIG : undefined);
  // The file's `${VARS}` too: without them the daemon would stop at the first one it reads
  // and report a missing permission instead of the config's problems.
  const text = path ? await Deno.readTextFile(path).catch(() => null) : null;
  const vars = text === null ? [] : referencedEnvVars(text);
  flags = [
    `--allow-env=${[...new Set([...DAEMON_ENV, ...DEFAULT_ENV_KEYS, ...vars])].join(",")}`,
    ...(path ? [`--allow-read=${resolve(cwd, path)}`] : []),
  ];
}
Deno.stdout.writeSync(new TextEncoder().encode(flags.map(shellQuote).join(" ") + "\n"));

/**
 * `--config FILE`, `--config=FILE`, or Go's one-dash forms of them, as `parseCli` reads them
 * (the last one given wins).
 */
function configArg(args: readonly string[]): string | undefined {
  let path: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const m = /^--?config(?:=(.*))?$/.exec(args[i] as string);
    if (m) path = m[1] ?? args[i + 1];
  }
  return path;
}
