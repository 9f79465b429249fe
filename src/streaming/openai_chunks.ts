import type { OpenAIChunkDelta, OpenAIFinishReason, OpenAIUsage } from "../schema/openai.ts";
import { encodeSseData } from "./sse.ts";

export interface ChunkMeta {
  readonly id: string;
  readonly created: number;
  readonly model: string;
  /** `stream_options.include_usage`: OpenAI then puts `usage: null` on every chunk. */
  readonly includeUsage: boolean;
}

/** Encodes the `chat.completion.chunk` events of one OpenAI stream we generate ourselves. */
export interface OpenAIChunkWriter {
  delta(delta: OpenAIChunkDelta, finish: OpenAIFinishReason | null): Uint8Array;
  /** The final usage chunk (`choices: []`), sent only when the client asked for usage. */
  usage(usage: OpenAIUsage): Uint8Array;
}

/** One writer per response: every chunk shares its id, created time and model. */
export function createOpenAIChunkWriter(meta: ChunkMeta): OpenAIChunkWriter {
  const { id, created, model } = meta;
  return {
    delta: (delta, finish) =>
      encodeSseData({
        id,
        object: "chat.completion.chunk",
        created,
        model,
        system_fingerprint: null,
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
        ...(meta.includeUsage ? { usage: null } : {}),
      }),
    usage: (usage) =>
      encodeSseData({
        id,
        object: "chat.completion.chunk",
        created,
        model,
        system_fingerprint: null,
        choices: [],
        usage,
      }),
  };
}
