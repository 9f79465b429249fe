/**
 * Metering (src/plugins/meter.ts): a metered guest computes what the original computes, a
 * runaway one (a loop, or recursion with no loop) traps with its fuel below zero, every guest
 * we ship or test with can be metered, and what cannot be is refused rather than guessed at.
 */
import assert from "node:assert/strict";
import { FUEL_EXPORT } from "../../src/plugins/binary.ts";
import { meter } from "../../src/plugins/meter.ts";
import wabtInit from "wabt";
import { watToWasm } from "./wat.ts";

const WORK = `(module
  (import "env" "g" (global $g i32))
  (table 2 funcref)
  (elem (i32.const 0) $double $square)
  (type $unary (func (param i32) (result i32)))
  (global $calls (mut i32) (i32.const 0))
  (func $double (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))
  (func $square (param i32) (result i32) (i32.mul (local.get 0) (local.get 0)))
  (func $fib (export "fib") (param i32) (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  ;; sum of i * table[i % 2](i) for i < n, with a nested loop, br_table and locals
  (func (export "mix") (param $n i32) (result i64) (local $i i32) (local $acc i64) (local $k i32)
    (block $done
      (loop $outer
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $k (i32.const 0))
        (loop $inner
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $inner (i32.lt_u (local.get $k) (i32.const 3))))
        (block $b1 (block $b0
          (br_table $b0 $b1 (i32.rem_u (local.get $i) (i32.const 2))))
          (local.set $acc (i64.add (local.get $acc) (i64.const 1))))
        (local.set $acc (i64.add (local.get $acc)
          (i64.extend_i32_u (call_indirect (type $unary)
            (local.get $i) (i32.rem_u (local.get $i) (i32.const 2))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (i64.add (local.get $acc) (i64.extend_i32_u (i32.add (global.get $g) (local.get $k)))))
  (func (export "spin") (loop $l (br $l))))`;

const imports = { env: { g: new WebAssembly.Global({ value: "i32" }, 7) } };

async function both(): Promise<[Record<string, unknown>, Record<string, unknown>]> {
  const original = await watToWasm(WORK, "work.wat");
  const metered = meter(original, 1_000_000);
  assert.ok(metered, "the module is metered");
  return [
    new WebAssembly.Instance(new WebAssembly.Module(original.slice()), imports).exports,
    new WebAssembly.Instance(new WebAssembly.Module(metered), imports).exports,
  ];
}

Deno.test("a metered guest computes what the original computes", async () => {
  const [plain, metered] = await both();
  const fuel = metered[FUEL_EXPORT] as WebAssembly.Global;
  for (const n of [0, 1, 5, 17, 100]) {
    fuel.value = 1_000_000n;
    assert.equal(
      (metered.mix as (n: number) => bigint)(n),
      (plain.mix as (n: number) => bigint)(n),
    );
    assert.ok((fuel.value as bigint) > 0n);
  }
  fuel.value = 1_000_000n;
  assert.equal((metered.fib as (n: number) => number)(15), 610);
});

Deno.test("a loop that never ends traps with its fuel spent", async () => {
  const [, metered] = await both();
  const fuel = metered[FUEL_EXPORT] as WebAssembly.Global;
  fuel.value = 100_000n;
  assert.throws(() => (metered.spin as () => void)(), WebAssembly.RuntimeError);
  assert.ok((fuel.value as bigint) < 0n, "the fuel says why");
});

Deno.test("recursion with no loop is metered at each call", async () => {
  const [, metered] = await both();
  const fuel = metered[FUEL_EXPORT] as WebAssembly.Global;
  fuel.value = 10_000n;
  assert.throws(() => (metered.fib as (n: number) => number)(40), WebAssembly.RuntimeError);
  assert.ok((fuel.value as bigint) < 0n);
});

// A loop with a long `if` arm: 40 additions, taken only when `i` is a multiple of `every`.
const ARMS = `(module
  (func $long (param $x i32) (result i32)
    ${"(local.set $x (i32.add (local.get $x) (i32.const 1)))\n".repeat(40)}
    (local.get $x))
  (func (export "loop") (param $n i32) (param $every i32) (result i32) (local $i i32) (local $acc i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.eqz (i32.rem_u (local.get $i) (local.get $every)))
          (then
            ${"(local.set $acc (i32.add (local.get $acc) (i32.const 1)))\n".repeat(40)}))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $acc))
  (func (export "spin") (local $i i32)
    (loop $l
      (if (i32.ge_s (local.get $i) (i32.const 0))
        (then
          ${"(local.set $i (i32.add (local.get $i) (i32.const 0)))\n".repeat(40)}))
      (br $l)))
  (func (export "once") (param $c i32) (result i32)
    (if (result i32) (local.get $c)
      (then
        ${"(local.set $c (i32.add (local.get $c) (i32.const 1)))\n".repeat(40)}
        (local.get $c))
      (else (i32.const 0)))))`;

async function arms(): Promise<[Record<string, unknown>, WebAssembly.Global]> {
  const metered = meter(await watToWasm(ARMS, "arms.wat"), 1_000_000);
  assert.ok(metered);
  const exports = new WebAssembly.Instance(new WebAssembly.Module(metered)).exports;
  return [exports, exports[FUEL_EXPORT] as WebAssembly.Global];
}

Deno.test("a long if arm is charged when it runs, not on every iteration", async () => {
  const [g, fuel] = await arms();
  const run = g.loop as (n: number, every: number) => number;
  // 10,000 iterations of about 20 instructions, the long arm taken 10 times: within 400,000
  // fuel. Charged the whole body (about 180) per iteration, the loop would need 1.8 million.
  fuel.value = 400_000n;
  assert.equal(run(10_000, 1_000), 10 * 40);
  // Taken every time, the arm is charged every time: the same fuel runs out.
  fuel.value = 400_000n;
  assert.throws(() => run(10_000, 1), WebAssembly.RuntimeError);
  assert.ok((fuel.value as bigint) < 0n);
  fuel.value = 10_000_000n;
  assert.equal(run(10_000, 1), 10_000 * 40);
});

Deno.test("a loop that spins through a long arm still traps; an arm outside loops charges the global", async () => {
  const [g, fuel] = await arms();
  fuel.value = 100_000n;
  assert.throws(() => (g.spin as () => void)(), WebAssembly.RuntimeError);
  assert.ok((fuel.value as bigint) < 0n);
  // An arm inside a loop is checked at the loop's next head: it overshoots by one turn at most
  // (the arm's 121 instructions and the loop's own few).
  assert.ok((fuel.value as bigint) > -140n, String(fuel.value));
  const once = g.once as (c: number) => number;
  fuel.value = 1_000n;
  assert.equal(once(0), 0);
  const afterElse = fuel.value as bigint;
  fuel.value = 1_000n;
  assert.equal(once(1), 41);
  assert.ok((fuel.value as bigint) < afterElse - 40n, "the then arm's charge is on the global");
});

Deno.test("every shipped plugin and test fixture can be metered", async () => {
  const modules: [string, Uint8Array][] = [];
  for await (const dir of Deno.readDir(new URL("../../plugins/", import.meta.url))) {
    if (!dir.isDirectory) continue;
    const url = new URL(`../../plugins/${dir.name}/plugin.wasm`, import.meta.url);
    modules.push([dir.name, await Deno.readFile(url)]);
  }
  const fixtures = new URL("../fixtures/wasm/", import.meta.url);
  for await (const f of Deno.readDir(fixtures)) {
    // Uses exception handling, which metering leaves to workers (the test below).
    if (!f.name.endsWith(".wat") || f.name === "alloc_negative.wat") continue;
    const source = await Deno.readTextFile(new URL(f.name, fixtures));
    modules.push([f.name, await watToWasm(source, f.name)]);
  }
  assert.ok(modules.length >= 15);
  for (const [name, bytes] of modules) {
    const metered = meter(bytes, 1);
    assert.ok(metered, `${name} is metered`);
    const mod = new WebAssembly.Module(metered);
    const exported = WebAssembly.Module.exports(mod).find((e) => e.name === FUEL_EXPORT);
    assert.equal(exported?.kind, "global", name);
  }
});

Deno.test("what metering does not understand is left to workers (null), never guessed", async () => {
  // Exception handling: instructions the rewriter does not decode.
  const wabt = await wabtInit();
  const eh = wabt.parseWat(
    "eh.wat",
    `(module (tag $t) (func (export "f") (try (do (throw $t)) (catch_all))))`,
    { exceptions: true },
  );
  try {
    const bytes = eh.toBinary({}).buffer;
    new WebAssembly.Module(bytes.slice()); // valid for V8
    assert.equal(meter(bytes, 1), null);
  } finally {
    eh.destroy();
  }
  // A truncated module.
  const ok = await watToWasm(`(module (func (export "f") (loop (br 0))))`, "t.wat");
  assert.equal(meter(ok.subarray(0, ok.length - 3), 1), null);
});
