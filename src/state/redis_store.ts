/**
 * The `redis` state store, on a `RedisLink`: fleet-wide, each call one command or one script
 * (atomic), keys and channels under a prefix. See `StateStore` for the guarantees.
 * @module
 */
import { type LuaScript, luaScript, type RedisLink } from "./redis_link.ts";
import {
  incrAmount,
  type SetOptions,
  StateCommandError,
  type StateReply,
  type StateScript,
  type StateStore,
  StateUnavailable,
  ttlMillis,
  type Unsubscribe,
} from "./store.ts";

export interface RedisStateStoreOptions {
  /** The connection; it may be shared with other users, so the store never closes it. */
  link: RedisLink;
  /**
   * Namespace of every key and channel. On a Redis Cluster a script's keys must share a hash
   * slot: give them one tag (`{user:42}:count`, `{user:42}:window`); the prefix carries none,
   * so the keys' own tags decide the slot.
   */
  prefix?: string;
}

export const DEFAULT_STATE_PREFIX = "pilotfish:state:";

/** KEYS key. ARGV by, ttl ('' for none). The TTL goes to a key that has none yet. */
const INCR = luaScript(`
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[2] ~= '' and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
`);

export function createRedisStateStore(opts: RedisStateStoreOptions): StateStore {
  const { link } = opts;
  const prefix = opts.prefix ?? DEFAULT_STATE_PREFIX;
  const key = (k: string) => prefix + k;
  // Hashed once per script object, not per call.
  const compiled = new WeakMap<StateScript, LuaScript>();
  const unsubscribes = new Set<Unsubscribe>();
  let closed = false;

  const open = () => {
    if (closed) throw new StateUnavailable("state: the store is closed");
  };
  const integer = (reply: StateReply): number => {
    if (typeof reply !== "number" || !Number.isSafeInteger(reply)) {
      throw new StateCommandError(`state: expected a safe integer reply, got ${reply}`);
    }
    return reply;
  };

  return {
    backend: "redis",
    available: () => !closed && link.ready(),

    async get(k) {
      open();
      const reply = await link.command(["GET", key(k)]);
      return typeof reply === "string" ? reply : null;
    },

    async set(k, value, setOpts: SetOptions = {}) {
      open();
      const args = ["SET", key(k), value];
      if (setOpts.ttlMs !== undefined) args.push("PX", String(ttlMillis(setOpts.ttlMs)));
      if (setOpts.ifAbsent) args.push("NX");
      return (await link.command(args)) !== null;
    },

    async del(k) {
      open();
      return integer(await link.command(["DEL", key(k)])) > 0;
    },

    async incr(k, by, ttlMs) {
      open();
      const ttl = ttlMs === undefined ? "" : ttlMillis(ttlMs);
      return integer(await link.eval(INCR, [key(k)], [incrAmount(by), ttl]));
    },

    async ttl(k) {
      open();
      const left = integer(await link.command(["PTTL", key(k)]));
      if (left === -2) return null;
      return left === -1 ? Infinity : left;
    },

    async eval(script, keys, args) {
      open();
      let lua = compiled.get(script);
      if (!lua) compiled.set(script, lua = luaScript(script.lua));
      return await link.eval(lua, keys.map(key), args);
    },

    async publish(channel, message) {
      open();
      await link.publish(key(channel), message);
    },

    async subscribe(channel, onMessage) {
      open();
      const off = await link.subscribe(key(channel), onMessage);
      const unsubscribe: Unsubscribe = async () => {
        if (unsubscribes.delete(unsubscribe)) await off();
      };
      unsubscribes.add(unsubscribe);
      return unsubscribe;
    },

    async close() {
      closed = true;
      await Promise.all([...unsubscribes].map((off) => off()));
    },
  };
}
