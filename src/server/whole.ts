/**
 * Whole (non-stream) response bodies, remembered so the access log can report `bytes`: Deno
 * computes `Content-Length` only as the response goes out, after the line was written. The
 * body is not encoded here nor the header set: a string body is Deno.serve's cheapest path
 * (bytes plus an explicit length measured 10-15 µs slower per request), so a string's
 * UTF-8 length is computed only when the line asks for it.
 * @module
 */
import type { Context } from "hono";
import { Slot } from "../slot.ts";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** A Slot, not a WeakMap: per-response entries would survive scavenges (src/slot.ts). */
const bodies = new Slot<Response, string | Uint8Array>("wholeBody");
const utf8 = new TextEncoder();

/** A response whose body is `body`, remembered for `bodyBytes`. */
export function wholeResponse(
  body: string | Uint8Array<ArrayBuffer>,
  status: number,
  headers: Record<string, string>,
): Response {
  const res = new Response(body, { status, headers });
  bodies.set(res, body);
  return res;
}

const TYPES = {
  json: "application/json",
  text: "text/plain; charset=UTF-8",
  html: "text/html; charset=UTF-8",
} as const;

/**
 * Hono's `c.json` / `c.text` / `c.html`, remembered for `bodyBytes` (headers from `c.header`
 * still apply): `kind` names the content type, `headers` may override it.
 */
export function send(
  c: Context,
  kind: keyof typeof TYPES,
  body: unknown,
  status: ContentfulStatusCode = 200,
  headers: Record<string, string> = {},
): Response {
  const text = kind === "json" ? JSON.stringify(body) : String(body);
  const res = c.body(text, status, { "content-type": TYPES[kind], ...headers });
  bodies.set(res, text);
  return res;
}

/** The byte length of a whole body made here (else its `Content-Length`, else null). */
export function bodyBytes(res: Response): number | null {
  const body = bodies.get(res);
  if (body === undefined) {
    const length = Number(res.headers.get("content-length") ?? NaN);
    return Number.isFinite(length) ? length : null;
  }
  if (typeof body !== "string") return body.byteLength;
  // ASCII (most JSON): one char, one byte; else count the encoding.
  return /[\u0080-\uffff]/.test(body) ? utf8.encode(body).byteLength : body.length;
}
