import type { ProviderConfig } from "../../config/mod.ts";
import { GatewayError } from "../../errors.ts";
import { createUsageMeter, knownUsage, meterChunks, pullThrough } from "../../streaming/mod.ts";
import { classifyOutcome } from "../../breaker/classify.ts";
import { executeUpstream, lowerCaseKeys, type UpstreamReply } from "../execute.ts";
import type {
  AdapterDeps,
  CallBasics,
  ChatCall,
  ChatOutcome,
  CountTokensCall,
  MessagesCall,
  ProviderAdapter,
  TokenCount,
} from "../types.ts";
import { anthropicStreamFailure, fromAnthropicError } from "./errors.ts";
import { ANTHROPIC_NATIVE } from "./native.ts";
import { toAnthropicRequest } from "./request.ts";
import { fromAnthropicResponse, toOpenAIUsage } from "./response.ts";
import { toOpenAIStream } from "./stream.ts";
import type { AnthropicUsage } from "./types.ts";
import { anthropicUsageTap } from "./usage_tap.ts";
import { scrubbed, scrubStream } from "../../streaming/scrub.ts";
import { notEventStream, notJsonBody } from "../shared/errors.ts";

/** One-shot decodes (no `stream` state): one decoder serves them all. */
const utf8 = new TextDecoder();

/** The Messages API version this translation is written against; `cfg.headers` may override. */
export const ANTHROPIC_VERSION = "2023-06-01";

/**
 * Where the Messages API lives for a `base_url`: one ending in a version segment (`/v1`, the
 * preset's) is used as it is; a root (`https://api.anthropic.com`, what Anthropic's SDKs take
 * as `baseURL`, adding `/v1/messages` themselves) gets `/v1`.
 */
export function anthropicApiBase(baseUrl: string): string {
  return /\/v\d+(?:alpha|beta)?\d*$/.test(baseUrl) ? baseUrl : `${baseUrl}/v1`;
}

/**
 * Adapter for the Anthropic Messages API. Behind the unified OpenAI-compatible API (`chat`)
 * the OpenAI request is translated to `POST {base_url}/messages` and the answer (JSON or
 * SSE) back to OpenAI wire format; behind `POST /v1/messages` (`messages`) the client's
 * Anthropic body is forwarded as is and the answer relayed untouched.
 */
export function createAnthropicAdapter(cfg: ProviderConfig, deps: AdapterDeps): ProviderAdapter {
  // Built once per config: the hot path only copies it.
  const baseHeaders: Readonly<Record<string, string>> = Object.freeze({
    "anthropic-version": ANTHROPIC_VERSION,
    ...lowerCaseKeys(cfg.headers),
    "content-type": "application/json",
  });
  const api = anthropicApiBase(cfg.base_url);
  const url = `${api}/messages`;
  const countUrl = `${api}/messages/count_tokens`;
  const adapter: ProviderAdapter = {
    name: cfg.name,
    type: cfg.type,
    // Anthropic's `req_...`.
    requestIdHeader: "request-id",
    models: () => cfg.models,
    classify: classifyOutcome,
    native: ANTHROPIC_NATIVE,
    async chat(call: ChatCall, model: string): Promise<ChatOutcome> {
      // Translation errors are the caller's 400s and must surface before any upstream call.
      const body = (call.body.stream === true) === call.stream
        ? call.body
        : { ...call.body, stream: call.stream };
      const payload = toAnthropicRequest(body, model, cfg.name);
      const reply = await send(call, baseHeaders, JSON.stringify(payload));
      const res = reply.response;
      if (call.stream) {
        const meter = createUsageMeter();
        return {
          kind: "stream",
          status: res.status,
          format: "chunks",
          // The key this gateway sent, echoed in the answer, is taken out before translation.
          body: toOpenAIStream(scrubStream(deps.scrub, await eventStream(reply)), {
            model,
            includeUsage: call.body.stream_options?.include_usage === true,
            onUsage: meter.report,
            onInputUsage: meter.report,
            provider: cfg.name,
            redact: deps.redact,
          }).pipeThrough(meterChunks(meter)),
          usage: meter.usage,
        };
      }
      const completion = fromAnthropicResponse(await readJson(reply), model, undefined, cfg.name);
      return {
        kind: "json",
        status: res.status,
        format: "object",
        body: completion as unknown as Record<string, unknown>,
        usage: knownUsage(completion.usage),
      };
    },

    /**
     * Same-schema passthrough (Envoy's openai->openai, for Anthropic): only `model` is
     * patched, so fields we do not know (new block types, betas) travel unchanged, and the
     * answer's bytes reach the client as Anthropic sent them, usage tapped on the side.
     */
    async messages(call: MessagesCall, model: string): Promise<ChatOutcome> {
      const body = call.body.model === model ? call.body : { ...call.body, model };
      const reply = await send(call, clientHeaders(call.headers), JSON.stringify(body));
      const res = reply.response;
      if (call.stream) {
        const meter = createUsageMeter();
        return {
          kind: "stream",
          status: res.status,
          format: "anthropic_sse",
          // The key this gateway sent, echoed in an event, is taken out before anyone reads it.
          body: pullThrough(
            await eventStream(reply),
            scrubbed(deps.scrub, anthropicUsageTap(meter, cfg.name)),
          ),
          usage: meter.usage,
          failure: (data) => anthropicStreamFailure(data, cfg.name, deps.redact),
        };
      }
      const bytes = await reply.bytes();
      // Already buffered whole; parsing is how usage is found and a non-JSON body refused.
      const json = parseJson(utf8.decode(bytes), res.status);
      const usage = json !== null && typeof json === "object"
        ? (json as { usage?: AnthropicUsage }).usage
        : undefined;
      return {
        kind: "json",
        status: res.status,
        format: "anthropic_json",
        body: bytes,
        usage: knownUsage(usage !== undefined ? toOpenAIUsage(usage) : null),
      };
    },

    /**
     * Anthropic's own count (`POST /v1/messages/count_tokens`): the client's count_tokens
     * body relayed with its `anthropic-version` and `anthropic-beta` (beta fields such as
     * `context_management` included), or the chat request translated, of which only the
     * fields that shape the prompt are sent.
     */
    async countTokens(call: CountTokensCall, model: string): Promise<TokenCount> {
      let body: Record<string, unknown>;
      if (call.messages !== null) {
        body = { ...call.messages, model };
        // A Messages body reused for a count: its generation settings are not the prompt's.
        for (const field of GENERATION_FIELDS) delete body[field];
      } else {
        // Thinking settings shape the answer, not the prompt: a count never refuses over them.
        const source = toAnthropicRequest(
          { ...call.chat, reasoning_effort: undefined },
          model,
          cfg.name,
        ) as unknown as Record<string, unknown>;
        body = { model };
        for (const field of COUNT_FIELDS) {
          if (source[field] !== undefined) body[field] = source[field];
        }
      }
      // Fields named, not spread: `call.chat` is translated on read (not needed here).
      const basics = {
        signal: call.signal,
        timeoutMs: call.timeoutMs,
        apiKey: call.apiKey,
        clientAuthorization: call.clientAuthorization,
        stream: false as const,
        // The attempt reads the provider's request id from the reply's headers.
        onReply: call.onReply,
        trace: call.trace,
      };
      const headers = call.messages !== null ? clientHeaders(call.headers) : baseHeaders;
      const reply = await send(basics, headers, JSON.stringify(body), countUrl);
      const json = await readJson(reply) as { input_tokens?: unknown } | null;
      const tokens = json?.input_tokens;
      if (typeof tokens !== "number") {
        throw new GatewayError(
          "upstream_error",
          `Provider "${cfg.name}" answered a token count without "input_tokens"`,
          { provider: cfg.name, upstreamStatus: reply.response.status },
        );
      }
      return { input_tokens: tokens, estimate: false };
    },
  };
  return adapter;

  /**
   * The client's `anthropic-version` wins over our default and `cfg.headers`: the body was
   * written against it. `anthropic-beta` flags from config and client are both sent.
   */
  function clientHeaders(
    client: Readonly<Record<string, string>>,
  ): Readonly<Record<string, string>> {
    const version = client["anthropic-version"];
    const beta = [baseHeaders["anthropic-beta"], client["anthropic-beta"]]
      .flatMap((v) => (v ?? "").split(","))
      .map((v) => v.trim())
      .filter((v, i, all) => v !== "" && all.indexOf(v) === i);
    if (version === undefined && beta.length === 0) return baseHeaders;
    return {
      ...baseHeaders,
      ...(version !== undefined ? { "anthropic-version": version } : {}),
      ...(beta.length > 0 ? { "anthropic-beta": beta.join(",") } : {}),
    };
  }

  function send(
    call: ChatCall | MessagesCall | (CallBasics & { stream: false }),
    headers: Readonly<Record<string, string>>,
    body: string,
    to: string = url,
  ): Promise<UpstreamReply> {
    const h: Record<string, string> = {
      ...headers,
      accept: call.stream ? "text/event-stream" : "application/json",
    };
    const key = call.apiKey ?? keyFromAuthorization(call.clientAuthorization);
    if (key !== null) h["x-api-key"] = key;
    return executeUpstream(deps.fetch, { url: to, method: "POST", headers: h, body }, {
      signal: call.signal,
      scrub: deps.scrub,
      timeoutMs: call.timeoutMs,
      onReply: call.onReply,
      trace: call.trace,
      provider: cfg.name,
      toError: (status, text, headers) =>
        fromAnthropicError(status, text, headers, cfg.name, deps.redact),
    });
  }

  /** The reply's body as an event stream; refused when the upstream answered otherwise. */
  async function eventStream(reply: UpstreamReply): Promise<ReadableStream<Uint8Array>> {
    const res = reply.response;
    const contentType = res.headers.get("content-type") ?? "";
    if (!contentType.includes("text/event-stream") || !res.body) {
      await res.body?.cancel();
      reply.settle();
      throw notEventStream(cfg.name, res.status);
    }
    reply.settle();
    return res.body;
  }

  async function readJson(reply: UpstreamReply): Promise<unknown> {
    return parseJson(await reply.text(), reply.response.status);
  }

  function parseJson(text: string, status: number): unknown {
    try {
      return JSON.parse(text);
    } catch {
      throw notJsonBody(cfg.name, status);
    }
  }
}

/** What `count_tokens` accepts besides `model` (the prompt, not the generation settings). */
const COUNT_FIELDS = ["messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"];

/** Messages API fields that set how the answer is generated, which count_tokens refuses. */
const GENERATION_FIELDS = [
  "max_tokens",
  "stream",
  "temperature",
  "top_p",
  "top_k",
  "stop_sequences",
  "metadata",
  "service_tier",
];

/**
 * The Messages API authenticates with `x-api-key` (API overview: "All requests to the
 * Anthropic API must include an x-api-key header"). A forwarded client credential arrives
 * as OpenAI SDKs send it, `Authorization: Bearer <key>`, so its value moves to `x-api-key`.
 */
function keyFromAuthorization(authorization: string | null): string | null {
  if (authorization === null) return null;
  const key = authorization.replace(/^\s*Bearer\s+/i, "").trim();
  return key === "" ? null : key;
}
