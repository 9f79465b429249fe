/**
 * The `BreakerStore` contract: what every backend (memory, redis, redis on its memory
 * fallback) must do identically. Time is passed in explicitly, so nothing sleeps through a
 * window or a cooldown.
 * @module
 */
import assert from "node:assert/strict";
import type { BreakerStore, BreakerTiming } from "../../src/breaker/store.ts";

export const CONTRACT_TIMING: BreakerTiming = {
  failureThreshold: 3,
  windowMs: 10_000,
  cooldownMs: 30_000,
  rollupWindowMs: 60_000,
};

export interface ContractHooks {
  /** Runs once before the cases, inside the test (e.g. start a server). */
  before?: () => Promise<void>;
  after?: () => Promise<void>;
}

/**
 * Register one `Deno.test` named `name` with a step per contract case. `makeStore` gives a
 * fresh, isolated store (its own namespace) and may wait until it is ready.
 */
export function runBreakerStoreContract(
  name: string,
  makeStore: (timing: BreakerTiming) => Promise<BreakerStore> | BreakerStore,
  hooks: ContractHooks = {},
): void {
  Deno.test(`${name}: BreakerStore contract`, async (t) => {
    await hooks.before?.();
    try {
      for (const [title, body] of CASES) {
        await t.step(title, async () => {
          const store = await makeStore(CONTRACT_TIMING);
          try {
            await body(store, CONTRACT_TIMING);
          } finally {
            await store.close();
          }
        });
      }
    } finally {
      await hooks.after?.();
    }
  });
}

type Case = (store: BreakerStore, timing: BreakerTiming) => Promise<void>;

// Realistic epoch milliseconds: Redis stores them as scores and TTLs run on its own clock.
const T0 = Date.now();
const sorted = (xs: string[]) => [...xs].sort();

const CASES: [string, Case][] = [
  ["the threshold opens a key exactly once", async (s, { cooldownMs }) => {
    assert.equal(s.openUntil("p:m"), null);
    assert.equal(await s.recordFailure("p:m", "p", T0), false);
    assert.equal(await s.recordFailure("p:m", "p", T0 + 1), false);
    assert.equal(s.failures("p:m", T0 + 1), 2);
    assert.equal(s.openUntil("p:m"), null);
    assert.equal(await s.recordFailure("p:m", "p", T0 + 2), true);
    assert.equal(s.openUntil("p:m"), T0 + 2 + cooldownMs);
    // Further failures while open neither re-open nor move the cooldown.
    assert.equal(await s.recordFailure("p:m", "p", T0 + 3), false);
    assert.equal(await s.recordFailure("p:m", "p", T0 + 4), false);
    assert.equal(s.openUntil("p:m"), T0 + 2 + cooldownMs);
    assert.deepEqual(s.rollupKeys("p", T0 + 5), ["p:m"]);
  }],

  ["failures slide out of the window", async (s, { windowMs }) => {
    await s.recordFailure("p:m", "p", T0);
    await s.recordFailure("p:m", "p", T0 + 100);
    assert.equal(s.failures("p:m", T0 + windowMs - 1), 2);
    // At exactly one window later the first failure no longer counts.
    assert.equal(s.failures("p:m", T0 + windowMs), 1);
    assert.equal(await s.recordFailure("p:m", "p", T0 + windowMs), false);
    assert.equal(s.failures("p:m", T0 + windowMs), 2);
    assert.equal(s.openUntil("p:m"), null);
    assert.equal(await s.recordFailure("p:m", "p", T0 + windowMs + 50), true);
    assert.equal(s.failures("p:m", T0 + 100 + 2 * windowMs), 0);
  }],

  ["keys are isolated from each other", async (s) => {
    for (let i = 0; i < 3; i++) await s.recordFailure("p:a", "p", T0 + i);
    assert.notEqual(s.openUntil("p:a"), null);
    assert.equal(s.openUntil("p:b"), null);
    assert.equal(s.failures("p:b", T0 + 3), 0);
    assert.equal(await s.recordFailure("p:b", "p", T0 + 3), false);
    assert.deepEqual(s.rollupKeys("q", T0 + 3), []);
  }],

  ["reopen opens for another cooldown and re-arms the rollup", async (s, timing) => {
    const { cooldownMs, rollupWindowMs } = timing;
    for (let i = 0; i < 3; i++) await s.recordFailure("p:m", "p", T0 + i);
    const probeAt = T0 + 2 + cooldownMs;
    assert.equal(await s.tryAcquireProbe("p:m", probeAt), true);
    await s.reopen("p:m", "p", probeAt + 10);
    assert.equal(s.openUntil("p:m"), probeAt + 10 + cooldownMs);
    // Re-armed at the failed probe, so it outlives the first open's rollup window.
    assert.deepEqual(s.rollupKeys("p", T0 + 2 + rollupWindowMs + 1), ["p:m"]);
    // No second probe while it is open again (a stale half-open view asking), and the slot
    // is free once that cooldown is over (well within a cooldown of the first probe).
    assert.equal(await s.tryAcquireProbe("p:m", probeAt + 11), false);
    assert.equal(await s.tryAcquireProbe("p:m", probeAt + 10 + cooldownMs), true);
    // reopen works on a key that never opened by threshold, too.
    await s.reopen("p:x", "p", T0);
    assert.equal(s.openUntil("p:x"), T0 + cooldownMs);
  }],

  ["closeKey closes, forgets failures and drops the key from the rollup", async (s, timing) => {
    for (let i = 0; i < 3; i++) await s.recordFailure("p:m", "p", T0 + i);
    for (let i = 0; i < 3; i++) await s.recordFailure("p:n", "p", T0 + i);
    assert.deepEqual(sorted(s.rollupKeys("p", T0 + 3)), ["p:m", "p:n"]);
    // No probe while open; one once half-open.
    assert.equal(await s.tryAcquireProbe("p:m", T0 + 3), false);
    assert.equal(await s.tryAcquireProbe("p:m", T0 + 2 + timing.cooldownMs), true);
    await s.closeKey("p:m", "p");
    assert.equal(s.openUntil("p:m"), null);
    assert.equal(s.failures("p:m", T0 + 3), 0);
    assert.deepEqual(s.rollupKeys("p", T0 + 3), ["p:n"]);
    // Its probe slot is free again, and it takes a full threshold to open again.
    assert.equal(await s.tryAcquireProbe("p:m", T0 + 4), true);
    assert.equal(await s.recordFailure("p:m", "p", T0 + 5), false);
    assert.equal(await s.recordFailure("p:m", "p", T0 + 6), false);
    assert.equal(await s.recordFailure("p:m", "p", T0 + 7), true);
    // Closing a key that is not open is harmless.
    await s.closeKey("p:never", "p");
    assert.equal(s.openUntil("p:never"), null);
  }],

  ["rollupKeys counts distinct keys inside the rollup window, per provider", async (s, timing) => {
    const w = timing.rollupWindowMs;
    for (let i = 0; i < 3; i++) await s.recordFailure("p:a", "p", T0 + i);
    for (let i = 0; i < 3; i++) await s.recordFailure("p:b", "p", T0 + 500 + i);
    for (let i = 0; i < 3; i++) await s.recordFailure("q:a", "q", T0 + i);
    // Dedup by key: re-arming p:a does not count it twice.
    await s.reopen("p:a", "p", T0 + 2);
    assert.deepEqual(sorted(s.rollupKeys("p", T0 + 502)), ["p:a", "p:b"]);
    assert.deepEqual(s.rollupKeys("q", T0 + 502), ["q:a"]);
    assert.deepEqual(sorted(s.rollupKeys("p", T0 + 2 + w - 1)), ["p:a", "p:b"]);
    assert.deepEqual(s.rollupKeys("p", T0 + 2 + w), ["p:b"]);
    assert.deepEqual(s.rollupKeys("p", T0 + 502 + w), []);
    assert.deepEqual(s.rollupKeys("nobody", T0), []);
  }],

  ["a half-open key has a single probe slot", async (s, { cooldownMs }) => {
    assert.equal(await s.tryAcquireProbe("p:m", T0), true);
    assert.equal(await s.tryAcquireProbe("p:m", T0 + 1), false);
    assert.equal(await s.tryAcquireProbe("p:m", T0 + cooldownMs - 1), false);
    // Slots are per key.
    assert.equal(await s.tryAcquireProbe("p:other", T0 + 1), true);
    // A probe that never reported back frees its slot after a cooldown.
    assert.equal(await s.tryAcquireProbe("p:m", T0 + cooldownMs), true);
    assert.equal(await s.tryAcquireProbe("p:m", T0 + cooldownMs + 1), false);
  }],

  ["concurrent probes: exactly one wins", async (s) => {
    const wins = await Promise.all(
      Array.from({ length: 10 }, () => s.tryAcquireProbe("p:m", T0)),
    );
    assert.equal(wins.filter(Boolean).length, 1);
  }],

  ["releaseProbe gives the slot back", async (s) => {
    assert.equal(await s.tryAcquireProbe("p:m", T0), true);
    await s.releaseProbe("p:m");
    assert.equal(await s.tryAcquireProbe("p:m", T0 + 1), true);
    assert.equal(await s.tryAcquireProbe("p:m", T0 + 2), false);
    // Releasing a slot nobody holds is harmless.
    await s.releaseProbe("p:none");
    assert.equal(await s.tryAcquireProbe("p:none", T0), true);
  }],

  ["fractional timestamps behave like whole ones", async (s, { cooldownMs }) => {
    assert.equal(await s.tryAcquireProbe("p:m", T0 + 0.5), true);
    assert.equal(await s.tryAcquireProbe("p:m", T0 + 1.5), false);
    assert.equal(await s.tryAcquireProbe("p:m", T0 + 0.5 + cooldownMs), true);
    for (let i = 0; i < 3; i++) await s.recordFailure("p:f", "p", T0 + i + 0.25);
    assert.equal(s.openUntil("p:f"), T0 + 2.25 + cooldownMs);
    assert.deepEqual(s.rollupKeys("p", T0 + 3), ["p:f"]);
  }],

  ["describe() names the backend", (s) => {
    const d = s.describe();
    assert.equal(typeof d.backend, "string");
    assert.ok(d.backend.length > 0);
    assert.equal(typeof d.fallback, "boolean");
    return Promise.resolve();
  }],
];
