/** Shapes of credentials that may show up in upstream error text or URLs. */
const SECRET_PATTERNS = [
  /\bBearer\s+[^\s",;]+/gi, // Authorization values
  /\bsk-[A-Za-z0-9_*-]{6,}/g, // OpenAI / Anthropic style keys (also masked "sk-ab***yz")
  /\bpf_[A-Za-z0-9_-]{6,}/g, // Pilotfish application keys
  /\bAIza[0-9A-Za-z_-]{20,}/g, // Google API keys
  /\bAKIA[0-9A-Z]{16}\b/g, // AWS access key ids
];
/** Keys in query strings (Gemini's `?key=`): keep the parameter name. */
const QUERY_SECRET = /([?&](?:key|api_key|token)=)[^&\s"]+/gi;

export type Redactor = (text: string) => string;

/**
 * Build a redactor that removes the given secrets (configured provider keys, the admin
 * token) and anything shaped like a credential. Built once per config, applied to every
 * log line and every error message that may carry upstream text.
 */
export function createRedactor(secrets: Iterable<string>): Redactor {
  const exact = [...new Set([...secrets].filter((s) => s.length >= 4))]
    .sort((a, b) => b.length - a.length);
  return (text: string): string => {
    let out = text;
    for (const s of exact) {
      if (out.includes(s)) out = out.replaceAll(s, "[REDACTED]");
    }
    out = out.replace(QUERY_SECRET, "$1[REDACTED]");
    for (const re of SECRET_PATTERNS) out = out.replace(re, "[REDACTED]");
    return out;
  };
}
