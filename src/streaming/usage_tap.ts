import type { OpenAIUsage } from "../schema/openai.ts";
import { createSseDataReader } from "./sse.ts";

const HAS_USAGE = /"usage"\s*:\s*\{/;

/**
 * Pass OpenAI SSE bytes through unchanged while reading `usage` off the side. Only events
 * that carry a usage object are JSON-parsed, so the common chunk costs one regex test.
 */
export function createOpenAIUsageTap(
  onUsage: (usage: OpenAIUsage) => void,
): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  const read = createSseDataReader();
  const inspect = (events: string[]) => {
    for (const data of events) {
      if (!HAS_USAGE.test(data)) continue;
      try {
        const usage = (JSON.parse(data) as { usage?: OpenAIUsage }).usage;
        if (usage && typeof usage.prompt_tokens === "number") onUsage(usage);
      } catch {
        // Not JSON: not ours to judge; the bytes still reach the client.
      }
    }
  };
  return new TransformStream({
    transform(chunk, controller) {
      controller.enqueue(chunk);
      inspect(read(decoder.decode(chunk, { stream: true })));
    },
    flush() {
      inspect(read(decoder.decode(), true));
    },
  });
}

/** Usage from a non-streaming OpenAI response body, if present. */
export function readOpenAIUsage(body: unknown): OpenAIUsage | null {
  if (body === null || typeof body !== "object") return null;
  const usage = (body as { usage?: unknown }).usage;
  if (usage === null || typeof usage !== "object") return null;
  return typeof (usage as OpenAIUsage).prompt_tokens === "number" ? usage as OpenAIUsage : null;
}
