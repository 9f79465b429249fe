/**
 * Where a plugin call runs. A metered guest (`meter.ts`) runs first on the daemon's own
 * thread with `FUEL`; only a call that spends it moves to a worker (`pool.ts`, started
 * lazily), with what is left of the timeout. A guest that cannot be metered, or that makes
 * HTTP calls, always runs in workers.
 *
 * Why: a worker hand-off is two thread wake-ups per call. On the bench machine (2 vCPUs in a
 * VM, the daemon pinned to one) the injection guard behind a worker added 330 us to a 1 KB
 * request at 200 req/s, and 90-160 us on the daemon's thread. A guest on the daemon's thread
 * holds the event loop while it runs, so its fuel is a few milliseconds' worth, and inputs
 * as long as one that spent it go straight to workers for a while (`SLOW_MS`).
 *
 * Calls on the daemon's thread are serialised: Extism's `call` finishes in a microtask after
 * the guest returns, and a second call starting in between would reset the first's output.
 * After a guest unwinds (a trap, spent fuel, a host function that threw) its instance is
 * replaced: its memory may be half-updated.
 * @module
 */
import type { GuestCall } from "./binary.ts";
import type { Instance } from "./instance.ts";
import {
  type CallResult,
  createPool,
  type GuestLog,
  PluginBusy,
  type PluginPool,
  PluginTimeout,
} from "./pool.ts";
import type { WorkerInit } from "./protocol.ts";

/**
 * The fuel of a call on the daemon's thread: instructions, each loop iteration weighted by
 * its body. On the bench machine a tight loop spends it in about 10 ms; the injection guard
 * scans a 128 KB prompt within it.
 */
export const FUEL = 20_000_000;
/**
 * How long inputs as long as one that spent its fuel go straight to workers. It doubles when
 * it happens again as soon as the period ends (up to `SLOW_MAX_MS`), so a guest that spins
 * on every input soon costs the daemon's thread next to nothing.
 */
export const SLOW_MS = 1_000;
export const SLOW_MAX_MS = 60_000;

/** A guest metered for the daemon's thread, with the shim that exports its fuel. */
export interface Metered {
  readonly guest: WebAssembly.Module;
  readonly shim: WebAssembly.Module;
}

export interface RunnerOptions {
  /** The unmetered guest, for workers. */
  readonly init: Omit<WorkerInit, "sab">;
  /** The guest for the daemon's thread, or null: workers only. */
  readonly metered: Metered | null;
  /** Worker instances at most. */
  readonly size: number;
  readonly timeoutMs: number;
  /** The largest input a call may bring (sizes the workers' exchange buffers). */
  readonly maxInput?: number;
}

/** Most calls log nothing: no array per call for them. */
const NO_LOGS: readonly GuestLog[] = [];

/** Extism's error for a guest that returned with an error set: the guest is intact. */
export const GUEST_ERROR = "Plugin-originated error";

export function createRunner(opts: RunnerOptions): PluginPool {
  if (opts.metered === null) return createPool(opts);
  const pool = createPool({ ...opts, lazy: true });
  const init = { ...opts.init, ...opts.metered };

  let closed = false;
  let instance: Instance | null = null;
  /** Settles when the instance is (re)built; null once it is. */
  let building: Promise<void> | null = null;
  const build = (): Promise<void> => {
    // Loaded here, not at the top: a daemon without plugins never loads Extism.
    const made = import("./instance.ts").then((m) => m.createInstance(init, true));
    const settled = made.then((inst) => {
      if (closed) inst.close().catch(() => {});
      else instance = inst;
    }).finally(() => (building = null));
    building = settled;
    return settled;
  };
  const replace = () => {
    instance?.close().catch(() => {});
    instance = null;
    // A failed rebuild leaves the workers.
    build().catch(() => {});
  };
  const ready = build();
  ready.catch(() => {});

  let busy = false;
  const queue: (() => void)[] = [];
  let slowFrom = Infinity;
  let slowUntil = 0;
  let slowFor = SLOW_MS;

  const inThread = async (
    inst: Instance,
    hook: GuestCall,
    input: Uint8Array,
  ): Promise<CallResult | "spent"> => {
    inst.fuel!.value = BigInt(FUEL);
    inst.logs.length = 0;
    try {
      const bytes = await inst.call(hook, input);
      const logs = inst.logs.length > 0 ? inst.logs.slice() : NO_LOGS;
      return bytes !== null && bytes.length > 0
        ? { kind: "output", bytes, logs }
        : { kind: "none", logs };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const spent = (inst.fuel!.value as bigint) < 0n;
      if (!message.startsWith(GUEST_ERROR)) replace();
      return spent ? "spent" : { kind: "error", message, logs: inst.logs.slice() };
    }
  };

  return {
    ready,
    size: () => pool.size() + (instance ? 1 : 0),
    async call(hook, input, callOpts = {}) {
      const { waitUntil } = callOpts;
      if (input.length >= slowFrom && performance.now() < slowUntil) {
        return pool.call(hook, input, callOpts);
      }
      // The finishing call hands the thread to the next in line (busy stays set).
      if (busy) await new Promise<void>((resolve) => queue.push(resolve));
      else busy = true;
      let result: CallResult | "spent" | null = null;
      // The timeout counts from when the thread is ours: the wait for it (other requests'
      // calls, each within its fuel) is not this guest's time.
      let started = 0;
      try {
        if (building) await building.catch(() => {});
        started = performance.now();
        if (waitUntil !== undefined && started >= waitUntil) {
          throw new PluginBusy("the thread did not come free within the request's deadline");
        }
        if (instance) result = await inThread(instance, hook, input);
      } finally {
        const next = queue.shift();
        if (next) next();
        else busy = false;
      }
      if (result !== null && result !== "spent") return result;
      const now = performance.now();
      if (result === "spent") {
        // Again within one period of the last: wait twice as long before trying this thread.
        slowFor = now < slowUntil + slowFor ? Math.min(slowFor * 2, SLOW_MAX_MS) : SLOW_MS;
        slowFrom = now < slowUntil ? Math.min(slowFrom, input.length) : input.length;
        slowUntil = now + slowFor;
      }
      const timeoutMs = callOpts.timeoutMs ?? opts.timeoutMs;
      const left = timeoutMs - (now - started);
      if (left <= 0) throw new PluginTimeout(`did not answer within ${timeoutMs} ms`);
      return pool.call(hook, input, { ...callOpts, timeoutMs, budgetMs: left });
    },
    close() {
      closed = true;
      pool.close();
      instance?.close().catch(() => {});
      instance = null;
    },
  };
}
