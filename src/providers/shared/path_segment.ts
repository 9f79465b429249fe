import { GatewayError } from "../../errors.ts";

/**
 * `value` (a model or deployment name from the client or the config) as exactly one URL path
 * segment. Percent-encoding keeps `/`, `?`, `#` and `%` inside the segment; what no encoding
 * can keep there is refused with a 400 before any upstream call: an empty name (`//`), `.`
 * and `..` (a URL parser resolves them away), control characters and lone surrogates (no
 * UTF-8 encoding exists for them).
 */
export function pathSegment(value: string, what: string, provider: string): string {
  if (
    // deno-lint-ignore no-control-regex
    value === "" || value === "." || value === ".." || /[\x00-\x1f\x7f]/.test(value) ||
    !value.isWellFormed()
  ) {
    throw new GatewayError(
      "invalid_request",
      `${what} "${value}" cannot be used in a URL path for provider "${provider}"`,
      { param: "model", provider },
    );
  }
  return encodeURIComponent(value);
}
