/**
 * The gateway's own credentials taken out of bytes relayed to a client. An upstream may
 * echo the key it was sent (OpenAI's "Incorrect API key provided: sk-..."), and in a stream
 * that echo comes as an event inside a 200 answer, relayed as bytes: the error mappers'
 * redactor never sees it. Each configured secret is replaced by `[REDACTED]` wherever it
 * occurs, also across chunk boundaries: the bytes at a chunk's end that could begin a
 * secret are held until the next chunk tells (an SSE chunk ends with a newline, which no
 * key holds, so in practice nothing waits).
 * @module
 */
import { pullThrough, type SyncTransformer } from "./pull.ts";

const REDACTED = new TextEncoder().encode("[REDACTED]");

/**
 * Secrets shorter than this are not looked for in relayed bytes: they would match ordinary
 * text of an answer, and no provider issues keys this short.
 */
const MIN_SECRET_BYTES = 8;

export interface SecretScrub {
  /** `inner` fed scrubbed chunks: one transformer, no stream in between. */
  wrap<O>(inner: SyncTransformer<Uint8Array, O>): SyncTransformer<Uint8Array, O>;
  /** Scrubbing alone. */
  transformer(): SyncTransformer<Uint8Array, Uint8Array>;
  /** A whole body (a JSON answer): `data` itself when it holds no secret. */
  whole(data: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer>;
}

/** A scrub of `secrets` (the configured keys); null when there is none to look for. */
export function createSecretScrub(secrets: Iterable<string>): SecretScrub | null {
  const encoder = new TextEncoder();
  const list = [...new Set(secrets)]
    .map((s) => encoder.encode(s))
    .filter((s) => s.length >= MIN_SECRET_BYTES);
  if (list.length === 0) return null;
  /**
   * By byte value: the secrets, and lengths k, whose first k bytes end in that byte. A
   * chunk can end inside a secret only where its last byte is one of these (for SSE, a
   * newline: none), and only those k need comparing.
   */
  const endings: [Uint8Array, number][][] = Array.from({ length: 256 }, () => []);
  for (const s of list) {
    for (let k = 1; k < s.length; k++) endings[s[k - 1] as number]!.push([s, k]);
  }

  /** Where secrets occur in `data`: merged ranges [start, end), in order. */
  const find = (data: Uint8Array): [number, number][] => {
    const found: [number, number][] = [];
    for (const s of list) {
      const first = s[0] as number;
      for (let i = data.indexOf(first); i !== -1 && i <= data.length - s.length;) {
        let j = 1;
        while (j < s.length && data[i + j] === s[j]) j++;
        if (j === s.length) found.push([i, i + s.length]);
        i = data.indexOf(first, i + 1);
      }
    }
    if (found.length < 2) return found;
    // Overlapping or nested secrets are one range: none of either is left showing.
    found.sort((a, b) => a[0] - b[0]);
    const merged: [number, number][] = [found[0] as [number, number]];
    for (let i = 1; i < found.length; i++) {
      const m = found[i] as [number, number];
      const last = merged[merged.length - 1] as [number, number];
      if (m[0] < last[1]) last[1] = Math.max(last[1], m[1]);
      else merged.push(m);
    }
    return merged;
  };

  /** The longest end of `data` that begins a secret (its next bytes would tell). */
  const openTail = (data: Uint8Array): number => {
    const n = data.length;
    if (n === 0) return 0;
    let best = 0;
    for (const [s, k] of endings[data[n - 1] as number]!) {
      if (k <= best || k > n) continue;
      let j = 0;
      while (j < k - 1 && data[n - k + j] === s[j]) j++;
      if (j === k - 1) best = k;
    }
    return best;
  };

  /** `data[0, end)` with the ranges inside it replaced. */
  const replaced = <B extends ArrayBufferLike>(
    data: Uint8Array<B>,
    ranges: [number, number][],
    end: number,
  ): Uint8Array<B | ArrayBuffer> => {
    if (ranges.length === 0) return end === data.length ? data : data.subarray(0, end);
    let size = end;
    for (const [a, b] of ranges) size += REDACTED.length - (b - a);
    const out = new Uint8Array(size);
    let at = 0;
    let from = 0;
    for (const [a, b] of ranges) {
      out.set(data.subarray(from, a), at);
      at += a - from;
      out.set(REDACTED, at);
      at += REDACTED.length;
      from = b;
    }
    out.set(data.subarray(from, end), at);
    return out;
  };

  const transformer = <O>(inner: SyncTransformer<Uint8Array, O> | null) => {
    let held: Uint8Array | null = null;
    const pass = (bytes: Uint8Array, enqueue: (out: O) => void) => {
      if (bytes.length === 0) return;
      if (inner === null) enqueue(bytes as O);
      else inner.transform(bytes, enqueue);
    };
    const t: SyncTransformer<Uint8Array, O> = {
      transform(chunk, enqueue) {
        let data = chunk;
        if (held !== null) {
          data = new Uint8Array(held.length + chunk.length);
          data.set(held);
          data.set(chunk, held.length);
          held = null;
        }
        const ranges = find(data);
        // Held back: an end that may begin a secret, and a found one reaching into it (a
        // longer secret may still continue it).
        let cut = data.length - openTail(data);
        let kept = ranges.length;
        while (kept > 0 && (ranges[kept - 1] as [number, number])[1] > cut) {
          cut = Math.min(cut, (ranges[kept - 1] as [number, number])[0]);
          kept--;
        }
        if (cut < data.length) held = data.slice(cut);
        pass(replaced(data, kept === ranges.length ? ranges : ranges.slice(0, kept), cut), enqueue);
      },
      flush(enqueue) {
        if (held !== null) {
          // Nothing follows: what was held is final.
          const rest = held;
          held = null;
          pass(replaced(rest, find(rest), rest.length), enqueue);
        }
        inner?.flush?.(enqueue);
      },
      cancel(reason) {
        held = null;
        inner?.cancel?.(reason);
      },
    };
    return t;
  };

  return {
    wrap: (inner) => transformer(inner),
    transformer: () => transformer<Uint8Array>(null),
    whole: (data) => replaced(data, find(data), data.length),
  };
}

/** `t` fed through `scrub` when there is one. */
export function scrubbed<O>(
  scrub: SecretScrub | null | undefined,
  t: SyncTransformer<Uint8Array, O>,
): SyncTransformer<Uint8Array, O> {
  return scrub ? scrub.wrap(t) : t;
}

/**
 * An upstream's bytes with the configured secrets taken out before a translator reads them
 * (a key echoed in a streamed answer's text or tool arguments); as they are without a scrub.
 */
export function scrubStream(
  scrub: SecretScrub | null | undefined,
  bytes: ReadableStream<Uint8Array>,
): ReadableStream<Uint8Array> {
  return scrub ? pullThrough(bytes, scrub.transformer()) : bytes;
}
