/**
 * WASM plugins on Extism (`wasm_plugins[]`): each configured module is read, checked and
 * compiled once per config generation, then served by a pool of worker-backed instances as
 * a stage after the built-in ones. A module that cannot be used is a config error, so a
 * reload that brings one is refused and the running generation stays.
 * @module
 */
import { resolve } from "node:path";
import { ConfigError } from "../config/mod.ts";
import type { Config, WasmPluginConfig } from "../config/schema.ts";
import type { Stage } from "../pipeline/stages.ts";
import {
  capMemory,
  CONFIG_CHECK,
  exportedFuncTypes,
  type GuestCall,
  type HookName,
  HOOKS,
  INPUT_FIELDS,
  INPUT_READ,
  ModuleError,
  PAGE_BYTES,
  showFuncType,
  statusShim,
} from "./binary.ts";
import { meter } from "./meter.ts";
import type { PluginPool } from "./pool.ts";
import { createRunner, FUEL, GUEST_ERROR, type Metered } from "./runner.ts";
import { wasmStage } from "./stage.ts";
import { AbiError, ALL_INPUT, decodeInputFields, type InputFields } from "./abi.ts";

export { type HookName, HOOKS } from "./binary.ts";
export { type CallResult, createPool, PluginBusy, type PluginPool, PluginTimeout } from "./pool.ts";

/** A checked, compiled plugin module, ready to instantiate in workers. */
export interface CompiledPlugin {
  readonly config: WasmPluginConfig;
  readonly guest: WebAssembly.Module;
  /** The guest metered to run on the daemon's thread (`runner.ts`); null: workers only. */
  readonly metered: Metered | null;
  /**
   * The guest metered for workers, which give it fuel for each call's budget so that one
   * that spins stops itself (`STATE.stop` in protocol.ts); null: it could not be metered.
   */
  readonly workerMetered: Metered | null;
  readonly shim: WebAssembly.Module;
  /** Hooks it exports, narrowed by `hooks`. */
  readonly hooks: ReadonlySet<HookName>;
  /** It exports `CONFIG_CHECK`: its config is checked when a generation loads. */
  readonly configCheck: boolean;
  /** It exports `INPUT_FIELDS`: it is asked which input fields it reads when it loads. */
  readonly inputFields: boolean;
  /** It imports WASI (TinyGo guests do): WASI is on for it, with no files and no env. */
  readonly wasi: boolean;
  /** It imports `INPUT_READ` (the shim then re-exports its memory). */
  readonly inputRead: boolean;
  readonly maxPages: number;
  /** The largest input a call is given (`maxInputOf`). */
  readonly maxInput: number;
}

/**
 * Bytes of `max_memory` per byte of input a guest is given, over `MEMORY_BASE` for the guest
 * itself. Parsing JSON into a guest's own strings takes several times the input: the
 * injection guard needs 2-3 MiB to start and 6.5-7.5x its input (UTF-16 copies of every text
 * part, folded and tokenised), measured from 1 KB to 16 MB.
 */
export const MEMORY_PER_INPUT_BYTE = 8;
export const MEMORY_BASE = 4 * 1024 * 1024;
/** The least default `max_memory`, and what a small body limit still gets. */
export const MIN_DEFAULT_MEMORY = 32 * 1024 * 1024;
/** Room in the input for what is not the body: headers, metadata, the JSON around them. */
const INPUT_ENVELOPE = 1024 * 1024;

/**
 * A plugin's `max_memory`: as configured, else enough for any body the gateway accepts
 * (`server.max_body_bytes` and the input's envelope, x `MEMORY_PER_INPUT_BYTE`). A guest's
 * memory is committed only as it grows into it.
 */
export function pluginMemory(cfg: WasmPluginConfig, maxBodyBytes: number): number {
  return cfg.max_memory ??
    Math.max(
      MIN_DEFAULT_MEMORY,
      MEMORY_BASE + MEMORY_PER_INPUT_BYTE * (maxBodyBytes + INPUT_ENVELOPE),
    );
}

/**
 * The largest input a plugin with `maxMemory` is given. A larger one is not a plugin failure
 * to skip under `fail_mode: open` (padding a prompt would get past a guard): the request is
 * refused (see `stage.ts`).
 */
export function maxInputOf(maxMemory: number): number {
  return Math.max(0, Math.floor((maxMemory - MEMORY_BASE) / MEMORY_PER_INPUT_BYTE));
}

/** `server.max_body_bytes`'s default, for a plugin compiled without a config. */
const DEFAULT_BODY_BYTES = 10 * 1024 * 1024;
/** A 32-bit guest's whole address space. */
const MAX_PAGES = 65_536;

const HOST_MODULES = new Set(["extism:host/env", "wasi_snapshot_preview1"]);

/**
 * Read and compile one plugin. Synchronous: a config generation is built in one step, and a
 * plugin that cannot load must refuse the config before anything is swapped.
 */
export function compilePlugin(
  cfg: WasmPluginConfig,
  cwd: string,
  maxBodyBytes: number = DEFAULT_BODY_BYTES,
  index = 0,
): CompiledPlugin {
  // The key path as written, and the plugin's name to find it by.
  const at = `wasm_plugins[${index}]`;
  const where = `${at} ("${cfg.name}")`;
  const file = `${at}.path ("${cfg.name}")`;
  const path = resolve(cwd, cfg.path);
  const maxMemory = pluginMemory(cfg, maxBodyBytes);
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch (err) {
    throw new ModuleError(`${file}: cannot read "${path}": ${(err as Error).message}`);
  }
  const maxPages = Math.min(MAX_PAGES, Math.max(1, Math.floor(maxMemory / PAGE_BYTES)));
  let guest: WebAssembly.Module;
  let capped: Uint8Array<ArrayBuffer>;
  try {
    capped = capMemory(bytes, maxPages);
    guest = new WebAssembly.Module(capped);
  } catch (err) {
    throw new ModuleError(`${file}: "${path}" is not a usable module: ${(err as Error).message}`);
  }
  const imports = WebAssembly.Module.imports(guest);
  const isInputRead = (i: WebAssembly.ModuleImportDescriptor) =>
    i.module === INPUT_READ.module && i.name === INPUT_READ.name && i.kind === "function";
  const foreign = imports.find((i) => !HOST_MODULES.has(i.module) && !isInputRead(i));
  if (foreign) {
    throw new ModuleError(
      `${where}: imports "${foreign.module}" "${foreign.name}"; a plugin may import only extism:host/env (and WASI)`,
    );
  }
  const exports = WebAssembly.Module.exports(guest);
  const exported = new Set(exports.filter((e) => e.kind === "function").map((e) => e.name));
  const inputRead = imports.some(isInputRead);
  if (inputRead && !exports.some((e) => e.name === "memory" && e.kind === "memory")) {
    throw new ModuleError(`${where}: imports ${INPUT_READ.name} but exports no "memory"`);
  }
  const available = HOOKS.filter((h) => exported.has(h));
  for (const h of cfg.hooks ?? []) {
    if (!exported.has(h)) {
      throw new ModuleError(`${at}.hooks ("${cfg.name}"): lists "${h}", which it does not export`);
    }
  }
  const hooks = cfg.hooks ? available.filter((h) => cfg.hooks!.includes(h)) : available;
  if (cfg.hooks?.length === 0) {
    throw new ModuleError(
      `${at}.hooks ("${cfg.name}"): empty; list the hooks to run (it exports ${
        available.join(", ") || "none"
      })`,
    );
  }
  if (hooks.length === 0) {
    throw new ModuleError(`${where}: exports none of ${HOOKS.join(", ")}`);
  }
  const configCheck = exported.has(CONFIG_CHECK);
  const inputFields = exported.has(INPUT_FIELDS);
  const calls: GuestCall[] = [...hooks];
  if (configCheck) calls.push(CONFIG_CHECK);
  if (inputFields) calls.push(INPUT_FIELDS);
  // Every call the host makes is `() -> i32` (Butter's ABI): another type would fail only when
  // the daemon links the guest, after `--check` said the config was fine. Only the exports it
  // calls: a hook left out of `hooks` may be any helper of the guest's.
  const signatures = exportedFuncTypes(capped);
  for (const name of calls) {
    const t = signatures?.get(name);
    if (
      t !== undefined && (t.params.length !== 0 || t.results.length !== 1 || t.results[0] !== 0x7f)
    ) {
      throw new ModuleError(
        `${where}: exports ${name} as ${showFuncType(t)}; the host calls it as () -> i32`,
      );
    }
  }
  const meteredGuest = metered(capped, calls, inputRead);
  return {
    config: cfg,
    guest,
    // HTTP calls suspend the guest (JSPI) on the daemon's thread: they run in workers.
    metered: imports.some((i) => i.module === "extism:host/env" && i.name.startsWith("http_"))
      ? null
      : meteredGuest,
    workerMetered: meteredGuest,
    shim: new WebAssembly.Module(statusShim(calls, inputRead)),
    hooks: new Set(hooks),
    configCheck,
    inputFields,
    wasi: imports.some((i) => i.module === "wasi_snapshot_preview1"),
    inputRead,
    maxPages,
    maxInput: maxInputOf(maxPages * PAGE_BYTES),
  };
}

function metered(bytes: Uint8Array, hooks: GuestCall[], inputRead: boolean): Metered | null {
  const guest = meter(bytes, FUEL);
  if (guest === null) return null;
  try {
    return {
      guest: new WebAssembly.Module(guest),
      shim: new WebAssembly.Module(statusShim(hooks, inputRead, true)),
    };
  } catch {
    // Metering broke a module V8 accepted: the guest still runs, in workers only
    // (tests/plugins/meter_test.ts meters and compiles every guest we ship or test with).
    return null;
  }
}

/** Start what runs a compiled plugin's calls (its thread slice and its worker pool). */
export function startPool(plugin: CompiledPlugin): PluginPool {
  const cfg = plugin.config;
  return createRunner({
    metered: plugin.metered,
    size: cfg.instances,
    timeoutMs: cfg.timeout,
    maxInput: plugin.maxInput,
    init: {
      guest: plugin.workerMetered?.guest ?? plugin.guest,
      shim: plugin.workerMetered?.shim ?? plugin.shim,
      metered: plugin.workerMetered !== null,
      wasi: plugin.wasi,
      inputRead: plugin.inputRead,
      allowedHosts: cfg.allowed_hosts,
      config: cfg.config,
      maxPages: plugin.maxPages,
    },
  });
}

/**
 * The stages of `config.wasm_plugins`, in order. Throws a `ConfigError` listing every plugin
 * that cannot load (nothing is started then).
 */
export function wasmStages(config: Config, cwd: string = Deno.cwd()): Stage[] {
  if (config.wasm_plugins.length === 0) return [];
  const { compiled, problems } = compileAll(config, cwd);
  if (problems.length > 0) throw new ConfigError("wasm_plugins", problems);
  return compiled.map((p, i) => {
    const pool = startPool(p);
    // Up, content with its config (a typo there must not leave a guard scanning less), and
    // what it reads.
    const described = pool.ready.then(() => describe(p, pool, i));
    const ready = described.then(({ problem }) => {
      if (problem !== null) throw new ConfigError("wasm_plugins", [problem]);
    });
    ready.catch(() => {}); // the runtime's `ready()` reports it
    return wasmStage(
      p.config,
      p.hooks,
      pool,
      p.maxInput,
      `wasm_plugins[${i}].path ("${p.config.name}")`,
      ready,
      Object.values(config.providers).flatMap((pc) => pc.keys.map((k) => k.key)),
      described.then(({ fields }) => fields, () => ALL_INPUT),
    );
  });
}

/** What a started plugin says of itself: a problem with its config or its fields, or none. */
async function describe(
  p: CompiledPlugin,
  pool: PluginPool,
  index: number,
): Promise<{ problem: string | null; fields: InputFields }> {
  const problem = await checkConfig(p, pool, index);
  if (problem !== null || !p.inputFields) return { problem, fields: ALL_INPUT };
  const at = `wasm_plugins[${index}].path ("${p.config.name}")`;
  try {
    const r = await pool.call(INPUT_FIELDS, new Uint8Array(0));
    if (r.kind === "error") {
      return { problem: `${at}: ${INPUT_FIELDS}: ${r.message}`, fields: ALL_INPUT };
    }
    const said = r.kind === "output" ? r.bytes : new Uint8Array(0);
    return { problem: null, fields: decodeInputFields(said) };
  } catch (err) {
    const why = err instanceof AbiError
      ? err.message
      : `did not answer: ${err instanceof Error ? err.message : String(err)}`;
    return { problem: `${at}: ${INPUT_FIELDS} ${why}`, fields: ALL_INPUT };
  }
}

/**
 * What the plugin says of its `config` (`CONFIG_CHECK`), as a problem naming the key path;
 * null when it does not export the check or is content. A guest that fails to answer (a
 * trap, its timeout) refuses the config too: it could not say the config is good.
 */
async function checkConfig(p: CompiledPlugin, pool: PluginPool, index: number) {
  if (!p.configCheck) return null;
  const at = `wasm_plugins[${index}].config ("${p.config.name}")`;
  try {
    const r = await pool.call(CONFIG_CHECK, new Uint8Array(0));
    // The guest's own words: Extism's "Plugin-originated error: " prefix says nothing here.
    const said = r.kind === "error" && r.message.startsWith(GUEST_ERROR)
      ? r.message.slice(GUEST_ERROR.length).replace(/^:\s*/, "")
      : r.kind === "error"
      ? r.message
      : null;
    return said === null ? null : `${at}: ${said}`;
  } catch (err) {
    return `${at}: ${CONFIG_CHECK} did not answer: ${
      err instanceof Error ? err.message : String(err)
    }`;
  }
}

/**
 * What would keep `config.wasm_plugins` from loading (for `--check`): a module that cannot be
 * used, then what each plugin that checks its config or names its input fields says (each
 * such plugin is started alone for the check, and stopped).
 */
export async function pluginConfigProblems(
  config: Config,
  cwd: string = Deno.cwd(),
): Promise<string[]> {
  if (config.wasm_plugins.length === 0) return [];
  const { compiled, problems } = compileAll(config, cwd);
  if (problems.length > 0) return problems;
  const found: string[] = [];
  for (const [i, p] of compiled.entries()) {
    if (!p.configCheck && !p.inputFields) continue;
    const pool = startPool(p);
    try {
      await pool.ready;
      const { problem } = await describe(p, pool, i);
      if (problem !== null) found.push(problem);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      found.push(`wasm_plugins[${i}].path ("${p.config.name}"): ${why}`);
    } finally {
      pool.close();
    }
  }
  return found;
}

function compileAll(config: Config, cwd: string) {
  const problems: string[] = [];
  const compiled: CompiledPlugin[] = [];
  const seen = new Set<string>();
  for (const [i, cfg] of config.wasm_plugins.entries()) {
    if (seen.has(cfg.name)) {
      problems.push(`wasm_plugins[${i}].name: the name "${cfg.name}" is used twice`);
    }
    seen.add(cfg.name);
    try {
      compiled.push(compilePlugin(cfg, cwd, config.server.max_body_bytes, i));
    } catch (err) {
      if (!(err instanceof ModuleError)) throw err;
      problems.push(err.message);
    }
  }
  return { compiled, problems };
}

/** Files the daemon reads for `wasm_plugins` (the permission planner grants exactly these). */
export function pluginFiles(config: Config, cwd: string): string[] {
  return config.wasm_plugins.map((p) => resolve(cwd, p.path));
}
