// deno-lint-ignore-file no-console -- the fuzz prints its counts.
/**
 * Abuse fuzz, wire level, over raw sockets: CR/LF/NUL inside header values, oversized heads,
 * absolute-form (`GET http://evil/x`) and asterisk-form (`OPTIONS *`) targets, odd request
 * lines and framing, against the real app served in process; then against the spawned daemon
 * (its real listener and process limits): slowloris heads and bodies, and 10,000 idle
 * connections. No 5xx, no hang (every exchange has a deadline), no crash (/healthz answers
 * after), and an absolute-form target never makes Pilotfish call the host it names.
 */
import assert from "node:assert/strict";
import { startGateway } from "../helpers/in_process.ts";
import { startDaemon } from "../integration/daemon.ts";
import { findDaemonPid, procStats } from "../helpers/proc_stats.ts";
import { exchange, type RawAnswer, whole } from "./raw.ts";

const DEADLINE_MS = 5_000;
const CHAT = '{"model":"mock/echo","messages":[{"role":"user","content":"hi"}]}';

function request(line: string, headers: string[], body = ""): string {
  const withLength = body === "" ? headers : [...headers, `Content-Length: ${body.length}`];
  return `${line}\r\n${[...withLength, "Connection: close"].join("\r\n")}\r\n\r\n${body}`;
}

/** The wire cases, for the in-process app at `host` and a canary host it must never call. */
function wireCases(host: string, canary: string): { name: string; bytes: string }[] {
  const h = `Host: ${host}`;
  const json = "Content-Type: application/json";
  const cases: { name: string; bytes: string }[] = [];
  const add = (name: string, bytes: string) => cases.push({ name, bytes });
  const paths = [
    "/v1/chat/completions",
    "/v1/messages",
    "/openai/v1/chat/completions",
    "/gemini/v1beta/models/x:generateContent",
    "/native/canary/v1/x",
    "/healthz",
  ];
  // Header values with CR, LF, NUL and friends, on every route.
  const badValues = [
    "a\rInjected: 1",
    "a\nInjected: 1",
    "a\r\n Injected: folded",
    "a\u0000b",
    "a\u007fb",
    "\u00ff\u00fe",
    "a\r\r\nX: y",
  ];
  for (const path of paths) {
    for (const [i, v] of badValues.entries()) {
      add(
        `header value ${i} ${path}`,
        request(`POST ${path} HTTP/1.1`, [h, json, `X-Test: ${v}`], CHAT),
      );
      add(
        `authorization ${i} ${path}`,
        request(`POST ${path} HTTP/1.1`, [h, json, `Authorization: Bearer ${v}`], CHAT),
      );
    }
    add(`no colon ${path}`, request(`POST ${path} HTTP/1.1`, [h, json, "NoColonHere"], CHAT));
    add(`space in name ${path}`, request(`POST ${path} HTTP/1.1`, [h, json, "Bad Name: x"], CHAT));
    // Oversized heads: one huge value, many headers, a huge target.
    for (const size of [8_000, 64_000, 512_000]) {
      add(
        `huge header ${size} ${path}`,
        request(`POST ${path} HTTP/1.1`, [h, json, `X-Big: ${"a".repeat(size)}`], CHAT),
      );
    }
    for (const count of [100, 1_000, 10_000]) {
      const many = Array.from({ length: count }, (_, i) => `X-H${i}: v`);
      add(`${count} headers ${path}`, request(`POST ${path} HTTP/1.1`, [h, json, ...many], CHAT));
    }
    add(`huge target ${path}`, request(`GET ${path}?q=${"x".repeat(100_000)} HTTP/1.1`, [h]));
    // Absolute-form targets naming another host (the canary), and the asterisk form.
    add(
      `absolute-form GET ${path}`,
      request(`GET http://${canary}${path} HTTP/1.1`, [`Host: ${canary}`]),
    );
    add(
      `absolute-form POST ${path}`,
      request(`POST http://${canary}${path} HTTP/1.1`, [`Host: ${canary}`, json], CHAT),
    );
    add(
      `absolute-form, local Host ${path}`,
      request(`POST http://${canary}${path} HTTP/1.1`, [h, json], CHAT),
    );
    add(`absolute https ${path}`, request(`GET https://${canary}${path} HTTP/1.1`, [h]));
    // Framing: conflicting lengths, bad chunk sizes, a body shorter than announced.
    add(
      `cl+te ${path}`,
      `POST ${path} HTTP/1.1\r\n${h}\r\n${json}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`,
    );
    add(
      `two cl ${path}`,
      `POST ${path} HTTP/1.1\r\n${h}\r\n${json}\r\nContent-Length: 2\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{}`,
    );
    add(
      `negative cl ${path}`,
      `POST ${path} HTTP/1.1\r\n${h}\r\nContent-Length: -1\r\nConnection: close\r\n\r\n`,
    );
    add(
      `bad chunk ${path}`,
      `POST ${path} HTTP/1.1\r\n${h}\r\n${json}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
    );
    add(
      `te gzip ${path}`,
      `POST ${path} HTTP/1.1\r\n${h}\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`,
    );
  }
  for (
    const target of [
      "*",
      "http://" + canary,
      canary + ":80",
      "/",
      "//" + canary + "/x",
      "\\\\x",
      "/%00",
      "/v1/models?x=%ff%fe",
      "/v1/%2e%2e/models",
    ]
  ) {
    for (const method of ["OPTIONS", "GET", "POST", "TRACE", "CONNECT", "PRI", "FOO", "get"]) {
      add(`${method} ${target}`, request(`${method} ${target} HTTP/1.1`, [h]));
    }
  }
  add("http/1.0 no host", "GET /healthz HTTP/1.0\r\n\r\n");
  add("http/0.9", "GET /healthz\r\n\r\n");
  add("http/9.9", request("GET /healthz HTTP/9.9", [h]));
  add("garbage line", "\u0000\u0001\u0002 garbage\r\n\r\n");
  add("empty lines", "\r\n\r\n\r\n");
  add("no host", request("POST /v1/chat/completions HTTP/1.1", [json], CHAT));
  add(
    "two hosts",
    request("POST /v1/chat/completions HTTP/1.1", [h, `Host: ${canary}`, json], CHAT),
  );
  add("host with path", request("POST /v1/chat/completions HTTP/1.1", ["Host: a/b", json], CHAT));
  return cases;
}

/** Acceptable: a status below 500, or a close with no answer (a protocol-level refusal). */
function acceptable(a: RawAnswer): boolean {
  if (a.timedOut) return false;
  return a.status === null ? a.closed : a.status < 500;
}

Deno.test("abuse: raw-socket cases against the app, no 5xx, no hang, no call to a named host", async () => {
  let canaryHits = 0;
  const canary = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    canaryHits++;
    await req.body?.cancel();
    return new Response("{}");
  });
  const gw = startGateway(`
server: { read_timeout: 2s }
providers:
  mock: {}
routing: { default_provider: mock }
`);
  try {
    const port = Number(new URL(gw.url("/")).port);
    const cases = wireCases(`127.0.0.1:${port}`, `127.0.0.1:${canary.addr.port}`);
    const statuses = new Map<string, number>();
    const failures: string[] = [];
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < cases.length) {
        const c = cases[next++]!;
        const a = await exchange(port, whole(c.bytes), DEADLINE_MS);
        const key = a.status === null ? "closed" : String(a.status);
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        if (!acceptable(a)) failures.push(`${c.name}: ${JSON.stringify(a)}`);
      }
    }));
    console.log(
      `abuse wire: ${cases.length} raw requests, ${
        [...statuses].sort().map(([s, n]) => `${s}×${n}`).join(" ")
      }, canary calls ${canaryHits}`,
    );
    // An HTTP/2 prior-knowledge preface is answered in HTTP/2 (a SETTINGS frame), not 5xx.
    const h2 = await exchange(port, whole("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 2_000);
    assert.ok(h2.head.length > 0 || h2.closed, `h2 preface: ${JSON.stringify(h2)}`);
    assert.deepEqual(failures, []);
    assert.equal(canaryHits, 0, "an absolute-form target reached the host it named");
    assert.equal(await (await gw.request("/healthz")).text(), "ok");
  } finally {
    await gw.close();
    await canary.shutdown();
  }
});

/** Open `n` TCP connections to `port`, `batch` at a time. */
async function openIdle(port: number, n: number, batch = 500): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < n; i += batch) {
    const got = await Promise.allSettled(
      Array.from(
        { length: Math.min(batch, n - i) },
        () => Deno.connect({ hostname: "127.0.0.1", port }),
      ),
    );
    for (const g of got) if (g.status === "fulfilled") conns.push(g.value);
  }
  return conns;
}

/** The soft fd limit of this process (`ulimit -n`), read through a shell. */
async function fdLimit(): Promise<number> {
  const out = await new Deno.Command("sh", { args: ["-c", "ulimit -n"], stdout: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  return text === "unlimited" ? Infinity : Number(text);
}

async function healthz(port: number, timeoutMs = 3_000): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`, {
    signal: AbortSignal.timeout(timeoutMs),
  });
  return await res.text();
}

Deno.test("abuse: slowloris and 10,000 idle connections against the daemon", async () => {
  const daemon = await startDaemon(`
server:
  host: 127.0.0.1
  port: {{PORT}}
  socket: {{SOCKET}}
  read_timeout: 2s
providers:
  mock: {}
routing: { default_provider: mock }
`);
  const idle: Deno.TcpConn[] = [];
  try {
    const pid = await findDaemonPid(daemon.configPath);
    const before = await procStats(pid);

    // Slowloris body: the head is complete, the body dribbles in; read_timeout answers 408.
    const bodies = await Promise.all(
      Array.from({ length: 20 }, () =>
        exchange(daemon.port, async (w) => {
          await w(
            `POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${CHAT.length}\r\n\r\n`,
          );
          for (const ch of CHAT) {
            await w(ch);
            await new Promise((r) => setTimeout(r, 250)); // the dribble rate itself
          }
        }, DEADLINE_MS)),
    );
    const slowBody = bodies.map((a) => a.status ?? (a.timedOut ? "open" : "closed"));
    // Slowloris head: header lines dribble in and never end. Nothing obliges a server to
    // answer; it must not be starved meanwhile (/healthz answers) and must not answer 5xx.
    const heads = Array.from({ length: 50 }, () =>
      exchange(daemon.port, async (w) => {
        await w("POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n");
        for (let i = 0; i < 12; i++) {
          await w(`X-Slow-${i}: ${"v".repeat(10)}\r\n`);
          await new Promise((r) => setTimeout(r, 250)); // the dribble rate itself
        }
      }, 4_000));
    assert.equal(await healthz(daemon.port), "ok");
    const slowHead = (await Promise.all(heads)).map((a) =>
      a.status ?? (a.timedOut ? "open" : "closed")
    );
    const count = (xs: (number | string)[]) =>
      Object.entries(
        xs.reduce<Record<string, number>>((m, x) => ({ ...m, [x]: (m[x] ?? 0) + 1 }), {}),
      )
        .map(([k, n]) => `${k}×${n}`).join(" ");
    console.log(`abuse slowloris: bodies ${count(slowBody)}; heads after 4 s ${count(slowHead)}`);
    assert.ok(bodies.every((a) => a.status === 408), `slow bodies: ${count(slowBody)}`);
    assert.ok(slowHead.every((s) => typeof s === "string" || s < 500), count(slowHead));

    // 10,000 idle connections: this process and the daemon each hold one end.
    const limit = await fdLimit();
    // This process holds the client ends (beside whatever the other test files running in it
    // hold); the daemon, with the same limit, the server ends.
    const own = (await procStats(Deno.pid)).fds;
    const want = Math.min(10_000, Math.floor(limit - Math.max(own, before.fds) - 500));
    if (want < 10_000) console.log(`abuse idle: fd limit ${limit}, scaled down to ${want}`);
    idle.push(...await openIdle(daemon.port, want));
    const held = await procStats(pid);
    const started = performance.now();
    assert.equal(await healthz(daemon.port), "ok");
    const healthMs = Math.round(performance.now() - started);
    console.log(
      `abuse idle: ${idle.length} of ${want} idle connections open, daemon fds ${before.fds} → ${held.fds}, ` +
        `RSS ${(before.rss / 1048576).toFixed(1)} → ${
          (held.rss / 1048576).toFixed(1)
        } MB, /healthz in ${healthMs} ms`,
    );
    assert.equal(idle.length, want);
    for (const c of idle.splice(0)) c.close();
    // The daemon lets go of them: its fd count comes back (polled, bounded).
    const until = Date.now() + 10_000;
    let after = await procStats(pid);
    while (after.fds > before.fds + 20 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 200)); // a sampling interval
      after = await procStats(pid);
    }
    console.log(`abuse idle: daemon fds after closing ${after.fds}`);
    assert.ok(after.fds <= before.fds + 20, `fds ${before.fds} → ${after.fds}`);
    assert.equal(await healthz(daemon.port), "ok");
  } finally {
    for (const c of idle) c.close();
    assert.equal(await daemon.stop(), 0);
  }
});
