/**
 * Shapes of credentials that may show up in upstream error text, paths or query strings,
 * as one alternation so a line is scanned once: `Bearer` values, OpenAI/Anthropic `sk-`
 * keys (also masked "sk-ab***yz"), Pilotfish `pf_` keys, Google `AIza` keys, AWS access key
 * ids, and `key=`/`api_key=`/`token=` query values (group 1 keeps the parameter name).
 */
const SECRET_RE =
  /([?&](?:key|api_key|token)=)[^&\s"]+|\bBearer\s+[^\s",;]+|\bsk-[A-Za-z0-9_*-]{6,}|\bpf_[A-Za-z0-9_-]{6,}|\bAIza[0-9A-Za-z_-]{20,}|\bAKIA[0-9A-Z]{16}\b/gi;

const replaceSecret = (_match: string, param: string | undefined) =>
  param === undefined ? "[REDACTED]" : `${param}[REDACTED]`;

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
    return out.replace(SECRET_RE, replaceSecret);
  };
}
