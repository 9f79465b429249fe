import type { ProviderConfig } from "../../config/mod.ts";
import { GatewayError } from "../../errors.ts";
import {
  createOpenAIUsageStrip,
  createOpenAIUsageTap,
  createUsageMeter,
  findOpenAIUsage,
  knownUsage,
} from "../../streaming/mod.ts";
import { executeUpstream, lowerCaseKeys, type UpstreamReply } from "../execute.ts";
import type {
  AdapterDeps,
  ChatCall,
  ChatOutcome,
  EmbeddingsCall,
  JsonOutcome,
  ProviderAdapter,
} from "../types.ts";
import { classifyOpenAI } from "./classify.ts";
import { fromOpenAIError } from "./errors.ts";
import { AZURE_NATIVE, OPENAI_NATIVE } from "./native.ts";
import { azureEndpoint, plainEndpoint, toOpenAIRequest } from "./request.ts";

/**
 * Adapter for OpenAI, every OpenAI-compatible API (Groq, Mistral, vLLM, ...) and, with its
 * own endpoint layout, Azure OpenAI.
 */
export function createOpenAIAdapter(cfg: ProviderConfig, deps: AdapterDeps): ProviderAdapter {
  // Built once per config: the hot path only copies it.
  const baseHeaders = Object.freeze({
    ...lowerCaseKeys(cfg.headers),
    "content-type": "application/json",
  });
  const endpoint = cfg.type === "azure" ? azureEndpoint(cfg) : plainEndpoint(cfg);
  // OpenAI and Azure document stream_options; other compatible APIs may refuse it.
  const streamUsage = cfg.stream_usage ?? (cfg.name === "openai" || cfg.type === "azure");
  const execute = (
    req: ReturnType<typeof toOpenAIRequest>,
    call: { signal: AbortSignal; timeoutMs: number },
  ) =>
    executeUpstream(deps.fetch, req, {
      signal: call.signal,
      timeoutMs: call.timeoutMs,
      provider: cfg.name,
      toError: (status, text, headers) =>
        fromOpenAIError(status, text, headers, cfg.name, deps.redact),
    });
  /** Bytes in, bytes out: a JSON body is relayed as received, never decoded and re-encoded. */
  const relayJson = async (reply: UpstreamReply): Promise<JsonOutcome> => {
    const body = await reply.bytes();
    if (!looksLikeJsonObject(body)) {
      throw new GatewayError(
        "upstream_error",
        `Provider "${cfg.name}" returned a body that is not JSON`,
        { provider: cfg.name, upstreamStatus: reply.response.status },
      );
    }
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
      const req = toOpenAIRequest(sent, "chat/completions", model, endpoint, baseHeaders, accept);
      const reply = await execute(req, call);
      const res = reply.response;
      const contentType = res.headers.get("content-type") ?? "";
      if (call.stream && contentType.includes("text/event-stream") && res.body) {
        reply.settle();
        const meter = createUsageMeter();
        return {
          kind: "stream",
          status: res.status,
          format: "openai_sse",
          body: res.body.pipeThrough(
            askUsage ? createOpenAIUsageStrip(meter) : createOpenAIUsageTap(meter),
          ),
          usage: meter.usage,
        };
      }
      return relayJson(reply);
    },
    ...(cfg.type === "openai" && cfg.keys.length > 0 && cfg.models.length === 0
      ? { discoverModels: (signal: AbortSignal) => discover(signal) }
      : {}),
    async embeddings(call: EmbeddingsCall, model: string): Promise<JsonOutcome> {
      const req = toOpenAIRequest(call, "embeddings", model, endpoint, baseHeaders);
      return relayJson(await execute(req, call));
    },
  };
}

/** First non-blank byte is `{`: cheap sanity check that spares a full parse. */
function looksLikeJsonObject(body: Uint8Array): boolean {
  for (const b of body) {
    if (b === 0x7b) return true;
    if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) return false;
  }
  return false;
}
