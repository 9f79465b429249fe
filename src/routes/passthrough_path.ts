/**
 * Containment of native passthrough paths. `Deno.serve` hands the request-target over
 * verbatim (`/openai/v1/../../x`, `%2e%2e` still encoded), while `new URL(url).pathname`
 * resolves dot-segments: cutting the upstream path from the resolved URL let a client move
 * the request outside the provider's base path with the configured key attached. So the
 * upstream path is cut from the raw string, and anything an upstream (or a proxy in front of
 * it) could read as a different segment structure is refused before any upstream call.
 * Pure: no I/O.
 * @module
 */

/** A request-target as the client sent it: path and query (with its `?`, or ""). */
export interface RawTarget {
  readonly path: string;
  readonly query: string;
  /** True when the target carried a `#` (never valid in a request-target). */
  readonly fragment: boolean;
}

/**
 * Split `request.url` (as `Deno.serve` builds it: `http://` + Host + raw request-target) into
 * the raw path and query. The path starts at the first `/` after the scheme's `://`, exactly
 * where Hono starts routing, so the route that matched and the path checked here agree even
 * when a Host header holds odd characters.
 */
export function rawTarget(url: string): RawTarget {
  const start = url.indexOf("/", url.indexOf(":") + 4);
  const target = start < 0 ? "/" : url.slice(start);
  const hash = target.indexOf("#");
  const body = hash < 0 ? target : target.slice(0, hash);
  const q = body.indexOf("?");
  return {
    path: q < 0 ? body : body.slice(0, q),
    query: q < 0 ? "" : body.slice(q),
    fragment: hash >= 0,
  };
}

/** How many rounds of percent-decoding are checked (`%25252e` is `.` after three). */
const DECODE_ROUNDS = 4;
const LENIENT_UTF8 = new TextDecoder("utf-8");

/**
 * Why `path` (a whole raw path, starting with `/`) cannot be forwarded, or null when it can.
 * Refused: a dot-segment (`.`, `..`) in any spelling (`%2e`, `%2E`, mixed, encoded several
 * times, Unicode look-alikes that NFKC folds to `.`, `..;param`, padded with blanks, overlong
 * UTF-8, `%u002e`), a backslash (raw or encoded), an empty segment (`//`, leading or inside; a
 * trailing `/` is fine), an encoded slash, and control characters once decoded. An encoded
 * slash is let through only inside a segment the provider's API names as opaque (`opaque`:
 * Bedrock's `arn%3Aaws%3Abedrock%3A...%2F...`). (A `#` is the caller's to refuse: `rawTarget`
 * reports it.)
 */
export function containmentProblem(
  path: string,
  /** The provider API's segments that may carry an encoded slash (`NativeApi.opaqueSegment`). */
  opaque?: RegExp,
): string | null {
  if (!path.startsWith("/")) return "The path must start with /";
  const segments = path.slice(1).split("/");
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string;
    if (segment === "") {
      if (i === segments.length - 1) continue; // trailing slash
      return "The path has an empty segment (//)";
    }
    const problem = segmentProblem(segment, opaque);
    if (problem !== null) return problem;
  }
  return null;
}

function segmentProblem(segment: string, opaque: RegExp | undefined): string | null {
  let current = segment;
  for (let round = 0; round <= DECODE_ROUNDS; round++) {
    const problem = formProblem(current, opaque) ??
      (isPlainAscii(current) ? null : formProblem(current.normalize("NFKC"), opaque));
    if (problem !== null) return problem;
    // IIS-style `%u002e`, and bytes that are not UTF-8 (overlong `%c0%ae` is `.` to lax
    // decoders): no API path needs them.
    if (/%u[0-9a-f]{4}/i.test(current)) return "The path has a %u escape";
    if (!validUtf8Escapes(current)) return "The path has percent-encoded bytes that are not UTF-8";
    const next = percentDecode(current);
    if (next === current) return null;
    current = next;
  }
  return "The path is percent-encoded too many times";
}

/** One spelling of a segment: as sent, percent-decoded, or Unicode-folded. */
function formProblem(form: string, opaque: RegExp | undefined): string | null {
  if (form.includes("\\")) return "The path has a backslash";
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(form)) return "The path has a control character";
  const pieces = form.split("/");
  if (pieces.length > 1 && pieces.includes("")) {
    return "The path has an encoded slash that makes an empty segment";
  }
  if (pieces.some(isDotSegment)) return "The path has a dot-segment (. or ..)";
  return pieces.length > 1 && !opaque?.test(form) ? "The path has an encoded slash" : null;
}

/**
 * `.` or `..`, also as servers that strip `;params`, trim blanks or cut a decoded `?`/`#` see
 * it (`..;x`, `.. `, `..%3f`).
 */
function isDotSegment(piece: string): boolean {
  if (!piece.includes(".")) return false;
  const bare = (piece.split(/[;?#]/)[0] as string).trim();
  return piece === "." || piece === ".." || bare === "." || bare === "..";
}

/** Printable ASCII: NFKC leaves it as it is. */
function isPlainAscii(s: string): boolean {
  return /^[\x20-\x7e]*$/.test(s);
}

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

function validUtf8Escapes(s: string): boolean {
  for (const run of s.match(/(?:%[0-9A-Fa-f]{2})+/g) ?? []) {
    try {
      STRICT_UTF8.decode(escapeBytes(run));
    } catch {
      return false;
    }
  }
  return true;
}

function escapeBytes(run: string): Uint8Array {
  const bytes = new Uint8Array(run.length / 3);
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = parseInt(run.slice(i * 3 + 1, i * 3 + 3), 16);
  }
  return bytes;
}

/** One round of percent-decoding; invalid escapes stay as written, bad UTF-8 becomes U+FFFD. */
export function percentDecode(s: string): string {
  if (!s.includes("%")) return s;
  return s.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => LENIENT_UTF8.decode(escapeBytes(run)));
}

/**
 * The raw path after `prefix` (`/openai` -> `/v1/chat/completions`), or null when the path
 * does not start with the prefix as written: Hono routes on a percent-decoded path, so
 * `/%6fpenai/v1/x` reaches the `/openai/*` handler although its raw text has another length.
 */
export function restAfter(path: string, prefix: string): string | null {
  if (path === prefix) return "";
  return path.startsWith(`${prefix}/`) ? path.slice(prefix.length) : null;
}

/**
 * The query without the parameters named in `drop` (compared percent-decoded), every other
 * byte kept as the client sent it: a SigV4-signed query must reach AWS unchanged.
 */
export function withoutParams(query: string, drop: (name: string, value: string) => boolean) {
  if (query === "" || query === "?") return query;
  const pairs = query.slice(1).split("&");
  const kept = pairs.filter((pair) => {
    const eq = pair.indexOf("=");
    const name = decodeParam(eq < 0 ? pair : pair.slice(0, eq));
    const value = eq < 0 ? "" : decodeParam(pair.slice(eq + 1));
    return !drop(name, value);
  });
  if (kept.length === pairs.length) return query;
  return kept.length === 0 ? "" : `?${kept.join("&")}`;
}

/** A query parameter's name or value as `URLSearchParams` reads it. */
export function decodeParam(s: string): string {
  return percentDecode(s.replaceAll("+", " "));
}

/** The value of the first query parameter called `name`, or null. */
export function queryParam(query: string, name: string): string | null {
  if (query.length <= 1) return null;
  for (const pair of query.slice(1).split("&")) {
    const eq = pair.indexOf("=");
    if (decodeParam(eq < 0 ? pair : pair.slice(0, eq)) === name) {
      return eq < 0 ? "" : decodeParam(pair.slice(eq + 1));
    }
  }
  return null;
}
