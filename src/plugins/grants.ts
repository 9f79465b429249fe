/**
 * What `wasm_plugins` needs from the process, for the permission planner: read on exactly
 * the plugin files and on the worker module that hosts them; the network only for hosts a
 * plugin lists in `allowed_hosts`; `/dev/null` for a WASI guest's stdio (its output is
 * discarded); and the two variables Extism reads at load (`EXTISM_ENABLE_WASI_OUTPUT`, and its bundled
 * minimatch's `__MINIMATCH_TESTING_PLATFORM__`).
 * Kept apart from `mod.ts` so the planner does not load the host.
 * @module
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Config } from "../config/schema.ts";

export interface PluginGrants {
  readonly read: readonly string[];
  readonly write: readonly string[];
  readonly net: readonly string[];
  readonly env: readonly string[];
}

const WORKER_FILES = ["./worker.ts", "./instance.ts", "./net.ts", "./protocol.ts", "./binary.ts"]
  .map((p) => new URL(p, import.meta.url));

export function pluginGrants(config: Config, cwd: string): PluginGrants {
  if (config.wasm_plugins.length === 0) return { read: [], write: [], net: [], env: [] };
  const read = config.wasm_plugins.map((p) => resolve(cwd, p.path));
  // Run from source the worker's modules are files to read; in a compiled binary (`deno task
  // compile` embeds them with --include, under a deno-compile-* root) they need no grant.
  for (const url of WORKER_FILES) {
    if (url.protocol === "file:" && !url.pathname.includes("/deno-compile-")) {
      read.push(fileURLToPath(url));
    }
  }
  return {
    read: [...read, "/dev/null"],
    write: ["/dev/null"],
    net: config.wasm_plugins.flatMap((p) => p.allowed_hosts),
    env: ["EXTISM_ENABLE_WASI_OUTPUT", "__MINIMATCH_TESTING_PLATFORM__"],
  };
}
