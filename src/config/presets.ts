/** Wire formats a provider can speak; each has (or will have) an adapter in `providers/`. */
export const PROVIDER_TYPES = [
  "openai",
  "azure",
  "anthropic",
  "gemini",
  "bedrock",
  "mock",
] as const;
export type ProviderType = typeof PROVIDER_TYPES[number];

export interface ProviderPreset {
  readonly type: ProviderType;
  readonly base_url: string;
  /** Env var that enables the provider in the embedded default config. */
  readonly env_key?: string;
}

/**
 * Known providers by name. A configured provider with one of these names inherits the
 * preset's type and base URL, so Butter's `openai: {base_url, keys}` entries need no `type`.
 */
export const PROVIDER_PRESETS: Readonly<Record<string, ProviderPreset>> = {
  openai: { type: "openai", base_url: "https://api.openai.com/v1", env_key: "OPENAI_API_KEY" },
  anthropic: {
    type: "anthropic",
    base_url: "https://api.anthropic.com/v1",
    env_key: "ANTHROPIC_API_KEY",
  },
  gemini: {
    type: "gemini",
    base_url: "https://generativelanguage.googleapis.com/v1beta",
    env_key: "GEMINI_API_KEY",
  },
  // Azure OpenAI: base_url is the resource endpoint (https://<resource>.openai.azure.com).
  azure: { type: "azure", base_url: "" },
  "azure-openai": { type: "azure", base_url: "" },
  openrouter: {
    type: "openai",
    base_url: "https://openrouter.ai/api/v1",
    env_key: "OPENROUTER_API_KEY",
  },
  groq: { type: "openai", base_url: "https://api.groq.com/openai/v1", env_key: "GROQ_API_KEY" },
  mistral: { type: "openai", base_url: "https://api.mistral.ai/v1", env_key: "MISTRAL_API_KEY" },
  together: {
    type: "openai",
    base_url: "https://api.together.xyz/v1",
    env_key: "TOGETHER_API_KEY",
  },
  fireworks: {
    type: "openai",
    base_url: "https://api.fireworks.ai/inference/v1",
    env_key: "FIREWORKS_API_KEY",
  },
  perplexity: {
    type: "openai",
    base_url: "https://api.perplexity.ai",
    env_key: "PERPLEXITY_API_KEY",
  },
  deepseek: {
    type: "openai",
    base_url: "https://api.deepseek.com/v1",
    env_key: "DEEPSEEK_API_KEY",
  },
  xai: { type: "openai", base_url: "https://api.x.ai/v1", env_key: "XAI_API_KEY" },
  ollama: { type: "openai", base_url: "http://127.0.0.1:11434/v1" },
  vllm: { type: "openai", base_url: "http://127.0.0.1:8000/v1" },
  bedrock: { type: "bedrock", base_url: "" },
  mock: { type: "mock", base_url: "" },
};

/** Env vars the embedded default consults (also granted by the permission planner). */
export const DEFAULT_ENV_KEYS: readonly string[] = Object.values(PROVIDER_PRESETS)
  .flatMap((p) => (p.env_key ? [p.env_key] : []));
