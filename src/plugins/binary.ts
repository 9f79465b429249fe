/**
 * The two pieces of WebAssembly binary work the host does itself, both on a module's raw
 * bytes before it is compiled: capping its linear memory (`max_memory`), and generating the
 * small "status shim" that makes a hook's non-zero return an Extism error.
 *
 * Why the shim: Extism's JS SDK calls an export and ignores what it returns (only
 * `error_set` counts), while Butter's ABI says a hook's non-zero `i32` is an error. The shim
 * is the manifest's main module: it imports each hook from the guest, calls it, and when the
 * status is non-zero and the guest set no error itself, sets one. The guest runs unchanged.
 * @module
 */

/** Hooks a guest may export, in Butter's ABI (`() -> i32`). */
export const HOOKS = ["pre_http", "pre_llm", "post_llm", "post_http", "stream_chunk"] as const;
export type HookName = (typeof HOOKS)[number];

/**
 * Pilotfish's optional export beyond the hooks, `() -> i32`: called once when a config
 * generation loads, with the plugin's `config`; a non-zero return (its `error_set` message)
 * refuses that config, at start, on reload and with `--check`, as a config problem.
 */
export const CONFIG_CHECK = "pilotfish_config_check";

/**
 * Pilotfish's optional export naming the input fields a guest reads, `() -> i32`: called once
 * when a config generation loads; its output is a JSON list of `body`, `headers` and
 * `metadata` (`abi.ts`: `decodeInputFields`). A field it does not list is left out of every
 * hook's input: a guest that reads only the body is not given the request's headers, whose
 * redacted map costs the daemon more than a small guest's own run.
 */
export const INPUT_FIELDS = "pilotfish_input_fields";

/** What the host calls on a guest (by its index here, between threads). */
export const GUEST_CALLS = [...HOOKS, CONFIG_CHECK, INPUT_FIELDS] as const;
export type GuestCall = (typeof GUEST_CALLS)[number];

export const PAGE_BYTES = 65_536;

/** The module name the shim imports the guest's hooks from (a manifest entry name). */
export const GUEST_MODULE = "guest";

/**
 * Pilotfish's one import beyond Extism's: `extism:host/user` `pilotfish_input_read(dst: i32,
 * len: i32) -> i32` copies the call's input into the guest's own memory in one go (Extism's ABI
 * reads it 8 bytes per host call). Optional; a guest that imports it must export `memory`.
 */
export const INPUT_READ = { module: "extism:host/user", name: "pilotfish_input_read" } as const;

/** The name the shim re-exports the guest's memory under (for `INPUT_READ`). */
export const GUEST_MEMORY_EXPORT = "pilotfish_guest_memory";

export class ModuleError extends Error {
  override readonly name = "ModuleError";
}

function readLeb(bytes: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (let i = at; i < bytes.length; i++) {
    const b = bytes[i]!;
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return [value, i + 1];
    if (shift > 35) break;
  }
  throw new ModuleError("Malformed module: bad LEB128 number");
}

/** The name a metered guest (`meter.ts`) exports its fuel global under. */
export const FUEL_EXPORT = "pilotfish_fuel";

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const MAGIC = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/**
 * The module with every memory it defines capped at `maxPages` (its declared maximum
 * lowered, or one added), so `memory.grow` past the cap fails inside the guest. Refused: a
 * memory whose minimum is already above the cap, an imported memory, shared or 64-bit
 * memories (none of which an Extism guest needs).
 */
export function capMemory(bytes: Uint8Array, maxPages: number): Uint8Array<ArrayBuffer> {
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new ModuleError("Not a WebAssembly module (bad magic number or version)");
  }
  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  for (const { id, at, start, end } of sections(bytes)) {
    if (id === 2) checkImports(bytes.subarray(start, end));
    if (id === 5) {
      const body = cappedMemorySection(bytes.subarray(start, end), maxPages);
      parts.push(new Uint8Array([5, ...uleb(body.length)]), body);
    } else {
      parts.push(bytes.subarray(at, end));
    }
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A module's sections after its header: id, where the section starts, and its body. */
function* sections(
  bytes: Uint8Array,
): Generator<{ id: number; at: number; start: number; end: number }> {
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at]!;
    const [size, start] = readLeb(bytes, at + 1);
    const end = start + size;
    if (end > bytes.length) throw new ModuleError("Malformed module: a section runs past the end");
    yield { id, at, start, end };
    at = end;
  }
}

function cappedMemorySection(section: Uint8Array, maxPages: number): Uint8Array {
  let [count, at] = readLeb(section, 0);
  const out: number[] = [...uleb(count)];
  while (count-- > 0) {
    const flags = section[at++];
    if (flags !== 0 && flags !== 1) {
      throw new ModuleError("Shared or 64-bit memories are not supported");
    }
    let min: number;
    [min, at] = readLeb(section, at);
    let max = Infinity;
    if (flags === 1) [max, at] = readLeb(section, at);
    if (min > maxPages) {
      throw new ModuleError(
        `The module needs ${min} memory pages at start, more than max_memory allows (${maxPages})`,
      );
    }
    out.push(1, ...uleb(min), ...uleb(Math.min(max, maxPages)));
  }
  return new Uint8Array(out);
}

/** Walk the import section only to refuse imported memories (the cap could not hold). */
function checkImports(section: Uint8Array): void {
  const dec = new TextDecoder();
  let [count, at] = readLeb(section, 0);
  while (count-- > 0) {
    for (let k = 0; k < 2; k++) {
      const [len, next] = readLeb(section, at);
      dec.decode(section.subarray(next, next + len));
      at = next + len;
    }
    const kind = section[at++];
    if (kind === 0) [, at] = readLeb(section, at);
    else if (kind === 1) {
      at++; // element type
      const flags = section[at++]!;
      [, at] = readLeb(section, at);
      if (flags & 1) [, at] = readLeb(section, at);
    } else if (kind === 2) throw new ModuleError("Imported memories are not supported");
    else if (kind === 3) at += 2;
    else if (kind === 4) [, at] = readLeb(section, at + 1);
    else throw new ModuleError("Malformed module: unknown import kind");
  }
}

const NONZERO_MESSAGE = new TextEncoder().encode("hook returned a non-zero status");

/**
 * The shim's bytes for `hooks`: imports each from `guest`, exports a wrapper of the same
 * name that returns the guest's status and, when it is non-zero and no error is set yet,
 * sets one (`error_set`), which Extism reports as a failed call. With `memory`, it also
 * imports the guest's `memory` and re-exports it as `GUEST_MEMORY_EXPORT` (the only way the
 * host reaches a linked module's memory through Extism); with `fuel`, a metered guest's fuel
 * global (`meter.ts`) the same way.
 */
export function statusShim(
  hooks: readonly GuestCall[],
  memory = false,
  fuel = false,
): Uint8Array<ArrayBuffer> {
  const enc = new TextEncoder();
  const name = (s: string) => {
    const b = enc.encode(s);
    return [...uleb(b.length), ...b];
  };
  const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
  const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
  const I32 = 0x7f, I64 = 0x7e;
  // Types: 0 () -> i32 ; 1 (i64) -> i64 ; 2 (i64, i32) -> () ; 3 (i64) -> () ; 4 () -> i64
  const types = vec([
    [0x60, 0, 1, I32],
    [0x60, 1, I64, 1, I64],
    [0x60, 2, I64, I32, 0],
    [0x60, 1, I64, 0],
    [0x60, 0, 1, I64],
  ]);
  const env = "extism:host/env";
  const imports = vec([
    ...hooks.map((h) => [...name(GUEST_MODULE), ...name(h), 0x00, 0]),
    [...name(env), ...name("alloc"), 0x00, 1],
    [...name(env), ...name("store_u8"), 0x00, 2],
    [...name(env), ...name("error_set"), 0x00, 3],
    [...name(env), ...name("error_get"), 0x00, 4],
    // memory, limits flag 0 and minimum 0: matches any unshared 32-bit memory.
    ...(memory ? [[...name(GUEST_MODULE), ...name("memory"), 0x02, 0x00, 0]] : []),
    // A metered guest's fuel (meter.ts), a mutable i64.
    ...(fuel ? [[...name(GUEST_MODULE), ...name(FUEL_EXPORT), 0x03, I64, 0x01]] : []),
  ]);
  const n = hooks.length;
  const [ALLOC, STORE_U8, ERROR_SET, ERROR_GET] = [n, n + 1, n + 2, n + 3];
  const funcs = vec(hooks.map(() => [0]));
  const exports = vec([
    ...hooks.map((h, i) => [...name(h), 0x00, ...uleb(n + 4 + i)]),
    ...(memory ? [[...name(GUEST_MEMORY_EXPORT), 0x02, 0]] : []),
    ...(fuel ? [[...name(FUEL_EXPORT), 0x03, 0]] : []),
  ]);
  const bodies = hooks.map((_, i) => {
    const store: number[] = [];
    NONZERO_MESSAGE.forEach((b, k) =>
      store.push(0x20, 1, 0x42, ...sleb(k), 0x7c, 0x41, ...sleb(b), 0x10, ...uleb(STORE_U8))
    );
    const code = [
      ...[2, 1, I32, 1, I64], // locals: status i32, message address i64
      ...[0x10, ...uleb(i), 0x22, 0], // call guest hook; local.tee status
      ...[0x04, 0x40], // if status != 0
      ...[0x10, ...uleb(ERROR_GET), 0x50, 0x04, 0x40], // if no error set yet
      ...[0x42, ...sleb(NONZERO_MESSAGE.length), 0x10, ...uleb(ALLOC), 0x21, 1],
      ...store,
      ...[0x20, 1, 0x10, ...uleb(ERROR_SET)],
      ...[0x0b, 0x0b], // end, end
      ...[0x20, 0, 0x0b], // status; end of body
    ];
    return [...uleb(code.length), ...code];
  });
  return new Uint8Array([
    ...MAGIC,
    ...section(1, types),
    ...section(2, imports),
    ...section(3, funcs),
    ...section(7, exports),
    ...section(10, vec(bodies)),
  ]);
}

/** A function type as the binary format writes it: its parameter and result value types. */
export interface FuncType {
  readonly params: readonly number[];
  readonly results: readonly number[];
}

const VALTYPE_NAMES: Record<number, string> = {
  0x7f: "i32",
  0x7e: "i64",
  0x7d: "f32",
  0x7c: "f64",
  0x7b: "v128",
  0x70: "funcref",
  0x6f: "externref",
};

/** `(i32, i64) -> i32`, as a config error shows a type. */
export function showFuncType(t: FuncType): string {
  const list = (xs: readonly number[]) => xs.map((x) => VALTYPE_NAMES[x] ?? "?").join(", ");
  return `(${list(t.params)}) -> ${
    t.results.length === 1 ? list(t.results) : `(${list(t.results)})`
  }`;
}

/**
 * The types of the functions a module exports, by export name; null when the module uses a
 * type this does not read (a GC or typed-reference type): V8 then checks when it links.
 * Read so that a hook of the wrong type is a config error (`--check` too), not a link
 * failure when the daemon starts.
 */
export function exportedFuncTypes(bytes: Uint8Array): Map<string, FuncType> | null {
  const types: FuncType[] = [];
  const funcs: number[] = []; // type index of every function: imported ones first
  const out = new Map<string, FuncType>();
  const exported: [string, number][] = [];
  const text = new TextDecoder();
  for (const { id, start } of sections(bytes)) {
    let p = start;
    const u32 = () => {
      const [v, next] = readLeb(bytes, p);
      p = next;
      return v;
    };
    const name = () => {
      const n = u32();
      const s = text.decode(bytes.subarray(p, p + n));
      p += n;
      return s;
    };
    const vals = (): number[] | null => {
      const xs: number[] = [];
      for (let n = u32(); n > 0; n--) {
        const v = bytes[p++]!;
        if (!(v in VALTYPE_NAMES)) return null;
        xs.push(v);
      }
      return xs;
    };
    if (id === 1) {
      for (let n = u32(); n > 0; n--) {
        if (bytes[p++] !== 0x60) return null;
        const params = vals();
        const results = params === null ? null : vals();
        if (params === null || results === null) return null;
        types.push({ params, results });
      }
    } else if (id === 2) {
      for (let n = u32(); n > 0; n--) {
        name();
        name();
        const kind = bytes[p++]!;
        if (kind === 0) funcs.push(u32());
        else if (kind === 1 || kind === 2) {
          if (kind === 1) p++; // reference type
          const flags = bytes[p++]!;
          u32();
          if (flags & 1) u32();
        } else if (kind === 3) p += 2; // value type, mutability
        else return null;
      }
    } else if (id === 3) {
      for (let n = u32(); n > 0; n--) funcs.push(u32());
    } else if (id === 7) {
      for (let n = u32(); n > 0; n--) {
        const field = name();
        const kind = bytes[p++]!;
        const index = u32();
        if (kind === 0) exported.push([field, index]);
      }
    }
  }
  for (const [field, index] of exported) {
    const t = types[funcs[index] ?? -1];
    if (t !== undefined) out.set(field, t);
  }
  return out;
}
