/**
 * Raw HTTP/1.1 over a TCP socket, for what `fetch` refuses to send: CR/LF inside header
 * values, oversized heads, absolute- and asterisk-form targets, bytes dribbled slowly.
 * @module
 */

export interface RawAnswer {
  /** The status line's code, or null when the server sent none. */
  readonly status: number | null;
  /** The server closed the connection (after an answer or instead of one). */
  readonly closed: boolean;
  /** Neither an answer nor a close within the deadline. */
  readonly timedOut: boolean;
  readonly head: string;
  readonly ms: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * Connect, run `send` (which may write in pieces and pause), then read until a full response
 * head arrived, the server closed, or `deadlineMs` (from the connect) passed. A send that
 * fails because the server already closed counts as closed, not as an error.
 */
export async function exchange(
  port: number,
  send: (write: (data: string | Uint8Array) => Promise<void>) => Promise<void>,
  deadlineMs: number,
): Promise<RawAnswer> {
  const started = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<"expired">((resolve) => {
    timer = setTimeout(() => resolve("expired"), deadlineMs);
  });
  let head = "";
  let closed = false;
  const reading = (async () => {
    const buf = new Uint8Array(16 * 1024);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) {
          closed = true;
          return;
        }
        head += dec.decode(buf.subarray(0, n), { stream: true });
        if (head.includes("\r\n\r\n")) return;
      }
    } catch {
      closed = true; // reset by the server
    }
  })();
  const sending = send(async (data) => {
    if (closed) return;
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    let off = 0;
    while (off < bytes.length) off += await conn.write(bytes.subarray(off));
  }).catch(() => {
    closed = true; // the server hung up while we were still writing
  });
  const outcome = await Promise.race([reading.then(() => "read" as const), expired]);
  clearTimeout(timer);
  try {
    conn.close();
  } catch { /* already closed */ }
  await Promise.allSettled([reading, sending]);
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
  return {
    status: m ? Number(m[1]) : null,
    closed,
    timedOut: outcome === "expired",
    head: head.slice(0, 300),
    ms: Math.round(performance.now() - started),
  };
}

/** Send `text` in one write. */
export const whole =
  (text: string | Uint8Array) => async (w: (d: string | Uint8Array) => Promise<void>) => {
    await w(text);
  };
