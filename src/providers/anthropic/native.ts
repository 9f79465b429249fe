import type { OpenAIUsage } from "../../schema/openai.ts";
import { num, pickUsage, withDetails } from "../../streaming/usage_sniff.ts";
import type { NativeApi } from "../types.ts";
import { anthropicStreamFailure } from "./errors.ts";

const unredacted = (text: string) => text;

/**
 * Anthropic's `usage.input_tokens` (also inside `message` of `message_start`): cache
 * writes and reads count as prompt tokens, as OpenAI counts them.
 */
export function anthropicUsageOf(value: unknown): Partial<OpenAIUsage> | null {
  if (value === null || typeof value !== "object") return null;
  const o = value as Record<string, unknown>;
  const u = (o.usage ?? (o.message as Record<string, unknown> | undefined)?.usage) as
    | Record<string, unknown>
    | undefined;
  if (!u || typeof u !== "object") return null;
  if (typeof u.input_tokens !== "number" && typeof u.output_tokens !== "number") return null;
  // `input_tokens` excludes cache reads and writes; ours (OpenAI's) counts them.
  const reads = num(u.cache_read_input_tokens);
  const writes = num(u.cache_creation_input_tokens);
  if (typeof u.input_tokens !== "number") return pickUsage(undefined, u.output_tokens);
  return withDetails(pickUsage(u.input_tokens + reads + writes, u.output_tokens), reads, writes, 0);
}

/** A delta's text, tool input or thinking (escapes counted as written). */
const DELTA_TEXT = /"(?:text|partial_json|thinking)":"((?:[^"\\]|\\.)*)"/g;

/** Answer text in one stream event: what a stream cut short is estimated from. */
export function anthropicContentChars(data: string): number {
  if (!data.includes('"content_block_delta"')) return 0;
  let n = 0;
  for (const m of data.matchAll(DELTA_TEXT)) n += (m[1] as string).length;
  return n;
}

/** The end of an Anthropic stream: `message_stop`, or the `error` event it failed with. */
const ANTHROPIC_DONE = /^\s*\{\s*"type"\s*:\s*"(?:message_stop|error)"/;
export const anthropicStreamDone = (data: string) => ANTHROPIC_DONE.test(data);

/** Anthropic SDKs send `x-api-key`, or `Authorization: Bearer` (newer versions, OAuth). */
export const ANTHROPIC_NATIVE: NativeApi = {
  auth: {
    headers: ["x-api-key", "authorization"],
    queryParam: null,
    header: (k) => ["x-api-key", k],
  },
  usage: anthropicUsageOf,
  // A message batch names where its results are: fetched through the sidecar too.
  links: { jsonFields: ["results_url"] },
  contentChars: anthropicContentChars,
  streamDone: anthropicStreamDone,
  // Redacted where it is written (the log); the client gets the upstream's bytes as sent.
  streamFailure: (data, provider) => anthropicStreamFailure(data, provider, unredacted),
};
