/**
 * One Extism instance of a compiled plugin, as a worker runs it (and `runner.ts` on the
 * daemon's thread, with the metered guest): the guest linked behind the status shim, the
 * sandbox options, the guest's log lines captured, Pilotfish's `INPUT_READ` provided when the
 * guest imports it, and the fuel of a metered guest.
 * @module
 */
import process from "node:process";
import createPlugin, { type CallContext, type Plugin } from "@extism/extism";
import { FUEL_EXPORT, GUEST_MEMORY_EXPORT, INPUT_READ } from "./binary.ts";
import { guardedFetch, hostNames } from "./net.ts";
import type { WorkerInit } from "./protocol.ts";

/**
 * Node's WASI (Extism's, for guests that import WASI) prints "ExperimentalWarning: WASI is an
 * experimental feature" on stderr at its first use in each thread: a line outside the log's
 * format that says nothing to an operator. That one warning is dropped; the rest pass.
 */
function quietWasiWarning(): void {
  const emit = process.emitWarning;
  if ((emit as { quiet?: true }).quiet) return;
  const quiet = (warning: string | Error, ...rest: unknown[]) => {
    const type = typeof rest[0] === "string" ? rest[0] : (rest[0] as { type?: unknown })?.type;
    if (type === "ExperimentalWarning" && String(warning).startsWith("WASI")) return;
    (emit as (w: string | Error, ...r: unknown[]) => void).call(process, warning, ...rest);
  };
  process.emitWarning = Object.assign(quiet, { quiet: true as const }) as typeof emit;
}
quietWasiWarning();

type ExtismOptions = NonNullable<Parameters<typeof createPlugin>[1]>;
type ExtismLogger = NonNullable<ExtismOptions["logger"]>;

export interface GuestLog {
  level: string;
  message: string;
}

export interface Instance {
  /** Call `hook` with `input` (kept by reference until the call ends); null: no output. */
  call(hook: string, input: Uint8Array): Promise<Uint8Array | null>;
  /** The guest's log lines since the last `logs.length = 0`. */
  readonly logs: GuestLog[];
  /** A metered guest's fuel (`meter.ts`): set before a call; below zero after it, spent. */
  readonly fuel: WebAssembly.Global | null;
  close(): Promise<void>;
}

/** `metered`: the guest is metered and the shim re-exports its fuel. */
export async function createInstance(
  init: Omit<WorkerInit, "sab">,
  metered = false,
): Promise<Instance> {
  const logs: GuestLog[] = [];
  const sink = (level: string) => (message: unknown) => {
    // A guest that logs in a loop must not grow this without bound.
    if (logs.length < 32) logs.push({ level, message: String(message).slice(0, 2048) });
  };
  let input: Uint8Array = new Uint8Array(0);
  let guestMemory: WebAssembly.Memory | null = null;
  const inputRead = (_ctx: unknown, dst: number, len: number): number => {
    // i32 arguments arrive signed: read them as the unsigned addresses they are.
    const at = dst >>> 0;
    const n = Math.min(len >>> 0, input.length);
    if (guestMemory === null || at + n > guestMemory.buffer.byteLength) {
      throw new RangeError(`${INPUT_READ.name}: destination out of bounds`);
    }
    new Uint8Array(guestMemory.buffer, at, n).set(input.subarray(0, n));
    return n;
  };
  // Extism's buffers a guest asks for (`alloc`) count against max_memory here, not in Extism:
  // its check (rc13) keeps the buffer it refuses, so a guest that ignores the refusal grew the
  // daemon by gigabytes, and it sums every block on every call. Counted per call, O(1), never
  // given back on `free` (a call may take max_memory of them in all), each block with its
  // bookkeeping so that tiny ones cannot pile up either. Past it the guest is stopped.
  const budget = init.maxPages * 65_536;
  let allocated = 0;
  const alloc = (ctx: CallContext, n: bigint): bigint => {
    // A negative size must not lower the count (the buffer it asks for is never made).
    allocated += (n < 0n ? Infinity : Number(n)) + BLOCK_OVERHEAD;
    if (allocated > budget) {
      throw new RangeError(
        `max_memory exceeded: the guest asked the host for ${n} bytes more, past the ${
          mib(budget)
        } MiB one call may take`,
      );
    }
    return ctx.alloc(n);
  };
  // HTTP answers' bodies are kept as blocks until the call ends: counted with the rest. Past
  // max_memory the body fails, and Extism stores none of it.
  const countBody = (res: Response): Response => {
    if (res.body === null) return res;
    const body = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, out) {
          allocated += chunk.byteLength;
          if (allocated <= budget) out.enqueue(chunk);
          else {
            out.error(new RangeError(`max_memory exceeded: HTTP answers past ${mib(budget)} MiB`));
          }
        },
      }),
    );
    return new Response(body, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  };
  // Extism's JS SDK wires http_status_code to the real status only when the guest imports
  // http_request first; in the other order the guest is bound to a stub answering 0. The
  // status is kept here, from the guarded fetch, and served whatever the order.
  let lastStatus = 0;
  const fetchFn = init.allowedHosts.length > 0
    ? withStatus(guardedFetch(init.allowedHosts), (status) => lastStatus = status, countBody)
    : null;
  // Vars outlive calls. Extism bounds their values (`maxVarBytes`) but not their names, which
  // it copies from any block: a guest setting empty vars under 4 MiB names grew the daemon
  // without end. Names are capped and counted here, against max_memory too; past it the guest is
  // stopped (Extism would store an error block per refusal, outside any count).
  let varNameBytes = 0;
  const varSet = (ctx: CallContext, keyAddr: bigint, valueAddr: bigint): void => {
    const read = ctx.read(keyAddr);
    if (read === null) throw new RangeError("var_set: no var name at that address");
    const key = read.bytes();
    if (key.byteLength > MAX_VAR_NAME) {
      throw new RangeError(`var_set: a var's name is at most ${MAX_VAR_NAME} bytes`);
    }
    const name = read.string();
    const known = ctx.getVariable(name) !== null;
    if (valueAddr === 0n) {
      if (known) varNameBytes -= key.byteLength + BLOCK_OVERHEAD;
      ctx.deleteVariable(name);
      return;
    }
    const value = ctx.read(valueAddr);
    if (value === null) throw new RangeError("var_set: no value at that address");
    if (!known) {
      if (varNameBytes + key.byteLength + BLOCK_OVERHEAD > budget) {
        throw new RangeError(
          `max_memory exceeded: the guest's vars take more than ${mib(budget)} MiB`,
        );
      }
      varNameBytes += key.byteLength + BLOCK_OVERHEAD;
    }
    // A copy: the block is the guest's to reuse, and is dropped when the call ends.
    ctx.setVariable(name, value.bytes().slice());
  };
  const functions: NonNullable<ExtismOptions["functions"]> = {
    [EXTISM_ENV]: {
      alloc,
      var_set: varSet,
      ...(fetchFn !== null ? { http_status_code: () => lastStatus } : {}),
    },
  };
  if (init.inputRead) functions[INPUT_READ.module] = { [INPUT_READ.name]: inputRead };
  const plugin: Plugin = await createPlugin(
    {
      wasm: [
        { module: init.guest, name: "guest" },
        { module: init.shim, name: "main" },
      ],
    },
    {
      useWasi: init.wasi,
      enableWasiOutput: false,
      allowedPaths: {},
      allowedHosts: hostNames(init.allowedHosts),
      ...(fetchFn !== null ? { fetch: fetchFn } : {}),
      config: { ...init.config },
      functions,
      // Extism's own bounds: one HTTP body, and the values of the vars a guest keeps (vars
      // outlive calls). What a call allocates, its HTTP bodies together and the vars' names
      // are counted above.
      memory: { maxHttpResponseBytes: budget, maxVarBytes: budget },
      logLevel: "info",
      logger: {
        trace: sink("trace"),
        debug: sink("debug"),
        info: sink("info"),
        warn: sink("warn"),
        error: sink("error"),
      } as unknown as ExtismLogger,
    },
  );
  const exports = init.inputRead || metered ? (await plugin.getInstance()).exports : {};
  if (init.inputRead) {
    const exported = exports[GUEST_MEMORY_EXPORT];
    if (!(exported instanceof WebAssembly.Memory)) throw new Error("the guest's memory is missing");
    guestMemory = exported;
  }
  const fuel = exports[FUEL_EXPORT];
  if (metered && !(fuel instanceof WebAssembly.Global)) {
    throw new Error("the guest's fuel is missing");
  }
  return {
    logs,
    fuel: fuel instanceof WebAssembly.Global ? fuel : null,
    async call(hook, bytes) {
      input = bytes;
      // Extism drops the last call's blocks as this one starts.
      allocated = 0;
      try {
        const out = await plugin.call(hook, bytes);
        // An HTTP answer cut at max_memory is not an error the guest sees: the call fails.
        if (allocated > budget) {
          throw new RangeError(`max_memory exceeded: HTTP answers past ${mib(budget)} MiB`);
        }
        return out?.bytes() ?? null;
      } catch (err) {
        throw inOurTerms(err, init.allowedHosts);
      } finally {
        input = new Uint8Array(0);
      }
    },
    close: () => plugin.close(),
  };
}

/**
 * Extism refuses an HTTP call to a host not in its `allowedHosts` itself, naming its own
 * option: the message names the config key instead (and says when the list is empty).
 */
function inOurTerms(err: unknown, allowed: readonly string[]): unknown {
  if (!(err instanceof Error) || !err.message.includes("no allowedHosts match")) return err;
  const message = err.message.replace(
    /\(no allowedHosts match "([^"]*)"\)/,
    (_, host: string) =>
      allowed.length === 0
        ? "(allowed_hosts is empty: this plugin may make no HTTP calls)"
        : `(allowed_hosts has no entry for "${host}")`,
  );
  return Object.assign(new Error(message, { cause: err }), { name: err.name });
}

/** Extism's host module, where `alloc`, `http_request` and `http_status_code` live. */
const EXTISM_ENV = "extism:host/env";

/** What a block costs beyond its bytes (its ArrayBuffer and Extism's record of it), about. */
const BLOCK_OVERHEAD = 128;

/** The longest var name a guest may set. */
const MAX_VAR_NAME = 1024;

const mib = (bytes: number) => Math.round(bytes / 1_048_576 * 10) / 10;

/**
 * `fetch` that tells `onStatus` each final answer's status (redirects followed), its body
 * passed through `body` (which counts it).
 */
function withStatus(
  base: typeof fetch,
  onStatus: (status: number) => void,
  body: (res: Response) => Response,
): typeof fetch {
  return async (input, init) => {
    const res = await base(input, init);
    onStatus(res.status);
    return body(res);
  };
}
