/**
 * What the response cache may answer, and under which key: pure functions over the
 * exchange's canonical request.
 * @module
 */
import { createHash } from "node:crypto";
import type { OpenAIChatRequest, OpenAIEmbeddingsRequest } from "../schema/openai.ts";

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
  /** The inbound schema: chat answers and embeddings are cached. */
  readonly schema: string | null;
  readonly stream: boolean;
  /** `x-gateway.cache`. */
  readonly gatewayCache: boolean | undefined;
  /** The `Cache-Control` request header. */
  readonly cacheControl: string | null;
  readonly body: OpenAIChatRequest | OpenAIEmbeddingsRequest;
  /** `ex.principal.appKey`. */
  readonly appKey: string | undefined;
}

/** The inbound schemas whose answers are cached (the stage runs on these only). */
export const CACHED_SCHEMAS = ["openai_chat", "anthropic_messages", "embeddings"] as const;

/**
 * Cached by default: non-streaming chat with temperature 0 or absent (a sampled answer is
 * not "the" answer), and embeddings (the same input is the same vectors); streaming chat too
 * with `cache.streaming`. `x-gateway.cache: false` and `Cache-Control: no-cache` /
 * `no-store` skip it; `scope: key` needs an application key.
 */
export function skipReason(policy: CachePolicy, req: RequestFacts): Skip | null {
  if (!policy.enabled) return "disabled";
  if (!(CACHED_SCHEMAS as readonly (string | null)[]).includes(req.schema)) return "schema";
  if (req.gatewayCache === false) return "x-gateway.cache";
  if (req.cacheControl !== null && /\bno-(?:cache|store)\b/i.test(req.cacheControl)) {
    return "cache-control";
  }
  // A sampled answer is reused only when the client opts in (`x-gateway.cache: true`).
  const t = "temperature" in req.body ? req.body.temperature : undefined;
  if (t !== undefined && t !== null && t !== 0 && req.gatewayCache !== true) return "temperature";
  if (req.stream && !policy.streaming) return "stream";
  if (policy.scope === "key" && !req.appKey) return "no_key";
  return null;
}

/**
 * Fields that cannot change the answer: how it is delivered (`stream`, `stream_options`),
 * who asked (`user`, `metadata`), whether the vendor keeps it (`store`), and the model as
 * typed (`gpt-4o-mini`, `openai/gpt-4o-mini` or an alias: the targets say what answers). Every
 * other field (messages, tools, tool_choice, response_format, n, seed, stop, sampling, ...) is
 * in the key.
 */
const NOT_IN_KEY = new Set(["stream", "stream_options", "user", "metadata", "store", "model"]);

/**
 * The normalised request as text: the targets it resolves to (provider namespace and
 * upstream model, in failover order), the scope (the app key with `scope: key`), and the
 * canonical body with its keys sorted at every level, so field order does not matter.
 */
export function cacheKeyText(
  targets: readonly { readonly provider: string; readonly model: string }[],
  scope: string,
  body: OpenAIChatRequest | OpenAIEmbeddingsRequest,
): string {
  // v2: answers carry the stop sequence that ended them; v1 entries dropped it.
  let text = "pilotfish-cache-v2\n";
  for (const t of targets) text += `${t.provider}/${t.model}\n`;
  return text +
    `scope:${scope}\n${stableObject(body as unknown as Record<string, unknown>, NOT_IN_KEY)}`;
}

/**
 * SHA-256 (hex) of a `cacheKeyText`: the key in a shared store, and in memory for requests
 * too long to be their own key (see `memoryKey`). Synchronous node:crypto: WebCrypto's digest
 * runs on a worker thread and costs ~40x more for a request-sized input.
 */
export function digestKey(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * Up to this many UTF-16 units, V8 hashes a string's every character for a Map lookup; a
 * longer string is hashed by its length alone, so same-length keys would share a bucket.
 */
const PLAIN_KEY_MAX = 16_383;

/**
 * The in-process (memory backend) key: the text itself while V8 hashes it whole, a Map
 * compares it exactly on a match, so it needs no digest (which costs more than the lookup);
 * a longer one is its SHA-256, which cannot equal a text (those start with the version line).
 */
export function memoryKey(text: string): string {
  return text.length <= PLAIN_KEY_MAX ? text : digestKey(text);
}

/** An object as `stableJson`, without the fields in `omit` (top level only). */
function stableObject(obj: Record<string, unknown>, omit: ReadonlySet<string> | null): string {
  const keys = Object.keys(obj).sort();
  let s = "{";
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined || omit?.has(k)) continue;
    if (s.length > 1) s += ",";
    s += `${JSON.stringify(k)}:${stableJson(v)}`;
  }
  return s + "}";
}

/** JSON with object keys sorted (arrays keep their order: it is meaningful). */
export function stableJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) {
    let s = "[";
    for (let i = 0; i < value.length; i++) s += (i === 0 ? "" : ",") + stableJson(value[i]);
    return s + "]";
  }
  return stableObject(value as Record<string, unknown>, null);
}
