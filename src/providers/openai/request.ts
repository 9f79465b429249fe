import type { ProviderConfig } from "../../config/mod.ts";
import type { UpstreamRequest } from "../execute.ts";
import type { ChatCall } from "../types.ts";

/**
 * Build the upstream request for an OpenAI-compatible `/chat/completions`. Same-schema
 * passthrough (Envoy's openai→openai): only `model` is patched; fields we do not know
 * travel unchanged.
 */
export function toOpenAIRequest(
  call: ChatCall,
  model: string,
  cfg: ProviderConfig,
  baseHeaders: Readonly<Record<string, string>>,
): UpstreamRequest {
  const headers: Record<string, string> = {
    ...baseHeaders,
    accept: call.stream ? "text/event-stream" : "application/json",
  };
  if (call.apiKey !== null) headers.authorization = `Bearer ${call.apiKey}`;
  else if (call.clientAuthorization !== null) headers.authorization = call.clientAuthorization;
  const body = call.body.model === model ? call.body : { ...call.body, model };
  return {
    url: `${cfg.base_url}/chat/completions`,
    method: "POST",
    headers,
    body: JSON.stringify(body),
  };
}
