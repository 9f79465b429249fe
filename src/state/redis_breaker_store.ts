/**
 * The `redis` backend of the circuit breaker: a fleet of sidecars shares one view of
 * provider health, yet the request's closed path never waits on Redis.
 *
 * - Reads (`openUntil`, `failures`, `rollupKeys`) come from a local view in this process.
 * - Transitions are atomic Lua scripts in Redis; each one publishes an event on
 *   `${prefix}events`, and every sidecar applies those events to its view (push, no polling).
 *   On every (re)connection the view is rebuilt from Redis (registry sets, never SCAN).
 * - When Redis is unreachable the view carries on alone with the memory backend's
 *   semantics, and what changed meanwhile is written back when Redis returns.
 * - The connection itself (heartbeat, command deadline, reconnect with backoff, EVALSHA with
 *   EVAL fallback, resubscribe) is a `RedisLink`; the resync is its `onConnect` hook.
 *
 * Key layout (`P` = prefix, default `{pilotfish:cb}:`; `<key>` = `<provider>:<model>`). The
 * prefix is one hash tag, so on a Redis Cluster every key lives in one slot and each script
 * (which reads the registries and the keys they name) touches that slot only. A breaker's
 * traffic is transitions, not requests: one slot carries it.
 * - `P fail:<key>`         ZSET of failure timestamps; TTL max(2 x cooldown, window).
 * - `P open:<key>`         open-until (ms epoch); PX TTL 2 x cooldown (open, then half-open).
 * - `P probe:<key>`        the probe slot, `<taken-at>|<owner>`, SET NX-style; PX TTL cooldown.
 * - `P closed:<key>`       when a probe last closed it (tombstone); PX TTL 2 x cooldown.
 * - `P rollup:<provider>`  ZSET member = key, score = when it (re)opened; TTL rollup window.
 * - `P open_keys`          HASH key -> provider of every `open:` entry (the resync registry).
 * - `P rollup_providers`   SET of providers with a `rollup:` ZSET (the resync registry).
 * - `P epoch`              id of the dataset, to notice a Redis that came back empty.
 * - `P events`             pub/sub channel of transitions (JSON).
 * @module
 */
import {
  BreakerState,
  type BreakerStore,
  type BreakerTiming,
  type Mutable,
} from "../breaker/store.ts";
import type { Logger } from "../telemetry/mod.ts";
import { type LuaScript, luaScript, type RedisCommands } from "./redis_link.ts";
import { openRedisLink } from "./redis_pool.ts";

export interface RedisBreakerStoreOptions {
  /** `redis[s]://[[user][:password]@]host[:port][/db]`. */
  url: string;
  /** Overrides the URL's password (llm-proxy's `redis.password`); empty means none. */
  password?: string;
  /** Overrides the URL's database (llm-proxy's `redis.db`). */
  db?: number;
  /** Namespace of every key and of the events channel. */
  prefix?: string;
  timing: BreakerTiming;
  logger: Logger;
  /** Clock for background work (resync, write-back); the methods take their own `now`. */
  now?: () => number;
  /**
   * Deadline of one Redis command. A command that misses it counts as an outage: the call
   * is served locally and the connection is rebuilt, so nothing ever hangs on Redis.
   */
  commandTimeoutMs?: number;
  /**
   * How often both connections are PINGed while synced: a peer that vanished without a
   * FIN/RST (partition, hung server) would otherwise go unnoticed on an idle sidecar, and
   * its subscriber would silently miss the fleet's transitions.
   */
  heartbeatMs?: number;
}

export const DEFAULT_PREFIX = "{pilotfish:cb}:";

type BreakerEvent =
  | { t: "open"; key: string; provider: string; until: number; at: number; op: string | null }
  | { t: "close"; key: string; provider: string };

/** A transition made while Redis was away, written back when it returns. */
type Dirty =
  | { kind: "open"; provider: string; until: number; at: number }
  | { kind: "close"; provider: string; at: number };

// Shared by the scripts that (re)open a key. Every script touches only the keys of one
// breaker key or provider, the registries and the events channel.
const LUA_HELPERS = `
local function extend(k, ttl)
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
local function open(openKey, registry, key, provider, untilT, ttl)
  redis.call('SET', openKey, untilT, 'PX', ttl)
  redis.call('HSET', registry, key, provider)
  extend(registry, tonumber(ttl))
end
local function arm(rollup, providers, key, provider, at, window)
  redis.call('ZADD', rollup, at, key)
  redis.call('ZREMRANGEBYSCORE', rollup, '-inf', at - window)
  extend(rollup, window)
  redis.call('SADD', providers, provider)
  extend(providers, window)
end
`;

/**
 * KEYS fail, open, rollup, open_keys, rollup_providers.
 * ARGV now, member, window, failTtl, threshold, until, openTtl, rollupWindow, key, provider,
 * channel, event. Returns {opened 0|1, failures in window}.
 */
const RECORD_FAILURE = LUA_HELPERS + `
local now = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local count = redis.call('ZCARD', KEYS[1])
if count < tonumber(ARGV[5]) or redis.call('EXISTS', KEYS[2]) == 1 then return {0, count} end
open(KEYS[2], KEYS[4], ARGV[9], ARGV[10], ARGV[6], ARGV[7])
arm(KEYS[3], KEYS[5], ARGV[9], ARGV[10], now, tonumber(ARGV[8]))
redis.call('PUBLISH', ARGV[11], ARGV[12])
return {1, count}
`;

/**
 * KEYS open, probe, rollup, open_keys, rollup_providers.
 * ARGV now, until, openTtl, rollupWindow, key, provider, channel, event.
 */
const REOPEN = LUA_HELPERS + `
open(KEYS[1], KEYS[4], ARGV[5], ARGV[6], ARGV[2], ARGV[3])
redis.call('DEL', KEYS[2])
arm(KEYS[3], KEYS[5], ARGV[5], ARGV[6], tonumber(ARGV[1]), tonumber(ARGV[4]))
redis.call('PUBLISH', ARGV[7], ARGV[8])
return 1
`;

/**
 * KEYS open, fail, probe, rollup, open_keys, closed.
 * ARGV key, channel, event, keepIfUntilAbove, closedAt, tombstoneTtl.
 * `keepIfUntilAbove` is set when writing back a close made while Redis was away: an open
 * that started after that successful probe is newer evidence and wins. The tombstone lets
 * a later write-back of an older open lose to this close.
 */
const CLOSE = `
if ARGV[4] ~= '' then
  local v = redis.call('GET', KEYS[1])
  if v and tonumber(v) > tonumber(ARGV[4]) then return 0 end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('SET', KEYS[6], ARGV[5], 'PX', ARGV[6])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
`;

/**
 * KEYS open, rollup, open_keys, rollup_providers, closed.
 * ARGV until, openTtl, at, rollupWindow, key, provider, channel, event.
 * Write back an open made while Redis was away (or re-seed an emptied Redis). It never
 * overrides an open Redis holds, and loses to a close made after it started.
 */
const MERGE_OPEN = LUA_HELPERS + `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local closedAt = redis.call('GET', KEYS[5])
if closedAt and tonumber(closedAt) >= tonumber(ARGV[3]) then return 0 end
open(KEYS[1], KEYS[3], ARGV[5], ARGV[6], ARGV[1], ARGV[2])
arm(KEYS[2], KEYS[4], ARGV[5], ARGV[6], tonumber(ARGV[3]), tonumber(ARGV[4]))
redis.call('PUBLISH', ARGV[7], ARGV[8])
return 1
`;

/**
 * KEYS probe, open. ARGV now, cooldown, owner. The slot stores when it was taken so a probe
 * that never reported back frees it after a cooldown of the caller's clock, like the memory
 * store. A key open again (a probe failed and REOPEN freed the slot) has no slot to take
 * until its new cooldown ends, whatever the caller's view still says (the reopen event may
 * not have reached it yet).
 */
const ACQUIRE = `
local openUntil = redis.call('GET', KEYS[2])
if openUntil and tonumber(openUntil) > tonumber(ARGV[1]) then return 0 end
local held = redis.call('GET', KEYS[1])
if held then
  local at = tonumber(string.match(held, '^([^|]+)|'))
  if at and tonumber(ARGV[1]) - at < tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[3], 'PX', ARGV[2])
return 1
`;

/** KEYS probe. ARGV owner. Only the holder gives a slot back. */
const RELEASE = `
local held = redis.call('GET', KEYS[1])
if held and string.match(held, '^[^|]*|(.*)$') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`;

/**
 * KEYS epoch. ARGV candidate. The id of this Redis dataset: it changes when Redis comes
 * back empty (restart without persistence, failover to an empty node, FLUSHALL).
 */
const EPOCH = `
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
`;

/**
 * KEYS open_keys, rollup_providers. ARGV prefix, now, rollupWindow.
 * Returns {{key, provider, until, ...}, {provider, {key, score, ...}, ...}} and prunes
 * registry entries whose keys expired. It reads keys named by the registries: all in the
 * prefix's hash slot, which a Redis Cluster node serves whole.
 */
const SNAPSHOT = `
local opens = {}
local reg = redis.call('HGETALL', KEYS[1])
for i = 1, #reg, 2 do
  local v = redis.call('GET', ARGV[1] .. 'open:' .. reg[i])
  if v then
    table.insert(opens, reg[i])
    table.insert(opens, reg[i + 1])
    table.insert(opens, v)
  else
    redis.call('HDEL', KEYS[1], reg[i])
  end
end
local rollups = {}
for _, p in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local rk = ARGV[1] .. 'rollup:' .. p
  redis.call('ZREMRANGEBYSCORE', rk, '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
  local entries = redis.call('ZRANGE', rk, 0, -1, 'WITHSCORES')
  if #entries == 0 then
    redis.call('SREM', KEYS[2], p)
  else
    table.insert(rollups, p)
    table.insert(rollups, entries)
  end
end
return {opens, rollups}
`;

const SCRIPTS = {
  recordFailure: luaScript(RECORD_FAILURE),
  reopen: luaScript(REOPEN),
  close: luaScript(CLOSE),
  mergeOpen: luaScript(MERGE_OPEN),
  acquire: luaScript(ACQUIRE),
  release: luaScript(RELEASE),
  epoch: luaScript(EPOCH),
  snapshot: luaScript(SNAPSHOT),
};

/**
 * The Redis breaker store. Never throws and never hangs because of Redis: every method
 * answers from local state when Redis is unreachable, slow or not yet synced.
 * Throws only here, for a URL that is not `redis://` or `rediss://`.
 */
export function createRedisBreakerStore(opts: RedisBreakerStoreOptions): BreakerStore {
  // Read at each use: a reload's retime applies from the next command.
  const timing: Mutable<BreakerTiming> = { ...opts.timing };
  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  const now = opts.now ?? Date.now;
  const channel = `${prefix}events`;
  const k = {
    fail: (key: string) => `${prefix}fail:${key}`,
    open: (key: string) => `${prefix}open:${key}`,
    probe: (key: string) => `${prefix}probe:${key}`,
    closed: (key: string) => `${prefix}closed:${key}`,
    rollup: (provider: string) => `${prefix}rollup:${provider}`,
    openKeys: `${prefix}open_keys`,
    rollupProviders: `${prefix}rollup_providers`,
    epoch: `${prefix}epoch`,
  };
  // PX/PEXPIRE take whole positive milliseconds; durations from config may be fractional.
  const ttl = (ms: number) => Math.max(1, Math.ceil(ms));
  const cooldown = () => ttl(timing.cooldownMs);
  const failTtl = () => ttl(Math.max(2 * timing.cooldownMs, timing.windowMs));
  // Open for a cooldown, then half-open for up to another cooldown waiting for a probe;
  // a key nobody probes in that time ages out (llm-proxy: "shorter TTLs on state").
  const openTtl = (until: number, at: number) => ttl(until - at + timing.cooldownMs);
  // No open older than two cooldowns is ever written back, so a close needs no longer.
  const tombstoneTtl = () => ttl(2 * timing.cooldownMs);
  // The rollup ZSET (and its registry) lives as long as its newest entry counts.
  const rollupWindow = () => ttl(timing.rollupWindowMs);
  // Identifies this store's probe slots and its own published events.
  const id = crypto.randomUUID();
  let seq = 0;

  const view = new BreakerState(timing);
  /** Transitions not (yet) in Redis: made while it was away, written back on resync. */
  const dirty = new Map<string, Dirty>();
  /** Failure-opens in flight -> whether their own event was already applied. */
  const pendingOpens = new Map<string, boolean>();
  /** Events that arrive while not synced, applied on top of the resync's snapshot. */
  let buffered: BreakerEvent[] | null = [];
  let epoch: string | null = null; // of the Redis dataset last synced with

  // A bad URL is a config error: the link refuses it here rather than retry it forever.
  const link = openRedisLink({
    url: opts.url,
    ...(opts.password !== undefined ? { password: opts.password } : {}),
    ...(opts.db !== undefined ? { db: opts.db } : {}),
    name: "breaker",
    logger: opts.logger,
    ...(opts.commandTimeoutMs !== undefined ? { commandTimeoutMs: opts.commandTimeoutMs } : {}),
    ...(opts.heartbeatMs !== undefined ? { heartbeatMs: opts.heartbeatMs } : {}),
  });

  const apply = (ev: BreakerEvent) => {
    if (ev.t === "close") return view.close(ev.key, ev.provider);
    if (ev.op !== null && pendingOpens.has(ev.op)) pendingOpens.set(ev.op, true);
    view.reopened(ev.key, ev.provider, ev.until, ev.at);
  };

  /**
   * Write back what changed while away, then load the fleet's state. The link restored the
   * subscription before this runs, so no transition falls between it and the snapshot:
   * whatever arrives meanwhile is buffered and replayed on top (events that arrived before
   * this started are already in the snapshot).
   */
  const resync = async (redis: RedisCommands) => {
    buffered = [];
    const e = String(await redis.eval(SCRIPTS.epoch, [k.epoch], [crypto.randomUUID()]));
    // Redis came back empty: re-seed it with what this sidecar knew, or every breaker of
    // the fleet would close at once. Write-back rules keep newer closes and opens.
    if (epoch !== null && e !== epoch) reseed();
    epoch = e;
    // A transition made locally while this runs is dirty again; go round until none is.
    for (let round = 0; round < 5; round++) {
      await writeBack(redis);
      const snap = await redis.eval(SCRIPTS.snapshot, [k.openKeys, k.rollupProviders], [
        prefix,
        now(),
        rollupWindow(),
      ]);
      if (dirty.size > 0) continue;
      loadSnapshot(snap);
      const pending = buffered;
      buffered = null;
      for (const ev of pending) apply(ev);
      return;
    }
    throw new Error("breaker: local state kept changing during the Redis resync");
  };

  const reseed = () => {
    for (const [key, o] of view.open) {
      if (dirty.has(key)) continue;
      const at = view.rollup.get(o.provider)?.get(key) ?? o.until - timing.cooldownMs;
      dirty.set(key, { kind: "open", provider: o.provider, until: o.until, at });
    }
  };

  /** MERGE_OPEN's keys and arguments: an opening made here, written into Redis at `t`. */
  const mergeOpenOf = (
    key: string,
    provider: string,
    until: number,
    at: number,
    t: number,
  ): [string[], (string | number)[]] => [
    [k.open(key), k.rollup(provider), k.openKeys, k.rollupProviders, k.closed(key)],
    [
      until,
      openTtl(until, t),
      at,
      rollupWindow(),
      key,
      provider,
      channel,
      openEvent(key, provider, until, at, null),
    ],
  ];

  /** Each dirty key in one script; sent together, so node-redis pipelines them. */
  const writeBack = (redis: RedisCommands) =>
    Promise.all([...dirty].map(async ([key, d]) => {
      const t = now();
      if (d.kind === "close") {
        // opened-at = until - cooldown, so "opened after the close" is until > at + cooldown.
        await redis.eval(
          SCRIPTS.close,
          closeKeys(key, d.provider),
          [
            key,
            channel,
            closeEvent(key, d.provider),
            d.at + timing.cooldownMs,
            d.at,
            tombstoneTtl(),
          ],
        );
      } else if (d.until + timing.cooldownMs > t) { // else it would have aged out already
        await redis.eval(SCRIPTS.mergeOpen, ...mergeOpenOf(key, d.provider, d.until, d.at, t));
      }
      // Only now: a failed write-back keeps it for the next attempt, and a newer local
      // transition of the same key made meanwhile stays dirty.
      if (dirty.get(key) === d) dirty.delete(key);
    }));

  const loadSnapshot = (snap: unknown) => {
    const [opens, rollups] = asArray(snap);
    view.open.clear();
    view.probes.clear();
    view.rollup.clear();
    const o = asArray(opens);
    for (let i = 0; i + 2 < o.length; i += 3) {
      view.open.set(String(o[i]), { provider: String(o[i + 1]), until: Number(o[i + 2]) });
    }
    const r = asArray(rollups);
    for (let i = 0; i + 1 < r.length; i += 2) {
      const entries = asArray(r[i + 1]);
      for (let j = 0; j + 1 < entries.length; j += 2) {
        view.arm(String(r[i]), String(entries[j]), Number(entries[j + 1]));
      }
    }
  };

  link.onConnect(resync);
  link.onStateChange((ready) => {
    if (ready) return;
    buffered = [];
    pendingOpens.clear();
  });
  // Resolves once subscribed, which the link does before the resync hook on every pair.
  void link.subscribe(channel, (message) => {
    const ev = parseEvent(message);
    if (!ev) return;
    if (buffered) buffered.push(ev);
    else apply(ev);
  });

  /** Run `s` on the synced link, or say why not (the link reconnects on its own). */
  const call = async (
    s: LuaScript,
    keys: string[],
    args: (string | number)[],
  ): Promise<{ ok: true; reply: unknown } | { ok: false }> => {
    try {
      return { ok: true, reply: await link.eval(s, keys, args) };
    } catch {
      return { ok: false };
    }
  };

  /** An opening made here and not by Redis' count, merged into Redis (dirty if it fails). */
  const pushOpen = async (key: string, provider: string, until: number, at: number) => {
    const res = await call(SCRIPTS.mergeOpen, ...mergeOpenOf(key, provider, until, at, at));
    if (!res.ok) dirty.set(key, { kind: "open", provider, until, at });
  };

  const closeKeys = (key: string, provider: string) => [
    k.open(key),
    k.fail(key),
    k.probe(key),
    k.rollup(provider),
    k.openKeys,
    k.closed(key),
  ];
  const openEvent = (
    key: string,
    provider: string,
    until: number,
    at: number,
    op: string | null,
  ) => JSON.stringify({ t: "open", key, provider, until, at, op, src: id });
  const closeEvent = (key: string, provider: string) =>
    JSON.stringify({ t: "close", key, provider, src: id });

  // ---- the store -----------------------------------------------------------------------------

  return {
    openUntil: (key) => view.open.get(key)?.until ?? null,
    failures: (key, at) => view.window(key, at).length,
    rollupKeys: (provider, at) => view.rollupKeys(provider, at),
    openKeys: (provider) => view.openKeys(provider),

    async recordFailure(key, provider, at) {
      // Counted locally at once; whether it opens the key is Redis' fleet-wide decision.
      view.addFailure(key, at);
      // Still cooling down: Redis would only add to a count that can open nothing. Spares it
      // a script per failing request in `log` mode or under bypass traffic during an outage.
      // (Half-open goes through: Redis may have aged the key out meanwhile.)
      const open = view.open.get(key);
      if (open && open.until > at) return false;
      // This sidecar's own count is a floor of the fleet's: at the threshold it opens here at
      // once, so a slow Redis (up to its 500 ms command deadline) lets no more requests by.
      const local = view.openIfDue(key, provider, at);
      const until = at + timing.cooldownMs;
      const op = `${id}:${++seq}`;
      if (link.ready()) pendingOpens.set(op, false);
      const res = await call(SCRIPTS.recordFailure, [
        k.fail(key),
        k.open(key),
        k.rollup(provider),
        k.openKeys,
        k.rollupProviders,
      ], [
        at,
        `${at}:${op}`,
        timing.windowMs,
        failTtl(),
        timing.failureThreshold,
        until,
        openTtl(until, at),
        rollupWindow(),
        key,
        provider,
        channel,
        openEvent(key, provider, until, at, op),
      ]);
      const seen = pendingOpens.get(op);
      pendingOpens.delete(op);
      if (!res.ok) {
        const opened = local || view.openIfDue(key, provider, at);
        if (opened) dirty.set(key, { kind: "open", provider, until, at });
        return opened;
      }
      const [did, count] = asArray(res.reply);
      if (local) {
        // Opened here already: the transition is this call's unless another failure (of any
        // sidecar) opened it in Redis first. A Redis that counts fewer (failures recorded
        // while it was away) is told of the opening, so the fleet sees it too.
        if (did === 1) return true;
        if (Number(count) >= timing.failureThreshold) return false;
        await pushOpen(key, provider, until, at);
        return true;
      }
      const opened = did === 1;
      // Unless our own event was already applied: newer events may have followed it.
      if (opened && seen !== true) view.opened(key, provider, until, at);
      return opened;
    },

    async reopen(key, provider, at) {
      const until = at + timing.cooldownMs;
      view.reopened(key, provider, until, at);
      const res = await call(SCRIPTS.reopen, [
        k.open(key),
        k.probe(key),
        k.rollup(provider),
        k.openKeys,
        k.rollupProviders,
      ], [
        at,
        until,
        openTtl(until, at),
        rollupWindow(),
        key,
        provider,
        channel,
        openEvent(key, provider, until, at, null),
      ]);
      if (!res.ok) dirty.set(key, { kind: "open", provider, until, at });
    },

    async closeKey(key, provider) {
      view.close(key, provider);
      const at = now();
      const res = await call(
        SCRIPTS.close,
        closeKeys(key, provider),
        [key, channel, closeEvent(key, provider), "", at, tombstoneTtl()],
      );
      if (!res.ok) dirty.set(key, { kind: "close", provider, at });
    },

    async tryAcquireProbe(key, at) {
      const res = await call(SCRIPTS.acquire, [k.probe(key), k.open(key)], [at, cooldown(), id]);
      // While Redis is away the slot is this sidecar's alone: one probe per sidecar rather
      // than per fleet, until it returns.
      if (!res.ok) return view.acquire(key, at);
      const won = res.reply === 1;
      if (won) view.probes.set(key, at);
      return won;
    },

    async releaseProbe(key) {
      view.probes.delete(key);
      await call(SCRIPTS.release, [k.probe(key)], [id]);
    },

    describe: () => ({ backend: "redis", fallback: !link.ready() }),
    retime: (next) => void Object.assign(timing, next),

    close: () => link.close(),
  };
}
function parseEvent(text: string): BreakerEvent | null {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof raw !== "object" || raw === null) return null;
  const r = raw as Record<string, unknown>;
  if (typeof r.key !== "string" || typeof r.provider !== "string") return null;
  if (r.t === "close") return { t: "close", key: r.key, provider: r.provider };
  if (r.t !== "open" || typeof r.until !== "number" || typeof r.at !== "number") return null;
  const op = typeof r.op === "string" ? r.op : null;
  return { t: "open", key: r.key, provider: r.provider, until: r.until, at: r.at, op };
}

function asArray(x: unknown): unknown[] {
  return Array.isArray(x) ? x : [];
}
