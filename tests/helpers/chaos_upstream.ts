/**
 * An OpenAI-compatible upstream that misbehaves on purpose, on a raw TCP listener so it can do
 * what `Deno.serve` cannot: drop the connection before the status line, cut a chunked stream
 * without its terminator, go silent before or during a body, or drip a body byte by byte.
 *
 * The behaviour is picked by the `model` the gateway forwards (`chaos/reset_before_headers`
 * arrives as `reset_before_headers`), or forced for every request by `storm(status)`.
 * Every answer that carries usage gives it a unique `prompt_tokens` (a serial number), and
 * the upstream records the serial once the last byte of that answer was written: the usage the
 * gateway logs must be exactly this set, nothing lost and nothing twice.
 * @module
 */

export const CHAOS_BEHAVIOURS = [
  "ok",
  "ok_stream",
  "reset_before_headers",
  "reset_mid_stream",
  "stall_first_byte",
  "stall_mid_stream",
  "status_500",
  "drip",
  "drip_stream",
] as const;
export type ChaosBehaviour = typeof CHAOS_BEHAVIOURS[number];

/** The completion tokens every answer reports (prompt_tokens carries the serial). */
export const CHAOS_COMPLETION_TOKENS = 3;

export interface ChaosUpstream {
  /** `http://127.0.0.1:<port>/v1`, an OpenAI-compatible `base_url`. */
  readonly url: string;
  /** Serials (prompt_tokens) of the answers with usage whose last byte went out. */
  readonly delivered: number[];
  /** Requests received, by the behaviour they were given. */
  readonly received: Map<string, number>;
  /** Resolves once `count` requests were received in all. */
  arrived(count: number): Promise<void>;
  /** Answer every request with this 5xx status (a storm) until `storm(null)`. */
  storm(status: number | null): void;
  /** Connections currently open (stalled ones included). */
  openConnections(): number;
  close(): Promise<void>;
}

export interface ChaosUpstreamOptions {
  /** Pause between the bytes of a dripped body. */
  readonly dripMs?: number;
  /** How long a stall holds the connection at most (the gateway should give up first). */
  readonly stallMs?: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function startChaosUpstream(opts: ChaosUpstreamOptions = {}): ChaosUpstream {
  const dripMs = opts.dripMs ?? 20;
  const stallMs = opts.stallMs ?? 60_000;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const delivered: number[] = [];
  const received = new Map<string, number>();
  let serial = 1000;
  let stormStatus: number | null = null;
  let closing = false;
  let arrivals = 0;
  const arrivalWaiters = new Set<{ count: number; resolve: () => void }>();

  // Resolves after `ms`, or at once when the upstream closes (so close() never waits on it).
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      if (closing) return resolve();
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  const handle = async (conn: Deno.Conn) => {
    conns.add(conn);
    try {
      const req = await readRequest(conn);
      if (!req) return;
      let model = "ok";
      let stream = false;
      try {
        const body = JSON.parse(req.body) as { model?: unknown; stream?: unknown };
        if (typeof body.model === "string") model = body.model;
        stream = body.stream === true;
      } catch { /* not JSON: answer as "ok" */ }
      const behaviour = stormStatus !== null ? `storm_${stormStatus}` : model;
      received.set(behaviour, (received.get(behaviour) ?? 0) + 1);
      arrivals++;
      for (const w of arrivalWaiters) {
        if (arrivals >= w.count) {
          arrivalWaiters.delete(w);
          w.resolve();
        }
      }
      const write = (text: string | Uint8Array) =>
        writeAll(conn, typeof text === "string" ? enc.encode(text) : text);

      if (stormStatus !== null) {
        await write(jsonResponse(stormStatus, errorBody(stormStatus)));
        return;
      }
      switch (behaviour as ChaosBehaviour) {
        case "reset_before_headers":
          return; // the finally closes the connection without a byte written
        case "stall_first_byte":
          await untilClosed(conn, stallMs, pause);
          return;
        case "status_500":
          await write(jsonResponse(500, errorBody(500)));
          return;
        case "drip": {
          const id = ++serial;
          const bytes = enc.encode(jsonResponse(200, completion(id)));
          for (let i = 0; i < bytes.length; i += 16) {
            await write(bytes.subarray(i, i + 16));
            await pause(dripMs);
          }
          delivered.push(id);
          return;
        }
        case "ok_stream":
        case "drip_stream":
        case "reset_mid_stream":
        case "stall_mid_stream": {
          const id = ++serial;
          await write(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n" +
              "transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
          );
          const events = sseEvents(id, behaviour === "drip_stream" ? 12 : 4);
          for (const [i, event] of events.entries()) {
            // Cut or go silent after the first content chunk: the stream is committed.
            if (i === 2 && behaviour === "reset_mid_stream") return;
            if (i === 2 && behaviour === "stall_mid_stream") {
              await untilClosed(conn, stallMs, pause);
              return;
            }
            await write(chunked(event));
            if (behaviour === "drip_stream") await pause(dripMs);
          }
          await write("0\r\n\r\n");
          delivered.push(id);
          return;
        }
        default: {
          const id = ++serial;
          if (stream) {
            // A streaming request for the plain "ok" behaviour: same as ok_stream, undripped.
            await write(
              "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n" +
                "transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
            );
            for (const event of sseEvents(id, 4)) await write(chunked(event));
            await write("0\r\n\r\n");
          } else {
            await write(jsonResponse(200, completion(id)));
          }
          delivered.push(id);
        }
      }
    } catch {
      // The gateway went away mid-answer: that answer was not delivered, which is the point.
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  };

  const accepting = (async () => {
    for await (const conn of listener) void handle(conn);
  })().catch(() => {/* listener closed */});

  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/v1`,
    delivered,
    received,
    arrived(count) {
      if (arrivals >= count) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      arrivalWaiters.add({ count, resolve });
      return promise;
    },
    storm(status) {
      stormStatus = status;
    },
    openConnections: () => conns.size,
    async close() {
      closing = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await accepting;
    },
  };
}

interface RawRequest {
  readonly head: string;
  readonly body: string;
}

/** Read one HTTP/1.1 request (Content-Length or chunked body); null if the peer left first. */
async function readRequest(conn: Deno.Conn): Promise<RawRequest | null> {
  let buf = new Uint8Array(0);
  const more = async (): Promise<boolean> => {
    const chunk = new Uint8Array(16 * 1024);
    const n = await conn.read(chunk);
    if (n === null) return false;
    const next = new Uint8Array(buf.length + n);
    next.set(buf);
    next.set(chunk.subarray(0, n), buf.length);
    buf = next;
    return true;
  };
  let headEnd = -1;
  while ((headEnd = indexOf(buf, "\r\n\r\n")) < 0) if (!(await more())) return null;
  const head = dec.decode(buf.subarray(0, headEnd));
  let rest = buf.subarray(headEnd + 4);
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (length) {
    const want = Number(length[1]);
    buf = rest;
    while (buf.length < want) if (!(await more())) return null;
    return { head, body: dec.decode(buf.subarray(0, want)) };
  }
  if (!/\r\ntransfer-encoding:\s*chunked/i.test(head)) return { head, body: "" };
  // Chunked: collect chunks until the zero-size one and its trailing CRLF.
  const parts: Uint8Array[] = [];
  buf = rest;
  for (;;) {
    let lineEnd: number;
    while ((lineEnd = indexOf(buf, "\r\n")) < 0) if (!(await more())) return null;
    const size = parseInt(dec.decode(buf.subarray(0, lineEnd)), 16);
    if (!Number.isFinite(size)) return null;
    while (buf.length < lineEnd + 2 + size + 2) if (!(await more())) return null;
    if (size === 0) break;
    parts.push(buf.slice(lineEnd + 2, lineEnd + 2 + size));
    rest = buf.subarray(lineEnd + 2 + size + 2);
    buf = rest;
  }
  const total = parts.reduce((n, p) => n + p.length, 0);
  const body = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    body.set(p, at);
    at += p.length;
  }
  return { head, body: dec.decode(body) };
}

function indexOf(buf: Uint8Array, needle: string): number {
  const n = enc.encode(needle);
  outer: for (let i = 0; i + n.length <= buf.length; i++) {
    for (let j = 0; j < n.length; j++) if (buf[i + j] !== n[j]) continue outer;
    return i;
  }
  return -1;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** Hold the connection until the peer closes it, or `maxMs`/the upstream's close. */
async function untilClosed(
  conn: Deno.Conn,
  maxMs: number,
  pause: (ms: number) => Promise<void>,
): Promise<void> {
  const sink = new Uint8Array(1024);
  const peerGone = (async () => {
    try {
      while ((await conn.read(sink)) !== null) { /* discard */ }
    } catch { /* closed under us */ }
  })();
  await Promise.race([peerGone, pause(maxMs)]);
}

function jsonResponse(status: number, body: unknown): string {
  const text = JSON.stringify(body);
  return `HTTP/1.1 ${status} ${status === 200 ? "OK" : "Error"}\r\n` +
    `content-type: application/json\r\ncontent-length: ${enc.encode(text).length}\r\n` +
    `connection: close\r\n\r\n${text}`;
}

function chunked(text: string): string {
  return `${enc.encode(text).length.toString(16)}\r\n${text}\r\n`;
}

function errorBody(status: number) {
  return { error: { message: `chaos upstream ${status}`, type: "server_error", code: null } };
}

function completion(id: number) {
  return {
    id: `chatcmpl-chaos-${id}`,
    object: "chat.completion",
    created: 1_700_000_000,
    model: "chaos",
    choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
    usage: {
      prompt_tokens: id,
      completion_tokens: CHAOS_COMPLETION_TOKENS,
      total_tokens: id + CHAOS_COMPLETION_TOKENS,
    },
  };
}

/** Role chunk, `contentChunks` content chunks, finish, usage, [DONE]: each one SSE event. */
function sseEvents(id: number, contentChunks: number): string[] {
  const base = {
    id: `chatcmpl-chaos-${id}`,
    object: "chat.completion.chunk",
    created: 1,
    model: "chaos",
  };
  const ev = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
  const out = [
    ev({
      ...base,
      choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }],
    }),
  ];
  for (let i = 0; i < contentChunks; i++) {
    out.push(
      ev({ ...base, choices: [{ index: 0, delta: { content: `w${i} ` }, finish_reason: null }] }),
    );
  }
  out.push(ev({ ...base, choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }));
  out.push(ev({
    ...base,
    choices: [],
    usage: {
      prompt_tokens: id,
      completion_tokens: CHAOS_COMPLETION_TOKENS,
      total_tokens: id + CHAOS_COMPLETION_TOKENS,
    },
  }));
  out.push("data: [DONE]\n\n");
  return out;
}

/**
 * V8 flags for a daemon whose RSS a test judges: the old generation is kept close to what is
 * live. With V8's default growth factor the heap saws by tens of MB over a minute or more (a
 * collection frees it all), and a reading taken on a rising edge says nothing about what
 * was retained.
 */
export const LEAK_CHECK_V8_FLAGS = "--heap-growing-percent=20";
