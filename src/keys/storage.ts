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
  | {
    readonly kind: "sqlite";
    readonly path: string;
    readonly flushMs: number;
    /** `app_keys.persistence.path` holds another store (Butter's bbolt file), kept as is. */
    readonly beside?: string;
  }
  | { readonly kind: "redis"; readonly url: string };

/** What a SQLite database file starts with. */
const SQLITE_MAGIC = "SQLite format 3\0";
/** Where keys go when `app_keys.persistence.path` is not a SQLite file: beside it. */
const BESIDE_SUFFIX = ".pilotfish.sqlite";

/**
 * A file that exists, is not empty and is not a SQLite database: Butter's
 * `app_keys.persistence.path` is a bbolt file, which Pilotfish neither reads nor overwrites.
 */
function foreignFile(path: string): boolean {
  let file: Deno.FsFile | undefined;
  try {
    file = Deno.openSync(path, { read: true });
    const head = new Uint8Array(SQLITE_MAGIC.length);
    const n = file.readSync(head) ?? 0;
    return n > 0 && new TextDecoder().decode(head.subarray(0, n)) !== SQLITE_MAGIC;
  } catch {
    return false; // missing or unreadable: opening it says why
  } finally {
    file?.close();
  }
}

/** Where keys are stored for this config (same value: the same store). */
export function keyStorage(config: Config): KeyStorage {
  if (config.state.backend === "redis") return { kind: "redis", url: config.state.redis.url };
  const p = config.app_keys.persistence;
  if (!p.enabled) return { kind: "memory" };
  if (p.path !== undefined && foreignFile(p.path)) {
    return {
      kind: "sqlite",
      path: p.path + BESIDE_SUFFIX,
      flushMs: p.flush_interval,
      beside: p.path,
    };
  }
  return {
    kind: "sqlite",
    path: p.path ?? (config.state.path || DEFAULT_KEYS_FILE),
    flushMs: p.flush_interval,
  };
}
