/**
 * What every provider's embeddings translation shares: reading the OpenAI `/v1/embeddings`
 * request's `input` and `encoding_format`, and writing OpenAI's embeddings list (a vector as
 * floats, or as the base64 of its little-endian float32 bytes, as OpenAI sends it). Pure.
 * @module
 */
import { GatewayError } from "../../errors.ts";
import type { OpenAIUsage } from "../../schema/openai.ts";
import { estimateTokens } from "../../usage/cost.ts";

export function invalid(message: string, param: string): GatewayError {
  return new GatewayError("invalid_request", message, { param });
}

/** `input` as texts: token arrays are a 400 (these providers embed text). */
export function embeddingInputs(input: unknown, provider: string): string[] {
  if (typeof input === "string") return [input];
  if (Array.isArray(input) && input.length > 0) {
    if (input.every((v) => typeof v === "string")) return input as string[];
    if (input.every((v) => typeof v === "number" || Array.isArray(v))) {
      throw new GatewayError(
        "invalid_request",
        `Token-array "input" is not supported by provider "${provider}"; send text`,
        { param: "input", provider },
      );
    }
  }
  throw invalid(`"input" must be a string or a non-empty array of strings`, "input");
}

/** `encoding_format`, validated: "float" (the default) or "base64". */
export function encodingOf(body: { readonly encoding_format?: unknown }): "float" | "base64" {
  const format: unknown = body.encoding_format;
  if (format === undefined || format === null || format === "float") return "float";
  if (format === "base64") return "base64";
  throw invalid(`"encoding_format" must be "float" or "base64"`, "encoding_format");
}

/** OpenAI's embeddings list, as the route answers it. */
export interface OpenAIEmbeddingList {
  object: "list";
  data: { object: "embedding"; index: number; embedding: number[] | string }[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

/** A vector as the client asked for it. */
export function encodeVector(
  values: readonly number[],
  encoding: "float" | "base64",
): number[] | string {
  return encoding === "base64" ? toBase64Float32(values) : values as number[];
}

function toBase64Float32(values: readonly number[]): string {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  let binary = "";
  // Chunked: String.fromCharCode(...bytes) overflows the call stack on large vectors.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** An embeddings request's upstream calls in flight at once. */
export const EMBED_PARALLEL = 4;

/**
 * `fn` over `items`, `EMBED_PARALLEL` at a time, the results in the items' order: one
 * embeddings request as several upstream calls (batches, or one input a call). When a call
 * fails, the calls already answered were billed by the provider: the failure carries what
 * `spentBy` makes of their results (`GatewayErrorInfo.spent`), once the calls in flight
 * with it have settled.
 */
export async function inGroups<T, R>(
  items: readonly T[],
  fn: (item: T) => Promise<R>,
  spentBy?: (done: readonly (readonly [T, R])[]) => OpenAIUsage | null,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  const done: (readonly [T, R])[] = [];
  for (let next = 0; next < items.length; next += EMBED_PARALLEL) {
    const group = await Promise.allSettled(items.slice(next, next + EMBED_PARALLEL).map(fn));
    let failure: { reason: unknown } | null = null;
    group.forEach((r, i) => {
      if (r.status === "fulfilled") {
        out[next + i] = r.value;
        done.push([items[next + i] as T, r.value]);
      } else {
        failure ??= r;
      }
    });
    if (failure === null) continue;
    const err = (failure as { reason: unknown }).reason;
    const spent = done.length > 0 && spentBy ? spentBy(done) : null;
    if (spent !== null && spent.total_tokens > 0 && err instanceof GatewayError) {
      throw new GatewayError(err.code, err.message, { ...err.info, spent });
    }
    throw err;
  }
  return out;
}

/**
 * What answered calls used, for `inGroups`' `spentBy`: each call's own count, else its input
 * estimated at ~4 characters a token (marked so); null when that is nothing.
 */
export function spentOn(calls: readonly { tokens: number; chars: number }[]): OpenAIUsage | null {
  let tokens = 0;
  let estimated = false;
  for (const c of calls) {
    if (c.tokens > 0) {
      tokens += c.tokens;
    } else {
      tokens += estimateTokens(c.chars);
      estimated = true;
    }
  }
  if (tokens === 0) return null;
  return {
    prompt_tokens: tokens,
    completion_tokens: 0,
    total_tokens: tokens,
    ...(estimated ? { estimated: true } : {}),
  };
}
