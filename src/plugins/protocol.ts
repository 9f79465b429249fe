/**
 * What the main thread and a plugin worker share: the init message, and the layout of the
 * SharedArrayBuffer a call goes through. `Int32Array` control words first, then the data
 * area: the input on the way in; the output then the guest's log lines (JSON) on the way out.
 * @module
 */
import { GUEST_CALLS } from "./binary.ts";

export { GUEST_CALLS };

export const CTL = {
  state: 0,
  hook: 1,
  inputLength: 2,
  result: 3,
  outputLength: 4,
  logLength: 5,
  /** This call's budget, ms: a metered guest gets `WORKER_FUEL_PER_MS` fuel for each. */
  budgetMs: 6,
  length: 8,
} as const;

export const DATA_OFFSET = CTL.length * 4;

/**
 * `stop`: the host dropped this instance (a call past its budget, a closed pool). The worker
 * exits when it sees it: `Worker.terminate()` alone frees neither a worker blocked in
 * `Atomics.wait` nor one spinning in a guest (Deno 2.9, denoland/deno#35657).
 */
export const STATE = { idle: 0, request: 1, response: 2, stop: 3 } as const;

/**
 * Fuel per millisecond of a call's budget in a worker. A tight loop, the cheapest work per
 * unit, spends 2-4 million a millisecond on the bench machine (baseline, then optimised
 * code): 20 million leaves an honest guest its whole budget on a machine five times as fast,
 * and one that spins stops itself within five to ten budgets of its start (tests: a 200 ms
 * budget, about 1 s), its worker then exiting.
 */
export const WORKER_FUEL_PER_MS = 20_000_000n;

/** `none`: the guest set no output (no change) ; `output` ; `error`: the message as output. */
export const RESULT = { none: 0, output: 1, error: 2 } as const;

export interface WorkerInit {
  readonly guest: WebAssembly.Module;
  readonly shim: WebAssembly.Module;
  readonly sab: SharedArrayBuffer;
  readonly wasi: boolean;
  /** Provide `INPUT_READ` (binary.ts) to the guest. */
  readonly inputRead: boolean;
  readonly allowedHosts: readonly string[];
  readonly config: Readonly<Record<string, string>>;
  readonly maxPages: number;
  /** `guest` is metered (meter.ts): the worker sets its fuel before each call. */
  readonly metered: boolean;
}

export type WorkerReply = { type: "ready" } | { type: "failed"; message: string };
