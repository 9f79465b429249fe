import assert from "node:assert/strict";
import { createRoutingState, orderTargets, type Target, targetKey } from "../../src/routing/mod.ts";

const A: Target = { provider: "a", model: "m" };
const B: Target = { provider: "b", model: "m" };
const C: Target = { provider: "c", model: "m" };

/** Deterministic PRNG (mulberry32) so spreads are reproducible. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function firstPicks(n: number, pick: () => Target): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const p = pick().provider;
    counts.set(p, (counts.get(p) ?? 0) + 1);
  }
  return counts;
}

Deno.test("orderTargets() priority keeps the configured order", () => {
  const state = createRoutingState();
  assert.deepEqual(orderTargets([A, B, C], { strategy: "priority" }, "m", state, Math.random), [
    A,
    B,
    C,
  ]);
  assert.deepEqual(orderTargets([A, B, C], undefined, "m", state, Math.random), [A, B, C]);
});

Deno.test("orderTargets() round-robin spreads 1000 requests evenly (±5%) and keeps fallbacks", () => {
  const state = createRoutingState();
  const counts = firstPicks(1000, () => {
    const order = orderTargets([A, B, C], { strategy: "round-robin" }, "m", state, Math.random);
    assert.equal(order.length, 3, "every target stays in the list as a fallback");
    return order[0]!;
  });
  for (const p of ["a", "b", "c"]) {
    const share = (counts.get(p) ?? 0) / 1000;
    assert.ok(Math.abs(share - 1 / 3) <= 0.05, `${p}: ${share}`);
  }
  // Routes rotate independently.
  const other = orderTargets([A, B], { strategy: "round-robin" }, "other", state, Math.random);
  assert.deepEqual(other, [A, B]);
});

Deno.test("orderTargets() weighted follows the weights within ±5% over 1000 requests", () => {
  const state = createRoutingState();
  const random = seeded(42);
  const weights = [6, 3, 1];
  const counts = firstPicks(
    1000,
    () => orderTargets([A, B, C], { strategy: "weighted", weights }, "m", state, random)[0]!,
  );
  const expected: Record<string, number> = { a: 0.6, b: 0.3, c: 0.1 };
  for (const [p, want] of Object.entries(expected)) {
    const share = (counts.get(p) ?? 0) / 1000;
    assert.ok(Math.abs(share - want) <= 0.05, `${p}: ${share} vs ${want}`);
  }
  // A permutation: the rest follow as fallbacks.
  const order = orderTargets([A, B, C], { strategy: "weighted", weights }, "m", state, random);
  assert.deepEqual(order.map((t) => t.provider).sort(), ["a", "b", "c"]);
});

Deno.test("orderTargets() least-latency prefers the fastest, tries unmeasured ones, explores", () => {
  const state = createRoutingState();
  const noExplore = () => 0.99; // above EXPLORATION: no exploration
  // Unmeasured targets go first so every target gets measured.
  state.observeLatency(targetKey(A), 300);
  assert.deepEqual(
    orderTargets([A, B], { strategy: "least-latency" }, "m", state, noExplore).map((t) =>
      t.provider
    ),
    ["b", "a"],
  );
  state.observeLatency(targetKey(B), 900);
  assert.deepEqual(
    orderTargets([A, B], { strategy: "least-latency" }, "m", state, noExplore).map((t) =>
      t.provider
    ),
    ["a", "b"],
  );
  // The EWMA follows a recovery: B gets fast, and after a few observations leads.
  for (let i = 0; i < 6; i++) state.observeLatency(targetKey(B), 50);
  assert.equal(orderTargets([A, B], { strategy: "least-latency" }, "m", state, noExplore)[0], B);
  // Exploration: about 10% of requests put a random target first.
  const random = seeded(7);
  let slowFirst = 0;
  for (let i = 0; i < 2000; i++) {
    if (orderTargets([A, B], { strategy: "least-latency" }, "m", state, random)[0] === A) {
      slowFirst++;
    }
  }
  assert.ok(slowFirst > 40 && slowFirst < 200, `slow target first ${slowFirst}/2000 times`);
});

Deno.test("orderTargets() moves unavailable targets (open breaker) to the back, never drops them", () => {
  const state = createRoutingState();
  const available = (t: Target) => t.provider !== "a";
  assert.deepEqual(orderTargets([A, B, C], undefined, "m", state, Math.random, available), [
    B,
    C,
    A,
  ]);
  assert.deepEqual(orderTargets([A], undefined, "m", state, Math.random, () => false), [A]);
});
