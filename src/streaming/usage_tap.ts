import type { OpenAIUsage } from "../schema/openai.ts";
import { createSseTap } from "./sse.ts";
import type { UsageMeter } from "./usage.ts";
import { balancedObject } from "./usage_sniff.ts";

const HAS_USAGE = /"usage"\s*:\s*\{/;

/**
 * Pass OpenAI SSE bytes through unchanged while reading `usage` off the side into `meter`,
 * settled when the stream ends or is cut. Only events that carry a usage object are
 * JSON-parsed, so the common chunk costs one regex test.
 */
export function createOpenAIUsageTap(meter: UsageMeter): TransformStream<Uint8Array, Uint8Array> {
  return createSseTap(
    (data) => {
      if (!HAS_USAGE.test(data)) return;
      try {
        const usage = (JSON.parse(data) as { usage?: OpenAIUsage }).usage;
        if (usage && typeof usage.prompt_tokens === "number") meter.report(usage);
      } catch {
        // Not JSON: not ours to judge; the bytes still reach the client.
      }
    },
    () => meter.settle("complete"),
    () => meter.settle("cut"),
  );
}

const TAIL_BYTES = 2048;
const tailDecoder = new TextDecoder();

/**
 * Usage from a non-streaming OpenAI JSON body, without parsing the whole body: `usage`
 * sits near the end of every OpenAI-compatible response we know, so only the tail is
 * decoded and only the usage object is parsed (the whole body when the tail lacks it).
 */
export function findOpenAIUsage(body: Uint8Array): OpenAIUsage | null {
  const tail = body.byteLength > TAIL_BYTES ? body.subarray(body.byteLength - TAIL_BYTES) : body;
  return usageIn(tailDecoder.decode(tail)) ??
    (tail === body ? null : usageIn(tailDecoder.decode(body)));
}

function usageIn(text: string): OpenAIUsage | null {
  const key = text.lastIndexOf('"usage"');
  if (key < 0) return null;
  const start = text.indexOf("{", key);
  if (start < 0 || text.slice(key + 7, start).trim() !== ":") return null;
  const object = balancedObject(text, start);
  if (object === null) return null;
  try {
    return readOpenAIUsage({ usage: JSON.parse(object) });
  } catch {
    return null;
  }
}

/** Usage from a parsed non-streaming OpenAI response body, if present. */
export function readOpenAIUsage(body: unknown): OpenAIUsage | null {
  if (body === null || typeof body !== "object") return null;
  const usage = (body as { usage?: unknown }).usage;
  if (usage === null || typeof usage !== "object") return null;
  return typeof (usage as OpenAIUsage).prompt_tokens === "number" ? usage as OpenAIUsage : null;
}
