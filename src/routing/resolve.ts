import {
  type Config,
  EMBEDDED_DEFAULT_PROVIDER,
  ENV_ENABLED_PROVIDERS,
  isEmbeddedDefault,
  type ModelRouteConfig,
  splitTarget,
} from "../config/mod.ts";
import { GatewayError } from "../errors.ts";

/** One place a request can be served: a configured provider and its model name. */
export interface Target {
  readonly provider: string;
  readonly model: string;
}

/**
 * Resolve a requested model name to an ordered list of targets, in this order: alias,
 * explicit `provider/model`, `routing.models.<model>.providers`, `routing.default_provider`.
 * `pin` (x-gateway.provider) overrides all of it. Pure; throws 404 listing what exists.
 */
export function resolveTargets(
  config: Config,
  requested: string,
  pin?: string,
): [Target, ...Target[]] {
  return resolveModel(config, requested, pin).targets;
}

export interface Resolution {
  readonly targets: [Target, ...Target[]];
  /** The `routing.models` entry that produced the targets (strategy, weights, hedging). */
  readonly route: ModelRouteConfig | undefined;
}

/**
 * As `resolveTargets`, plus the route config the targets came from. With `pin`, the one
 * target is the pinned provider (llm-gateway: the provider override wins over routing):
 * under the name routing gives the model on that provider when it has one (an alias, a
 * `pin/model` prefix, a `provider/model` route entry), else under the requested name.
 */
export function resolveModel(config: Config, requested: string, pin?: string): Resolution {
  if (requested.length > MAX_MODEL_CHARS) {
    // It would be echoed in x-pilotfish-model: past a client's header limit, no answer at all.
    throw new GatewayError(
      "invalid_request",
      `"model" is ${requested.length} characters long; at most ${MAX_MODEL_CHARS} are accepted`,
      { param: "model" },
    );
  }
  if (pin !== undefined && !Object.hasOwn(config.providers, pin)) {
    throw new GatewayError(
      "not_found",
      `Unknown provider "${pin}" in x-gateway.provider (configured: ${listProviders(config)})`,
      { param: "x-gateway.provider" },
    );
  }
  // Own keys only: a model named "constructor" or "__proto__" must not find Object's.
  const alias = own(config.routing.aliases, requested);
  const name = alias ?? requested;
  const slash = name.indexOf("/");
  if (
    slash > 0 && Object.hasOwn(config.providers, name.slice(0, slash)) &&
    name.slice(slash + 1).trim() === ""
  ) {
    // "openai/" or "openai/ ": a provider named, no model (it would go upstream blank).
    throw new GatewayError(
      "invalid_request",
      `"model" names provider "${name.slice(0, slash)}" but no model after the slash`,
      { param: "model" },
    );
  }
  const { targets, route } = routed(config, name);
  // llm-gateway: a mapped model fails over along `fallbackChain` (routing.fallback) too,
  // after its own provider, under the same model name.
  if (alias !== undefined && route === undefined) chainAfter(config, targets);
  if (pin !== undefined) {
    const own = targets.find((t) => t.provider === pin);
    return { targets: [own ?? { provider: pin, model: requested }], route: undefined };
  }
  const [first, ...rest] = targets;
  if (first === undefined) throw unknownModel(config, requested, name);
  return { targets: [first, ...rest], route };
}

/** `targets` (one, from an alias) followed by the chain's providers after its own. */
function chainAfter(config: Config, targets: Target[]): void {
  const chain = config.routing.fallback;
  const first = targets[0];
  if (first === undefined || targets.length !== 1 || !chain.includes(first.provider)) return;
  for (const provider of chain.slice(chain.indexOf(first.provider) + 1)) {
    if (provider !== first.provider && Object.hasOwn(config.providers, provider)) {
      targets.push({ provider, model: first.model });
    }
  }
}

/** The longest model name served: longer than any provider's ids (a Bedrock ARN is ~100). */
export const MAX_MODEL_CHARS = 512;

/** Routing's candidates for `name` (aliases already expanded); empty when nothing serves it. */
function routed(
  config: Config,
  name: string,
): { targets: Target[]; route: ModelRouteConfig | undefined } {
  const { routing, providers } = config;
  // A `routing.models` entry named exactly so wins, slash and all (Butter routes on its keys).
  const exact = own(routing.models, name);
  const prefix = exact === undefined ? providerPrefix(name) : "";
  const named = prefix !== "" ? own(providers, prefix) : undefined;
  // A provider whose keys are env vars left unset takes no `provider/...` names: Butter's
  // meaning holds, the default provider (OpenRouter in its example) takes them.
  if (
    named !== undefined && (named.keys_unset !== true || named.credential_mode === "passthrough")
  ) {
    return {
      targets: [{ provider: prefix, model: name.slice(prefix.length + 1) }],
      route: undefined,
    };
  }
  // The embedded default: "anthropic/..." with ANTHROPIC_API_KEY unset is the 404 naming it,
  // not a model name for the default provider (the prompt would go to a vendor not named).
  // A config of the user's keeps Butter's meaning: OpenRouter takes "anthropic/..." names.
  if (
    prefix !== "" && isEmbeddedDefault(config) &&
    ENV_ENABLED_PROVIDERS.some(({ provider }) => provider === prefix)
  ) {
    return { targets: [], route: undefined };
  }
  const route = exact;
  if (route) {
    const targets = route.providers.map((entry) => {
      const { provider, model } = splitTarget(entry);
      return { provider, model: model ?? name };
    });
    return { targets, route };
  }
  if (routing.default_provider !== "") {
    const chain = [routing.default_provider, ...routing.fallback];
    const targets = [...new Set(chain)].map((provider) => ({ provider, model: name }));
    return { targets, route: undefined };
  }
  return { targets: [], route: undefined };
}

function own<T>(map: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(map, key) ? map[key] : undefined;
}

/** "openai" of "openai/gpt-4o"; "" when there is no slash or nothing follows it. */
function providerPrefix(name: string): string {
  const slash = name.indexOf("/");
  // "openai/" is no model: only a non-empty name after the slash makes a provider prefix.
  return slash > 0 && slash < name.length - 1 ? name.slice(0, slash) : "";
}

/**
 * The 404 for a model nothing serves: what is configured, a misspelled provider prefix
 * called out, and with the embedded default the env vars that would enable a provider.
 */
function unknownModel(config: Config, requested: string, name: string): GatewayError {
  const prefix = providerPrefix(name);
  const badPrefix = prefix === ""
    ? ""
    : own(config.providers, prefix)?.keys_unset === true
    ? ` (provider "${prefix}" has no key: its keys are env vars that are not set)`
    : ` ("${prefix}" is not a configured provider)`;
  let message: string;
  if (isEmbeddedDefault(config)) {
    const unset = ENV_ENABLED_PROVIDERS.filter(({ provider }) =>
      !Object.hasOwn(config.providers, provider)
    );
    const bare = unset.find(({ provider }) => provider === EMBEDDED_DEFAULT_PROVIDER);
    message = `Unknown model "${requested}"${badPrefix}: no provider serves it. ` +
      `Configured providers: ${listProviders(config)}; ask for "provider/model" ` +
      `(the mock answers "mock/..." models only)` +
      (unset.length > 0
        ? `. Set one of ${unset.map(({ env }) => env).join(", ")} to enable its provider` +
          (bare ? ` (${bare.env} also serves bare model names)` : "") +
          `, or start with a config file`
        : "");
  } else {
    message = `Unknown model "${requested}"${badPrefix}: use "provider/model" with a ` +
      `configured provider (${listProviders(config)})${listModels(config)}`;
  }
  return new GatewayError("not_found", message, { param: "model" });
}

function listProviders(config: Config): string {
  return Object.keys(config.providers).join(", ") || "none configured";
}

function listModels(config: Config): string {
  const names = [...Object.keys(config.routing.aliases), ...Object.keys(config.routing.models)];
  return names.length > 0 ? ` or a routed model (${names.join(", ")})` : "";
}
