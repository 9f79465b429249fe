/**
 * Pilotfish daemon: read flags/env -> load config -> check permissions -> build the runtime
 * -> serve on TCP and the Unix socket -> hot reload -> drain on SIGINT/SIGTERM.
 */
import { applyOverrides, CliError, type CliOptions, isFile, parseCli, USAGE } from "./cli.ts";
import {
  type Config,
  ConfigError,
  fileFingerprint,
  loadConfig,
  type LoadedConfig,
  type LoadOptions,
  watchConfigFile,
} from "./config/mod.ts";
import { missingGrants, planGrants } from "./permissions/mod.ts";
import { COMPILED_GRANTS, launchHint, narrowPermissions, planFor } from "./permissions/narrow.ts";
import { runProbe } from "./probe.ts";
import { createRoutingState } from "./routing/mod.ts";
import { createBreakerStore } from "./breaker/factory.ts";
import { breakerTiming } from "./breaker/timing.ts";
import { createStateResources } from "./usage/mod.ts";
import { buildRuntime, keyValues, type Runtime, secretsOf } from "./runtime.ts";
import { preloadTelemetry } from "./telemetry/hub.ts";
import { createResponsesStore } from "./responses_store/mod.ts";
import { createLogger, createRedactor } from "./telemetry/mod.ts";
import { createApp } from "./server/app.ts";
import { createControl, type ReloadResult } from "./pipeline/control.ts";
import { ListenError, startListeners } from "./server/listeners.ts";
import { VERSION } from "./version.ts";
import { pluginConfigProblems } from "./plugins/mod.ts";
import { GatewayError } from "./errors.ts";
import { StateFileError } from "./state/errors.ts";
import { cutUpstreamCalls } from "./providers/execute.ts";
import { createHttp1Client } from "./net/http1.ts";
import { closeLimits } from "./limits/mod.ts";

const env = (name: string) => Deno.env.get(name);
const encoder = new TextEncoder();
const stderr = (text: string) =>
  Deno.stderr.writeSync(encoder.encode(text.endsWith("\n") ? text : text + "\n"));

/** A reason the daemon cannot start, already worded as the one line the user sees. */
class StartupError extends Error {
  override readonly name = "StartupError";
}

async function load(
  cli: CliOptions,
  opts: LoadOptions = {},
  lookup: (name: string) => string | undefined = env,
): Promise<{ loaded: LoadedConfig; config: Config }> {
  const loaded = await loadConfig(cli.configPath, lookup, opts);
  const config = applyOverrides(loaded.config, cli);
  if (!config.server.tcp && config.server.socket === "") {
    // Flags may supply a socket the file does not: judged after them.
    throw new ConfigError(loaded.source, [
      "server: Nothing to listen on: tcp is false and socket is empty (set server.socket or " +
      "--socket, or tcp: true)",
    ]);
  }
  return { loaded, config };
}

/**
 * Startup failures as one line, never a stack trace: the flag to change for a busy port or
 * socket, the path and reason for a config, the permission that is missing.
 */
function startupLine(err: unknown): string {
  if (
    err instanceof StartupError || err instanceof ListenError || err instanceof CliError ||
    err instanceof StateFileError
  ) {
    return err.message;
  }
  if (err instanceof ConfigError) {
    const [first, ...rest] = err.problems;
    if (first?.startsWith("Cannot read file: ") && rest.length === 0) {
      return `Cannot read config ${err.source}: ${first.slice("Cannot read file: ".length)}`;
    }
    const more = rest.length > 0 ? ` (+${rest.length} more; \`--check\` lists them all)` : "";
    return `Invalid config ${err.source}: ${first ?? "unknown problem"}${more}`;
  }
  if (err instanceof Deno.errors.NotCapable) {
    // Deno's wording names the permission: 'Requires env access to "PORT", run again with ...'.
    return `Missing permission: ${firstLine(err.message)} (${launchHint()})`;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return `Startup failed: ${e.name}: ${firstLine(e.message)}`;
}

function firstLine(text: string): string {
  return text.split("\n", 1)[0] ?? "";
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

/**
 * A permission the reloaded file needed while it was read (a `${VAR}` not granted at start),
 * as its flag; null for any other error.
 */
function missingPermission(err: unknown): string | null {
  if (!(err instanceof Deno.errors.NotCapable) && !(err instanceof Deno.errors.PermissionDenied)) {
    return null;
  }
  const m = /Requires (\w+) access to "([^"]*)"/.exec((err as Error).message);
  return m ? `--allow-${m[1]}=${m[2]}` : null;
}

/** Where the breaker's state lives for `config` (`createBreakerStore` chooses it at start). */
function breakerBackend(config: Config): "memory" | "redis" {
  const cb = config.features.circuit_breaker;
  return cb.enabled && (cb.backend ?? config.state.backend) === "redis" ? "redis" : "memory";
}

/** `server.*` keys read only at start: the listeners and the file watcher. */
const RESTART_KEYS = [
  "host",
  "port",
  "address",
  "tcp",
  "socket",
  "socket_mode",
  "reload_interval",
] as const;

function changedRestartKeys(running: Config["server"], next: Config["server"]): string[] {
  return RESTART_KEYS.filter((k) => JSON.stringify(running[k]) !== JSON.stringify(next[k]));
}

/** `next` with the running listener settings: a reload does not move them. */
function keepListeners(next: Config, running: Config["server"]): Config {
  const server = { ...next.server };
  for (const k of RESTART_KEYS) (server as Record<string, unknown>)[k] = running[k];
  return { ...next, server };
}

async function main(): Promise<number> {
  let cli: CliOptions;
  try {
    cli = parseCli(Deno.args, env, isFile);
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    stderr(`pilotfish: ${err.message} (see --help)`);
    return 2;
  }
  if (cli.help) {
    Deno.stdout.writeSync(encoder.encode(USAGE));
    return 0;
  }
  if (cli.version) {
    Deno.stdout.writeSync(encoder.encode(`pilotfish ${VERSION}\n`));
    return 0;
  }
  if (cli.check) return check(cli);
  if (cli.probe) return runProbe(cli, env);

  // Fingerprint before reading, so an edit racing the first load is still picked up.
  const initialFingerprint = cli.configPath === null ? "" : await fileFingerprint(cli.configPath);
  const first = await load(cli);

  const missing = await missingFor(first.config, cli);
  if (missing.length > 0) {
    throw new StartupError(
      `Missing permissions this config needs: ${missing.join(" ")} (${launchHint()})`,
    );
  }

  // Least privilege: take back every grant of the launcher (e.g. the compiled binary's static
  // ones) that this config does not need; reloads are then held to what is left.
  const narrowed = narrowPermissions(
    await planFor(first.config, cli.configPath, env),
    COMPILED_GRANTS,
  );

  // Aborted when the drain time runs out: open streams end with an in-format error event.
  const closing = new AbortController();
  const startLogger = createLogger({
    level: first.config.logging.level,
    format: first.config.logging.format,
    redact: createRedactor(secretsOf(first.config)),
  });
  const deps = {
    closing: closing.signal,
    // Upstream calls on HTTP/1.1 over Deno.connect, cheaper than fetch (see src/net/http1.ts).
    fetch: createHttp1Client().fetch,
    random: Math.random,
    noopStages: benchNoopStages(),
    routing: createRoutingState(),
    // Usage rollups and the response cache outlive reloads.
    resources: createStateResources({ now: Date.now }),
    breakerStore: await createBreakerStore(first.config, startLogger),
    responses: await createResponsesStore(first.config, startLogger),
  };
  // OpenTelemetry is imported only when metrics or tracing are on.
  await preloadTelemetry(first.config);
  let runtime: Runtime;
  try {
    runtime = buildRuntime(first.config, 1, deps);
  } catch (err) {
    // A plugin that cannot load is the config file's problem: named by that file.
    if (err instanceof ConfigError) {
      throw new ConfigError(first.loaded.source, err.problems, err.warnings);
    }
    throw err;
  }
  await runtime.ready();
  const log = () => runtime.logger;
  log().debug("permissions narrowed", { ...narrowed });
  for (const w of first.loaded.warnings) log().warn("config warning", { warning: w });
  for (const note of first.loaded.notes ?? []) log().info("config note", { note });

  /**
   * Load the config file again, validate it fully and swap it in; a bad one changes nothing.
   * The old generation retires: its stages are disposed once its last request has ended.
   */
  /** A reload that needs permissions this process was not started with. */
  const refusedFor = (missing: string[]): ReloadResult => {
    log().error(
      "config reload refused: it needs permissions this process was not started with; restart to apply",
      { path: cli.configPath, missing },
    );
    return {
      ok: false,
      problems: [`Missing permissions: ${missing.join(" ")} (restart to apply)`],
      generation: runtime.generation,
    };
  };

  /**
   * A variable the reloaded file names was not granted, so it could not be read whole: read
   * again with such variables unset, to list every grant it needs at once (a new host too).
   */
  const everyMissing = async (first: string): Promise<string[]> => {
    const lenient = (name: string) => {
      try {
        return Deno.env.get(name);
      } catch {
        return undefined;
      }
    };
    try {
      const again = await load(cli, { reload: true }, lenient);
      const config = keepListeners(again.config, runtime.config.server);
      return [...new Set([first, ...await missingFor(config, cli)])];
    } catch {
      return [first];
    }
  };

  /** `watched`: the file watcher saw the file change (not an asked-for reload). */
  const reloadOnce = async (watched = false): Promise<ReloadResult> => {
    const path = cli.configPath;
    if (path === null) {
      return {
        ok: false,
        problems: ["Running on the embedded default: there is no config file to reload"],
        generation: runtime.generation,
      };
    }
    try {
      const loaded = await load(cli, { reload: true });
      // The listeners (and the file watcher) are the running ones until a restart.
      const restartOnly = changedRestartKeys(runtime.config.server, loaded.config.server);
      const next = {
        ...loaded,
        config: keepListeners(loaded.config, runtime.config.server),
      };
      // The watcher after an asked-for reload of the same edit (or a touch): nothing to do.
      if (watched && JSON.stringify(next.config) === JSON.stringify(runtime.config)) {
        log().debug("config file changed on disk but reads the same: not reloaded", { path });
        return { ok: true, generation: runtime.generation };
      }
      const lacking = await missingFor(next.config, cli);
      if (lacking.length > 0) return refusedFor(lacking);
      const onRestart = restartOnly.map((k) => `server.${k}`);
      if (restartOnly.length > 0) {
        log().warn("config reload: these server.* changes take effect on restart", {
          path,
          keys: onRestart,
        });
      }
      const cbAfter = next.config.features.circuit_breaker;
      if (breakerBackend(runtime.config) !== breakerBackend(next.config)) {
        onRestart.push("features.circuit_breaker.backend");
        log().warn(
          "config reload: the circuit breaker's backend is chosen at start; a change takes effect on restart",
          { path },
        );
      }
      // The responses store is the process's (its conversations outlive reloads).
      if (
        JSON.stringify(runtime.config.responses.store) !==
          JSON.stringify(next.config.responses.store)
      ) {
        onRestart.push("responses.store");
        log().warn(
          "config reload: the responses store is built at start; responses.store changes take effect on restart",
          { path },
        );
      }
      const previous = runtime;
      await preloadTelemetry(next.config);
      const built = buildRuntime(next.config, runtime.generation + 1, deps);
      // Plugins start before the swap: the new generation is whole or not at all.
      await built.ready().catch(async (err) => {
        await built.dispose();
        // The keys in force are still the previous generation's.
        deps.routing.keysAre(keyValues(previous.config));
        throw err;
      });
      // The breaker's store outlives generations: its new timing only once the swap is sure.
      deps.breakerStore.retime(breakerTiming(cbAfter));
      runtime = built;
      previous.retire();
      for (const w of next.loaded.warnings) log().warn("config warning", { warning: w });
      for (const note of next.loaded.notes ?? []) log().info("config note", { note });
      log().info("config reloaded", { path, generation: runtime.generation });
      return {
        ok: true,
        generation: runtime.generation,
        ...(onRestart.length > 0 ? { restart_required: onRestart } : {}),
      };
    } catch (err) {
      const missing = missingPermission(err);
      if (missing !== null) return refusedFor(await everyMissing(missing));
      const problems = err instanceof ConfigError ? err.problems : [String(err)];
      log().error("config reload refused; the running config stays in force", { path, problems });
      return { ok: false, problems, generation: runtime.generation };
    }
  };
  // One reload at a time (the file watcher, POST /api/v1/reload, SIGHUP): each reads the file
  // when its turn comes and gets the next generation number, so the latest file wins.
  let reloading: Promise<unknown> = Promise.resolve();
  const reload = (watched = false): Promise<ReloadResult> => {
    const run = () => reloadOnce(watched);
    const turn = reloading.then(run, run);
    reloading = turn.catch(() => {});
    return turn;
  };
  const control = createControl({ current: () => runtime, reload: () => reload() });

  let isReady = false;
  const app = createApp({ runtime: () => runtime, isReady: () => isReady, control });
  const listeners = await startListeners(
    (req, info) => app.fetch(req, { remoteAddr: info.remoteAddr }),
    runtime.config.server,
    log(),
  );
  isReady = true;
  log().info("pilotfish listening", {
    version: VERSION,
    tcp: listeners.tcp ? `${listeners.tcp.hostname}:${listeners.tcp.port}` : null,
    socket: listeners.socket,
    config: first.loaded.source,
    providers: Object.keys(runtime.config.providers),
  });
  // llm-gateway's Quick Start runs its binary bare beside its gateway.yaml: the compiled
  // binary may not look there, and running the embedded default unannounced would hide it.
  // (Under `deno task start` the planner has looked, with read on everything, and found none.)
  if (cli.configUnchecked && Deno.build.standalone) {
    log().warn("running the embedded default: this binary may not look for ./gateway.yaml", {
      hint: "pass --config ./gateway.yaml (or set PILOTFISH_CONFIG) to run a config file",
    });
  }
  if (cli.configFound) {
    // Loaded without being named: say so, and how to opt out (a cloned repo may hold one).
    log().info("config found in the working directory", {
      path: cli.configPath,
      hint: 'no --config or PILOTFISH_CONFIG was given; --config "" runs the embedded default',
    });
  }
  const host = listeners.tcp?.hostname;
  if ((host === "0.0.0.0" || host === "::") && !runtime.config.app_keys.require_key) {
    // Butter's `address: ":8080"` means every interface: a sidecar that holds provider keys
    // then serves anyone who can reach the pod, which is rarely what a copied config meant.
    log().warn("listening on every interface without app_keys.require_key", {
      tcp: `${host}:${listeners.tcp!.port}`,
      hint: "anyone who can reach this port can use the configured provider keys: set " +
        "server.host: 127.0.0.1 for a sidecar, or app_keys.require_key: true",
    });
  }

  // Hot reload: validate the new file fully before swapping; a bad one changes nothing.
  let stopWatching = () => {};
  if (cli.configPath !== null && runtime.config.server.reload_interval > 0) {
    stopWatching = watchConfigFile(
      cli.configPath,
      runtime.config.server.reload_interval,
      initialFingerprint,
      async () => {
        await reload(true);
      },
    );
  }

  // SIGHUP reloads the config, as daemons conventionally do (it used to end the process, and
  // every stream with it).
  const onHangup = () => {
    reload().catch((err) => log().error("config reload failed", { error: err }));
  };
  Deno.addSignalListener("SIGHUP", onHangup);

  // Graceful shutdown: stop accepting, drain in-flight requests and streams, exit 0.
  // A second signal during the drain (an operator's second Ctrl-C) ends it at once: streams
  // get their in-format error event and log line, as when drain_timeout runs out.
  const { promise: stopSignal, resolve: stop } = Promise.withResolvers<string>();
  const { promise: hurry, resolve: hurryUp } = Promise.withResolvers<string>();
  let signalled = false;
  /** Why the drain ended early: a second signal, or (null) drain_timeout ran out. */
  let hurried: string | null = null;
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => {
      if (!signalled) {
        signalled = true;
        stop(sig);
        return;
      }
      log().warn("second signal: ending the drain now", { signal: sig });
      hurried = sig;
      hurryUp(sig);
    });
  }
  const signal = await stopSignal;
  Deno.removeSignalListener("SIGHUP", onHangup);
  log().info("shutting down", { signal, drain_timeout_ms: runtime.config.server.drain_timeout });
  isReady = false;
  stopWatching();
  const drained = await listeners.shutdown(runtime.config.server.drain_timeout, () => {
    const when = hurried === null
      ? "when server.drain_timeout ran out"
      : `by a second ${hurried} during the drain`;
    closing.abort(
      new GatewayError("unavailable", `Pilotfish is shutting down: the stream was ended ${when}`),
    );
    // A request still waiting on its upstream gets its route's 503 and its log line.
    cutUpstreamCalls(
      new GatewayError(
        "unavailable",
        `Pilotfish is shutting down: the request was ended ${when}`,
        { retryable: false },
      ),
    );
  }, hurry);
  runtime.retire();
  await runtime.dispose();
  await closeLimits(deps.routing);
  await deps.breakerStore.close();
  await deps.resources.close();
  await deps.responses.close();
  log().info(
    drained ? "shutdown complete" : "drain timeout reached; closing remaining connections",
  );
  return 0;
}

/**
 * `deno task bench` only: no-op stages on every hook, to measure the chain's own cost. Read
 * only when the variable is granted (the bench's config refers to it, so the planner grants
 * it); a daemon started any other way never looks.
 */
function benchNoopStages(): number {
  const name = "PILOTFISH_BENCH_NOOP_STAGES";
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return 0;
  const n = Number(env(name) ?? "0");
  return Number.isInteger(n) && n > 0 ? Math.min(n, 100) : 0;
}

/** `--check`: every problem on its own line, warnings too; exit 1 when any is an error. */
async function check(cli: CliOptions): Promise<number> {
  try {
    const { loaded } = await load(cli, { strict: cli.strict });
    for (const w of loaded.warnings) stderr(`warning: ${w}`);
    for (const note of loaded.notes ?? []) stderr(`note: ${note}`);
    // What only loading them finds (a file missing, not WASM, a hook it does not export):
    // otherwise --check would pass a config the start then refuses.
    const plugins = await pluginConfigProblems(loaded.config);
    if (plugins.length > 0) throw new ConfigError(loaded.source, plugins);
    const dialect = loaded.dialect ? ` (${loaded.dialect} dialect)` : "";
    Deno.stdout.writeSync(encoder.encode(`Config ${loaded.source}${dialect} is valid\n`));
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const problems = [...err.problems];
    if (cli.strict) {
      // The strict-only errors (unknown keys) leave a config the start would load: what only
      // loading its plugins finds is listed too, as without --strict.
      try {
        const { loaded } = await load(cli, { strict: false });
        problems.push(...await pluginConfigProblems(loaded.config));
      } catch { /* invalid without --strict too: its problems are listed already */ }
    }
    for (const w of err.warnings) stderr(`warning: ${w}`);
    stderr(`Config ${err.source} is invalid:`);
    for (const p of problems) stderr(`  - ${p}`);
    return 1;
  }
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main();
  } catch (err) {
    stderr(`pilotfish: ${startupLine(err)}`);
    code = 1;
  }
  Deno.exit(code);
}
