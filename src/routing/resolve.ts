import { type Config, type ModelRouteConfig, splitTarget } from "../config/mod.ts";
import { GatewayError } from "../errors.ts";

/** One place a request can be served: a configured provider and its model name. */
export interface Target {
  readonly provider: string;
  readonly model: string;
}

/**
 * Resolve a requested model name to an ordered list of targets, in this order: alias,
 * explicit `provider/model`, `routing.models.<model>.providers`, `routing.default_provider`.
 * `pin` (x-gateway.provider) keeps only that provider. Pure; throws 404 listing what exists.
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

/** As `resolveTargets`, plus the route config the targets came from. */
export function resolveModel(config: Config, requested: string, pin?: string): Resolution {
  const { routing, providers } = config;
  let targets: Target[] = [];
  let route: ModelRouteConfig | undefined;
  const alias = routing.aliases[requested];
  const name = alias ?? requested;
  const slash = name.indexOf("/");
  // "openai/" is no model: only a non-empty name after the slash makes a provider prefix.
  const prefix = slash > 0 && slash < name.length - 1 ? name.slice(0, slash) : "";
  if (prefix !== "" && prefix in providers) {
    targets = [{ provider: prefix, model: name.slice(slash + 1) }];
  } else if (routing.models[name]) {
    route = routing.models[name];
    targets = route.providers.map((entry) => {
      const { provider, model } = splitTarget(entry);
      return { provider, model: model ?? name };
    });
  } else if (pin !== undefined && pin in providers) {
    targets = [{ provider: pin, model: name }];
  } else if (routing.default_provider !== "") {
    targets = [{ provider: routing.default_provider, model: name }];
  }
  if (pin !== undefined) {
    if (!(pin in providers)) {
      throw new GatewayError(
        "not_found",
        `Unknown provider "${pin}" in x-gateway.provider (configured: ${listProviders(config)})`,
        { param: "x-gateway.provider" },
      );
    }
    targets = targets.filter((t) => t.provider === pin);
    if (targets.length === 0) {
      throw new GatewayError(
        "not_found",
        `Model "${requested}" is not routed to provider "${pin}"`,
        { param: "x-gateway.provider" },
      );
    }
  }
  const [first, ...rest] = targets;
  if (first === undefined) {
    throw new GatewayError(
      "not_found",
      `Unknown model "${requested}": use "provider/model" with a configured provider (${
        listProviders(config)
      })${listModels(config)}`,
      { param: "model" },
    );
  }
  return { targets: [first, ...rest], route };
}

function listProviders(config: Config): string {
  return Object.keys(config.providers).join(", ") || "none configured";
}

function listModels(config: Config): string {
  const names = [...Object.keys(config.routing.aliases), ...Object.keys(config.routing.models)];
  return names.length > 0 ? ` or a routed model (${names.join(", ")})` : "";
}
