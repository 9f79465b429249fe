import type { ProviderConfig } from "../../config/mod.ts";
import { GatewayError } from "../../errors.ts";
import { executeUpstream, lowerCaseKeys, type UpstreamRequest } from "../execute.ts";
import type { AdapterDeps, ChatCall, ChatOutcome, ProviderAdapter } from "../types.ts";
import { fromAnthropicError } from "./errors.ts";
import { toAnthropicRequest } from "./request.ts";
import { fromAnthropicResponse } from "./response.ts";
import { toOpenAIStream } from "./stream.ts";

/** The Messages API version this translation is written against; `cfg.headers` may override. */
export const ANTHROPIC_VERSION = "2023-06-01";

/**
 * Adapter for the Anthropic Messages API behind the unified OpenAI-compatible API: the
 * OpenAI request is translated to `POST {base_url}/messages`, and the answer (JSON or SSE)
 * back to OpenAI wire format.
 */
export function createAnthropicAdapter(cfg: ProviderConfig, deps: AdapterDeps): ProviderAdapter {
  // Built once per config: the hot path only copies it.
  const baseHeaders = Object.freeze({
    "anthropic-version": ANTHROPIC_VERSION,
    ...lowerCaseKeys(cfg.headers),
    "content-type": "application/json",
  });
  const url = `${cfg.base_url}/messages`;
  return {
    name: cfg.name,
    type: cfg.type,
    models: () => cfg.models,
    async chat(call: ChatCall, model: string): Promise<ChatOutcome> {
      // Translation errors are the caller's 400s and must surface before any upstream call.
      const body = (call.body.stream === true) === call.stream
        ? call.body
        : { ...call.body, stream: call.stream };
      const payload = toAnthropicRequest(body, model, cfg.name);
      const headers: Record<string, string> = {
        ...baseHeaders,
        accept: call.stream ? "text/event-stream" : "application/json",
      };
      const key = call.apiKey ?? keyFromAuthorization(call.clientAuthorization);
      if (key !== null) headers["x-api-key"] = key;
      const req: UpstreamRequest = { url, method: "POST", headers, body: JSON.stringify(payload) };

      const reply = await executeUpstream(deps.fetch, req, {
        signal: call.signal,
        timeoutMs: call.timeoutMs,
        provider: cfg.name,
        toError: (status, text, headers) =>
          fromAnthropicError(status, text, headers, cfg.name, deps.redact),
      });
      const res = reply.response;
      const contentType = res.headers.get("content-type") ?? "";
      if (call.stream) {
        if (!contentType.includes("text/event-stream") || !res.body) {
          await res.body?.cancel();
          reply.settle();
          throw new GatewayError(
            "upstream_error",
            `Provider "${cfg.name}" answered a streaming request without an event stream`,
            { provider: cfg.name, upstreamStatus: res.status },
          );
        }
        reply.settle();
        return {
          kind: "stream",
          status: res.status,
          body: toOpenAIStream(res.body, {
            model,
            includeUsage: call.body.stream_options?.include_usage === true,
            onUsage: call.onUsage,
            provider: cfg.name,
            redact: deps.redact,
          }),
        };
      }
      const text = await reply.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new GatewayError(
          "upstream_error",
          `Provider "${cfg.name}" returned a body that is not JSON`,
          { provider: cfg.name, upstreamStatus: res.status },
        );
      }
      const completion = fromAnthropicResponse(json, model, undefined, cfg.name);
      call.onUsage(completion.usage);
      return { kind: "json", status: res.status, body: JSON.stringify(completion) };
    },
  };
}

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
