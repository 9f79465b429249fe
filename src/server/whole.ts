/**
 * Whole (non-stream) response bodies sent with their `Content-Length`: Deno computes it only
 * as the response goes out, and the access log reports it as `bytes` when the handler ends.
 * @module
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

const utf8 = new TextEncoder();

/** A response whose body is `body` (a string goes out as UTF-8), with its length. */
export function wholeResponse(
  body: string | Uint8Array<ArrayBuffer>,
  status: number,
  headers: Record<string, string>,
): Response {
  const bytes = typeof body === "string" ? utf8.encode(body) : body;
  return new Response(bytes, {
    status,
    headers: { ...headers, "content-length": String(bytes.byteLength) },
  });
}

const TYPES = {
  json: "application/json",
  text: "text/plain; charset=UTF-8",
  html: "text/html; charset=UTF-8",
} as const;

/**
 * Hono's `c.json` / `c.text` / `c.html` with the length set (headers from `c.header` still
 * apply): `kind` names the content type, `headers` may override it.
 */
export function send(
  c: Context,
  kind: keyof typeof TYPES,
  body: unknown,
  status: ContentfulStatusCode = 200,
  headers: Record<string, string> = {},
): Response {
  const bytes = utf8.encode(kind === "json" ? JSON.stringify(body) : String(body));
  return c.body(bytes, status, {
    "content-type": TYPES[kind],
    ...headers,
    "content-length": String(bytes.byteLength),
  });
}
