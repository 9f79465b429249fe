import type { ProviderConfig } from "../../config/mod.ts";
import { GatewayError } from "../../errors.ts";
import { createOpenAIUsageTap, readOpenAIUsage } from "../../streaming/mod.ts";
import { executeUpstream } from "../execute.ts";
import type { AdapterDeps, ChatCall, ChatOutcome, ProviderAdapter } from "../types.ts";
import { fromOpenAIError } from "./errors.ts";
import { toOpenAIRequest } from "./request.ts";

/** Adapter for OpenAI and every OpenAI-compatible API (Groq, Mistral, vLLM, ...). */
export function createOpenAIAdapter(cfg: ProviderConfig, deps: AdapterDeps): ProviderAdapter {
  // Built once per config: the hot path only copies it.
  const baseHeaders = new Headers({ "content-type": "application/json", ...cfg.headers });
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
      });
      const res = reply.response;
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel();
        reply.settle();
        // Redirects are not followed: they could lead to a host that is not configured.
        throw new GatewayError(
          "upstream_error",
          `Provider "${cfg.name}" answered with a redirect (HTTP ${res.status}), which is not followed`,
          { provider: cfg.name, upstreamStatus: res.status },
        );
      }
      if (res.status < 200 || res.status >= 300) {
        const text = await reply.text();
        throw fromOpenAIError(res.status, text, res.headers, cfg.name, deps.redact);
      }
      const contentType = res.headers.get("content-type") ?? "";
      if (call.stream && contentType.includes("text/event-stream") && res.body) {
        reply.settle();
        return {
          kind: "stream",
          status: res.status,
          body: res.body.pipeThrough(createOpenAIUsageTap(call.onUsage)),
        };
      }
      const text = await reply.text();
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new GatewayError(
          "upstream_error",
          `Provider "${cfg.name}" returned a body that is not JSON`,
          { provider: cfg.name, upstreamStatus: res.status },
        );
      }
      const usage = readOpenAIUsage(parsed);
      if (usage) call.onUsage(usage);
      return { kind: "json", status: res.status, body: text };
    },
  };
}
