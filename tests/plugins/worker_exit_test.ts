/**
 * Deno cannot terminate a worker that is busy or blocked in `Atomics.wait`
 * (denoland/deno#35657): a spinning guest's thread, and every idle worker of a retired
 * pool, stayed for ever (one core each, and memory on every reload). The host tells a
 * worker to stop through the shared control word, and a metered guest stops itself once
 * the fuel of its budget is spent. Runs in its own process: see worker_exit_child.ts.
 */
import assert from "node:assert/strict";

Deno.test("plugin workers end: a spinning guest's after its timeout, a closed pool's idle ones", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "-A",
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      new URL("./worker_exit_child.ts", import.meta.url).pathname,
    ],
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const r = JSON.parse(text.split("\n").at(-1)!);
  assert.equal(r.timedOut, true, "the caller heard at the timeout");
  assert.notEqual(r.spinExitMs, null, "the spinning guest's thread ended");
  assert.notEqual(r.closeExitMs, null, "a closed pool's idle workers ended");
});
