import { z } from "zod";
import { parseDuration } from "./duration.ts";
import { PROVIDER_PRESETS, PROVIDER_TYPES } from "./presets.ts";

/**
 * The config schema: a superset of Butter's `config.example.yaml` and llm-proxy's
 * `features.*` blocks, with our own keys on top. Objects are strict so that unknown keys
 * surface as issues; `load.ts` turns those into warnings rather than refusing the file.
 * Keys keep their YAML snake_case names so a validation path is the path a user edits.
 */

/** Duration in YAML (`250ms`, `5s`, `1m30s`, or a number of seconds) → milliseconds. */
const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === null) {
    ctx.issues.push({
      code: "custom",
      input: v,
      message: `Invalid duration "${v}" (use e.g. "250ms", "5s", "2m")`,
    });
    return z.NEVER;
  }
  return ms;
});

/**
 * Env substitution happens after YAML parsing, so `port: ${PORT:-9002}` yields a string:
 * accept numeric strings for numbers and "true"/"false" for booleans.
 */
const fromEnvString = (v: unknown) => {
  if (typeof v !== "string") return v;
  const t = v.trim();
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  if (t === "true" || t === "false") return t === "true";
  return v;
};
const n = <T extends z.ZodType>(schema: T) => z.preprocess(fromEnvString, schema);

const port = n(z.number().int().min(0).max(65535));
const nonNegInt = n(z.number().int().min(0));
const httpUrl = z.string().refine((s) => s === "" || /^https?:\/\/[^\s/]+/.test(s), {
  message: "Must be an http:// or https:// URL",
});

const serverSchema = z.strictObject({
  host: z.string().default("127.0.0.1"),
  port: port.default(9002),
  /** Butter's `address: ":8080"`; host/port win when both are given. */
  address: z.string().optional(),
  /** Set false to serve on the Unix socket only. */
  tcp: n(z.boolean()).default(true),
  socket: z.string().default("/tmp/pilotfish.sock"),
  socket_mode: z.string().regex(/^0?[0-7]{3}$/, 'Must be an octal mode string such as "0660"')
    .default("0660"),
  max_body_bytes: n(z.number().int().min(1)).default(10 * 1024 * 1024),
  admin_token: z.string().default(""),
  read_timeout: duration.optional(),
  write_timeout: duration.optional(),
  drain_timeout: duration.default(30_000),
  reload_interval: duration.default(1_000),
});

const keySchema = z.strictObject({
  key: z.string(),
  weight: n(z.number().positive()).default(1),
  models: z.array(z.string()).default([]),
  id: z.string().optional(),
});

const providerSchema = z.strictObject({
  type: z.enum(PROVIDER_TYPES).optional(),
  base_url: httpUrl.optional(),
  keys: z.array(keySchema).default([]),
  models: z.array(z.string()).default([]),
  headers: z.record(z.string(), z.string()).default({}),
  timeout: duration.default(60_000),
  credential_mode: z.enum(["gateway", "passthrough"]).default("gateway"),
  enabled: n(z.boolean()).default(true),
  // bedrock
  region: z.string().optional(),
  endpoint: httpUrl.optional(),
  sign: n(z.boolean()).optional(),
  // mock
  latency: duration.default(0),
  chunk_delay: duration.default(0),
  stream_chunks: nonNegInt.default(0),
});

const strategy = z.enum(["priority", "round-robin", "weighted", "least-latency"]);

const routingSchema = z.strictObject({
  default_provider: z.string().default(""),
  models: z.record(
    z.string(),
    z.strictObject({
      providers: z.array(z.string()).min(1),
      strategy: strategy.default("priority"),
      weights: z.array(n(z.number().positive())).optional(),
      hedge_after: duration.optional(),
    }),
  ).default({}),
  aliases: z.record(z.string(), z.string()).default({}),
  failover: z.strictObject({
    enabled: n(z.boolean()).default(false),
    max_retries: nonNegInt.default(2),
    retry_on: z.array(n(z.number().int().min(100).max(599))).default([
      429,
      500,
      502,
      503,
      504,
      529,
    ]),
    backoff: z.strictObject({
      initial: duration.default(100),
      multiplier: n(z.number().min(1)).default(2),
      max: duration.default(5_000),
    }).prefault({}),
  }).prefault({}),
});

const redisConn = z.strictObject({
  address: z.string().default("localhost:6379"),
  password: z.string().default(""),
  db: nonNegInt.default(0),
});

/** llm-proxy's `features.circuit_breaker`, same keys and defaults as its README. */
const circuitBreakerSchema = z.strictObject({
  enabled: n(z.boolean()).default(false),
  mode: z.enum(["off", "log", "on"]).optional(),
  backend: z.enum(["memory", "redis"]).optional(),
  failure_threshold: n(z.number().int().min(1)).default(5),
  window_seconds: n(z.number().positive()).default(120),
  cooldown_seconds: n(z.number().positive()).default(300),
  max_transient_retries: nonNegInt.default(2),
  max_rate_limit_retries: nonNegInt.default(2),
  retry_contribution_mode: z.enum(["off", "log", "on"]).default("log"),
  global_rate_limit_escalation_window: n(z.number().min(0)).default(60),
  degraded_signal: z.string().default(""),
  test_mode_enabled: n(z.boolean()).default(false),
  bypass_allowed: n(z.boolean()).default(true),
  bypass_reason_allowlist: z.array(z.string()).default([]),
  per_provider_rollup_threshold: nonNegInt.default(0),
  per_provider_rollup_window_seconds: n(z.number().positive()).default(300),
  redis: redisConn.optional(),
});

/** llm-proxy's `features.rate_limiting`. */
const rateLimitingSchema = z.strictObject({
  enabled: n(z.boolean()).default(false),
  backend: z.enum(["memory", "redis"]).default("memory"),
  estimation: z.strictObject({
    max_sample_bytes: nonNegInt.default(20_000),
    bytes_per_token: n(z.number().positive()).default(4),
    chars_per_token: n(z.number().positive()).default(4),
    provider_chars_per_token: z.record(z.string(), n(z.number().positive())).default({}),
  }).prefault({}),
  limits: z.strictObject({
    requests_per_minute: nonNegInt.default(0),
    tokens_per_minute: nonNegInt.default(0),
  }).prefault({}),
  redis: redisConn.optional(),
});

/** Sections later capabilities own: accepted as-is now, validated by their modules. */
const reserved = z.record(z.string(), z.unknown()).default({});

export const configSchema = z.strictObject({
  server: serverSchema.prefault({}),
  logging: z.strictObject({
    level: z.enum(["debug", "info", "warn", "error"]).default("info"),
    format: z.enum(["json"]).default("json"),
  }).prefault({}),
  providers: z.record(
    z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, "Provider names are lowercase [a-z0-9_-]"),
    providerSchema,
  ).default({}),
  routing: routingSchema.prefault({}),
  // Butter's plugin blocks (ratelimit, requestlog, metrics, tracing, wasm, ...).
  plugins: reserved,
  features: z.strictObject({
    circuit_breaker: circuitBreakerSchema.prefault({}),
    rate_limiting: rateLimitingSchema.prefault({}),
  }).prefault({}),
  state: z.strictObject({
    backend: z.enum(["memory", "redis"]).default("memory"),
    redis: z.strictObject({ url: z.string().default("redis://127.0.0.1:6379") }).prefault({}),
  }).prefault({}),
  cache: reserved,
  app_keys: reserved,
  pricing: reserved,
  telemetry: reserved,
});

type RawConfig = z.output<typeof configSchema>;
type RawProvider = z.output<typeof providerSchema>;

export type ProviderKeyConfig = z.output<typeof keySchema> & { readonly id: string };

/** A provider after presets are applied: type and base URL are always known. */
export interface ProviderConfig
  extends Omit<RawProvider, "type" | "base_url" | "keys" | "timeout"> {
  readonly name: string;
  readonly type: (typeof PROVIDER_TYPES)[number];
  readonly base_url: string;
  readonly keys: readonly ProviderKeyConfig[];
  /** Per-attempt upstream timeout in ms (until response headers; whole body when not streaming). */
  readonly timeout: number;
}

export interface ServerConfig extends Omit<RawConfig["server"], "socket_mode"> {
  /** Parsed octal mode. */
  readonly socket_mode: number;
}

/** The validated, normalised configuration. Deeply frozen by `load.ts`. */
export interface Config extends Omit<RawConfig, "providers" | "server"> {
  readonly server: ServerConfig;
  readonly providers: Readonly<Record<string, ProviderConfig>>;
}

export type LogLevel = RawConfig["logging"]["level"];
export type RoutingConfig = RawConfig["routing"];
export type CircuitBreakerConfig = RawConfig["features"]["circuit_breaker"];

/** Fill in a provider's type and base URL from its preset; null type means "unknown". */
export function resolveProvider(name: string, raw: RawProvider): Omit<ProviderConfig, "keys"> & {
  keys: RawProvider["keys"];
  typeKnown: boolean;
} {
  const preset = PROVIDER_PRESETS[name];
  const type = raw.type ?? preset?.type ?? (raw.base_url ? "openai" : undefined);
  return {
    ...raw,
    name,
    type: type ?? "openai",
    typeKnown: type !== undefined,
    base_url: stripSlash(raw.base_url ?? preset?.base_url ?? ""),
  };
}

function stripSlash(url: string): string {
  return url.endsWith("/") ? url.slice(0, -1) : url;
}
