/**
 * Upstream calls over HTTP/1.1 on `Deno.connect` / `Deno.connectTls`, behind `fetch`'s
 * signature. Deno's `fetch` costs 51-53 us of CPU per proxied request at 64 connections and
 * 258-272 us at 1,000 req/s on the bench machine; this client 29-35 and 118-192 (over TLS
 * 25-41 and 204-280 against 62-128 and 318-378): most of Pilotfish's gap to a bare proxy.
 * No library does better here (undici on node:net measured as `fetch` does).
 *
 * It takes only what it fully handles: an http(s) URL, a string or bytes body, headers it
 * can send as ASCII, `redirect: "manual"`, no proxy in the environment. Anything else (a
 * streamed upload, a `client`, a forbidden or non-ASCII header, redirects to follow) goes to
 * `fallback` (the real `fetch`). Answers: Content-Length, chunked or close-delimited bodies,
 * read directly by the relay (`readDirectly`) or as a byte stream; 1xx skipped,
 * no body for HEAD, 204, 205 and 304; gzip/deflate decoded as `fetch` decodes them. A
 * connection goes back to the pool only after a complete answer on a keep-alive exchange,
 * and an idle one keeps a read outstanding, so a server's close is seen before reuse.
 * @module
 */

import { type ChunkReader, DONE, readDirectly } from "../streaming/reader.ts";

const enc = new TextEncoder();
const EMPTY = new Uint8Array(0);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// deno-lint-ignore no-control-regex
const BAD_VALUE = /[\0\r\n]|[^\x00-\x7f]/;
/** Headers the client owns, or that change how a request must be sent: those go to fetch. */
const OWN = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "expect",
  "proxy-connection",
  "proxy-authorization",
]);
const METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]);
const MAX_HEAD = 64 * 1024;
const MAX_LINE = 8 * 1024;
/** A connection's first buffer: an SSE event or a JSON answer fits; it doubles for more. */
const READ_BYTES = 4 * 1024;
const IDLE_MS = 60_000;
const MAX_IDLE = 256;

/** A refused or broken exchange, shaped as fetch's (TypeError with the cause). */
function failed(message: string, cause?: unknown): TypeError {
  return new TypeError(`fetch failed: ${message}`, cause === undefined ? undefined : { cause });
}

/**
 * The shortest idle time after which a server's keep-alive timeout may close a connection
 * (Node's is 5 s, uvicorn's 5 s, nginx's 75 s): a failure sooner is not that race.
 */
const IDLE_CLOSE_MS = 1_000;
/**
 * How soon after the write the close must come to be that race: the server closed before it
 * read the request, so its close arrives within a round trip. Later, the server may have read
 * the request and worked on it (a long generation), and a resend would do that work twice.
 */
const CLOSED_WITHIN_MS = 500;

class Conn {
  buf = new Uint8Array(READ_BYTES);
  /** Where requests are encoded (see `encodeRequest`). */
  wbuf = new Uint8Array(READ_BYTES);
  start = 0;
  end = 0;
  /** A read issued while idle (see `watch`): the next `fill` takes its result. */
  pending: Promise<number | null> | null = null;
  idle = false;
  idleSince = 0;
  closed = false;
  /** It answered before (it came from the pool). */
  reused = false;
  /** The current exchange's request is written. */
  sent = false;
  /** A byte of the current exchange's answer has arrived. */
  heard = false;
  /** How long it sat in the pool before this exchange took it (ms). */
  idleFor = 0;
  /** When the current exchange's request was written (performance.now()). */
  sentAt = 0;

  constructor(readonly key: string, readonly conn: Deno.Conn) {}

  /** More bytes into the buffer; false at end of stream. */
  async fill(): Promise<boolean> {
    let read = this.pending;
    this.pending = null;
    if (read === null) {
      this.#room();
      read = this.conn.read(this.buf.subarray(this.end));
    }
    const n = await read;
    if (n === null) return false;
    this.end += n;
    this.heard = true;
    return true;
  }

  /** Space after `end`: the buffer compacted, or doubled when it is full. */
  #room(): void {
    if (this.start === this.end) this.start = this.end = 0;
    else if (this.end === this.buf.length) {
      if (this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      } else {
        const bigger = new Uint8Array(this.buf.length * 2);
        bigger.set(this.buf);
        this.buf = bigger;
      }
    }
  }

  /**
   * A body not read to its end keeps a read outstanding, as hyper does: reading only when
   * the consumer pulls left streams waiting 100+ ms behind a busy loop (1,000 concurrent
   * streams), their bytes unread in the socket. The read lands after what is buffered (a
   * chunk's CRLF, the next size line), so `fill` must not move the buffer meanwhile.
   */
  prefetch(): void {
    if (this.pending !== null || this.closed) return;
    this.#room();
    const read = this.conn.read(this.buf.subarray(this.end));
    read.catch(() => {});
    this.pending = read;
  }

  /** While pooled: a read stays outstanding, so the server closing (or talking) is seen. */
  watch(onDead: () => void): void {
    // The body's outstanding read, if one is out, is the watch (it keeps its place).
    this.prefetch();
    const read = this.pending;
    if (read === null) return onDead(); // closed
    read.then(
      () => this.idle && onDead(),
      () => this.idle && onDead(),
    );
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }
}

/** The proxy variables `fetch` honours (the permission planner grants them). */
export const PROXY_ENV: readonly string[] = [
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "ALL_PROXY",
  "http_proxy",
  "https_proxy",
  "all_proxy",
];

/** What the environment asks of `fetch` that this client does not do (a proxy). */
function proxied(): boolean {
  try {
    for (const name of PROXY_ENV) if (Deno.env.get(name)) return true;
    return false;
  } catch {
    // Not allowed to read them: fetch may still use them, so it keeps every call.
    return true;
  }
}

export interface Http1Client {
  readonly fetch: typeof fetch;
  /** Close the pooled connections (tests; the daemon exits with them open). */
  close(): void;
  /** Connections pooled and idle (tests). */
  idle(): number;
}

export function createHttp1Client(
  fallback: typeof fetch = globalThis.fetch,
  /** IDLE_CLOSE_MS and CLOSED_WITHIN_MS (tests change them). */
  opts: { readonly idleCloseMs?: number; readonly closedWithinMs?: number } = {},
): Http1Client {
  const idleCloseMs = opts.idleCloseMs ?? IDLE_CLOSE_MS;
  const closedWithinMs = opts.closedWithinMs ?? CLOSED_WITHIN_MS;
  const pools = new Map<string, Conn[]>();
  let bypass: boolean | null = null;

  const drop = (c: Conn) => {
    c.close();
    const pool = pools.get(c.key);
    const i = pool?.indexOf(c) ?? -1;
    if (i >= 0) pool!.splice(i, 1);
  };

  const release = (c: Conn) => {
    let pool = pools.get(c.key);
    if (pool === undefined) pools.set(c.key, pool = []);
    const now = performance.now();
    // The longest idle first: those past IDLE_MS go (a quiet pool is swept by the next use).
    while (pool.length > 0 && now - pool[0]!.idleSince >= IDLE_MS) pool.shift()!.close();
    if (pool.length >= MAX_IDLE || c.start !== c.end) return c.close();
    c.idle = true;
    c.idleSince = now;
    pool.push(c);
    c.watch(() => drop(c));
  };

  const checkout = async (url: URL, key: string, signal: AbortSignal | null): Promise<Conn> => {
    const pool = pools.get(key);
    while (pool !== undefined && pool.length > 0) {
      const c = pool.pop()!;
      c.idle = false;
      const idleFor = performance.now() - c.idleSince;
      if (!c.closed && idleFor < IDLE_MS) {
        c.reused = true;
        c.sent = false;
        c.heard = false;
        c.idleFor = idleFor;
        return c;
      }
      c.close();
    }
    const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
    const connecting = url.protocol === "https:"
      ? connectTls(hostname, port)
      : Deno.connect({ hostname, port });
    let conn: Deno.Conn;
    try {
      conn = await untilAborted(connecting, signal);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw failed(`tcp connect error: ${(err as Error).message}`, err);
    }
    return new Conn(key, conn);
  };

  async function h1fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    if (bypass === null) bypass = proxied();
    const head = bypass ? null : requestHead(input, init);
    if (head === null) return fallback(input, init);
    const signal = init?.signal ?? null;
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      const c = await checkout(head.url, head.key, signal);
      try {
        return await call(c, head, signal);
      } catch (err) {
        // A pooled connection the server closed as it was taken (its idle timeout: Node's
        // servers close after 5 s) fails before the request is written, or after it with
        // not a byte of answer: sent again on another connection (Go's client does only the
        // first). After the write only for a connection idle long enough for a server's idle
        // timeout (IDLE_CLOSE_MS) that closed within a round trip of the write
        // (CLOSED_WITHIN_MS): one that fails right after use, or later, is a server that read
        // the request and broke, which may have acted on it, so the failure is the answer
        // there, as on a new connection (the failover loop decides).
        const idleClose = !c.heard && c.idleFor >= idleCloseMs &&
          performance.now() - c.sentAt < closedWithinMs;
        if (c.reused && (!c.sent || idleClose) && !signal?.aborted) continue;
        throw err;
      }
    }
  }

  async function call(c: Conn, head: RequestHead, signal: AbortSignal | null): Promise<Response> {
    let body: BodyReader | null = null;
    // An abort closes the connection: the write or read under way fails, and the failure is
    // reported as the abort (below); once the answer is out, its body fails with the reason.
    const onAbort = () => {
      c.close();
      body?.abort(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const done = () => signal?.removeEventListener("abort", onAbort);
    try {
      return await exchange(c, head, (reader) => body = reader, done);
    } catch (err) {
      done();
      c.close();
      if (signal?.aborted) throw signal.reason;
      throw err instanceof TypeError ? err : failed((err as Error)?.message ?? String(err), err);
    }
  }

  /** Send the request, read the answer's head; the body streams from the connection. */
  async function exchange(
    c: Conn,
    head: RequestHead,
    onBody: (reader: BodyReader) => void,
    onEnd: () => void,
  ): Promise<Response> {
    const bytes = encodeRequest(c, head);
    let w = 0;
    while (w < bytes.byteLength) w += await c.conn.write(bytes.subarray(w));
    c.sent = true;
    c.sentAt = performance.now();
    let status: number;
    let headers: [string, string][];
    let http10: boolean;
    for (;;) {
      const parsed = await readHead(c);
      if (parsed.status >= 200) {
        ({ status, headers, http10 } = parsed);
        break;
      }
      if (parsed.status === 101) throw failed("the server switched protocols");
      // 100 Continue, 103 Early Hints: the answer follows.
    }
    let length: number | null = null;
    let chunked = false;
    let framedByCoding = false;
    let keepAlive = !http10;
    let coding: string | null = null;
    for (const [name, value] of headers) {
      if (name === "transfer-encoding") {
        framedByCoding = true;
        const codings = value.toLowerCase().split(",").map((s) => s.trim());
        chunked = codings.at(-1) === "chunked";
        if (!chunked) keepAlive = false;
      } else if (name === "content-length") {
        const values = value.split(",").map((s) => s.trim());
        if (values.some((v) => !/^\d{1,15}$/.test(v) || v !== values[0])) {
          throw failed("invalid Content-Length in the answer");
        }
        if (length !== null && length !== Number(values[0])) {
          throw failed("conflicting Content-Length in the answer");
        }
        length = Number(values[0]);
      } else if (name === "connection") {
        const tokens = value.toLowerCase().split(",").map((s) => s.trim());
        if (tokens.includes("close")) keepAlive = false;
        else if (tokens.includes("keep-alive") && http10) keepAlive = true;
      } else if (name === "content-encoding") {
        coding = value.trim().toLowerCase();
      }
    }
    if (framedByCoding) {
      // Transfer-Encoding wins over Content-Length (RFC 9112 6.3): a final chunked is read as
      // chunks, anything else to the close; with both, the connection is not reused.
      if (length !== null) keepAlive = false;
      length = null;
    }
    const noBody = head.method === "HEAD" || status === 204 || status === 205 ||
      status === 304;
    if (noBody) {
      onEnd();
      if (keepAlive) release(c);
      else c.close();
      return new Response(null, { status, headers });
    }
    if (!chunked && length === null) keepAlive = false;
    if (!head.decode) coding = null;
    if (length !== null && coding === null && c.end - c.start >= length) {
      // The whole body came with the head (a JSON answer, usually): a static body, which
      // Response reads without a stream.
      const bytes = c.buf.slice(c.start, c.start + length);
      c.start += length;
      onEnd();
      if (keepAlive) release(c);
      else c.close();
      if (status > 599) throw failed(`invalid status ${status}`);
      return new Response(bytes, { status, headers });
    }
    const reader = new BodyReader(c, chunked, length, () => {
      onEnd();
      if (keepAlive) release(c);
      else c.close();
    }, () => {
      onEnd();
      c.close();
    });
    onBody(reader);
    const source = bodyStream(reader);
    let stream: ReadableStream<Uint8Array> = source;
    // Decoded only when the client asked for it (as fetch: a caller's own Accept-Encoding
    // gets the answer as sent; `coding` was cleared above then).
    if (coding === "gzip" || coding === "x-gzip" || coding === "deflate") {
      const decoder = new DecompressionStream(coding === "deflate" ? "deflate" : "gzip");
      stream = source.pipeThrough(
        decoder as unknown as ReadableWritablePair<Uint8Array, Uint8Array>,
      );
      headers = headers.filter(([n]) => n !== "content-encoding" && n !== "content-length");
    } else if (coding !== null && coding !== "identity") {
      await source.cancel();
      throw failed(`the answer is encoded as ${coding}, which was not asked for`);
    }
    if (status < 200 || status > 599) throw failed(`invalid status ${status}`);
    return new Response(stream, { status, headers });
  }

  return {
    fetch: h1fetch as typeof fetch,
    close() {
      for (const pool of pools.values()) for (const c of pool) c.close();
      pools.clear();
    },
    idle() {
      let n = 0;
      for (const pool of pools.values()) n += pool.length;
      return n;
    },
  };
}

/** A TLS connection with its handshake done (an unverified certificate fails here). */
async function connectTls(hostname: string, port: number): Promise<Deno.Conn> {
  const tls = await Deno.connectTls({ hostname, port, alpnProtocols: ["http/1.1"] });
  try {
    await tls.handshake();
  } catch (err) {
    tls.close();
    throw err;
  }
  return tls;
}

/**
 * `connecting`, unless `signal` aborts first: then its reason is thrown and the connection,
 * when it comes, is closed. A blackholed host's connect lasts minutes; the caller's deadline
 * must end it as it ends `fetch`'s. (A TLS handshake the server never answers keeps its
 * socket until the server closes it: Deno 2.9's handshake holds the socket, and closing the
 * connection does not reach it. `fetch` closes it.)
 */
async function untilAborted(
  connecting: Promise<Deno.Conn>,
  signal: AbortSignal | null,
): Promise<Deno.Conn> {
  if (signal === null) return connecting;
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => onAbort = () => reject(signal.reason));
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  try {
    return await Promise.race([connecting, aborted]);
  } catch (err) {
    connecting.then((conn) => conn.close(), () => {});
    throw err;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

interface RequestHead {
  readonly url: URL;
  readonly key: string;
  readonly method: string;
  /** The head up to its Content-Length (see `encodeRequest`). */
  readonly text: string;
  readonly body: string | Uint8Array;
  /** It has a Content-Length: a body, or a method that sends one. */
  readonly sized: boolean;
  /** The client added Accept-Encoding, so it decodes the answer. */
  readonly decode: boolean;
}

/** The request as bytes, or null when it is one for `fetch` (see the module's doc). */
function requestHead(input: string | URL | Request, init?: RequestInit): RequestHead | null {
  if (input instanceof Request || (init as { client?: unknown } | undefined)?.client) return null;
  // Redirects are the caller's to handle (execute.ts refuses them); following one is fetch's.
  if (init?.redirect !== "manual") return null;
  const url = input instanceof URL ? input : URL.parse(input);
  if (url === null || (url.protocol !== "http:" && url.protocol !== "https:")) return null;
  if (url.username !== "" || url.password !== "") return null;
  const method = (init?.method ?? "GET").toUpperCase();
  if (!METHODS.has(method)) return null;
  const raw = init?.body;
  let body: string | Uint8Array;
  if (raw === undefined || raw === null) body = EMPTY;
  else if (typeof raw === "string" || raw instanceof Uint8Array) body = raw;
  else return null;
  let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`;
  let accept = false;
  let acceptEncoding = false;
  let userAgent = false;
  let contentType = false;
  const given = init?.headers;
  const entries: Iterable<[string, string]> = given === undefined
    ? []
    : given instanceof Headers || Array.isArray(given)
    ? given as Iterable<[string, string]>
    : Object.entries(given);
  for (const [rawName, rawValue] of entries) {
    const name = rawName.toLowerCase();
    if (!TOKEN.test(name)) throw new TypeError("invalid header name");
    const value = String(rawValue).replace(/^[\t ]+|[\t ]+$/g, "");
    if (BAD_VALUE.test(value)) {
      // fetch refuses CR, LF and NUL, and sends other bytes as they are: those go to it.
      if (/[\0\r\n]/.test(value)) throw new TypeError("invalid header value");
      return null;
    }
    if (OWN.has(name)) {
      // A relayed request's own length, which it matches: the one this client writes.
      if (name === "content-length" && value === String(byteLength(body))) continue;
      return null;
    }
    if (name === "accept") accept = true;
    else if (name === "accept-encoding") acceptEncoding = true;
    else if (name === "user-agent") userAgent = true;
    else if (name === "content-type") contentType = true;
    head += `${name}: ${value}\r\n`;
  }
  // What fetch adds when the caller did not say (it also decodes what it asked for).
  if (!contentType && typeof raw === "string") head += "content-type: text/plain;charset=UTF-8\r\n";
  if (!accept) head += "accept: */*\r\n";
  if (!acceptEncoding) head += "accept-encoding: gzip, deflate\r\n";
  if (!userAgent) head += `user-agent: Deno/${Deno.version.deno}\r\n`;
  const sized = body.length > 0 || method === "POST" || method === "PUT" || method === "PATCH";
  const key = `${url.protocol}//${url.host}`;
  return { url, key, method, text: head, body, sized, decode: !acceptEncoding };
}

/** A body's length in bytes (a string's as UTF-8, as it is sent). */
function byteLength(body: string | Uint8Array): number {
  if (typeof body !== "string") return body.byteLength;
  let n = 0;
  for (let i = 0; i < body.length; i++) {
    const code = body.charCodeAt(i);
    if (code < 0x80) n += 1;
    else if (code < 0x800) n += 2;
    else if (code >= 0xd800 && code < 0xdc00 && i + 1 < body.length) {
      const next = body.charCodeAt(i + 1);
      if (next >= 0xdc00 && next < 0xe000) {
        n += 4; // a surrogate pair: one 4-byte character
        i++;
      } else n += 3; // a lone surrogate goes as U+FFFD
    } else n += 3;
  }
  return n;
}

/** Room kept for the Content-Length line and the blank line after the head. */
const LENGTH_ROOM = 40;
const MAX_KEPT_WRITE = 64 * 1024;

/**
 * The request's bytes, encoded into the connection's write buffer (kept between requests,
 * up to 64 KiB) instead of three fresh arrays: the body first, after room for the head's
 * last lines, then the head, whose Content-Length is then known, right before it. The head
 * is ASCII (names are tokens, values were checked, the path is percent-encoded).
 */
function encodeRequest(c: Conn, head: RequestHead): Uint8Array {
  const body = head.body;
  const bodyMax = typeof body === "string" ? body.length * 3 : body.byteLength;
  const gap = head.text.length + LENGTH_ROOM;
  let buf = c.wbuf;
  if (buf.length < gap + bodyMax) {
    buf = new Uint8Array(gap + bodyMax);
    if (buf.length <= MAX_KEPT_WRITE) c.wbuf = buf;
  }
  let length: number;
  if (typeof body === "string") length = enc.encodeInto(body, buf.subarray(gap)).written;
  else {
    buf.set(body, gap);
    length = body.byteLength;
  }
  const last = head.sized ? `content-length: ${length}\r\n\r\n` : "\r\n";
  const start = gap - last.length - head.text.length;
  enc.encodeInto(head.text, buf.subarray(start));
  enc.encodeInto(last, buf.subarray(gap - last.length));
  return buf.subarray(start, gap + length);
}

/** One response head (status line and fields), consumed from the buffer. */
async function readHead(
  c: Conn,
): Promise<{ status: number; headers: [string, string][]; http10: boolean }> {
  let at = -1;
  for (;;) {
    at = indexOfCrlfCrlf(c.buf, c.start, c.end);
    if (at >= 0) break;
    if (c.end - c.start > MAX_HEAD) throw failed("the answer's head is too large");
    if (!await c.fill()) {
      throw failed(
        c.end === c.start
          ? "the connection closed before an answer"
          : "the connection closed in the answer's head",
      );
    }
  }
  const text = latin1(c.buf, c.start, at);
  c.start = at + 4;
  // Scanned in place: a split into lines and a regex per line were 2.5 KB of garbage a call.
  let eol = text.indexOf("\r\n");
  if (eol < 0) eol = text.length;
  if (!STATUS_LINE.test(text.slice(0, eol))) throw failed("invalid status line in the answer");
  const headers: [string, string][] = [];
  for (let i = eol + 2; i < text.length;) {
    let end = text.indexOf("\r\n", i);
    if (end < 0) end = text.length;
    const colon = text.indexOf(":", i);
    const name = colon > i && colon < end ? text.slice(i, colon) : "";
    if (!TOKEN.test(name)) throw failed("invalid header line in the answer");
    // The value without the spaces and tabs around it (RFC 9110 5.5).
    let from = colon + 1;
    let to = end;
    while (from < to && isBlank(text.charCodeAt(from))) from++;
    while (to > from && isBlank(text.charCodeAt(to - 1))) to--;
    headers.push([name.toLowerCase(), text.slice(from, to)]);
    i = end + 2;
  }
  return { status: Number(text.slice(9, 12)), headers, http10: text.charCodeAt(7) === 48 };
}

const STATUS_LINE = /^HTTP\/1\.[01] \d{3}(?: .*)?$/;
const isBlank = (code: number) => code === 32 || code === 9;

function indexOfCrlfCrlf(buf: Uint8Array, from: number, to: number): number {
  for (let i = buf.indexOf(13, from); i >= 0 && i + 3 < to; i = buf.indexOf(13, i + 1)) {
    if (buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

function indexOfCrlf(buf: Uint8Array, from: number, to: number): number {
  for (let i = buf.indexOf(13, from); i >= 0 && i + 1 < to; i = buf.indexOf(13, i + 1)) {
    if (buf[i + 1] === 10) return i;
  }
  return -1;
}

const ascii = new TextDecoder();

/**
 * Bytes as a ByteString, as fetch exposes header values: ASCII through the decoder (an op,
 * 0.4 us for a 180-byte head, where spreading the bytes into String.fromCharCode took 4-7),
 * short lines (chunk sizes) and any other bytes one by one.
 */
function latin1(buf: Uint8Array, from: number, to: number): string {
  if (to - from >= 16) {
    let i = from;
    while (i < to && buf[i]! < 0x80) i++;
    if (i === to) return ascii.decode(buf.subarray(from, to));
  }
  let s = "";
  for (let i = from; i < to; i++) s += String.fromCharCode(buf[i]!);
  return s;
}

/**
 * The answer's body, framed by length, by chunks, or by the close, read one piece at a time.
 * The relay reads it directly (see `readDirectly`), without a stream in between: per SSE
 * event that saved a byte stream's BYOB request, its queue and their promises.
 */
class BodyReader implements ChunkReader<Uint8Array> {
  #remaining: number;
  /**
   * Chunked: bytes left in the current chunk; -1 before a size line, -2 in the trailers, -3
   * before the CRLF that ends a chunk, -4 at the end.
   */
  #inChunk = -1;
  #ended = false;
  #failure: { readonly reason: unknown } | null = null;

  constructor(
    readonly c: Conn,
    readonly chunked: boolean,
    length: number | null,
    readonly onDone: () => void,
    readonly onFail: () => void,
  ) {
    this.#remaining = length ?? Infinity;
    if (!chunked && length === 0) this.#finish();
  }

  async read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    for (;;) {
      if (this.#failure !== null) throw this.#failure.reason;
      if (this.#ended) return DONE;
      const value = this.#take();
      if (value !== null) {
        if (!this.#ended) this.c.prefetch();
        return { done: false, value };
      }
      if (this.#ended) return DONE;
      let more: boolean;
      try {
        more = await this.c.fill();
      } catch (err) {
        throw this.#fail(err);
      }
      if (!more) {
        if (!this.chunked && this.#remaining === Infinity) {
          this.#finish();
          return DONE;
        }
        throw this.#fail(failed("the connection closed before the body ended"));
      }
    }
  }

  cancel(): Promise<void> {
    if (!this.#ended) {
      this.#ended = true;
      this.onFail();
    }
    return Promise.resolve();
  }

  /** The caller's signal aborted: the next read (or the pending one) fails with `reason`. */
  abort(reason: unknown): void {
    if (this.#ended) return;
    this.#failure = { reason };
    this.#ended = true;
    this.onFail();
  }

  #fail(err: unknown): unknown {
    if (this.#failure !== null) return this.#failure.reason;
    this.#failure = { reason: err };
    if (!this.#ended) {
      this.#ended = true;
      this.onFail();
    }
    return err;
  }

  #finish(): void {
    this.#ended = true;
    this.onDone();
  }

  /**
   * Body bytes from what is buffered (a copy: the buffer is reused), after the framing
   * before them; null when more must be read first, or at the end (then `#ended` is set).
   * The framing after them is consumed as far as it is buffered, so the connection goes
   * back to the pool as soon as the answer's end is here.
   */
  #take(): Uint8Array | null {
    const c = this.c;
    if (!this.chunked) {
      const n = Math.min(this.#remaining, c.end - c.start);
      if (n === 0) return null;
      const value = c.buf.slice(c.start, c.start + n);
      c.start += n;
      this.#remaining -= n;
      if (this.#remaining === 0) this.#finish();
      return value;
    }
    if (!this.#frame()) return null;
    const n = Math.min(this.#inChunk, c.end - c.start);
    const value = c.buf.slice(c.start, c.start + n);
    c.start += n;
    this.#inChunk -= n;
    if (this.#inChunk === 0) this.#inChunk = -3;
    this.#frame();
    return value;
  }

  /** Consumes buffered framing; true when chunk bytes are next in the buffer. */
  #frame(): boolean {
    const c = this.c;
    for (;;) {
      if (this.#inChunk > 0) return c.start < c.end;
      if (this.#inChunk === -3) {
        if (c.end - c.start < 2) return false;
        if (c.buf[c.start] !== 13 || c.buf[c.start + 1] !== 10) {
          throw this.#fail(failed("a chunk did not end with CRLF"));
        }
        c.start += 2;
        this.#inChunk = -1;
      }
      const line = this.#line();
      if (line === null) return false;
      if (this.#inChunk === -2) {
        // Trailer fields, then the empty line that ends the body.
        if (line === "") {
          this.#inChunk = -4;
          this.#finish();
          return false;
        }
        continue;
      }
      const size = line.split(";")[0]!.trim();
      if (!/^[0-9a-fA-F]{1,15}$/.test(size)) throw this.#fail(failed("invalid chunk size"));
      this.#inChunk = parseInt(size, 16);
      if (this.#inChunk === 0) this.#inChunk = -2;
    }
  }

  /** A buffered line, consumed; null when its end is not here yet. */
  #line(): string | null {
    const c = this.c;
    const at = indexOfCrlf(c.buf, c.start, c.end);
    if (at < 0) {
      if (c.end - c.start > MAX_LINE) throw this.#fail(failed("a chunk line is too long"));
      return null;
    }
    const text = latin1(c.buf, c.start, at);
    c.start = at + 2;
    return text;
  }
}

/** `reader` as a stream, for consumers other than the relay (`text()`, a decompressor). */
function bodyStream(reader: BodyReader): ReadableStream<Uint8Array> {
  // A byte stream, as fetch's body is (a BYOB reader works on it).
  const stream = new ReadableStream({
    type: "bytes",
    async pull(ctl) {
      const result = await reader.read();
      if (result.done) {
        ctl.close();
        // A BYOB read waiting on the end is answered with no bytes (byte streams' rule).
        ctl.byobRequest?.respond(0);
      } else ctl.enqueue(result.value);
    },
    cancel: () => reader.cancel(),
  }) as ReadableStream<Uint8Array>;
  readDirectly(stream, reader);
  return stream;
}
