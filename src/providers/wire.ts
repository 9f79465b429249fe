/**
 * Wire formats -> canonical form. Outcomes of the same-schema fast path carry the upstream's
 * bytes tagged with their format; when a stage needs to see the answer (a `stream_chunk`
 * or `post_llm` hook) or the client's format differs, they are decoded here, by the
 * provider that knows the format.
 * @module
 */
import { GatewayError } from "../errors.ts";
import type { OpenAIChatChunk } from "../schema/openai.ts";
import { decodeOpenAISse } from "../streaming/openai_sse.ts";
import { fromAnthropicResponse } from "./anthropic/response.ts";
import { toOpenAIStream as anthropicToOpenAI } from "./anthropic/stream.ts";
import type { JsonOutcome, StreamOutcome } from "./types.ts";
import { notJsonBody } from "./shared/errors.ts";

/** One-shot decodes (no `stream` state): one decoder serves them all. */
const utf8 = new TextDecoder();

export interface DecodeContext {
  readonly provider: string;
  /** The upstream model, for answers that do not name theirs. */
  readonly model: string;
  readonly redact: (text: string) => string;
}

/** A stream outcome as typed chunks (decoded when it carries wire bytes). */
export function decodeStream(
  outcome: StreamOutcome,
  ctx: DecodeContext,
): ReadableStream<OpenAIChatChunk> {
  switch (outcome.format) {
    case "chunks":
      return outcome.body;
    case "openai_sse":
      return decodeOpenAISse(outcome.body, ctx.provider, ctx.redact);
    case "anthropic_sse":
      // Usage was metered by the relay's tap already: the translation's reports go nowhere.
      // Only a Messages client gets these bytes, and its encoder rebuilds message_delta's
      // usage from the closing usage chunk: without it the client would read zeros.
      return anthropicToOpenAI(outcome.body, {
        model: ctx.model,
        includeUsage: true,
        onUsage: () => {},
        provider: ctx.provider,
        redact: ctx.redact,
      });
    case "responses_sse":
      throw notCanonical(ctx);
  }
}

/**
 * Responses API bytes are relayed only to a Responses client with no stage reading the
 * answer (the route translates otherwise), so they are never decoded to chat chunks.
 */
function notCanonical(ctx: DecodeContext): GatewayError {
  return new GatewayError(
    "internal",
    `A Responses API answer from provider "${ctx.provider}" cannot be read as a chat completion`,
  );
}

/** A JSON outcome as its canonical object (a `chat.completion`, an embeddings list). */
export function decodeJson(outcome: JsonOutcome, ctx: DecodeContext): Record<string, unknown> {
  if (outcome.format === "object") return outcome.body;
  if (outcome.format === "responses_json") throw notCanonical(ctx);
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(outcome.body));
  } catch {
    throw notJsonBody(ctx.provider);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new GatewayError(
      "upstream_error",
      `Provider "${ctx.provider}" returned a body that is not a JSON object`,
      { provider: ctx.provider },
    );
  }
  return outcome.format === "openai_json"
    ? json as Record<string, unknown>
    : fromAnthropicResponse(json, ctx.model, undefined, ctx.provider) as unknown as Record<
      string,
      unknown
    >;
}
