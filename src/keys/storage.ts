/**
 * Whether app keys are on and where they are stored: read by the runtime and by the
 * permission planner (so this file imports nothing heavy).
 * @module
 */
import type { Config } from "../config/mod.ts";

/** The key store's file when neither `app_keys.persistence.path` nor `state.path` is set. */
export const DEFAULT_KEYS_FILE = "pilotfish-state.db";

/** Whether the config turns app keys on (`enabled`, or a block that asks for keys). */
export function appKeysEnabled(config: Config): boolean {
  const k = config.app_keys;
  return k.enabled ?? (k.require_key || k.keys.length > 0);
}

export type KeyStorage =
  | { readonly kind: "memory" }
  | { readonly kind: "sqlite"; readonly path: string; readonly flushMs: number }
  | { readonly kind: "redis"; readonly url: string };

/** Where keys are stored for this config (same value: the same store). */
export function keyStorage(config: Config): KeyStorage {
  if (config.state.backend === "redis") return { kind: "redis", url: config.state.redis.url };
  const p = config.app_keys.persistence;
  if (!p.enabled) return { kind: "memory" };
  return {
    kind: "sqlite",
    path: p.path ?? (config.state.path || DEFAULT_KEYS_FILE),
    flushMs: p.flush_interval,
  };
}
