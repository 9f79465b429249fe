import type { ProviderConfig } from "../../config/mod.ts";
import { GatewayError } from "../../errors.ts";
import {
  createUsageMeter,
  findOpenAIUsage,
  knownUsage,
  openAIUsageStrip,
  openAIUsageTap,
  pullThrough,
  type SyncTransformer,
  type UsageMeter,
} from "../../streaming/mod.ts";
import { executeUpstream, lowerCaseKeys, type UpstreamReply } from "../execute.ts";
import { scrubbed, type SecretScrub } from "../../streaming/scrub.ts";
import type {
  AdapterDeps,
  CallBasics,
  ChatCall,
  ChatOutcome,
  CountTokensCall,
  EmbeddingsCall,
  JsonOutcome,
  ProviderAdapter,
  ResponsesCall,
  StoredResponseCall,
  StoredResponseReply,
  TokenCount,
} from "../types.ts";
import { readResponsesJson, responsesUsageTap } from "./responses.ts";
import { countChatTokens } from "./tokens.ts";
import { classifyOpenAI } from "./classify.ts";
import { chatStreamFailure, fromOpenAIError, responsesStreamFailure } from "./errors.ts";
import { AZURE_NATIVE, OPENAI_NATIVE } from "./native.ts";
import { azureEndpoint, plainEndpoint, setCredential, toOpenAIRequest } from "./request.ts";
import { pathSegment } from "../shared/path_segment.ts";
import { type OpenAIChatRequest, translated } from "../../schema/openai.ts";
import { notEventStream, notJsonBody } from "../shared/errors.ts";

/**
 * Adapter for OpenAI, every OpenAI-compatible API (Groq, Mistral, vLLM, ...) and, with its
 * own endpoint layout, Azure OpenAI.
 */

/**
 * A streamed reply (SSE) as a stream outcome, its usage tapped inside the consumer's reads;
 * null when the upstream answered with something else (an error, a JSON body).
 */
function streamed(
  reply: UpstreamReply,
  format: "openai_sse" | "responses_sse",
  tap: (meter: UsageMeter) =>
    & SyncTransformer<Uint8Array, Uint8Array>
    & { failedEvent?(error: GatewayError): Uint8Array },
  failure: (data: string) => GatewayError | null,
  scrub: SecretScrub | null | undefined,
): ChatOutcome | null {
  const res = reply.response;
  if (!(res.headers.get("content-type") ?? "").includes("text/event-stream") || !res.body) {
    return null;
  }
  reply.settle();
  const meter = createUsageMeter();
  const t = tap(meter);
  return {
    kind: "stream",
    status: res.status,
    format,
    // The key this gateway sent, echoed in an event, is taken out before anyone reads it.
    body: pullThrough(res.body, scrubbed(scrub, t)),
    usage: meter.usage,
    failure,
    ...(t.failedEvent ? { failedEvent: t.failedEvent } : {}),
  };
}

export function createOpenAIAdapter(cfg: ProviderConfig, deps: AdapterDeps): ProviderAdapter {
  // Built once per config: the hot path only copies it.
  const baseHeaders = Object.freeze({
    ...lowerCaseKeys(cfg.headers),
    "content-type": "application/json",
  });
  const endpoint = cfg.type === "azure" ? azureEndpoint(cfg) : plainEndpoint(cfg);
  const chatFailure = (data: string) => chatStreamFailure(data, cfg.name, deps.redact);
  /** OpenAI's own API (the preset, or its host under another name). */
  const official = cfg.type === "openai" &&
    (cfg.name === "openai" || URL.parse(cfg.base_url)?.hostname === "api.openai.com");
  // OpenAI and Azure document stream_options; other compatible APIs may refuse it.
  const streamUsage = cfg.stream_usage ?? (official || cfg.type === "azure");
  const execute = (
    req: ReturnType<typeof toOpenAIRequest>,
    call: {
      signal: AbortSignal;
      timeoutMs: number;
      onReply?: CallBasics["onReply"];
      trace?: CallBasics["trace"];
    },
  ) =>
    executeUpstream(deps.fetch, req, {
      signal: call.signal,
      scrub: deps.scrub,
      timeoutMs: call.timeoutMs,
      onReply: call.onReply,
      trace: call.trace,
      provider: cfg.name,
      toError: (status, text, headers) =>
        fromOpenAIError(status, text, headers, cfg.name, deps.redact),
    });
  /** Bytes in, bytes out: a JSON body is relayed as received, never decoded and re-encoded. */
  const notJson = (status: number) => notJsonBody(cfg.name, status);
  /** A streaming request answered with something else: a failure, as on every provider. */
  const notStreamed = async (reply: UpstreamReply): Promise<never> => {
    await reply.response.body?.cancel().catch(() => {});
    reply.settle();
    throw notEventStream(cfg.name, reply.response.status);
  };
  const relayJson = async (reply: UpstreamReply): Promise<JsonOutcome> => {
    const body = await reply.bytes();
    if (!looksLikeJsonObject(body)) throw notJson(reply.response.status);
    return {
      kind: "json",
      status: reply.response.status,
      format: "openai_json",
      body,
      usage: knownUsage(findOpenAIUsage(body)),
    };
  };
  /** `GET {base_url}/models` with the first key: `{data: [{id}]}` on every compatible API. */
  const discover = async (signal: AbortSignal): Promise<string[]> => {
    const [name, value] = endpoint.auth((cfg.keys[0] as { key: string }).key);
    const reply = await executeUpstream(deps.fetch, {
      url: `${cfg.base_url}/models`,
      method: "GET",
      headers: { ...baseHeaders, accept: "application/json", [name]: value },
      body: null,
    }, {
      signal,
      timeoutMs: Math.min(cfg.timeout, 5_000),
      provider: cfg.name,
      toError: (status, text, headers) =>
        fromOpenAIError(status, text, headers, cfg.name, deps.redact),
    });
    const listed = JSON.parse(await reply.text()) as { data?: { id?: unknown }[] };
    return (listed.data ?? []).flatMap((m) => (typeof m.id === "string" ? [m.id] : []));
  };
  return {
    name: cfg.name,
    type: cfg.type,
    // OpenAI's `req_...`, which its SDKs report.
    requestIdHeader: "x-request-id",
    models: () => cfg.models,
    classify: classifyOpenAI,
    native: cfg.type === "azure" ? AZURE_NATIVE : OPENAI_NATIVE,
    async chat(call: ChatCall, model: string): Promise<ChatOutcome> {
      const accept = call.stream ? "text/event-stream" : "application/json";
      // A stream is billed from the upstream's own count: ask for it when the client did not.
      const askUsage = call.stream && streamUsage &&
        call.body.stream_options?.include_usage !== true;
      const sent = askUsage
        ? {
          ...call,
          body: {
            ...call.body,
            stream_options: { ...call.body.stream_options, include_usage: true },
          },
        }
        : call;
      const req = toOpenAIRequest(
        official && translated(call.body) ? { ...sent, body: forOpenAI(sent.body) } : sent,
        "chat/completions",
        model,
        endpoint,
        baseHeaders,
        accept,
      );
      const reply = await execute(req, call);
      const tap = askUsage ? openAIUsageStrip : openAIUsageTap;
      if (!call.stream) return relayJson(reply);
      return streamed(reply, "openai_sse", (m) => tap(m, cfg.name), chatFailure, deps.scrub) ??
        notStreamed(reply);
    },
    ...(cfg.type === "openai" && cfg.keys.length > 0 && cfg.models.length === 0
      ? { discoverModels: (signal: AbortSignal) => discover(signal) }
      : {}),
    async embeddings(call: EmbeddingsCall, model: string): Promise<JsonOutcome> {
      const req = toOpenAIRequest(call, "embeddings", model, endpoint, baseHeaders);
      return relayJson(await execute(req, call));
    },
    /**
     * A Responses request to a provider that speaks the Responses API: its own count
     * (`POST /responses/input_tokens`). Chat requests have no counting endpoint on
     * OpenAI-compatible APIs: a local estimate.
     */
    async countTokens(call: CountTokensCall, model: string): Promise<TokenCount> {
      if (call.responses === null || !speaksResponses(cfg)) {
        return { input_tokens: await countChatTokens(call.chat, model), estimate: true };
      }
      // Fields named, not spread: `call.chat` is translated on read, and is not needed here.
      const counted = {
        apiKey: call.apiKey,
        clientAuthorization: call.clientAuthorization,
        body: call.responses as { model: string },
      };
      const req = toOpenAIRequest(
        counted,
        "responses/input_tokens",
        model,
        endpoint,
        baseHeaders,
      );
      const reply = await execute(req, call);
      let tokens: unknown;
      try {
        tokens = (JSON.parse(await reply.text()) as { input_tokens?: unknown }).input_tokens;
      } catch {
        tokens = undefined;
      }
      if (typeof tokens !== "number") {
        throw new GatewayError(
          "upstream_error",
          `Provider "${cfg.name}" answered a token count without "input_tokens"`,
          { provider: cfg.name, upstreamStatus: reply.response.status },
        );
      }
      return { input_tokens: tokens, estimate: false };
    },
    ...(speaksResponses(cfg) ? { responses, storedResponse } : {}),
  };

  /**
   * `GET`/`DELETE {base_url}/responses/{id}`, `GET .../input_items`, `POST .../cancel`: the
   * provider's own stored response, as bytes.
   */
  async function storedResponse(call: StoredResponseCall): Promise<StoredResponseReply> {
    // No body: no content-type.
    const { "content-type": _json, ...headers } = { ...baseHeaders, accept: "application/json" };
    setCredential(headers, call, endpoint);
    const url = endpoint.url("responses", "") + "/" +
      pathSegment(call.id, "response id", cfg.name) + call.action + call.query;
    const reply = await execute({ url, method: call.method, headers, body: null }, call);
    return { status: reply.response.status, body: await reply.bytes() };
  }

  /** `POST {base_url}/responses`, bytes relayed both ways (model patched), usage tapped. */
  async function responses(call: ResponsesCall, model: string): Promise<ChatOutcome> {
    const accept = call.stream ? "text/event-stream" : "application/json";
    const req = toOpenAIRequest(
      { ...call, body: call.body as { model: string } },
      "responses",
      model,
      endpoint,
      baseHeaders,
      accept,
    );
    const reply = await execute(req, call);
    if (call.stream) {
      return streamed(
        reply,
        "responses_sse",
        (meter) => responsesUsageTap(meter, cfg.name, call.onId),
        (data) => responsesStreamFailure(data, cfg.name, deps.redact),
        deps.scrub,
      ) ?? notStreamed(reply);
    }
    const res = reply.response;
    const body = await reply.bytes();
    if (!looksLikeJsonObject(body)) throw notJson(res.status);
    const read = readResponsesJson(body);
    if (res.ok && call.onId !== undefined) {
      for (const id of read.id === null ? read.itemIds : [read.id, ...read.itemIds]) call.onId(id);
    }
    return {
      kind: "json",
      status: res.status,
      format: "responses_json",
      body,
      usage: knownUsage(read.usage),
    };
  }
}

/**
 * A request Pilotfish translated (from `/v1/messages` or `/v1/responses`) as OpenAI's own API
 * takes it: the output budget as `max_completion_tokens` (`max_tokens` is deprecated there, and
 * reasoning models refuse it; both APIs' budgets include reasoning, as it does) and no `top_k`
 * (an Anthropic sampling knob OpenAI refuses by name). Other compatible servers get the
 * translation as it is: many know only `max_tokens`, and some honour `top_k`.
 */
function forOpenAI(body: OpenAIChatRequest): OpenAIChatRequest {
  const { max_tokens, top_k: _topK, ...rest } = body as OpenAIChatRequest & { top_k?: unknown };
  return max_tokens === undefined || rest.max_completion_tokens !== undefined
    ? rest
    : { ...rest, max_completion_tokens: max_tokens };
}

/**
 * The Responses API natively: set with `responses: native`, and the default of the `openai`
 * preset (OpenAI's own API serves it); other compatible servers get chat completions.
 */
function speaksResponses(cfg: ProviderConfig): boolean {
  if (cfg.type !== "openai") return false;
  return cfg.responses === "native" ||
    (cfg.responses === undefined && cfg.name === "openai");
}

/**
 * First non-blank byte is `{` and last is `}`: a cheap sanity check that spares a full parse
 * and catches a body cut short.
 */
function looksLikeJsonObject(body: Uint8Array): boolean {
  let first = 0;
  while (first < body.length && isBlank(body[first]!)) first++;
  if (body[first] !== 0x7b) return false;
  let last = body.length - 1;
  while (last > first && isBlank(body[last]!)) last--;
  return last > first && body[last] === 0x7d;
}

function isBlank(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}
