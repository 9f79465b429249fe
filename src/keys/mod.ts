/**
 * Application keys (`pf_...`): created through the admin API (or listed in
 * `app_keys.keys`), stored as SHA-256 hashes, checked by a `pre_http` stage, with model
 * allowlists and USD budgets per UTC day and month. Where they live: the SQLite state file
 * (`state.path`, the default), memory only (`app_keys.persistence.enabled: false`), or Redis
 * (`state.backend: redis`, shared by a fleet). The store outlives config reloads: every
 * generation with the same storage settings shares one, closed when the last one retires.
 * @module
 */
import type { Config } from "../config/mod.ts";
import { openRedisLink } from "../state/redis_pool.ts";
import { openStateDb } from "../state/sqlite.ts";
import { StateUnavailable } from "../state/store.ts";
import type { Logger } from "../telemetry/mod.ts";
import { createLocalBackend } from "./local.ts";
import { createRedisBackend, DEFAULT_KEYS_PREFIX } from "./redis.ts";
import { slottedPrefix } from "../state/redis_url.ts";
import { createKeyService, type KeyService } from "./service.ts";
import { type AppKeyStage, createAppKeyStage } from "./stage.ts";
import type { KeyBackend } from "./types.ts";
import { appKeysEnabled, keyStorage } from "./storage.ts";

export type { AppKeyStage } from "./stage.ts";
export type { KeyService, KeyUsage } from "./service.ts";
export type { KeyLimits, KeyRecord } from "./types.ts";
export { NO_KEY_LIMITS } from "./types.ts";
export { parseCreate, parsePatch } from "./input.ts";
export { appKeysEnabled, keyStorage } from "./storage.ts";
export { allowedTargets, appKeyGate } from "./gate.ts";
export { dropUserAppKeys } from "./key.ts";

interface Held {
  readonly identity: string;
  readonly backend: KeyBackend;
  users: number;
  /** Each key's spend below a micro-dollar, carried to its next request across reloads. */
  readonly carry: Map<string, number>;
}

/** The stores of one owner (the daemon, or one in-process gateway), by storage identity. */
const owners = new WeakMap<object, Map<string, Held>>();

/**
 * The app-key service and stage of one config generation, or null when app keys are off.
 * `owner` is what outlives generations (the runtime's deps): its generations share a store.
 * Throws a one-line error when the state file cannot be opened.
 */
export function buildAppKeys(
  config: Config,
  owner: object,
  logger: Logger,
  now: () => number,
): { service: KeyService; stage: AppKeyStage } | null {
  if (!appKeysEnabled(config)) return null;
  const storage = keyStorage(config);
  const identity = JSON.stringify(storage);
  let held = owners.get(owner);
  if (held === undefined) owners.set(owner, held = new Map());
  let entry = held.get(identity);
  if (entry === undefined) {
    if (storage.kind === "sqlite" && storage.beside !== undefined) {
      logger.warn(
        `app_keys.persistence.path: "${storage.beside}" is not a SQLite file (Butter's bbolt store?): it is left as it is, and keys are kept in "${storage.path}"; keys minted by Butter are not read from it`,
      );
    }
    // Redis away: the link logs the outage; one line a minute says what it means here.
    let quietUntil = 0;
    const onError = (err: unknown) => {
      if (!(err instanceof StateUnavailable)) {
        logger.warn("app key store write failed", { error: err });
        return;
      }
      const t = Date.now();
      if (t < quietUntil) return;
      quietUntil = t + 60_000;
      logger.warn("app key usage is held while its store is unavailable, written when it is back", {
        error: err,
      });
    };
    const backend = storage.kind === "redis"
      ? createRedisBackend({
        link: openRedisLink({ url: storage.url, name: "keys", logger }),
        prefix: slottedPrefix(storage.url, DEFAULT_KEYS_PREFIX),
        now,
        onError,
      })
      : createLocalBackend(
        storage.kind === "sqlite"
          ? { db: openStateDb(storage.path), flushMs: storage.flushMs, onError }
          : {},
      );
    entry = { identity, backend, users: 0, carry: new Map() };
    held.set(identity, entry);
  }
  entry.users++;
  const mine = entry;
  const map = held;
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    if (--mine.users > 0) return;
    map.delete(mine.identity);
    await mine.backend.close();
  };
  const service = createKeyService({
    config: config.app_keys,
    backend: entry.backend,
    now,
    providers: Object.keys(config.providers),
  });
  return { service, stage: createAppKeyStage(service, now, release, entry.carry) };
}
