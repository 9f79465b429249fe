/**
 * A pool of up to `size` worker-backed instances of one plugin, started up front or, with
 * `lazy`, when a call finds none idle. A call takes an idle instance so concurrent requests
 * do not queue on one; a guest that overruns its budget has its worker stopped and a fresh
 * instance takes its place while the others keep serving. Deno cannot stop a thread that
 * spins (`STATE.stop`): a metered guest stops itself once the fuel it was given for its
 * budget is spent (`WORKER_FUEL_PER_MS`), and its worker then exits; a guest that could not be
 * metered keeps its thread until it returns.
 * @module
 */
import type { GuestCall } from "./binary.ts";
import {
  CTL,
  DATA_OFFSET,
  GUEST_CALLS,
  RESULT,
  STATE,
  type WorkerInit,
  type WorkerReply,
} from "./protocol.ts";

export type CallResult =
  | { readonly kind: "none"; readonly logs: readonly GuestLog[] }
  | { readonly kind: "output"; readonly bytes: Uint8Array; readonly logs: readonly GuestLog[] }
  | { readonly kind: "error"; readonly message: string; readonly logs: readonly GuestLog[] };

export interface GuestLog {
  readonly level: string;
  readonly message: string;
}

/** The guest did not answer within its budget; its worker was terminated. */
export class PluginTimeout extends Error {
  override readonly name = "PluginTimeout";
}

/**
 * No instance came free before the caller's `waitUntil`: the guest never ran. Not the
 * plugin's failure (every instance was busy with other requests), so not a timeout.
 */
export class PluginBusy extends Error {
  override readonly name = "PluginBusy";
}

/** One call's limits. */
export interface CallOptions {
  /** This call's timeout, ms, over the guest's own run (default the pool's `timeoutMs`). */
  readonly timeoutMs?: number;
  /** What is left of it, ms, when part was spent elsewhere (default all of it). */
  readonly budgetMs?: number;
  /**
   * `performance.now()` by which an instance must be free (the request's deadline); waiting
   * for one does not count against `budgetMs`. No limit when absent.
   */
  readonly waitUntil?: number;
  /**
   * `performance.now()` past which the guest's run is cut too, whatever is left of its
   * timeout (the request's deadline, before the upstream call). No limit when absent.
   */
  readonly runUntil?: number;
}

export interface PoolOptions {
  readonly init: Omit<WorkerInit, "sab">;
  readonly size: number;
  readonly timeoutMs: number;
  /** Start workers when calls need them, not up front (see `runner.ts`). */
  readonly lazy?: boolean;
  /** The largest input a call may bring (sizes the exchange buffer); default 128 MiB. */
  readonly maxInput?: number;
}

export interface PluginPool {
  /**
   * Run `hook` on a free instance. `timeout` bounds the guest's run only; the wait for an
   * instance is bounded by `opts.waitUntil` (a `PluginBusy` then).
   */
  call(hook: GuestCall, input: Uint8Array, opts?: CallOptions): Promise<CallResult>;
  /** Resolves once the first instance is up; rejects with why it could not start. */
  readonly ready: Promise<void>;
  /** Instances running now (for tests and the bench). */
  size(): number;
  close(): void;
}

const WORKER_URL = new URL("./worker.ts", import.meta.url);
const INITIAL_BYTES = DATA_OFFSET + 64 * 1024;

interface Slot {
  readonly worker: Worker;
  readonly sab: SharedArrayBuffer;
  readonly ctl: Int32Array;
  readonly ready: Promise<void>;
  /** Rejects the call in flight when the worker dies under it. */
  died: (err: Error) => void;
  dead: boolean;
}

interface Waiter {
  readonly resolve: (slot: Slot) => void;
  readonly reject: (err: Error) => void;
}

/** A request body never comes near this; a larger input fails its call. */
const MAX_INPUT = 128 * 1024 * 1024;

export function createPool(opts: PoolOptions): PluginPool {
  const slots: Slot[] = [];
  const idle: Slot[] = [];
  const waiters: Waiter[] = [];
  let closed = false;
  const maxBytes = DATA_OFFSET + Math.max(opts.maxInput ?? 0, MAX_INPUT);

  const spawn = (): Slot => {
    const sab = new SharedArrayBuffer(INITIAL_BYTES, { maxByteLength: maxBytes });
    const worker = new Worker(WORKER_URL, { type: "module", name: "pilotfish wasm plugin" });
    const { promise: ready, resolve, reject } = Promise.withResolvers<void>();
    const slot: Slot = {
      worker,
      sab,
      ctl: new Int32Array(sab, 0, CTL.length),
      ready,
      died: () => {},
      dead: false,
    };
    worker.onmessage = (e: MessageEvent<WorkerReply>) => {
      if (e.data.type === "ready") resolve();
      else reject(new Error(e.data.message));
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      const err = new Error(`plugin worker failed: ${e.message}`);
      reject(err);
      drop(slot);
      slot.died(err);
    };
    worker.postMessage({ ...opts.init, sab } satisfies WorkerInit);
    slots.push(slot);
    ready.then(() => release(slot), () => drop(slot, false));
    return slot;
  };

  /** Stop an instance; unless it never started, a fresh one takes its place. */
  const drop = (slot: Slot, replace = true) => {
    if (slot.dead) return;
    slot.dead = true;
    // Told first, then terminated: see `STATE.stop`.
    Atomics.store(slot.ctl, CTL.state, STATE.stop);
    Atomics.notify(slot.ctl, CTL.state);
    slot.worker.terminate();
    const i = slots.indexOf(slot);
    if (i >= 0) slots.splice(i, 1);
    const j = idle.indexOf(slot);
    if (j >= 0) idle.splice(j, 1);
    // A lazy pool replaces an instance only for calls already waiting.
    if (replace && !closed && (!opts.lazy || waiters.length > 0)) spawn();
    if (slots.length === 0) {
      const err = new Error("no plugin instance could start");
      for (const w of waiters.splice(0)) w.reject(err);
    }
  };

  const release = (slot: Slot) => {
    if (slot.dead || closed) return;
    const next = waiters.shift();
    if (next) next.resolve(slot);
    else idle.push(slot);
  };

  const acquire = (waitUntil: number | undefined): Slot | Promise<Slot> => {
    if (closed) throw new Error("plugin pool is closed");
    const slot = idle.pop();
    if (slot) return slot;
    if (opts.lazy && slots.length < opts.size) spawn();
    else if (slots.length === 0) throw new Error("no plugin instance could start");
    return new Promise<Slot>((resolve, reject) => {
      if (waitUntil === undefined) return waiters.push({ resolve, reject });
      const left = waitUntil - performance.now();
      if (left <= 0) return reject(busy());
      const timer = setTimeout(() => {
        const i = waiters.indexOf(waiter);
        if (i >= 0) waiters.splice(i, 1);
        reject(busy());
      }, left);
      const waiter: Waiter = {
        resolve: (s) => {
          clearTimeout(timer);
          resolve(s);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      waiters.push(waiter);
    });
  };
  const busy = () => new PluginBusy(`no instance came free within the request's deadline`);

  // Unless lazy, every instance starts now: a request never waits for a worker to boot.
  if (!opts.lazy) { for (let i = 0; i < opts.size; i++) spawn(); }
  const ready = Promise.all(slots.map((s) => s.ready)).then(() => {});
  ready.catch(() => {});

  const run = async (
    slot: Slot,
    hook: GuestCall,
    input: Uint8Array,
    deadline: number,
    timeoutMs: number,
  ): Promise<CallResult> => {
    const { sab, ctl } = slot;
    const needed = DATA_OFFSET + input.length;
    if (needed > sab.byteLength) sab.grow(needed);
    new Uint8Array(sab, DATA_OFFSET).set(input);
    ctl[CTL.hook] = GUEST_CALLS.indexOf(hook);
    ctl[CTL.inputLength] = input.length;
    ctl[CTL.budgetMs] = Math.min(2 ** 31 - 1, Math.ceil(Math.max(1, deadline - performance.now())));
    Atomics.store(ctl, CTL.state, STATE.request);
    Atomics.notify(ctl, CTL.state);
    let died: Promise<never> | undefined;
    // A wake-up is not an answer: the worker's notify for the previous call can land after
    // that call was read (its answer seen before the notify), waking this wait early.
    while (Atomics.load(ctl, CTL.state) === STATE.request) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      const waited = Atomics.waitAsync(ctl, CTL.state, STATE.request, left);
      if (!waited.async) continue;
      died ??= new Promise<never>((_, reject) => (slot.died = reject));
      await Promise.race([waited.value, died]);
    }
    if (Atomics.load(ctl, CTL.state) !== STATE.response) {
      drop(slot);
      throw new PluginTimeout(`did not answer within ${timeoutMs} ms; its worker was stopped`);
    }
    const data = new Uint8Array(sab, DATA_OFFSET);
    const outLen = ctl[CTL.outputLength]!;
    const logLen = ctl[CTL.logLength]!;
    const bytes = data.slice(0, outLen);
    const logs: GuestLog[] = logLen > 0
      ? JSON.parse(new TextDecoder().decode(data.subarray(outLen, outLen + logLen)))
      : [];
    const result = ctl[CTL.result];
    Atomics.store(ctl, CTL.state, STATE.idle);
    release(slot);
    if (result === RESULT.error) {
      return { kind: "error", message: new TextDecoder().decode(bytes), logs };
    }
    return result === RESULT.output ? { kind: "output", bytes, logs } : { kind: "none", logs };
  };

  return {
    ready,
    size: () => slots.length,
    async call(hook, input, callOpts = {}) {
      if (DATA_OFFSET + input.length > maxBytes) {
        throw new Error("input larger than the plugin buffer");
      }
      const got = acquire(callOpts.waitUntil);
      const slot = got instanceof Promise ? await got : got;
      // The budget starts now: waiting for a free instance (other requests' calls, a lazy
      // pool's boot) is not the guest's time.
      const timeoutMs = callOpts.timeoutMs ?? opts.timeoutMs;
      const deadline = Math.min(
        performance.now() + (callOpts.budgetMs ?? timeoutMs),
        callOpts.runUntil ?? Infinity,
      );
      return await run(slot, hook, input, deadline, timeoutMs);
    },
    close() {
      closed = true;
      for (const slot of [...slots]) drop(slot);
      const err = new Error("plugin pool is closed");
      for (const w of waiters.splice(0)) w.reject(err);
    },
  };
}
