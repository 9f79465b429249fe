/**
 * What routing learns from traffic: round-robin positions, latency EWMAs and key
 * cooldowns. One instance lives for the whole process (it survives config reloads, so a
 * key refused a second ago stays cooled after an unrelated edit). Local to this sidecar.
 */
export interface KeyCooldown {
  readonly until: number;
  readonly reason: "auth" | "rate_limit";
  readonly status: number;
}

export interface RoutingState {
  /** Next round-robin position for a route, starting at 0. */
  nextTurn(route: string): number;
  /** Feed a time-to-first-byte (or a penalty for a failure) into the EWMA. */
  observeLatency(target: string, ms: number): void;
  /** The EWMA in ms, or null before the first observation. */
  latency(target: string): number | null;
  coolKey(keyId: string, cooldown: KeyCooldown): void;
  /** The cooldown in force for a key at `now`, if any. */
  keyCooldown(keyId: string, now: number): KeyCooldown | null;
}

/** Weight of the newest observation: ~0.3 follows a recovering provider within a few calls. */
const EWMA_ALPHA = 0.3;

export function createRoutingState(): RoutingState {
  const turns = new Map<string, number>();
  const ewma = new Map<string, number>();
  const cooldowns = new Map<string, KeyCooldown>();
  return {
    nextTurn(route) {
      const turn = turns.get(route) ?? 0;
      turns.set(route, (turn + 1) % Number.MAX_SAFE_INTEGER);
      return turn;
    },
    observeLatency(target, ms) {
      const prev = ewma.get(target);
      ewma.set(target, prev === undefined ? ms : prev + EWMA_ALPHA * (ms - prev));
    },
    latency: (target) => ewma.get(target) ?? null,
    coolKey(keyId, cooldown) {
      cooldowns.set(keyId, cooldown);
    },
    keyCooldown(keyId, now) {
      const c = cooldowns.get(keyId);
      if (!c) return null;
      if (c.until > now) return c;
      cooldowns.delete(keyId);
      return null;
    },
  };
}
