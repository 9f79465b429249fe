/**
 * Test helpers for byte streams: re-chunk a fixture at awkward offsets so stream stages
 * see split lines, split `\r\n` and split multi-byte UTF-8 sequences.
 * @module
 */

/** The chunk sizes every streaming test runs at (STYLE.md §7). */
export const CHUNK_SIZES: readonly number[] = [1, 7, 64];

/** Split `bytes` into consecutive slices of `n` bytes (the last one may be shorter). */
export function rechunk(bytes: Uint8Array, n: number): Uint8Array[] {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`Chunk size must be >= 1, got ${n}`);
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += n) out.push(bytes.slice(i, i + n));
  return out;
}

/** A byte stream that yields `chunks` one by one. */
export function streamOf(chunks: readonly Uint8Array[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks);
}

/** Concatenate chunks into one buffer. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** UTF-8 text `bytes` with every `\n` turned into `\r\n`. */
export function crlf(bytes: Uint8Array): Uint8Array {
  const text = new TextDecoder().decode(bytes).replaceAll("\n", "\r\n");
  return new TextEncoder().encode(text);
}

/** UTF-8 text `bytes` with every `\r\n` turned into `\n`. */
export function lf(bytes: Uint8Array): Uint8Array {
  const text = new TextDecoder().decode(bytes).replaceAll("\r\n", "\n");
  return new TextEncoder().encode(text);
}

/** A response body as text, decoding bytes as UTF-8. */
export function bodyText(body: string | Uint8Array): string {
  return typeof body === "string" ? body : new TextDecoder().decode(body);
}
