import type {
  OpenAIChatChunk,
  OpenAIChunkDelta,
  OpenAIFinishReason,
  OpenAIUsage,
} from "../schema/openai.ts";

export interface ChunkMeta {
  readonly id: string;
  readonly created: number;
  readonly model: string;
  /** `stream_options.include_usage`: OpenAI then puts `usage: null` on every chunk. */
  readonly includeUsage: boolean;
}

/** Builds the `chat.completion.chunk` events of one OpenAI stream we generate ourselves. */
export interface OpenAIChunkWriter {
  delta(delta: OpenAIChunkDelta, finish: OpenAIFinishReason | null): OpenAIChatChunk;
  /** The final usage chunk (`choices: []`), sent only when the client asked for usage. */
  usage(usage: OpenAIUsage): OpenAIChatChunk;
}

/** One writer per response: every chunk shares its id, created time and model. */
export function createOpenAIChunkWriter(meta: ChunkMeta): OpenAIChunkWriter {
  const { id, created, model } = meta;
  return {
    delta: (delta, finish) => ({
      id,
      object: "chat.completion.chunk",
      created,
      model,
      system_fingerprint: null,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...(meta.includeUsage ? { usage: null } : {}),
    }),
    usage: (usage) => ({
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

/** Writes the chunks of one translated stream, the role chunk held back (see `send`). */
export interface OpenAIChunkSender {
  chunk(delta: OpenAIChunkDelta, finish: OpenAIFinishReason | null): OpenAIChatChunk;
  /**
   * Enqueue `chunk`, preceded the first time by the role chunk. The role chunk is held back
   * until there is something to send after it, so an upstream error between the start of
   * the answer and its first token still fails the stream before its first byte, while
   * routing can fail over.
   */
  send(
    controller: TransformStreamDefaultController<OpenAIChatChunk>,
    chunk: OpenAIChatChunk,
  ): void;
}

/** `writer` is read on every chunk: a translator may create it once the upstream names an id. */
export function createOpenAIChunkSender(writer: () => OpenAIChunkWriter): OpenAIChunkSender {
  let greeted = false;
  const chunk = (delta: OpenAIChunkDelta, finish: OpenAIFinishReason | null) =>
    writer().delta(delta, finish);
  return {
    chunk,
    send(controller, next) {
      if (!greeted) {
        greeted = true;
        // An answer that opens with a tool call has no content: OpenAI says `null` there, and
        // the SDKs' stream helpers keep what the first delta says (`""` would stay `""`).
        const first = next.choices[0]?.delta;
        const content = first?.tool_calls !== undefined && first.content === undefined ? null : "";
        controller.enqueue(chunk({ role: "assistant", content, refusal: null }, null));
      }
      controller.enqueue(next);
    },
  };
}

/**
 * Tool calls streamed block by block: the upstream's content-block index -> the OpenAI
 * `tool_calls` index, the ordinal of the call among the answer's tool calls.
 */
export interface ToolCallDeltas {
  /** How many tool calls have started. */
  readonly count: number;
  /** The delta opening a call: its id (`call_<ordinal>` if none) and name; arguments follow. */
  start(blockIndex: number, id: unknown, name: unknown): OpenAIChunkDelta;
  /** A piece of a started call's arguments; null for a block that is not a started call. */
  args(blockIndex: unknown, json: string): OpenAIChunkDelta | null;
  /**
   * At a block's end: `"{}"` for a started call that got no arguments (a tool without
   * input), which OpenAI always sends as a JSON object; else null.
   */
  end(blockIndex: unknown): OpenAIChunkDelta | null;
}

export function createToolCallDeltas(): ToolCallDeltas {
  const ordinals = new Map<number, number>();
  /** Calls that got a piece of arguments. */
  const argued = new Set<number>();
  return {
    get count() {
      return ordinals.size;
    },
    start(blockIndex, id, name) {
      const ordinal = ordinals.size;
      ordinals.set(blockIndex, ordinal);
      return {
        tool_calls: [{
          index: ordinal,
          id: typeof id === "string" ? id : `call_${ordinal}`,
          type: "function",
          function: { name: typeof name === "string" ? name : "", arguments: "" },
        }],
      };
    },
    args(blockIndex, json) {
      const ordinal = typeof blockIndex === "number" ? ordinals.get(blockIndex) : undefined;
      if (ordinal === undefined || json === "") return null;
      argued.add(ordinal);
      return { tool_calls: [{ index: ordinal, function: { arguments: json } }] };
    },
    end(blockIndex) {
      const ordinal = typeof blockIndex === "number" ? ordinals.get(blockIndex) : undefined;
      if (ordinal === undefined || argued.has(ordinal)) return null;
      argued.add(ordinal);
      return { tool_calls: [{ index: ordinal, function: { arguments: "{}" } }] };
    },
  };
}
