// Normalise text to words and match the patterns over them.
//
// Normalisation (beyond Butter's): Unicode compatibility forms that spell Latin letters
// (fullwidth, mathematical alphanumerics, circled/parenthesised/squared letters, small
// ligatures; the NFKC mappings an attacker uses to dodge ASCII matching), accents stripped,
// Cyrillic/Greek look-alikes folded, zero-width/bidi/soft hyphen/variation selectors dropped
// (they join, not split), Unicode tag characters read as the ASCII they hide, apostrophes
// joined and contractions expanded, leetspeak digits inside words read as letters, letters
// spelt out one by one (`i g n o r e`, `i.g.n.o.r.e`) and run-together words
// (`ignoreallprevious...`) split on the pattern vocabulary.
import { PATTERNS } from "./patterns";

const UNKNOWN: i32 = -1;
/**
 * Where one text part (a message, a block) or a sentence ends: a gap (`*`) in a pattern never
 * skips it, so words of different messages or sentences do not make one phrase.
 */
const BOUNDARY: i32 = -3;
/**
 * A colon after a word, then a space or the end (`New instructions: …`, `Developer mode: on`):
 * a pattern may ask for it (`:`) or start after it (`^`); a gap skips it like a word.
 */
const COLON: i32 = -4;

// Latin-1 Supplement and Latin Extended-A letters (U+00C0..U+017F) without their accents;
// "." marks a code point that is not a letter.
const LATIN =
  "aaaaaaaceeeeiiiidnooooo.ouuuuyts" + "aaaaaaaceeeeiiiidnooooo.ouuuuyty" +
  "aaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiiiiijjkkkllllllllllnnnnnnnnnoooooooorrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzs";

/** ASCII code points a base64 (standard or URL-safe) or hex blob is made of. */
const BLOB = new StaticArray<u8>(128);
for (let i = 0; i < 128; i++) {
  BLOB[i] = <u8>((i >= 0x41 && i <= 0x5a) || (i >= 0x61 && i <= 0x7a) || (i >= 0x30 && i <= 0x39) ||
    i == 0x2b || i == 0x2d || i == 0x2f || i == 0x5f);
}

/** Blobs shorter than this are not decoded (index.ts: `scanBlobs`). */
export const BLOB_MIN: i32 = 16;

/**
 * The last `tokenize` saw a run of at least `BLOB_MIN` blob characters (or of letters, digits,
 * `@` and `$` with them: a superset, which only costs a pass that finds nothing): only then can
 * `scanBlobs` find anything, so ordinary prose skips that second pass.
 */
export let sawBlob = false;

/** Map one code point: a lowercase ASCII letter/digit (or @ $), 0 = drop, -1 = separator. */
export function fold(cp: i32): i32 {
  if (cp < 0x80) {
    if (cp >= 0x61 && cp <= 0x7a) return cp;
    if (cp >= 0x41 && cp <= 0x5a) return cp + 32;
    if (cp >= 0x30 && cp <= 0x39) return cp;
    if (cp == 0x40 || cp == 0x24) return cp;
    if (cp == 0x27 || cp == 0x60) return 0; // apostrophes join ("don't" → "dont")
    return -1;
  }
  if (cp == 0xad || cp == 0x2019 || cp == 0x2018 || cp == 0x2bc || cp == 0xb4) return 0;
  if (cp >= 0xc0 && cp <= 0x17f) {
    const c = <i32>LATIN.charCodeAt(cp - 0xc0);
    return c == 0x2e ? -1 : c;
  }
  if (cp >= 0x300 && cp <= 0x36f) return 0; // combining accents
  if (cp >= 0x200b && cp <= 0x200f) return 0; // zero-width, LRM/RLM
  if (cp >= 0x202a && cp <= 0x202e) return 0; // bidi embeddings/overrides
  if (cp >= 0x2060 && cp <= 0x2069) return 0; // word joiner, invisible operators, isolates
  if (cp == 0xfeff || cp == 0x34f || cp == 0x180e) return 0;
  if (cp >= 0xfe00 && cp <= 0xfe0f) return 0; // variation selectors
  if (cp >= 0xe0100 && cp <= 0xe01ef) return 0;
  if (cp >= 0xe0020 && cp <= 0xe007e) return fold(cp - 0xe0000); // tag characters
  if (cp >= 0xe0000 && cp <= 0xe007f) return 0;
  if (cp >= 0xff01 && cp <= 0xff5e) return fold(cp - 0xfee0); // fullwidth
  if (cp >= 0x1d400 && cp <= 0x1d6a3) return 0x61 + ((cp - 0x1d400) % 52) % 26; // math letters
  if (cp >= 0x1d7ce && cp <= 0x1d7ff) return 0x30 + ((cp - 0x1d7ce) % 10); // math digits
  if (cp >= 0x24b6 && cp <= 0x24cf) return 0x61 + cp - 0x24b6; // circled capitals
  if (cp >= 0x24d0 && cp <= 0x24e9) return 0x61 + cp - 0x24d0; // circled small
  if (cp >= 0x249c && cp <= 0x24b5) return 0x61 + cp - 0x249c; // parenthesised
  if (cp >= 0x1f130 && cp <= 0x1f149) return 0x61 + cp - 0x1f130; // squared
  if (cp >= 0x1f150 && cp <= 0x1f169) return 0x61 + cp - 0x1f150; // negative circled
  if (cp >= 0x1f170 && cp <= 0x1f189) return 0x61 + cp - 0x1f170; // negative squared
  if (cp >= 0x1f1e6 && cp <= 0x1f1ff) return 0x61 + cp - 0x1f1e6; // regional indicators
  if (cp >= 0x2460 && cp <= 0x2468) return 0x31 + cp - 0x2460; // circled digits
  if (cp >= 0x1d00 && cp <= 0x1d2b) return smallCap(cp);
  const compat = compatLetter(cp);
  if (compat != 0) return compat;
  return confusable(cp);
}

/**
 * Letters NFKC spells as one Latin letter outside the ranges above: the Letterlike Symbols
 * that fill the gaps of the mathematical script, fraktur and double-struck alphabets (ℊ ℑ ℕ
 * ℝ …), single-letter Roman numerals, and superscript, subscript and modifier letters. 0 for
 * any other code point.
 */
function compatLetter(cp: i32): i32 {
  switch (cp) {
    case 0x2102: case 0x212d: case 0x216d: case 0x217d: case 0x1d9c: return 0x63; // c
    case 0x210a: case 0x1d4d: case 0x1d33: return 0x67; // g
    case 0x210b: case 0x210c: case 0x210d: case 0x210e: case 0x210f: case 0x2b0: case 0x1d34:
    case 0x2095: return 0x68; // h
    case 0x2110: case 0x2111: case 0x2139: case 0x2148: case 0x2160: case 0x2170: case 0x2071:
    case 0x1da6: case 0x1d35: case 0x1d62: return 0x69; // i
    case 0x2112: case 0x2113: case 0x216c: case 0x217c: case 0x2e1: case 0x1d38: case 0x2097:
      return 0x6c; // l
    case 0x2115: case 0x207f: case 0x1d3a: case 0x2099: return 0x6e; // n
    case 0x2119: case 0x1d56: case 0x1d3e: case 0x209a: return 0x70; // p
    case 0x211a: return 0x71; // q
    case 0x211b: case 0x211c: case 0x211d: case 0x2b3: case 0x1d3f: case 0x1d63: return 0x72; // r
    case 0x2124: case 0x2128: case 0x1dbb: return 0x7a; // z
    case 0x212a: case 0x1d4f: case 0x1d37: case 0x2096: return 0x6b; // k
    case 0x212b: case 0x1d43: case 0x1d2c: case 0x2090: return 0x61; // a
    case 0x212c: case 0x1d47: case 0x1d2e: return 0x62; // b
    case 0x212f: case 0x2130: case 0x2147: case 0x1d49: case 0x1d31: case 0x2091: return 0x65; // e
    case 0x2131: case 0x1da0: return 0x66; // f
    case 0x2133: case 0x216f: case 0x217f: case 0x1d50: case 0x1d39: case 0x2098: return 0x6d; // m
    case 0x2134: case 0x1d52: case 0x1d3c: case 0x2092: return 0x6f; // o
    case 0x2145: case 0x2146: case 0x216e: case 0x217e: case 0x1d48: case 0x1d30: return 0x64; // d
    case 0x2149: case 0x2b2: case 0x1d36: case 0x2c7c: return 0x6a; // j
    case 0x2164: case 0x2174: case 0x1d5b: case 0x1d65: return 0x76; // v
    case 0x2169: case 0x2179: case 0x2e3: case 0x2093: return 0x78; // x
    case 0x2e2: case 0x209b: case 0xa731: return 0x73; // s
    case 0x1d57: case 0x1d40: case 0x209c: return 0x74; // t
    case 0x1d58: case 0x1d41: case 0x1d64: return 0x75; // u
    case 0x2b7: case 0x1d42: return 0x77; // w
    case 0x2b8: return 0x79; // y
    default: return 0;
  }
}

function smallCap(cp: i32): i32 {
  switch (cp) {
    case 0x1d00: return 0x61;
    case 0x299: return 0x62;
    case 0x1d04: return 0x63;
    case 0x1d05: return 0x64;
    case 0x1d07: return 0x65;
    case 0x1d0a: return 0x6a;
    case 0x1d0b: return 0x6b;
    case 0x1d0d: return 0x6d;
    case 0x1d0f: return 0x6f;
    case 0x1d18: return 0x70;
    case 0x1d1b: return 0x74;
    case 0x1d1c: return 0x75;
    case 0x1d20: return 0x76;
    case 0x1d21: return 0x77;
    case 0x1d22: return 0x7a;
  }
  return -1;
}

/** Cyrillic, Greek and other look-alikes of Latin letters. */
function confusable(cp: i32): i32 {
  switch (cp) {
    // Cyrillic
    case 0x430: case 0x410: return 0x61;
    case 0x432: case 0x412: case 0x44c: return 0x62;
    case 0x441: case 0x421: return 0x63;
    case 0x501: return 0x64;
    case 0x435: case 0x415: case 0x451: case 0x401: return 0x65;
    case 0x4bb: case 0x41d: case 0x43d: return 0x68;
    case 0x456: case 0x406: case 0x457: case 0x4cf: return 0x69;
    case 0x458: case 0x408: return 0x6a;
    case 0x43a: case 0x41a: return 0x6b;
    case 0x43c: case 0x41c: return 0x6d;
    case 0x43e: case 0x41e: return 0x6f;
    case 0x440: case 0x420: return 0x70;
    case 0x51b: return 0x71;
    case 0x433: return 0x72;
    case 0x455: case 0x405: return 0x73;
    case 0x442: case 0x422: return 0x74;
    case 0x443: case 0x423: case 0x4af: return 0x79;
    case 0x445: case 0x425: return 0x78;
    case 0x51d: return 0x77;
    case 0x43f: case 0x41f: return 0x6e;
    // Greek
    case 0x3b1: case 0x391: case 0x3ac: return 0x61;
    case 0x3b2: case 0x392: return 0x62;
    case 0x3b5: case 0x395: case 0x3ad: return 0x65;
    case 0x397: case 0x3b7: return 0x68;
    case 0x3b9: case 0x399: case 0x3af: case 0x3ca: return 0x69;
    case 0x3ba: case 0x39a: return 0x6b;
    case 0x39c: return 0x6d;
    case 0x3bd: return 0x76; // ν looks like v
    case 0x39d: return 0x6e;
    case 0x3bf: case 0x39f: case 0x3cc: case 0x3c3: return 0x6f;
    case 0x3c1: case 0x3a1: return 0x70;
    case 0x3c4: case 0x3a4: return 0x74;
    case 0x3c5: case 0x3a5: case 0x3cd: return 0x75;
    case 0x3c7: case 0x3a7: return 0x78;
    case 0x396: return 0x7a;
    case 0x3bc: return 0x75;
    // Latin extensions and IPA
    case 0x131: case 0x269: case 0x26a: return 0x69;
    case 0x261: case 0x262: return 0x67;
    case 0x251: return 0x61;
    case 0x25b: return 0x65;
    case 0x28f: return 0x79;
    case 0x280: return 0x72;
    case 0x274: return 0x6e;
    case 0x29c: return 0x68;
    case 0x29f: return 0x6c;
    case 0x1e9e: return 0x73;
    case 0x2113: return 0x6c;
    case 0x212f: case 0x2147: return 0x65;
    case 0x2134: return 0x6f;
    case 0xfb00: return 0x66; // ff (first letter; the second is lost)
    case 0xfb01: case 0xfb02: return 0x66;
  }
  return -1;
}

/** `leet` of each ASCII code point (a word's characters are stored already read). */
export const LEET = new StaticArray<u8>(128);

function leet(c: i32): i32 {
  switch (c) {
    case 0x30: return 0x6f; // 0 o
    case 0x31: return 0x69; // 1 i
    case 0x33: return 0x65; // 3 e
    case 0x34: return 0x61; // 4 a
    case 0x35: return 0x73; // 5 s
    case 0x37: return 0x74; // 7 t
    case 0x38: return 0x62; // 8 b
    case 0x39: return 0x67; // 9 g
    case 0x40: return 0x61; // @ a
    case 0x24: return 0x73; // $ s
  }
  return c;
}
for (let i = 0; i < 128; i++) LEET[i] = <u8>leet(i);

/**
 * The vocabulary trie's column of each stored word byte: 1..26 for a..z, 27 and 28 for the
 * digits `leet` keeps (2, 6), 0 for anything else (no token has it, so it leads nowhere).
 */
const COL = new StaticArray<u8>(128);
for (let i = 0x61; i <= 0x7a; i++) COL[i] = <u8>(i - 0x60);
COL[0x32] = 27;
COL[0x36] = 28;

/** In `CLASS`: the code point is a letter (not a digit, `@` or `$`). */
const LETTER: i32 = 0x100;
/** In `CLASS`: the trie column (`COL`) sits above this bit. */
const COL_SHIFT: i32 = 9;
/**
 * Each ASCII code point as the word reader takes it, one load in the hot loop: -1 a
 * separator, 0 dropped (apostrophes), else the byte stored for the word (`fold`, then `leet`),
 * `LETTER` when it is a letter, and its trie column above `COL_SHIFT`.
 */
const CLASS = new StaticArray<i16>(128);
for (let i = 0; i < 128; i++) {
  const c = fold(i);
  if (c <= 0) CLASS[i] = <i16>c;
  else {
    const l = <i32>LEET[c];
    CLASS[i] = <i16>(l | (c >= 0x61 ? LETTER : 0) | (<i32>COL[l] << COL_SHIFT));
  }
}

// ---- vocabulary: every word of the patterns, in a trie --------------------------------------

// State 0 leads nowhere; 1 is the root. A state's row is `1 << ROW_SHIFT` next states, one per
// column. Read a letter at a time while a word is read: at its end the state says which
// vocabulary word it is (no hashing, no comparing).
const ROW_SHIFT: i32 = 5;
const ROOT: i32 = 1;
let trieNext = new Int32Array(2048 << ROW_SHIFT);
/** By state: the vocabulary id of the word ending there, or UNKNOWN. */
let trieWord = new Int32Array(2048).fill(UNKNOWN);
/**
 * By state, for `tokenize`'s fast path: the word's id when it is one and not a contraction,
 * -2 for a contraction, -1 for no word. Built at the end of `compile`.
 */
let trieFast = new Int32Array(0);
let trieStates: i32 = 2;
let vocabCount: i32 = 0;
let maxWordLen: i32 = 0;

function newState(): i32 {
  if (trieStates == trieWord.length) {
    const next = new Int32Array(trieStates * 2 << ROW_SHIFT);
    next.set(trieNext);
    trieNext = next;
    const words = new Int32Array(trieStates * 2).fill(UNKNOWN);
    words.set(trieWord);
    trieWord = words;
  }
  return trieStates++;
}

/** The state after `state` reads the stored word byte `b`. */
// @ts-ignore: decorator
@inline function step(state: i32, b: i32): i32 {
  return unchecked(trieNext[(state << ROW_SHIFT) | <i32>unchecked(COL[b & 0x7f])]);
}

function wordId(word: string): i32 {
  let state = ROOT;
  for (let i = 0; i < word.length; i++) {
    const col = <i32>COL[word.charCodeAt(i) & 0x7f];
    // A word with a byte no token can hold is never matched: it gets an id, not a state.
    if (col == 0 || word.charCodeAt(i) >= 0x80) return vocabCount++;
    const at = (state << ROW_SHIFT) | col;
    let next = trieNext[at];
    if (next == 0) {
      next = newState();
      trieNext[at] = next;
    }
    state = next;
  }
  if (trieWord[state] >= 0) return trieWord[state];
  trieWord[state] = vocabCount;
  if (word.length > maxWordLen) maxWordLen = word.length;
  return vocabCount++;
}

/** The state `buf[start, start + len)` leads to from the root (0: no word starts so). */
function walk(buf: Uint8Array, start: i32, len: i32): i32 {
  let state = ROOT;
  for (let i = 0; i < len && state != 0; i++) state = step(state, <i32>unchecked(buf[start + i]));
  return state;
}

// ---- patterns ------------------------------------------------------------------------------

class Elem {
  /** One-word alternatives. */
  ids: i32[] = [];
  /** With many alternatives, the same as a bit per vocabulary id: one load to test a word. */
  bits: Uint32Array | null = null;
  /** Alternatives of several words (`must_now`), tried after `ids`. */
  seqs: i32[][] = [];
  optional: bool = false;
  gap: i32 = 0;
  /** Matches the `COLON` token. */
  colon: bool = false;
}

class Pattern {
  category: string;
  id: string;
  index: i32;
  elems: Elem[] = [];
  /** Starts at a text part's or sentence's start, or after a colon (`^`). */
  anchored: bool = false;
  /** Where the phrase ends in `elems`; vetoes follow it. */
  posEnd: i32 = 0;
  /** Where each veto group (`!`) starts in `elems`: it must not follow the phrase. */
  vetoes: i32[] = [];
  /** Words that must not come right before the phrase (`<<`), one-word alternatives each. */
  behind: Elem[] = [];
  constructor(category: string, id: string, index: i32) {
    this.category = category;
    this.id = id;
    this.index = index;
  }
}

const patterns: Pattern[] = [];
/** By the id of a first word: the patterns that start with it (an array: ids are dense). */
const byFirst: (i32[] | null)[] = [];
let compiled = false;

const CONTRACTIONS: string[] = [
  "dont:do not", "doesnt:does not", "didnt:did not", "cant:can not", "cannot:can not",
  "wont:will not", "isnt:is not", "arent:are not", "wasnt:was not", "werent:were not",
  "shouldnt:should not", "youre:you are", "youve:you have", "youll:you will", "im:i am",
  "ive:i have", "theyre:they are", "whats:what is", "thats:that is", "its:it is",
  "youd:you would", "hasnt:has not", "havent:have not", "couldnt:could not",
  "wouldnt:would not", "theres:there is", "hes:he is", "shes:she is", "aint:is not",
];
/** Vocabulary id of a contraction → the ids it expands to (null for other words). */
const contractionTo: (i32[] | null)[] = [];

export function compile(): void {
  if (compiled) return;
  compiled = true;
  for (let p = 0; p < PATTERNS.length; p++) {
    const parts = PATTERNS[p].split("|");
    const pat = new Pattern(parts[0], parts[1], p);
    const words = parts[2].split(" ");
    for (let i = 0; i < words.length; i++) {
      let w = words[i];
      if (w.length == 0) continue;
      if (w == "^") {
        pat.anchored = true;
        continue;
      }
      if (w == "<<") {
        pat.behind = pat.elems;
        pat.elems = [];
        continue;
      }
      if (w == "!") {
        pat.vetoes.push(pat.elems.length);
        continue;
      }
      const e = new Elem();
      if (w == "*") e.gap = 3;
      else if (w == "**") e.gap = 6;
      else {
        if (w.endsWith("?")) {
          e.optional = true;
          w = w.slice(0, w.length - 1);
        }
        if (w == ":") e.colon = true;
        const alts = w.split("/");
        for (let a = 0; a < alts.length && !e.colon; a++) {
          if (alts[a].length == 0) continue;
          if (alts[a].includes("_")) {
            const seq: i32[] = [];
            const ws = alts[a].split("_");
            for (let k = 0; k < ws.length; k++) seq.push(wordId(ws[k]));
            e.seqs.push(seq);
          } else e.ids.push(wordId(alts[a]));
        }
      }
      pat.elems.push(e);
    }
    pat.posEnd = pat.vetoes.length > 0 ? pat.vetoes[0] : pat.elems.length;
    const index = patterns.length;
    patterns.push(pat);
    const first = pat.elems[0].ids;
    for (let a = 0; a < first.length; a++) {
      const id = first[a];
      while (byFirst.length <= id) byFirst.push(null);
      let list = byFirst[id];
      if (list === null) {
        list = [];
        byFirst[id] = list;
      }
      list.push(index);
    }
  }
  for (let i = 0; i < CONTRACTIONS.length; i++) {
    const kv = CONTRACTIONS[i].split(":");
    const words = kv[1].split(" ");
    const ids: i32[] = [];
    for (let j = 0; j < words.length; j++) ids.push(wordId(words[j]));
    const id = wordId(kv[0]);
    while (contractionTo.length <= id) contractionTo.push(null);
    contractionTo[id] = ids;
  }
  while (byFirst.length < vocabCount) byFirst.push(null);
  while (contractionTo.length < vocabCount) contractionTo.push(null);
  for (let p = 0; p < patterns.length; p++) {
    const elems = patterns[p].elems;
    for (let e = 0; e < elems.length; e++) {
      const el = elems[e];
      if (el.ids.length < 4) continue;
      const bits = new Uint32Array((vocabCount + 31) >> 5);
      for (let a = 0; a < el.ids.length; a++) {
        const id = el.ids[a];
        bits[id >> 5] |= 1 << (id & 31);
      }
      el.bits = bits;
    }
  }
  trieFast = new Int32Array(trieStates);
  for (let st = 0; st < trieStates; st++) {
    const id = trieWord[st];
    trieFast[st] = id < 0 ? -1 : contractionTo[id] !== null ? -2 : id;
  }
}

// At instantiation (the module's start function, with fuel of its own), not in the first call:
// the patterns do not depend on the config, and compiling them costs as much as scanning
// tens of KB.
compile();

// ---- tokenising ----------------------------------------------------------------------------

/** The words of the text as vocabulary ids (UNKNOWN for others); kept across calls. */
let tokens = new Int32Array(4096);
let tokenCount: i32 = 0;

/** By token: 1 when it was read inside double quotes ("…", “…”, «…») closed in its part. */
let tokenQuoted = new Uint8Array(4096);
/** Inside a quote now; where it opened (a token index), to take back one never closed. */
let quotedNow: u8 = 0;
let quoteOpenedAt: i32 = 0;
/** The last `tokenize` opened a quote: only then can a token be quoted (a second pass). */
export let sawQuote = false;
/** The BOUNDARY tokens that end a text part (not a sentence), in order: few per request. */
let partEnds = new Int32Array(64);
let partEndCount: i32 = 0;

function notePartEnd(): void {
  if (partEndCount == partEnds.length) {
    const next = new Int32Array(partEndCount * 2);
    next.set(partEnds);
    partEnds = next;
  }
  unchecked((partEnds[partEndCount++] = tokenCount - 1));
}

/** `k` is a part's end: a binary search (part ends are noted in token order). */
function isPartEnd(k: i32): bool {
  let lo = 0;
  let hi = partEndCount;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const at = unchecked(partEnds[mid]);
    if (at == k) return true;
    if (at < k) lo = mid + 1;
    else hi = mid;
  }
  return false;
}

function pushToken(id: i32): void {
  if (tokenCount == tokens.length) {
    const next = new Int32Array(tokens.length * 2);
    next.set(tokens);
    tokens = next;
    const q = new Uint8Array(tokens.length);
    q.set(tokenQuoted);
    tokenQuoted = q;
  }
  unchecked((tokenQuoted[tokenCount] = quotedNow));
  unchecked((tokens[tokenCount++] = id));
}

const QUOTE_TOGGLE: i32 = 1;
const QUOTE_OPEN: i32 = 2;
const QUOTE_CLOSE: i32 = 3;
const QUOTE_PART_END: i32 = 4;

/**
 * A quote mark read after the tokens before it were pushed. A quote still open when its part
 * ends was not a quote: its tokens are taken back as unquoted (a stray `"` must not make the
 * rest of a message "quoted").
 */
function quoteMark(mark: i32): void {
  if (mark == QUOTE_PART_END || (mark == QUOTE_TOGGLE && quotedNow == 0) || mark == QUOTE_OPEN) {
    if (quotedNow != 0) {
      for (let k = quoteOpenedAt; k < tokenCount; k++) unchecked((tokenQuoted[k] = 0));
    }
    quotedNow = 0;
    if (mark == QUOTE_PART_END) return;
    quotedNow = 1;
    sawQuote = true;
    quoteOpenedAt = tokenCount;
  } else quotedNow = 0;
}
/** The word being read, its leetspeak already read as letters. */
const TOK_CAP: i32 = 256;
const tok = new Uint8Array(TOK_CAP + 16); // + 16: a vector store at the word's end
const LOWER_A = i8x16.splat(0x61);
const LETTERS = i8x16.splat(26);
const SINGLES_CAP: i32 = 512;
const singles = new Uint8Array(SINGLES_CAP);
let singlesLen: i32 = 0;

function emitWord(buf: Uint8Array, start: i32, len: i32, split: bool): void {
  const prev = len > 1 ? walk(buf, start, len - 1) : ROOT;
  emitState(buf, start, len, split, step(prev, <i32>unchecked(buf[start + len - 1])), prev);
}

/**
 * The word `buf[start, start + len)`, whose trie state is `state` (and `prev` that of all but
 * its last letter), as tokens.
 */
function emitState(
  buf: Uint8Array,
  start: i32,
  len: i32,
  split: bool,
  state: i32,
  prev: i32,
): void {
  const id = unchecked(trieWord[state]);
  if (id >= 0) {
    // Contractions: "dont" → do not.
    const ids = unchecked(contractionTo[id]);
    if (ids !== null) {
      for (let j = 0; j < ids.length; j++) pushToken(unchecked(ids[j]));
    } else pushToken(id);
    return;
  }
  // Plurals and third persons: "rules" when only "rule" is known.
  if (len > 3 && unchecked(buf[start + len - 1]) == 0x73) {
    const stem = unchecked(trieWord[prev]);
    if (stem >= 0) {
      pushToken(stem);
      return;
    }
  }
  if (split && len >= 10) segment(buf, start, len, true);
  else pushToken(UNKNOWN);
}

/** The longest vocabulary word at `buf[at..]`, at most `most` letters: its id << 8 | length. */
function longest(buf: Uint8Array, at: i32, most: i32): i32 {
  let state = ROOT;
  let found = -1;
  for (let l = 1; l <= most; l++) {
    state = step(state, <i32>unchecked(buf[at + l - 1]));
    if (state == 0) break;
    const id = unchecked(trieWord[state]);
    if (id >= 0) found = (id << 8) | l;
  }
  return found;
}

/** Split run-together letters on the vocabulary, longest word first. */
function segment(buf: Uint8Array, start: i32, len: i32, strict: bool): void {
  // A long ordinary word ("quarterly") rarely starts with a pattern word of 3+ letters:
  // give up at once then, rather than trying every split.
  if (strict) {
    const first = longest(buf, start, min(maxWordLen, len - 1));
    if (first < 0 || (first & 0xff) < 3) {
      pushToken(UNKNOWN);
      return;
    }
  }
  let i = 0;
  let unknown = false;
  while (i < len) {
    const found = longest(buf, start + i, min(maxWordLen, len - i));
    if (found >= 0) {
      pushToken(found >> 8);
      unknown = false;
      i += found & 0xff;
    } else {
      if (!unknown) pushToken(UNKNOWN);
      unknown = true;
      i++;
    }
  }
}

function flushSingles(): void {
  if (singlesLen == 0) return;
  if (singlesLen >= 4) segment(singles, 0, singlesLen, false);
  else for (let i = 0; i < singlesLen; i++) emitWord(singles, i, 1, false);
  singlesLen = 0;
}

/**
 * The end of the word in `tok[0, len)`, whose trie state is `state` (`prev` before its last
 * letter): `letters`, it has a letter; `overflow`, it was longer than `tok`.
 */
function endToken(len: i32, letters: bool, overflow: bool, state: i32, prev: i32): void {
  // A lone leet digit inside spelt-out letters ("S w 1 7 c h") is a letter too.
  if (!letters && len == 1 && singlesLen > 0 && leet(<i32>tok[0]) >= 0x61) letters = true;
  if (!letters) {
    flushSingles();
    pushToken(UNKNOWN);
  } else if (len == 1 && singlesLen < SINGLES_CAP) {
    unchecked((singles[singlesLen++] = unchecked(tok[0])));
  } else {
    flushSingles();
    if (overflow) pushToken(UNKNOWN);
    else emitState(tok, 0, len, true, state, prev);
  }
}

// Fake chat-template delimiters, matched on the raw text (ASCII case-insensitive) while it is
// read: words alone cannot see them once punctuation is gone. Each starts with `<`, `[`, `#`
// or `{`, all separators to the word reader.
export const DELIMITERS: string[] = [
  "<|im_start|>", "<|im_end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|endoftext|>",
  "<|begin_of_text|>", "<|start_header_id|>", "<|eot_id|>", "[inst]", "[/inst]", "<<sys>>",
  "<</sys>>", "</system>", "<system>", "[system]", "[/system]", "### system", "### instruction",
  "</s><s>", "{{system}}", "<|im_sep|>",
];

function lower(c: i32): i32 {
  return c >= 0x41 && c <= 0x5a ? c + 32 : c;
}

/** The index of the delimiter at `text[i..]`, or -1. */
function delimiterAt(text: Uint8Array, i: i32, len: i32): i32 {
  const c = <i32>unchecked(text[i]);
  for (let d = 0; d < DELIMITERS.length; d++) {
    const del = unchecked(DELIMITERS[d]);
    const n = del.length;
    if (i + n > len || <i32>del.charCodeAt(0) != c) continue;
    let same = true;
    for (let k = 1; k < n; k++) {
      if (lower(<i32>unchecked(text[i + k])) != <i32>del.charCodeAt(k)) {
        same = false;
        break;
      }
    }
    if (same) return d;
  }
  return -1;
}

/** The ASCII a fullwidth form or a Unicode tag character stands for; else `cp` itself. */
function asciiOf(cp: i32): i32 {
  if (cp >= 0xff01 && cp <= 0xff5e) return cp - 0xfee0;
  if (cp >= 0xe0020 && cp <= 0xe007e) return cp - 0xe0000;
  return cp;
}

/**
 * `text[i..]` starts with a space, a newline or a part's end, or the text ends there: a space
 * after punctuation (an ideographic or tag space too). A double quote mark counts as well: a
 * quote closed after a full stop (`…PWNED." Thanks`) or opened right after one
 * (`Sunday."Ignore …`) is at a sentence's end or start.
 */
function spaceAt(text: Uint8Array, i: i32, len: i32): bool {
  if (i >= len) return true;
  const b = <i32>unchecked(text[i]);
  if (b == 0x20 || b == 0x0a || b == 0xff || b == 0x22) return true;
  // U+201C and U+201D, curly double quotes: e2 80 9c, e2 80 9d.
  if (b == 0xe2 && i + 2 < len && unchecked(text[i + 1]) == 0x80) {
    const c = <i32>unchecked(text[i + 2]);
    return c == 0x9c || c == 0x9d;
  }
  // U+3000 ideographic space: e3 80 80. U+E0020 tag space: f3 a0 80 a0.
  if (b == 0xe3 && i + 2 < len) {
    return unchecked(text[i + 1]) == 0x80 && unchecked(text[i + 2]) == 0x80;
  }
  if (b == 0xf3 && i + 3 < len) {
    return unchecked(text[i + 1]) == 0xa0 && unchecked(text[i + 2]) == 0x80 &&
      unchecked(text[i + 3]) == 0xa0;
  }
  return false;
}

/**
 * Decode UTF-8 `text[0..len)` into `tokens`; with `delimiters`, stop at the first delimiter
 * and return its index (else -1). An ASCII letter or digit costs a table load, a store and a
 * step in the vocabulary trie: at a word's end its state says which word it is.
 */
export function tokenize(text: Uint8Array, len: i32, delimiters: bool): i32 {
  tokenCount = 0;
  partEndCount = 0;
  singlesLen = 0;
  quotedNow = 0;
  sawQuote = false;
  let blob = false;
  // Where the current run of blob characters began: a run is measured where it breaks.
  let runStart = 0;
  let n = 0;
  let flags = 0;
  let overflow = false;
  // The last separator was a closing (or toggling) quote mark: `"…". Next` ends a sentence too.
  let afterQuote = false;
  let state = ROOT;
  let prev = ROOT;
  const next = trieNext.dataStart;
  const src = text.dataStart;
  const word = tok.dataStart;
  let i = 0;
  while (i < len) {
    const b0 = <i32>load<u8>(src + <usize>i);
    let c: i32;
    // A part ends (the walker's PART_END), or a sentence: a word of two letters or more, then
    // . ! or ? and a space ("i. g. n. o. r. e." stays one spelt-out word).
    let stop = false;
    let colon = false;
    let mark = 0;
    if (b0 < 0x80) {
      const t = <i32>unchecked(CLASS[b0]);
      i++;
      if (t > 0) {
        if (n < TOK_CAP) {
          store<u8>(word + <usize>n, <u8>t);
          n++;
        } else overflow = true;
        flags |= t;
        prev = state;
        state = load<i32>(next + ((<usize>((state << ROW_SHIFT) | (t >> COL_SHIFT))) << 2));
        // The lowercase letters that follow (most of a word), 16 at a time: copied at once,
        // and walked in the trie only while it still leads somewhere.
        while (i + 16 <= len && n + 16 <= TOK_CAP) {
          const v = v128.load(src + <usize>i);
          const lower = ~i8x16.bitmask(i8x16.lt_u(i8x16.sub(v, LOWER_A), LETTERS));
          const run = <i32>ctz(lower);
          if (run == 0) break;
          v128.store(word + <usize>n, v);
          flags |= LETTER;
          for (let k = 0; k < run; k++) {
            if (state == 0) {
              prev = 0;
              break;
            }
            prev = state;
            const col = <i32>load<u8>(src + <usize>(i + k)) - 0x60;
            state = load<i32>(next + ((<usize>((state << ROW_SHIFT) | col)) << 2));
          }
          n += run;
          i += run;
          if (run < 16) break;
        }
        continue;
      }
      if (!unchecked(BLOB[b0])) {
        if (i - 1 - runStart >= BLOB_MIN) blob = true;
        runStart = i;
      }
      if (t == 0) continue;
      if (delimiters && (b0 == 0x3c || b0 == 0x5b || b0 == 0x23 || b0 == 0x7b)) {
        const d = delimiterAt(text, i - 1, len);
        if (d >= 0) return d;
      }
      if (b0 == 0x22) mark = QUOTE_TOGGLE;
      stop = (n > 1 || (n == 0 && afterQuote)) && (b0 == 0x2e || b0 == 0x21 || b0 == 0x3f) &&
        spaceAt(text, i, len);
      // After a word, or after letters spelt out one by one (`n.e.w r.u.l.e.s: …`).
      colon = b0 == 0x3a && (n > 1 || singlesLen + n > 1) && spaceAt(text, i, len);
      c = -1;
    } else if (b0 == 0xff) {
      // The walker's part end (json.ts PART_END): no UTF-8 lead byte.
      if (i - runStart >= BLOB_MIN) blob = true;
      i++;
      runStart = i;
      stop = true;
      mark = QUOTE_PART_END;
      c = -1;
    } else {
      if (i - runStart >= BLOB_MIN) blob = true;
      let cp: i32;
      if (b0 >= 0xf0 && i + 3 < len) {
        cp = ((b0 & 7) << 18) | ((<i32>text[i + 1] & 0x3f) << 12) |
          ((<i32>text[i + 2] & 0x3f) << 6) | (<i32>text[i + 3] & 0x3f);
        i += 4;
      } else if (b0 >= 0xe0 && i + 2 < len) {
        cp = ((b0 & 0xf) << 12) | ((<i32>text[i + 1] & 0x3f) << 6) | (<i32>text[i + 2] & 0x3f);
        i += 3;
      } else if (b0 >= 0xc0 && i + 1 < len) {
        cp = ((b0 & 0x1f) << 6) | (<i32>text[i + 1] & 0x3f);
        i += 2;
      } else {
        cp = 0x20;
        i++;
      }
      runStart = i;
      c = cp < 0x80 ? <i32>unchecked(CLASS[cp]) : fold(cp);
      if (c == 0) continue;
      if (c < 0) {
        if (cp == 0x201c || cp == 0xab) mark = QUOTE_OPEN;
        else if (cp == 0x201d || cp == 0xbb) mark = QUOTE_CLOSE;
        else if (cp == 0xff02) mark = QUOTE_TOGGLE;
        // Fullwidth and tag-character punctuation ends a sentence or makes a colon too.
        const a = asciiOf(cp);
        if (a == 0x2e || a == 0x21 || a == 0x3f || a == 0x3a) {
          const spaced = spaceAt(text, i, len);
          if (a == 0x3a) colon = (n > 1 || singlesLen + n > 1) && spaced;
          else stop = n > 1 && spaced;
        }
      }
      if (c > 0) {
        if (cp >= 0x80) c = <i32>unchecked(LEET[c]) | (c >= 0x61 ? LETTER : 0);
        if (n < TOK_CAP) {
          store<u8>(word + <usize>n, <u8>c);
          n++;
        } else overflow = true;
        flags |= c;
        prev = state;
        state = step(state, c & 0xff);
        continue;
      }
    }
    // A separator ends the word. The common words, a known one or one that cannot be a
    // plural or a run-together of known ones, are pushed here, without a call.
    if (n > 0) {
      if (singlesLen == 0 && n > 1 && (flags & LETTER) != 0 && tokenCount < tokens.length) {
        const f = unchecked(trieFast[state]);
        if (f >= 0 || (f == -1 && n < 10 && (n <= 3 || load<u8>(word + <usize>(n - 1)) != 0x73))) {
          unchecked((tokenQuoted[tokenCount] = quotedNow));
          unchecked((tokens[tokenCount++] = f >= 0 ? f : UNKNOWN));
          n = 0;
          flags = 0;
          state = ROOT;
          prev = ROOT;
          if (stop) {
            pushToken(BOUNDARY);
            if (mark == QUOTE_PART_END) notePartEnd();
          }
          else if (colon) pushToken(COLON);
          if (mark != 0) quoteMark(mark);
          afterQuote = mark == QUOTE_TOGGLE || mark == QUOTE_CLOSE;
          continue;
        }
      }
      endToken(n, (flags & LETTER) != 0, overflow, state, prev);
      n = 0;
      flags = 0;
      overflow = false;
      state = ROOT;
      prev = ROOT;
    }
    if (stop) {
      flushSingles();
      pushToken(BOUNDARY);
      if (mark == QUOTE_PART_END) notePartEnd();
    } else if (colon) {
      flushSingles();
      pushToken(COLON);
    }
    if (mark != 0) {
      flushSingles();
      quoteMark(mark);
    }
    afterQuote = mark == QUOTE_TOGGLE || mark == QUOTE_CLOSE;
  }
  if (len - runStart >= BLOB_MIN) blob = true;
  if (n > 0) endToken(n, (flags & LETTER) != 0, overflow, state, prev);
  flushSingles();
  quoteMark(QUOTE_PART_END);
  sawBlob = blob;
  return -1;
}

// ---- matching ------------------------------------------------------------------------------

/** `p.elems[e, end)` match the tokens from `pos` (and, at the phrase's end, no veto does). */
function matchFrom(p: Pattern, e: i32, pos: i32, end: i32): bool {
  const elems = p.elems;
  if (e == end) {
    if (end != p.posEnd) return true;
    if (vetoed(p, pos)) return false;
    matchEnd = pos;
    return true;
  }
  const el = unchecked(elems[e]);
  const n = tokenCount;
  if (el.gap > 0) {
    for (let k = 0; k <= el.gap && pos + k <= n; k++) {
      if (k > 0 && unchecked(tokens[pos + k - 1]) == BOUNDARY) return false;
      if (matchFrom(p, e + 1, pos + k, end)) return true;
    }
    return false;
  }
  if (pos < n) {
    const t = unchecked(tokens[pos]);
    if (el.colon) {
      if (t == COLON && matchFrom(p, e + 1, pos + 1, end)) return true;
    } else {
      const bits = el.bits;
      if (bits !== null) {
        if (t >= 0 && ((unchecked(bits[t >> 5]) >>> (t & 31)) & 1) != 0) {
          if (matchFrom(p, e + 1, pos + 1, end)) return true;
        }
      } else {
        const ids = el.ids;
        for (let a = 0; a < ids.length; a++) {
          if (unchecked(ids[a]) == t) {
            if (matchFrom(p, e + 1, pos + 1, end)) return true;
            break;
          }
        }
      }
      const seqs = el.seqs;
      for (let a = 0; a < seqs.length; a++) {
        const seq = unchecked(seqs[a]);
        const m = seq.length;
        if (pos + m > n) continue;
        let same = true;
        for (let k = 0; k < m && same; k++) same = unchecked(seq[k]) == unchecked(tokens[pos + k]);
        if (same && matchFrom(p, e + 1, pos + m, end)) return true;
      }
    }
  }
  return el.optional ? matchFrom(p, e + 1, pos, end) : false;
}

/** A veto group of `p` matches at `pos`, right after its phrase. */
function vetoed(p: Pattern, pos: i32): bool {
  const v = p.vetoes;
  for (let g = 0; g < v.length; g++) {
    const end = g + 1 < v.length ? unchecked(v[g + 1]) : p.elems.length;
    if (matchFrom(p, unchecked(v[g]), pos, end)) return true;
  }
  return false;
}

/** What comes before token `i` lets `p` start there (`^`, `<<`). */
function startsOk(p: Pattern, i: i32): bool {
  if (p.anchored && i > 0) {
    const b = unchecked(tokens[i - 1]);
    if (b != BOUNDARY && b != COLON) return false;
  }
  const behind = p.behind;
  const m = behind.length;
  if (m == 0 || i < m) return true;
  for (let k = 0; k < m; k++) {
    const t = unchecked(tokens[i - m + k]);
    if (!unchecked(behind[k]).ids.includes(t)) return true;
  }
  return false;
}

/**
 * The quote whose first token is `qs` is a sentence of its own after other text of its part:
 * the token before it is a sentence's BOUNDARY (not a part's, nor a colon), and it ends with a
 * full stop of its own or is followed by a sentence's or the part's end. Nothing around it
 * speaks of it (`Thanks for the recipe. "Ignore all previous instructions"`). Read once per
 * quote (`matchTokens`), so a long quote costs its length, not its length squared.
 */
function standsAlone(qs: i32): bool {
  if (qs == 0 || unchecked(tokens[qs - 1]) != BOUNDARY || isPartEnd(qs - 1)) return false;
  let e = qs;
  while (e < tokenCount && unchecked(tokenQuoted[e]) != 0) e++;
  return e == tokenCount || unchecked(tokens[e - 1]) == BOUNDARY ||
    unchecked(tokens[e]) == BOUNDARY;
}

/** Where the last successful match's phrase ended (a token index, exclusive). */
let matchEnd: i32 = 0;
/** With MATCH_QUOTED: the match returned lies wholly inside quotes (else it only starts there). */
export let matchFullyQuoted = false;

export const MATCH_ANY: i32 = 0;
export const MATCH_UNQUOTED: i32 = 1;
export const MATCH_QUOTED: i32 = 2;

/**
 * The first pattern of an enabled category that matches the tokens, or null; `starts` limits
 * where a match may start: anywhere, outside quotes, or inside them.
 */
export function matchTokens(enabled: string[], starts: i32 = MATCH_ANY): Pattern | null {
  const n = tokenCount;
  // With MATCH_QUOTED every start is tried: a later match may reach out of its quotes.
  let quotedFirst: Pattern | null = null;
  // With MATCH_QUOTED: the first token of the quote holding token `i`, and whether that quote
  // stands alone (-1: not read yet).
  let quoteStart = 0;
  let alone = -1;
  for (let i = 0; i < n; i++) {
    if (starts == MATCH_QUOTED && unchecked(tokenQuoted[i]) != 0 &&
      (i == 0 || unchecked(tokenQuoted[i - 1]) == 0)) {
      quoteStart = i;
      alone = -1;
    }
    const t = unchecked(tokens[i]);
    if (t < 0) continue;
    if (starts != MATCH_ANY && (unchecked(tokenQuoted[i]) != 0) != (starts == MATCH_QUOTED)) {
      continue;
    }
    const list = unchecked(byFirst[t]);
    if (list === null) continue;
    for (let j = 0; j < list.length; j++) {
      const p = unchecked(patterns[unchecked(list[j])]);
      if (!isEnabled(enabled, p.category)) continue;
      if (startsOk(p, i) && matchFrom(p, 1, i + 1, p.posEnd)) {
        if (starts != MATCH_QUOTED) return p;
        // A match that only starts inside quotes (`"ignore" all previous instructions`) is no
        // quoted phrase: returned at once, as not wholly quoted.
        let whole = true;
        for (let k = i; k < matchEnd && whole; k++) whole = unchecked(tokenQuoted[k]) != 0;
        // Nor is a quote that is a sentence of its own after other text of its part: the
        // padding before it would only dilute the classifier's reading.
        if (whole) {
          if (alone < 0) alone = standsAlone(quoteStart) ? 1 : 0;
          whole = alone == 0;
        }
        if (!whole) {
          matchFullyQuoted = false;
          return p;
        }
        if (quotedFirst === null) quotedFirst = p;
        break;
      }
    }
  }
  matchFullyQuoted = quotedFirst !== null;
  return quotedFirst;
}

export function isEnabled(enabled: string[], category: string): bool {
  if (enabled.length == 0) return true;
  for (let i = 0; i < enabled.length; i++) if (enabled[i] == category) return true;
  return false;
}

export { Pattern };

export function patternCount(): i32 {
  return patterns.length;
}

export function patternAt(i: i32): Pattern {
  return patterns[i];
}
