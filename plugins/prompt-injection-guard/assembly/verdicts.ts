// Text parts already scanned and found clean, kept to skip scanning them again. A chat client
// sends the whole conversation with every turn, so from the second turn on most of a request's
// text is history this instance has read before; only the new parts are scanned.
//
// Exact, not probabilistic: a part is taken as known only when its bytes equal the stored
// ones, and only a part that contributes nothing to any verdict is stored (index.ts: no
// finding, no quoted phrase, no classifier window over the quoted bar). What a part adds
// across parts is its `long` flag (too long for the classifier), kept beside it. Parts never
// combine otherwise: phrases, quotes, delimiters, blobs and classifier windows all end at a
// part's end (scan.ts, model.ts).
//
// Memory is fixed at start (the stub runtime never frees): a ring of stored bytes and a
// direct-mapped table over it; a newer part overwrites the oldest bytes and whatever slot it
// lands in.

/** Bytes of stored parts. */
const ARENA: i32 = 512 * 1024;
/** Table entries, a power of two. */
const SLOTS: i32 = 256;
/** Parts shorter than this are scanned every time: comparing costs about what scanning does. */
export const CACHE_MIN: i32 = 128;
/** Parts longer than this are not stored: one would push out too many others. */
export const CACHE_MAX: i32 = ARENA / 4;

const arena = new Uint8Array(ARENA);
const slotKey = new Uint64Array(SLOTS);
/** Where the part starts in the ring's running count of bytes written (`written`). */
const slotAt = new Uint64Array(SLOTS);
/** 0: an empty slot (no stored part is shorter than CACHE_MIN). */
const slotLen = new Int32Array(SLOTS);
const slotLong = new Uint8Array(SLOTS);
/** Bytes written to the ring so far, counting the tail skipped when a part does not fit. */
let written: u64 = 0;

/** The part's length and eight words spread over it, mixed: which slot it may be in. */
function key(src: usize, len: i32): u64 {
  let h: u64 = <u64>len * 0x9e3779b97f4a7c15;
  const step = (len - 8) / 7;
  for (let k = 0; k < 8; k++) {
    h = (h ^ load<u64>(src + <usize>(k * step))) * 0xff51afd7ed558ccd;
    h ^= h >> 32;
  }
  return h;
}

function same(a: usize, b: usize, len: i32): bool {
  let i = 0;
  for (; i + 16 <= len; i += 16) {
    if (!i8x16.all_true(i8x16.eq(v128.load(a + <usize>i), v128.load(b + <usize>i)))) {
      return false;
    }
  }
  for (; i < len; i++) if (load<u8>(a + <usize>i) != load<u8>(b + <usize>i)) return false;
  return true;
}

/** Found: the part at `src` was stored. */
export const KNOWN: i32 = 1;
/** With KNOWN: it is too long for the classifier (model.ts `skippedLong`). */
export const KNOWN_LONG: i32 = 2;

/** Whether `len` bytes at `src` (CACHE_MIN..CACHE_MAX of them) are a stored clean part. */
export function lookup(src: usize, len: i32): i32 {
  const h = key(src, len);
  const s = <i32>(h & <u64>(SLOTS - 1));
  if (unchecked(slotLen[s]) != len || unchecked(slotKey[s]) != h) return 0;
  const at = unchecked(slotAt[s]);
  // Overwritten since: a later part reached its bytes going round the ring.
  if (written - at > <u64>ARENA) return 0;
  if (!same(arena.dataStart + <usize>(at % <u64>ARENA), src, len)) return 0;
  return KNOWN | (unchecked(slotLong[s]) != 0 ? KNOWN_LONG : 0);
}

/** Store `len` bytes at `src` (CACHE_MIN..CACHE_MAX of them) as a clean part. */
export function store(src: usize, len: i32, long: bool): void {
  const h = key(src, len);
  const s = <i32>(h & <u64>(SLOTS - 1));
  let pos = <i32>(written % <u64>ARENA);
  if (pos + len > ARENA) {
    written += <u64>(ARENA - pos);
    pos = 0;
  }
  memory.copy(arena.dataStart + <usize>pos, src, <usize>len);
  unchecked((slotKey[s] = h));
  unchecked((slotAt[s] = written));
  unchecked((slotLen[s] = len));
  unchecked((slotLong[s] = long ? 1 : 0));
  written += <u64>len;
}
