/**
 * Metering: a guest rewritten so that a runaway call stops itself. It gets a mutable global,
 * the fuel, set by the host before each call. Every function entry takes from it the number
 * of the function's instructions outside its loops; the frame then counts its loops'
 * iterations in a local of its own (each iteration costs the instructions of the loop's own
 * body). An `if` arm longer than `ARM_POINT` is charged on its own when it runs (on the local
 * inside a loop, checked at the loop's next head; on the global outside), not with the code
 * around it. When either goes below zero the guest writes it back and traps, and the host
 * finds the fuel spent. Wasmtime's fuel, done on the bytes because V8 offers none.
 *
 * A trap rather than a call to the host: a call inside a loop, even on a branch that is never
 * taken, makes V8 reload what the loop keeps in registers on every iteration (the injection
 * guard ran 40-60 % slower that way, 15-20 % with the trap).
 *
 * Loops count in a local that starts from the global at entry and is not written back, so
 * nested frames can together run more than the fuel (each frame's loops are bounded by it,
 * calls by the entry charges). Every non-terminating guest still stops; a guest that stops
 * on its own but needs far more than the fuel is stopped too, and runs elsewhere (`runner.ts`).
 *
 * The global is exported as `FUEL_EXPORT`. Function indices do not change (nothing is
 * imported), so the module's other sections are kept as they are. Anything this does not
 * understand (a GC, exception-handling or unknown instruction, a recursive type group) leaves
 * the module unmetered: `meter` returns null and the guest runs only in workers.
 * @module
 */

import { FUEL_EXPORT, sleb, uleb } from "./binary.ts";

class Unsupported extends Error {}

/** A cursor over a byte range with the LEB128 readers the binary format needs. */
class Reader {
  constructor(readonly bytes: Uint8Array, public at = 0) {}
  get done(): boolean {
    return this.at >= this.bytes.length;
  }
  byte(): number {
    if (this.at >= this.bytes.length) throw new Unsupported("truncated");
    return this.bytes[this.at++]!;
  }
  u32(): number {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte();
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
    throw new Unsupported("bad LEB128");
  }
  /** A signed LEB128 of any width, skipped (constants are copied, never interpreted). */
  skipLeb(): void {
    for (let i = 0; i < 10; i++) if ((this.byte() & 0x80) === 0) return;
    throw new Unsupported("bad LEB128");
  }
  skip(n: number): void {
    if (this.at + n > this.bytes.length) throw new Unsupported("truncated");
    this.at += n;
  }
}

/** Number and vector types and the two basic reference types: one byte each. */
const SIMPLE_VALTYPES = new Set([0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f]);

function valtype(r: Reader): void {
  if (!SIMPLE_VALTYPES.has(r.byte())) throw new Unsupported("reference types beyond funcref");
}

/** A block type: empty (0x40), one simple value type, or a type index (a signed LEB). */
function blocktype(r: Reader): void {
  const b = r.bytes[r.at];
  if (b === undefined) throw new Unsupported("truncated");
  if (b === 0x40 || SIMPLE_VALTYPES.has(b)) r.skip(1);
  else if ((b & 0x80) !== 0 || (b & 0x40) === 0) r.skipLeb(); // a type index (s33, >= 0)
  else throw new Unsupported("block type");
}

function memarg(r: Reader): void {
  const align = r.u32();
  if (align & 0x40) r.u32(); // multi-memory index
  r.u32();
}

/** What decoding one instruction tells the rewriter. */
const Op = {
  Plain: 0,
  Loop: 1,
  Block: 2,
  End: 3,
  If: 4,
  Else: 5,
  Call: 6,
  CallIndirect: 7,
  RefFunc: 8,
} as const;
/** The function a `call` (Op.Call) names: set by `instruction`, read right after. */
let callTarget = 0;
type Op = (typeof Op)[keyof typeof Op];

/** Decode the instruction at `r.at`, leaving `r.at` after it. */
function instruction(r: Reader): Op {
  const op = r.byte();
  switch (op) {
    case 0x02:
      blocktype(r);
      return Op.Block;
    case 0x03:
      blocktype(r);
      return Op.Loop;
    case 0x04:
      blocktype(r);
      return Op.If;
    case 0x05:
      return Op.Else;
    case 0x0b:
      return Op.End;
    case 0x0c:
    case 0x0d:
    case 0x20:
    case 0x21:
    case 0x22:
    case 0x23:
    case 0x24:
    case 0x25:
    case 0x26:
      r.u32();
      break;
    case 0x0e: {
      for (let n = r.u32(); n >= 0; n--) r.u32();
      break;
    }
    case 0x10: // call
    case 0x12: // return_call
      callTarget = r.u32();
      return Op.Call;
    case 0xd2: // ref.func: a function (an import, perhaps) made a value
      callTarget = r.u32();
      return Op.RefFunc;
    case 0x11: // call_indirect
    case 0x13: // return_call_indirect
      r.u32();
      r.u32();
      return Op.CallIndirect;
    case 0x1c: {
      for (let n = r.u32(); n > 0; n--) valtype(r);
      break;
    }
    case 0x3f:
    case 0x40:
      r.u32();
      break;
    case 0x41:
    case 0x42:
      r.skipLeb();
      break;
    case 0x43:
      r.skip(4);
      break;
    case 0x44:
      r.skip(8);
      break;
    case 0xd0: {
      const t = r.byte();
      if (t !== 0x70 && t !== 0x6f) throw new Unsupported("ref.null of a typed reference");
      break;
    }
    case 0xfc:
      prefixFC(r);
      break;
    case 0xfd:
      prefixFD(r);
      break;
    case 0xfe: {
      const sub = r.u32();
      if (sub === 0x03) r.skip(1);
      else if (sub <= 0x4e) memarg(r);
      else throw new Unsupported(`0xfe ${sub}`);
      break;
    }
    default:
      if (op >= 0x28 && op <= 0x3e) memarg(r); // loads and stores
      else if (
        !(op <= 0x01 || op === 0x05 || op === 0x0f || op === 0x1a || op === 0x1b ||
          (op >= 0x45 && op <= 0xc4) || op === 0xd1)
      ) {
        // Exception handling, typed function references, GC: not metered.
        throw new Unsupported(`opcode 0x${op.toString(16)}`);
      }
  }
  return Op.Plain;
}

function prefixFC(r: Reader): void {
  const sub = r.u32();
  if (sub <= 7) return; // saturating truncations
  if (sub === 8 || sub === 10 || sub === 12 || sub === 14) {
    r.u32();
    r.u32();
  } else if (sub === 9 || sub === 11 || sub === 13 || (sub >= 15 && sub <= 17)) r.u32();
  else throw new Unsupported(`0xfc ${sub}`);
}

function prefixFD(r: Reader): void {
  const sub = r.u32();
  if (sub <= 11 || sub === 92 || sub === 93) memarg(r);
  else if (sub === 12 || sub === 13) r.skip(16);
  else if (sub >= 21 && sub <= 34) r.skip(1);
  else if (sub >= 84 && sub <= 91) {
    memarg(r);
    r.skip(1);
  } else if (sub > 0x113) throw new Unsupported(`0xfd ${sub}`);
}

/** A growable byte buffer (modules can be megabytes: no spreading into arrays). */
class Out {
  private buf = new Uint8Array(1024);
  length = 0;
  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
  push(...xs: number[]): void {
    this.room(xs.length);
    for (const x of xs) this.buf[this.length++] = x;
  }
  append(bytes: Uint8Array): void {
    this.room(bytes.length);
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
  }
  bytes(): Uint8Array<ArrayBuffer> {
    return this.buf.slice(0, this.length);
  }
}

/*
 * The fuel is an i64: a worker gives a call fuel for its whole budget (seconds of work),
 * more than an i32 holds. Opcodes: 0x42 i64.const, 0x7d i64.sub, 0x53 i64.lt_s.
 */

/** At a function's entry, on the global: `local = fuel -= cost`, and trap below zero. */
function entryCharge(cost: number, local: number, global: number): number[] {
  const g = uleb(global), l = uleb(local);
  return [
    ...[0x23, ...g, 0x42, ...sleb(cost), 0x7d, 0x22, ...l, 0x24, ...g],
    ...[0x20, ...l, 0x42, 0x00, 0x53, 0x04, 0x40, 0x00, 0x0b], // if local < 0: unreachable
  ];
}

/** At a loop's head, on the frame's local: `local -= cost`; below zero, write it back, trap. */
function loopCharge(cost: number, local: number, global: number): number[] {
  const l = uleb(local);
  return [
    ...[0x20, ...l, 0x42, ...sleb(cost), 0x7d, 0x22, ...l],
    ...[0x42, 0x00, 0x53, 0x04, 0x40, 0x20, ...l, 0x24, ...uleb(global), 0x00, 0x0b],
  ];
}

/**
 * At the head of an `if` arm inside a loop, on the frame's local: `local -= cost`, no check.
 * The loop's head checks on its next turn (a turn cannot end without passing it or leaving
 * the loop), so a check here would only cost the common path a compare and a branch.
 */
function innerArmCharge(cost: number, local: number): number[] {
  const l = uleb(local);
  return [0x20, ...l, 0x42, ...sleb(cost), 0x7d, 0x21, ...l];
}

/** At the head of an `if` arm outside every loop, on the global: `fuel -= cost`, trap below 0. */
function armCharge(cost: number, global: number): number[] {
  const g = uleb(global);
  return [
    ...[0x23, ...g, 0x42, ...sleb(cost), 0x7d, 0x24, ...g],
    ...[0x23, ...g, 0x42, 0x00, 0x53, 0x04, 0x40, 0x00, 0x0b],
  ];
}

/**
 * An `if` arm with more instructions than this is charged where it starts, only when it runs;
 * smaller arms are charged with the code around them, taken or not (a charge costs about 8
 * instructions). Without this, a loop whose rare branches are long pays for them on every
 * iteration: the injection guard's word reader was charged 500 instructions per byte.
 */
const ARM_POINT = 32;

/** A metering point's stretch of code being counted: a function, a loop or an `if` arm. */
interface Region {
  /** Instructions of its own, outside nested points. */
  own: number;
  /** Where its charge goes: the instruction index it follows (-1: the function's entry). */
  readonly at: number;
  readonly loop: boolean;
  /** Inside a loop (its charges go on the frame's local, else on the global). */
  readonly inLoop: boolean;
}

/**
 * What a call to an imported (host) function costs, by function index: the guest's fuel
 * counts its own instructions, and a host call's work is the host's (`alloc` makes a buffer of
 * any size, `config_get` and the log calls copy, `http_request` fetches), done while the guest
 * spends almost no fuel: such calls are charged as the work they can do.
 */
export const HOST_CALL_COST = 20_000;
/** Host functions whose cost does not grow with what the guest did before: byte moves. */
const CHEAP_HOST_CALLS = new Set([
  "load_u8",
  "load_u64",
  "store_u8",
  "store_u64",
  "input_load_u8",
  "input_load_u64",
  "input_length",
  "input_offset",
  "length",
  "length_unsafe",
]);
const CHEAP_HOST_CALL_COST = 10;

/**
 * Every function index an element section puts in a table (as indices or `ref.func`
 * expressions). An expression this does not know leaves the module unmetered.
 */
function elementFuncs(body: Uint8Array): number[] {
  const r = new Reader(body);
  const out: number[] = [];
  const expr = () => {
    for (let op = r.byte(); op !== 0x0b; op = r.byte()) {
      if (op === 0x41 || op === 0x42) r.skipLeb();
      else if (op === 0x23) r.u32();
      else if (op === 0xd2) out.push(r.u32());
      else if (op === 0xd0) r.byte();
      else throw new Unsupported("an element expression");
    }
  };
  for (let n = r.u32(); n > 0; n--) {
    const flags = r.u32();
    if (flags > 7) throw new Unsupported("element flags");
    if (flags === 2 || flags === 6) r.u32(); // table index
    if ((flags & 1) === 0) expr(); // active: its offset
    if (flags & 4) {
      if (flags !== 4) r.byte(); // reftype
      for (let k = r.u32(); k > 0; k--) expr();
    } else {
      if (flags !== 0) r.byte(); // elemkind
      for (let k = r.u32(); k > 0; k--) out.push(r.u32());
    }
  }
  return out;
}

/** A function body (of a function with `params` parameters), metered. */
function meterBody(
  out: Out,
  body: Uint8Array,
  params: number,
  global: number,
  hostCost: readonly number[],
  hostInTable: boolean,
): void {
  const r = new Reader(body);
  const groups = r.u32();
  const groupsEnd = r.at;
  let local = params; // the index of the local we add: after every other
  for (let n = groups; n > 0; n--) {
    local += r.u32();
    valtype(r);
  }
  const localsEnd = r.at;
  // Pass 1: the cost of each metering point. Loops are points; an `if` arm is one when it is
  // longer than ARM_POINT, else its instructions count to the point around it.
  const charges = new Map<number, { cost: number; onLocal: boolean; loop: boolean }>();
  const root: Region = { own: 0, at: -1, loop: false, inLoop: false };
  const regions: Region[] = [root];
  // Open structures: a loop or arm (its region) or a plain block (null).
  const open: (Region | null)[] = [];
  const current = () => regions[regions.length - 1]!;
  const close = (region: Region): void => {
    regions.pop();
    if (region.loop || region.own > ARM_POINT) {
      charges.set(region.at, { cost: region.own, onLocal: region.inLoop, loop: region.loop });
    } else current().own += region.own;
  };
  for (let i = 0; !r.done; i++) {
    const op = instruction(r);
    if (op === Op.End) {
      current().own++;
      const closing = open.pop();
      if (closing) close(closing);
      continue;
    }
    if (op === Op.Else) {
      const arm = open.pop();
      if (arm) close(arm);
      current().own++;
      const next: Region = { own: 0, at: i, loop: false, inLoop: current().inLoop };
      regions.push(next);
      open.push(next);
      continue;
    }
    current().own++;
    if (op === Op.Call && callTarget < hostCost.length) current().own += hostCost[callTarget]!;
    // A table may hold a host function: then any indirect call may be one.
    else if (op === Op.CallIndirect && hostInTable) current().own += HOST_CALL_COST;
    else if (op === Op.RefFunc && callTarget < hostCost.length) {
      throw new Unsupported("a host function made a value");
    }
    if (op === Op.Loop || op === Op.If) {
      const loop = op === Op.Loop;
      const region: Region = { own: 0, at: i, loop, inLoop: loop || current().inLoop };
      regions.push(region);
      open.push(region);
    } else if (op === Op.Block) open.push(null);
  }
  // Pass 2: copy, our local declared last, the entry's charge after the locals and each
  // point's after the instruction that opens it.
  out.push(...uleb(groups + 1));
  out.append(body.subarray(groupsEnd, localsEnd));
  out.push(1, 0x7e); // i64
  out.push(...entryCharge(root.own, local, global));
  r.at = localsEnd;
  let copied = localsEnd;
  for (let i = 0; !r.done; i++) {
    instruction(r);
    const charge = charges.get(i);
    if (charge === undefined) continue;
    out.append(body.subarray(copied, r.at));
    out.push(
      ...(!charge.onLocal
        ? armCharge(charge.cost, global)
        : charge.loop
        ? loopCharge(charge.cost, local, global)
        : innerArmCharge(charge.cost, local)),
    );
    copied = r.at;
  }
  out.append(body.subarray(copied));
}

interface Section {
  readonly id: number;
  body: Uint8Array;
}

/** Canonical section order (custom sections, id 0, may sit anywhere). */
const ORDER = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];

/**
 * `bytes` (a module the host has already checked) metered, or null when it cannot be. The
 * fuel starts at `initialFuel`, for the guest's start function at instantiation.
 */
export function meter(bytes: Uint8Array, initialFuel: number): Uint8Array<ArrayBuffer> | null {
  try {
    return meterModule(bytes, initialFuel);
  } catch (err) {
    if (err instanceof Unsupported) return null;
    throw err;
  }
}

function meterModule(bytes: Uint8Array, initialFuel: number): Uint8Array<ArrayBuffer> {
  const r = new Reader(bytes, 8);
  const sections: Section[] = [];
  while (!r.done) {
    const id = r.byte();
    const size = r.u32();
    const start = r.at;
    r.skip(size);
    sections.push({ id, body: bytes.subarray(start, start + size) });
  }
  /** The section `id`, created empty (a zero count) in canonical order if absent. */
  const section = (id: number): Section => {
    const found = sections.find((s) => s.id === id);
    if (found) return found;
    const rank = ORDER.indexOf(id);
    const at = sections.findIndex((s) => s.id !== 0 && ORDER.indexOf(s.id) > rank);
    const created = { id, body: new Uint8Array([0]) };
    sections.splice(at < 0 ? sections.length : at, 0, created);
    return created;
  };
  /** A vector section's body with its count raised by one and `item` appended. */
  const appendItem = (s: Section, item: number[]): number => {
    const vr = new Reader(s.body);
    const count = vr.u32();
    const out = new Out();
    out.push(...uleb(count + 1));
    out.append(s.body.subarray(vr.at));
    out.push(...item);
    s.body = out.bytes();
    return count;
  };

  // Parameters of every type, then of every defined function (its locals come after them).
  const paramCounts: number[] = [];
  const types = sections.find((s) => s.id === 1);
  if (types) {
    const tr = new Reader(types.body);
    for (let n = tr.u32(); n > 0; n--) {
      if (tr.byte() !== 0x60) throw new Unsupported("recursive or sub types");
      const params = tr.u32();
      paramCounts.push(params);
      for (let k = 0; k < params; k++) valtype(tr);
      for (let k = tr.u32(); k > 0; k--) valtype(tr);
    }
  }
  const params: number[] = [];
  const funcs = sections.find((s) => s.id === 3);
  if (funcs) {
    const fr = new Reader(funcs.body);
    for (let n = fr.u32(); n > 0; n--) {
      const count = paramCounts[fr.u32()];
      if (count === undefined) throw new Unsupported("a function of an unknown type");
      params.push(count);
    }
  }

  // Imported globals come first in the index space; ours goes after every defined one.
  let globalImports = 0;
  /** What a call to each imported function costs, by its index (imports come first). */
  const hostCost: number[] = [];
  const imports = sections.find((s) => s.id === 2);
  if (imports) {
    const ir = new Reader(imports.body);
    const text = new TextDecoder();
    for (let n = ir.u32(); n > 0; n--) {
      ir.skip(ir.u32()); // module
      const nameLength = ir.u32();
      const field = text.decode(ir.bytes.subarray(ir.at, ir.at + nameLength));
      ir.skip(nameLength);
      const kind = ir.byte();
      if (kind === 0) {
        ir.u32();
        hostCost.push(CHEAP_HOST_CALLS.has(field) ? CHEAP_HOST_CALL_COST : HOST_CALL_COST);
      } else if (kind === 1 || kind === 2) {
        if (kind === 1) ir.byte(); // reference type
        const flags = ir.byte();
        ir.u32();
        if (flags & 1) ir.u32();
      } else if (kind === 3) {
        valtype(ir);
        ir.byte();
        globalImports++;
      } else throw new Unsupported("import kind");
    }
  }
  const global = globalImports +
    appendItem(section(6), [0x7e, 0x01, 0x42, ...sleb(initialFuel), 0x0b]); // mutable i64
  const name = new TextEncoder().encode(FUEL_EXPORT);
  appendItem(section(7), [...uleb(name.length), ...name, 0x03, ...uleb(global)]);

  const elements = sections.find((s) => s.id === 9);
  const hostInTable = elements !== undefined &&
    elementFuncs(elements.body).some((f) => f < hostCost.length);
  const code = sections.find((s) => s.id === 10);
  if (code) {
    const cr = new Reader(code.body);
    const out = new Out();
    const count = cr.u32();
    if (count !== params.length) throw new Unsupported("bodies and functions differ in number");
    out.push(...uleb(count));
    for (let i = 0; i < count; i++) {
      const size = cr.u32();
      const fn = new Out();
      meterBody(
        fn,
        code.body.subarray(cr.at, cr.at + size),
        params[i]!,
        global,
        hostCost,
        hostInTable,
      );
      cr.skip(size);
      out.push(...uleb(fn.length));
      out.append(fn.bytes());
    }
    code.body = out.bytes();
  }
  const out = new Out();
  out.append(bytes.subarray(0, 8));
  for (const s of sections) {
    out.push(s.id, ...uleb(s.body.length));
    out.append(s.body);
  }
  return out.bytes();
}
