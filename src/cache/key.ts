/**
 * What the response cache may answer, and under which key: pure functions over the
 * exchange's canonical request.
 * @module
 */
import type { OpenAIChatRequest } from "../schema/openai.ts";

/** The `cache` block as this module reads it. */
export interface CachePolicy {
  readonly enabled: boolean;
  readonly scope: "global" | "key";
  readonly streaming: boolean;
}

/** Why a request is not looked up (for tests and debugging), or null when it is. */
export type Skip =
  | "disabled"
  | "schema"
  | "x-gateway.cache"
  | "cache-control"
  | "temperature"
  | "stream"
  | "no_key";

export interface RequestFacts {
  /** The inbound schema: only chat answers are cached. */
  readonly schema: string | null;
  readonly stream: boolean;
  /** `x-gateway.cache`. */
  readonly gatewayCache: boolean | undefined;
  /** The `Cache-Control` request header. */
  readonly cacheControl: string | null;
  readonly body: OpenAIChatRequest;
  /** `ex.principal.appKey`. */
  readonly appKey: string | undefined;
}

/**
 * Cached by default: non-streaming chat with temperature 0 or absent (a sampled answer is
 * not "the" answer); streaming too with `cache.streaming`. `x-gateway.cache: false` and
 * `Cache-Control: no-cache` / `no-store` skip it; `scope: key` needs an application key.
 */
export function skipReason(policy: CachePolicy, req: RequestFacts): Skip | null {
  if (!policy.enabled) return "disabled";
  if (req.schema !== "openai_chat" && req.schema !== "anthropic_messages") return "schema";
  if (req.gatewayCache === false) return "x-gateway.cache";
  if (req.cacheControl !== null && /\bno-(?:cache|store)\b/i.test(req.cacheControl)) {
    return "cache-control";
  }
  const t = req.body.temperature;
  if (t !== undefined && t !== null && t !== 0) return "temperature";
  if (req.stream && !policy.streaming) return "stream";
  if (policy.scope === "key" && !req.appKey) return "no_key";
  return null;
}

/**
 * Fields that cannot change the answer: how it is delivered (`stream`, `stream_options`),
 * who asked (`user`, `metadata`), whether the vendor keeps it (`store`). Every other field
 * (messages, tools, tool_choice, response_format, n, seed, stop, sampling, …) is in the key.
 */
const NOT_IN_KEY = new Set(["stream", "stream_options", "user", "metadata", "store"]);

/**
 * SHA-256 (hex) of the normalised request: the targets it resolves to (provider namespace
 * and upstream model, in failover order), the scope (the app key with `scope: key`), and the
 * canonical body with its keys sorted at every level, so field order does not matter.
 * WebCrypto rather than node:crypto: the latter's polyfill costs the daemon ~10 MB of RSS.
 */
export async function cacheKey(
  targets: readonly { readonly provider: string; readonly model: string }[],
  scope: string,
  body: OpenAIChatRequest,
): Promise<string> {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) if (!NOT_IN_KEY.has(k)) fields[k] = v;
  const text = `pilotfish-cache-v1\n${
    targets.map((t) => `${t.provider}/${t.model}\n`).join("")
  }scope:${scope}\n${stableJson(fields)}`;
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(text));
  let hex = "";
  for (const b of new Uint8Array(digest)) hex += HEX[b];
  return hex;
}

const encoder = new TextEncoder();
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** JSON with object keys sorted (arrays keep their order: it is meaningful). */
export function stableJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson(obj[k])}`).join(",")}}`;
}
