/** Timing of the breaker, from llm-proxy's `features.circuit_breaker` (seconds → ms). */
export interface BreakerTiming {
  readonly failureThreshold: number;
  readonly windowMs: number;
  readonly cooldownMs: number;
  readonly rollupWindowMs: number;
}

/**
 * Where breaker state lives: in this process (`memory`) or shared by a fleet (`redis`).
 * Reads are local and synchronous (the closed path never waits on I/O); writes are the
 * fleet-wide, atomic transitions. Keys are `<provider>:<model>` (or bare `<provider>`).
 */
export interface BreakerStore {
  /** Until when `key` is open (ms epoch), or null while closed. Local read. */
  openUntil(key: string): number | null;
  /** Failures of `key` inside the window, as this process knows them. Local read. */
  failures(key: string, now: number): number;
  /** Distinct keys of `provider` that opened (or failed a probe) inside the rollup window. */
  rollupKeys(provider: string, now: number): string[];
  /** Record a provider-degraded failure; true when this call opened the key. Atomic. */
  recordFailure(key: string, provider: string, now: number): Promise<boolean>;
  /** A failed probe: open again for a cooldown and re-arm the key in the rollup. */
  reopen(key: string, provider: string, now: number): Promise<void>;
  /** A successful probe: close the key, forget its failures, drop it from the rollup. */
  closeKey(key: string, provider: string): Promise<void>;
  /** Take the single probe slot of a half-open key, fleet-wide. */
  tryAcquireProbe(key: string, now: number): Promise<boolean>;
  /** Give a probe slot back (the probe ended without a verdict, e.g. the client left). */
  releaseProbe(key: string): Promise<void>;
  /** The backend for /health (`backend`), and whether Redis is down and local state serves. */
  describe(): { backend: string; fallback: boolean };
  close(): Promise<void>;
}

/** In-process state: the `memory` backend, and the Redis backend's local view and fallback. */
export function createMemoryBreakerStore(timing: BreakerTiming): BreakerStore {
  const fails = new Map<string, number[]>();
  const open = new Map<string, number>();
  const probes = new Map<string, number>();
  const rollup = new Map<string, Map<string, number>>();
  const window = (key: string, now: number) => {
    const list = (fails.get(key) ?? []).filter((t) => now - t < timing.windowMs);
    if (list.length > 0) fails.set(key, list);
    else fails.delete(key);
    return list;
  };
  const arm = (provider: string, key: string, now: number) => {
    let keys = rollup.get(provider);
    if (!keys) rollup.set(provider, keys = new Map());
    keys.set(key, now);
  };
  return {
    openUntil: (key) => open.get(key) ?? null,
    failures: (key, now) => window(key, now).length,
    rollupKeys(provider, now) {
      const keys = rollup.get(provider);
      if (!keys) return [];
      for (const [k, at] of keys) if (now - at >= timing.rollupWindowMs) keys.delete(k);
      return [...keys.keys()];
    },
    recordFailure(key, provider, now) {
      const list = window(key, now);
      list.push(now);
      fails.set(key, list);
      if (open.has(key) || list.length < timing.failureThreshold) return Promise.resolve(false);
      open.set(key, now + timing.cooldownMs);
      arm(provider, key, now);
      return Promise.resolve(true);
    },
    reopen(key, provider, now) {
      open.set(key, now + timing.cooldownMs);
      probes.delete(key);
      arm(provider, key, now);
      return Promise.resolve();
    },
    closeKey(key, provider) {
      open.delete(key);
      fails.delete(key);
      probes.delete(key);
      rollup.get(provider)?.delete(key);
      return Promise.resolve();
    },
    tryAcquireProbe(key, now) {
      const held = probes.get(key);
      // A probe that never reported back (crash, lost client) frees its slot after a cooldown.
      if (held !== undefined && now - held < timing.cooldownMs) return Promise.resolve(false);
      probes.set(key, now);
      return Promise.resolve(true);
    },
    releaseProbe(key) {
      probes.delete(key);
      return Promise.resolve();
    },
    describe: () => ({ backend: "memory", fallback: false }),
    close: () => Promise.resolve(),
  };
}
