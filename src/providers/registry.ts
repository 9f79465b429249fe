import type { Config } from "../config/mod.ts";
import { GatewayError } from "../errors.ts";
import { createAnthropicAdapter } from "./anthropic/adapter.ts";
import { createGeminiAdapter } from "./gemini/adapter.ts";
import { createMockAdapter } from "./mock/adapter.ts";
import { createOpenAIAdapter } from "./openai/adapter.ts";
import type { AdapterDeps, ProviderAdapter } from "./types.ts";

/**
 * Build an adapter per configured provider, once per config generation. Provider types
 * whose unified-API adapter has not landed yet answer 501 rather than guessing a format;
 * their native passthrough routes are separate.
 */
export function createAdapters(config: Config, deps: AdapterDeps): Map<string, ProviderAdapter> {
  const out = new Map<string, ProviderAdapter>();
  for (const cfg of Object.values(config.providers)) {
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
      default:
        out.set(cfg.name, {
          name: cfg.name,
          type: cfg.type,
          models: () => cfg.models,
          chat: () =>
            Promise.reject(
              new GatewayError(
                "not_implemented",
                `Provider "${cfg.name}" (type "${cfg.type}") is not yet available on the unified API`,
                { provider: cfg.name },
              ),
            ),
        });
    }
  }
  return out;
}
