/**
 * Fleet-exact limits over Redis without a round trip per request: **leased permits**.
 *
 * Each counter (a rule, a scope value, a window) is one Redis hash, hash-tagged so that a
 * script touches one slot, with one field per sidecar: the units that sidecar has taken in
 * the window. A sidecar borrows a batch of permits at a time (a Lua script sums the fields,
 * grants what fits, adds it to its own field) and admits locally while its lease lasts; it
 * tops the lease up in the background when it runs low (and borrows the next window's lease
 * in the last second of a window), and only a request that finds the lease empty waits for a
 * borrow. Leases shrink as the window fills (a quarter of what is
 * left, split over the fleet), unused permits go back after an idle second, so:
 *
 * - the fleet never admits more than the limit (every admitted unit was granted by Redis);
 * - it may refuse while up to `fleet_size` leases hold unused permits, which near the end of
 *   a window are one unit each (`remaining / (4 * fleet_size)` rounded down, plus the cost).
 *
 * Redis down: a limit with `fail_mode: open` falls back to this sidecar's share
 * (`fallback_share`, default `1 / fleet_size`) counted with what it took before, and at most
 * its share of what the window had left at Redis's last answer; `closed` refuses. Back:
 * before the link reports ready, each sidecar writes its own field to what it really took
 * (fallback included), then keeps to its share (closed limits too) for `RESYNC_SETTLE_MS`
 * while the other sidecars reconnect and write theirs, and writes its field again before it
 * borrows: the sum is the fleet's true count before anyone borrows from it, even when Redis
 * came back empty. Token buckets (Butter) live in a Redis hash too; a Redis that restarts empty starts
 * them full.
 * @module
 */
import type { Logger } from "../telemetry/mod.ts";
import { createHash } from "node:crypto";
import type { LuaScript, RedisCommands, RedisLink } from "../state/redis_link.ts";
import type { Admission, BackendHealth, CheckState, LimitBackend, UsageRow } from "./backend.ts";
import { longestWait } from "./backend.ts";
import { admitLocal, CounterMap, keyOf } from "./memory.ts";
import { type Check, type Rule, windowStart } from "./policy.ts";

/** Like the link's `luaScript`, without loading the Redis client before a link is made. */
function luaScript(src: string): LuaScript {
  return { src, sha: createHash("sha1").update(src).digest("hex") };
}

/**
 * Borrow from a fixed window. KEYS[1]: the window's hash. ARGV: sidecar, limit, need (the
 * least worth granting), want, optimistic (1: an empty window admits `need` over the limit:
 * llm-proxy's first token-bearing request), ttl ms. Returns {granted, used after}.
 */
const BORROW_WINDOW = luaScript(`
local vals = redis.call('HVALS', KEYS[1])
local used = 0
for i = 1, #vals do used = used + tonumber(vals[i]) end
local limit = tonumber(ARGV[2])
local need = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local grant = 0
if limit - used >= need then
  grant = math.min(want, limit - used)
elseif used == 0 and ARGV[5] == '1' then
  grant = need
end
if grant > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], grant)
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
return {grant, used + grant}
`);

/**
 * Settle this sidecar's field of a window. ARGV: sidecar, value, mode (`add`: a reconciled
 * delta or returned permits, never below 0; `set`: what it really took, after an outage),
 * ttl ms. Returns the window's total.
 */
const SETTLE_WINDOW = luaScript(`
local mine = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local v = tonumber(ARGV[2])
if ARGV[3] == 'add' then v = mine + v end
if v < 0 then v = 0 end
redis.call('HSET', KEYS[1], ARGV[1], v)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local vals = redis.call('HVALS', KEYS[1])
local used = 0
for i = 1, #vals do used = used + tonumber(vals[i]) end
return used
`);

/**
 * A token bucket on Redis' clock. KEYS[1]: its hash (level, at). ARGV: capacity, refill
 * window ms, need, want, give back (units returned, 0 to borrow). Returns {granted, level}
 * with the level as a string (Lua numbers become integers on the way out).
 */
const BUCKET = luaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[1])
local win = tonumber(ARGV[2])
local s = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(s[1]) or cap
local at = tonumber(s[2]) or now
level = math.min(cap, level + math.max(0, now - at) * cap / win)
local grant = 0
local back = tonumber(ARGV[5])
if back > 0 then
  level = math.min(cap, level + back)
elseif level >= tonumber(ARGV[3]) then
  grant = math.min(tonumber(ARGV[4]), math.floor(level))
  level = level - grant
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', now)
redis.call('PEXPIRE', KEYS[1], win * 2)
return {grant, tostring(level)}
`);

export interface RedisBackendOptions {
  readonly logger: Logger;
  /** Sidecars sharing the limits (lease sizes, the fallback share). */
  readonly fleetSize: number;
  /** Of each limit, what one sidecar admits alone while Redis is down. */
  readonly fallbackShare: number;
  /** Key prefix (default `pilotfish:rl:`). */
  readonly prefix?: string;
  /** Wall clock (windows); the stage's. */
  readonly now: () => number;
  /** Unused permits go back after this long without use (default 1 s). */
  readonly idleMs?: number;
  /** Hands out this sidecar's field name (default a random id per backend). */
  readonly sidecarId?: string;
  /** After an outage, shared admission waits this long (default `RESYNC_SETTLE_MS`). */
  readonly settleMs?: number;
}

/**
 * After an outage a sidecar keeps to its share this long before it borrows again. Every
 * sidecar's link retries within 2 s (its backoff's cap) of Redis coming back and writes what
 * it took before its link turns ready: a sidecar that borrowed at once saw an emptied Redis
 * without the fields of those still reconnecting, and took their share a second time.
 */
const RESYNC_SETTLE_MS = 3_000;

interface Lease {
  /** Swapped for the same counter's check of a newer generation (a reload, a key's new limits). */
  check: Check;
  readonly key: string;
  /** Window start (bucket: 0). */
  at: number;
  /** Permits held and not yet used. */
  left: number;
  /** Units taken from the window in this sidecar's field (used + held). */
  mine: number;
  /** The window's total at the last answer from Redis. */
  knownUsed: number;
  /** Units admitted on the share (Redis away) since that answer. */
  sinceKnown: number;
  lastUsed: number;
  pending: Promise<number> | null;
  /** Units the requests waiting on this lease still lack: the next borrow asks for them all. */
  demand: number;
  /**
   * Redis had no room for `deniedNeed` units: until `deniedUntil` (wall ms) requests that
   * need as much are refused here, so a flood over the limit costs no round trip each.
   */
  deniedUntil: number;
  deniedNeed: number;
  /** The next window's lease, borrowed before this window ends (windows only). */
  next: Lease | null;
}

/**
 * Borrows a waiting request may go through: each grants something or ends the wait (Redis
 * has no room), so this only bounds the wait of a request that keeps losing its permits to
 * others arriving with it.
 */
const BORROW_ROUNDS = 8;

/** How long a refusal from Redis is trusted locally (permits may come back meanwhile). */
const DENIED_MS = 100;

/**
 * A window's next lease is borrowed this long before the window ends (at most a tenth of the
 * window), so the first request of each window finds permits instead of waiting for Redis.
 */
const PREFETCH_MS = 1_000;

const DEFAULT_PREFIX = "pilotfish:rl:";

/** The backend, in fallback until `attach` gives it its link (loaded on demand). */
export interface RedisBackend extends LimitBackend {
  /** Call right after creating the link, so its first connection runs the sync hook too. */
  attach(link: RedisLink): void;
}

/** How long `/health` waits for the fleet's counts before showing what was last heard. */
const REFRESH_MS = 250;

export function createRedisBackend(opts: RedisBackendOptions): RedisBackend {
  const { logger, fleetSize } = opts;
  let link: RedisLink | null = null;
  const ready = () => link !== null && link.ready();
  /** The attached link (only called where `ready()` held, or to settle on it). */
  const linked = (): RedisLink => {
    if (link === null) throw new Error("rate limits: no Redis link yet");
    return link;
  };
  const share = opts.fallbackShare;
  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  const sidecar = opts.sidecarId ?? crypto.randomUUID();
  const idleMs = opts.idleMs ?? 1_000;
  const leases = new Map<string, Lease>();
  /** Token buckets while Redis is down (scaled to the share). */
  const fallbackBuckets = new CounterMap();
  let closed = false;
  const settleMs = opts.settleMs ?? RESYNC_SETTLE_MS;
  /** False from a reconnection until the fields are written again after settling. */
  let caughtUp = true;
  /** Runs while a reconnected sidecar settles (real time: it waits for the others' links). */
  let settling: ReturnType<typeof setTimeout> | undefined;
  let catchingUp: Promise<void> | null = null;
  let connectedBefore = false;
  /** A request was admitted on the share before the first connection. */
  let admittedAlone = false;

  // The hash tag keeps every window of one counter on one cluster slot: each script
  // touches one key. Braces inside a user id or model would move the tag: replaced.
  const redisKey = (check: Check, at: number) =>
    `${prefix}{${`${check.rule.id}|${check.scope}`.replace(/[{}]/g, "_")}}` +
    (check.rule.algorithm === "window" ? `:${at}` : "");

  const newLease = (check: Check, at: number, lastUsed: number): Lease => ({
    check,
    key: redisKey(check, at),
    at,
    left: 0,
    mine: 0,
    knownUsed: 0,
    sinceKnown: 0,
    lastUsed,
    pending: null,
    demand: 0,
    deniedUntil: 0,
    deniedNeed: 0,
    next: null,
  });

  const leaseOf = (check: Check, now: number): Lease => {
    const key = keyOf(check);
    const at = check.rule.algorithm === "window" ? windowStart(check.rule, now) : 0;
    let lease = leases.get(key);
    if (lease === undefined || lease.at !== at) {
      // A new window: the lease borrowed ahead for it, else an empty one.
      const ahead = lease?.next;
      lease = ahead != null && ahead.at === at ? ahead : newLease(check, at, now);
      leases.set(key, lease);
    }
    if (lease.check !== check) retarget(lease, check);
    return lease;
  };

  /**
   * The same counter under a newer rule (a reload, a key's changed limits). A lowered limit
   * gives back what this sidecar holds unused: permits leased under the old limit would
   * otherwise be admitted past the new one (each sidecar's lease, fleet-wide).
   */
  const retarget = (lease: Lease, check: Check) => {
    const lowered = check.rule.limit < lease.check.rule.limit;
    lease.check = check;
    if (lease.next !== null) lease.next.check = check;
    if (!lowered) return;
    giveBack(lease);
    if (lease.next !== null) giveBack(lease.next);
  };

  /**
   * Return a lease's unused permits to the window at once. Not known to be returned (Redis
   * away): they stay counted in this sidecar's field, as taken; none is admitted from them.
   */
  const giveBack = (lease: Lease) => {
    const back = lease.left;
    if (back <= 0) return;
    lease.left = 0;
    if (!ready()) return;
    settle(lease, -back, "add").then(
      (used) => {
        lease.mine -= back;
        if (lease.check.rule.algorithm === "window") known(lease, used);
      },
      () => {/* still counted as taken; the next sync writes `mine` */},
    );
  };

  /** Near a window's end, borrow the next window's lease in the background. */
  const prefetch = (lease: Lease, now: number) => {
    const rule = lease.check.rule;
    const end = lease.at + rule.windowMs;
    if (now < end - Math.min(PREFETCH_MS, rule.windowMs / 10)) return;
    // Not idle before its window starts: its idle time counts from then.
    const next = lease.next = newLease(lease.check, end, end);
    topUp(next, 1).catch(() => {/* the next request borrows (or falls back) itself */});
  };

  /** A quarter of what is left, split over the fleet: leases shrink as the window fills. */
  const chunkOf = (lease: Lease) => {
    const rule = lease.check.rule;
    const left = Math.max(0, rule.limit - lease.knownUsed);
    return Math.floor(left / (4 * fleetSize));
  };

  /** One borrow; resolves the units granted (0: nothing fits). Rejects when Redis is away. */
  const borrow = async (lease: Lease, need: number, extra = 0): Promise<number> => {
    const rule = lease.check.rule;
    // `need` or nothing; up to `want` when there is room (a chunk ahead, or a burst's demand).
    const want = need + Math.max(chunkOf(lease), extra);
    if (rule.algorithm === "bucket") {
      const r = await linked().eval(BUCKET, [lease.key], [
        rule.limit,
        rule.windowMs,
        need,
        want,
        0,
      ]);
      const [granted, level] = r as [number, string];
      lease.left += granted;
      lease.mine += granted;
      lease.knownUsed = rule.limit - Number(level);
      lease.sinceKnown = 0;
      if (granted === 0) deny(lease, need);
      lowered(lease, rule);
      return granted;
    }
    const r = await linked().eval(BORROW_WINDOW, [lease.key], [
      sidecar,
      rule.limit,
      need,
      want,
      rule.metric === "tokens" ? 1 : 0,
      rule.windowMs * 2,
    ]);
    const [granted, used] = r as [number, number];
    lease.left += granted;
    lease.mine += granted;
    lease.knownUsed = used;
    lease.sinceKnown = 0;
    if (granted === 0) deny(lease, need);
    lowered(lease, rule);
    return granted;
  };

  /** A borrow made under `rule` answered after a reload lowered the limit: it goes back. */
  const lowered = (lease: Lease, rule: Rule) => {
    if (lease.check.rule.limit < rule.limit) giveBack(lease);
  };

  const deny = (lease: Lease, need: number) => {
    lease.deniedUntil = opts.now() + DENIED_MS;
    lease.deniedNeed = need;
  };
  /** Refused by Redis a moment ago for as much as this request needs. */
  const denied = (lease: Lease, cost: number, now: number) =>
    now < lease.deniedUntil && cost - lease.left >= lease.deniedNeed;

  /** Borrow once, sharing a borrow already in flight for the same lease. */
  const topUp = (lease: Lease, need: number): Promise<number> => {
    if (lease.pending) return lease.pending;
    // A burst waits on one borrow at a time: each asks for what all of them still lack.
    const p = borrow(lease, need, lease.demand - need).finally(() => {
      if (lease.pending === p) lease.pending = null;
    });
    lease.pending = p;
    return p;
  };

  const settle = (
    lease: Lease,
    value: number,
    mode: "add" | "set",
    via: RedisCommands = linked(),
  ) => {
    const rule = lease.check.rule;
    if (rule.algorithm === "bucket") {
      // A bucket takes returned permits back; a reconciled excess is drawn from it.
      return mode === "add" && value < 0
        ? via.eval(BUCKET, [lease.key], [rule.limit, rule.windowMs, 0, 0, -value])
        : mode === "add" && value > 0
        ? via.eval(BUCKET, [lease.key], [rule.limit, rule.windowMs, 0, value, 0])
        : Promise.resolve(null);
    }
    return via.eval(SETTLE_WINDOW, [lease.key], [sidecar, value, mode, rule.windowMs * 2]);
  };

  /** A window's total as Redis answered it. */
  const known = (lease: Lease, used: unknown) => {
    lease.knownUsed = Number(used);
    lease.sinceKnown = 0;
  };

  const stateOf = (lease: Lease, cost: number, now: number, refused: boolean): CheckState => {
    const rule = lease.check.rule;
    const remaining = Math.max(0, rule.limit - lease.knownUsed) + lease.left;
    const resetAt = rule.algorithm === "window"
      ? lease.at + rule.windowMs
      : now + Math.ceil(((rule.limit - remaining) * rule.windowMs) / rule.limit);
    const retry = !refused
      ? 0
      : rule.algorithm === "window"
      ? Math.max(0, resetAt - now)
      : Math.ceil((Math.max(1, cost - remaining) * rule.windowMs) / rule.limit);
    return {
      check: lease.check,
      cost,
      limit: rule.limit,
      // Whole units, as the memory backend reports them (a bucket refills fractionally).
      remaining: Math.min(rule.limit, Math.floor(remaining)),
      resetAt,
      retryAfterMs: retry,
      at: lease.at,
    };
  };

  /** Take the costs from the leases (all have enough) and top up those running low. */
  const consume = (ls: Lease[], costs: readonly number[], now: number): Admission => {
    const states: CheckState[] = [];
    for (let i = 0; i < ls.length; i++) {
      const lease = ls[i] as Lease;
      const cost = costs[i] as number;
      lease.left -= cost;
      lease.lastUsed = now;
      states.push(stateOf(lease, cost, now, false));
      if (lease.pending === null && lease.left <= chunkOf(lease) / 2 && ready()) {
        topUp(lease, 1).catch(() => {/* the link logs the outage; the next request falls back */});
      }
      if (lease.next === null && lease.check.rule.algorithm === "window" && ready()) {
        prefetch(lease, now);
      }
    }
    return { ok: true, states };
  };

  /**
   * What a window's lease may still admit on the share: its share of the limit counted with
   * what it took before, and no more than its share of what the fleet had left at Redis's
   * last answer (the others may be on their shares too, or still borrowing: a sidecar whose
   * link blipped must not admit a third of the limit into a window that was nearly full).
   */
  const shareRoom = (lease: Lease, cap: number) => {
    const rule = lease.check.rule;
    const taken = lease.mine - lease.left;
    const left = Math.floor(Math.max(0, rule.limit - lease.knownUsed) * share);
    return Math.max(0, Math.min(cap - taken, left - lease.sinceKnown));
  };

  /** Redis away: what this sidecar holds, then its share (fail_mode open) or a refusal. */
  const fallback = (checks: readonly Check[], costs: readonly number[], now: number): Admission => {
    const ls = checks.map((c) => leaseOf(c, now));
    const states: CheckState[] = [];
    let refused: CheckState[] | null = null;
    /** Refusals of closed limits (the store is away), told apart from exhausted shares. */
    const closed = new Set<CheckState>();
    const buckets: number[] = [];
    for (let i = 0; i < ls.length; i++) {
      const lease = ls[i] as Lease;
      const cost = costs[i] as number;
      const rule = lease.check.rule;
      if (lease.left >= cost) continue;
      // Closed refuses while the store is away or failing; settling after it came back, a
      // closed limit admits on its share like an open one (the store is there).
      if (rule.failMode === "closed" && !settlingNow()) {
        const s = { ...stateOf(lease, cost, now, true), retryAfterMs: 1_000 };
        closed.add(s);
        (refused ??= []).push(s);
        continue;
      }
      if (rule.algorithm === "bucket") {
        buckets.push(i);
        continue;
      }
      const cap = Math.max(1, Math.floor(rule.limit * share));
      const taken = lease.mine - lease.left;
      const room = shareRoom(lease, cap);
      if (cost > room && !(rule.metric === "tokens" && taken === 0 && lease.knownUsed === 0)) {
        const s = stateOf(lease, cost, now, true);
        (refused ??= []).push({ ...s, limit: cap, remaining: room });
      }
    }
    if (refused === null && buckets.length > 0) {
      const local = admitLocal(
        fallbackBuckets,
        buckets.map((i) => checks[i] as Check),
        buckets.map((i) => costs[i] as number),
        now,
        share,
      );
      if (!local.ok) (refused ??= []).push(local.blocked as CheckState);
    }
    if (refused !== null) {
      // A closed limit refuses for as long as the store is away, whatever the shares say: it
      // is the one reported, so the headers name the limit the reason is about.
      return closed.size > 0
        ? { ok: false, states, blocked: longestWait([...closed]) as CheckState, unavailable: true }
        : { ok: false, states, blocked: longestWait(refused) as CheckState };
    }
    admittedAlone = true;
    for (let i = 0; i < ls.length; i++) {
      const lease = ls[i] as Lease;
      const cost = costs[i] as number;
      const rule = lease.check.rule;
      if (lease.left >= cost) lease.left -= cost;
      else if (rule.algorithm === "window") {
        lease.mine += cost;
        lease.sinceKnown += cost;
      }
      lease.lastUsed = now;
      const s = stateOf(lease, cost, now, false);
      const cap = Math.max(1, Math.floor(rule.limit * share));
      // A closed limit with the store away admits only from its lease: the real limit, and
      // what is left of it as last heard (counting down with the lease), not a share.
      const onShare = rule.algorithm === "window" && (rule.failMode !== "closed" || settlingNow());
      states.push(onShare ? { ...s, limit: cap, remaining: shareRoom(lease, cap) } : s);
    }
    return { ok: true, states };
  };

  const slow = async (
    checks: readonly Check[],
    costs: readonly number[],
    ls: Lease[],
    now: number,
  ): Promise<Admission> => {
    // What this request lacks on each lease counts in the lease's demand while it waits, so
    // the borrows that follow are sized for the whole burst, not for one request at a time
    // (three borrows of one request's size refused most of a cold burst).
    const lacks = ls.map((l, i) => Math.max(0, (costs[i] as number) - l.left));
    ls.forEach((l, i) => l.demand += lacks[i] as number);
    try {
      for (let round = 0; round < BORROW_ROUNDS; round++) {
        const short = ls.filter((l, i) => l.left < (costs[i] as number));
        if (short.length === 0) break;
        const granted = await Promise.all(
          short.map((l) => topUp(l, (costs[ls.indexOf(l)] as number) - l.left)),
        );
        if (granted.every((g) => g === 0)) break;
      }
    } catch {
      return fallback(checks, costs, now);
    } finally {
      ls.forEach((l, i) => l.demand = Math.max(0, l.demand - (lacks[i] as number)));
    }
    const refused: CheckState[] = [];
    for (let i = 0; i < ls.length; i++) {
      const l = ls[i] as Lease;
      if (l.left < (costs[i] as number)) refused.push(stateOf(l, costs[i] as number, now, true));
    }
    if (refused.length > 0) {
      return { ok: false, states: [], blocked: longestWait(refused) as CheckState };
    }
    return consume(ls, costs, now);
  };

  // Unused permits go back when a counter goes quiet; past windows are forgotten.
  const sweeper = setInterval(() => {
    const now = opts.now();
    for (const [k, lease] of leases) {
      const rule = lease.check.rule;
      if (rule.algorithm === "window" && lease.at + rule.windowMs <= now) {
        // The lease borrowed ahead takes over (its permits are the next window's).
        if (lease.next !== null && lease.next.at + rule.windowMs > now) {
          leases.set(k, lease.next);
        } else leases.delete(k);
        continue;
      }
      if (
        lease.left > 0 && lease.pending === null && now - lease.lastUsed >= idleMs && ready()
      ) {
        const back = lease.left;
        lease.left = 0;
        lease.mine -= back;
        settle(lease, -back, "add").then(
          (used) => {
            if (rule.algorithm === "window") known(lease, used);
          },
          () => {
            // Not known to be returned: still ours to use (the next sync writes `mine`).
            lease.mine += back;
            lease.left += back;
          },
        );
      }
    }
  }, Math.max(100, Math.floor(idleMs / 2)));
  Deno.unrefTimer(sweeper);

  /**
   * Write what this sidecar really took into its fields (Redis may have come back empty).
   * `reconnecting`: the others may not have written theirs yet, so the total Redis answers
   * may be short of the fleet's; what was heard before stands when higher (the share while
   * settling is of what the fleet had left, not of an emptied window).
   */
  const writeBack = async (via: RedisCommands, reconnecting: boolean) => {
    const record = (lease: Lease, used: unknown) => {
      const { knownUsed, sinceKnown } = lease;
      known(lease, used);
      // Both as they were: the share already paid out since (sinceKnown) stays counted.
      if (reconnecting && knownUsed + sinceKnown > lease.knownUsed) {
        lease.knownUsed = knownUsed;
        lease.sinceKnown = sinceKnown;
      }
    };
    const now = opts.now();
    for (const [k, lease] of leases) {
      const rule = lease.check.rule;
      if (rule.algorithm === "window" && lease.at !== windowStart(rule, now)) {
        leases.delete(k);
        continue;
      }
      if (rule.algorithm === "bucket") {
        lease.left = 0;
        lease.mine = 0;
        continue;
      }
      if (lease.mine > 0) record(lease, await settle(lease, lease.mine, "set", via));
      const ahead = lease.next;
      if (ahead !== null && ahead.mine > 0) {
        record(ahead, await settle(ahead, ahead.mine, "set", via));
      }
    }
  };

  /** After settling: what the share admitted meanwhile is written too, then Redis is used. */
  const catchUp = () => {
    if (catchingUp !== null || closed || !ready()) return;
    catchingUp = writeBack(linked(), false).then(
      () => {
        caughtUp = true;
        // Shared again: the buckets' share counted while alone is Redis' to hold now.
        fallbackBuckets.entries.clear();
      },
      () => {/* the link logs an outage; the next request tries again */},
    ).finally(() => {
      catchingUp = null;
    });
  };

  /** Back from an outage, keeping to the share while the fleet writes its fields. */
  const settlingNow = () => ready() && !caughtUp;

  /** Whether to admit through Redis now (not while settling after a reconnection). */
  const shared = (): boolean => {
    if (closed || !ready()) return false;
    if (caughtUp) return true;
    if (settling === undefined) catchUp(); // an earlier write-back failed: again
    return false;
  };

  const stops: (() => unknown)[] = [];
  const attach = (l: RedisLink) => {
    link = l;
    // Back from an outage: write what this sidecar really took into its fields before the
    // link turns ready, then settle (see `RESYNC_SETTLE_MS`).
    stops.push(l.onConnect(async (session) => {
      await writeBack(session, true);
      // After an outage, or a start during one (this sidecar admitted alone meanwhile).
      if (connectedBefore || admittedAlone) {
        caughtUp = false;
        clearTimeout(settling);
        const timer = setTimeout(() => {
          settling = undefined;
          catchUp();
        }, settleMs);
        Deno.unrefTimer(timer);
        settling = timer;
      } else fallbackBuckets.entries.clear();
      connectedBefore = true;
      admittedAlone = false;
    }));
    let everUp = false;
    stops.push(l.onStateChange((up) => {
      if (up) {
        logger.info(
          `rate limits: Redis reachable, limits shared by the fleet${everUp ? " again" : ""}`,
          {},
        );
        everUp = true;
      } else {
        logger.warn("rate limits: Redis unreachable, each sidecar admits its share", {
          fallback_share: share,
        });
      }
    }));
  };

  return {
    attach,
    admit(checks, costs, now) {
      if (!shared()) return fallback(checks, costs, now);
      const ls = checks.map((c) => leaseOf(c, now));
      let short = false;
      let refused: CheckState[] | null = null;
      for (let i = 0; i < ls.length; i++) {
        const lease = ls[i] as Lease;
        const cost = costs[i] as number;
        if (lease.left >= cost) continue;
        short = true;
        if (denied(lease, cost, now)) (refused ??= []).push(stateOf(lease, cost, now, true));
      }
      if (refused !== null) return { ok: false, states: [], blocked: longestWait(refused)! };
      return short ? slow(checks, costs, ls, now) : consume(ls, costs, now);
    },
    adjust(state, delta, now) {
      const lease = leases.get(keyOf(state.check));
      if (lease === undefined || lease.at !== state.at || delta === 0) return;
      if (delta < 0) {
        // Estimated too high: the permits are ours already, keep them for the next requests.
        lease.left += -delta;
        return;
      }
      const fromLease = Math.min(lease.left, delta);
      lease.left -= fromLease;
      const rest = delta - fromLease;
      if (rest <= 0) return;
      lease.mine += rest;
      lease.knownUsed += rest;
      lease.lastUsed = now;
      if (ready()) {
        settle(lease, rest, "add").then(
          (used) => {
            if (lease.check.rule.algorithm === "window") known(lease, used);
          },
          () => {/* `mine` is written back on reconnect */},
        );
      }
    },
    async refresh() {
      if (!ready() || !caughtUp) return;
      const via = linked();
      const asked = [...leases.values()].filter((l) =>
        l.check.rule.algorithm === "window" && l.pending === null
      );
      if (asked.length === 0) return;
      const read = Promise.all(asked.map(async (lease) => {
        const vals = await via.command(["HVALS", lease.key]);
        // A borrow that went out meanwhile answers with a newer total: it wins.
        if (lease.pending !== null || !Array.isArray(vals)) return;
        known(lease, vals.reduce((sum: number, v) => sum + (Number(v) || 0), 0));
      }));
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        read,
        new Promise<void>((resolve) => timer = setTimeout(resolve, REFRESH_MS)),
      ]).catch(() => {/* what was last heard stands */}).finally(() => clearTimeout(timer));
    },
    usage(now, ruleOf) {
      const rows: UsageRow[] = [];
      // A rule a reload changed takes over its counters now, as the next request would have
      // it do (a lowered limit gives the leases back).
      for (const lease of leases.values()) {
        const rule = ruleOf?.(lease.check.rule.id);
        const was = lease.check.rule;
        // The same windows only (a changed window is a new counter for the next request).
        if (
          rule !== undefined && rule !== was && rule.algorithm === was.algorithm &&
          rule.windowMs === was.windowMs
        ) retarget(lease, { ...lease.check, rule });
      }
      // Redis away: a window limit is this sidecar's share, as its admitted headers say.
      const alone = !ready() || !caughtUp;
      for (const lease of leases.values()) {
        const rule = lease.check.rule;
        const s = stateOf(lease, 0, now, false);
        let limit = s.limit;
        let remaining = s.remaining;
        if (
          alone && rule.algorithm === "window" && (rule.failMode !== "closed" || settlingNow())
        ) {
          limit = Math.max(1, Math.floor(rule.limit * share));
          remaining = shareRoom(lease, limit);
        }
        rows.push({
          rule: rule.id,
          scope: lease.check.scope,
          metric: rule.metric,
          window: rule.windowName,
          limit,
          used: limit - remaining,
          remaining,
          reset: Math.ceil(s.resetAt / 1000),
        });
      }
      return rows;
    },
    health(): BackendHealth {
      const up = ready();
      return {
        backend: "redis",
        // Settling after an outage admits on the share too.
        mode: up && caughtUp ? "shared" : "fallback",
        fleet_size: fleetSize,
        fallback_share: share,
        ...(up ? {} : {
          notice: `Redis unreachable: this sidecar admits its share (${
            Math.round(share * 1000) / 10
          } %) of each limit with fail_mode open and refuses those with fail_mode closed`,
        }),
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(sweeper);
      clearTimeout(settling);
      for (const stop of stops) stop();
      // Give back what this sidecar holds, so the fleet can use it.
      if (ready()) {
        const held = [...leases.values()].flatMap((l) => (l.next !== null ? [l, l.next] : [l]));
        await Promise.allSettled(
          held.filter((l) => l.left > 0).map((l) => settle(l, -l.left, "add")),
        );
      }
      leases.clear();
      await link?.close();
    },
  };
}
