/**
 * Rate limits (issue 13): llm-proxy's `features.rate_limiting`, llm-gateway's `rateLimit`
 * and Butter's `plugins.ratelimit`, as one `pre_llm` stage over a memory or Redis backend.
 * Built per config generation by `buildRuntime`; memory counters outlive reloads, and so does
 * the Redis backend (its link, leases and fallback counts) while its Redis settings hold.
 * @module
 */
import type { Config } from "../config/mod.ts";
import type { Stage } from "../pipeline/stages.ts";
import type { Logger } from "../telemetry/mod.ts";
import { appKeysEnabled } from "../keys/mod.ts";
import type { BackendHealth, LimitBackend, UsageRow } from "./backend.ts";
import { CounterMap, createMemoryBackend } from "./memory.ts";
import { createRedisBackend } from "./redis.ts";
import { butterKeyRules, type Rule, rulesOf } from "./policy.ts";
import { limitStage } from "./stage.ts";
import { parseCidr } from "./proxies.ts";

export type { Admission, BackendHealth, CheckState, UsageRow } from "./backend.ts";
export type { RateLimitFacts } from "./stage.ts";
export { rulesOf, USER_ID_PARAM } from "./policy.ts";

/** The limiter of one config generation: its stage and what `/health` and admin read. */
export interface Limiter {
  readonly stage: Stage;
  readonly rules: readonly Rule[];
  /** Current usage per counter (rule x scope value) this sidecar knows of. */
  usage(): UsageRow[];
  /** Bring `usage` up to date with the fleet's counts (Redis); bounded, never throws. */
  refresh(): Promise<void>;
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

/**
 * The Redis backend of the live generations, per owner: a reload that keeps its Redis, fleet
 * size and share keeps it (what a sidecar took on its share during an outage, its field in
 * each counter, its link), so a reload mid-outage does not hand out the share again.
 */
interface SharedRedis {
  readonly signature: string;
  readonly backend: LimitBackend;
  readonly shared: Promise<void>;
  /** The newest generation's logger: the backend logs through it. */
  logger: Logger;
  refs: number;
  /** No generation uses it: closed when this timer fires, unless one takes it up again. */
  linger: ReturnType<typeof setTimeout> | undefined;
}

/**
 * How long a Redis backend that no generation uses stays open. A reload that turns limits
 * off and on again keeps the link, the leases and the share counted during an outage, instead
 * of connecting anew (its setup cost fell on the first seconds of traffic after the reload).
 */
export const LINGER_MS = 30_000;
/** Owners shut down (`closeLimits`): a backend no generation uses closes at once. */
const SHUT = new WeakSet<object>();

function closeShared(owner: object, entry: SharedRedis): Promise<void> {
  if (entry.linger !== undefined) clearTimeout(entry.linger);
  entry.linger = undefined;
  if (REDIS.get(owner) === entry) REDIS.delete(owner);
  return entry.backend.close();
}

/** Shutdown: close a Redis backend left lingering, and any later one at once. */
export async function closeLimits(owner: object): Promise<void> {
  SHUT.add(owner);
  const entry = REDIS.get(owner);
  if (entry !== undefined && entry.refs === 0) await closeShared(owner, entry);
}
const REDIS = new WeakMap<object, SharedRedis>();

/**
 * The limiter the config asks for; null when no limit is configured and app keys are off (no
 * stage at all). With app keys on there is always one: a key may carry its own `limits`.
 */
export function createLimiter(config: Config, deps: LimiterDeps): Limiter | null {
  const rules = rulesOf(config);
  const appKeys = appKeysEnabled(config);
  if (rules.length === 0 && !appKeys) return null;
  const rl = config.features.rate_limiting;
  const backendKind = rl.backend ?? config.state.backend;
  let backend: LimitBackend;
  let shared: Promise<void> = Promise.resolve();
  if (backendKind === "redis") {
    const share = rl.fallback_share ?? 1 / rl.fleet_size;
    const signature = JSON.stringify([rl.redis ?? config.state.redis, rl.fleet_size, share]);
    let entry = REDIS.get(deps.owner);
    // One lingering under other Redis settings is not coming back.
    if (entry !== undefined && entry.signature !== signature && entry.refs === 0) {
      void closeShared(deps.owner, entry).catch(() => {});
    }
    if (entry === undefined || entry.signature !== signature) {
      const logger = forwarding(() => (entry as SharedRedis).logger);
      entry = {
        signature,
        logger: deps.logger,
        refs: 0,
        linger: undefined,
        ...sharedBackend(config, deps, share, logger),
      };
      REDIS.set(deps.owner, entry);
    }
    entry.logger = deps.logger;
    entry.refs++;
    if (entry.linger !== undefined) clearTimeout(entry.linger);
    entry.linger = undefined;
    const mine = entry;
    const owner = deps.owner;
    backend = {
      ...mine.backend,
      // The last generation using it lets it linger (closed at once after shutdown, or when
      // newer settings replaced it).
      async close() {
        if (--mine.refs > 0) return;
        if (SHUT.has(owner) || REDIS.get(owner) !== mine) return await closeShared(owner, mine);
        const timer = setTimeout(() => {
          mine.linger = undefined;
          if (mine.refs === 0) void closeShared(owner, mine).catch(() => {});
        }, LINGER_MS);
        Deno.unrefTimer(timer);
        mine.linger = timer;
      },
    };
    shared = mine.shared;
  } else {
    let counters = MEMORY.get(deps.owner);
    if (counters === undefined) MEMORY.set(deps.owner, counters = new CounterMap());
    backend = createMemoryBackend(counters);
  }
  const stage = limitStage({
    rules,
    backend,
    estimation: rl.estimation,
    now: deps.now,
    appKeys,
    butterKey: butterKeyRules(config),
    trustedProxies: (config.plugins.ratelimit?.trusted_proxies ?? []).map((c) => parseCidr(c)!),
  });
  // Counters outlive a reload (memory) or are shared (Redis); report only those this
  // generation enforces, not a rule a reload took away.
  const ids = new Set(rules.map((r) => r.id));
  const byId = new Map(rules.map((r) => [r.id, r]));
  const ruleOf = (id: string) => byId.get(id);
  const butterKeys = butterKeyRules(config) !== null;
  const live = (rule: string) =>
    ids.has(rule) || (appKeys && rule.startsWith("key.")) ||
    (butterKeys && rule.startsWith("butter.key."));
  return {
    stage,
    rules,
    usage: () => backend.usage(deps.now(), ruleOf).filter((row) => live(row.rule)),
    refresh: () => backend.refresh?.() ?? Promise.resolve(),
    health: () => backend.health(),
    shared: () => shared,
  };
}

/**
 * The Redis backend. Its link (and the Redis client) is loaded on first use, so the daemon's
 * module graph carries it only when a config needs it; until it is up, each sidecar admits
 * its share, counted by the same backend so nothing is forgotten when the link comes up.
 */
function sharedBackend(
  config: Config,
  deps: LimiterDeps,
  share: number,
  logger: Logger,
): { backend: LimitBackend; shared: Promise<void> } {
  const rl = config.features.rate_limiting;
  const backend = createRedisBackend({
    logger,
    fleetSize: rl.fleet_size,
    fallbackShare: share,
    now: deps.now,
  });
  const { promise: shared, resolve: markShared } = Promise.withResolvers<void>();
  let closing = false;
  const linking = import("../state/redis_pool.ts").then(({ openRedisLink }) => {
    if (closing) return;
    const link = openRedisLink({
      ...(rl.redis ?? { url: config.state.redis.url }),
      name: "limits",
      logger,
    });
    backend.attach(link);
    const stop = link.onStateChange((ready) => {
      if (!ready) return;
      stop();
      markShared();
    });
  });
  linking.catch((error) => logger.error("rate limits: no Redis link", { error }));
  return {
    backend: {
      ...backend,
      async close() {
        closing = true;
        await linking.catch(() => {});
        await backend.close();
      },
    },
    shared,
  };
}

/** A logger that writes through whichever logger `current` returns at the time. */
function forwarding(current: () => Logger): Logger {
  return {
    debug: (msg, fields) => current().debug(msg, fields),
    info: (msg, fields) => current().info(msg, fields),
    warn: (msg, fields) => current().warn(msg, fields),
    error: (msg, fields) => current().error(msg, fields),
    enabled: (level) => current().enabled(level),
  };
}
