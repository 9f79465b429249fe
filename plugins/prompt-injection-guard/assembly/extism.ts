// Butter's Extism ABI from the guest side: the host functions this plugin imports and the
// few helpers over them (read the input, read a config value, set the output, log).
@external("extism:host/env", "input_length")
declare function input_length(): u64;
// Pilotfish's extension (plugins/README.md): the whole input copied into our memory at once.
@external("extism:host/user", "pilotfish_input_read")
declare function input_read(dst: usize, len: i32): i32;
@external("extism:host/env", "alloc")
declare function extism_alloc(n: u64): u64;
@external("extism:host/env", "free")
declare function extism_free(offs: u64): void;
@external("extism:host/env", "length")
declare function extism_length(offs: u64): u64;
@external("extism:host/env", "load_u8")
declare function load_u8(offs: u64): u8;
@external("extism:host/env", "store_u8")
declare function store_u8(offs: u64, v: u8): void;
@external("extism:host/env", "store_u64")
declare function store_u64(offs: u64, v: u64): void;
@external("extism:host/env", "output_set")
declare function output_set(offs: u64, n: u64): void;
@external("extism:host/env", "config_get")
declare function config_get(offs: u64): u64;
@external("extism:host/env", "log_warn")
declare function log_warn(offs: u64): void;
@external("extism:host/env", "error_set")
declare function error_set(offs: u64): void;

let inputBuf = new Uint8Array(65536);

/**
 * The call's input, in one host call (Extism's own ABI reads it 8 bytes per call), into a
 * buffer kept across calls: `[0, length)` is valid.
 */
export function readInput(): Uint8Array {
  const n = <i32>input_length();
  if (n > inputBuf.length) inputBuf = new Uint8Array(n + (n >> 1));
  inputLength = input_read(inputBuf.dataStart, n);
  return inputBuf;
}

export let inputLength: i32 = 0;

function toHost(s: string): u64 {
  return bytesToHost(Uint8Array.wrap(String.UTF8.encode(s)));
}

function bytesToHost(bytes: Uint8Array): u64 {
  const n = bytes.length;
  const offs = extism_alloc(<u64>n);
  let i = 0;
  for (; i + 8 <= n; i += 8) store_u64(offs + <u64>i, load<u64>(bytes.dataStart + <usize>i));
  for (; i < n; i++) store_u8(offs + <u64>i, bytes[i]);
  return offs;
}

/** A plugin config value (`wasm_plugins[].config`), or null when unset. */
export function configGet(key: string): string | null {
  const k = toHost(key);
  const v = config_get(k);
  extism_free(k);
  if (v == 0) return null;
  const n = <i32>extism_length(v);
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = load_u8(v + <u64>i);
  extism_free(v);
  return String.UTF8.decodeUnsafe(bytes.dataStart, <usize>n);
}

/** Set the output from bytes prepared in advance (a call allocates nothing in the guest). */
export function setOutput(bytes: Uint8Array): void {
  const offs = bytesToHost(bytes);
  output_set(offs, <u64>bytes.length);
}

export function warn(bytes: Uint8Array): void {
  const offs = bytesToHost(bytes);
  log_warn(offs);
  extism_free(offs);
}

/** The call's error message (the host reports it; the hook then returns non-zero). */
export function setError(message: string): void {
  error_set(toHost(message));
}
