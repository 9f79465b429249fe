import type { ReachabilityRecorder } from "../providers/execute.ts";

/**
 * What routing learns from traffic: round-robin positions, latency EWMAs, key cooldowns
 * and which upstreams could not be connected to. One instance lives for the whole process
 * (it survives config reloads, so a key refused a second ago stays cooled after an
 * unrelated edit). Local to this sidecar.
 */
export interface KeyCooldown {
  readonly until: number;
  readonly reason: "auth" | "rate_limit";
  readonly status: number;
}

/** A provider whose last call failed to connect (refused, DNS, TLS). */
export interface Unreachable {
  /** Origin of the URL that failed: a reload that moves the provider elsewhere clears it. */
  readonly origin: string;
  readonly reason: string;
  /** When the first of the failures in a row happened (ms). */
  readonly since: number;
  /** When the latest one happened (ms). */
  readonly at: number;
  /** Connect failures in a row. */
  readonly failures: number;
}

export interface RoutingState extends ReachabilityRecorder {
  /** Next round-robin position for a route, starting at 0. */
  nextTurn(route: string): number;
  /** Feed a time-to-first-byte (or a penalty for a failure) into the EWMA. */
  observeLatency(target: string, ms: number): void;
  /** The EWMA in ms, or null before the first observation. */
  latency(target: string): number | null;
  coolKey(keyId: string, cooldown: KeyCooldown): void;
  /** The cooldown in force for a key at `now`, if any. */
  keyCooldown(keyId: string, now: number): KeyCooldown | null;
  /**
   * A config generation's keys (id -> value). A cooldown belongs to the key that earned it,
   * not to its id: a key rotated in place starts with none, a key moved in the list (its id
   * `openai#1` now `openai#2`) keeps its own, and an unchanged key keeps it across reloads.
   */
  keysAre(keys: ReadonlyMap<string, string>): void;
  /** Set while the provider's last call failed to connect, until a call to it connects. */
  unreachableSince(provider: string): Unreachable | null;
}

/** Weight of the newest observation: ~0.3 follows a recovering provider within a few calls. */
const EWMA_ALPHA = 0.3;

export function createRoutingState(now: () => number = Date.now): RoutingState {
  const turns = new Map<string, number>();
  const ewma = new Map<string, number>();
  /** By key value (an id not configured yet: by id). */
  const cooldowns = new Map<string, KeyCooldown>();
  /** Each key id's value in the generation configured last. */
  let values: ReadonlyMap<string, string> = new Map();
  const valueOf = (keyId: string) => values.get(keyId) ?? keyId;
  const unreachable = new Map<string, Unreachable>();
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
      cooldowns.set(valueOf(keyId), cooldown);
    },
    keyCooldown(keyId, now) {
      if (cooldowns.size === 0) return null;
      const key = valueOf(keyId);
      const c = cooldowns.get(key);
      if (!c) return null;
      if (c.until > now) return c;
      cooldowns.delete(key);
      return null;
    },
    keysAre(keys) {
      values = keys;
      if (cooldowns.size === 0) return;
      // A key no longer configured has nothing to rest from.
      const configured = new Set(keys.values());
      for (const key of cooldowns.keys()) if (!configured.has(key)) cooldowns.delete(key);
    },
    reached(provider) {
      // The success path: one size check while every upstream is fine.
      if (unreachable.size !== 0) unreachable.delete(provider);
    },
    unreachable(provider, origin, reason) {
      const at = now();
      const prev = unreachable.get(provider);
      const streak = prev !== undefined && prev.origin === origin;
      unreachable.set(provider, {
        origin,
        reason,
        since: streak ? prev.since : at,
        at,
        failures: streak ? prev.failures + 1 : 1,
      });
    },
    unreachableSince: (provider) => unreachable.get(provider) ?? null,
  };
}
