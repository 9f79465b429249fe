/**
 * Generated abuse for the fuzz tests: a seeded stream of hostile HTTP requests (bodies,
 * content types, methods and routes), reproducible from the seed a failure prints.
 * @module
 */

import { prng } from "../helpers/prng.ts";

/** Which error envelope a route answers in (see README, "Errors"). */
export type Format = "openai" | "anthropic" | "google" | "aws";

export interface Route {
  readonly path: string;
  readonly format: Format;
  /** A valid body for it, the seed the mutations start from. */
  readonly valid: Record<string, unknown>;
}

const chat = { model: "mock/echo", messages: [{ role: "user", content: "hello there" }] };

export const ROUTES: readonly Route[] = [
  { path: "/v1/chat/completions", format: "openai", valid: chat },
  { path: "/v1/chat/completions", format: "openai", valid: { ...chat, stream: true } },
  {
    path: "/v1/messages",
    format: "anthropic",
    valid: { model: "mock/echo", max_tokens: 16, messages: [{ role: "user", content: "hi" }] },
  },
  { path: "/v1/embeddings", format: "openai", valid: { model: "mock/embed", input: "hi" } },
  { path: "/openai/v1/chat/completions", format: "openai", valid: chat },
  {
    path: "/anthropic/v1/messages",
    format: "anthropic",
    valid: { model: "claude", max_tokens: 16, messages: [{ role: "user", content: "hi" }] },
  },
  {
    path: "/gemini/v1beta/models/gemini-2.0-flash:generateContent",
    format: "google",
    valid: { contents: [{ role: "user", parts: [{ text: "hi" }] }] },
  },
  { path: "/native/up/v1/chat/completions", format: "openai", valid: chat },
];

export interface Generated {
  readonly kind: string;
  readonly route: Route;
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array<ArrayBuffer> | null;
}

const enc = new TextEncoder();

/** Nested arrays or objects `depth` deep, as JSON text. */
export function nested(depth: number, kind: "array" | "object"): string {
  return kind === "array"
    ? "[".repeat(depth) + "]".repeat(depth)
    : '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
}

const CONTENT_TYPES = [
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/json; charset=latin1",
  "application/xml",
  "",
  "application/json\u00e9",
  "*/*",
];

const WEIRD_VALUES: unknown[] = [
  null,
  true,
  -1,
  1e308,
  "",
  "x".repeat(5000),
  [],
  {},
  [null],
  JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":1}}'),
  "\u0000\u0001\u001f",
  "mock/../../etc/passwd",
  "mock/\u00e9\u4e2d\ud83d\ude00",
  "\ud800",
  "mock/\udc00x",
];

/** The body cases: each returns the bytes to send (and a content type when it matters). */
const BODY_KINDS: Record<
  string,
  (
    r: () => number,
    route: Route,
    maxBody: number,
  ) => { body: Uint8Array<ArrayBuffer>; type?: string }
> = {
  valid: (_r, route) => ({ body: enc.encode(JSON.stringify(route.valid)) }),
  truncated: (r, route) => {
    const text = JSON.stringify(route.valid);
    return { body: enc.encode(text.slice(0, Math.floor(r() * text.length))) };
  },
  mutated: (r, route) => {
    const bytes = enc.encode(JSON.stringify(route.valid));
    for (let i = 0, n = 1 + Math.floor(r() * 4); i < n; i++) {
      bytes[Math.floor(r() * bytes.length)] = Math.floor(r() * 256);
    }
    return { body: bytes };
  },
  trailing_garbage: (r, route) => ({
    body: enc.encode(JSON.stringify(route.valid) + ["}", "]", ",", " x", "\u0000"][pick(r, 5)]),
  }),
  deep_nesting: (r, route) => {
    const depth = [64, 1_000, 10_000, 30_000][pick(r, 4)]!;
    const deep = nested(depth, r() < 0.5 ? "array" : "object");
    const text = r() < 0.5
      ? deep
      : JSON.stringify({ ...route.valid, metadata: "@@" }).replace('"@@"', deep);
    return { body: enc.encode(text) };
  },
  huge: (r, route, maxBody) => {
    // Just over the limit (413 while reading), or just under it with one long string.
    const size = r() < 0.5 ? maxBody + 1 + Math.floor(r() * maxBody) : maxBody - 200;
    const filler = "a".repeat(Math.max(0, size - JSON.stringify(route.valid).length - 20));
    return { body: enc.encode(JSON.stringify({ ...route.valid, filler })) };
  },
  many_keys: (r, route) => {
    const obj: Record<string, unknown> = { ...route.valid };
    for (let i = 0, n = 500 + Math.floor(r() * 3000); i < n; i++) obj[`k${i}`] = i;
    return { body: enc.encode(JSON.stringify(obj)) };
  },
  invalid_utf8: (r, route) => {
    const text = JSON.stringify(route.valid);
    const at = text.indexOf("hi") >= 0 ? text.indexOf("hi") : Math.floor(text.length / 2);
    const bad = [[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x80]][
      pick(r, 5)
    ]!;
    const head = enc.encode(text.slice(0, at));
    const tail = enc.encode(text.slice(at));
    const out = new Uint8Array(head.length + bad.length + tail.length);
    out.set(head);
    out.set(bad, head.length);
    out.set(tail, head.length + bad.length);
    return { body: out };
  },
  wrong_types: (r, route) => {
    const keys = Object.keys(route.valid);
    const obj: Record<string, unknown> = { ...route.valid };
    obj[keys[pick(r, keys.length)]!] = WEIRD_VALUES[pick(r, WEIRD_VALUES.length)];
    if (r() < 0.3) {
      obj.messages = [{ role: "user", content: WEIRD_VALUES[pick(r, WEIRD_VALUES.length)] }];
    }
    return { body: enc.encode(JSON.stringify(obj)) };
  },
  not_an_object: (r) => ({
    body: enc.encode(["null", "[]", '"text"', "1e999", "-0", "true", "", " ", "{}"][pick(r, 9)]!),
  }),
  wrong_content_type: (r, route) => ({
    body: enc.encode(JSON.stringify(route.valid)),
    type: CONTENT_TYPES[pick(r, CONTENT_TYPES.length)]!,
  }),
  random_bytes: (r) => {
    const out = new Uint8Array(1 + Math.floor(r() * 512));
    for (let i = 0; i < out.length; i++) out[i] = Math.floor(r() * 256);
    return { body: out };
  },
};

export const KINDS = Object.keys(BODY_KINDS);
// TRACE and CONNECT: a Request cannot carry them (fetch forbids them); wire_test.ts sends them raw.
const METHODS = ["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

function pick(r: () => number, n: number): number {
  return Math.floor(r() * n);
}

/** The `i`-th request of the stream seeded `seed` (same inputs, same request). */
export function generate(seed: number, i: number, maxBody: number): Generated {
  const r = prng(seed * 1_000_003 + i);
  const route = ROUTES[pick(r, ROUTES.length)]!;
  // One in twenty with a wrong method (no body): 405/404 territory.
  if (r() < 0.05) {
    return {
      kind: "method",
      route,
      method: METHODS[pick(r, METHODS.length)]!,
      headers: {},
      body: null,
    };
  }
  const kind = KINDS[pick(r, KINDS.length)]!;
  const { body, type } = BODY_KINDS[kind]!(r, route, maxBody);
  const headers: Record<string, string> = { authorization: "Bearer sk-client" };
  if (type !== undefined) {
    if (type !== "") headers["content-type"] = type;
  } else headers["content-type"] = "application/json";
  if (route.format === "anthropic") headers["anthropic-version"] = "2023-06-01";
  return { kind, route, method: "POST", headers, body };
}
