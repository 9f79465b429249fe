/**
 * Pilotfish daemon: read flags/env → load config → check permissions → build the runtime
 * → serve on TCP and the Unix socket → hot reload → drain on SIGINT/SIGTERM.
 */
import { applyOverrides, CliError, type CliOptions, parseCli, USAGE } from "./cli.ts";
import {
  type Config,
  ConfigError,
  fileFingerprint,
  loadConfig,
  type LoadedConfig,
  watchConfigFile,
} from "./config/mod.ts";
import { missingGrants, planGrants } from "./permissions/mod.ts";
import { createRoutingState } from "./routing/mod.ts";
import { createBreakerStore } from "./breaker/factory.ts";
import { buildRuntime, type Runtime, secretsOf } from "./runtime.ts";
import { createLogger, createRedactor } from "./telemetry/mod.ts";
import { createApp } from "./server/app.ts";
import { startListeners } from "./server/listeners.ts";

const env = (name: string) => Deno.env.get(name);
const encoder = new TextEncoder();
const stderr = (text: string) =>
  Deno.stderr.writeSync(encoder.encode(text.endsWith("\n") ? text : text + "\n"));

async function load(cli: CliOptions): Promise<{ loaded: LoadedConfig; config: Config }> {
  const loaded = await loadConfig(cli.configPath, env);
  return { loaded, config: applyOverrides(loaded.config, cli) };
}

/** Grants this config needs that the process lacks, as flags. */
async function missingFor(config: Config, cli: CliOptions): Promise<string[]> {
  const text = cli.configPath === null
    ? null
    : await Deno.readTextFile(cli.configPath).catch(() => null);
  return missingGrants(
    planGrants(config, { configPath: cli.configPath, configText: text, cwd: Deno.cwd(), env }),
  );
}

async function main(): Promise<number> {
  let cli: CliOptions;
  try {
    cli = parseCli(Deno.args, env);
  } catch (err) {
    stderr(`${(err as CliError).message}\n\n${USAGE}`);
    return 2;
  }
  if (cli.help) {
    Deno.stdout.writeSync(encoder.encode(USAGE));
    return 0;
  }

  // Fingerprint before reading, so an edit racing the first load is still picked up.
  const initialFingerprint = cli.configPath === null ? "" : await fileFingerprint(cli.configPath);
  let first: { loaded: LoadedConfig; config: Config };
  try {
    first = await load(cli);
  } catch (err) {
    if (err instanceof ConfigError) {
      stderr(err.message);
      return 1;
    }
    throw err;
  }
  if (cli.check) {
    for (const w of first.loaded.warnings) stderr(`warning: ${w}`);
    Deno.stdout.writeSync(encoder.encode(`Config ${first.loaded.source} is valid\n`));
    return 0;
  }

  const missing = await missingFor(first.config, cli);
  if (missing.length > 0) {
    stderr(
      `Pilotfish lacks permissions its config needs; start it with \`deno task start\`, or add:\n  ${
        missing.join(" ")
      }`,
    );
    return 1;
  }

  const deps = {
    fetch: globalThis.fetch,
    random: Math.random,
    routing: createRoutingState(),
    breakerStore: await createBreakerStore(
      first.config,
      createLogger({
        level: first.config.logging.level,
        redact: createRedactor(secretsOf(first.config)),
      }),
    ),
  };
  let runtime: Runtime = buildRuntime(first.config, 1, deps);
  const log = () => runtime.logger;
  for (const w of first.loaded.warnings) log().warn("config warning", { warning: w });

  let isReady = false;
  const app = createApp({ runtime: () => runtime, isReady: () => isReady });
  const listeners = await startListeners(
    (req, info) => app.fetch(req, { remoteAddr: info.remoteAddr }),
    runtime.config.server,
    log(),
  );
  isReady = true;
  log().info("pilotfish listening", {
    tcp: listeners.tcp ? `${listeners.tcp.hostname}:${listeners.tcp.port}` : null,
    socket: listeners.socket,
    config: first.loaded.source,
    providers: Object.keys(runtime.config.providers),
  });

  // Hot reload: validate the new file fully before swapping; a bad one changes nothing.
  let stopWatching = () => {};
  if (cli.configPath !== null && runtime.config.server.reload_interval > 0) {
    const path = cli.configPath;
    stopWatching = watchConfigFile(
      path,
      runtime.config.server.reload_interval,
      initialFingerprint,
      async () => {
        try {
          const next = await load(cli);
          const lacking = await missingFor(next.config, cli);
          if (lacking.length > 0) {
            log().error(
              "config reload refused: it needs permissions this process was not started with; restart to apply",
              {
                path,
                missing: lacking,
              },
            );
            return;
          }
          if (JSON.stringify(next.config.server) !== JSON.stringify(runtime.config.server)) {
            log().warn("config reload: server.* changes take effect on restart", { path });
          }
          runtime = buildRuntime(next.config, runtime.generation + 1, deps);
          for (const w of next.loaded.warnings) log().warn("config warning", { warning: w });
          log().info("config reloaded", { path, generation: runtime.generation });
        } catch (err) {
          log().error("config reload refused; the running config stays in force", {
            path,
            problems: err instanceof ConfigError ? err.problems : [String(err)],
          });
        }
      },
    );
  }

  // Graceful shutdown: stop accepting, drain in-flight requests and streams, exit 0.
  const { promise: stopSignal, resolve: stop } = Promise.withResolvers<string>();
  for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, () => stop(sig));
  const signal = await stopSignal;
  log().info("shutting down", { signal, drain_timeout_ms: runtime.config.server.drain_timeout });
  isReady = false;
  stopWatching();
  const drained = await listeners.shutdown(runtime.config.server.drain_timeout);
  await deps.breakerStore.close();
  log().info(
    drained ? "shutdown complete" : "drain timeout reached; closing remaining connections",
  );
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main());
}
