import type { ProviderConfig } from "../../config/mod.ts";
import { abortableSleep } from "../../async.ts";
import { GatewayError } from "../../errors.ts";
import type { OpenAIChatChunk, OpenAIChatRequest, OpenAIUsage } from "../../schema/openai.ts";
import { classifyOutcome } from "../../breaker/classify.ts";
import {
  createOpenAIChunkWriter,
  createUsageMeter,
  knownUsage,
  meterChunks,
} from "../../streaming/mod.ts";
import type {
  ChatCall,
  ChatOutcome,
  EmbeddingsCall,
  JsonOutcome,
  ProviderAdapter,
} from "../types.ts";
import { encodeVector, encodingOf, type OpenAIEmbeddingList } from "../shared/embeddings.ts";
import {
  contentTexts,
  functionTools,
  imageUrl,
  rejectParams,
  responseFormatOf,
  stopSequences,
  toolCallId,
  toolCallsOf,
  toolChoiceOf,
  toolChoiceRequiresTools,
  userContent,
  visitMessages,
} from "../shared/openai_request.ts";

/**
 * The built-in `mock` provider (TensorZero's dummy): deterministic, offline, selected by
 * model name. Drives the newcomer's first curl, tests and benchmarks. It serves what routing
 * sends it: `mock/...` names, or models a user config routes to it explicitly; the embedded
 * default never sends it a bare model.
 *
 * - `mock/echo` (and any unlisted name): answers with the last user message
 * - `mock/slow`: waits `latency` (at least 1 s) before answering
 * - `mock/error-400`, `mock/error-429`, `mock/error-500`, `mock/error-503`: fail with that status
 * - `mock/flaky`: every other call fails with 503
 * - `mock/stream-error-after-3`: a stream that breaks after three content chunks
 *
 * It embeds too (`/v1/embeddings`): a deterministic unit vector per input.
 */
export const MOCK_MODELS = [
  "echo",
  "slow",
  "flaky",
  "error-400",
  "error-429",
  "error-500",
  "error-503",
  "stream-error-after-3",
] as const;

const FALLBACK_TEXT = "Hello from the Pilotfish mock provider";
/** text-embedding-3-large's size, the most OpenAI's embeddings accept. */
const MAX_DIMENSIONS = 3072;
/** Values in one embeddings answer (inputs x dimensions): 2,048 inputs of 512. */
const MAX_VALUES = 1_048_576;

export function createMockAdapter(cfg: ProviderConfig): ProviderAdapter {
  let calls = 0;
  return {
    name: cfg.name,
    type: "mock",
    models: () => (cfg.models.length > 0 ? cfg.models : MOCK_MODELS),
    // No `native`: the mock has no native API, so the passthrough routes refuse it.
    classify: classifyOutcome,
    /**
     * Deterministic vectors (`dimensions`, default 8) from each input's text, so the same
     * input always embeds the same; usage ~4 characters a token. The failure models fail.
     */
    embeddings(call: EmbeddingsCall, model: string): Promise<JsonOutcome> {
      calls++;
      const failure = mockFailure(model, calls, cfg.name);
      if (failure) return Promise.reject(failure);
      const input = call.body.input;
      // A single token array is one input, as on OpenAI.
      const inputs: unknown[] = Array.isArray(input) && !input.every((v) => typeof v === "number")
        ? input
        : [input];
      const dims = typeof call.body.dimensions === "number" ? call.body.dimensions : 8;
      // As OpenAI's largest model refuses more: a vector of 10^8 floats is no answer. And the
      // whole answer is bounded: it is built on the daemon's thread.
      const problem = !Number.isInteger(dims) || dims < 1 || dims > MAX_DIMENSIONS
        ? `Invalid value for 'dimensions' = ${dims}: an integer from 1 to ${MAX_DIMENSIONS}`
        : inputs.length * dims > MAX_VALUES
        ? `The mock answers at most ${MAX_VALUES} values: ${inputs.length} inputs of ${dims}`
        : null;
      if (problem !== null) {
        return Promise.reject(
          new GatewayError("invalid_request", problem, {
            status: 400,
            upstreamStatus: 400,
            provider: cfg.name,
            param: "dimensions",
          }),
        );
      }
      const encoding = encodingOf(call.body);
      let tokens = 0;
      const data = inputs.map((item, index) => {
        const text = typeof item === "string" ? item : JSON.stringify(item);
        tokens += Array.isArray(item) ? item.length : Math.max(1, Math.ceil(text.length / 4));
        return {
          object: "embedding" as const,
          index,
          embedding: encodeVector(mockVector(text, dims), encoding),
        };
      });
      const usage = { prompt_tokens: tokens, completion_tokens: 0, total_tokens: tokens };
      const body: OpenAIEmbeddingList = {
        object: "list",
        data,
        model,
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      };
      return Promise.resolve({
        kind: "json",
        status: 200,
        format: "object",
        body: body as unknown as Record<string, unknown>,
        usage: knownUsage(usage),
      });
    },
    async chat(call: ChatCall, model: string): Promise<ChatOutcome> {
      checkRequest(call.body, cfg.name);
      calls++;
      const failure = mockFailure(model, calls, cfg.name);
      const latency = model === "slow" ? Math.max(cfg.latency, 1_000) : cfg.latency;
      if (latency > 0) {
        // The attempt's timeout (x-gateway.timeout, the deadline, `timeout`), as an HTTP
        // provider's would end it.
        await abortableSleep(Math.min(latency, call.timeoutMs), call.signal);
        if (latency > call.timeoutMs) {
          throw new GatewayError(
            "upstream_timeout",
            `Provider "${cfg.name}" did not answer within ${call.timeoutMs} ms`,
            { provider: cfg.name },
          );
        }
      }
      if (failure) throw failure;

      const text = echoText(call.body);
      const usage = countUsage(call.body, text);
      const id = `chatcmpl-mock-${calls}`;
      const created = Math.floor(Date.now() / 1000);
      if (!call.stream) {
        return {
          kind: "json",
          status: 200,
          format: "object",
          body: completion(id, created, model, text, usage),
          usage: knownUsage(usage),
        };
      }
      const breakAfter = model === "stream-error-after-3" ? 3 : Infinity;
      const pieces = splitText(text, cfg.stream_chunks);
      // A breaking stream always gets past its third chunk, however short the prompt.
      while (Number.isFinite(breakAfter) && pieces.length <= breakAfter) {
        pieces.push(...splitText(text, cfg.stream_chunks));
      }
      const includeUsage = call.body.stream_options?.include_usage === true;
      const events = streamEvents(
        id,
        created,
        model,
        pieces,
        includeUsage ? usage : null,
        breakAfter,
      );
      const abort = new AbortController();
      let first = true;
      const meter = createUsageMeter();
      // Input is known at once; output only once all of it went out (a cut stream estimates).
      meter.report({ prompt_tokens: usage.prompt_tokens });
      return {
        kind: "stream",
        status: 200,
        format: "chunks",
        usage: meter.usage,
        body: new ReadableStream<OpenAIChatChunk>({
          async pull(controller) {
            if (!first && cfg.chunk_delay > 0) await abortableSleep(cfg.chunk_delay, abort.signal);
            first = false;
            const next = events.next();
            if (next.done) {
              meter.report(usage);
              controller.close();
            } else if (next.value === null) {
              controller.error(new Error("mock upstream stream broke"));
            } else {
              controller.enqueue(next.value);
            }
          },
          cancel() {
            abort.abort();
          },
        }, { highWaterMark: 0 }).pipeThrough(meterChunks(meter)),
      };
    },
  };
}

/**
 * What an OpenAI upstream refuses with a 400, the mock refuses too, with the translators'
 * checks: malformed tools, `tool_choice`, `stop`, `response_format`, content parts and tool
 * calls. `n` > 1 is refused rather than answered with one choice.
 */
function checkRequest(body: OpenAIChatRequest, provider: string): void {
  rejectParams(body, [["n", (v) => v !== 1]], provider);
  const tools = functionTools(body.tools);
  const choice = toolChoiceOf(body.tool_choice);
  if (tools.length === 0 && choice !== null && choice !== "auto" && choice !== "none") {
    throw toolChoiceRequiresTools();
  }
  stopSequences(body.stop);
  responseFormatOf(body.response_format, provider);
  visitMessages(body.messages, provider, {
    system: (m, at) => contentTexts(m.content, at, provider),
    user: (m, at) =>
      userContent(m.content, at, provider, () => [], (p, where) => imageUrl(p, where)),
    assistant: (m, at) => {
      contentTexts(m.content, at, provider);
      toolCallsOf(m.tool_calls, at);
    },
    tool: (m, at) => {
      toolCallId(m, at);
      contentTexts(m.content, at, provider);
    },
  });
}

/** A unit vector of `dims` from `text` (FNV-1a, then xorshift): the same text, the same vector. */
function mockVector(text: string, dims: number): number[] {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  const out: number[] = [];
  let norm = 0;
  for (let i = 0; i < dims; i++) {
    h ^= h << 13;
    h ^= h >>> 17;
    h ^= h << 5;
    const v = ((h >>> 0) / 0xffffffff) * 2 - 1;
    out.push(v);
    norm += v * v;
  }
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  return out.map((v) => Math.fround(v * scale));
}

function mockFailure(model: string, calls: number, provider: string): GatewayError | null {
  const m = /^error-(\d{3})$/.exec(model);
  const status = m ? Number(m[1]) : model === "flaky" && calls % 2 === 1 ? 503 : 0;
  if (status === 0) return null;
  return new GatewayError(
    status === 429 ? "rate_limited" : "upstream_error",
    `Mock provider failure ${status}`,
    {
      status,
      upstreamStatus: status,
      provider,
      ...(status === 429 ? { headers: { "retry-after": "1" } } : {}),
    },
  );
}

function echoText(body: OpenAIChatRequest): string {
  for (let i = body.messages.length - 1; i >= 0; i--) {
    const m = body.messages[i];
    if (m?.role !== "user") continue;
    if (typeof m.content === "string") return m.content || FALLBACK_TEXT;
    if (Array.isArray(m.content)) {
      const text = m.content.flatMap((
        p,
      ) => (p.type === "text" && typeof p.text === "string" ? [p.text] : []))
        .join(" ");
      return text || FALLBACK_TEXT;
    }
  }
  return FALLBACK_TEXT;
}

/** Deterministic token estimate: ~4 characters a token, as the llm-proxy seed estimates. */
function countUsage(body: OpenAIChatRequest, text: string): OpenAIUsage {
  let chars = 0;
  for (const m of body.messages) {
    chars += typeof m.content === "string"
      ? m.content.length
      : JSON.stringify(m.content ?? "").length;
  }
  const prompt = Math.max(1, Math.ceil(chars / 4));
  const completionTokens = Math.max(1, Math.ceil(text.length / 4));
  return {
    prompt_tokens: prompt,
    completion_tokens: completionTokens,
    total_tokens: prompt + completionTokens,
  };
}

function completion(
  id: string,
  created: number,
  model: string,
  text: string,
  usage: OpenAIUsage,
): Record<string, unknown> {
  return {
    id,
    object: "chat.completion",
    created,
    model,
    choices: [{
      index: 0,
      message: { role: "assistant", content: text, refusal: null },
      logprobs: null,
      finish_reason: "stop",
    }],
    usage,
    system_fingerprint: null,
  };
}

/** Split into `n` pieces (0 = one per word, keeping the spaces). */
function splitText(text: string, n: number): string[] {
  if (n <= 0) return text.match(/\S+\s*|\s+/g) ?? [text];
  const size = Math.ceil(text.length / n);
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out.length > 0 ? out : [""];
}

/** The event sequence of an OpenAI stream; `null` marks a deliberate break. */
function* streamEvents(
  id: string,
  created: number,
  model: string,
  pieces: string[],
  usage: OpenAIUsage | null,
  breakAfter: number,
): Generator<OpenAIChatChunk | null> {
  const writer = createOpenAIChunkWriter({ id, created, model, includeUsage: usage !== null });
  yield writer.delta({ role: "assistant", content: "", refusal: null }, null);
  let sent = 0;
  for (const piece of pieces) {
    if (sent === breakAfter) {
      yield null;
      return;
    }
    yield writer.delta({ content: piece }, null);
    sent++;
  }
  if (sent === breakAfter) {
    yield null;
    return;
  }
  yield writer.delta({}, "stop");
  if (usage) yield writer.usage(usage);
}
