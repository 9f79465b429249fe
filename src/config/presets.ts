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
  /** A local server that takes no API key: usable without keys (for `/health`). */
  readonly keyless?: boolean;
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
  // Gemini: base_url is the API root (Butter's convention); the adapter adds `/v1beta`
  // unless base_url already ends in a version segment.
  gemini: {
    type: "gemini",
    base_url: "https://generativelanguage.googleapis.com",
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
  ollama: { type: "openai", base_url: "http://127.0.0.1:11434/v1", keyless: true },
  vllm: { type: "openai", base_url: "http://127.0.0.1:8000/v1", keyless: true },
  bedrock: { type: "bedrock", base_url: "" },
  mock: { type: "mock", base_url: "" },
};

/** Env vars the embedded default consults (also granted by the permission planner). */
export const DEFAULT_ENV_KEYS: readonly string[] = Object.values(PROVIDER_PRESETS)
  .flatMap((p) => (p.env_key ? [p.env_key] : []));

/**
 * Whether a provider of this type calls its upstream with an API key (its configured ones,
 * or the client's with `credential_mode: passthrough`). The mock calls nothing; Bedrock
 * signs with SigV4 instead: the client's own signature on `/bedrock/*`, the daemon's AWS
 * credentials with `sign: true` (its adapter reports those).
 */
const TYPE_USES_KEYS: Readonly<Record<ProviderType, boolean>> = {
  openai: true,
  azure: true,
  anthropic: true,
  gemini: true,
  bedrock: false,
  mock: false,
};

/** Types whose answers are made in the process: no vendor bills them, so they cost 0. */
export const FREE_TYPES: ReadonlySet<ProviderType> = new Set(["mock"]);

/** True when a provider named `name` of type `type` cannot call its upstream without a key. */
export function needsApiKey(name: string, type: ProviderType): boolean {
  const preset = PROVIDER_PRESETS[name];
  if (preset?.keyless === true && preset.type === type) return false;
  return TYPE_USES_KEYS[type];
}

/** The embedded default routes bare model names here when this provider's env var is set. */
export const EMBEDDED_DEFAULT_PROVIDER = "openai";

/** Provider names the embedded default enables from env vars, with the var that does it. */
export const ENV_ENABLED_PROVIDERS: readonly { provider: string; env: string }[] = Object
  .entries(PROVIDER_PRESETS)
  .flatMap(([provider, p]) => (p.env_key ? [{ provider, env: p.env_key }] : []));
