import type { Config, ProviderConfig } from "../config/mod.ts";
import { GatewayError } from "../errors.ts";
import { createAnthropicAdapter } from "./anthropic/adapter.ts";
import { bedrockHealthFields, createBedrockAdapter } from "./bedrock/adapter.ts";
import { createGeminiAdapter } from "./gemini/adapter.ts";
import { createMockAdapter } from "./mock/adapter.ts";
import { createOpenAIAdapter } from "./openai/adapter.ts";
import { BEDROCK_NATIVE } from "./bedrock/native.ts";
import { classifyBedrock } from "./bedrock/classify.ts";
import { bedrockModelId } from "./bedrock/model_id.ts";
import type { AdapterDeps, ProviderAdapter } from "./types.ts";
import { createSecretScrub, type SecretScrub } from "../streaming/scrub.ts";

/**
 * Build an adapter per configured provider, once per config generation. A provider that
 * cannot serve the unified API as configured (Bedrock without `sign: true`) answers 501
 * saying why; its native passthrough route is separate.
 */
export function createAdapters(
  config: Config,
  shared: AdapterDeps,
  scrubs: ReadonlyMap<string, SecretScrub | null> = scrubsOf(config),
): Map<string, ProviderAdapter> {
  const out = new Map<string, ProviderAdapter>();
  for (const cfg of Object.values(config.providers)) {
    const deps: AdapterDeps = { ...shared, scrub: scrubs.get(cfg.name) ?? null };
    switch (cfg.type) {
      case "openai":
      case "azure":
        out.set(cfg.name, createOpenAIAdapter(cfg, deps));
        break;
      case "anthropic":
        out.set(cfg.name, createAnthropicAdapter(cfg, deps));
        break;
      case "gemini":
        out.set(cfg.name, createGeminiAdapter(cfg, deps));
        break;
      case "mock":
        out.set(cfg.name, createMockAdapter(cfg));
        break;
      case "bedrock":
        // Only in signing mode does Pilotfish hold AWS credentials to call Converse with;
        // otherwise Bedrock is the client-signed `/bedrock/*` passthrough alone.
        out.set(
          cfg.name,
          cfg.sign === true ? createBedrockAdapter(cfg, deps) : notOnUnifiedApi(
            cfg,
            `Provider "${cfg.name}" (type "bedrock") is not available on the unified API ` +
              `unless Pilotfish signs for it: set "sign: true" on providers.${cfg.name} ` +
              `(with AWS credentials in the daemon's environment or credentials file), or ` +
              `call Bedrock through /bedrock/* with your own SigV4 signature`,
          ),
        );
        break;
    }
  }
  return out;
}

/** Header names whose values are credentials (the rest, e.g. `x-title`, are ordinary text). */
const CREDENTIAL_HEADER = /authorization|api[-_]?key|token|secret|password|cookie|signature/i;

/**
 * Each provider's scrub: an upstream can echo only what it was sent, so its own credentials
 * are what its relayed answers are searched for.
 */
export function scrubsOf(config: Config): Map<string, SecretScrub | null> {
  const out = new Map<string, SecretScrub | null>();
  for (const cfg of Object.values(config.providers)) {
    out.set(cfg.name, createSecretScrub(upstreamSecrets(cfg)));
  }
  return out;
}

/** What Pilotfish sends `cfg`'s upstream of its own: its keys and credential headers. */
function upstreamSecrets(cfg: ProviderConfig): string[] {
  const out = cfg.keys.map((k) => k.key);
  for (const [name, value] of Object.entries(cfg.headers)) {
    if (CREDENTIAL_HEADER.test(name)) out.push(value.replace(/^(?:Bearer|Basic)\s+/i, ""));
  }
  return out;
}

/**
 * A Bedrock provider without signing: every chat call is a 400 saying why (a 4xx: the SDKs
 * would retry a 5xx), while its native
 * knowledge (classification, credentials, usage shapes) serves the `/bedrock/*` passthrough.
 */
function notOnUnifiedApi(cfg: ProviderConfig, message: string): ProviderAdapter {
  return {
    name: cfg.name,
    type: cfg.type,
    models: () => cfg.models,
    classify: classifyBedrock,
    native: BEDROCK_NATIVE,
    healthFields: bedrockHealthFields(cfg),
    pricedAs: bedrockModelId,
    chat: () =>
      Promise.reject(new GatewayError("invalid_request", message, { provider: cfg.name })),
  };
}
