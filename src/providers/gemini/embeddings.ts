import { GatewayError } from "../../errors.ts";
import type { OpenAIEmbeddingsRequest, OpenAIUsage } from "../../schema/openai.ts";
import type { GeminiEmbedRequest, GeminiEmbedResponse } from "./types.ts";
import {
  embeddingInputs,
  encodeVector,
  encodingOf,
  invalid,
  type OpenAIEmbeddingList,
} from "../shared/embeddings.ts";

/**
 * OpenAI `/v1/embeddings` body -> Gemini `batchEmbedContents` body: one request per input
 * string, each naming the model (`models/{model}`, required per request by the API even
 * though the URL names it too), with `dimensions` as `outputDimensionality`. Token-array
 * inputs have no Gemini form (Gemini embeds text) and are a 400; so are encodings other
 * than float and base64. `user` is dropped. Pure: no I/O.
 */
export function toGeminiEmbedRequest(
  body: OpenAIEmbeddingsRequest,
  resource: string,
  provider = "gemini",
): GeminiEmbedRequest {
  const inputs = embeddingInputs(body.input, provider);
  const dimensions = body.dimensions;
  if (dimensions !== undefined && dimensions !== null) {
    if (typeof dimensions !== "number" || !Number.isInteger(dimensions) || dimensions < 1) {
      throw invalid(`"dimensions" must be a positive integer`, "dimensions");
    }
  }
  encodingOf(body);
  return {
    requests: inputs.map((text) => ({
      model: resource,
      content: { parts: [{ text }] },
      ...(typeof dimensions === "number" ? { outputDimensionality: dimensions } : {}),
    })),
  };
}

/** Requests per `batchEmbedContents` call: Gemini refuses more ("at most 100 requests"). */
export const EMBED_BATCH = 100;

/** A request of more than `EMBED_BATCH` inputs as several, in order. */
export function splitEmbedRequest(payload: GeminiEmbedRequest): GeminiEmbedRequest[] {
  if (payload.requests.length <= EMBED_BATCH) return [payload];
  const out: GeminiEmbedRequest[] = [];
  for (let i = 0; i < payload.requests.length; i += EMBED_BATCH) {
    out.push({ requests: payload.requests.slice(i, i + EMBED_BATCH) });
  }
  return out;
}

/**
 * What one answered batch used, for a failure's bill (`inGroups`): the count its answer
 * reports, and the characters of its texts for when it reports none.
 */
export function batchSpent(
  batch: GeminiEmbedRequest,
  answer: unknown,
): { tokens: number; chars: number } {
  const reported = isEmbedResponse(answer)
    ? Number(answer.usageMetadata?.promptTokenCount ?? 0) || 0
    : 0;
  let chars = 0;
  for (const r of batch.requests) for (const p of r.content.parts) chars += p.text.length;
  return { tokens: reported, chars };
}

/**
 * The answers to `splitEmbedRequest`'s batches as one: embeddings in order, token counts
 * summed. A single answer is returned as it is (checked by `fromGeminiEmbedResponse`).
 */
export function mergeEmbedResponses(answers: readonly unknown[]): unknown {
  if (answers.length === 1) return answers[0];
  const embeddings: unknown[] = [];
  let prompt = 0;
  let total = 0;
  for (const a of answers) {
    if (!isEmbedResponse(a)) return a; // refused whole by the check that follows
    embeddings.push(...a.embeddings);
    prompt += Number(a.usageMetadata?.promptTokenCount ?? 0) || 0;
    total += Number(a.usageMetadata?.totalTokenCount ?? 0) || 0;
  }
  return {
    embeddings,
    ...(prompt > 0 || total > 0
      ? { usageMetadata: { promptTokenCount: prompt, totalTokenCount: total } }
      : {}),
  };
}

/**
 * Gemini `{embeddings:[{values}]}` -> OpenAI's list, in input order (Gemini answers "in the
 * same order as provided in the batch request"). base64 is what OpenAI sends for
 * `encoding_format: "base64"`: the little-endian float32 bytes of the vector. Gemini's
 * embedding endpoints report token counts only in newer versions (`usageMetadata`); when
 * absent the answer says zero, and the route has the meter estimate them.
 */
export function fromGeminiEmbedResponse(
  json: unknown,
  model: string,
  expected: number,
  encoding: "float" | "base64",
  provider = "gemini",
): { body: OpenAIEmbeddingList; usage: OpenAIUsage } {
  if (!isEmbedResponse(json) || json.embeddings.length !== expected) {
    throw new GatewayError(
      "upstream_error",
      `Provider "${provider}" returned a body that is not ${expected} embeddings`,
      { provider },
    );
  }
  const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : 0);
  const prompt = n(json.usageMetadata?.promptTokenCount);
  const total = Math.max(n(json.usageMetadata?.totalTokenCount), prompt);
  return {
    body: {
      object: "list",
      data: json.embeddings.map((e, index) => ({
        object: "embedding",
        index,
        embedding: encodeVector(e.values, encoding),
      })),
      model,
      usage: { prompt_tokens: prompt, total_tokens: total },
    },
    usage: { prompt_tokens: prompt, completion_tokens: 0, total_tokens: total },
  };
}

function isEmbedResponse(v: unknown): v is GeminiEmbedResponse {
  if (v === null || typeof v !== "object") return false;
  const embeddings = (v as { embeddings?: unknown }).embeddings;
  return Array.isArray(embeddings) &&
    embeddings.every((e) =>
      e !== null && typeof e === "object" && Array.isArray((e as { values?: unknown }).values) &&
      (e as { values: unknown[] }).values.every((x) => typeof x === "number")
    );
}
