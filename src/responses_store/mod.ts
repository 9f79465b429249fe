/**
 * Responses kept for `previous_response_id`, `GET` and `DELETE /v1/responses/{id}`: the
 * answers produced through translation (a native provider keeps its own). One record holds
 * the whole conversation up to that response, so continuing it is one lookup.
 * Two backends: memory (LRU bounded by bytes, per sidecar) and the state store (Redis, with
 * a TTL, shared by the fleet). Built once at start; it outlives config reloads.
 * @module
 */
import type { Config } from "../config/mod.ts";
import type { ResponsesItem, ResponsesObject } from "../schema/responses.ts";
import type { Logger } from "../telemetry/mod.ts";
import type { StateStore } from "../state/store.ts";

/** A stored response and the conversation that led to it (input and output items). */
export interface StoredResponse {
  readonly response: ResponsesObject;
  /** Every item up to and including this response's output, oldest first. */
  readonly items: readonly ResponsesItem[];
  /**
   * The id of the app key that created it: only that key reads, continues or deletes it
   * (OpenAI keeps a response inside its project). Absent when no app key was presented.
   */
  readonly owner?: string;
}

/** Who asks: an app key's id, or null for a request without one. */
export type Owner = string | null;

export interface ResponsesStore {
  readonly backend: "memory" | "redis";
  /** False while calls would fail (Redis away or still connecting). */
  available(): boolean;
  /** The record, when `owner` created it (else null, as if it were not kept). */
  get(id: string, owner: Owner): Promise<StoredResponse | null>;
  /**
   * An output item of a kept response of `owner`'s, by its own id (`msg_...`, `fc_...`): what a
   * client's `item_reference` points at (the AI SDK sends them instead of repeating turns).
   */
  getItem(id: string, owner: Owner): Promise<ResponsesItem | null>;
  put(record: StoredResponse): Promise<void>;
  /** True when the id was stored by `owner` (and is now gone). */
  delete(id: string, owner: Owner): Promise<boolean>;
  /**
   * A native provider's response (it keeps its own) created through this gateway for the app
   * key `owner`: only that key may read, continue or delete it with the gateway's key.
   */
  claim(id: string, owner: string): Promise<void>;
  /**
   * The app key that created response `id` through the gateway (a native one it claimed, or
   * one kept here); null when none did.
   */
  claimant(id: string): Promise<string | null>;
  close(): Promise<void>;
}

/** Native response ids remembered per sidecar (memory backend); the oldest go first. */
const MAX_CLAIMS = 65_536;

export interface MemoryResponsesOptions {
  /** Total JSON bytes kept; the least recently used records go first. */
  readonly maxBytes: number;
  readonly ttlMs: number;
  /** Wall clock, ms. */
  readonly now: () => number;
}

/**
 * Process-local LRU: records are kept as their JSON text (immutable, and their size is
 * what the bound counts), most recently used last in the Map's order.
 */
export function createMemoryResponsesStore(opts: MemoryResponsesOptions): ResponsesStore {
  const entries = new Map<
    string,
    { text: string; expires: number; items: string[]; owner: Owner }
  >();
  /** Output item id -> the response holding it. */
  const owners = new Map<string, string>();
  /** Native response id -> the app key that created it, and until when that is remembered. */
  const claims = new Map<string, { owner: string; expires: number }>();
  let bytes = 0;
  const drop = (id: string) => {
    const e = entries.get(id);
    if (e === undefined) return false;
    entries.delete(id);
    for (const item of e.items) if (owners.get(item) === id) owners.delete(item);
    bytes -= e.text.length;
    return true;
  };
  const get = (id: string, owner: Owner): StoredResponse | null => {
    const e = entries.get(id);
    if (e === undefined || e.owner !== owner) return null;
    if (e.expires <= opts.now()) {
      drop(id);
      return null;
    }
    entries.delete(id);
    entries.set(id, e);
    return JSON.parse(e.text) as StoredResponse;
  };
  return {
    backend: "memory",
    available: () => true,
    get: (id, owner) => Promise.resolve(get(id, owner)),
    getItem(id, owner) {
      const holder = owners.get(id);
      const record = holder === undefined ? null : get(holder, owner);
      return Promise.resolve(record === null ? null : findItem(record, id));
    },
    put(record) {
      const id = record.response.id;
      const text = JSON.stringify(record);
      drop(id);
      // A record larger than the whole budget is not kept (it would evict everything): said,
      // so the log tells why a later turn will not find it.
      if (text.length > opts.maxBytes) {
        return Promise.reject(
          new RangeError(
            `${text.length} bytes is larger than responses.store.max_bytes (${opts.maxBytes})`,
          ),
        );
      }
      for (const oldest of entries.keys()) {
        if (bytes + text.length <= opts.maxBytes) break;
        drop(oldest);
      }
      const items = itemIds(record);
      entries.set(id, { text, expires: opts.now() + opts.ttlMs, items, owner: ownerOf(record) });
      for (const item of items) owners.set(item, id);
      bytes += text.length;
      return Promise.resolve();
    },
    delete: (id, owner) => Promise.resolve(entries.get(id)?.owner === owner && drop(id)),
    claim(id, owner) {
      claims.delete(id);
      if (claims.size >= MAX_CLAIMS) claims.delete(claims.keys().next().value as string);
      claims.set(id, { owner, expires: opts.now() + opts.ttlMs });
      return Promise.resolve();
    },
    claimant(id) {
      // A response kept here belongs to its creator as a claimed one does.
      const kept = entries.get(id);
      if (kept !== undefined && kept.expires > opts.now()) return Promise.resolve(kept.owner);
      const c = claims.get(id);
      if (c !== undefined && c.expires <= opts.now()) claims.delete(id);
      return Promise.resolve(c === undefined || c.expires <= opts.now() ? null : c.owner);
    },
    close() {
      entries.clear();
      owners.clear();
      claims.clear();
      bytes = 0;
      return Promise.resolve();
    },
  };
}

const PREFIX = "responses:";
const ITEM_PREFIX = "responses:item:";
const CLAIM_PREFIX = "responses:native:";

/** Ids of a response's own output items. */
function itemIds(record: StoredResponse): string[] {
  const out: string[] = [];
  for (const item of record.response.output) if (typeof item.id === "string") out.push(item.id);
  return out;
}

function ownerOf(record: StoredResponse): Owner {
  return record.owner ?? null;
}

function findItem(record: StoredResponse, id: string): ResponsesItem | null {
  return record.response.output.find((item) => item.id === id) ?? null;
}

/** On a state store (Redis): one key per response, expiring after `ttlMs`. */
export function createStateResponsesStore(
  state: StateStore,
  ttlMs: number,
  close: () => Promise<void> = () => Promise.resolve(),
): ResponsesStore {
  const get = async (id: string, owner: Owner): Promise<StoredResponse | null> => {
    const text = await state.get(PREFIX + id);
    const record = text === null ? null : JSON.parse(text) as StoredResponse;
    return record !== null && ownerOf(record) === owner ? record : null;
  };
  return {
    backend: "redis",
    available: () => state.available(),
    get,
    async getItem(id, owner) {
      const holder = await state.get(ITEM_PREFIX + id);
      const record = holder === null ? null : await get(holder, owner);
      return record === null ? null : findItem(record, id);
    },
    async put(record) {
      const opts = { ttlMs };
      await state.set(PREFIX + record.response.id, JSON.stringify(record), opts);
      for (const item of itemIds(record)) {
        await state.set(ITEM_PREFIX + item, record.response.id, opts);
      }
    },
    async delete(id, owner) {
      const record = await get(id, owner);
      if (record === null) return false;
      for (const item of itemIds(record)) await state.del(ITEM_PREFIX + item);
      return await state.del(PREFIX + id);
    },
    async claim(id, owner) {
      await state.set(CLAIM_PREFIX + id, owner, { ttlMs });
    },
    async claimant(id) {
      const claimed = await state.get(CLAIM_PREFIX + id);
      if (claimed !== null) return claimed;
      // A response kept here belongs to its creator as a claimed one does.
      const text = await state.get(PREFIX + id);
      return text === null ? null : ownerOf(JSON.parse(text) as StoredResponse);
    },
    close,
  };
}

/**
 * The store `config` asks for: on Redis (`state.backend: redis`, `state.redis.url`) keys with
 * `responses.store.ttl`, else the memory LRU bounded by `responses.store.max_bytes`. The
 * Redis client is imported only when Redis is configured.
 */
export async function createResponsesStore(
  config: Config,
  logger: Logger,
  now: () => number = Date.now,
): Promise<ResponsesStore> {
  const opts = config.responses.store;
  if (config.state.backend !== "redis") {
    return createMemoryResponsesStore({ maxBytes: opts.max_bytes, ttlMs: opts.ttl, now });
  }
  const { openRedisLink } = await import("../state/redis_pool.ts");
  const { createRedisStateStore } = await import("../state/redis_store.ts");
  const link = openRedisLink({ url: config.state.redis.url, name: "responses", logger });
  const state = createRedisStateStore({ link });
  return createStateResponsesStore(state, opts.ttl, async () => {
    await state.close();
    await link.close();
  });
}
