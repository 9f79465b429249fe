/**
 * Request bodies for the access log (`logging.request_body`, off by default): the first
 * `maxBytes` bytes, with the values of secret-looking JSON keys replaced. The logger's
 * redactor then removes configured keys and credential shapes from the whole line.
 */

export interface CapturedBody {
  /** The body as text, cut at `maxBytes` bytes, secrets redacted. */
  readonly text: string;
  readonly truncated: boolean;
}

/** JSON keys whose values are credentials wherever they appear in a body. */
const SECRET_KEY =
  /^(?:api[_-]?key|x[_-]api[_-]key|authorization|password|passwd|secret|client[_-]secret|(?:access|refresh|id|auth)?[_-]?token|private[_-]key|credentials?)$/i;

/** The same keys inside text that is not (or no longer, once cut) valid JSON. */
const SECRET_PAIR =
  /("(?:api[_-]?key|x[_-]api[_-]key|authorization|password|passwd|secret|client[_-]secret|(?:access|refresh|id|auth)?[_-]?token|private[_-]key|credentials?)"\s*:\s*)"(?:[^"\\]|\\.)*"?/gi;

const REDACTED = "[REDACTED]";

/**
 * Start reading a copy of `req`'s body on the side (the route reads the original; the
 * request is cloned, so neither waits for the other beyond `maxBytes`). Null when the
 * request has no body.
 */
export function captureRequestBody(req: Request, maxBytes: number): Promise<CapturedBody> | null {
  if (req.body === null) return null;
  const reader = req.clone().body!.getReader();
  return (async () => {
    const parts: Uint8Array[] = [];
    let size = 0;
    try {
      while (size <= maxBytes) {
        const { done, value } = await reader.read();
        if (done) break;
        parts.push(value);
        size += value.byteLength;
      }
    } catch {
      // The route reports a broken body; the log keeps what arrived.
    } finally {
      reader.cancel().catch(() => {});
    }
    const bytes = new Uint8Array(Math.min(size, maxBytes));
    let offset = 0;
    for (const part of parts) {
      const take = Math.min(part.byteLength, bytes.byteLength - offset);
      bytes.set(part.subarray(0, take), offset);
      offset += take;
      if (offset === bytes.byteLength) break;
    }
    const truncated = size > maxBytes;
    return { text: redactBody(new TextDecoder().decode(bytes), !truncated), truncated };
  })();
}

/** Replace the values of secret-looking keys; whole JSON is walked, anything else scanned. */
export function redactBody(text: string, complete = true): string {
  if (complete) {
    try {
      return JSON.stringify(redactTree(JSON.parse(text)));
    } catch {
      // not JSON: fall through to the scan
    }
  }
  return text.replace(SECRET_PAIR, `$1"${REDACTED}"`);
}

function redactTree(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(redactTree);
  if (node === null || typeof node !== "object") return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    out[key] = SECRET_KEY.test(key) ? REDACTED : redactTree(value);
  }
  return out;
}
