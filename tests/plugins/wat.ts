/**
 * Guest fixtures for host tests: the WAT sources in tests/fixtures/wasm/, compiled with
 * wabt into a temp dir once per test file.
 * @module
 */
import wabtInit from "wabt";

const FIXTURES = new URL("../fixtures/wasm/", import.meta.url);

export async function watToWasm(source: string, name = "module.wat"): Promise<Uint8Array> {
  const wabt = await wabtInit();
  // Exception handling: a guest may catch what a host function throws (alloc_negative.wat).
  const mod = wabt.parseWat(name, source, { exceptions: true });
  try {
    return mod.toBinary({}).buffer;
  } finally {
    mod.destroy();
  }
}

/** Compile fixture `name` (without `.wat`) into `dir`; returns the .wasm path. */
export async function fixtureWasm(dir: string, name: string): Promise<string> {
  const source = await Deno.readTextFile(new URL(`${name}.wat`, FIXTURES));
  const path = `${dir}/${name}.wasm`;
  await Deno.writeFile(path, await watToWasm(source, `${name}.wat`));
  return path;
}
