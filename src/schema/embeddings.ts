import { GatewayError } from "../errors.ts";
import { type GatewayOptions, parseGatewayOptions } from "./gateway.ts";
import type { OpenAIEmbeddingsRequest } from "./openai.ts";

export interface ParsedEmbeddingsRequest {
  body: OpenAIEmbeddingsRequest;
  gateway: GatewayOptions;
}

const invalid = (message: string, param: string) =>
  new GatewayError("invalid_request", message, { param });

const isTokens = (v: unknown): v is number[] =>
  Array.isArray(v) && v.length > 0 && v.every((n) => Number.isInteger(n) && (n as number) >= 0);

/**
 * Inputs one request may hold: OpenAI's limit, kept for every provider (a provider that embeds
 * one text a call, or in batches, would otherwise fan a request out without bound).
 */
export const MAX_EMBEDDING_INPUTS = 2048;

/**
 * Validate an OpenAI `/v1/embeddings` body: `model`, and `input` as a non-empty string, a
 * non-empty array of strings, a token array, or an array of token arrays.
 */
export function parseEmbeddingsRequest(raw: unknown): ParsedEmbeddingsRequest {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw invalid("Request body must be a JSON object", "body");
  }
  const body = raw as Record<string, unknown>;
  if (typeof body.model !== "string" || body.model.trim() === "") {
    throw invalid(
      body.model === undefined
        ? `Missing required field "model"`
        : `"model" must be a non-empty string`,
      "model",
    );
  }
  const input = body.input;
  const ok = (typeof input === "string" && input !== "") ||
    (Array.isArray(input) && input.length > 0 &&
      (input.every((s) => typeof s === "string" && s !== "") || isTokens(input) ||
        input.every(isTokens)));
  if (!ok) {
    throw invalid(
      input === undefined
        ? `Missing required field "input"`
        : `"input" must be a non-empty string, an array of non-empty strings, or token arrays`,
      "input",
    );
  }
  // A single token array is one input; otherwise each element is one.
  const inputs = Array.isArray(input) && !isTokens(input) ? input.length : 1;
  if (inputs > MAX_EMBEDDING_INPUTS) {
    throw invalid(
      `"input" may hold at most ${MAX_EMBEDDING_INPUTS} inputs, got ${inputs}`,
      "input",
    );
  }
  // null is unset, as the SDKs and the providers' translations take it.
  if (
    body.encoding_format != null && body.encoding_format !== "float" &&
    body.encoding_format !== "base64"
  ) {
    throw invalid(`"encoding_format" must be "float" or "base64"`, "encoding_format");
  }
  if (
    body.dimensions != null &&
    !(typeof body.dimensions === "number" && Number.isInteger(body.dimensions) &&
      body.dimensions > 0)
  ) {
    throw invalid(`"dimensions" must be a positive integer`, "dimensions");
  }
  if (body.user != null && typeof body.user !== "string") {
    throw invalid(`"user" must be a string`, "user");
  }
  const gateway = parseGatewayOptions(body["x-gateway"]);
  const { "x-gateway": _ext, ...rest } = body;
  return { body: rest as OpenAIEmbeddingsRequest, gateway };
}
