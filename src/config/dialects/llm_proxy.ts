/**
 * llm-proxy's config files, read with their meaning. llm-proxy has no provider connection
 * settings: OpenAI, Anthropic and Gemini are always served at their public hosts with the
 * client's own credential, and Bedrock only with `providers.bedrock.enabled: true`. Its
 * `providers.<p>` entries carry only models, pricing and limits. So a file of its (its dev
 * config is `enabled: true` and a `features` block) names no provider at all, and read as
 * Pilotfish's own would leave every `/openai/*` call a 404.
 *
 * A file in llm-proxy form gets those three presets, on the client's credential. The form is
 * recognised narrowly, since it widens the hosts the daemon may reach: anything a Pilotfish
 * or Butter provider entry may say (another provider name, a list of models, any key beside
 * llm-proxy's own) makes the file Pilotfish's, and only what it names is served.
 * @module
 */

type Tree = Record<string, unknown>;

/** The providers llm-proxy always serves, on the client's credential. */
export const LLM_PROXY_PROVIDERS = ["openai", "anthropic", "gemini"] as const;

/** Provider names llm-proxy has (Bedrock opt-in). */
const NAMES: ReadonlySet<string> = new Set([...LLM_PROXY_PROVIDERS, "bedrock"]);

/** The keys of an llm-proxy provider entry (its `configs/base.yml`); none says how to connect. */
const ENTRY_KEYS: ReadonlySet<string> = new Set([
  "enabled",
  "models",
  "default_limits",
  "response_header_timeout_seconds",
]);

function isRecord(v: unknown): v is Tree {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** An entry llm-proxy could have written: its keys only, models as its map (ours: a list). */
function llmProxyEntry(name: string, entry: unknown): boolean {
  if (!NAMES.has(name) || !isRecord(entry)) return false;
  if (!Object.keys(entry).every((k) => ENTRY_KEYS.has(k))) return false;
  return entry.models === undefined || isRecord(entry.models);
}

/**
 * llm-proxy form: one of its top-level markers (`features`, `enabled`, `retired_models`) and
 * no provider entry llm-proxy could not have written.
 */
export function isLlmProxyForm(tree: Tree): boolean {
  const marked = isRecord(tree.features) || "enabled" in tree || "retired_models" in tree;
  if (!marked) return false;
  if (tree.providers === undefined) return true;
  if (!isRecord(tree.providers)) return false;
  return Object.entries(tree.providers).every(([name, entry]) => llmProxyEntry(name, entry));
}

/**
 * The tree with llm-proxy's providers made explicit: OpenAI, Anthropic and Gemini on the
 * client's credential (added when absent; an entry of the file keeps its `enabled`), and
 * Bedrock off unless the file says `enabled: true` (opt-in there, on by default here); and a
 * line for `--check` and the start-up log saying so. The input is not changed.
 */
export function withLlmProxyProviders(tree: Tree): { tree: Tree; notice: string } {
  const providers: Tree = { ...(isRecord(tree.providers) ? tree.providers : {}) };
  const added = LLM_PROXY_PROVIDERS.filter((name) => providers[name] === undefined);
  for (const name of LLM_PROXY_PROVIDERS) {
    providers[name] = { ...(providers[name] as Tree | undefined), credential_mode: "passthrough" };
  }
  const bedrock = providers.bedrock;
  const bedrockOff = isRecord(bedrock) && !("enabled" in bedrock);
  if (bedrockOff) providers.bedrock = { ...bedrock, enabled: false };
  const notice = "Read as an llm-proxy file: openai, anthropic and gemini are served at their " +
    "public hosts on the client's own credential" +
    (added.length > 0 ? ` (not in the file: ${added.join(", ")})` : "") +
    (bedrockOff ? "; bedrock is off without enabled: true" : "") +
    "; give a provider base_url or keys to serve only what the file names";
  return { tree: { ...tree, providers }, notice };
}
