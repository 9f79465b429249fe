/**
 * Whole (non-stream) response bodies, kept on the exchange so the access log can report
 * `bytes`: Deno computes `Content-Length` only as the response goes out, after the line was
 * written. The body is not encoded here nor the header set: a string body is Deno.serve's
 * cheapest path (bytes plus an explicit length measured 10-15 us slower per request), so a
 * string's UTF-8 length is counted when the line is written (one regex test for ASCII). Kept
 * on the exchange, not on the Response: a property of ours would give Deno's Response objects
 * a second shape.
 * @module
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Exchange } from "../pipeline/exchange.ts";
import type { AppEnv } from "../routes/context.ts";

/** A response whose body is `body`, kept on `ex` for `bodyBytes`. */
export function wholeResponse(
  ex: Exchange | undefined,
  body: string | Uint8Array<ArrayBuffer>,
  status: number,
  headers: Record<string, string>,
): Response {
  if (ex !== undefined) ex.wholeBody = body;
  return new Response(body, { status, headers });
}

const TYPES = {
  json: "application/json",
  text: "text/plain; charset=UTF-8",
  html: "text/html; charset=UTF-8",
} as const;

/**
 * Hono's `c.json` / `c.text` / `c.html`, the body kept for `bodyBytes` (headers from
 * `c.header` still apply): `kind` names the content type, `headers` may override it.
 */
export function send(
  c: Context<AppEnv>,
  kind: keyof typeof TYPES,
  body: unknown,
  status: ContentfulStatusCode = 200,
  headers: Record<string, string> = {},
): Response {
  const text = kind === "json" ? JSON.stringify(body) : String(body);
  const ex = c.get("exchange") as Exchange | undefined;
  if (ex !== undefined) ex.wholeBody = text;
  return c.body(text, status, { "content-type": TYPES[kind], ...headers });
}

/**
 * The byte length of the whole body built for `ex` (else `res`'s Content-Length, else null),
 * read once: the body is let go of here (an admin answer may hold a new key's value).
 */
export function bodyBytes(ex: Exchange, res: Response): number | null {
  const body = ex.wholeBody;
  ex.wholeBody = null;
  // Hono answers HEAD with the GET handler's response and drops its body afterwards.
  if (ex.method === "HEAD") return 0;
  if (body === null) {
    const length = Number(res.headers.get("content-length") ?? NaN);
    return Number.isFinite(length) ? length : null;
  }
  if (typeof body !== "string") return body.byteLength;
  // ASCII (most JSON): one char, one byte; else counted without encoding a copy.
  return /[\u0080-\uffff]/.test(body) ? utf8Length(body) : body.length;
}

/** UTF-8 bytes of `s` as TextEncoder writes it (a lone surrogate becomes U+FFFD, 3 bytes). */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c < 0xdc00 && c >= 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 2; // a pair: two units, four bytes
      i++;
    } else n += 2;
  }
  return n;
}
