import type { Config } from "./config/mod.ts";
import { createAdapters, type ProviderAdapter } from "./providers/mod.ts";
import { trackReachability } from "./providers/execute.ts";
import type { RoutingState } from "./routing/mod.ts";
import { type Breaker, type BreakerStore, createBreaker } from "./breaker/mod.ts";
import { createLogger, createRedactor, type Logger, type Redactor } from "./telemetry/mod.ts";

/**
 * Everything derived from one config generation, built once at load or reload and
 * swapped atomically. A request takes the current Runtime when it starts and keeps it to
 * the end, so in-flight requests finish on the config they started with.
 */
export interface Runtime {
  readonly generation: number;
  readonly config: Config;
  readonly adapters: ReadonlyMap<string, ProviderAdapter>;
  readonly logger: Logger;
  readonly redact: Redactor;
  /** Randomness for key choice and jitter; injectable for tests. */
  readonly random: () => number;
  /**
   * The fetch adapters use; native passthrough uses it too. Connect failures and
   * recoveries seen through it are recorded in `routing` (for `/health`).
   */
  readonly fetch: typeof fetch;
  /** Wall clock in ms (Retry-After dates, cooldowns, deadlines); injectable for tests. */
  readonly now: () => number;
  /** What routing learned from traffic; shared by every generation. */
  readonly routing: RoutingState;
  /** The circuit breaker over the process-wide store (mode "off" when disabled). */
  readonly breaker: Breaker;
}

export interface RuntimeDeps {
  readonly fetch: typeof fetch;
  readonly random: () => number;
  readonly now?: () => number;
  readonly routing: RoutingState;
  /** Breaker state; created once so it outlives config reloads. */
  readonly breakerStore: BreakerStore;
  /** Log sink; stdout when absent. */
  readonly write?: (line: string) => void;
}

export function buildRuntime(config: Config, generation: number, deps: RuntimeDeps): Runtime {
  const redact = createRedactor(secretsOf(config));
  const logger = createLogger({
    level: config.logging.level,
    format: config.logging.format,
    redact,
    ...(deps.write ? { write: deps.write } : {}),
  });
  const fetch = trackReachability(deps.fetch, deps.routing);
  const adapters = createAdapters(config, { fetch, redact, random: deps.random });
  return {
    generation,
    config,
    adapters,
    logger,
    redact,
    random: deps.random,
    fetch,
    now: deps.now ?? Date.now,
    routing: deps.routing,
    breaker: createBreaker(
      config.features.circuit_breaker,
      deps.breakerStore,
      (msg, fields) => logger.info(msg, fields),
    ),
  };
}

/** Every configured secret, for the redactor. */
export function secretsOf(config: Config): string[] {
  const out: string[] = [];
  const cb = config.features.circuit_breaker.redis;
  if (cb?.password) out.push(cb.password);
  const url = URL.parse(config.state.redis.url);
  if (url?.password) out.push(decodeURIComponent(url.password));
  if (config.server.admin_token) out.push(config.server.admin_token);
  for (const p of Object.values(config.providers)) {
    for (const k of p.keys) out.push(k.key);
    for (const v of Object.values(p.headers)) out.push(v.replace(/^Bearer\s+/i, ""));
  }
  return out;
}
