/**
 * Passthrough containment, end to end: the real app (`createApp`) served by `Deno.serve` in
 * this process, an injected `fetch` standing in for every upstream (it records the URL each
 * request would go to), and a raw HTTP/1.1 client, because `fetch` would resolve the
 * dot-segments the tests are about before they ever left the client.
 */
import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { breakerTiming } from "../../src/breaker/timing.ts";
import { createMemoryBreakerStore } from "../../src/breaker/mod.ts";
import { createRoutingState } from "../../src/routing/mod.ts";
import { buildRuntime } from "../../src/runtime.ts";
import { createApp } from "../../src/server/app.ts";
import { prng } from "../helpers/prng.ts";

// ---------------------------------------------------------------------------------------------
// The gateway under test, with a recording upstream
// ---------------------------------------------------------------------------------------------

interface Upstream {
  readonly url: string;
  readonly method: string;
  readonly headers: Headers;
}

interface Gateway {
  readonly port: number;
  readonly upstream: Upstream[];
  readonly logs: string[];
  close(): Promise<void>;
}

/** Every base path sits below the host root, so leaving it is observable. */
const CONFIG = `
providers:
  openai: { base_url: "http://openai.test/proxy/openai/v1", keys: [{ key: sk-conf-openai }] }
  anthropic: { base_url: "http://anthropic.test/anthropic-api/v1", keys: [{ key: sk-conf-ant }] }
  gemini: { base_url: "http://gemini.test/gem", keys: [{ key: AIza-conf-gemini }] }
  deep: { type: openai, base_url: "http://deep.test/api/v1" }
  bedrock: { enabled: true, region: us-west-2, endpoint: "http://bedrock.test/br" }
`;

/** What the recording upstream answers; by default a small JSON object. */
type Responder = (url: string) => Response;
const okJson: Responder = () =>
  new Response('{"ok":true}', { headers: { "content-type": "application/json" } });

function startGateway(yaml = CONFIG, respond: Responder = okJson): Gateway {
  const { config } = parseConfigText(yaml, () => undefined, "containment.yaml");
  const upstream: Upstream[] = [];
  const logs: string[] = [];
  const recording: typeof fetch = (input, init = {}) => {
    const url = input instanceof Request ? input.url : String(input);
    upstream.push({ url, method: init.method ?? "GET", headers: new Headers(init.headers) });
    // The request body is never needed; let it go so an upload does not wait on us.
    if (init.body instanceof ReadableStream) init.body.cancel().catch(() => {});
    return Promise.resolve(respond(url));
  };
  let seed = 1;
  const runtime = buildRuntime(config, 1, {
    fetch: recording,
    random: () => (seed = (seed * 16807) % 2147483647) / 2147483647,
    routing: createRoutingState(),
    breakerStore: createMemoryBreakerStore(breakerTiming(config.features.circuit_breaker)),
    write: (line) => logs.push(line),
  });
  const app = createApp({ runtime: () => runtime, isReady: () => true });
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    (req, info) => app.fetch(req, { remoteAddr: info.remoteAddr }),
  );
  return {
    port: server.addr.port,
    upstream,
    logs,
    async close() {
      ac.abort();
      await server.finished;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: the request-target goes out byte for byte
// ---------------------------------------------------------------------------------------------

interface RawResponse {
  readonly status: number;
  readonly headers: Map<string, string>;
  readonly body: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** One keep-alive connection; reconnects when the server closed it. */
class RawClient {
  #conn: Deno.TcpConn | null = null;
  #pending: Uint8Array = new Uint8Array(0);

  constructor(readonly port: number) {}

  /** `head` is the request line and header lines, without the final blank line. */
  async send(head: string, body = ""): Promise<RawResponse> {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (this.#conn === null) {
        this.#conn = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
        this.#pending = new Uint8Array(0);
      }
      let answered = false;
      try {
        await writeAll(this.#conn, concat(latin1(`${head}\r\n\r\n`), enc.encode(body)));
        const res = await this.#read(() => (answered = true));
        if (res.headers.get("connection")?.toLowerCase() === "close") this.close();
        return res;
      } catch (err) {
        // The server had closed the connection (after an unread body) before this request.
        this.close();
        if (answered || attempt === 1) throw err;
      }
    }
    throw new Error("unreachable");
  }

  close() {
    try {
      this.#conn?.close();
    } catch { /* already closed */ }
    this.#conn = null;
  }

  async #read(onFirstByte: () => void): Promise<RawResponse> {
    const headEnd = await this.#until(() => indexOf(this.#pending, CRLFCRLF));
    onFirstByte();
    const head = dec.decode(this.#take(headEnd + 4)).split("\r\n");
    const status = Number(head[0]?.split(" ")[1]);
    const headers = new Map<string, string>();
    for (const line of head.slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
    }
    let body = "";
    if (headers.get("transfer-encoding")?.toLowerCase() === "chunked") {
      for (;;) {
        const lineEnd = await this.#until(() => indexOf(this.#pending, CRLF));
        const size = parseInt(dec.decode(this.#take(lineEnd + 2)), 16);
        await this.#until(() => (this.#pending.length >= size + 2 ? size : -1));
        body += dec.decode(this.#take(size + 2).subarray(0, size));
        if (size === 0) break;
      }
    } else {
      const length = Number(headers.get("content-length") ?? 0);
      await this.#until(() => (this.#pending.length >= length ? length : -1));
      body = dec.decode(this.#take(length));
    }
    return { status, headers, body };
  }

  /** Read until `found()` is not -1. */
  async #until(found: () => number): Promise<number> {
    const buf = new Uint8Array(16 * 1024);
    for (;;) {
      const at = found();
      if (at >= 0) return at;
      const n = await this.#conn!.read(buf).catch(() => null);
      if (n === null) throw new Error(`connection closed: ${dec.decode(this.#pending)}`);
      this.#pending = concat(this.#pending, buf.subarray(0, n));
    }
  }

  #take(n: number): Uint8Array {
    const out = this.#pending.slice(0, n);
    this.#pending = this.#pending.slice(n);
    return out;
  }
}

const CRLF = enc.encode("\r\n");
const CRLFCRLF = enc.encode("\r\n\r\n");

/** Code points ≤ 0xff as single bytes (obs-text in header values), the rest as UTF-8. */
function latin1(s: string): Uint8Array {
  const parts: number[] = [];
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp <= 0xff) parts.push(cp);
    else parts.push(...enc.encode(ch));
  }
  return new Uint8Array(parts);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array) {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

// ---------------------------------------------------------------------------------------------
// Where each route may go, and the oracle
// ---------------------------------------------------------------------------------------------

interface Route {
  /** What the client writes before the spelling under test. */
  readonly prefix: string;
  /** The upstream origin and the base path nothing may leave. */
  readonly origin: string;
  readonly base: string;
  /** Everything the upstream sees is `origin + base + (raw path after prefix) + query`. */
  readonly format: "openai" | "anthropic" | "gemini" | "bedrock";
}

const ROUTES: readonly Route[] = [
  {
    prefix: "/openai/v1/",
    origin: "http://openai.test",
    base: "/proxy/openai/v1/",
    format: "openai",
  },
  {
    prefix: "/anthropic/v1/",
    origin: "http://anthropic.test",
    base: "/anthropic-api/v1/",
    format: "anthropic",
  },
  {
    prefix: "/gemini/v1beta/",
    origin: "http://gemini.test",
    base: "/gem/v1beta/",
    format: "gemini",
  },
  { prefix: "/gemini/v1/", origin: "http://gemini.test", base: "/gem/v1/", format: "gemini" },
  // Past the prefix the provider is known: its own API's error format.
  { prefix: "/native/gemini/", origin: "http://gemini.test", base: "/gem/", format: "gemini" },
  { prefix: "/native/deep/", origin: "http://deep.test", base: "/api/v1/", format: "openai" },
  {
    prefix: "/native/openai/",
    origin: "http://openai.test",
    base: "/proxy/openai/v1/",
    format: "openai",
  },
  { prefix: "/bedrock/", origin: "http://bedrock.test", base: "/br/", format: "bedrock" },
];

/**
 * How a lax server could read a path: percent-decoded (repeatedly), Unicode-folded,
 * backslashes as slashes, `;params` and blanks stripped, empty segments collapsed,
 * dot-segments resolved.
 */
function laxSegments(path: string): string[] {
  let s = path;
  for (let i = 0; i < 6; i++) {
    const next = s.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
      const bytes = new Uint8Array(run.length / 3);
      for (let j = 0; j < bytes.length; j++) {
        bytes[j] = parseInt(run.slice(j * 3 + 1, j * 3 + 3), 16);
      }
      return dec.decode(bytes);
    });
    if (next === s) break;
    s = next;
  }
  s = s.normalize("NFKC").replaceAll("\\", "/");
  const out: string[] = [];
  const parts = s.split("/").slice(1);
  for (let i = 0; i < parts.length; i++) {
    const seg = (parts[i]!.split(";")[0] as string).trim();
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  return out;
}

/** Why an upstream URL escapes `route`, or null when it stays inside. */
function escapeOf(route: Route, upstreamUrl: string): string | null {
  const url = URL.parse(upstreamUrl);
  if (url === null) return `unparsable ${upstreamUrl}`;
  if (url.origin !== route.origin) return `host ${url.origin}`;
  // `//host/…` reads as a network-path reference.
  if (!url.pathname.startsWith(route.base) || url.pathname.startsWith("//")) {
    return `path ${url.pathname}`;
  }
  const base = route.base.split("/").filter((s) => s !== "");
  const lax = laxSegments(url.pathname);
  if (base.some((seg, i) => lax[i] !== seg)) return `lax reading /${lax.join("/")}`;
  return null;
}

/** The error body each route speaks, for a 400. */
function assertErrorFormat(route: Route, res: RawResponse, what: string) {
  const body = JSON.parse(res.body);
  switch (route.format) {
    case "openai":
      assert.equal(body.error.type, "invalid_request_error", what);
      break;
    case "anthropic":
      assert.equal(body.type, "error", what);
      assert.equal(body.error.type, "invalid_request_error", what);
      break;
    case "gemini":
      assert.equal(body.error.status, "INVALID_ARGUMENT", what);
      assert.equal(body.error.code, 400, what);
      break;
    case "bedrock":
      assert.equal(typeof body.message, "string", what);
      assert.equal(res.headers.get("x-amzn-errortype"), "ValidationException", what);
  }
}

const get = (target: string, extra = "") =>
  `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1${extra === "" ? "" : `\r\n${extra}`}`;

// ---------------------------------------------------------------------------------------------
// The property: every prefix × every traversal spelling
// ---------------------------------------------------------------------------------------------

/** Appended to each route's prefix; every one must be refused with 400 before any upstream call. */
const TRAVERSALS: readonly string[] = [
  "../x",
  "../../x",
  "../../../../etc/passwd",
  "../models",
  "./x",
  "x/../../y",
  "x/./y",
  "x/..",
  "..",
  ".",
  "%2e%2e/x",
  "%2E%2E/x",
  "%2e%2E/%2E%2e/x",
  ".%2e/x",
  "%2e./x",
  "%2e/x",
  "%252e%252e/x",
  "%25252e%25252e/x",
  "..%2fx",
  "..%2Fx",
  "%2e%2e%2fx",
  "x%2f..%2f..%2fy",
  "x%2F%2Fy",
  "%2fx",
  "..\\x",
  "..\\..\\x",
  "%5c..%5cx",
  "x%5C..%5C..%5Cy",
  "%255c",
  "/x",
  "x//y",
  "/HOST/v1beta/models",
  "..;/x",
  "..%3b/x",
  "..%00/x",
  "..%20/x",
  "..%09/x",
  "%c0%ae%c0%ae/x",
  "%u002e%u002e/x",
  "\uff0e\uff0e/x",
  "%ef%bc%8e%ef%bc%8e/x",
  "\u2025/x",
  "x#/../../y",
];

Deno.test("passthrough containment: every prefix × every traversal spelling is a 400", async () => {
  const gw = startGateway();
  const client = new RawClient(gw.port);
  try {
    let refused = 0;
    for (const route of ROUTES) {
      for (const spelling of TRAVERSALS) {
        const target = `${route.prefix}${spelling}`;
        const before = gw.upstream.length;
        const res = await client.send(get(target));
        assert.equal(res.status, 400, `${target}: ${res.status} ${res.body}`);
        assertErrorFormat(route, res, target);
        assert.equal(gw.upstream.length, before, `${target} reached an upstream`);
        refused++;
      }
    }
    assert.ok(refused >= ROUTES.length * 30);
  } finally {
    client.close();
    await gw.close();
  }
});

Deno.test("passthrough containment: the issue's table, verbatim", async () => {
  const gw = startGateway();
  const client = new RawClient(gw.port);
  try {
    for (
      const target of [
        "/openai/v1/../../x",
        "/openai/v1/%2e%2e/%2e%2e/x",
        "/openai/v1/..\\..\\x",
        "/openai/v1/../models",
        "/anthropic/v1/../../../x",
        "/gemini/v1beta/../../x",
        "/native/gemini/%2e%2e/%2e%2e/x",
        "/gemini//HOST/v1beta/models",
        "/openai/v1/../../../../etc/passwd",
        // Hono routes on the decoded path: a percent-encoded prefix has another raw length.
        "/%6fpenai/v1/../x",
        "/%6fpenai/v1/models",
        "/native/%2e%2e/x",
        // The segments after the prefix that name the route: 400 as well, not 404.
        "/native/%6fpenai/v1/models",
        "/openai/%761/models",
        "/gemini/v1bet%61/models",
      ]
    ) {
      const res = await client.send(get(target));
      assert.equal(res.status, 400, `${target}: ${res.status} ${res.body}`);
    }
    assert.equal(gw.upstream.length, 0);
  } finally {
    client.close();
    await gw.close();
  }
});

Deno.test("passthrough containment: contained paths reach base path + raw rest, query as sent", async () => {
  const gw = startGateway();
  const client = new RawClient(gw.port);
  const cases: [string, string][] = [
    ["/openai/v1/chat/completions", "http://openai.test/proxy/openai/v1/chat/completions"],
    [
      "/openai/v1/models/ft%3Agpt-4o%3Aorg?after=a%2Fb&limit=2",
      "http://openai.test/proxy/openai/v1/models/ft%3Agpt-4o%3Aorg?after=a%2Fb&limit=2",
    ],
    // A query may hold anything, dot-segments included: it never changes the path.
    ["/openai/v1/models?/../../x=1", "http://openai.test/proxy/openai/v1/models?/../../x=1"],
    // Names with dots that are not dot-segments.
    ["/openai/v1/files/a...b/.hidden", "http://openai.test/proxy/openai/v1/files/a...b/.hidden"],
    [
      "/gemini/v1beta/models/gemini-2.5-flash:generateContent?alt=sse",
      "http://gemini.test/gem/v1beta/models/gemini-2.5-flash:generateContent?alt=sse",
    ],
    [
      "/native/gemini/v1beta/models/gemini-2.5-flash:generateContent",
      "http://gemini.test/gem/v1beta/models/gemini-2.5-flash:generateContent",
    ],
    ["/native/deep/chat/completions", "http://deep.test/api/v1/chat/completions"],
    // Bedrock keeps the raw path (`%3A`, an ARN's `%2F`) and the signed query byte for byte.
    [
      "/bedrock/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A1%3Ainference-profile%2Fus.x-v1%3A0/invoke?X-Amz-Date=20250101T000000Z&b=%7e",
      "http://bedrock.test/br/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A1%3Ainference-profile%2Fus.x-v1%3A0/invoke?X-Amz-Date=20250101T000000Z&b=%7e",
    ],
    // llm-proxy's switches are stripped; the rest of the query keeps its bytes.
    [
      "/openai/v1/models?a=%2F&llm_proxy_bypass_circuit=true&b=c+d",
      "http://openai.test/proxy/openai/v1/models?a=%2F&b=c+d",
    ],
  ];
  try {
    for (const [target, expected] of cases) {
      const before = gw.upstream.length;
      const res = await client.send(get(target, "authorization: Bearer sk-client"));
      assert.equal(res.status, 200, `${target}: ${res.body}`);
      assert.equal(gw.upstream.length, before + 1);
      assert.equal(gw.upstream.at(-1)!.url, expected);
    }
  } finally {
    client.close();
    await gw.close();
  }
});

// ---------------------------------------------------------------------------------------------
// The fuzz: 10,000 generated paths and headers
// ---------------------------------------------------------------------------------------------

// deno-fmt-ignore
const PIECES = [
  "..", ".", "%2e", "%2E", "%2e%2e", ".%2e", "%2e.", "%252e", "%25", "%2f", "%2F", "%5c",
  "%5C", "\\", "/", "//", ";", "%3b", "%00", "%20", "%09", "%0d%0a", "%c0%ae", "%u002e",
  "\uff0e", "\u2024", "\u2025", "%ef%bc%8e", "%e2%80%a5", "é", "%C3%A9", "日本", "🦈",
  "%F0%9F%A6%88", "%ff", "%zz", "%", "~", "!", "$", "&", "'", "(", ")", "*", "+", ",", "=",
  ":", "@", "|", "^", "`", "{", "}", "[", "]", '"', "<", ">", "?", "#", "models", "v1",
  "v1beta", "chat", "completions", "gemini-2.5-flash:generateContent", "model", "invoke", "a",
  "b", "x", "etc", "passwd", "HOST", "evil.com", "127.0.0.1", "http:", "https:", "file:",
];

// deno-fmt-ignore
const HEADER_VALUES = [
  "", " ", "Bearer ", "Bearer", "Bearer pf_app_key_123", "pf_app_key_123", "unused",
  "Bearer sk-client", "sk-ant-client", "AIza-client", "\u00e9\u00ff\u0080", "a\tb",
  "x".repeat(4096), "Bearer \u00ff\u00fe", "=?utf-8?q?x?=", '()<>@,;:\\"/[]?={}',
];
// deno-fmt-ignore
const HEADER_NAMES = [
  "authorization", "x-api-key", "x-goog-api-key", "api-key", "x-pilotfish-app-key",
  "x-butter-app-key", "x-llm-proxy-bypass-circuit", "anthropic-version", "x-custom-Ünicode",
  "content-type", "x-forwarded-host", "x-original-url", "x-rewrite-url",
];
// deno-fmt-ignore
const HOSTS = [
  "127.0.0.1", "evil.com", "a/openai/v1/..", "a?b", "a#b", "a:b:c", "[::1]:80", "a\\b",
  "user@evil.com", "openai.test", "", "a/../..",
];
/** Hosts the Host guard lets through: most cases use one, so the path rules get exercised. */
const PLAIN_HOSTS = ["127.0.0.1", "evil.com", "[::1]:80", "openai.test", "localhost:9002"];

function fuzzCase(rand: () => number): { route: Route; head: string; body: string } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const route = pick(ROUTES);
  let rest = "";
  const n = 1 + Math.floor(rand() * 6);
  for (let i = 0; i < n; i++) {
    const parts = 1 + Math.floor(rand() * 3);
    let seg = "";
    for (let j = 0; j < parts; j++) seg += pick(PIECES);
    rest += (i === 0 ? "" : "/") + seg;
  }
  // Raw spaces and controls would not even parse as HTTP: keep those percent-encoded.
  rest = rest.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x20\x7f]/g,
    (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
  const query = rand() < 0.3 ? `?${pick(PIECES)}=${pick(PIECES)}&key=${pick(HEADER_VALUES)}` : "";
  const target = `${route.prefix}${rest}${query}`.replace(/ /g, "%20").replace(/\t/g, "%09");
  const lines = [
    `${rand() < 0.8 ? "GET" : "POST"} ${target} HTTP/1.1`,
    `Host: ${pick(rand() < 0.8 ? PLAIN_HOSTS : HOSTS)}`,
  ];
  const headerCount = Math.floor(rand() * 4);
  for (let i = 0; i < headerCount; i++) lines.push(`${pick(HEADER_NAMES)}: ${pick(HEADER_VALUES)}`);
  const post = lines[0]!.startsWith("POST");
  const body = post ? JSON.stringify({ model: pick(PIECES), messages: [] }) : "";
  if (post) {
    lines.push("content-type: application/json", `content-length: ${enc.encode(body).length}`);
  }
  return { route, head: lines.join("\r\n"), body };
}

Deno.test("the fuzz oracle flags what the unguarded router used to send", () => {
  const [openai, , gemini] = ROUTES as [Route, Route, Route];
  for (
    const [route, url] of [
      [openai, "http://openai.test/proxy/openai/models"],
      [openai, "http://openai.test/"],
      [openai, "http://openai.test/proxy/openai/v1/%2e%2e/%2e%2e/x"],
      [openai, "http://openai.test/proxy/openai/v1/..%5c..%5cx"],
      [openai, "http://openai.test/proxy/openai/v1/%252e%252e/%252e%252e/%252e%252e/x"],
      [openai, "http://evil.test/proxy/openai/v1/models"],
      [gemini, "http://gemini.test/gem//HOST/v1beta/models"],
      [gemini, "http://gemini.test//HOST/v1beta/models"],
    ] as const
  ) {
    assert.notEqual(escapeOf(route, url), null, url);
  }
  assert.equal(escapeOf(openai, "http://openai.test/proxy/openai/v1/a/..%2e/x;/%20"), null);
});

Deno.test("passthrough containment fuzz: 10,000 generated requests, 0 escapes, 0 5xx", async () => {
  const gw = startGateway();
  const client = new RawClient(gw.port);
  const rand = prng(0x5eed);
  const counts = { requests: 0, forwarded: 0, refused400: 0, other4xx: 0, escapes: 0, fivexx: 0 };
  const failures: string[] = [];
  const started = performance.now();
  try {
    for (let i = 0; i < 10_000; i++) {
      const { route, head, body } = fuzzCase(rand);
      const before = gw.upstream.length;
      const res = await client.send(head, body);
      counts.requests++;
      const reached = gw.upstream.slice(before);
      if (res.status >= 500) {
        counts.fivexx++;
        failures.push(`${res.status} for ${JSON.stringify(head)}: ${res.body}`);
      } else if (res.status === 400) counts.refused400++;
      else if (res.status >= 400) counts.other4xx++;
      for (const up of reached) {
        counts.forwarded++;
        const escape = escapeOf(route, up.url);
        // A pf_ key is never forwarded, in any header.
        const leaked = [...up.headers].find(([, v]) => /pf_app_key/.test(v));
        if (escape !== null || leaked) {
          counts.escapes++;
          failures.push(`${escape ?? `pf_ key in ${leaked![0]}`} for ${JSON.stringify(head)}`);
        }
      }
      if (res.status !== 200 && reached.length > 0) {
        failures.push(`${res.status} after an upstream call for ${JSON.stringify(head)}`);
      }
    }
  } finally {
    client.close();
    await gw.close();
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  // deno-lint-ignore no-console
  console.log(`passthrough fuzz (${seconds}s): ${JSON.stringify(counts)}`);
  assert.deepEqual(failures.slice(0, 20), []);
  assert.equal(counts.requests, 10_000);
  assert.equal(counts.escapes, 0);
  assert.equal(counts.fivexx, 0);
  assert.ok(counts.forwarded > 500, "the fuzz also exercises paths that are forwarded");
  assert.ok(counts.refused400 > 1_000, "and paths that are refused");
});

// ---------------------------------------------------------------------------------------------
// The unified routes: client input that ends up in an upstream URL
// ---------------------------------------------------------------------------------------------

const FIXTURES = new URL("../fixtures/", import.meta.url);

Deno.test("unified routes: a model name or x-gateway field never moves the upstream URL", async (t) => {
  const gemini = await Deno.readTextFile(new URL("gemini/response_text.json", FIXTURES));
  const anthropic = await Deno.readTextFile(new URL("anthropic/response_text.json", FIXTURES));
  const openai = await Deno.readTextFile(new URL("openai/response_text.json", FIXTURES));
  const gw = startGateway(
    `
providers:
  openai: { base_url: "http://openai.test/proxy/openai/v1", keys: [{ key: sk-conf-openai }] }
  anthropic: { base_url: "http://anthropic.test/anthropic-api/v1", keys: [{ key: sk-conf-ant }] }
  gemini: { base_url: "http://gemini.test/gem", keys: [{ key: AIza-conf-gemini }] }
  azure: { base_url: "http://azure.test", keys: [{ key: az-conf }] }
routing:
  failover: { enabled: false }
`,
    (url) =>
      new Response(
        url.startsWith("http://gemini.test")
          ? gemini
          : url.startsWith("http://anthropic.test")
          ? anthropic
          : openai,
        { headers: { "content-type": "application/json" } },
      ),
  );
  const base = `http://127.0.0.1:${gw.port}`;
  const chat = async (model: string, extra: Record<string, unknown> = {}) => {
    const before = gw.upstream.length;
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], ...extra }),
    });
    const body = await res.json();
    return { status: res.status, body, urls: gw.upstream.slice(before).map((u) => u.url) };
  };
  const NAMES = ["../../x", "a/../../b", "x?key=1", "x#y", "%2e%2e", "..", "."];
  try {
    await t.step("OpenAI and Anthropic carry the model in the body: the URL is fixed", async () => {
      for (const name of NAMES) {
        const o = await chat(`openai/${name}`);
        assert.equal(o.status, 200, `${name}: ${JSON.stringify(o.body)}`);
        assert.deepEqual(o.urls, ["http://openai.test/proxy/openai/v1/chat/completions"]);
        const a = await chat(`anthropic/${name}`);
        assert.equal(a.status, 200, `${name}: ${JSON.stringify(a.body)}`);
        assert.deepEqual(a.urls, ["http://anthropic.test/anthropic-api/v1/messages"]);
      }
    });

    await t.step("Azure: the deployment is one encoded segment, or a 400", async () => {
      const expected: Record<string, string | null> = {
        "../../x": "..%2F..%2Fx",
        "a/../../b": "a%2F..%2F..%2Fb",
        "x?key=1": "x%3Fkey%3D1",
        "x#y": "x%23y",
        "%2e%2e": "%252e%252e",
        "..": null,
        ".": null,
      };
      for (const name of NAMES) {
        const r = await chat(`azure/${name}`);
        const segment = expected[name];
        if (segment === null) {
          assert.equal(r.status, 400, name);
          assert.equal(r.body.error.param, "model", name);
          assert.deepEqual(r.urls, [], name);
          continue;
        }
        assert.equal(r.status, 200, `${name}: ${JSON.stringify(r.body)}`);
        assert.deepEqual(r.urls, [
          `http://azure.test/openai/deployments/${segment}/chat/completions?api-version=2024-10-21`,
        ]);
        assert.equal(
          new URL(r.urls[0]!).pathname,
          `/openai/deployments/${segment}/chat/completions`,
        );
      }
    });

    await t.step(
      "Gemini: a model id outside Gemini's alphabet is a 400, nothing sent",
      async () => {
        for (const name of NAMES) {
          const r = await chat(`gemini/${name}`);
          assert.equal(r.status, 400, `${name}: ${JSON.stringify(r.body)}`);
          assert.equal(r.body.error.param, "model");
          assert.deepEqual(r.urls, []);
        }
        const ok = await chat("gemini/gemini-2.5-flash");
        assert.equal(ok.status, 200);
        assert.deepEqual(ok.urls, [
          "http://gemini.test/gem/v1beta/models/gemini-2.5-flash:generateContent",
        ]);
      },
    );

    await t.step("x-gateway.provider names a configured provider or is a 404", async () => {
      for (const pin of ["../../x", "http://evil.test", "constructor", "__proto__", "openai/.."]) {
        const r = await chat("gpt-4o", { "x-gateway": { provider: pin } });
        assert.equal(r.status, 404, `${pin}: ${JSON.stringify(r.body)}`);
        assert.deepEqual(r.urls, []);
      }
      const pinned = await chat("../x", { "x-gateway": { provider: "azure" } });
      assert.equal(pinned.status, 200);
      assert.deepEqual(pinned.urls, [
        "http://azure.test/openai/deployments/..%2Fx/chat/completions?api-version=2024-10-21",
      ]);
    });

    await t.step("/native/{provider} names an own configured provider or is a 404", async () => {
      for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
        const res = await fetch(`${base}/native/${name}/v1/models`);
        assert.equal(res.status, 404, name);
        assert.match((await res.json()).error.message, /Unknown provider/);
      }
    });
  } finally {
    await gw.close();
  }
});

Deno.test("native credentials go where each API reads them (Azure's api-key)", async () => {
  const gw = startGateway(`
providers:
  azure: { base_url: "http://azure.test", keys: [{ key: az-conf }] }
  azlocked: { type: azure, base_url: "http://azure.test", credential_mode: gateway, keys: [{ key: az-locked }] }
`);
  const path = "/openai/deployments/d1/chat/completions?api-version=2024-10-21";
  const send = async (provider: string, headers: Record<string, string>) => {
    const res = await fetch(`http://127.0.0.1:${gw.port}/native/${provider}${path}`, {
      method: "POST",
      headers,
      body: "{}",
    });
    await res.body?.cancel();
    assert.equal(res.status, 200);
    const up = gw.upstream.at(-1)!;
    assert.equal(up.url, `http://azure.test${path}`);
    return up.headers;
  };
  try {
    let h = await send("azure", {});
    assert.equal(h.get("api-key"), "az-conf");
    assert.equal(h.get("authorization"), null);
    h = await send("azure", { "api-key": "az-client" });
    assert.equal(h.get("api-key"), "az-client");
    h = await send("azure", { authorization: "Bearer entra-token" });
    assert.equal(h.get("authorization"), "Bearer entra-token", "an Entra token passes");
    assert.equal(h.get("api-key"), null);
    h = await send("azure", { "api-key": "", authorization: "Bearer pf_app_key_1" });
    assert.equal(h.get("api-key"), "az-conf", "empty and pf_ credentials count as none");
    assert.equal(h.get("authorization"), null);
    h = await send("azlocked", { "api-key": "az-client", authorization: "Bearer entra" });
    assert.equal(h.get("api-key"), "az-locked");
    assert.equal(h.get("authorization"), null);
  } finally {
    await gw.close();
  }
});
