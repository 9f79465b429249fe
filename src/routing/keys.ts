import type { ProviderKeyConfig } from "../config/mod.ts";
import type { RoutingState } from "./state.ts";

/**
 * Weighted random choice among the keys whose `models` allowlist admits `model` (an empty
 * allowlist admits every model), skipping keys in cooldown and any in `exclude` (keys
 * already refused during this request). When every admitted key rests, the one that comes
 * back soonest is used rather than failing the request outright. Null when none admits.
 */
export function pickKey(
  keys: readonly ProviderKeyConfig[],
  model: string,
  random: () => number,
  state?: RoutingState,
  now = 0,
  exclude: ReadonlySet<string> = new Set(),
): ProviderKeyConfig | null {
  // The common sidecar: one key for every model, not resting. No allocation on this path.
  const only = keys.length === 1 ? keys[0] as ProviderKeyConfig : null;
  if (
    only && only.models.length === 0 && !exclude.has(only.id) &&
    (!state || state.keyCooldown(only.id, now) === null)
  ) {
    return only;
  }
  // A request that names no model (a passthrough listing, a body that is not JSON) takes a key
  // kept for no model in particular, as Butter's does; only a provider whose keys are all
  // kept for models lends one of those.
  let admitted = keys.filter((k) =>
    (k.models.length === 0 || k.models.includes(model)) && !exclude.has(k.id)
  );
  if (admitted.length === 0 && model === "") admitted = keys.filter((k) => !exclude.has(k.id));
  if (admitted.length === 0) return null;
  const ready = state ? admitted.filter((k) => state.keyCooldown(k.id, now) === null) : admitted;
  if (ready.length === 0) {
    return admitted.reduce((a, b) =>
      (state!.keyCooldown(a.id, now)?.until ?? 0) <= (state!.keyCooldown(b.id, now)?.until ?? 0)
        ? a
        : b
    );
  }
  if (ready.length === 1) return ready[0] as ProviderKeyConfig;
  let r = random() * ready.reduce((sum, k) => sum + k.weight, 0);
  for (const k of ready) {
    r -= k.weight;
    if (r < 0) return k;
  }
  return ready[ready.length - 1] as ProviderKeyConfig;
}

/** True when a key that admits `model` is out of cooldown and not excluded. */
export function hasReadyKey(
  keys: readonly ProviderKeyConfig[],
  model: string,
  state: RoutingState,
  now: number,
  exclude: ReadonlySet<string> = new Set(),
): boolean {
  return keys.some((k) =>
    (k.models.length === 0 || k.models.includes(model)) && !exclude.has(k.id) &&
    state.keyCooldown(k.id, now) === null
  );
}
