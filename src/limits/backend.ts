/**
 * What a limiter backend does: admit a request against several counters at once (all or
 * nothing), reconcile a counter after the fact, and report usage. The memory backend
 * answers synchronously; the Redis one too in the common case (leased permits), and with a
 * promise only when it must borrow.
 * @module
 */
import type { Check, Rule } from "./policy.ts";

/** One counter after a decision: what the headers say. */
export interface CheckState {
  readonly check: Check;
  readonly cost: number;
  readonly limit: number;
  readonly remaining: number;
  /** Wall ms when the counter is whole again. */
  readonly resetAt: number;
  /** Wall ms to wait before `cost` fits (refused checks). */
  readonly retryAfterMs: number;
  /** The window (bucket: the time) the cost was taken in; reconciliation uses it. */
  readonly at: number;
}

export interface Admission {
  readonly ok: boolean;
  readonly states: readonly CheckState[];
  /** The check that refused (the one to wait longest for, when several do). */
  readonly blocked?: CheckState;
  /** Refused because the shared store is unreachable and the limit is `fail_mode: closed`. */
  readonly unavailable?: boolean;
}

/** Current usage of one counter, for `/health` and the control object. */
export interface UsageRow {
  readonly rule: string;
  readonly scope: string;
  readonly metric: string;
  readonly window: string;
  readonly limit: number;
  readonly used: number;
  readonly remaining: number;
  readonly reset: number;
}

export interface BackendHealth {
  readonly backend: "memory" | "redis";
  /** Redis: `shared` (connected) or `fallback` (each sidecar alone on its share). */
  readonly mode: "local" | "shared" | "fallback";
  readonly fleet_size?: number;
  readonly fallback_share?: number;
  readonly notice?: string;
}

export interface LimitBackend {
  admit(
    checks: readonly Check[],
    costs: readonly number[],
    now: number,
  ): Admission | Promise<Admission>;
  /** `delta` more units (negative: fewer) against the window the cost was taken in. */
  adjust(state: CheckState, delta: number, now: number): void;
  /**
   * Counters as of `now`, each under the rule `current` gives for its id (the generation in
   * force: a reload may have changed a limit since the counter was last used).
   */
  usage(now: number, current?: (ruleId: string) => Rule | undefined): UsageRow[];
  /**
   * Bring what `usage` reports up to date: a fleet backend asks its store for the windows'
   * totals (the others' returned permits included). Bounded in time; never throws.
   */
  refresh?(): Promise<void>;
  health(): BackendHealth;
  close(): Promise<void>;
}

/** The tightest of the admitted states: the one with the least left (ties: soonest reset). */
export function tightest(states: readonly CheckState[]): CheckState | undefined {
  let best: CheckState | undefined;
  for (const s of states) {
    if (
      best === undefined || s.remaining / s.limit < best.remaining / best.limit ||
      (s.remaining / s.limit === best.remaining / best.limit && s.resetAt < best.resetAt)
    ) best = s;
  }
  return best;
}

/** Of several refusals, the one to wait longest for: the request passes only after all. */
export function longestWait(states: readonly CheckState[]): CheckState | undefined {
  let best: CheckState | undefined;
  for (const s of states) if (best === undefined || s.retryAfterMs > best.retryAfterMs) best = s;
  return best;
}
