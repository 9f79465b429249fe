const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/**
 * Parse a duration such as `250ms`, `5s`, `2m`, `1h` or a compound Go-style `1m30s` into
 * milliseconds. A bare number (YAML int) is taken as seconds, as the llm-gateway seed's
 * `timeout: 30` meant. Returns null when the value is not a duration.
 */
export function parseDuration(value: string | number): number | null {
  if (typeof value === "number") {
    return Number.isFinite(value) && value >= 0 ? value * 1_000 : null;
  }
  const text = value.trim();
  // `${TIMEOUT:-30}` arrives as a string after substitution: same meaning as the number.
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1_000;
  let total = 0;
  let rest = text;
  // Consume compound parts left to right ("1m30s" -> "1m", "30s").
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest);
    if (!m) return null;
    total += Number(m[1]) * (UNIT_MS[m[2] as string] ?? NaN);
    rest = rest.slice(m[0].length);
  }
  return text.length > 0 && Number.isFinite(total) ? Math.round(total) : null;
}
