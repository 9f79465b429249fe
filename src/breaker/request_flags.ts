import type { CircuitBreakerConfig } from "../config/mod.ts";

const TRUTHY = new Set(["1", "true", "yes"]);

/** Header and query names of llm-proxy's per-request switches (stripped before forwarding). */
export const BYPASS_HEADER = "x-llm-proxy-bypass-circuit";
export const BYPASS_REASON_HEADER = "x-llm-proxy-bypass-reason";
export const TEST_MODE_HEADER = "x-llm-proxy-test-mode";
export const BYPASS_PARAM = "llm_proxy_bypass_circuit";
export const BYPASS_REASON_PARAM = "llm_proxy_bypass_reason";
export const TEST_MODE_PARAM = "llm_proxy_test_mode";

export const FLAG_HEADERS = [BYPASS_HEADER, BYPASS_REASON_HEADER, TEST_MODE_HEADER];
export const FLAG_PARAMS = [BYPASS_PARAM, BYPASS_REASON_PARAM, TEST_MODE_PARAM];

export interface RequestFlags {
  /** Set when the caller opted out of fast-fail for this request (and it is allowed). */
  readonly bypass?: { readonly reason: string };
  readonly testMode?: "force_degraded" | "force_transient_recover";
}

/**
 * Read the bypass and test-mode switches from headers or query parameters (for SDKs that
 * cannot set headers, such as Google's). Pure.
 */
export function readRequestFlags(
  header: (name: string) => string | null | undefined,
  query: URLSearchParams,
  cfg: CircuitBreakerConfig,
  secret?: (text: string) => boolean,
): RequestFlags {
  const get = (h: string, q: string) => header(h) ?? query.get(q) ?? undefined;
  const out: {
    bypass?: { reason: string };
    testMode?: "force_degraded" | "force_transient_recover";
  } = {};
  const bypass = get(BYPASS_HEADER, BYPASS_PARAM);
  if (cfg.enabled && cfg.bypass_allowed && bypass && TRUTHY.has(bypass.trim().toLowerCase())) {
    out.bypass = {
      reason: normaliseReason(get(BYPASS_REASON_HEADER, BYPASS_REASON_PARAM), cfg, secret),
    };
  }
  const test = get(TEST_MODE_HEADER, TEST_MODE_PARAM)?.trim().toLowerCase();
  if (
    cfg.enabled && cfg.test_mode_enabled &&
    (test === "force_degraded" || test === "force_transient_recover")
  ) {
    out.testMode = test;
  }
  return out;
}

/**
 * Bounded-cardinality metric tag: lowercase `[a-z0-9_-]` (anything else becomes `_`), at
 * most 64 characters, `unspecified` when empty, `other` when an allowlist rejects it, and
 * `redacted` when it holds a credential (`secret`: a configured key, a `pf_` or `sk-` key):
 * a metric label is readable by anyone who can scrape `/metrics`.
 */
export function normaliseReason(
  raw: string | undefined,
  cfg: CircuitBreakerConfig,
  secret?: (text: string) => boolean,
): string {
  const trimmed = (raw ?? "").trim();
  if (trimmed === "") return "unspecified";
  if (secret?.(trimmed)) return "redacted";
  const reason = trimmed.toLowerCase().replace(/[^a-z0-9_-]/g, "_").slice(0, 64);
  const allow = cfg.bypass_reason_allowlist;
  return allow.length > 0 && !allow.includes(reason) ? "other" : reason;
}
