/**
 * The edge encoder of the OpenAI-format routes (`/v1/chat/completions`, `/v1/embeddings`):
 * canonical answers are serialised and typed chunks framed as OpenAI SSE with `[DONE]`;
 * OpenAI bytes (the same-schema fast path) go out untouched.
 * @module
 */
import { GatewayError } from "../../errors.ts";
import { decodeJson, decodeStream } from "../../providers/wire.ts";
import type { ChatOutcome } from "../../providers/types.ts";
import { toOpenAIError, withoutStopSequence } from "../../schema/openai.ts";
import { encodeOpenAIChunks, encodeSseData } from "../../streaming/mod.ts";
import type { Exchange } from "../exchange.ts";
import { jsonResponse, sseResponse } from "./stream.ts";

const renderOpenAIError = (ge: GatewayError) => encodeSseData(toOpenAIError(ge));

export function encodeOpenAI(
  ex: Exchange,
  outcome: ChatOutcome,
  headers: Record<string, string>,
): Response {
  if (outcome.kind === "json") {
    const body = outcome.format === "openai_json" ? outcome.body : chatWire(
      outcome.format === "object" ? outcome.body : decodeJson(outcome, decodeContext(ex)),
    );
    return jsonResponse(ex, body, outcome.status, headers);
  }
  const bytes = outcome.format === "openai_sse"
    ? outcome.body
    : decodeStream(outcome, decodeContext(ex)).pipeThrough(encodeOpenAIChunks());
  return sseResponse(ex, bytes, outcome.status, headers, renderOpenAIError);
}

/** Embeddings are JSON only: a provider that streamed them failed. */
export function encodeEmbeddings(
  ex: Exchange,
  outcome: ChatOutcome,
  headers: Record<string, string>,
): Response {
  if (outcome.kind !== "json") {
    outcome.body.cancel().catch(() => {});
    throw new GatewayError("upstream_error", `Provider "${ex.provider}" streamed embeddings`);
  }
  return encodeOpenAI(ex, outcome, headers);
}

/** A canonical chat answer without our own fields (other objects, e.g. embeddings, as they are). */
function chatWire(body: Record<string, unknown>): Record<string, unknown> {
  return Array.isArray(body.choices)
    ? withoutStopSequence(body as Record<string, unknown> & { choices: object[] })
    : body;
}

export function decodeContext(ex: Exchange) {
  return { provider: ex.provider ?? "unknown", model: ex.model ?? "", redact: ex.runtime.redact };
}
