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
}

export interface ResponsesStore {
  readonly backend: "memory" | "redis";
  /** False while calls would fail (Redis away or still connecting). */
  available(): boolean;
  get(id: string): Promise<StoredResponse | null>;
  /**
   * An output item of a kept response, by its own id (`msg_…`, `fc_…`): what a client's
   * `item_reference` points at (the AI SDK sends them instead of repeating earlier turns).
   */
  getItem(id: string): Promise<ResponsesItem | null>;
  put(record: StoredResponse): Promise<void>;
  /** True when the id was stored. */
  delete(id: string): Promise<boolean>;
  close(): Promise<void>;
}

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
  const entries = new Map<string, { text: string; expires: number; items: string[] }>();
  /** Output item id → the response holding it. */
  const owners = new Map<string, string>();
  let bytes = 0;
  const drop = (id: string) => {
    const e = entries.get(id);
    if (e === undefined) return false;
    entries.delete(id);
    for (const item of e.items) if (owners.get(item) === id) owners.delete(item);
    bytes -= e.text.length;
    return true;
  };
  const get = (id: string): StoredResponse | null => {
    const e = entries.get(id);
    if (e === undefined) return null;
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
    get: (id) => Promise.resolve(get(id)),
    getItem(id) {
      const owner = owners.get(id);
      const record = owner === undefined ? null : get(owner);
      return Promise.resolve(record === null ? null : findItem(record, id));
    },
    put(record) {
      const id = record.response.id;
      const text = JSON.stringify(record);
      drop(id);
      // A record larger than the whole budget is not kept (it would evict everything).
      if (text.length > opts.maxBytes) return Promise.resolve();
      for (const oldest of entries.keys()) {
        if (bytes + text.length <= opts.maxBytes) break;
        drop(oldest);
      }
      const items = itemIds(record);
      entries.set(id, { text, expires: opts.now() + opts.ttlMs, items });
      for (const item of items) owners.set(item, id);
      bytes += text.length;
      return Promise.resolve();
    },
    delete: (id) => Promise.resolve(drop(id)),
    close() {
      entries.clear();
      owners.clear();
      bytes = 0;
      return Promise.resolve();
    },
  };
}

const PREFIX = "responses:";
const ITEM_PREFIX = "responses:item:";

/** Ids of a response's own output items. */
function itemIds(record: StoredResponse): string[] {
  const out: string[] = [];
  for (const item of record.response.output) if (typeof item.id === "string") out.push(item.id);
  return out;
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
  const get = async (id: string): Promise<StoredResponse | null> => {
    const text = await state.get(PREFIX + id);
    return text === null ? null : JSON.parse(text) as StoredResponse;
  };
  return {
    backend: "redis",
    available: () => state.available(),
    get,
    async getItem(id) {
      const owner = await state.get(ITEM_PREFIX + id);
      const record = owner === null ? null : await get(owner);
      return record === null ? null : findItem(record, id);
    },
    async put(record) {
      const opts = { ttlMs };
      await state.set(PREFIX + record.response.id, JSON.stringify(record), opts);
      for (const item of itemIds(record)) {
        await state.set(ITEM_PREFIX + item, record.response.id, opts);
      }
    },
    async delete(id) {
      const record = await get(id);
      for (const item of record === null ? [] : itemIds(record)) {
        await state.del(ITEM_PREFIX + item);
      }
      return await state.del(PREFIX + id);
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
