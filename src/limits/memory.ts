/**
 * The in-process backend: one map of counters (fixed windows, token buckets). Decisions are
 * synchronous. Also the Redis backend's fallback when Redis is down, with scaled limits.
 * @module
 */
import type { Admission, BackendHealth, CheckState, LimitBackend, UsageRow } from "./backend.ts";
import { longestWait } from "./backend.ts";
import {
  type Check,
  type CounterState,
  current,
  fits,
  remainingOf,
  resetAt,
  retryAfterMs,
  type Rule,
  take,
} from "./policy.ts";

/** Expired counters are swept at most this often. */
const SWEEP_MS = 60_000;

export interface Entry {
  readonly rule: Rule;
  readonly scope: string;
  state: CounterState;
}

/** The counters themselves; kept across config reloads by the stage's owner. */
export class CounterMap {
  readonly entries = new Map<string, Entry>();
  #swept = 0;

  get(check: Check, now: number): CounterState {
    const e = this.entries.get(check.key);
    return current(check.rule, e?.state, now);
  }

  set(check: Check, state: CounterState, now: number): void {
    const e = this.entries.get(check.key);
    if (e !== undefined && e.rule === check.rule) e.state = state;
    else this.entries.set(check.key, { rule: check.rule, scope: check.scope, state });
    if (now - this.#swept > SWEEP_MS) this.sweep(now);
  }

  /**
   * Take `cost` from the counter whose state as of `now` is `s` (from `get`): a window still
   * stored is changed in place (no new state per request), anything else is stored anew.
   */
  take(check: Check, rule: Rule, s: CounterState, cost: number, now: number): CounterState {
    const e = this.entries.get(check.key);
    if (e !== undefined && e.state === s && e.rule === check.rule && rule.algorithm === "window") {
      s.level = Math.max(0, s.level + cost);
      if (now - this.#swept > SWEEP_MS) this.sweep(now);
      return s;
    }
    const after = take(rule, s, cost);
    this.set(check, after, now);
    return after;
  }

  /** Drop counters that are whole again (a new window, a full bucket). */
  sweep(now: number): void {
    this.#swept = now;
    for (const [key, e] of this.entries) {
      if (resetAt(e.rule, e.state) <= now) this.entries.delete(key);
    }
  }

  rows(
    now: number,
    limitOf: (rule: Rule) => number = (r) => r.limit,
    ruleOf: (id: string) => Rule | undefined = () => undefined,
  ): UsageRow[] {
    const rows: UsageRow[] = [];
    for (const e of this.entries.values()) {
      // The rule in force (a reload may have changed it since the counter was last used).
      const rule = ruleOf(e.rule.id) ?? e.rule;
      const s = current(rule, e.state, now);
      const limit = limitOf(rule);
      const used = rule.algorithm === "window" ? s.level : Math.max(0, limit - s.level);
      rows.push({
        rule: rule.id,
        scope: e.scope,
        metric: rule.metric,
        window: rule.windowName,
        limit,
        used: Math.round(used),
        remaining: Math.max(0, Math.floor(limit - used)),
        reset: Math.ceil(resetAt(rule, s) / 1000),
      });
    }
    return rows;
  }
}

/** A counter's identity: the rule's id and the scope value. */
export function keyOf(check: Check): string {
  return check.key;
}

/** Decide over `counters` with each rule's limit scaled by `scale` (fallback shares). */
export function admitLocal(
  counters: CounterMap,
  checks: readonly Check[],
  costs: readonly number[],
  now: number,
  scale = 1,
): Admission {
  // Decide first (nothing is taken unless every check fits), then take in place.
  const cur: CounterState[] = [];
  let refused: CheckState[] | null = null;
  for (let i = 0; i < checks.length; i++) {
    const check = checks[i] as Check;
    const rule = scale === 1 ? check.rule : scaled(check.rule, scale);
    const cost = costs[i] as number;
    const s = current(rule, counters.get(check, now), now);
    cur.push(s);
    if (!fits(rule, s, cost)) (refused ??= []).push(stateOf(check, rule, s, cost, now));
  }
  const states: CheckState[] = [];
  if (refused !== null) {
    for (let i = 0; i < checks.length; i++) {
      const check = checks[i] as Check;
      const rule = scale === 1 ? check.rule : scaled(check.rule, scale);
      const s = cur[i] as CounterState;
      const cost = costs[i] as number;
      if (fits(rule, s, cost)) states.push(stateOf(check, rule, take(rule, s, cost), cost, now));
    }
    return { ok: false, states, blocked: longestWait(refused) as CheckState };
  }
  for (let i = 0; i < checks.length; i++) {
    const check = checks[i] as Check;
    const rule = scale === 1 ? check.rule : scaled(check.rule, scale);
    const s = cur[i] as CounterState;
    const cost = costs[i] as number;
    const after = counters.take(check, rule, s, cost, now);
    states.push(stateOf(check, rule, after, cost, now));
  }
  return { ok: true, states };
}

/** The rule with its limit scaled (at least 1). */
export function scaled(rule: Rule, scale: number): Rule {
  return { ...rule, limit: Math.max(1, Math.floor(rule.limit * scale)) };
}

export function stateOf(
  check: Check,
  rule: Rule,
  s: CounterState,
  cost: number,
  now: number,
): CheckState {
  return {
    check,
    cost,
    limit: rule.limit,
    remaining: remainingOf(rule, s),
    resetAt: resetAt(rule, s),
    retryAfterMs: retryAfterMs(rule, s, cost, now),
    at: s.at,
  };
}

/** In-process counters; `scale` < 1 admits that share of each limit (Redis still loading). */
export function createMemoryBackend(
  counters: CounterMap = new CounterMap(),
  scale = 1,
): LimitBackend {
  return {
    admit: (checks, costs, now) => admitLocal(counters, checks, costs, now, scale),
    adjust(state, delta, now) {
      const s = counters.get(state.check, now);
      // Only while the window it was taken in lasts (a bucket: always).
      if (state.check.rule.algorithm === "window" && s.at !== state.at) return;
      counters.take(state.check, state.check.rule, s, delta, now);
    },
    usage: (now, ruleOf) =>
      counters.rows(now, (r) => scale === 1 ? r.limit : scaled(r, scale).limit, ruleOf),
    health: (): BackendHealth => ({ backend: "memory", mode: "local" }),
    close: () => Promise.resolve(),
  };
}
