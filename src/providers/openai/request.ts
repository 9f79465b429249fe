import type { ProviderConfig } from "../../config/mod.ts";
import type { UpstreamRequest } from "../execute.ts";
import { pathSegment } from "../shared/path_segment.ts";

export type OpenAIOperation =
  | "chat/completions"
  | "embeddings"
  | "responses"
  | "responses/input_tokens";

/** What differs between OpenAI-compatible APIs: where an operation lives and how keys go. */
export interface OpenAIEndpoint {
  url(operation: OpenAIOperation, model: string): string;
  /** Header name and value carrying `key`. */
  auth(key: string): [string, string];
  /** Header name and value carrying a client's forwarded `Authorization` value. */
  clientAuth?(authorization: string): [string, string];
}

/** OpenAI and the compatible family: `{base_url}/{operation}`, `Authorization: Bearer`. */
export function plainEndpoint(cfg: ProviderConfig): OpenAIEndpoint {
  return {
    url: (operation) => `${cfg.base_url}/${operation}`,
    auth: (key) => ["authorization", `Bearer ${key}`],
  };
}

/**
 * Azure OpenAI: one deployment per model, `api-version` in the query, `api-key` header.
 * `deployments` maps model names to deployment names (default: the model name itself), which
 * travels as one path segment whatever the client wrote (`../x`, `a?b`, `%2e%2e`).
 */
export function azureEndpoint(cfg: ProviderConfig): OpenAIEndpoint {
  const version = encodeURIComponent(cfg.api_version);
  return {
    url: (operation, model) =>
      `${cfg.base_url}/openai/deployments/${
        pathSegment(deploymentOf(cfg, model), "Azure deployment", cfg.name)
      }/${operation}?api-version=${version}`,
    auth: (key) => ["api-key", key],
    // Azure reads an API key from `api-key`; as Bearer it takes only an Entra ID token (a JWT).
    clientAuth: (authorization) => {
      const value = authorization.replace(/^\s*Bearer\s+/i, "").trim();
      return JWT.test(value) ? ["authorization", authorization] : ["api-key", value];
    },
  };
}

/** Three base64url segments: an Entra ID access token, not an API key. */
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** The deployment serving `model` (`deployments`, own entries only; default: the name). */
export function deploymentOf(cfg: ProviderConfig, model: string): string {
  return Object.hasOwn(cfg.deployments, model) ? cfg.deployments[model] as string : model;
}

/** The model a deployment serves: the one `deployments` maps to it, else the name itself. */
export function modelOfDeployment(cfg: ProviderConfig, deployment: string): string {
  for (const [model, d] of Object.entries(cfg.deployments)) if (d === deployment) return model;
  return deployment;
}

/** Credentials and the JSON body that every OpenAI-compatible call shares. */
export interface OpenAICall {
  readonly body: { model: string; [field: string]: unknown };
  readonly apiKey: string | null;
  readonly clientAuthorization: string | null;
}

/**
 * Build an upstream request for an OpenAI-compatible operation. Same-schema passthrough
 * (Envoy's openai->openai): only `model` is patched; fields we do not know travel unchanged.
 * A client credential is forwarded only when no key is configured (the caller decides).
 */
export function toOpenAIRequest(
  call: OpenAICall,
  operation: OpenAIOperation,
  model: string,
  endpoint: OpenAIEndpoint,
  baseHeaders: Readonly<Record<string, string>>,
  accept = "application/json",
): UpstreamRequest {
  const headers: Record<string, string> = { ...baseHeaders, accept };
  setCredential(headers, call, endpoint);
  const body = call.body.model === model ? call.body : { ...call.body, model };
  return {
    url: endpoint.url(operation, model),
    method: "POST",
    headers,
    body: JSON.stringify(body),
  };
}

/** The call's credential into `headers`: the configured key, else the client's own (or none). */
export function setCredential(
  headers: Record<string, string>,
  call: Pick<OpenAICall, "apiKey" | "clientAuthorization">,
  endpoint: OpenAIEndpoint,
): void {
  if (call.apiKey !== null) {
    const [name, value] = endpoint.auth(call.apiKey);
    headers[name] = value;
  } else if (call.clientAuthorization !== null) {
    const [name, value] = endpoint.clientAuth?.(call.clientAuthorization) ??
      ["authorization", call.clientAuthorization];
    headers[name] = value;
  }
}
