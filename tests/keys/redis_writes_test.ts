/**
 * The Redis key store's usage writes against a scripted link (no Redis): a write Redis could
 * not take while the link stayed up is sent again, a budget read during a flush counts what
 * is still being sent, and closing waits for the flush. The script's semantics (numbers
 * at or below the last applied are skipped) are the fake's.
 */
import assert from "node:assert/strict";
import { createRedisBackend } from "../../src/keys/redis.ts";
import type { RedisLink } from "../../src/state/redis_link.ts";
import { StateUnavailable } from "../../src/state/store.ts";
import { waitFor } from "../state/support.ts";

const PERIODS = { day: "2026-12-04", month: "2026-12", dayResetsAt: 0, monthResetsAt: 0 };
const usage = (micros: number) => ({ requests: 1, tokens: 1, cost_micros: micros });

/** A link whose RECORD applies in memory; `fail` and `gate` script the next evals. */
function fakeLink() {
  let up = true;
  const listeners = new Set<(ready: boolean) => void>();
  const counters = new Map<string, number>();
  let applied = 0;
  const plan: ("fail" | Promise<void>)[] = [];
  const link = {
    ready: () => up,
    onStateChange(cb: (ready: boolean) => void) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    onConnect: () => () => {},
    async eval(_script: unknown, keys: string[], args: (string | number)[]) {
      const step = plan.shift();
      if (step === "fail") throw new StateUnavailable("The queue is full");
      if (step !== undefined) await step;
      if (!up) throw new StateUnavailable("Redis is not connected");
      const n = Number(args[5]);
      if (n <= applied) return 0;
      applied = n;
      for (const k of keys.slice(0, 2)) counters.set(k, (counters.get(k) ?? 0) + Number(args[2]));
      return 1;
    },
    command(args: string[]) {
      if (!up) return Promise.reject(new StateUnavailable("Redis is not connected"));
      const v = counters.get(args[1]!);
      return Promise.resolve(v === undefined ? null : String(v));
    },
    publish: () => Promise.resolve(),
    subscribe: () => Promise.resolve(() => Promise.resolve()),
    close() {
      up = false;
      return Promise.resolve();
    },
  };
  return {
    link: link as unknown as RedisLink,
    plan,
    day: (id: string) => counters.get(`pilotfish:keys:use:${id}:${PERIODS.day}`) ?? 0,
    setUp(ready: boolean) {
      up = ready;
      for (const cb of listeners) cb(ready);
    },
  };
}

Deno.test("a write Redis could not take (a full queue, link up) is sent again; later writes wait behind it", async () => {
  const fake = fakeLink();
  const keys = createRedisBackend({ link: fake.link, onError: () => {} });
  try {
    fake.plan.push("fail");
    keys.record("a", PERIODS, usage(100));
    await waitFor("the failure", () => fake.plan.length === 0);
    keys.record("b", PERIODS, usage(500));
    await waitFor("both written", () => fake.day("a") === 100 && fake.day("b") === 500, 5_000);
  } finally {
    await keys.close();
  }
});

Deno.test("a budget read while the outage's writes are being sent counts them", async () => {
  const fake = fakeLink();
  const keys = createRedisBackend({ link: fake.link, onError: () => {} });
  const gate = Promise.withResolvers<void>();
  try {
    fake.setUp(false);
    keys.record("a", PERIODS, usage(100));
    keys.record("b", PERIODS, usage(500));
    fake.plan.push(gate.promise);
    fake.setUp(true); // the flush starts; a's write waits on the gate
    assert.equal((await keys.spend("b", PERIODS)).day, 500);
    gate.resolve();
    await waitFor("written", () => fake.day("b") === 500);
    assert.equal((await keys.spend("b", PERIODS)).day, 500, "not counted twice once written");
  } finally {
    gate.resolve();
    await keys.close();
  }
});

Deno.test("closing during a flush waits for it: nothing held is lost", async () => {
  const fake = fakeLink();
  const keys = createRedisBackend({ link: fake.link, onError: () => {} });
  fake.setUp(false);
  keys.record("a", PERIODS, usage(100));
  keys.record("b", PERIODS, usage(500));
  const gate = Promise.withResolvers<void>();
  fake.plan.push(gate.promise);
  fake.setUp(true);
  const closing = keys.close();
  gate.resolve();
  await closing;
  assert.equal(fake.day("a"), 100);
  assert.equal(fake.day("b"), 500);
});

Deno.test("a first try skipped behind a higher number (a reordered retry) is sent again with a new one", async () => {
  const fake = fakeLink();
  const keys = createRedisBackend({ link: fake.link, onError: () => {} });
  try {
    const gate = Promise.withResolvers<void>();
    fake.plan.push(gate.promise); // number 1 waits, number 2 gets there first
    keys.record("a", PERIODS, usage(100));
    keys.record("b", PERIODS, usage(500));
    await waitFor("b written", () => fake.day("b") === 500);
    gate.resolve();
    await waitFor("a written too", () => fake.day("a") === 100, 5_000);
  } finally {
    await keys.close();
  }
});
