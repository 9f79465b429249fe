import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { createHttp1Client as createClient } from "../../src/net/http1.ts";
import { chunkReader } from "../../src/streaming/reader.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The client as execute.ts calls it: redirects are the caller's (others go to fetch). */
function createHttp1Client(
  fallback?: typeof fetch,
  opts?: { idleCloseMs?: number; closedWithinMs?: number },
) {
  const h = createClient(fallback, opts);
  return {
    ...h,
    fetch: (url: string, init: RequestInit = {}) => h.fetch(url, { redirect: "manual", ...init }),
  };
}

/**
 * A TCP server that answers each request on a connection with the next of `answers`
 * (bytes as given: framing is the test's), recording the requests and connections.
 */
function scripted(answers: (string | Uint8Array)[], opts: { closeAfter?: boolean } = {}) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const requests: string[] = [];
  const conns: Deno.Conn[] = [];
  let next = 0;
  const serve = async (conn: Deno.Conn) => {
    conns.push(conn);
    let pending = new Uint8Array(0);
    const buf = new Uint8Array(65536);
    /** One more read appended to `pending`; false at the connection's end. */
    const more = async () => {
      const n = await conn.read(buf);
      if (n === null) return false;
      const joined = new Uint8Array(pending.length + n);
      joined.set(pending);
      joined.set(buf.subarray(0, n), pending.length);
      pending = joined;
      return true;
    };
    try {
      for (;;) {
        let text = dec.decode(pending);
        let end = text.indexOf("\r\n\r\n");
        while (end < 0) {
          if (!await more()) return;
          text = dec.decode(pending);
          end = text.indexOf("\r\n\r\n");
        }
        const length = Number(/content-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
        while (pending.length < end + 4 + length) {
          if (!await more()) return;
        }
        requests.push(dec.decode(pending.subarray(0, end + 4 + length)));
        pending = pending.slice(end + 4 + length);
        const answer = answers[next++] ?? "HTTP/1.1 500 Nope\r\ncontent-length: 0\r\n\r\n";
        if (answer === "") continue; // never answer (a stalled upstream)
        if (answer === CLOSE) return conn.close(); // read it, then close without a byte
        await conn.write(typeof answer === "string" ? enc.encode(answer) : answer);
        if (opts.closeAfter) {
          conn.close();
          return;
        }
      }
    } catch {
      // closed under us
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) serve(conn);
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    requests,
    conns,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await accepting.catch(() => {});
    },
  };
}

/** A scripted "answer": read the request, then close the connection without a byte. */
const CLOSE = "\u0000close";

/** Two events in two chunks (one with an extension), then a trailer. */
const CHUNKED_ANSWER =
  "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n" +
  "6;ext=1\r\ndata: \r\n" + "c\r\n1\n\ndata: 2\n\n\r\n" + "0\r\nx-trailer: t\r\n\r\n";

/** `scripted(answers)` and a client on it for `fn`, both closed after it. */
async function withServer(
  answers: (string | Uint8Array)[],
  fn: (
    server: ReturnType<typeof scripted>,
    h: ReturnType<typeof createHttp1Client>,
  ) => Promise<void>,
  opts: {
    closeAfter?: boolean;
    fallback?: typeof fetch;
    idleCloseMs?: number;
    closedWithinMs?: number;
  } = {},
): Promise<void> {
  const server = scripted(answers, opts);
  const { fallback, closeAfter: _, ...thresholds } = opts;
  const h = createHttp1Client(fallback, thresholds);
  try {
    await fn(server, h);
  } finally {
    h.close();
    await server.close();
  }
}

const JSON_ANSWER =
  'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}';

Deno.test("http1: a Content-Length answer, then the connection is reused", () =>
  withServer([JSON_ANSWER, JSON_ANSWER], async (server, h) => {
    const a = await h.fetch(`${server.url}/v1/chat?x=1`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer k" },
      body: '{"q":1}',
    });
    assert.equal(a.status, 200);
    assert.equal(a.headers.get("content-type"), "application/json");
    assert.equal(await a.text(), '{"ok":true}');
    // A relayed request's own Content-Length, when it matches, is the one sent (once).
    const b = await h.fetch(`${server.url}/v1/chat`, {
      method: "POST",
      body: "{}",
      headers: { "content-length": "2" },
    });
    assert.equal(await b.text(), '{"ok":true}');
    assert.equal(server.conns.length, 1);
    assert.equal(server.requests[1]!.match(/content-length/gi)?.length, 1);
    // A string body without a Content-Type is text, as fetch sends it.
    assert.match(server.requests[1]!, /\r\ncontent-type: text\/plain;charset=UTF-8\r\n/);
    assert.doesNotMatch(server.requests[0]!, /text\/plain/);
    const first = server.requests[0]!;
    assert.match(first, /^POST \/v1\/chat\?x=1 HTTP\/1\.1\r\n/);
    assert.match(first, new RegExp(`\r\nhost: ${new URL(server.url).host}\r\n`));
    assert.match(first, /\r\ncontent-length: 7\r\n/);
    assert.match(first, /\r\nauthorization: Bearer k\r\n/);
    assert.match(first, /\r\naccept: \*\/\*\r\n/);
    assert.match(first, /\r\nuser-agent: Deno\//);
    assert.ok(first.endsWith('\r\n\r\n{"q":1}'));
  }, { fallback: () => Promise.reject(new Error("no fallback expected")) }));

Deno.test("http1: a chunked answer (extensions, trailers) read as a byte stream", () =>
  withServer([CHUNKED_ANSWER, JSON_ANSWER], async (server, h) => {
    const res = await h.fetch(`${server.url}/s`, { method: "POST", body: "{}" });
    const reader = res.body!.getReader({ mode: "byob" });
    let text = "";
    for (;;) {
      const r = await reader.read(new Uint8Array(64));
      if (r.done) break;
      text += dec.decode(r.value);
    }
    assert.equal(text, "data: 1\n\ndata: 2\n\n");
    // The framing ended where it should: the same connection answers the next request.
    assert.equal(await (await h.fetch(`${server.url}/j`)).text(), '{"ok":true}');
    assert.equal(server.conns.length, 1);
  }));

Deno.test("http1: the relay reads a body directly, piece by piece; the connection is pooled once the end is here", () =>
  withServer([CHUNKED_ANSWER, JSON_ANSWER], async (server, h) => {
    const res = await h.fetch(`${server.url}/s`, { method: "POST", body: "{}" });
    const reader = chunkReader(res.body!);
    assert.ok(!(reader instanceof ReadableStreamDefaultReader));
    assert.ok(res.body!.locked);
    assert.equal(dec.decode((await reader.read()).value), "data: ");
    assert.equal(h.idle(), 0);
    assert.equal(dec.decode((await reader.read()).value), "1\n\ndata: 2\n\n");
    // The last chunk and the end came together: back in the pool before the end is read.
    assert.equal(h.idle(), 1);
    assert.deepEqual(await reader.read(), { done: true });
    assert.equal(await (await h.fetch(`${server.url}/j`)).text(), '{"ok":true}');
    assert.equal(server.conns.length, 1);
  }));

Deno.test("http1: an abort in the body fails the read waiting on it with its reason", () =>
  withServer([
    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
    JSON_ANSWER,
  ], async (server, h) => {
    const controller = new AbortController();
    const res = await h.fetch(`${server.url}/s`, { signal: controller.signal });
    const reader = chunkReader(res.body!);
    assert.equal(dec.decode((await reader.read()).value), "hello");
    const waiting = reader.read();
    const reason = new Error("client left");
    controller.abort(reason);
    assert.equal(await waiting.catch((e) => e), reason);
    assert.equal(await reader.read().catch((e) => e), reason);
    // Not reused: the next call has a connection of its own.
    assert.equal(await (await h.fetch(`${server.url}/j`)).text(), '{"ok":true}');
    assert.equal(server.conns.length, 2);
  }));

Deno.test("http1: an answer framed by the close is read to the end and its connection not reused", () =>
  withServer(
    [
      "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end",
      // A Transfer-Encoding that does not end in chunked: to the close, Content-Length ignored.
      "HTTP/1.1 200 OK\r\ntransfer-encoding: identity\r\ncontent-length: 2\r\n\r\nall of it",
    ],
    async (server, h) => {
      assert.equal(await (await h.fetch(`${server.url}/a`)).text(), "until the end");
      assert.equal(await (await h.fetch(`${server.url}/b`)).text(), "all of it");
      await h.fetch(`${server.url}/c`).then((r) => r.body?.cancel());
      assert.equal(server.conns.length, 3);
    },
    { closeAfter: true },
  ));

Deno.test("http1: no body for 204 and HEAD; 100 Continue is skipped", () =>
  withServer([
    "HTTP/1.1 204 No Content\r\n\r\n",
    "HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n",
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
  ], async (server, h) => {
    const a = await h.fetch(`${server.url}/a`, { method: "DELETE" });
    assert.equal(a.status, 204);
    assert.equal(a.body, null);
    const b = await h.fetch(`${server.url}/b`, { method: "HEAD" });
    assert.equal(b.status, 200);
    assert.equal(b.body, null);
    const c = await h.fetch(`${server.url}/c`, { method: "POST", body: "x" });
    assert.equal(await c.text(), "ok");
    assert.equal(server.conns.length, 1);
  }));

Deno.test("http1: a malformed answer is a fetch failure, never a response", async () => {
  for (
    const bad of [
      "HTTX/1.1 200 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok",
      "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\n folded: value\r\n\r\n",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    ]
  ) {
    const server = scripted([bad]);
    const h = createHttp1Client();
    try {
      const err = await h.fetch(`${server.url}/x`).then((r) => r.text()).catch((e) => e);
      assert.ok(err instanceof TypeError, `${JSON.stringify(bad)}: ${err}`);
    } finally {
      h.close();
      await server.close();
    }
  }
});

Deno.test("http1: a header value with CR, LF or NUL is refused unsent, without quoting it", () =>
  withServer([], async (server, h) => {
    const err = await h.fetch(`${server.url}/x`, {
      headers: { authorization: "Bearer sk-SECRET\r\nx-injected: 1" },
    }).catch((e) => e);
    assert.ok(err instanceof TypeError);
    assert.match(err.message, /invalid header value/);
    assert.doesNotMatch(err.message, /SECRET/);
    assert.equal(server.requests.length, 0);
  }));

Deno.test("http1: an abort before the answer rejects with its reason and drops the connection", () =>
  withServer(["", JSON_ANSWER], async (server, h) => {
    const controller = new AbortController();
    const pending = h.fetch(`${server.url}/slow`, {
      method: "POST",
      body: "{}",
      signal: controller.signal,
    });
    while (server.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    const reason = new Error("gone");
    controller.abort(reason);
    assert.equal(await pending.catch((e) => e), reason);
    assert.equal(await (await h.fetch(`${server.url}/j`)).text(), '{"ok":true}');
    assert.equal(server.conns.length, 2);
  }));

Deno.test("http1: a pooled connection the server closed is not reused", () =>
  withServer([JSON_ANSWER, JSON_ANSWER], async (server, h) => {
    await (await h.fetch(`${server.url}/a`)).text();
    assert.equal(h.idle(), 1);
    server.conns[0]!.close();
    // The idle connection's outstanding read sees the close and leaves the pool.
    while (h.idle() > 0) await new Promise((r) => setTimeout(r, 0));
    assert.equal(await (await h.fetch(`${server.url}/b`)).text(), '{"ok":true}');
    assert.equal(server.conns.length, 2);
  }));

Deno.test("http1: a connection idle past a server's keep-alive timeout, closed after the request with no answer, is tried again on a new one", () =>
  withServer([JSON_ANSWER, CLOSE, JSON_ANSWER], async (server, h) => {
    await (await h.fetch(`${server.url}/a`)).text();
    // The server reads the request on the pooled connection and closes it (its idle close
    // racing the request): the client sends it again on a connection of its own. (Idle
    // long enough: the threshold is 0 here, 1 s in the daemon.)
    const res = await h.fetch(`${server.url}/b`, { method: "POST", body: '{"n":2}' });
    assert.equal(await res.text(), '{"ok":true}');
    assert.equal(server.conns.length, 2);
    assert.equal(server.requests.length, 3);
    assert.match(server.requests[2]!, /\{"n":2\}$/);
  }, { idleCloseMs: 0 }));

Deno.test("http1: a close that comes long after the write (the server worked on it) is not sent twice", () =>
  withServer([JSON_ANSWER, CLOSE, JSON_ANSWER], async (server, h) => {
    await (await h.fetch(`${server.url}/a`)).text();
    // Idle long enough, but the close came later than a round trip after the write (0 ms
    // here): the server may have read and worked on the request. The failure is the answer.
    const err = await h.fetch(`${server.url}/b`, { method: "POST", body: "{}" }).catch((e) => e);
    assert.ok(err instanceof TypeError, String(err));
    assert.equal(server.requests.length, 2);
  }, { idleCloseMs: 0, closedWithinMs: 0 }));

Deno.test("http1: a connection that breaks right after use, with the request written, is not sent twice", () =>
  withServer([JSON_ANSWER, CLOSE, JSON_ANSWER], async (server, h) => {
    await (await h.fetch(`${server.url}/a`)).text();
    // Reused at once: no idle timeout can have fired, the server read the request and broke
    // (it may have acted on it). The failure is the answer.
    const err = await h.fetch(`${server.url}/b`, { method: "POST", body: "{}" }).catch((e) => e);
    assert.ok(err instanceof TypeError, String(err));
    assert.equal(server.requests.length, 2);
  }));

Deno.test("http1: a new connection closed with no answer is a fetch failure, not sent twice", () =>
  withServer([CLOSE, JSON_ANSWER], async (server, h) => {
    const err = await h.fetch(`${server.url}/a`, { method: "POST", body: "{}" }).catch((e) => e);
    assert.ok(err instanceof TypeError, String(err));
    assert.match(err.message, /closed before an answer/);
    assert.equal(server.requests.length, 1);
  }));

Deno.test("http1: gzip is decoded when the client asked for it, passed on when the caller did", async () => {
  const zipped = gzipSync(enc.encode('{"ok":true}'));
  const head =
    `HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: ${zipped.length}\r\n\r\n`;
  const answer = new Uint8Array([...enc.encode(head), ...zipped]);
  const server = scripted([answer, answer]);
  const h = createHttp1Client();
  try {
    const a = await h.fetch(`${server.url}/a`);
    assert.equal(a.headers.get("content-encoding"), null);
    assert.equal(await a.text(), '{"ok":true}');
    assert.match(server.requests[0]!, /\r\naccept-encoding: gzip, deflate\r\n/);
    const b = await h.fetch(`${server.url}/b`, { headers: { "accept-encoding": "gzip" } });
    assert.equal(b.headers.get("content-encoding"), "gzip");
    assert.deepEqual(new Uint8Array(await b.arrayBuffer()), new Uint8Array(zipped));
  } finally {
    h.close();
    await server.close();
  }
});

Deno.test("http1: what it does not handle goes to the fallback fetch", async () => {
  const calls: string[] = [];
  const fallback = ((input: string | URL | Request) => {
    calls.push(String(input));
    return Promise.resolve(new Response("fallback"));
  }) as typeof fetch;
  const h = createHttp1Client(fallback);
  try {
    const stream = new ReadableStream<Uint8Array>({ start: (c) => c.close() });
    await h.fetch("http://127.0.0.1:9/upload", { method: "POST", body: stream });
    await h.fetch("http://127.0.0.1:9/host", { headers: { host: "other" } });
    await h.fetch("http://127.0.0.1:9/length", {
      method: "POST",
      body: "abc",
      headers: { "content-length": "4" },
    });
    await h.fetch("http://127.0.0.1:9/te", { headers: { "transfer-encoding": "chunked" } });
    await h.fetch("http://127.0.0.1:9/utf8", { headers: { "x-name": "caf\u00e9" } });
    await h.fetch("http://127.0.0.1:9/trace", { method: "TRACE" });
    await h.fetch("file:///etc/hosts");
    // Redirects followed, or refused: fetch's.
    await h.fetch("http://127.0.0.1:9/follow", { redirect: "follow" });
    await h.fetch("http://127.0.0.1:9/error", { redirect: "error" });
    assert.equal(calls.length, 9);
  } finally {
    h.close();
  }
});

Deno.test("http1: a refused connection reads as fetch's connect failure", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const h = createHttp1Client();
  const err = await h.fetch(`http://127.0.0.1:${port}/x`).catch((e) => e);
  assert.ok(err instanceof TypeError);
  assert.match(err.message, /tcp connect error/);
  assert.match(err.message, /refused/i);
  h.close();
});

Deno.test("http1: an abort while connecting (a TLS handshake never answered) rejects with its reason", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const accepted = listener.accept();
  const h = createHttp1Client();
  const controller = new AbortController();
  const pending = h.fetch(`https://127.0.0.1:${port}/x`, { signal: controller.signal });
  const conn = await accepted; // connected; the handshake waits for an answer that never comes
  const reason = new Error("deadline");
  controller.abort(reason);
  assert.equal(await pending.catch((e) => e), reason);
  assert.equal(h.idle(), 0);
  conn.close();
  listener.close();
  h.close();
});

Deno.test("http1: header bytes outside ASCII read as a ByteString, as fetch exposes them", () => {
  const head = enc.encode("HTTP/1.1 200 OK\r\nx-name: caf");
  const tail = enc.encode("\r\ncontent-length: 2\r\n\r\nok");
  const answer = new Uint8Array([...head, 0xc3, 0xa9, ...tail]);
  return withServer([answer], async (server, h) => {
    const res = await h.fetch(`${server.url}/a`);
    assert.equal(res.headers.get("x-name"), "caf\u00c3\u00a9");
    assert.equal(await res.text(), "ok");
  });
});

Deno.test("http1: bodies go as sent: UTF-8 strings with their byte length, large ones whole", () =>
  withServer([JSON_ANSWER, JSON_ANSWER, JSON_ANSWER], async (server, h) => {
    const text = "h\u00e9llo \u{1F600}";
    await (await h.fetch(`${server.url}/a`, {
      method: "POST",
      body: text,
      headers: { "content-type": "text/plain", "content-length": "11" },
    })).text();
    const big = "x".repeat(100_000);
    await (await h.fetch(`${server.url}/b`, { method: "POST", body: big })).text();
    const bytes = new Uint8Array(10_000).fill(0x61);
    await (await h.fetch(`${server.url}/c`, { method: "PUT", body: bytes })).text();
    const [a, b, c] = server.requests;
    assert.match(a!, /\r\ncontent-length: 11\r\n/);
    assert.equal(a!.match(/content-length/gi)?.length, 1);
    assert.ok(a!.endsWith(`\r\n\r\n${text}`));
    assert.match(b!, /\r\ncontent-length: 100000\r\n/);
    assert.ok(b!.endsWith(`\r\n\r\n${big}`));
    assert.match(c!, /^PUT \/c HTTP\/1\.1\r\n/);
    assert.ok(c!.endsWith(`\r\n\r\n${"a".repeat(10_000)}`));
    assert.equal(server.conns.length, 1);
  }));

Deno.test("http1: a head's fields: spaces and tabs around values dropped, empty values kept, no reason phrase", () =>
  withServer(
    ["HTTP/1.1 201\r\nX-A: \t v 1 \t\r\nx-empty:\r\nX-B:w\r\ncontent-length: 0\r\n\r\n"],
    async (server, h) => {
      const res = await h.fetch(`${server.url}/a`);
      assert.equal(res.status, 201);
      assert.equal(res.headers.get("x-a"), "v 1");
      assert.equal(res.headers.get("x-empty"), "");
      assert.equal(res.headers.get("x-b"), "w");
      assert.equal(await res.text(), "");
    },
  ));
