/**
 * Rate limits (issue 13): llm-proxy's `features.rate_limiting`, llm-gateway's `rateLimit`
 * and Butter's `plugins.ratelimit`, as one `pre_llm` stage over a memory or Redis backend.
 * Built per config generation by `buildRuntime`; memory counters outlive reloads.
 * @module
 */
import type { Config } from "../config/mod.ts";
import type { Stage } from "../pipeline/stages.ts";
import type { Logger } from "../telemetry/mod.ts";
import type { BackendHealth, LimitBackend, UsageRow } from "./backend.ts";
import { CounterMap, createMemoryBackend } from "./memory.ts";
import { type Rule, rulesOf } from "./policy.ts";
import { limitStage } from "./stage.ts";

export type { Admission, BackendHealth, CheckState, UsageRow } from "./backend.ts";
export type { RateLimitFacts } from "./stage.ts";
export { rulesOf } from "./policy.ts";

/** The limiter of one config generation: its stage and what `/health` and admin read. */
export interface Limiter {
  readonly stage: Stage;
  readonly rules: readonly Rule[];
  /** Current usage per counter (rule × scope value) this sidecar knows of. */
  usage(): UsageRow[];
  health(): BackendHealth;
  /** Resolves once limits are shared through Redis (at once for the memory backend). */
  shared(): Promise<void>;
}

export interface LimiterDeps {
  readonly logger: Logger;
  /** Wall clock, ms. */
  readonly now: () => number;
  /** Lives as long as the process (e.g. the routing state): memory counters hang off it. */
  readonly owner: object;
}

const MEMORY = new WeakMap<object, CounterMap>();

/** The limiter the config asks for; null when no limit is configured (no stage at all). */
export function createLimiter(config: Config, deps: LimiterDeps): Limiter | null {
  const rules = rulesOf(config);
  if (rules.length === 0) return null;
  const rl = config.features.rate_limiting;
  const backendKind = rl.backend ?? config.state.backend;
  let backend: LimitBackend;
  let shared: Promise<void> = Promise.resolve();
  if (backendKind === "redis") {
    const share = rl.fallback_share ?? 1 / rl.fleet_size;
    const lazy = lazyRedis(config, deps, share);
    backend = lazy.backend;
    shared = lazy.shared;
  } else {
    let counters = MEMORY.get(deps.owner);
    if (counters === undefined) MEMORY.set(deps.owner, counters = new CounterMap());
    backend = createMemoryBackend(counters);
  }
  const stage = limitStage({ rules, backend, estimation: rl.estimation, now: deps.now });
  return {
    stage,
    rules,
    usage: () => backend.usage(deps.now()),
    health: () => backend.health(),
    shared: () => shared,
  };
}

/**
 * The Redis backend, loaded on first use (the daemon's module graph carries the Redis client
 * only when a config needs it). Until it has loaded, each sidecar admits its share.
 */
function lazyRedis(
  config: Config,
  deps: LimiterDeps,
  share: number,
): { backend: LimitBackend; shared: Promise<void> } {
  const rl = config.features.rate_limiting;
  const interim = createMemoryBackend(new CounterMap(), share);
  let real: LimitBackend | null = null;
  const { promise: shared, resolve: markShared } = Promise.withResolvers<void>();
  const loading = (async () => {
    const [{ createRedisLink }, { createRedisBackend }] = await Promise.all([
      import("../state/redis_link.ts"),
      import("./redis.ts"),
    ]);
    const conn = rl.redis;
    const link = createRedisLink({
      url: conn ? `redis://${conn.address}` : config.state.redis.url,
      ...(conn && conn.password !== "" ? { password: conn.password } : {}),
      ...(conn ? { db: conn.db } : {}),
      name: "limits",
      logger: deps.logger,
    });
    const stop = link.onStateChange((ready) => {
      if (ready) {
        stop();
        markShared();
      }
    });
    if (link.ready()) markShared();
    real = createRedisBackend({
      link,
      logger: deps.logger,
      fleetSize: rl.fleet_size,
      fallbackShare: share,
      now: deps.now,
    });
    return real;
  })();
  loading.catch((error) =>
    deps.logger.error("rate limits: Redis backend failed to load", { error })
  );
  const backend: LimitBackend = {
    admit: (checks, costs, now) => (real ?? interim).admit(checks, costs, now),
    adjust: (state, delta, now) => (real ?? interim).adjust(state, delta, now),
    usage: (now) => (real ?? interim).usage(now),
    health: () =>
      real?.health() ?? {
        backend: "redis",
        mode: "fallback",
        fleet_size: rl.fleet_size,
        fallback_share: share,
        notice: "Connecting to Redis: this sidecar admits its share of each limit",
      },
    async close() {
      const b = await loading.catch(() => null);
      await b?.close();
    },
  };
  return { backend, shared };
}
