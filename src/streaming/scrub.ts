/**
 * The gateway's own credentials taken out of bytes relayed to a client. An upstream may
 * echo the key it was sent (OpenAI's "Incorrect API key provided: sk-…"), and in a stream
 * that echo comes as an event inside a 200 answer, relayed as bytes: the error mappers'
 * redactor never sees it. Each configured secret is replaced by `[REDACTED]` wherever it
 * occurs, also across chunk boundaries: the bytes at a chunk's end that could begin a
 * secret are held until the next chunk tells (an SSE chunk ends with a newline, which no
 * key holds, so in practice nothing waits).
 * @module
 */
import type { SyncTransformer } from "./pull.ts";

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
}

/** A scrub of `secrets` (the configured keys); null when there is none to look for. */
export function createSecretScrub(secrets: Iterable<string>): SecretScrub | null {
  const encoder = new TextEncoder();
  const list = [...new Set(secrets)]
    .map((s) => encoder.encode(s))
    .filter((s) => s.length >= MIN_SECRET_BYTES)
    .sort((a, b) => b.length - a.length);
  if (list.length === 0) return null;
  // Bytes a secret has before its last: only a chunk ending in one may end mid-secret.
  const inPrefix = new Uint8Array(256);
  for (const s of list) for (let i = 0; i < s.length - 1; i++) inPrefix[s[i] as number] = 1;

  /** Where secrets occur in `data`, in order, none overlapping. */
  const find = (data: Uint8Array): [number, number][] => {
    const found: [number, number][] = [];
    for (const s of list) {
      const first = s[0] as number;
      let i = data.indexOf(first);
      while (i !== -1 && i <= data.length - s.length) {
        let j = 1;
        while (j < s.length && data[i + j] === s[j]) j++;
        if (j === s.length) {
          found.push([i, s.length]);
          i = data.indexOf(first, i + s.length);
        } else i = data.indexOf(first, i + 1);
      }
    }
    if (found.length < 2) return found;
    found.sort((a, b) => a[0] - b[0]);
    const kept: [number, number][] = [];
    let end = 0;
    for (const m of found) {
      if (m[0] >= end) {
        kept.push(m);
        end = m[0] + m[1];
      }
    }
    return kept;
  };

  /** How many bytes at the end of `data` (after `from`) could begin a secret. */
  const openTail = (data: Uint8Array, from: number): number => {
    const n = data.length;
    if (n === from || inPrefix[data[n - 1] as number] === 0) return 0;
    let best = 0;
    for (const s of list) {
      for (let k = Math.min(s.length - 1, n - from); k > best; k--) {
        let j = 0;
        while (j < k && data[n - k + j] === s[j]) j++;
        if (j === k) {
          best = k;
          break;
        }
      }
    }
    return best;
  };

  const transformer = <O>(inner: SyncTransformer<Uint8Array, O> | null) => {
    let held: Uint8Array | null = null;
    const pass = (bytes: Uint8Array, enqueue: (out: O) => void) => {
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
        const found = find(data);
        const last = found.at(-1);
        const tail = openTail(data, last === undefined ? 0 : last[0] + last[1]);
        if (found.length === 0 && tail === 0) return pass(data, enqueue);
        const end = data.length - tail;
        if (tail > 0) held = data.slice(end);
        if (found.length === 0) {
          if (end > 0) pass(data.subarray(0, end), enqueue);
          return;
        }
        let size = end;
        for (const [, len] of found) size += REDACTED.length - len;
        const out = new Uint8Array(size);
        let at = 0;
        let from = 0;
        for (const [start, len] of found) {
          out.set(data.subarray(from, start), at);
          at += start - from;
          out.set(REDACTED, at);
          at += REDACTED.length;
          from = start + len;
        }
        out.set(data.subarray(from, end), at);
        pass(out, enqueue);
      },
      flush(enqueue) {
        if (held !== null) {
          const rest = held;
          held = null;
          pass(rest, enqueue);
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
  };
}

/** `t` fed through `scrub` when there is one. */
export function scrubbed<O>(
  scrub: SecretScrub | null | undefined,
  t: SyncTransformer<Uint8Array, O>,
): SyncTransformer<Uint8Array, O> {
  return scrub ? scrub.wrap(t) : t;
}
