/**
 * The `StateStore` contract: what the memory and the Redis store must do identically (get/set,
 * TTLs, counters, scripts, pub/sub, argument errors).
 * @module
 */
import assert from "node:assert/strict";
import {
  StateCommandError,
  type StateScript,
  type StateStore,
  StateUnavailable,
} from "../../src/state/store.ts";
import { within } from "../state/support.ts";

export interface StateFixture {
  store: StateStore;
  /**
   * Let `ms` pass on the store's TTL clock: the memory store's injected clock moves; Redis
   * expires on its own clock, so its fixture has to let real time pass.
   */
  advance(ms: number): Promise<void>;
  /** Release what the fixture holds besides the store (e.g. the Redis link). */
  dispose?(): Promise<void>;
}

export interface StateContractHooks {
  before?: () => Promise<void>;
  after?: () => Promise<void>;
}

/** Register one `Deno.test` with a step per case; each case gets a fresh, isolated store. */
export function runStateStoreContract(
  name: string,
  makeFixture: () => Promise<StateFixture> | StateFixture,
  hooks: StateContractHooks = {},
): void {
  Deno.test(`${name}: StateStore contract`, async (t) => {
    await hooks.before?.();
    try {
      for (const [title, body] of CASES) {
        await t.step(title, async () => {
          const fx = await makeFixture();
          try {
            await body(fx.store, fx);
          } finally {
            await fx.store.close();
            await fx.dispose?.();
          }
        });
      }
    } finally {
      await hooks.after?.();
    }
  });
}

/**
 * A fixed-window limiter, the rate limiter's shape: KEYS count, last. ARGV limit, ttl, who.
 * Admits while the count is under the limit, remembers the last admitted caller; returns
 * {admitted 0|1, count, last}.
 */
export const TAKE: StateScript = {
  lua: `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return {0, n, redis.call('GET', KEYS[2])} end
n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
redis.call('SET', KEYS[2], ARGV[3])
return {1, n, ARGV[3]}
`,
  local(data, keys, args) {
    const [count, last] = keys as [string, string];
    const [limit, ttl, who] = args as [string, string, string];
    const n = Number(data.get(count) ?? "0");
    if (n >= Number(limit)) return [0, n, data.get(last)];
    const next = data.incr(count, 1, Number(ttl));
    data.set(last, who);
    return [1, next, who];
  },
};

type Case = (s: StateStore, fx: StateFixture) => Promise<void>;

/** Resolves with the first `n` messages `subscribe` delivers. */
function collector(n: number) {
  const messages: string[] = [];
  const { promise, resolve } = Promise.withResolvers<string[]>();
  return {
    messages,
    done: promise,
    onMessage: (m: string) => {
      messages.push(m);
      if (messages.length === n) resolve([...messages]);
    },
  };
}

const CASES: [string, Case][] = [
  ["get, set, overwrite and del", async (s) => {
    assert.equal(await s.get("a"), null);
    assert.equal(await s.set("a", "1"), true);
    assert.equal(await s.get("a"), "1");
    assert.equal(await s.set("a", "two"), true);
    assert.equal(await s.get("a"), "two");
    assert.equal(await s.set("empty", ""), true);
    assert.equal(await s.get("empty"), "");
    assert.equal(await s.del("a"), true);
    assert.equal(await s.del("a"), false);
    assert.equal(await s.get("a"), null);
    assert.equal(s.available(), true);
  }],

  ["a TTL expires the key; a plain set clears it", async (s, fx) => {
    await s.set("t", "v", { ttlMs: 40 });
    const left = await s.ttl("t");
    assert.ok(left !== null && left > 0 && left <= 40, `ttl ${left}`);
    await s.set("keep", "v", { ttlMs: 40 });
    await s.set("keep", "w"); // no TTL: never expires
    assert.equal(await s.ttl("keep"), Infinity);
    assert.equal(await s.ttl("missing"), null);
    await fx.advance(60);
    assert.equal(await s.get("t"), null);
    assert.equal(await s.ttl("t"), null);
    assert.equal(await s.get("keep"), "w");
  }],

  ["ifAbsent writes only a missing key", async (s, fx) => {
    assert.equal(await s.set("lock", "a", { ifAbsent: true, ttlMs: 40 }), true);
    assert.equal(await s.set("lock", "b", { ifAbsent: true }), false);
    assert.equal(await s.get("lock"), "a");
    await fx.advance(60);
    assert.equal(await s.set("lock", "c", { ifAbsent: true }), true);
    assert.equal(await s.get("lock"), "c");
  }],

  ["concurrent ifAbsent: exactly one wins", async (s) => {
    const wins = await Promise.all(
      Array.from({ length: 20 }, (_, i) => s.set("slot", String(i), { ifAbsent: true })),
    );
    assert.equal(wins.filter(Boolean).length, 1);
  }],

  ["incr counts from 0; the TTL goes to the call that creates the key", async (s, fx) => {
    // 400 ms: a real Redis on a loaded machine must not expire the key between these calls.
    assert.equal(await s.incr("c", 1, 400), 1);
    assert.equal(await s.incr("c", 5, 10_000), 6); // the window is not extended
    const left = await s.ttl("c");
    assert.ok(left !== null && left <= 400, `ttl ${left}`);
    assert.equal(await s.incr("c", -8), -2);
    assert.equal(await s.get("c"), "-2");
    await fx.advance(450);
    // The window ran out: the next call starts a new one.
    assert.equal(await s.incr("c", 3, 10_000), 3);
    const fresh = await s.ttl("c");
    assert.ok(fresh !== null && fresh > 400 && fresh <= 10_000, `ttl ${fresh}`);
    // Without a TTL the counter never expires; a later TTL applies to it.
    assert.equal(await s.incr("forever", 2), 2);
    assert.equal(await s.ttl("forever"), Infinity);
    assert.equal(await s.incr("forever", 1, 5_000), 3);
    const late = await s.ttl("forever");
    assert.ok(late !== null && late <= 5_000, `ttl ${late}`);
  }],

  ["concurrent incr loses no update", async (s) => {
    await Promise.all(Array.from({ length: 50 }, () => s.incr("n", 2)));
    assert.equal(await s.get("n"), "100");
  }],

  ["incr of a value that is not an integer is a command error", async (s) => {
    await s.set("text", "abc");
    await assert.rejects(s.incr("text", 1), StateCommandError);
    await s.set("float", "1.5");
    await assert.rejects(s.incr("float", 1), StateCommandError);
    assert.equal(await s.get("text"), "abc");
  }],

  ["bad arguments are RangeErrors, and nothing is written", async (s) => {
    for (const ttlMs of [0, -1, Number.NaN, Infinity]) {
      await assert.rejects(s.set("k", "v", { ttlMs }), RangeError, `ttl ${ttlMs}`);
      await assert.rejects(s.incr("k", 1, ttlMs), RangeError, `ttl ${ttlMs}`);
    }
    for (const by of [1.5, Number.NaN, 2 ** 60]) {
      await assert.rejects(s.incr("k", by), RangeError, `by ${by}`);
    }
    assert.equal(await s.get("k"), null);
  }],

  ["a fractional TTL rounds up to whole milliseconds", async (s) => {
    await s.set("f", "v", { ttlMs: 0.2 });
    const left = await s.ttl("f");
    assert.ok(left === null || (left >= 0 && left <= 1), `ttl ${left}`);
  }],

  ["eval runs a multi-key script atomically", async (s) => {
    const keys = ["win", "last"];
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => s.eval(TAKE, keys, [5, 60_000, `c${i}`])),
    );
    const admitted = results.filter((r) => Array.isArray(r) && r[0] === 1);
    assert.equal(admitted.length, 5);
    assert.deepEqual(admitted.map((r) => (r as unknown[])[1]).sort(), [1, 2, 3, 4, 5]);
    const refused = await s.eval(TAKE, keys, [5, 60_000, "late"]);
    assert.ok(Array.isArray(refused));
    assert.equal(refused[0], 0);
    assert.equal(refused[1], 5);
    assert.equal(refused[2], await s.get("last"));
    // Its keys are the store's keys.
    assert.equal(await s.get("win"), "5");
    const left = await s.ttl("win");
    assert.ok(left !== null && left > 0 && left <= 60_000);
    // Other keys are untouched; a nil reply is null.
    const other = await s.eval(TAKE, ["win2", "last2"], [0, 1_000, "x"]);
    assert.deepEqual(other, [0, 0, null]);
  }],

  ["pub/sub delivers in order to every subscriber of the channel", async (s) => {
    const a = collector(3);
    const b = collector(3);
    const other = collector(1);
    const offA = await s.subscribe("ch", a.onMessage);
    const offB = await s.subscribe("ch", b.onMessage);
    const offOther = await s.subscribe("other", other.onMessage);
    await s.publish("ch", "1");
    await s.publish("ch", "2");
    await s.publish("ch", "3");
    assert.deepEqual(await within("A's messages", a.done), ["1", "2", "3"]);
    assert.deepEqual(await within("B's messages", b.done), ["1", "2", "3"]);
    // After unsubscribing, A gets nothing more; B still does. "other" proves delivery ran.
    await offA();
    await s.publish("ch", "4");
    await s.publish("other", "done");
    await within("the other channel", other.done);
    assert.deepEqual(a.messages, ["1", "2", "3"]);
    assert.deepEqual(b.messages, ["1", "2", "3", "4"]);
    await offB();
    await offOther();
    // Unsubscribing twice is harmless.
    await offA();
  }],

  ["a closed store refuses calls", async (s) => {
    await s.set("k", "v");
    await s.close();
    assert.equal(s.available(), false);
    await assert.rejects(s.get("k"), StateUnavailable);
    await assert.rejects(s.incr("k", 1), StateUnavailable);
    await assert.rejects(s.publish("ch", "m"), StateUnavailable);
  }],
];
