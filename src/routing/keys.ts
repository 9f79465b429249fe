import type { ProviderKeyConfig } from "../config/mod.ts";

/**
 * Weighted random choice among the keys whose `models` allowlist admits `model`
 * (an empty allowlist admits every model). Null when none does.
 */
export function pickKey(
  keys: readonly ProviderKeyConfig[],
  model: string,
  random: () => number,
): ProviderKeyConfig | null {
  let total = 0;
  const allowed: ProviderKeyConfig[] = [];
  for (const k of keys) {
    if (k.models.length === 0 || k.models.includes(model)) {
      allowed.push(k);
      total += k.weight;
    }
  }
  if (allowed.length <= 1) return allowed[0] ?? null;
  let r = random() * total;
  for (const k of allowed) {
    r -= k.weight;
    if (r < 0) return k;
  }
  return allowed[allowed.length - 1] ?? null;
}
