import type { ModelRouteConfig } from "../config/mod.ts";
import type { Target } from "./resolve.ts";
import type { RoutingState } from "./state.ts";

/** Share of least-latency requests that try a random target first, so a recovered one is seen. */
export const EXPLORATION = 0.1;

export const targetKey = (t: Target): string => `${t.provider}:${t.model}`;

/**
 * Order a route's targets for one request. Pure given `state` and `random`:
 * - priority: as configured;
 * - round-robin: rotated one step per request;
 * - weighted: a weighted random permutation (first pick by weight, then the rest likewise);
 * - least-latency: lowest latency EWMA first, never-measured targets before measured ones,
 *   and with probability EXPLORATION a random target first.
 * `available` (the breaker, when present) moves unavailable targets to the back, never
 * dropping them: a fully open route still gets its single chance.
 */
export function orderTargets(
  targets: readonly Target[],
  route: Pick<ModelRouteConfig, "strategy" | "weights"> | undefined,
  routeKey: string,
  state: RoutingState,
  random: () => number,
  available: (t: Target) => boolean = () => true,
): Target[] {
  let ordered: Target[];
  const strategy = route?.strategy ?? "priority";
  if (targets.length <= 1 || strategy === "priority") {
    ordered = [...targets];
  } else if (strategy === "round-robin") {
    const turn = state.nextTurn(routeKey) % targets.length;
    ordered = [...targets.slice(turn), ...targets.slice(0, turn)];
  } else if (strategy === "weighted") {
    ordered = weightedPermutation(targets, route?.weights, random);
  } else {
    ordered = byLatency(targets, state);
    if (random() < EXPLORATION) {
      const i = Math.floor(random() * ordered.length);
      ordered.unshift(...ordered.splice(i, 1));
    }
  }
  const up = ordered.filter(available);
  return up.length === ordered.length ? ordered : [...up, ...ordered.filter((t) => !available(t))];
}

function weightedPermutation(
  targets: readonly Target[],
  weights: readonly number[] | undefined,
  random: () => number,
): Target[] {
  const pool = targets.map((t, i) => ({ t, w: weights?.[i] ?? 1 }));
  const out: Target[] = [];
  while (pool.length > 0) {
    let r = random() * pool.reduce((sum, p) => sum + p.w, 0);
    let i = 0;
    for (; i < pool.length - 1; i++) {
      r -= (pool[i] as { w: number }).w;
      if (r < 0) break;
    }
    out.push((pool.splice(i, 1)[0] as { t: Target }).t);
  }
  return out;
}

function byLatency(targets: readonly Target[], state: RoutingState): Target[] {
  const scored = targets.map((t, i) => ({ t, i, ms: state.latency(targetKey(t)) }));
  scored.sort((a, b) => {
    if (a.ms === null || b.ms === null) return a.ms === b.ms ? a.i - b.i : a.ms === null ? -1 : 1;
    return a.ms - b.ms || a.i - b.i;
  });
  return scored.map((s) => s.t);
}
