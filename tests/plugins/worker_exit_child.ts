/**
 * Run by worker_exit_test.ts in a process of its own (thread counts are per process, and test
 * files share one): stop a spinning guest, close a pool whose workers sit idle, and report
 * whether the spinning stopped and the idle threads went away. Prints one JSON line.
 */
import { parseConfigText } from "../../src/config/mod.ts";
import { compilePlugin, PluginTimeout, startPool } from "../../src/plugins/mod.ts";
import { fixtureWasm } from "./wat.ts";

const threads = () =>
  Number(/Threads:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))![1]);
/** This process's CPU time, clock ticks (user + system). */
const cpuTicks = () => {
  const f = Deno.readTextFileSync("/proc/self/stat").split(") ")[1]!.split(" ");
  return Number(f[11]) + Number(f[12]);
};

/** Poll `ok` (no timer is awaited for its own sake: each turn re-reads /proc). */
async function within(ms: number, ok: () => boolean): Promise<number | null> {
  const start = performance.now();
  while (performance.now() - start < ms) {
    if (ok()) return Math.round(performance.now() - start);
    await new Promise((r) => setTimeout(r, 20));
  }
  return null;
}

const dir = await Deno.makeTempDir({ prefix: "pf-worker-exit-" });
const plugin = (name: string, path: string, extra: string) =>
  compilePlugin(
    parseConfigText(
      `wasm_plugins:\n  - { name: ${name}, path: ${path}, ${extra} }\n`,
      () => undefined,
      "x.yaml",
    ).config.wasm_plugins[0]!,
    "/",
  );

// A guest that spins on a large input: on the thread its fuel runs out, then it moves to a
// worker, which the host gives up on at the timeout.
const spin = startPool(plugin("spin", await fixtureWasm(dir, "spin"), "timeout: 200ms"));
await spin.ready;
let timedOut = false;
try {
  await spin.call("pre_http", new Uint8Array(3000));
} catch (err) {
  timedOut = err instanceof PluginTimeout;
}
// Nothing else runs here: once the guest stops, the process's CPU time stands still (a
// spinning thread adds a tick every 10 ms). Idle runtime threads linger for seconds, so the
// thread count says nothing here.
let last = cpuTicks();
let lastAt = performance.now();
const spinExitMs = await within(15_000, () => {
  if (performance.now() - lastAt < 500) return false;
  const now = cpuTicks();
  const quiet = now - last <= 5;
  [last, lastAt] = [now, performance.now()];
  return quiet;
});
spin.close();

// A guest that makes HTTP calls runs in workers started up front; closing the pool (as a
// retired config generation does) must end them, idle as they are.
const net = startPool(plugin("net", await fixtureWasm(dir, "net"), "instances: 3"));
await net.ready;
const started = threads();
net.close();
const closeExitMs = await within(10_000, () => threads() <= started - 3);

await Deno.remove(dir, { recursive: true });
Deno.stdout.writeSync(
  new TextEncoder().encode(JSON.stringify({ timedOut, spinExitMs, closeExitMs }) + "\n"),
);
Deno.exit(0);
