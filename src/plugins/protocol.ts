/**
 * What the main thread and a plugin worker share: the init message, and the layout of the
 * SharedArrayBuffer a call goes through. `Int32Array` control words first, then the data
 * area: the input on the way in; the output then the guest's log lines (JSON) on the way out.
 * @module
 */
import { HOOKS } from "./binary.ts";

export { HOOKS };

export const CTL = {
  state: 0,
  hook: 1,
  inputLength: 2,
  result: 3,
  outputLength: 4,
  logLength: 5,
  length: 8,
} as const;

export const DATA_OFFSET = CTL.length * 4;

export const STATE = { idle: 0, request: 1, response: 2 } as const;

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
}

export type WorkerReply = { type: "ready" } | { type: "failed"; message: string };
