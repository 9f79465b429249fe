/**
 * ISO 8601 times as the admin API takes them (a key's `expires_at`, a usage query's bounds).
 * @module
 */

/** A date, or a date and time with an optional zone (what `Date.parse` reads the same). */
const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

/**
 * `text` as ms since the epoch, or NaN when it is not an ISO 8601 time of a day that exists:
 * V8's `Date.parse` rolls `2027-02-30` over to March 2nd instead of refusing it.
 */
export function parseIsoTime(text: string): number {
  const m = ISO_8601.exec(text);
  if (m === null) return NaN;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const day = new Date(Date.UTC(y, mo - 1, d));
  if (day.getUTCFullYear() !== y || day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d) {
    return NaN;
  }
  return Date.parse(text);
}
