/**
 * Rollups in Redis (`state.backend: redis`), shared by every sidecar of a fleet: each flush
 * is one script that adds this sidecar's deltas with HINCRBY (atomic, so N sidecars sum
 * exactly), and a report is one script that reads the buckets a query covers. Rows are
 * hashes `<prefix>row:<period>:<bucket>:<dim>:<value>`, listed per bucket in a set, buckets
 * per period in a sorted set; all expire with the retention.
 * @module
 */
import { luaScript, type RedisLink } from "../state/redis_link.ts";
import {
  COUNTERS,
  type Counters,
  type Dimension,
  type Period,
  RETENTION_MS,
  type RollupBackend,
  type RollupRow,
  zeroCounters,
} from "./rollup.ts";

export const DEFAULT_USAGE_PREFIX = "pilotfish:usage:";

const NAMES = `{${COUNTERS.map((c) => `"${c}"`).join(",")}}`;

/** How long Redis remembers a writer's last batch: past any outage a resend follows. */
const BATCH_MEMORY_S = 7 * 24 * 3600;

// ARGV: prefix, hour cutoff, day cutoff, writer, batch number (a batch at or below the
// writer's last is a resend of one already applied: skipped), then per row: period, bucket,
// dim, value, ttl (s), and one delta per counter.
const APPLY = luaScript(`
local names = ${NAMES}
local p = ARGV[1]
if ARGV[4] ~= "" then
  local seen = p .. "applied:" .. ARGV[4]
  if tonumber(ARGV[5]) <= tonumber(redis.call("GET", seen) or "0") then return 0 end
  redis.call("SET", seen, ARGV[5], "EX", ${BATCH_MEMORY_S})
end
redis.call("ZREMRANGEBYSCORE", p .. "buckets:hour", "-inf", "(" .. ARGV[2])
redis.call("ZREMRANGEBYSCORE", p .. "buckets:day", "-inf", "(" .. ARGV[3])
local i = 6
while i <= #ARGV do
  local period, bucket, dim, value, ttl = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local key = p .. "row:" .. period .. ":" .. bucket .. ":" .. dim .. ":" .. value
  for j = 1, #names do
    local n = tonumber(ARGV[i + 4 + j])
    if n ~= 0 then redis.call("HINCRBY", key, names[j], n) end
  end
  redis.call("EXPIRE", key, ttl)
  local members = p .. "members:" .. period .. ":" .. bucket
  redis.call("SADD", members, dim .. "\\31" .. value)
  redis.call("EXPIRE", members, ttl)
  redis.call("ZADD", p .. "buckets:" .. period, bucket, bucket)
  i = i + 5 + #names
end
return 1
`);

// ARGV: prefix, period, since, until. Returns bucket, dim, value, counters... flattened.
const READ = luaScript(`
local names = ${NAMES}
local p, period = ARGV[1], ARGV[2]
local out = {}
local buckets = redis.call("ZRANGEBYSCORE", p .. "buckets:" .. period, ARGV[3], "(" .. ARGV[4])
for _, b in ipairs(buckets) do
  local members = redis.call("SMEMBERS", p .. "members:" .. period .. ":" .. b)
  for _, m in ipairs(members) do
    local sep = string.find(m, "\\31", 1, true)
    local dim, value = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
    local h = redis.call("HMGET", p .. "row:" .. period .. ":" .. b .. ":" .. dim .. ":" .. value, unpack(names))
    out[#out + 1] = b
    out[#out + 1] = dim
    out[#out + 1] = value
    for j = 1, #names do out[#out + 1] = h[j] or "0" end
  end
end
return out
`);

export function createRedisRollups(link: RedisLink, prefix = DEFAULT_USAGE_PREFIX): RollupBackend {
  return {
    kind: "redis",
    async ready() {
      if (link.ready()) return;
      await new Promise<void>((resolve) => {
        const off = link.onStateChange((up) => {
          if (!up) return;
          off();
          resolve();
        });
      });
    },
    async apply(rows, now, batch) {
      if (rows.length === 0) return;
      const args: (string | number)[] = [
        prefix,
        now - RETENTION_MS.hour,
        now - RETENTION_MS.day,
        batch?.writer ?? "",
        batch?.seq ?? 0,
      ];
      for (const r of rows) {
        args.push(r.period, r.bucket, r.dim, r.value, Math.ceil(RETENTION_MS[r.period] / 1000));
        for (const c of COUNTERS) args.push(r.counters[c]);
      }
      // The key names the slot a cluster runs it on (every key shares it: slottedPrefix).
      await link.eval(APPLY, [`${prefix}buckets:hour`], args);
    },
    async rows(q) {
      const flat = await link.eval(READ, [`${prefix}buckets:hour`], [
        prefix,
        q.period,
        q.since,
        q.until,
      ]);
      const out: RollupRow[] = [];
      if (!Array.isArray(flat)) return out;
      const width = 3 + COUNTERS.length;
      for (let i = 0; i + width <= flat.length; i += width) {
        const counters: Counters = zeroCounters();
        COUNTERS.forEach((c, j) => counters[c] = Number(flat[i + 3 + j]));
        out.push({
          period: q.period as Period,
          bucket: Number(flat[i]),
          dim: String(flat[i + 1]) as Dimension,
          value: String(flat[i + 2]),
          counters,
        });
      }
      return out;
    },
    close: () => link.close(),
  };
}
