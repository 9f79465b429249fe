/**
 * One WASM plugin instance in its own thread: Extism runs the guest here, so a guest that
 * spins holds this thread, not the daemon's. A metered guest is given fuel for its call's
 * budget and stops itself when it is spent; the worker exits when the host says `stop`
 * (`Worker.terminate()` alone does not stop a busy or waiting thread, see protocol.ts).
 * Calls arrive through a SharedArrayBuffer and an `Atomics` handshake rather
 * than `postMessage`: the worker blocks in `Atomics.wait` between calls and the main thread
 * awaits `Atomics.waitAsync`, which costs tens of us per call instead of a message hop each
 * way (see `pool.ts` for the layout).
 * @module
 */
/// <reference lib="deno.worker" />
import { createInstance, type GuestLog, type Instance } from "./instance.ts";
import {
  CTL,
  DATA_OFFSET,
  GUEST_CALLS,
  RESULT,
  STATE,
  WORKER_FUEL_PER_MS,
  type WorkerInit,
} from "./protocol.ts";

self.onmessage = async (e: MessageEvent<WorkerInit>) => {
  const { sab, ...init } = e.data;
  let instance: Instance;
  try {
    instance = await createInstance(init, init.metered);
  } catch (err) {
    self.postMessage({ type: "failed", message: err instanceof Error ? err.message : String(err) });
    return;
  }
  self.postMessage({ type: "ready" });
  serve(instance, sab, instance.logs);
};

async function serve(
  instance: Instance,
  sab: SharedArrayBuffer,
  logs: GuestLog[],
): Promise<void> {
  const ctl = new Int32Array(sab, 0, CTL.length);
  const enc = new TextEncoder();
  for (;;) {
    for (
      let s = Atomics.load(ctl, CTL.state);
      s !== STATE.request;
      s = Atomics.load(ctl, CTL.state)
    ) {
      if (s === STATE.stop) return self.close();
      Atomics.wait(ctl, CTL.state, s);
    }
    const data = new Uint8Array(sab, DATA_OFFSET);
    const input = data.slice(0, ctl[CTL.inputLength]!);
    const hook = GUEST_CALLS[ctl[CTL.hook]!]!;
    logs.length = 0;
    const fuel = BigInt(ctl[CTL.budgetMs]!) * WORKER_FUEL_PER_MS;
    if (instance.fuel !== null) instance.fuel.value = fuel;
    let result: number = RESULT.none;
    let output: Uint8Array = new Uint8Array(0);
    try {
      const bytes = await instance.call(hook, input);
      if (bytes !== null && bytes.length > 0) {
        result = RESULT.output;
        output = bytes;
      }
    } catch (err) {
      result = RESULT.error;
      const spent = instance.fuel !== null && (instance.fuel.value as bigint) < 0n;
      output = enc.encode(
        spent
          ? `spent the ${fuel} fuel its time budget allows (a runaway loop?)`
          : err instanceof Error
          ? err.message
          : String(err),
      );
    }
    const logBytes = logs.length > 0 ? enc.encode(JSON.stringify(logs)) : new Uint8Array(0);
    const needed = DATA_OFFSET + output.length + logBytes.length;
    if (needed > sab.byteLength) {
      if (needed > sab.maxByteLength) {
        result = RESULT.error;
        output = enc.encode("output larger than the host's exchange buffer");
      } else {
        sab.grow(needed);
      }
    }
    const view = new Uint8Array(sab, DATA_OFFSET);
    view.set(output, 0);
    view.set(logBytes, output.length);
    ctl[CTL.result] = result;
    ctl[CTL.outputLength] = output.length;
    ctl[CTL.logLength] = logBytes.length;
    // The host may have given up on this call and stopped the instance meanwhile.
    if (Atomics.compareExchange(ctl, CTL.state, STATE.request, STATE.response) !== STATE.request) {
      return self.close();
    }
    Atomics.notify(ctl, CTL.state);
  }
}
