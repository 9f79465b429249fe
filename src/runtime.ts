import { redisUrlSecrets } from "./state/redis_url.ts";
import { type Config, ConfigError } from "./config/mod.ts";
import { createAdapters, type ProviderAdapter } from "./providers/mod.ts";
import { scrubsOf } from "./providers/registry.ts";
import { trackReachability } from "./providers/execute.ts";
import { feedStreamFailure, type RoutingState } from "./routing/mod.ts";
import { type Breaker, type BreakerStore, createBreaker } from "./breaker/mod.ts";
import { createLogger, createRedactor, type Logger, type Redactor } from "./telemetry/mod.ts";
import { createEventBus, type EventBus, type EventOf } from "./pipeline/events.ts";
import type { Clock } from "./pipeline/exchange.ts";
import {
  createStageChain,
  realSchedule,
  type Schedule,
  type Stage,
  type StageChain,
} from "./pipeline/stages.ts";
import { requestLogStage } from "./pipeline/builtin/request_log.ts";
import { noopStages } from "./pipeline/builtin/noop.ts";
import { buildAppKeys, type KeyService } from "./keys/mod.ts";
import type { SecretScrub } from "./streaming/scrub.ts";
import { type Observability, observabilityFor } from "./telemetry/hub.ts";
import { statusSnapshot } from "./telemetry/status.ts";
import { createLimiter, type Limiter } from "./limits/mod.ts";
import {
  createMeter,
  createPriceBook,
  createStateResources,
  type PriceBook,
  type StateResources,
  type UsageLedger,
} from "./usage/mod.ts";
import { type CacheBackend, createCacheStage } from "./cache/mod.ts";
import { CACHE_DEFAULTS } from "./usage/mod.ts";
import { createMemoryResponsesStore, type ResponsesStore } from "./responses_store/mod.ts";
import { wasmStages } from "./plugins/mod.ts";

/**
 * Everything derived from one config generation, built once at load or reload and
 * swapped atomically. A request takes the current Runtime when it starts and keeps it to
 * the end, so in-flight requests finish on the config they started with; the generation's
 * stages are disposed once it is retired and its last request has ended.
 */
export interface Runtime {
  readonly generation: number;
  readonly config: Config;
  readonly adapters: ReadonlyMap<string, ProviderAdapter>;
  readonly logger: Logger;
  readonly redact: Redactor;
  /**
   * For what an error body quotes of a request (a model name, a path): configured secrets and
   * key shapes come out, `Bearer` help text stays (`errorResponse`, pipeline/encode/error.ts).
   */
  readonly redactError?: Redactor;
  /** By provider: takes its configured credentials out of bytes relayed to clients. */
  readonly scrubs: ReadonlyMap<string, SecretScrub | null>;
  /** Randomness for key choice and jitter; injectable for tests. */
  readonly random: () => number;
  /**
   * The fetch adapters use; native passthrough uses it too. Connect failures and
   * recoveries seen through it are recorded in `routing` (for `/health`).
   */
  readonly fetch: typeof fetch;
  /** Wall clock in ms (Retry-After dates, cooldowns, deadlines); injectable for tests. */
  readonly now: () => number;
  /** Monotonic ms (request timing, stage budgets); injectable for tests. */
  readonly clock: Clock;
  /** Timers of stage budgets; injectable for tests. */
  readonly schedule: Schedule;
  /** What routing learned from traffic; shared by every generation. */
  readonly routing: RoutingState;
  /** The circuit breaker over the process-wide store (mode "off" when disabled). */
  readonly breaker: Breaker;
  /**
   * Aborts when the drain time after SIGTERM has run out: streams still open end with an
   * in-format error event (passthrough: the body is cut) instead of a silent close.
   */
  readonly closing: AbortSignal | undefined;
  /** The stage chain of this generation (the access log first). */
  readonly stages: StageChain;
  /** Responses kept for `/v1/responses` (`previous_response_id`, GET, DELETE). */
  readonly responses: ResponsesStore;
  /** Telemetry events of this generation's requests. */
  readonly events: EventBus;
  /** App keys (`pf_...`); null when `app_keys` is off. */
  readonly keys: KeyService | null;
  /** Metrics, traces, the status rollup and the fleet (process-wide, see telemetry/hub.ts). */
  readonly observability: Observability;
  /** The rate limiter (its stage is in `stages`); null when no limit is configured. */
  readonly limits: Limiter | null;
  /** Usage rollups (process-wide: they outlive the generation). */
  readonly usage: UsageLedger;
  /** Prices of this generation's config. */
  readonly prices: PriceBook;
  /** The response cache's store (process-wide); null when `cache.enabled` is false. */
  readonly cache: CacheBackend | null;
  /** A request started on this generation. */
  retain(): void;
  /** A request of this generation ended. */
  release(): void;
  /** No new request will start here: dispose once the last one in flight has ended. */
  retire(): void;
  /** Release what the stages hold (once). */
  dispose(): Promise<void>;
  /** Resolves when every stage can serve; rejects (a ConfigError) if one cannot start. */
  ready(): Promise<void>;
}

export interface RuntimeDeps {
  readonly fetch: typeof fetch;
  readonly random: () => number;
  readonly now?: () => number;
  readonly clock?: Clock;
  readonly schedule?: Schedule;
  readonly routing: RoutingState;
  /** Breaker state; created once so it outlives config reloads. */
  readonly breakerStore: BreakerStore;
  /** Log sink; stdout when absent. */
  readonly write?: (line: string) => void;
  /** Extra stages after the built-in ones, built per generation (tests register theirs here). */
  readonly stages?: (config: Config) => readonly Stage[];
  /** Benchmarks only: this many no-op stages on every hook (see bench/main.ts). */
  readonly noopStages?: number;
  /** The daemon's shutdown signal (see Runtime.closing). */
  readonly closing?: AbortSignal;
  /**
   * Usage rollups and the response cache, kept across reloads; without it each generation
   * has its own (closed when it is disposed).
   */
  readonly resources?: StateResources;
  /** The Responses API store, built once so it outlives reloads; memory when absent. */
  readonly responses?: ResponsesStore;
}

const PERFORMANCE_CLOCK: Clock = { now: () => performance.now() };

export function buildRuntime(config: Config, generation: number, deps: RuntimeDeps): Runtime {
  const secrets = secretsOf(config);
  const redact = createRedactor(secrets);
  const logger = createLogger({
    level: config.logging.level,
    format: config.logging.format,
    // Upstream text reaches a log line through `redact` first (error messages).
    redact: createRedactor(secrets, { encoded: false }),
    ...(deps.write ? { write: deps.write } : {}),
  });
  deps.routing.keysAre(keyValues(config));
  const fetch = trackReachability(deps.fetch, deps.routing);
  const scrubs = scrubsOf(config);
  const adapters = createAdapters(config, { fetch, redact, random: deps.random }, scrubs);
  const events = createEventBus((error, event) =>
    logger.warn("event subscriber failed", { event: event.type, error })
  );
  const now = deps.now ?? Date.now;
  const ownResources = deps.resources ? null : createStateResources({ now });
  const resources = deps.resources ?? (ownResources as StateResources);
  const usage = resources.ledger(config, logger);
  const cache = resources.cache(config, logger);
  const prices = createPriceBook(
    config,
    (provider, model) => adapters.get(provider)?.pricedAs?.(model) ?? model,
  );
  const costFields = config.features.cost_tracking.enabled;
  const meter = createMeter({ prices, ledger: usage, now, costHeader: costFields });
  // Before every stage's subscriber: they (the access log first) read the cost it sets.
  events.subscribe((e) => {
    if (e.type === "request_end") meter.onRequestEnd(e);
  }, ["request_end"]);
  // The key store outlives generations: it belongs to `deps`, which every generation shares.
  const appKeys = buildAppKeys(config, deps, logger, now);
  const limits = createLimiter(config, { logger, now, owner: deps.routing });
  // Order: who is calling (keys), may they (limits), what it costs (meter), the operator's
  // plugins (a guard blocks, a rewrite changes the request), then the cache: a refused or
  // blocked request never reads it, it keys on the request as rewritten, a hit costs 0.
  const stages: Stage[] = [
    requestLogStage(logger, {
      cost: costFields,
      appKey: config.plugins.requestlog?.log_app_key === true,
      ...(config.plugins.requestlog?.level ? { level: config.plugins.requestlog.level } : {}),
    }),
    ...(appKeys ? [appKeys.stage] : []),
    ...(limits ? [limits.stage] : []),
    meter.stage,
    ...wasmStages(config),
    ...(cache
      ? [createCacheStage({
        policy: config.cache,
        ttlMs: config.cache.ttl ?? CACHE_DEFAULTS.ttlMs,
        backend: cache,
      })]
      : []),
    ...noopStages(deps.noopStages ?? 0),
    ...(deps.stages?.(config) ?? []),
  ];
  for (const stage of stages) {
    if (stage.trace) events.subscribe((e) => stage.trace!(e), stage.trace_events);
  }
  // A unified stream that failed after its commit counts against its provider's breaker.
  events.subscribe((e) => {
    if (e.type === "request_end") {
      feedStreamFailure(runtime.breaker, adapters, e.exchange, e.outcome, now);
    }
  }, ["request_end"]);
  // Last: spend is counted once every other listener (cost accounting) has run.
  if (appKeys) {
    events.subscribe((e) => appKeys.stage.onRequestEnd(e as EventOf<"request_end">), [
      "request_end",
    ]);
  }
  const observability = observabilityFor(deps.routing, {
    now,
    beat: statusSnapshot,
  });
  let detach: (() => Promise<void>) | null = null;
  let inflight = 0;
  let retired = false;
  let disposed: Promise<void> | null = null;
  const runtime: Runtime = {
    generation,
    config,
    adapters,
    logger,
    redact,
    redactError: createRedactor(secrets, { encoded: false, bearer: false }),
    scrubs,
    random: deps.random,
    fetch,
    now,
    clock: deps.clock ?? PERFORMANCE_CLOCK,
    schedule: deps.schedule ?? realSchedule,
    routing: deps.routing,
    breaker: createBreaker(
      config.features.circuit_breaker,
      deps.breakerStore,
      (msg, fields) => logger.info(msg, fields),
      (t) => {
        if (events.on.breaker_transition) events.emit({ type: "breaker_transition", ...t });
      },
    ),
    closing: deps.closing,
    stages: createStageChain(stages),
    responses: deps.responses ?? createMemoryResponsesStore({
      maxBytes: config.responses.store.max_bytes,
      ttlMs: config.responses.store.ttl,
      now: deps.now ?? Date.now,
    }),
    events,
    keys: appKeys?.service ?? null,
    observability,
    limits,
    usage,
    prices,
    cache,
    retain() {
      inflight++;
    },
    release() {
      if (--inflight === 0 && retired) void runtime.dispose();
    },
    retire() {
      retired = true;
      if (inflight === 0) void runtime.dispose();
    },
    ready: () => stagesReady(stages),
    dispose() {
      disposed ??= (async () => {
        await detach?.();
        for (const stage of stages) {
          try {
            await stage.dispose?.();
          } catch (err) {
            logger.warn("stage dispose failed", { stage: stage.name, error: err });
          }
        }
        await ownResources?.close();
      })();
      return disposed;
    },
  };
  detach = observability.attach(runtime);
  return runtime;
}

async function stagesReady(stages: readonly Stage[]): Promise<void> {
  const results = await Promise.allSettled(stages.map((s) => s.ready));
  const problems = results.flatMap((r, i) =>
    r.status === "rejected" && r.reason instanceof ConfigError
      // It names its own key paths (a plugin's `config`).
      ? r.reason.problems
      : r.status === "rejected"
      ? [
        `${stages[i]!.configPath ?? stages[i]!.name}: ${
          r.reason instanceof Error ? r.reason.message : String(r.reason)
        }`,
      ]
      : []
  );
  if (problems.length > 0) throw new ConfigError("stages", problems);
}

/** Every configured secret, for the redactor. */
export function secretsOf(config: Config): string[] {
  const out: string[] = [];
  if (config.cache.redis?.password) out.push(config.cache.redis.password);
  if (config.cache.redis?.sentinel) out.push(...redisUrlSecrets(config.cache.redis.sentinel));
  for (const conn of [config.features.circuit_breaker.redis, config.features.rate_limiting.redis]) {
    if (conn?.password) out.push(conn.password);
    if (conn) out.push(...redisUrlSecrets(conn.url));
  }
  out.push(...redisUrlSecrets(config.state.redis.url));
  if (config.server.admin_token) out.push(config.server.admin_token);
  for (const k of config.app_keys.keys) out.push(k.key);
  for (const p of Object.values(config.providers)) {
    for (const k of p.keys) out.push(k.key);
    for (const v of Object.values(p.headers)) out.push(v.replace(/^Bearer\s+/i, ""));
  }
  return out;
}

/** Every configured provider key by id, for the routing state's cooldowns. */
export function keyValues(config: Config): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of Object.values(config.providers)) for (const k of p.keys) out.set(k.id, k.key);
  return out;
}
