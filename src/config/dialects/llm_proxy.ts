/**
 * llm-proxy's config files, read with their meaning. llm-proxy has no provider connection
 * settings: OpenAI, Anthropic and Gemini are always served at their public hosts with the
 * client's own credential, and Bedrock only with `providers.bedrock.enabled: true`. Its
 * `providers.<p>` entries carry only models, pricing and limits. So a file of its (its dev
 * config is `enabled: true` and a `features` block) names no provider at all, and read as
 * Pilotfish's own would leave every `/openai/*` call a 404.
 *
 * A file in llm-proxy form gets those three presets, on the client's credential; a file
 * that configures any provider connection (`base_url`, `keys`, `type`, `credential_mode`)
 * is Pilotfish's or Butter's, and only what it names is served.
 * @module
 */

type Tree = Record<string, unknown>;

/** The providers llm-proxy always serves, on the client's credential. */
export const LLM_PROXY_PROVIDERS = ["openai", "anthropic", "gemini"] as const;

/** Keys of a provider entry that say how to connect: none of them is llm-proxy's. */
const CONNECTION_KEYS = ["base_url", "keys", "type", "credential_mode"];

function isRecord(v: unknown): v is Tree {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * llm-proxy form: one of its top-level markers (`features`, `enabled`, `retired_models`)
 * and no provider entry with a connection key.
 */
export function isLlmProxyForm(tree: Tree): boolean {
  const marked = isRecord(tree.features) || "enabled" in tree || "retired_models" in tree;
  if (!marked || (tree.providers !== undefined && !isRecord(tree.providers))) return false;
  const entries = Object.values(isRecord(tree.providers) ? tree.providers : {});
  return entries.every((p) => isRecord(p) && !CONNECTION_KEYS.some((k) => k in p));
}

/**
 * The tree with llm-proxy's providers made explicit: OpenAI, Anthropic and Gemini on the
 * client's credential (added when absent; an entry of the file keeps its `enabled`), and
 * Bedrock off unless the file says `enabled: true` (opt-in there, on by default here).
 * The input is not changed.
 */
export function withLlmProxyProviders(tree: Tree): Tree {
  const providers: Tree = { ...(isRecord(tree.providers) ? tree.providers : {}) };
  for (const name of LLM_PROXY_PROVIDERS) {
    providers[name] = { ...(providers[name] as Tree | undefined), credential_mode: "passthrough" };
  }
  const bedrock = providers.bedrock;
  if (isRecord(bedrock) && !("enabled" in bedrock)) {
    providers.bedrock = { ...bedrock, enabled: false };
  }
  return { ...tree, providers };
}
