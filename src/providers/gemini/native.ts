import type { OpenAIUsage } from "../../schema/openai.ts";
import { num, pickUsage, withDetails } from "../../streaming/usage_sniff.ts";
import type { NativeApi } from "../types.ts";
import { fromGeminiStreamError } from "./errors.ts";

/** Gemini's `usageMetadata`: thoughts count as output, as OpenAI counts reasoning. */
export function geminiUsageOf(value: unknown): Partial<OpenAIUsage> | null {
  if (value === null || typeof value !== "object") return null;
  const g = (value as { usageMetadata?: unknown }).usageMetadata as
    | Record<string, unknown>
    | undefined;
  if (!g || typeof g !== "object") return null;
  // `promptTokenCount` includes `cachedContentTokenCount` (implicit and explicit caching);
  // `candidatesTokenCount` excludes `thoughtsTokenCount`, billed as output.
  const thoughts = num(g.thoughtsTokenCount);
  const prompt = typeof g.promptTokenCount === "number"
    ? g.promptTokenCount + num(g.toolUsePromptTokenCount)
    : undefined;
  return withDetails(
    pickUsage(prompt, num(g.candidatesTokenCount) + thoughts),
    num(g.cachedContentTokenCount),
    0,
    thoughts,
  );
}

/** An error object as an event (Google APIs may wrap it in a one-element array). */
const GEMINI_ERROR = /^\s*\[?\s*\{\s*"error"\s*:/;

/** A part's text (escapes counted as written). */
const PART_TEXT = /"text":\s*"((?:[^"\\]|\\.)*)"/g;

/** Answer text in one stream event: what a stream cut short is estimated from. */
export function geminiContentChars(data: string): number {
  let n = 0;
  for (const m of data.matchAll(PART_TEXT)) n += (m[1] as string).length;
  return n;
}

export const GEMINI_NATIVE: NativeApi = {
  auth: {
    headers: ["x-goog-api-key", "authorization"],
    queryParam: "key",
    header: (k) => ["x-goog-api-key", k],
  },
  usage: geminiUsageOf,
  // The resumable upload protocol's session URLs (Files API): the upload goes through here.
  links: { headers: ["x-goog-upload-url", "x-goog-upload-control-url"] },
  contentChars: geminiContentChars,
  // Gemini's last event names why it stopped (a finish or a blocked prompt), or is an error.
  streamDone: (data) =>
    data.includes('"finishReason"') || data.includes('"blockReason"') || GEMINI_ERROR.test(data),
  // `data: {"error":{...}}` (redacted where it is written: the log).
  streamFailure: (data, provider) => {
    if (!GEMINI_ERROR.test(data)) return null;
    try {
      const value = JSON.parse(data) as unknown;
      const body = Array.isArray(value) ? value[0] : value;
      return fromGeminiStreamError((body as { error?: unknown }).error, provider, (t) => t);
    } catch {
      return null;
    }
  },
  streams: (path) => path.includes(":streamGenerateContent"),
  // Embeddings answers carry no usageMetadata: billed on the request's size, as estimated.
  uncountedInput: (path) => path.includes(":embedContent") || path.includes(":batchEmbedContents"),
};
