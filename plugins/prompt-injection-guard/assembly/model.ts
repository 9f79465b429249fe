// The guard's classifier: a linear model over hashed words and word pairs, scored on every
// window of `WINDOW` words of a text part, for the phrasings no pattern spells out. The
// patterns catch what they name exactly; this catches paraphrases ("set aside what you were
// told earlier"), at a threshold chosen on prompts it was not trained on. Weights are made by
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
  MODEL_CATEGORIES,
  WINDOW,
} from "./weights";

const BUCKETS: i32 = 1 << DETECT_BITS;
const CATS: i32 = MODEL_CATEGORIES.length;
/** The threshold in quantised units: bias + scale × q > threshold ⇔ q > LIMIT. */
const LIMIT: f64 = (DETECT_THRESHOLD - DETECT_BIAS) / DETECT_SCALE;
/**
 * The bar for confirming a pattern matched inside quotes: a score above 0, the model's own
 * "more likely an attack than not" (before the threshold's margin for false positives).
 */
export const QUOTED_LIMIT: f64 = -DETECT_BIAS / DETECT_SCALE;

/** How many features of the window fall in each bucket. */
const counts = new Uint8Array(BUCKETS);
/** The window's features: two per word (the word, the pair it ends), as a ring. */
const ring = new Int32Array(WINDOW * 2);
let ringLen: i32 = 0;
let ringAt: i32 = 0;
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
function add(bucket: i32): void {
  const c = unchecked(counts[bucket]);
  unchecked((counts[bucket] = c + 1));
  if (c == 0) score += <i32>unchecked(DETECT_WEIGHTS[bucket]);
}

// @ts-ignore: decorator
@inline
function remove(bucket: i32): void {
  const c = unchecked(counts[bucket]) - 1;
  unchecked((counts[bucket] = c));
  if (c == 0) score -= <i32>unchecked(DETECT_WEIGHTS[bucket]);
}

function clearWindow(): void {
  for (let k = 0; k < ringLen; k++) unchecked(counts[unchecked(ring[k])] = 0);
  ringLen = 0;
  ringAt = 0;
  score = 0;
}

/** The buckets of the word hashed `h` after the word hashed `prev` (0: none). */
// @ts-ignore: decorator
@inline
function wordBucket(h: u32): i32 {
  return <i32> (mix(h) >>> (32 - DETECT_BITS));
}

// @ts-ignore: decorator
@inline
function pairBucket(prev: u32, h: u32): i32 {
  return <i32> (mix((prev * 0x9e3779b1) ^ rotl<u32>(h, 15) ^ 0x5bd1e995) >>> (32 - DETECT_BITS));
}

let training = false;
let collected = new Int32Array(0);
let collectedN: i32 = 0;

// @ts-ignore: decorator
@inline
function push(bucket: i32): void {
  if (training) {
    if (unchecked(counts[bucket]) == 0 && collectedN < collected.length) {
      unchecked(counts[bucket] = 1);
      unchecked(collected[collectedN++] = bucket);
    }
    return;
  }
  if (ringLen == WINDOW * 2) {
    remove(unchecked(ring[ringAt]));
    unchecked(ring[ringAt] = bucket);
    ringAt = ringAt + 1 == WINDOW * 2 ? 0 : ringAt + 1;
  } else unchecked(ring[ringLen++] = bucket);
  add(bucket);
}

/**
 * The best category of the current window among `enabled` (all when empty), or -1. Summed
 * only here, for a window over the threshold: each distinct bucket once (marked by the high
 * bit of its count while summed; a window holds at most 48 features).
 */
function bestCategory(enabled: string[]): i32 {
  for (let k = 0; k < CATS; k++) unchecked((catScore[k] = 0));
  const shift = DETECT_BITS - CATEGORY_BITS;
  for (let j = 0; j < ringLen; j++) {
    const b = unchecked(ring[j]);
    const c = unchecked(counts[b]);
    if (c & 0x80) continue;
    unchecked((counts[b] = c | 0x80));
    const row = b >> shift;
    for (let k = 0; k < CATS; k++) {
      unchecked((catScore[k] += <i32>unchecked(CATEGORY_WEIGHTS[(k << CATEGORY_BITS) | row])));
    }
  }
  for (let j = 0; j < ringLen; j++) {
    const b = unchecked(ring[j]);
    unchecked((counts[b] = unchecked(counts[b]) & 0x7f));
  }
  let best = -1;
  let bestScore = i32.MIN_VALUE;
  for (let k = 0; k < CATS; k++) {
    if (unchecked(catScore[k]) > bestScore) {
      bestScore = unchecked(catScore[k]);
      best = k;
    }
  }
  if (enabled.length == 0 || enabled.includes(MODEL_CATEGORIES[best])) return best;
  return -1;
}

// Reading: a word's hash is FNV-1a over its folded bytes; parts end at 0xff (json.ts PART_END).
let wordHash: u32 = 0x811c9dc5;
/** The same word with leetspeak read as letters (`h4ck` → hack), and what it is made of. */
let leetHash: u32 = 0x811c9dc5;
let wordLetters = false;
let wordDigits = false;
let inWord = false;
let prevHash: u32 = 0;
let wordsInPart: i32 = 0;
let found: i32 = -1;
let foundAt: f64 = 0;
let enabledNow: string[] = [];

/** The window's score beats the threshold and every window before: its category, if enabled. */
function check(): void {
  if (<f64>score > foundAt) {
    const c = bestCategory(enabledNow);
    if (c >= 0) {
      found = c;
      foundAt = <f64> score;
    }
  }
}

function endWord(): void {
  if (!inWord) return;
  inWord = false;
  // Letters and digits (or @ $) together: leetspeak. A number alone stays a number.
  const h = wordLetters && wordDigits ? leetHash : wordHash;
  wordHash = 0x811c9dc5;
  leetHash = 0x811c9dc5;
  wordLetters = false;
  wordDigits = false;
  push(wordBucket(h));
  if (wordsInPart > 0) push(pairBucket(prevHash, h));
  prevHash = h;
  wordsInPart++;
  if (<f64>score > foundAt && wordsInPart >= WINDOW && !training) check();
}

function endPart(): void {
  endWord();
  if (training) return;
  if (wordsInPart > 0 && wordsInPart < WINDOW) check();
  clearWindow();
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
  if (c < 0) endWord();
  else if (c > 0) {
    wordHash = (wordHash ^ <u32> c) * 0x01000193;
    leetHash = (leetHash ^ <u32> unchecked(LEET[c])) * 0x01000193;
    if (c >= 0x61) wordLetters = true;
    else wordDigits = true;
    inWord = true;
  }
}

function read(text: Uint8Array, len: i32): void {
  let i = 0;
  const src = text.dataStart;
  while (i < len) {
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
      cp = ((b0 & 7) << 18) | ((<i32> unchecked(text[i + 1]) & 0x3f) << 12) |
        ((<i32> unchecked(text[i + 2]) & 0x3f) << 6) | (<i32> unchecked(text[i + 3]) & 0x3f);
      i += 4;
    } else if (b0 >= 0xe0 && i + 2 < len) {
      cp = ((b0 & 0xf) << 12) | ((<i32> unchecked(text[i + 1]) & 0x3f) << 6) |
        (<i32> unchecked(text[i + 2]) & 0x3f);
      i += 3;
    } else if (b0 >= 0xc0 && i + 1 < len) {
      cp = ((b0 & 0x1f) << 6) | (<i32> unchecked(text[i + 1]) & 0x3f);
      i += 2;
    } else i++;
    feed(cp);
  }
  endPart();
}

/**
 * The category (an index into `MODEL_CATEGORIES`) of the highest-scoring window of `text`
 * above the threshold, among the `enabled` categories; -1 when none.
 */
export function classify(
  text: Uint8Array,
  len: i32,
  enabled: string[],
  limit: f64 = LIMIT,
): i32 {
  found = -1;
  foundAt = limit;
  enabledNow = enabled;
  read(text, len);
  return found;
}

/**
 * Training's view (scripts/train_guard.ts): the distinct buckets of `text`, read as one window
 * whatever its length (as the training examples are), into `out`; how many.
 */
export function features(text: Uint8Array, len: i32, out: Int32Array): i32 {
  collected = out;
  collectedN = 0;
  training = true;
  read(text, len);
  training = false;
  wordsInPart = 0;
  prevHash = 0;
  for (let k = 0; k < collectedN; k++) unchecked(counts[unchecked(out[k])] = 0);
  return collectedN;
}
