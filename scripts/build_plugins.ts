/**
 * `deno task build:plugins`: rebuild every guest plugin in plugins/ from source, with the
 * toolchain from npm (AssemblyScript for `assembly/index.ts`, wabt for `plugin.wat`), into
 * `plugins/<name>/plugin.wasm`. Deterministic: the same sources give the same bytes, which
 * tests/plugins/build_test.ts checks against the committed files. The toolchain lives in
 * tests/deno.json, never in the daemon's module graph.
 * @module
 */
import asc from "assemblyscript/asc";
import wabtInit from "wabt";

const ROOT = new URL("../plugins/", import.meta.url);

/**
 * AssemblyScript flags: optimised, no `env.abort` import (guests import only Extism), and
 * the stub runtime (a bump allocator, no GC): the garbage-collected runtimes cost the guard
 * 2-3x in shadow-stack bookkeeping, so guests allocate only at setup and reuse buffers. SIMD
 * (128-bit, in every V8 that runs Deno 2) lets the guard scan 16 bytes per step.
 */
const ASC_FLAGS = [
  "-O3",
  "--noAssert",
  "--use",
  "abort=",
  "--runtime",
  "stub",
  "--enable",
  "simd",
];

export interface Built {
  readonly name: string;
  /** plugins/<name>/plugin.wasm */
  readonly path: URL;
  readonly bytes: Uint8Array;
}

async function buildAssemblyScript(dir: URL): Promise<Uint8Array> {
  const entry = new URL("assembly/index.ts", dir);
  const outputs = new Map<string, Uint8Array | string>();
  const errors: string[] = [];
  const { error } = await asc.main([entry.pathname, "--outFile", "plugin.wasm", ...ASC_FLAGS], {
    readFile: (name: string, base: string) => {
      try {
        return Deno.readTextFileSync(name.startsWith("/") ? name : `${base}/${name}`);
      } catch {
        return null;
      }
    },
    writeFile: (name: string, data: Uint8Array | string) => void outputs.set(name, data),
    listFiles: () => [],
    stdout: { write: (s: string) => void errors.push(s) },
    stderr: { write: (s: string) => void errors.push(s) },
  });
  const wasm = outputs.get("plugin.wasm");
  if (error || !(wasm instanceof Uint8Array)) {
    throw new Error(
      `AssemblyScript failed for ${entry.pathname}: ${error?.message}\n${errors.join("")}`,
    );
  }
  return wasm;
}

async function buildWat(file: URL): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const mod = wabt.parseWat(file.pathname, await Deno.readTextFile(file), { bulk_memory: true });
  try {
    return mod.toBinary({}).buffer;
  } finally {
    mod.destroy();
  }
}

/** Build every plugin under plugins/ (in memory). */
export async function buildPlugins(): Promise<Built[]> {
  const out: Built[] = [];
  const names: string[] = [];
  for await (const e of Deno.readDir(ROOT)) if (e.isDirectory) names.push(e.name);
  names.sort();
  for (const name of names) {
    const dir = new URL(`${name}/`, ROOT);
    const has = (p: string) => Deno.stat(new URL(p, dir)).then(() => true, () => false);
    let bytes: Uint8Array;
    if (await has("assembly/index.ts")) bytes = await buildAssemblyScript(dir);
    else if (await has("plugin.wat")) bytes = await buildWat(new URL("plugin.wat", dir));
    else continue;
    out.push({ name, path: new URL("plugin.wasm", dir), bytes });
  }
  return out;
}

if (import.meta.main) {
  for (const b of await buildPlugins()) {
    await Deno.writeFile(b.path, b.bytes);
    Deno.stdout.writeSync(
      new TextEncoder().encode(`built ${b.path.pathname} (${b.bytes.length} bytes)\n`),
    );
  }
}
