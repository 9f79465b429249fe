import type { CircuitBreakerConfig } from "../config/mod.ts";
import { GatewayError } from "../errors.ts";
import type { OutcomeClass } from "./classify.ts";
import type { BreakerStore } from "./store.ts";

export const DEFAULT_DEGRADED_SIGNAL = "[LLM_PROXY_PROVIDER_DEGRADED]";

export type BreakerMode = "off" | "log" | "on";

/** What the breaker says about one attempt before it is made. */
export type Admission =
  | { readonly kind: "allow" }
  | { readonly kind: "probe" }
  | { readonly kind: "reject"; readonly reason: "open" | "rollup" | "probe_busy" };

export interface BreakerCounters {
  /** `${provider}|${model}|${from}->${to}` -> count */
  readonly transitions: Map<string, number>;
  /** `${provider}|${model}|${reason}` -> count */
  readonly fastFails: Map<string, number>;
  /** `${provider}|${model}|${outcome}` -> count */
  readonly probes: Map<string, number>;
  /** `${provider}|${model}|${reason}|${outcome}` -> count */
  readonly bypasses: Map<string, number>;
}

/**
 * The circuit breaker of llm-proxy's contract: per `<provider>:<model>` key (bare
 * `<provider>` when the model is unknown), a sliding failure window, one half-open probe,
 * and an optional per-provider rollup. Decisions read the store's local view only; every
 * write (failure, probe verdict) goes to the store in the background.
 */
export interface Breaker {
  readonly mode: BreakerMode;
  readonly config: CircuitBreakerConfig;
  readonly store: BreakerStore;
  readonly counters: BreakerCounters;
  key(provider: string, model: string | undefined): string;
  /** Closed/open need no I/O; only a half-open key asks the store for the probe slot. */
  admit(provider: string, key: string, now: number): Admission | Promise<Admission>;
  /** For routing strategies: would a request to this key be let through right now? */
  available(provider: string, key: string, now: number): boolean;
  /** Feed an attempt's outcome. `counts` is false for a retried failure in contribution mode off/log. */
  record(
    provider: string,
    key: string,
    cls: OutcomeClass,
    how: { probe: boolean; bypass: string | null; counts: boolean },
    now: number,
  ): void;
  /** llm-proxy's escalation: a global rate limit sustained for the window becomes degraded. */
  escalate(key: string, cls: OutcomeClass, now: number): OutcomeClass;
  /** The synthetic 503 that tells clients to fall back. */
  degraded(provider: string): GatewayError;
  /** llm-proxy's `/health` view of one provider (the worst of its keys). */
  health(provider: string, now: number): ProviderHealth;
  /**
   * Close `key` (`provider` or `provider:model`), or every key this process has seen, as an
   * operator's reset (the admin control object). Returns the keys reset.
   */
  reset(key?: string): Promise<string[]>;
}

/** A state change of one key, for the telemetry bus. */
export interface BreakerTransition {
  readonly provider: string;
  readonly key: string;
  readonly from: string;
  readonly to: string;
}

export interface ProviderHealth {
  readonly state: "closed" | "open" | "half_open";
  readonly failures: number;
  /** Unix seconds, when open. */
  readonly cooldown_until?: number;
  /**
   * Ours on top of llm-proxy's block: every `<provider>:<model>` key that is open, half-open
   * or has failures in the window, so one model's trouble is visible with the rollup off too.
   */
  readonly keys?: Readonly<Record<string, KeyHealth>>;
  readonly rollup?: {
    readonly enabled: true;
    readonly open: boolean;
    readonly count: number;
    readonly threshold: number;
    readonly window_seconds: number;
    readonly open_keys: string[];
  };
}

/** Worse states rank higher: a provider shows its worst key's. */
const RANK = { closed: 0, half_open: 1, open: 2 } as const;

export interface KeyHealth {
  readonly state: "closed" | "open" | "half_open";
  readonly failures: number;
  /** Unix seconds, when open. */
  readonly cooldown_until?: number;
}

const ALLOW: Admission = Object.freeze({ kind: "allow" });

export function createBreaker(
  config: CircuitBreakerConfig,
  store: BreakerStore,
  log: (msg: string, fields: Record<string, unknown>) => void,
  onTransition?: (t: BreakerTransition) => void,
): Breaker {
  const mode: BreakerMode = !config.enabled ? "off" : config.mode ?? "on";
  if (mode === "off") return offBreaker(config, store);
  const marker = config.degraded_signal || DEFAULT_DEGRADED_SIGNAL;
  const rollupThreshold = config.per_provider_rollup_threshold;
  /** Per key, when its run of global 429s began and when the last one came. */
  const globalSince = new Map<string, { since: number; last: number }>();
  const counters: BreakerCounters = {
    transitions: new Map(),
    fastFails: new Map(),
    probes: new Map(),
    bypasses: new Map(),
  };
  /** Keys this process has seen per provider, so /health can report them. */
  const seen = new Map<string, Set<string>>();
  const touch = (provider: string, key: string) => {
    let keys = seen.get(provider);
    if (!keys) seen.set(provider, keys = new Set());
    keys.add(key);
  };
  const bump = (map: Map<string, number>, label: string) =>
    map.set(label, (map.get(label) ?? 0) + 1);
  const modelOf = (provider: string, key: string) =>
    key.startsWith(`${provider}:`) ? key.slice(provider.length + 1) : "";

  const rollupOpen = (provider: string, now: number) =>
    rollupThreshold > 0 && store.rollupKeys(provider, now).length >= rollupThreshold;

  /** The decision without side effects (no probe slot taken). */
  const peek = (provider: string, key: string, now: number): Admission | "half_open" => {
    const until = store.openUntil(key);
    if (until !== null && now >= until) return "half_open"; // probes run even under a rollup
    if (rollupOpen(provider, now)) return { kind: "reject", reason: "rollup" };
    if (until === null) return { kind: "allow" };
    return { kind: "reject", reason: "open" };
  };

  const transition = (provider: string, key: string, from: string, to: string) => {
    bump(counters.transitions, `${provider}|${modelOf(provider, key)}|${from}->${to}`);
    log("circuit transition", { provider, key, from, to });
    onTransition?.({ provider, key, from, to });
  };
  const background = (p: Promise<unknown>, what: string) =>
    p.catch((err) => log("circuit store write failed", { what, error: err }));

  return {
    mode,
    config,
    store,
    counters,
    key: (provider, model) => (model ? `${provider}:${model}` : provider),
    admit(provider, key, now) {
      touch(provider, key);
      const seen = peek(provider, key, now);
      const settle = (a: Admission): Admission => {
        if (a.kind !== "reject") return a;
        bump(counters.fastFails, `${provider}|${modelOf(provider, key)}|${a.reason}`);
        // log mode observes only: the request goes ahead.
        return mode === "on" ? a : { kind: "allow" };
      };
      if (seen !== "half_open") return settle(seen);
      return store.tryAcquireProbe(key, now).then(
        (won): Admission => {
          if (won) transition(provider, key, "open", "half_open");
          return settle(won ? { kind: "probe" } : { kind: "reject", reason: "probe_busy" });
        },
        () => settle({ kind: "reject", reason: "probe_busy" }),
      );
    },
    available(provider, key, now) {
      if (mode !== "on") return true;
      const seen = peek(provider, key, now);
      return seen === "half_open" || seen.kind === "allow";
    },
    escalate(key, cls, now) {
      if (cls !== "global_rate_limit") {
        if (cls === "success") globalSince.delete(key);
        return cls;
      }
      const windowMs = config.global_rate_limit_escalation_window * 1000;
      const run = globalSince.get(key);
      // Sustained: each one within a window of the last. A burst after a quiet spell (or
      // hours after an old one) starts a new run rather than escalating at once.
      if (run === undefined || now - run.last > windowMs) {
        globalSince.set(key, { since: now, last: now });
        return cls;
      }
      run.last = now;
      return now - run.since >= windowMs ? "provider_degraded" : cls;
    },
    record(provider, key, cls, how, now) {
      touch(provider, key);
      const model = modelOf(provider, key);
      if (how.probe) {
        if (cls === "provider_degraded") {
          bump(counters.probes, `${provider}|${model}|failed`);
          transition(provider, key, "half_open", "open");
          background(store.reopen(key, provider, now), "reopen");
        } else if (cls === "success") {
          bump(counters.probes, `${provider}|${model}|succeeded`);
          transition(provider, key, "half_open", "closed");
          background(store.closeKey(key, provider), "close");
        } else {
          // No verdict (a client error, a rate limit): let the next request probe.
          bump(counters.probes, `${provider}|${model}|inconclusive`);
          background(store.releaseProbe(key), "release probe");
        }
        return;
      }
      if (how.bypass !== null && mode === "on") {
        const outcome = cls === "success" || cls === "client_error" ? "none" : cls;
        bump(counters.bypasses, `${provider}|${model}|${how.bypass}|${outcome}`);
      }
      // A bypass success never closes a breaker; only a probe is evidence of recovery.
      if (cls !== "provider_degraded" || !how.counts) return;
      background(
        store.recordFailure(key, provider, now).then((opened) => {
          if (opened) transition(provider, key, "closed", "open");
        }),
        "record failure",
      );
    },
    health(provider, now) {
      const rolled = rollupThreshold > 0 ? store.rollupKeys(provider, now) : [];
      // llm-proxy's per-provider view (its ProviderStatsFor) folds every key of the provider,
      // the bare `<provider>` and each `<provider>:<model>`: failures summed, the worst state,
      // the earliest cooldown of an open key. `keys` lists the model keys one by one.
      let state: ProviderHealth["state"] = "closed";
      let failures = 0;
      let until: number | null = null;
      const keys: Record<string, KeyHealth> = {};
      // With Redis, keys another sidecar opened are in the store's view without being seen here.
      const all = new Set([provider, ...(seen.get(provider) ?? []), ...store.openKeys(provider)]);
      for (const key of all) {
        const u = store.openUntil(key);
        const failed = store.failures(key, now);
        if (u === null && failed === 0) continue;
        const keyState = u === null ? "closed" : now < u ? "open" : "half_open";
        failures += failed;
        if (RANK[keyState] > RANK[state]) state = keyState;
        if (u !== null && now < u && (until === null || u < until)) until = u;
        if (key === provider) continue;
        keys[key] = {
          state: keyState,
          failures: failed,
          ...(u !== null && now < u ? { cooldown_until: Math.floor(u / 1000) } : {}),
        };
      }
      return {
        state,
        failures,
        ...(until !== null ? { cooldown_until: Math.floor(until / 1000) } : {}),
        ...(Object.keys(keys).length > 0 ? { keys } : {}),
        ...(rollupThreshold > 0
          ? {
            rollup: {
              enabled: true as const,
              open: rolled.length >= rollupThreshold,
              count: rolled.length,
              threshold: rollupThreshold,
              window_seconds: config.per_provider_rollup_window_seconds,
              // Always present, [] when none (PRODUCT.md lists it among the block's fields).
              open_keys: rolled,
            },
          }
          : {}),
      };
    },
    async reset(key) {
      // Every key: those seen here and those the fleet opened (with Redis, closed for all).
      const keys = key !== undefined
        ? [key]
        : [...new Set([...[...seen.values()].flatMap((k) => [...k]), ...store.openKeys()])];
      for (const k of keys) {
        const provider = k.includes(":") ? k.slice(0, k.indexOf(":")) : k;
        const wasOpen = store.openUntil(k) !== null;
        await store.closeKey(k, provider);
        globalSince.delete(k);
        if (wasOpen) transition(provider, k, "open", "closed");
      }
      return keys;
    },
    degraded(provider) {
      return degradedSignal(marker, provider);
    },
  };
}

/**
 * The breaker when `features.circuit_breaker` is off: every call goes through, nothing is
 * recorded. Failover calls it unconditionally instead of branching on a missing breaker.
 */
function offBreaker(config: CircuitBreakerConfig, store: BreakerStore): Breaker {
  const marker = config.degraded_signal || DEFAULT_DEGRADED_SIGNAL;
  return {
    mode: "off",
    config,
    store,
    counters: {
      transitions: new Map(),
      fastFails: new Map(),
      probes: new Map(),
      bypasses: new Map(),
    },
    key: (provider, model) => (model ? `${provider}:${model}` : provider),
    admit: () => ALLOW,
    available: () => true,
    record() {},
    escalate: (_key, cls) => cls,
    health: () => ({ state: "closed", failures: 0 }),
    reset: () => Promise.resolve([]),
    degraded: (provider) => degradedSignal(marker, provider),
  };
}

/** llm-proxy's degraded signal: the synthetic 503 that tells clients to fall back. */
function degradedSignal(marker: string, provider: string): GatewayError {
  return new GatewayError(
    "provider_degraded",
    `${marker} Provider ${provider} is currently degraded or unavailable. Please try again later.`,
    {
      provider,
      retryable: false,
      headers: { "x-llm-proxy-error-class": "provider_degraded" },
    },
  );
}
