/**
 * Pilotfish's one import beyond Extism's ABI (`extism:host/user` `pilotfish_input_read`):
 * the host copies the call's input into the guest's memory in one call; out-of-bounds
 * destinations fail the call; a guest that imports it must export its memory.
 */
import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { compilePlugin, type PluginPool, startPool } from "../../src/plugins/mod.ts";
import { watToWasm } from "./wat.ts";

const TMP = await Deno.makeTempDir({ prefix: "pf-wasm-input-read-" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));

/** Reads the input at `dst` with pilotfish_input_read and echoes it as the output. */
const echo = (dst: number, exportMemory = true) => `
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/user" "pilotfish_input_read" (func $read (param i32 i32) (result i32)))
  (memory ${exportMemory ? `(export "memory")` : ""} 2)
  (func (export "pre_llm") (result i32)
    (local $n i32) (local $out i64) (local $i i32)
    (local.set $n (call $read (i32.const ${dst}) (i32.wrap_i64 (call $input_length))))
    (local.set $out (call $alloc (i64.extend_i32_u (local.get $n))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (call $store_u8
          (i64.add (local.get $out) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (i32.add (i32.const ${dst}) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $output_set (local.get $out) (i64.extend_i32_u (local.get $n)))
    (i32.const 0)))
`;

async function compiled(name: string, wat: string) {
  const path = `${TMP}/${name}.wasm`;
  await Deno.writeFile(path, await watToWasm(wat, `${name}.wat`));
  const { config } = parseConfigText(
    `wasm_plugins:\n  - { name: ${name}, path: ${path}, instances: 1 }\n`,
    () => undefined,
    "input_read.yaml",
  );
  return compilePlugin(config.wasm_plugins[0]!, "/");
}

async function withPool(name: string, wat: string, fn: (pool: PluginPool) => Promise<void>) {
  const pool = startPool(await compiled(name, wat));
  try {
    await pool.ready;
    await fn(pool);
  } finally {
    pool.close();
  }
}

Deno.test("pilotfish_input_read copies the whole input into the guest's memory", async () => {
  await withPool("echo", echo(1024), async (pool) => {
    for (const size of [0, 7, 5000, 60_000]) {
      const input = new Uint8Array(size).map((_, i) => (i * 31 + 7) & 0xff);
      const r = await pool.call("pre_llm", input);
      if (size === 0) {
        assert.equal(r.kind, "none");
        continue;
      }
      assert.equal(r.kind, "output", JSON.stringify(r));
      assert.deepEqual(r.kind === "output" ? r.bytes : null, input);
    }
  });
});

Deno.test("pilotfish_input_read: a destination past the guest's memory fails the call", async () => {
  await withPool("past_end", echo(2 * 65_536 - 100), async (pool) => {
    const r = await pool.call("pre_llm", new Uint8Array(1000));
    assert.equal(r.kind, "error");
    assert.match(r.kind === "error" ? r.message : "", /out of bounds/);
    // The instance still serves a call that fits.
    const ok = await pool.call("pre_llm", new Uint8Array(10).fill(65));
    assert.equal(ok.kind, "output");
  });
});

Deno.test("pilotfish_input_read: a guest that imports it must export its memory", async () => {
  await assert.rejects(
    () => compiled("no_memory", echo(0, false)),
    /imports pilotfish_input_read but exports no "memory"/,
  );
});
