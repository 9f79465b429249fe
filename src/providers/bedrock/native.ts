import type { OpenAIUsage } from "../../schema/openai.ts";
import { num, pickUsage, StreamCutShort, withDetails } from "../../streaming/usage_sniff.ts";
import { anthropicUsageOf } from "../anthropic/native.ts";
import { openAIUsageOf } from "../openai/native.ts";
import { BEARER_AUTH } from "../shared/native_auth.ts";
import type { StreamFailures } from "../../streaming/mod.ts";
import type { NativeApi } from "../types.ts";
import { exceptionMessage, fromBedrockStreamException } from "./errors.ts";

const EVENT_STREAM = "application/vnd.amazon.eventstream";

type Frame = { headers: Record<string, { value: unknown }>; body: Uint8Array };
type Codec = { decode(message: Uint8Array): Frame };
let codec: Promise<Codec> | null = null;
/** The AWS event-stream codec, loaded on first use: only Bedrock traffic needs it. */
function eventStreamCodec(): Promise<Codec> {
  codec ??= Promise.all([import("@smithy/eventstream-codec"), import("@smithy/util-utf8")])
    .then(([es, utf8]) => new es.EventStreamCodec(utf8.toUtf8, utf8.fromUtf8));
  return codec;
}

/**
 * Usage in Bedrock answers: Converse / ConverseStream `usage.inputTokens`, InvokeModel
 * bodies (the invocation metrics of a stream's last chunk, Llama's and Titan's own counts),
 * and the model families' own shapes InvokeModel passes through (Anthropic, OpenAI).
 */
export function bedrockUsageOf(value: unknown): Partial<OpenAIUsage> | null {
  if (value === null || typeof value !== "object") return null;
  const o = value as Record<string, unknown>;
  const u = o.usage as Record<string, unknown> | undefined;
  if (
    u && typeof u === "object" &&
    (typeof u.inputTokens === "number" || typeof u.outputTokens === "number")
  ) {
    // Converse's `inputTokens` excludes cache reads and writes (reported beside it).
    const reads = num(u.cacheReadInputTokens);
    const writes = num(u.cacheWriteInputTokens);
    return withDetails(
      pickUsage(num(u.inputTokens) + reads + writes, u.outputTokens),
      reads,
      writes,
      0,
    );
  }
  const m = o["amazon-bedrock-invocationMetrics"] as Record<string, unknown> | undefined;
  if (m && typeof m === "object") {
    // Its `inputTokenCount` excludes the cache reads and writes counted beside it, as
    // Converse's does: without them a cached prompt came out smaller than its cached part.
    const reads = num(m.cacheReadInputTokenCount ?? m.cacheReadInputTokens);
    const writes = num(m.cacheWriteInputTokenCount ?? m.cacheWriteInputTokens);
    if (reads === 0 && writes === 0) return pickUsage(m.inputTokenCount, m.outputTokenCount);
    return withDetails(
      pickUsage(num(m.inputTokenCount) + reads + writes, m.outputTokenCount),
      reads,
      writes,
      0,
    );
  }
  if (typeof o.prompt_token_count === "number") {
    return pickUsage(o.prompt_token_count, o.generation_token_count);
  }
  if (typeof o.inputTextTokenCount === "number") {
    const results = Array.isArray(o.results) ? o.results as Record<string, unknown>[] : [];
    return pickUsage(o.inputTextTokenCount, results.reduce((n, r) => n + num(r.tokenCount), 0));
  }
  return anthropicUsageOf(value) ?? openAIUsageOf(value);
}

/**
 * AWS event-stream frames (ConverseStream / InvokeModelWithResponseStream): decoded with the
 * maintained codec (CRC-checked) as they pass; only a partial frame is kept. An exception
 * frame (`:message-type: exception`, `:exception-type: throttlingException`, ..., after HTTP
 * 200) or a protocol error frame goes to `failures` as the GatewayError a non-stream reply
 * of that exception would be, so the breaker reads it the same way.
 */
function eventStreamFrames(
  contentType: string,
  onObject: (value: unknown) => void,
  onEnd: (how: "complete" | "cut") => void,
  onContent: (chars: number) => void,
  failures?: StreamFailures,
): TransformStream<Uint8Array, Uint8Array> | null {
  if (!contentType.includes(EVENT_STREAM)) return null;
  let pending = new Uint8Array(0);
  const decoder = new TextDecoder();
  // ConverseStream ends with messageStop and metadata: one that closes before either was cut
  // short, as an SSE stream without its last event is (InvokeModel's chunks name no end).
  let converse = false;
  let ended = false;
  const inspect = ({ headers, body: payload }: Frame) => {
    const header = (name: string) => {
      const v = headers[name]?.value;
      return typeof v === "string" ? v : "";
    };
    const type = header(":event-type");
    if (type === "messageStart") converse = true;
    else if (type === "messageStop" || type === "metadata") ended = true;
    const kind = header(":message-type");
    if (kind === "exception" || kind === "error") {
      ended = true;
      if (failures === undefined) return;
      const exception = kind === "exception";
      failures.report(fromBedrockStreamException(
        header(exception ? ":exception-type" : ":error-code"),
        exception ? exceptionMessage(decoder.decode(payload)) : header(":error-message"),
        failures.provider,
        // The message reaches only the log line, whose logger redacts upstream text.
        (text) => text,
      ));
      return;
    }
    try {
      const event = JSON.parse(decoder.decode(payload)) as Record<string, unknown>;
      onObject(event);
      onContent(contentChars(event));
      // InvokeModelWithResponseStream: the model's own chunk is base64 inside `bytes`.
      if (typeof event.bytes === "string") {
        const chunk = JSON.parse(
          decoder.decode(Uint8Array.from(atob(event.bytes), (ch) => ch.charCodeAt(0))),
        ) as unknown;
        onObject(chunk);
        onContent(contentChars(chunk));
      }
    } catch {
      // not JSON: nothing to count
    }
  };
  return new TransformStream({
    async transform(chunk, controller) {
      const joined = new Uint8Array(pending.byteLength + chunk.byteLength);
      joined.set(pending, 0);
      joined.set(chunk, pending.byteLength);
      let offset = 0;
      while (joined.byteLength - offset >= 4) {
        const total = new DataView(joined.buffer, joined.byteOffset + offset, 4).getUint32(0);
        if (total < 16 || joined.byteLength - offset < total) break;
        try {
          inspect((await eventStreamCodec()).decode(joined.subarray(offset, offset + total)));
        } catch {
          // a corrupt frame is the client's to notice; accounting just skips it
        }
        offset += total;
      }
      pending = joined.slice(offset);
      // Counted before the client has it: a client that leaves at once is still charged.
      controller.enqueue(chunk);
    },
    flush() {
      const cut = converse && !ended;
      onEnd(cut ? "cut" : "complete");
      // The relayed body errors: the client's SDK sees the break, not a partial answer.
      if (cut) throw new StreamCutShort();
    },
    cancel() {
      onEnd("cut");
    },
  } as Transformer<Uint8Array, Uint8Array>);
}

/**
 * The answer text in one streamed object, for the estimate of a stream cut short: Converse's
 * `delta.text` / `delta.toolUse.input`, and inside InvokeModel chunks Anthropic's
 * `delta.text` / `delta.partial_json`, Titan's `outputText`, Llama's `generation`.
 */
function contentChars(value: unknown): number {
  if (value === null || typeof value !== "object") return 0;
  const o = value as Record<string, unknown>;
  const d = o.delta as Record<string, unknown> | undefined;
  let n = 0;
  for (
    const v of [
      d?.text,
      d?.partial_json,
      (d?.toolUse as Record<string, unknown> | undefined)?.input,
      o.outputText,
      o.generation,
    ]
  ) {
    if (typeof v === "string") n += v.length;
  }
  return n;
}

/** InvokeModel reports usage in headers: no need to look inside the body. */
function headerUsage(headers: Headers): OpenAIUsage | null {
  const input = headers.get("x-amzn-bedrock-input-token-count");
  const output = headers.get("x-amzn-bedrock-output-token-count");
  if (input === null && output === null) return null;
  const p = Number(input ?? 0);
  const q = Number(output ?? 0);
  return { prompt_tokens: p, completion_tokens: q, total_tokens: p + q };
}

/** SigV4 (`Authorization: AWS4-HMAC-SHA256 ...`) or a Bedrock API key as Bearer. */
export const BEDROCK_NATIVE: NativeApi = {
  auth: BEARER_AUTH,
  // An inference profile's ARN (`arn:aws:bedrock:...:inference-profile/...`) travels as one
  // segment with its `/` encoded, as the AWS SDKs send and sign it.
  opaqueSegment: /^arn:aws[a-z-]*:bedrock:/,
  usage: bedrockUsageOf,
  frames: eventStreamFrames,
  headerUsage,
};
