// deno-lint-ignore-file no-console -- a CLI: the report goes to stdout.
/**
 * Where a WASM plugin call's time goes: the same guest called (a) in this thread through
 * Extism directly (no timeout possible), (b) through the gateway's pool (a worker per
 * instance, SharedArrayBuffer handshake; what the daemon does), for the no-op example and
 * the prompt-injection guard, at a 1 KB and a 32 KB prompt. Per-call µs, median of rounds.
 *   deno run --allow-read --allow-env bench/wasm_calls.ts
 * @module
 */
import createPlugin from "@extism/extism";
import { fileURLToPath } from "node:url";
import { parseConfigText } from "../src/config/mod.ts";
import { compilePlugin, type PluginPool, startPool } from "../src/plugins/mod.ts";
import type { HookName } from "../src/plugins/binary.ts";

const CALLS = Number(Deno.env.get("BENCH_CALLS") ?? 2000);
const PROSE = "The quarterly report covers revenue, hiring and the product roadmap for next year. ";
const input = (bytes: number) =>
  new TextEncoder().encode(JSON.stringify({
    hook: "pre_http",
    body: {
      model: "up/gpt-4o-mini",
      messages: [{
        role: "user",
        content: PROSE.repeat(Math.ceil(bytes / PROSE.length)).slice(0, bytes),
      }],
    },
  }));

async function time(call: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(200, CALLS); i++) await call();
  const rounds: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    for (let i = 0; i < CALLS / 5; i++) await call();
    rounds.push(((performance.now() - t) * 1000) / (CALLS / 5));
  }
  return rounds.sort((a, b) => a - b)[2]!;
}

const plugins: [string, HookName][] = [["example", "pre_llm"], [
  "prompt-injection-guard",
  "pre_http",
]];
console.log("plugin                   prompt   in-thread µs   pool (worker) µs");
for (const [name, hook] of plugins) {
  const path = fileURLToPath(new URL(`../plugins/${name}/plugin.wasm`, import.meta.url));
  const module = new WebAssembly.Module(await Deno.readFile(path));
  const inline = await createPlugin({ wasm: [{ module }] }, {});
  const { config } = parseConfigText(
    `wasm_plugins:\n  - { name: ${name}, path: ${path}, instances: 1 }\n`,
    () => undefined,
    "bench.yaml",
  );
  const pool: PluginPool = startPool(compilePlugin(config.wasm_plugins[0]!, "/"));
  await pool.ready;
  for (const bytes of [1024, 32768]) {
    const data = input(bytes);
    const a = await time(() => inline.call(hook, data));
    const b = await time(() => pool.call(hook, data));
    console.log(
      `${name.padEnd(24)} ${String(bytes).padStart(6)}   ${a.toFixed(1).padStart(12)}   ${
        b.toFixed(1).padStart(16)
      }`,
    );
  }
  await inline.close();
  pool.close();
}
