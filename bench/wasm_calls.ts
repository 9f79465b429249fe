// deno-lint-ignore-file no-console -- a CLI: the report goes to stdout.
/**
 * Where a WASM plugin call's time goes: the same guest called (a) in this thread through
 * Extism directly, unmetered (no way to stop it), (b) as the daemon calls it (`runner.ts`:
 * the metered guest on this thread), (c) through a worker pool (a worker per instance,
 * SharedArrayBuffer handshake, the metered guest; where calls that spend their fuel go), for the no-op example
 * and the prompt-injection guard, at a 1 KB and a 32 KB prompt. Per-call µs, median of rounds:
 * wall time, and in brackets the process's CPU time (all threads), steadier on a busy machine.
 * BENCH_UNIQUE_PROMPTS=1: each call's prompt opens with its own number (nothing a guest keeps
 * from earlier calls applies: the scan's own cost).
 *   deno run --allow-read --allow-env bench/wasm_calls.ts
 * @module
 */
import { cpuUsage } from "node:process";
import { fileURLToPath } from "node:url";
import { parseConfigText } from "../src/config/mod.ts";
import { compilePlugin, createPool, type PluginPool, startPool } from "../src/plugins/mod.ts";
import type { HookName } from "../src/plugins/binary.ts";
import { createInstance } from "../src/plugins/instance.ts";

const CALLS = Number(Deno.env.get("BENCH_CALLS") ?? 2000);
const PROSE = "The quarterly report covers revenue, hiring and the product roadmap for next year. ";
const UNIQUE = Deno.env.get("BENCH_UNIQUE_PROMPTS") === "1";
let serial = 0;
const input = (bytes: number) =>
  new TextEncoder().encode(JSON.stringify({
    hook: "pre_http",
    body: {
      model: "up/gpt-4o-mini",
      messages: [{
        role: "user",
        content: ((UNIQUE ? `[${String(serial++).padStart(10, "0")}] ` : "") +
          PROSE.repeat(Math.ceil(bytes / PROSE.length))).slice(0, bytes),
      }],
    },
  }));

/** Per call, median of 5 rounds: wall µs and process CPU µs (every thread, workers too). */
async function time(call: () => Promise<unknown>): Promise<[wall: number, cpu: number]> {
  for (let i = 0; i < Math.min(200, CALLS); i++) await call();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    const c = cpuUsage();
    for (let i = 0; i < CALLS / 5; i++) await call();
    const used = cpuUsage(c);
    wall.push(((performance.now() - t) * 1000) / (CALLS / 5));
    cpu.push((used.user + used.system) / (CALLS / 5));
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[2]!;
  return [median(wall), median(cpu)];
}

const plugins: [string, HookName][] = [["example", "pre_llm"], [
  "prompt-injection-guard",
  "pre_http",
]];
console.log(
  "plugin                   prompt   unmetered µs (CPU)   daemon (metered) µs (CPU)   worker µs (CPU)",
);
for (const [name, hook] of plugins) {
  const path = fileURLToPath(new URL(`../plugins/${name}/plugin.wasm`, import.meta.url));
  const { config } = parseConfigText(
    `wasm_plugins:\n  - { name: ${name}, path: ${path}, instances: 1, timeout: 10s }\n`,
    () => undefined,
    "bench.yaml",
  );
  const compiled = compilePlugin(config.wasm_plugins[0]!, "/");
  const init = {
    guest: compiled.guest,
    shim: compiled.shim,
    wasi: compiled.wasi,
    inputRead: compiled.inputRead,
    allowedHosts: [],
    config: {},
    maxPages: compiled.maxPages,
    metered: false,
  };
  // In-thread, unmetered: the shim, sandbox options and INPUT_READ a worker has.
  const inline = await createInstance(init);
  const runner: PluginPool = startPool(compiled);
  // A worker as the daemon's run it: the metered guest, given fuel for each call's budget.
  const workerInit = compiled.workerMetered === null
    ? init
    : { ...init, ...compiled.workerMetered, metered: true };
  const pool: PluginPool = createPool({ size: 1, timeoutMs: 10_000, init: workerInit });
  await Promise.all([runner.ready, pool.ready]);
  for (const bytes of [1024, 32768]) {
    // Unique prompts: made before the clock runs, one per call.
    const made = Array.from({ length: UNIQUE ? CALLS + 200 : 1 }, () => input(bytes));
    let next = 0;
    const data = () => made[next++ % made.length]!;
    const a = await time(() => inline.call(hook, data()));
    const r = await time(() => runner.call(hook, data()));
    const b = await time(() => pool.call(hook, data()));
    const f = ([wall, cpu]: [number, number]) =>
      `${wall.toFixed(1).padStart(8)} (${cpu.toFixed(1).padStart(7)})`;
    console.log(
      `${name.padEnd(24)} ${String(bytes).padStart(6)}   ${f(a)}   ${f(r).padStart(25)}   ${
        f(b).padStart(15)
      }`,
    );
  }
  await inline.close();
  runner.close();
  pool.close();
}
// Terminated workers can keep the event loop alive a while: exit once the table is out.
Deno.exit(0);
