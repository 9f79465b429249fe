/**
 * OpenAI `/v1/embeddings` on Bedrock (signing mode), through InvokeModel: the body is the
 * model family's own. Amazon Titan Text Embeddings take one `inputText` a call (`dimensions`
 * on V2) and report `inputTextTokenCount`; Cohere Embed takes up to 96 `texts` a call and
 * reports its tokens in the `X-Amzn-Bedrock-Input-Token-Count` header. Other families are a
 * 400 naming the model. Pure: the adapter does the calls.
 * @module
 */
import { GatewayError } from "../../errors.ts";
import type { OpenAIEmbeddingsRequest, OpenAIUsage } from "../../schema/openai.ts";
import { MAX_EMBEDDING_INPUTS } from "../../schema/embeddings.ts";
import {
  embeddingInputs,
  encodeVector,
  encodingOf,
  invalid,
  type OpenAIEmbeddingList,
} from "../shared/embeddings.ts";

/** One InvokeModel call of an embeddings request: its body and how many inputs it embeds. */
export interface EmbedCall {
  readonly body: Record<string, unknown>;
  readonly inputs: number;
  /** Characters of its texts: what it used when its answer counted nothing. */
  readonly chars: number;
}

/** What one call answered: its vectors in input order, and the input tokens it counted. */
export interface EmbedAnswer {
  readonly vectors: number[][];
  readonly tokens: number;
}

export interface EmbedPlan {
  readonly calls: EmbedCall[];
  readonly encoding: "float" | "base64";
  /** Reads one call's JSON answer (and the token-count header, for Cohere). */
  read(json: unknown, tokenHeader: string | null, inputs: number): EmbedAnswer;
}

/** Texts per Cohere Embed call (Bedrock refuses more). */
const COHERE_BATCH = 96;

/** The calls that embed `body` with `model`; a 400 for a model of another family. */
export function planEmbeddings(
  body: OpenAIEmbeddingsRequest,
  model: string,
  provider: string,
): EmbedPlan {
  const texts = embeddingInputs(body.input, provider);
  // OpenAI's own bound: here each input may be an upstream call of its own.
  if (texts.length > MAX_EMBEDDING_INPUTS) {
    throw invalid(
      `"input" may hold at most ${MAX_EMBEDDING_INPUTS} texts, got ${texts.length}`,
      "input",
    );
  }
  const encoding = encodingOf(body);
  const dimensions = body.dimensions;
  if (dimensions !== undefined && dimensions !== null) {
    if (typeof dimensions !== "number" || !Number.isInteger(dimensions) || dimensions < 1) {
      throw invalid(`"dimensions" must be a positive integer`, "dimensions");
    }
  }
  if (/titan-embed-(?:text|g1-text)/.test(model)) {
    return {
      calls: texts.map((inputText) => ({
        body: { inputText, ...(typeof dimensions === "number" ? { dimensions } : {}) },
        inputs: 1,
        chars: inputText.length,
      })),
      encoding,
      read: (json) => readTitan(json, provider),
    };
  }
  if (/cohere\.embed-/.test(model)) {
    if (typeof dimensions === "number") {
      throw new GatewayError(
        "invalid_request",
        `"dimensions" is not supported by Cohere Embed on provider "${provider}"`,
        { param: "dimensions", provider },
      );
    }
    const calls: EmbedCall[] = [];
    for (let i = 0; i < texts.length; i += COHERE_BATCH) {
      const batch = texts.slice(i, i + COHERE_BATCH);
      calls.push({
        body: { texts: batch, input_type: "search_document" },
        inputs: batch.length,
        chars: batch.reduce((n, t) => n + t.length, 0),
      });
    }
    return {
      calls,
      encoding,
      read: (json, header, inputs) => readCohere(json, header, inputs, provider),
    };
  }
  throw new GatewayError(
    "invalid_request",
    `Model "${model}" on provider "${provider}" has no embeddings form Pilotfish knows: ` +
      `use an Amazon Titan Text Embeddings or a Cohere Embed model`,
    { param: "model", provider },
  );
}

/** The calls' answers (in call order) as OpenAI's list, and their usage. */
export function toEmbeddingList(
  answers: readonly EmbedAnswer[],
  model: string,
  encoding: "float" | "base64",
): { body: OpenAIEmbeddingList; usage: OpenAIUsage } {
  const vectors = answers.flatMap((a) => a.vectors);
  const tokens = answers.reduce((sum, a) => sum + a.tokens, 0);
  return {
    body: {
      object: "list",
      data: vectors.map((v, index) => ({
        object: "embedding",
        index,
        embedding: encodeVector(v, encoding),
      })),
      model,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    },
    usage: { prompt_tokens: tokens, completion_tokens: 0, total_tokens: tokens },
  };
}

function readTitan(json: unknown, provider: string): EmbedAnswer {
  const j = isObject(json) ? json : {};
  if (!isVector(j.embedding)) throw notEmbeddings(provider, 1);
  const tokens = typeof j.inputTextTokenCount === "number" ? j.inputTextTokenCount : 0;
  return { vectors: [j.embedding], tokens };
}

function readCohere(
  json: unknown,
  header: string | null,
  inputs: number,
  provider: string,
): EmbedAnswer {
  const j = isObject(json) ? json : {};
  // `embeddings_floats` answers a list; with `embedding_types` it is keyed by type.
  const list = Array.isArray(j.embeddings)
    ? j.embeddings
    : isObject(j.embeddings)
    ? j.embeddings.float
    : undefined;
  if (!Array.isArray(list) || list.length !== inputs || !list.every(isVector)) {
    throw notEmbeddings(provider, inputs);
  }
  const tokens = Number(header ?? 0);
  return { vectors: list as number[][], tokens: Number.isFinite(tokens) ? tokens : 0 };
}

function notEmbeddings(provider: string, n: number): GatewayError {
  return new GatewayError(
    "upstream_error",
    `Provider "${provider}" returned a body that is not ${n} embedding${n === 1 ? "" : "s"}`,
    { provider },
  );
}

function isVector(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((x) => typeof x === "number");
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
