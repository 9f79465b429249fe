import { GatewayError } from "../../errors.ts";
import {
  createSseDataReader,
  sseEventType,
  type SyncTransformer,
  toTransformStream,
  type UsageMeter,
} from "../../streaming/mod.ts";
import { toOpenAIUsage } from "./response.ts";
import { mergeUsage } from "./stream.ts";
import type { AnthropicUsage } from "./types.ts";

/** Only these events are parsed; every other event costs one regex test. */
const WANTED = /"type"\s*:\s*"(message_start|message_delta|message_stop|error)"/;
/** The event's own (top-level) type when it is one of `WANTED`'s, never one nested in it. */
function wantedType(data: string): string | undefined {
  if (!WANTED.test(data)) return undefined;
  const type = sseEventType(data);
  return type === "message_start" || type === "message_delta" || type === "message_stop" ||
      type === "error"
    ? type
    : undefined;
}
/** A delta's text (JSON-escaped): counted for the estimate of a stream cut short. */
const DELTA_TEXT = /"(?:text|partial_json|thinking)"\s*:\s*"((?:[^"\\]|\\.)*)"/;

/**
 * Pass Anthropic SSE bytes through untouched (each chunk is forwarded before it is looked
 * at) while reading usage off the side: `message_start` has the input counts,
 * `message_delta` the final output count, reported to `meter` as they arrive (so a stream cut
 * short still accounts for its input), settled when the stream ends or is cut.
 *
 * A stream that ends without `message_stop` or an upstream `event: error` was cut off, so
 * the tap errors it at the end; the route then appends its own `event: error` rather than
 * letting the client take a truncated message for a complete one. One that carried the
 * upstream's `event: error` fails at its end as told: the client has that event already. A
 * decoded stream fails sooner, where its decoder reads the error event.
 */
export function anthropicUsageTap(
  meter: UsageMeter,
  provider: string,
): SyncTransformer<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  const read = createSseDataReader();
  let usage: AnthropicUsage = {};
  let ended = false;
  /** The upstream's own `event: error` went by (and on to the client, as it came). */
  let failed = false;
  const inspect = (events: string[]) => {
    for (const data of events) {
      const type = wantedType(data);
      if (type === undefined) {
        const text = DELTA_TEXT.exec(data);
        if (text) meter.content((text[1] as string).length);
        continue;
      }
      if (type === "message_stop" || type === "error") {
        ended = true;
        if (type === "error") failed = true;
        continue;
      }
      let event: unknown;
      try {
        event = JSON.parse(data);
      } catch {
        continue; // not ours to judge: the bytes already went to the client
      }
      if (event === null || typeof event !== "object") continue;
      const e = event as { message?: { usage?: unknown }; usage?: unknown };
      if (type === "message_start") {
        usage = mergeUsage(usage, e.message?.usage);
        if (usage.input_tokens !== undefined) {
          // Output so far is unknown until message_delta: the meter estimates it if cut.
          const { completion_tokens: _c, total_tokens: _t, ...input } = toOpenAIUsage(usage);
          meter.report(input);
        }
      } else {
        usage = mergeUsage(usage, e.usage);
        meter.report(toOpenAIUsage(usage));
      }
    }
  };
  return {
    transform(chunk, enqueue) {
      enqueue(chunk);
      inspect(read(decoder.decode(chunk, { stream: true })));
    },
    flush() {
      inspect(read(decoder.decode(), true));
      meter.settle(ended && !failed ? "complete" : "cut");
      if (failed) {
        // Relayed as it came: the stream ends as a failure (logged so) with nothing added.
        throw new GatewayError(
          "upstream_error",
          `Stream from provider "${provider}" failed: it sent an error event`,
          { provider, told: true },
        );
      }
      if (!ended) {
        throw new GatewayError(
          "upstream_error",
          `Stream from provider "${provider}" ended before message_stop`,
          { provider },
        );
      }
    },
    cancel() {
      meter.settle("cut");
    },
  };
}

/** `anthropicUsageTap` as a `TransformStream`. */
export function createAnthropicUsageTap(
  meter: UsageMeter,
  provider: string,
): TransformStream<Uint8Array, Uint8Array> {
  return toTransformStream(anthropicUsageTap(meter, provider));
}
