// The guard's classifier: a linear model over hashed words and word pairs, scored on every
// window of `WINDOW` words of a text part, for the phrasings no pattern spells out. The
// patterns catch what they name exactly; this catches paraphrases ("set aside what you were
// told earlier"), at a threshold chosen by cross-validation. Weights are made by
// scripts/train_guard.ts from tests/fixtures/injection/ and written to weights.ts.
//
// Words: maximal runs of letters and digits after `fold` (case, accents, look-alikes,
// fullwidth and invisible characters read as the ASCII they show), apostrophes joined, digits
// in a word with letters read as leetspeak.
// Features: each word, and each pair of neighbouring words, hashed into `1 << DETECT_BITS`
// buckets; a window's features count once. Score: bias + scale × Σ weight. A window scoring
// above the threshold is an injection; its category is the category model's best class.
import { fold, LEET } from "./scan";
import {
  CATEGORY_BITS,
  CATEGORY_WEIGHTS,
  DETECT_BIAS,
  DETECT_BITS,
  DETECT_SCALE,
  DETECT_THRESHOLD,
  DETECT_WEIGHTS,
  MAX_PART_WORDS,
  MODEL_CATEGORIES,
  WINDOW,
} from "./weights";

const CATS: i32 = MODEL_CATEGORIES.length;

/** The threshold in quantised units: bias + scale × q > threshold ⇔ q > LIMIT. */
const LIMIT: f64 = (DETECT_THRESHOLD - DETECT_BIAS) / DETECT_SCALE;
/**
 * The bar for confirming a pattern matched inside quotes: a score above 0, the model's own
 * "more likely an attack than not" (before the threshold's margin for false positives).
 */
export const QUOTED_LIMIT: f64 = -DETECT_BIAS / DETECT_SCALE;

/**
 * By bucket: its weight in the high byte and how many of the window's features fall in it in
 * the low one, so adding a feature touches one entry (the weights alone and a count array
 * beside them cost two cache misses a feature). Built from `DETECT_WEIGHTS` at start.
 */
const BUCKETS: i32 = 1 << DETECT_BITS;
const table = new Int16Array(BUCKETS);
for (let b = 0; b < BUCKETS; b++) table[b] = <i16>(<i32>DETECT_WEIGHTS[b] << 8);
/** The window's features: two per word (the word, the pair it ends), as a ring. */
const RING: i32 = WINDOW * 2;
const ring = new Int32Array(RING);
let ringLen: i32 = 0;
let ringAt: i32 = 0;
/** Σ quantised weight over the window's distinct buckets. */
let score: i32 = 0;
const catScore = new Int32Array(CATS);

// @ts-ignore: decorator
@inline
function mix(h: u32): u32 {
  // murmur3's finaliser: neighbouring hashes spread over the buckets.
  h ^= h >> 16;
  h *= 0x85ebca6b;
  h ^= h >> 13;
  h *= 0xc2b2ae35;
  h ^= h >> 16;
  return h;
}

// @ts-ignore: decorator
@inline
function wordBucket(h: u32): i32 {
  return <i32>(mix(h) >>> (32 - DETECT_BITS));
}

// @ts-ignore: decorator
@inline
function pairBucket(prev: u32, h: u32): i32 {
  return <i32>(mix((prev * 0x9e3779b1) ^ rotl<u32>(h, 15) ^ 0x5bd1e995) >>> (32 - DETECT_BITS));
}

/** Training (`features`): every bucket read goes to `collected`, in order; nothing is scored. */
let training = false;
let collected = new Int32Array(0);
let collectedN: i32 = 0;

// @ts-ignore: decorator
@inline
function add(bucket: i32): void {
  const v = <i32>unchecked(table[bucket]);
  unchecked((table[bucket] = <i16>(v + 1)));
  if ((v & 0xff) == 0) score += v >> 8;
}

// @ts-ignore: decorator
@inline
function push(bucket: i32): void {
  if (training) {
    if (collectedN < collected.length) unchecked((collected[collectedN++] = bucket));
    return;
  }
  if (ringLen == RING) {
    const out = unchecked(ring[ringAt]);
    const v = <i32>unchecked(table[out]) - 1;
    unchecked((table[out] = <i16>v));
    if ((v & 0xff) == 0) score -= v >> 8;
    unchecked((ring[ringAt] = bucket));
    ringAt = ringAt + 1 == RING ? 0 : ringAt + 1;
  } else unchecked((ring[ringLen++] = bucket));
  add(bucket);
}

/** Every bucket in `list[0, n)` back to no count. */
function uncount(list: Int32Array, n: i32): void {
  for (let k = 0; k < n; k++) {
    const b = unchecked(list[k]);
    unchecked((table[b] = <i16>(<i32>unchecked(table[b]) & ~0xff)));
  }
}

/**
 * The best category of the window in the ring among `enabled` (all when empty), or -1:
 * summed only here, for a window over the bar, each distinct bucket once (marked by bit 7 of
 * its count while summed; a window holds at most 48 features).
 */
function bestCategory(enabled: string[]): i32 {
  for (let k = 0; k < CATS; k++) unchecked((catScore[k] = 0));
  const shift = DETECT_BITS - CATEGORY_BITS;
  for (let j = 0; j < ringLen; j++) {
    const b = unchecked(ring[j]);
    const v = <i32>unchecked(table[b]);
    if (v & 0x80) continue;
    unchecked((table[b] = <i16>(v | 0x80)));
    const row = b >> shift;
    for (let k = 0; k < CATS; k++) {
      unchecked((catScore[k] += <i32>unchecked(CATEGORY_WEIGHTS[(k << CATEGORY_BITS) | row])));
    }
  }
  for (let j = 0; j < ringLen; j++) {
    const b = unchecked(ring[j]);
    unchecked((table[b] = <i16>(<i32>unchecked(table[b]) & ~0x80)));
  }
  let best = 0;
  for (let k = 1; k < CATS; k++) if (unchecked(catScore[k]) > unchecked(catScore[best])) best = k;
  if (enabled.length == 0 || enabled.includes(MODEL_CATEGORIES[best])) return best;
  return -1;
}

// Reading: a word's hash is FNV-1a over its folded bytes; parts end at 0xff (json.ts PART_END).
let wordHash: u32 = 0x811c9dc5;
/** The same word with leetspeak read as letters (`h4ck` → hack). */
let leetHash: u32 = 0x811c9dc5;
/** Bit 1: the word has a letter; bit 2: a digit, `@` or `$`. */
let wordKinds: i32 = 0;
let prevHash: u32 = 0;
let wordsInPart: i32 = 0;
let found: i32 = -1;
let foundAt: f64 = 0;
/** A part of the last `classify` was longer than MAX_PART_WORDS: it was not scored. */
export let skippedLong = false;
/** This part's best window so far; kept only if the part ends short enough. */
let partFound: i32 = -1;
let partFoundAt: f64 = 0;
let enabledNow: string[] = [];
/**
 * By part of the last `classify`, in order (index.ts keeps parts found clean by them):
 * PART_WARM, a window scored over the quoted bar; PART_LONG, too long to be scored.
 */
export let partMarks = new Uint8Array(64);
export const PART_WARM: u8 = 1;
export const PART_LONG: u8 = 2;
let partIndex: i32 = 0;
/** The part's best window so far, whatever the bar. */
let partMax: i32 = i32.MIN_VALUE;

/** The window's score beats the bar and every window before: its category, if enabled. */
function check(): void {
  const c = bestCategory(enabledNow);
  if (c >= 0) {
    partFound = c;
    partFoundAt = <f64>score;
  }
}

function endWord(): void {
  // Letters and digits (or @ $) together: leetspeak. A number alone stays a number.
  const h = wordKinds == 3 ? leetHash : wordHash;
  wordHash = 0x811c9dc5;
  leetHash = 0x811c9dc5;
  wordKinds = 0;
  wordsInPart++;
  // A part longer than MAX_PART_WORDS is the patterns' alone: read on, scored no more.
  if (wordsInPart > MAX_PART_WORDS && !training) return;
  push(wordBucket(h));
  if (wordsInPart > 1) push(pairBucket(prevHash, h));
  else if (training) push(-1); // the stream keeps two entries a word
  prevHash = h;
  if (wordsInPart >= WINDOW && !training) {
    if (score > partMax) partMax = score;
    if (<f64>score > partFoundAt) check();
  }
}

function endPart(): void {
  if (wordKinds != 0) endWord();
  if (training) return;
  if (wordsInPart > 0 && wordsInPart < WINDOW) {
    if (score > partMax) partMax = score;
    if (<f64>score > partFoundAt) check();
  }
  if (partIndex == partMarks.length) {
    const next = new Uint8Array(partIndex * 2);
    next.set(partMarks);
    partMarks = next;
  }
  unchecked(
    (partMarks[partIndex++] = (wordsInPart > MAX_PART_WORDS ? PART_LONG : 0) |
      (<f64>partMax > QUOTED_LIMIT ? PART_WARM : 0)),
  );
  partMax = i32.MIN_VALUE;
  if (wordsInPart > MAX_PART_WORDS) skippedLong = true;
  else if (partFound >= 0) {
    found = partFound;
    foundAt = partFoundAt;
  }
  partFound = -1;
  partFoundAt = foundAt;
  uncount(ring, ringLen);
  ringLen = 0;
  ringAt = 0;
  score = 0;
  wordsInPart = 0;
  prevHash = 0;
}

/** `fold` of each ASCII code point, one load in the loop. */
const ASCII = new StaticArray<i8>(128);
for (let i = 0; i < 128; i++) ASCII[i] = <i8>fold(i);

// @ts-ignore: decorator
@inline
function feed(cp: i32): void {
  const c = cp < 0x80 ? <i32>unchecked(ASCII[cp]) : fold(cp);
  if (c > 0) {
    wordHash = (wordHash ^ <u32>c) * 0x01000193;
    leetHash = (leetHash ^ <u32>unchecked(LEET[c])) * 0x01000193;
    wordKinds |= c >= 0x61 ? 1 : 2;
  } else if (c < 0 && wordKinds != 0) endWord();
}

const PART_ENDS = i8x16.splat(-1);

function read(text: Uint8Array, from: i32, len: i32): void {
  let i = from;
  const src = text.dataStart;
  while (i < len) {
    // A part past MAX_PART_WORDS is not scored: on to its end (0xff never occurs in UTF-8).
    if (wordsInPart > MAX_PART_WORDS && !training) {
      while (i + 16 <= len && i8x16.bitmask(i8x16.eq(v128.load(src + <usize>i), PART_ENDS)) == 0) {
        i += 16;
      }
      while (i < len && load<u8>(src + <usize>i) != 0xff) i++;
      wordKinds = 0;
      wordHash = 0x811c9dc5;
      leetHash = 0x811c9dc5;
      if (i == len) break;
      endPart();
      i++;
      continue;
    }
    // Four ASCII bytes at a time: one loop iteration (and one fuel check) for four.
    if (i + 4 <= len) {
      const w = load<u32>(src + <usize>i);
      if ((w & 0x80808080) == 0) {
        feed(<i32>(w & 0xff));
        feed(<i32>((w >> 8) & 0xff));
        feed(<i32>((w >> 16) & 0xff));
        feed(<i32>(w >> 24));
        i += 4;
        continue;
      }
    }
    const b0 = <i32>unchecked(text[i]);
    if (b0 < 0x80) {
      feed(b0);
      i++;
      continue;
    }
    if (b0 == 0xff) {
      endPart();
      i++;
      continue;
    }
    let cp = 0x20;
    if (b0 >= 0xf0 && i + 3 < len) {
      cp = ((b0 & 7) << 18) | ((<i32>unchecked(text[i + 1]) & 0x3f) << 12) |
        ((<i32>unchecked(text[i + 2]) & 0x3f) << 6) | (<i32>unchecked(text[i + 3]) & 0x3f);
      i += 4;
    } else if (b0 >= 0xe0 && i + 2 < len) {
      cp = ((b0 & 0xf) << 12) | ((<i32>unchecked(text[i + 1]) & 0x3f) << 6) |
        (<i32>unchecked(text[i + 2]) & 0x3f);
      i += 3;
    } else if (b0 >= 0xc0 && i + 1 < len) {
      cp = ((b0 & 0x1f) << 6) | (<i32>unchecked(text[i + 1]) & 0x3f);
      i += 2;
    } else i++;
    feed(cp);
  }
  endPart();
}

/**
 * The category (an index into `MODEL_CATEGORIES`) of the highest-scoring window of
 * `text[from, len)` (parts ended by 0xff) above `limit` (the threshold by default), among the
 * `enabled` categories; -1 when none.
 */
export function classify(
  text: Uint8Array,
  len: i32,
  enabled: string[],
  limit: f64 = LIMIT,
  from: i32 = 0,
): i32 {
  found = -1;
  foundAt = limit;
  skippedLong = false;
  partIndex = 0;
  partFound = -1;
  partFoundAt = limit;
  enabledNow = enabled;
  read(text, from, len);
  return found;
}

/**
 * Training's view (scripts/train_guard.ts): `text` read as one part, two entries a word in
 * order (its bucket, then the pair's ending it, -1 for the first word), into `out`; how many.
 * The trainer takes windows and distinct buckets from it as `classify` does.
 */
export function features(text: Uint8Array, len: i32, out: Int32Array): i32 {
  collected = out;
  collectedN = 0;
  training = true;
  read(text, 0, len);
  training = false;
  wordsInPart = 0;
  prevHash = 0;
  return collectedN;
}
