/**
 * The fleet key store: keys, their hashes and their counters live in Redis, so a key created
 * on one sidecar works on all of them and budgets hold fleet-wide. Each sidecar keeps the
 * records it has looked up (a few seconds, dropped at once when any sidecar changes one:
 * pub/sub); spend is read from Redis on every request of a key with a budget, so the fleet
 * overshoots a budget by at most the requests in flight when it was reached. Counters are
 * atomic HINCRBYs. While Redis is away, cached records still authenticate, budgets hold on the
 * spend last read plus this sidecar's since, and that spend is kept (summed per key and
 * period) and written once Redis is back. Each write carries this sidecar's sequence number
 * and Redis keeps the last it applied, so a write whose answer was lost with the connection
 * is sent again and applied at most once.
 * @module
 */
import { luaScript, type RedisLink } from "../state/redis_link.ts";
import { type StateReply, StateUnavailable } from "../state/store.ts";
import { emptyCounter, type KeyBackend, type KeyCounter, type KeyRecord } from "./types.ts";

export interface RedisBackendOptions {
  readonly link: RedisLink;
  readonly prefix?: string;
  /** How long a looked-up record is trusted without a change notice, ms. */
  readonly cacheMs?: number;
  readonly now?: () => number;
  readonly onError?: (err: unknown) => void;
}

export const DEFAULT_KEYS_PREFIX = "pilotfish:keys:";

/** Day counters are kept 40 days, month counters 400: enough for the usage endpoint. */
const DAY_TTL_MS = 40 * 86_400_000;
const MONTH_TTL_MS = 400 * 86_400_000;

/** KEYS rec, hash, ids[, old hash]. ARGV json, id. */
const SAVE = luaScript(`
if KEYS[4] then redis.call('DEL', KEYS[4]) end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
`);

/**
 * KEYS day, month, this writer's last applied sequence number. ARGV requests, tokens, micros,
 * day ttl, month ttl, sequence number (at or below the last applied: skipped, returns 0),
 * that number's ttl.
 */
const RECORD = luaScript(`
if tonumber(ARGV[6]) <= tonumber(redis.call('GET', KEYS[3]) or '0') then return 0 end
redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[7])
for i = 1, 2 do
  redis.call('HINCRBY', KEYS[i], 'requests', ARGV[1])
  redis.call('HINCRBY', KEYS[i], 'tokens', ARGV[2])
  redis.call('HINCRBY', KEYS[i], 'cost_micros', ARGV[3])
  if redis.call('PTTL', KEYS[i]) == -1 then redis.call('PEXPIRE', KEYS[i], ARGV[3 + i]) end
end
return 1
`);

/** KEYS hash. The record its hash names, or false. */
const FIND = luaScript(`
local id = redis.call('GET', KEYS[1])
if not id then return false end
return redis.call('GET', ARGV[1] .. id)
`);

/** Keys whose last spend is kept for an outage (a bound, not a cache policy). */
const LAST_SPEND_MAX = 10_000;

/** Writes held for Redis's return: at most this many (key, day, month) sums, and resends. */
const HELD_MAX = 10_000;

/** How long a sidecar's last applied write number is kept: longer than any outage. */
const APPLIED_TTL_MS = 7 * 86_400_000;

/** Writes Redis could not take while the link stayed up are tried again this much later. */
const RETRY_MS = 1_000;

/** One write of counters: a key's day and month. */
interface Write {
  readonly day: string;
  readonly month: string;
  readonly delta: KeyCounter;
}

export function createRedisBackend(opts: RedisBackendOptions): KeyBackend {
  const { link } = opts;
  const prefix = opts.prefix ?? DEFAULT_KEYS_PREFIX;
  const cacheMs = opts.cacheMs ?? 5_000;
  const now = opts.now ?? Date.now;
  const recKey = (id: string) => `${prefix}rec:${id}`;
  const hashKey = (hash: string) => `${prefix}hash:${hash}`;
  const useKey = (id: string, period: string) => `${prefix}use:${id}:${period}`;
  const idsKey = `${prefix}ids`;
  const writer = crypto.randomUUID();
  const appliedKey = `${prefix}applied:${writer}`;
  let seq = 0;
  const channel = `${prefix}changed`;
  const cache = new Map<string, { rec: KeyRecord; at: number }>();
  /** The records of `cache` by id (`peek`); refreshed with it, dropped with it. */
  const byId = new Map<string, KeyRecord>();
  const remember = (rec: KeyRecord) => {
    cache.set(rec.hash, { rec, at: now() });
    byId.set(rec.id, rec);
  };
  const forget = (hash: string) => {
    const hit = cache.get(hash);
    if (hit !== undefined && byId.get(hit.rec.id) === hit.rec) byId.delete(hit.rec.id);
    cache.delete(hash);
  };

  // Any sidecar's change (this one's too: the notice comes back) makes the copy stale
  // everywhere, and so does a reconnection (notices may have been missed): read again on its
  // next use, but still the record that authenticates should Redis be away by then (a key
  // seen once stays usable through every outage, not only the first; a revocation applies
  // once Redis is back).
  const stale = (hash: string) => {
    const hit = cache.get(hash);
    if (hit !== undefined) hit.at = Number.NEGATIVE_INFINITY;
  };
  const subscribed = link.subscribe(channel, stale);
  const stopWatch = link.onStateChange((ready) => {
    if (ready) { for (const entry of cache.values()) entry.at = Number.NEGATIVE_INFINITY; }
  });

  /** Each key's spend as last read (and counted on since), for when Redis is away. */
  const lastSpend = new Map<
    string,
    { day: string; month: string; spend: { day: number; month: number } }
  >();
  const parse = (reply: StateReply): KeyRecord | null =>
    typeof reply === "string" ? JSON.parse(reply) as KeyRecord : null;
  const int = (v: StateReply | undefined) => (typeof v === "string" ? Number(v) : 0);
  const FIELDS = ["requests", "tokens", "cost_micros"] as const;
  const counterOf = (reply: StateReply): KeyCounter => {
    const c = emptyCounter();
    if (!Array.isArray(reply)) return c;
    FIELDS.forEach((f, i) => c[f] = int(reply[i]));
    return c;
  };

  /** Writes not yet sent, summed per key and period: numbered and sent by `flush`. */
  const held = new Map<string, Write>();
  /** Writes whose answer was lost with the connection (applied or not): resent with their number. */
  const resends: { w: Write; seq: number }[] = [];
  /** The writes `flush` is sending now (still unsent as far as a budget check knows). */
  let inflight: { w: Write }[] = [];
  let dropped = 0;
  const hold = (w: Write) => {
    const id = `${w.day}\n${w.month}`;
    const sum = held.get(id);
    if (sum !== undefined) {
      for (const f of FIELDS) sum.delta[f] += w.delta[f];
    } else if (held.size < HELD_MAX) held.set(id, { ...w, delta: { ...w.delta } });
    else dropped++;
  };
  /** Anything waiting to be written (new writes then queue behind it, in number order). */
  const pending = () => held.size > 0 || resends.length > 0 || flushing !== null;
  /**
   * One write with its number: `done` once applied (or, for a resend, known applied by its
   * first try: the script skips a number at or below the last it applied), `again` when it
   * must be sent with a new number, `failed` when Redis could not take it now.
   * - `0` on a first try: a higher number got there first (a NOSCRIPT retry reordered them),
   *   so it was not applied: held again, for a new number.
   * - Failed with the link still up (a full queue): not sent; held again. Failed as the link
   *   went down: maybe applied; resent with its number once it is back.
   */
  const send = async (
    w: Write,
    n: number,
    resend = false,
  ): Promise<"done" | "again" | "failed"> => {
    try {
      const applied = await link.eval(RECORD, [w.day, w.month, appliedKey], [
        w.delta.requests,
        w.delta.tokens,
        w.delta.cost_micros,
        DAY_TTL_MS,
        MONTH_TTL_MS,
        n,
        APPLIED_TTL_MS,
      ]);
      if (applied === 0 && !resend) {
        hold(w);
        return "again";
      }
      return "done";
    } catch (err) {
      opts.onError?.(err);
      if (!(err instanceof StateUnavailable)) return "done"; // a script error: not retried
      if (link.ready()) hold(w);
      else if (resends.length < HELD_MAX) resends.push({ w, seq: n });
      else dropped++;
      return "failed";
    }
  };
  let flushing: Promise<void> | null = null;
  let retry: ReturnType<typeof setTimeout> | undefined;
  /** Send what waits again in a second (a write failed while the link stayed up). */
  const later = () => {
    if (retry !== undefined || closed) return;
    retry = setTimeout(() => {
      retry = undefined;
      flush();
    }, RETRY_MS);
    Deno.unrefTimer(retry);
  };
  /** Send what waits, one write after another (the numbers must arrive in order). */
  const flush = (): Promise<void> => {
    if (flushing !== null) return flushing;
    const run = async () => {
      while (link.ready() && (resends.length > 0 || held.size > 0)) {
        const batch: { w: Write; seq: number; resend: boolean }[] = resends
          .splice(0)
          .sort((a, b) => a.seq - b.seq)
          .map((r) => ({ ...r, resend: true }));
        for (const w of held.values()) batch.push({ w, seq: ++seq, resend: false });
        held.clear();
        inflight = batch;
        let failed = false;
        for (const r of batch) {
          if (await send(r.w, r.seq, r.resend) === "failed") failed = true;
          inflight = inflight.slice(1);
        }
        // Redis could not take some: again in a while, not in a tight loop.
        if (failed) break;
      }
      if (link.ready() && (held.size > 0 || resends.length > 0)) later();
      if (dropped > 0) {
        opts.onError?.(
          new Error(
            `app keys: ${dropped} usage writes held for Redis were dropped (over ${HELD_MAX})`,
          ),
        );
        dropped = 0;
      }
    };
    flushing = run().finally(() => {
      flushing = null;
      inflight = [];
    });
    return flushing;
  };
  /** What this sidecar spent that Redis does not have yet, on these counters. */
  const unsent = (day: string, month: string) => {
    let d = 0;
    let m = 0;
    const add = (w: Write) => {
      if (w.day === day) d += w.delta.cost_micros;
      if (w.month === month) m += w.delta.cost_micros;
    };
    for (const w of held.values()) add(w);
    for (const r of resends) add(r.w);
    for (const r of inflight) add(r.w);
    return { day: d, month: m };
  };
  let closed = false;
  const stopFlush = link.onStateChange((ready) => {
    if (ready) flush();
  });

  return {
    kind: "redis",
    async findByHash(hash) {
      const hit = cache.get(hash);
      if (hit !== undefined && now() - hit.at < cacheMs) return hit.rec;
      let rec: KeyRecord | null;
      try {
        rec = parse(await link.eval(FIND, [hashKey(hash)], [`${prefix}rec:`]));
      } catch (err) {
        // Redis away: a record seen before still authenticates (revocations made meanwhile
        // apply once it is back).
        if (hit !== undefined && err instanceof StateUnavailable) return hit.rec;
        throw err;
      }
      if (rec === null) forget(hash);
      else remember(rec);
      return rec;
    },
    peek: (id) => byId.get(id) ?? null,
    async spend(id, p) {
      const dayKey = useKey(id, p.day);
      const monthKey = useKey(id, p.month);
      let read: StateReply[];
      try {
        read = await Promise.all([
          link.command(["HGET", dayKey, "cost_micros"]),
          link.command(["HGET", monthKey, "cost_micros"]),
        ]);
      } catch (err) {
        // Redis away: a key this sidecar has seen keeps its budget on the spend last read,
        // plus what it spent here since; an unseen one is refused (503) as before.
        const k = lastSpend.get(id);
        if (k === undefined || !(err instanceof StateUnavailable)) throw err;
        return {
          day: k.day === dayKey ? k.spend.day : 0,
          month: k.month === monthKey ? k.spend.month : 0,
        };
      }
      const mine = held.size > 0 || resends.length > 0 || inflight.length > 0
        ? unsent(dayKey, monthKey)
        : null;
      const spend = {
        day: int(read[0] ?? undefined) + (mine?.day ?? 0),
        month: int(read[1] ?? undefined) + (mine?.month ?? 0),
      };
      if (lastSpend.size >= LAST_SPEND_MAX) lastSpend.clear();
      lastSpend.set(id, { day: dayKey, month: monthKey, spend: { ...spend } });
      return spend;
    },
    record(id, p, d) {
      const k = lastSpend.get(id);
      if (k !== undefined) {
        if (k.day === useKey(id, p.day)) k.spend.day += d.cost_micros;
        if (k.month === useKey(id, p.month)) k.spend.month += d.cost_micros;
      }
      const w: Write = { day: useKey(id, p.day), month: useKey(id, p.month), delta: d };
      // In number order: nothing goes ahead of what waits to be written.
      if (link.ready() && !pending()) {
        send(w, ++seq).then((r) => {
          if (r !== "done" && link.ready()) later();
        });
        return;
      }
      if (!link.ready()) opts.onError?.(new StateUnavailable("app keys: Redis is not connected"));
      hold(w);
      if (link.ready() && flushing === null) later();
    },
    async get(id) {
      return parse(await link.command(["GET", recKey(id)]));
    },
    async list() {
      const ids = await link.command(["SMEMBERS", idsKey]);
      if (!Array.isArray(ids) || ids.length === 0) return [];
      const recs = await link.command(["MGET", ...ids.map((id) => recKey(String(id)))]);
      return (Array.isArray(recs) ? recs : []).map(parse).filter((r) => r !== null);
    },
    async save(rec) {
      const old = parse(await link.command(["GET", recKey(rec.id)]));
      const keys = [recKey(rec.id), hashKey(rec.hash), idsKey];
      if (old !== null && old.hash !== rec.hash) keys.push(hashKey(old.hash));
      await link.eval(SAVE, keys, [JSON.stringify(rec), rec.id]);
      forget(rec.hash);
      if (old !== null) forget(old.hash);
      // This sidecar's own change applies at once (others drop their copy on the notice), and
      // a key created here counts as seen here through an outage.
      remember(rec);
      await link.publish(channel, rec.hash);
      if (old !== null && old.hash !== rec.hash) await link.publish(channel, old.hash);
    },
    async counters(id, p) {
      const [day, month] = await Promise.all([
        link.command(["HMGET", useKey(id, p.day), ...FIELDS]),
        link.command(["HMGET", useKey(id, p.month), ...FIELDS]),
      ]);
      return { day: counterOf(day), month: counterOf(month) };
    },
    async close() {
      stopWatch();
      stopFlush();
      clearTimeout(retry);
      // What waits goes out now if it can (a flush under way is waited for).
      await flush();
      closed = true;
      const left = held.size + resends.length;
      if (left > 0) {
        opts.onError?.(
          new Error(`app keys: ${left} usage writes could not be written to Redis before closing`),
        );
      }
      try {
        await (await subscribed)();
      } catch { /* the link is going away anyway */ }
      await link.close();
    },
  };
}
