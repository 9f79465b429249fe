/**
 * A cached `chat.completion` replayed as typed stream chunks (`cache.streaming: true`): the
 * route's encoder frames them in the client's format (OpenAI SSE + `[DONE]`, Anthropic
 * events), exactly as it frames a translated provider stream.
 * @module
 */
import type { ChatChunk } from "../providers/types.ts";
import type { OpenAIChunkDelta, OpenAIUsage } from "../schema/openai.ts";

interface StoredChoice {
  index?: number;
  message?: {
    content?: string | null;
    tool_calls?: {
      id: string;
      type?: string;
      function: { name: string; arguments: string };
      extra_content?: object;
    }[];
    refusal?: string | null;
  };
  finish_reason?: string | null;
  /** The stop sequence that ended the answer (`/v1/messages`' `stop_sequence`), if said. */
  stop_sequence?: string | null;
}

/** The chunks of one answer: per choice a role chunk, its content, its tool calls, its finish. */
export function replayChunks(
  completion: Record<string, unknown>,
  includeUsage: boolean,
): ChatChunk[] {
  const id = typeof completion.id === "string" ? completion.id : "chatcmpl-cache";
  const created = typeof completion.created === "number"
    ? completion.created
    : Math.floor(Date.now() / 1000);
  const model = typeof completion.model === "string" ? completion.model : "";
  const chunk = (index: number, delta: OpenAIChunkDelta, finish: string | null): ChatChunk => ({
    id,
    object: "chat.completion.chunk",
    created,
    model,
    system_fingerprint: null,
    choices: [{ index, delta, logprobs: null, finish_reason: finish }],
    ...(includeUsage ? { usage: null } : {}),
  });
  const out: ChatChunk[] = [];
  const choices = Array.isArray(completion.choices) ? completion.choices as StoredChoice[] : [];
  choices.forEach((c, i) => {
    const index = c.index ?? i;
    const m = c.message ?? {};
    // A tool-call-only answer has null content, as its stored message does.
    const text = typeof m.content === "string" || !m.tool_calls?.length ? "" : null;
    out.push(chunk(index, { role: "assistant", content: text, refusal: null }, null));
    if (typeof m.content === "string" && m.content !== "") {
      out.push(chunk(index, { content: m.content }, null));
    }
    (m.tool_calls ?? []).forEach((t, n) => {
      out.push(chunk(index, {
        tool_calls: [{
          index: n,
          id: t.id,
          type: "function",
          function: { name: t.function.name, arguments: t.function.arguments },
          ...(t.extra_content !== undefined ? { extra_content: t.extra_content } : {}),
        }],
      }, null));
    });
    const last = chunk(index, {}, c.finish_reason ?? "stop");
    if (c.stop_sequence !== undefined) last.choices[0]!.stop_sequence = c.stop_sequence;
    out.push(last);
  });
  const usage = completion.usage as OpenAIUsage | undefined;
  if (includeUsage && usage && typeof usage === "object") {
    out.push({ id, object: "chat.completion.chunk", created, model, choices: [], usage });
  }
  return out;
}
