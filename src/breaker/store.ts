/** Timing of the breaker, from llm-proxy's `features.circuit_breaker` (seconds -> ms). */
/** A timing the store owns and a reload updates in place. */
export type Mutable<T> = { -readonly [K in keyof T]: T[K] };

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
  /**
   * Keys open or half-open in this process's view (with Redis: the fleet's, kept by its
   * subscription), all or `provider`'s. Local read.
   */
  openKeys(provider?: string): string[];
  /** Record a provider-degraded failure; true when this call opened the key. Atomic. */
  recordFailure(key: string, provider: string, now: number): Promise<boolean>;
  /** A failed probe: open again for a cooldown and re-arm the key in the rollup. */
  reopen(key: string, provider: string, now: number): Promise<void>;
  /** A successful probe: close the key, forget its failures, drop it from the rollup. */
  closeKey(key: string, provider: string): Promise<void>;
  /**
   * Take the single probe slot of a half-open key, fleet-wide. None while the key is open
   * (its cooldown not over): after a failed probe re-opened it, another caller whose view is
   * still half-open must not send a second probe.
   */
  tryAcquireProbe(key: string, now: number): Promise<boolean>;
  /** Give a probe slot back (the probe ended without a verdict, e.g. the client left). */
  releaseProbe(key: string): Promise<void>;
  /** The backend for /health (`backend`), and whether Redis is down and local state serves. */
  describe(): { backend: string; fallback: boolean };
  /** A reloaded config's threshold, window, cooldown and rollup window, from now on. */
  retime(timing: BreakerTiming): void;
  close(): Promise<void>;
}

interface OpenEntry {
  until: number;
  provider: string;
}

/**
 * In-process breaker state with the memory backend's semantics: all of the `memory` store,
 * and the Redis store's local view (what its reads return, and the whole state while Redis
 * is away). Synchronous: the request's closed path never waits on I/O.
 */
export class BreakerState {
  readonly fails = new Map<string, number[]>();
  readonly open = new Map<string, OpenEntry>();
  readonly probes = new Map<string, number>();
  readonly rollup = new Map<string, Map<string, number>>();
  constructor(private readonly timing: BreakerTiming) {}

  window(key: string, now: number): number[] {
    const list = (this.fails.get(key) ?? []).filter((t) => now - t < this.timing.windowMs);
    if (list.length > 0) this.fails.set(key, list);
    else this.fails.delete(key);
    return list;
  }
  /** Returns the failures now inside the window, this one included. */
  addFailure(key: string, now: number): number {
    const list = this.window(key, now);
    list.push(now);
    this.fails.set(key, list);
    return list.length;
  }
  arm(provider: string, key: string, at: number): void {
    let keys = this.rollup.get(provider);
    if (!keys) this.rollup.set(provider, keys = new Map());
    keys.set(key, at);
  }
  /** Opened by a failure threshold: a probe slot is left alone. */
  opened(key: string, provider: string, until: number, at: number): void {
    this.open.set(key, { until, provider });
    this.arm(provider, key, at);
  }
  /** Opened again by a failed probe (or told so by another sidecar): the slot is free. */
  reopened(key: string, provider: string, until: number, at: number): void {
    this.opened(key, provider, until, at);
    this.probes.delete(key);
  }
  close(key: string, provider: string): void {
    this.open.delete(key);
    this.fails.delete(key);
    this.probes.delete(key);
    this.rollup.get(provider)?.delete(key);
  }
  openKeys(provider?: string): string[] {
    const out: string[] = [];
    for (const [key, e] of this.open) {
      if (provider === undefined || e.provider === provider) out.push(key);
    }
    return out;
  }
  rollupKeys(provider: string, now: number): string[] {
    const keys = this.rollup.get(provider);
    if (!keys) return [];
    for (const [k, at] of keys) if (now - at >= this.timing.rollupWindowMs) keys.delete(k);
    return [...keys.keys()];
  }
  /** Open `key` for a cooldown if the failures already added reached the threshold. */
  openIfDue(key: string, provider: string, now: number, count?: number): boolean {
    if (
      this.open.has(key) || (count ?? this.window(key, now).length) < this.timing.failureThreshold
    ) {
      return false;
    }
    this.opened(key, provider, now + this.timing.cooldownMs, now);
    return true;
  }
  acquire(key: string, now: number): boolean {
    const until = this.open.get(key)?.until;
    if (until !== undefined && until > now) return false;
    const held = this.probes.get(key);
    // A probe that never reported back (crash, lost client) frees its slot after a cooldown.
    if (held !== undefined && now - held < this.timing.cooldownMs) return false;
    this.probes.set(key, now);
    return true;
  }
}

/** The `memory` backend: this process's `BreakerState`, nothing shared. */
export function createMemoryBreakerStore(initial: BreakerTiming): BreakerStore {
  // The state reads it on every decision: a reload's retime applies from the next one.
  const timing: Mutable<BreakerTiming> = { ...initial };
  const state = new BreakerState(timing);
  return {
    openUntil: (key) => state.open.get(key)?.until ?? null,
    failures: (key, now) => state.window(key, now).length,
    rollupKeys: (provider, now) => state.rollupKeys(provider, now),
    openKeys: (provider) => state.openKeys(provider),
    recordFailure(key, provider, now) {
      const count = state.addFailure(key, now);
      return Promise.resolve(state.openIfDue(key, provider, now, count));
    },
    reopen(key, provider, now) {
      state.reopened(key, provider, now + timing.cooldownMs, now);
      return Promise.resolve();
    },
    closeKey(key, provider) {
      state.close(key, provider);
      return Promise.resolve();
    },
    tryAcquireProbe: (key, now) => Promise.resolve(state.acquire(key, now)),
    releaseProbe(key) {
      state.probes.delete(key);
      return Promise.resolve();
    },
    describe: () => ({ backend: "memory", fallback: false }),
    retime: (next) => void Object.assign(timing, next),
    close: () => Promise.resolve(),
  };
}
