/**
 * Configuration: YAML loading with env substitution, validation with key paths, the
 * embedded default, and hot reload.
 * @module
 */
export {
  ConfigError,
  embeddedDefault,
  isEmbeddedDefault,
  loadConfig,
  type LoadedConfig,
  type LoadOptions,
  parseConfigText,
  splitTarget,
} from "./load.ts";
export { interpolate, referencedEnvVars } from "./interpolate.ts";
export { parseDuration } from "./duration.ts";
export {
  DEFAULT_ENV_KEYS,
  EMBEDDED_DEFAULT_PROVIDER,
  ENV_ENABLED_PROVIDERS,
  FREE_TYPES,
  needsApiKey,
  PROVIDER_PRESETS,
  type ProviderType,
} from "./presets.ts";
export type {
  AppKeysConfig,
  CircuitBreakerConfig,
  Config,
  CorsConfig,
  FailoverConfig,
  LoggingConfig,
  LogLevel,
  ModelPrice,
  ModelRouteConfig,
  ProviderConfig,
  ProviderKeyConfig,
  RoutingConfig,
  ServerConfig,
  StaticAppKeyConfig,
} from "./schema.ts";
export { fileFingerprint, watchConfigFile } from "./watch.ts";
