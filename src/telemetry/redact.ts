/**
 * Shapes of credentials that may show up in upstream error text, paths or query strings,
 * as one alternation so a line is scanned once: `Bearer` values, OpenAI/Anthropic `sk-`
 * keys (also masked "sk-ab***yz"), Pilotfish `pf_` keys, Google `AIza` keys, AWS access key
 * ids, and `key=`/`api_key=`/`token=` query values (group 1 keeps the parameter name). A
 * value ends at a backslash too: the text is often JSON, where `\"` closes the string the
 * value sits in, and taking the backslash would leave that quote unescaped (invalid JSON).
 * `pf_` is matched in lower case only: Pilotfish mints its keys so, and an upper-case
 * `PF_...` is an env var's name (a reload's missing `--allow-env=PF_...`), not a secret.
 */
const SECRET_RE =
  // deno-lint-ignore no-invalid-regexp -- `(?-i:...)` (ES2025 modifiers) runs in V8; the linter's parser predates it
  /([?&](?:key|api_key|token)=)[^&\s"\\]+|\bBearer\s+[^\s",;\\]+|\bsk-[A-Za-z0-9_*-]{6,}|(?-i:\bpf_[A-Za-z0-9_-]{6,})|\bAIza[0-9A-Za-z_-]{20,}|\bAKIA[0-9A-Z]{16}\b/gi;
/** The same shapes but `Bearer` values: for our own error bodies, which say how to send one. */
const KEY_SHAPES_RE = new RegExp(SECRET_RE.source.replace(/\|\\bBearer[^|]*/, ""), "gi");

const replaceSecret = (_match: string, param: string | undefined) =>
  param === undefined ? "[REDACTED]" : `${param}[REDACTED]`;

export interface Redactor {
  (text: string): string;
  /**
   * Whether `text` holds anything the redactor would take out: one scan, no copy (a plugin's
   * input is built per call, and every header value is checked).
   */
  readonly holds?: (text: string) => boolean;
}

/**
 * Build a redactor that removes the given secrets (configured provider keys, the admin
 * token) and anything shaped like a credential. Built once per config, applied to every
 * log line and every error message that may carry upstream text.
 */
export function createRedactor(
  secrets: Iterable<string>,
  opts: {
    readonly encoded?: boolean;
    /**
     * false: a `Bearer` value is left alone (our own error messages name the header to send,
     * "Authorization: Bearer pf_..."); keys are still taken out by their shapes.
     */
    readonly bearer?: boolean;
  } = {},
): Redactor {
  const shapes = opts.bearer === false ? KEY_SHAPES_RE : SECRET_RE;
  const plain = [...secrets].filter((s) => s.length >= 4);
  // Base64 forms (upstream text, which may echo a credential encoded) cost six more scans a
  // secret: the access log, which carries no upstream text of its own, goes without them.
  const encoded = opts.encoded === false
    ? []
    : [...new Set(plain.filter((s) => s.length >= 8).flatMap(inBase64))]
      .sort((a, b) => b.length - a.length)
      // With the characters after it that still carry its last bytes (and the padding).
      .map((form) => ({ form, tail: new RegExp(`${escapeRe(form)}${B64_TAIL}`, "g") }));
  const exact = [...new Set(plain)].sort((a, b) => b.length - a.length);
  // Exact secrets and their encoded forms match case-sensitively, the shapes as SECRET_RE does.
  const literal = [...exact, ...encoded.map((e) => e.form)].map(escapeRe).join("|");
  const anywhere = new RegExp(
    `${literal === "" ? "" : `(?-i:${literal})|`}${shapes.source}`,
    "i",
  );
  const redact = (text: string): string => {
    let out = text;
    for (const s of exact) {
      if (out.includes(s)) out = out.replaceAll(s, "[REDACTED]");
    }
    for (const { form, tail } of encoded) {
      if (out.includes(form)) out = out.replace(tail, "[REDACTED]");
    }
    return out.replace(shapes, replaceSecret);
  };
  return Object.assign(redact, { holds: (text: string) => anywhere.test(text) });
}

/** A base64 quantum's worth of characters after a full one, then its padding. */
const B64_TAIL = "[A-Za-z0-9+/_-]{0,3}={0,2}";

function escapeRe(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/**
 * How `secret` reads inside base64 text (an upstream echoing a Basic credential, or the key
 * encoded): at each of the three byte alignments, the characters only its own bytes decide.
 */
function inBase64(secret: string): string[] {
  const bytes = new TextEncoder().encode(secret);
  const out: string[] = [];
  for (const lead of [0, 1, 2]) {
    const padded = new Uint8Array(lead + bytes.length);
    padded.set(bytes, lead);
    const b64 = btoa(String.fromCharCode(...padded));
    // Leading characters carry the alignment's filler bits; trailing ones the next bytes'.
    const from = [0, 2, 3][lead] as number;
    const to = Math.floor(padded.length / 3) * 4;
    out.push(b64.slice(from, to));
    out.push(b64.slice(from, to).replaceAll("+", "-").replaceAll("/", "_"));
  }
  return out;
}

/**
 * `redact` over an upstream's JSON error body, also where the body spells a secret with JSON
 * escapes (`"\u0073\u006b-..."` is `sk-...` to any client that parses it). Only a body with a
 * `\u` escape is parsed, and it is re-serialized only when a decoded string held a secret;
 * otherwise the text comes back as `redact` left it.
 */
export function redactJsonText(text: string, redact: Redactor): string {
  const out = redact(text);
  if (!out.includes("\\u")) return out;
  let parsed: unknown;
  try {
    parsed = JSON.parse(out);
  } catch {
    return out;
  }
  let changed = false;
  const walk = (v: unknown): unknown => {
    if (typeof v === "string") {
      const r = redact(v);
      if (r !== v) changed = true;
      return r;
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === "object") {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [walk(k) as string, walk(x)]));
    }
    return v;
  };
  const clean = walk(parsed);
  return changed ? JSON.stringify(clean) : out;
}
