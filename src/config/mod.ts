/**
 * Configuration: YAML loading with env substitution, validation with key paths, the
 * embedded default, and hot reload.
 * @module
 */
export {
  ConfigError,
  embeddedDefault,
  loadConfig,
  type LoadedConfig,
  parseConfigText,
  splitTarget,
} from "./load.ts";
export { interpolate, referencedEnvVars } from "./interpolate.ts";
export { parseDuration } from "./duration.ts";
export { DEFAULT_ENV_KEYS, PROVIDER_PRESETS, type ProviderType } from "./presets.ts";
export type {
  CircuitBreakerConfig,
  Config,
  FailoverConfig,
  LogLevel,
  ModelRouteConfig,
  ProviderConfig,
  ProviderKeyConfig,
  RoutingConfig,
  ServerConfig,
} from "./schema.ts";
export { fileFingerprint, watchConfigFile } from "./watch.ts";
