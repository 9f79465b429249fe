import type { ProviderConfig } from "../../config/mod.ts";
import { GatewayError } from "../../errors.ts";
import { createOpenAIUsageTap, findOpenAIUsage } from "../../streaming/mod.ts";
import { executeUpstream, lowerCaseKeys } from "../execute.ts";
import type { AdapterDeps, ChatCall, ChatOutcome, ProviderAdapter } from "../types.ts";
import { fromOpenAIError } from "./errors.ts";
import { toOpenAIRequest } from "./request.ts";

/** Adapter for OpenAI and every OpenAI-compatible API (Groq, Mistral, vLLM, ...). */
export function createOpenAIAdapter(cfg: ProviderConfig, deps: AdapterDeps): ProviderAdapter {
  // Built once per config: the hot path only copies it.
  const baseHeaders = Object.freeze({
    ...lowerCaseKeys(cfg.headers),
    "content-type": "application/json",
  });
  return {
    name: cfg.name,
    type: cfg.type,
    models: () => cfg.models,
    async chat(call: ChatCall, model: string): Promise<ChatOutcome> {
      const req = toOpenAIRequest(call, model, cfg, baseHeaders);
      const reply = await executeUpstream(deps.fetch, req, {
        signal: call.signal,
        timeoutMs: call.timeoutMs,
        provider: cfg.name,
        toError: (status, text, headers) =>
          fromOpenAIError(status, text, headers, cfg.name, deps.redact),
      });
      const res = reply.response;
      const contentType = res.headers.get("content-type") ?? "";
      if (call.stream && contentType.includes("text/event-stream") && res.body) {
        reply.settle();
        return {
          kind: "stream",
          status: res.status,
          body: res.body.pipeThrough(createOpenAIUsageTap(call.onUsage)),
        };
      }
      // Bytes in, bytes out: the body is relayed as received, never decoded and re-encoded.
      const body = await reply.bytes();
      if (!looksLikeJsonObject(body)) {
        throw new GatewayError(
          "upstream_error",
          `Provider "${cfg.name}" returned a body that is not JSON`,
          { provider: cfg.name, upstreamStatus: res.status },
        );
      }
      const usage = findOpenAIUsage(body);
      if (usage) call.onUsage(usage);
      return { kind: "json", status: res.status, body };
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
