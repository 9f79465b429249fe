import assert from "node:assert/strict";
import {
  runToggle,
  summarizeToggle,
  type ToggleBlock,
  toggleOrder,
  wholeRounds,
} from "../../bench/toggle.ts";
import { cpuNs } from "../../bench/proc.ts";

Deno.test("toggleOrder() alternates which config opens a round, so drift falls on all", () => {
  assert.deepEqual(toggleOrder(3), [0, 1, 1, 0, 0, 1]);
  // Two variants: a warm-up round, then the rotation from its start.
  const order = toggleOrder(7, 2);
  assert.deepEqual(
    order.slice(3),
    [0, 1, 2, 2, 1, 0, 1, 2, 0, 0, 2, 1, 2, 0, 1, 1, 0, 2],
  );
  for (const variants of [2, 3]) {
    const n = variants + 1;
    const rounds = wholeRounds(12, variants);
    assert.equal((rounds - 1) % (2 * n), 0);
    const blocks = toggleOrder(rounds, variants);
    // Over whole periods of counted rounds, every config holds every place equally often...
    const places = new Map<string, number>();
    for (let i = n; i < blocks.length; i++) {
      const key = `${blocks[i]}@${i % n}`;
      places.set(key, (places.get(key) ?? 0) + 1);
    }
    assert.equal(places.size, n * n);
    assert.equal(new Set(places.values()).size, 1);
    // ...and opens a round right after itself equally often (the noise samples).
    const selves = new Map<number, number>();
    for (let i = 2 * n - 1; i + 1 < blocks.length; i += n) {
      if (blocks[i] === blocks[i + 1]) selves.set(blocks[i]!, (selves.get(blocks[i]!) ?? 0) + 1);
    }
    assert.equal(selves.size, n);
    assert.equal(new Set(selves.values()).size, 1);
  }
  assert.equal(wholeRounds(12, 1), 12);
  assert.equal(wholeRounds(12, 2), 13);
  assert.equal(wholeRounds(12, 3), 17);
});

const BASE = 0;
const VARIANT = 1;
const block = (
  config: number,
  p50: number,
  cpu: number | null,
  rps: number | null = null,
): ToggleBlock => ({ config, p50, cpuPerReq: cpu, rps, errors: 0 });

Deno.test("summarizeToggle(): variant minus base per pair after the first, and same-config neighbours as the noise", () => {
  const blocks = [
    block(BASE, 9, 900), // pair 0: the warm-up, not counted
    block(VARIANT, 9, 900),
    block(VARIANT, 0.530, 330), // pair 1: +30 µs, +30 µs CPU
    block(BASE, 0.500, 300),
    block(BASE, 0.510, 310), // pair 2: +20 µs, CPU unknown
    block(VARIANT, 0.530, null),
  ];
  const s = summarizeToggle(blocks);
  assert.equal(s.variants[0]?.p50?.n, 2);
  assert.ok(Math.abs((s.variants[0]?.p50?.median ?? 0) - 25) < 1e-6);
  assert.equal(s.variants[0]?.p50?.positive, 2);
  assert.equal(s.variants[0]?.cpu?.n, 1);
  assert.ok(Math.abs((s.variants[0]?.cpu?.median ?? 0) - 30) < 1e-6);
  // Neighbours with one config: blocks 3 and 4 (base then base): +10 µs, +10 µs CPU.
  assert.equal(s.noiseP50?.n, 1);
  assert.ok(Math.abs((s.noiseP50?.median ?? 0) - 10) < 1e-6);
  assert.ok(Math.abs((s.noiseCpu?.median ?? 0) - 10) < 1e-6);
  assert.equal(s.variants[0]?.rps, null);
  assert.ok(Math.abs((s.baseP50 ?? 0) - 0.505) < 1e-9);
  assert.equal(summarizeToggle([]).variants[0]?.p50, null);
});

Deno.test("summarizeToggle(): max req/s as the variant's share of its pair's base, and of a same-config neighbour as the noise", () => {
  const s = summarizeToggle([
    block(BASE, 1, 1, 9000), // the warm-up pair
    block(VARIANT, 1, 1, 1000),
    block(VARIANT, 0.5, 300, 8000), // pair 1: 80 % of the base
    block(BASE, 0.5, 300, 10000),
    block(BASE, 0.5, 300, 9000), // pair 2: 90 %
    block(VARIANT, 0.5, 300, 8100),
    block(VARIANT, 0.5, 300, 8100), // pair 3: the base unknown, left out
    block(BASE, 0.5, 300, null),
  ]);
  assert.equal(s.variants[0]?.rps?.n, 2);
  assert.ok(Math.abs((s.variants[0]?.rps?.median ?? 0) - -15) < 1e-6);
  assert.equal(s.variants[0]?.rps?.positive, 0);
  // Neighbours: base 10,000 then 9,000 (-10 %); variant 8,100 then 8,100 (0 %).
  assert.equal(s.noiseRps?.n, 2);
  assert.ok(Math.abs((s.noiseRps?.median ?? 0) - -5) < 1e-6);
});

Deno.test("summarizeToggle(): several variants, each against the base of its own round", () => {
  const s = summarizeToggle([
    block(0, 9, 900), // the warm-up round
    block(1, 9, 900),
    block(2, 9, 900),
    block(2, 0.560, 360), // round 1: variant 1 +10, variant 2 +60 µs
    block(1, 0.510, 310),
    block(0, 0.500, 300),
    block(0, 0.520, 320), // round 2: variant 1 +0, variant 2 +40 µs
    block(1, 0.520, 320),
    block(2, 0.560, 360),
  ], 2);
  assert.equal(s.variants.length, 2);
  assert.equal(s.variants[0]?.p50?.n, 2);
  assert.ok(Math.abs((s.variants[0]?.p50?.median ?? 0) - 5) < 1e-6);
  assert.ok(Math.abs((s.variants[1]?.p50?.median ?? 0) - 50) < 1e-6);
  assert.ok(Math.abs((s.variants[1]?.cpu?.median ?? 0) - 50) < 1e-6);
  // Noise: the base ending round 1 and opening round 2 (+20 µs).
  assert.equal(s.noiseP50?.n, 1);
  assert.ok(Math.abs((s.noiseP50?.median ?? 0) - 20) < 1e-6);
  assert.ok(Math.abs((s.baseP50 ?? 0) - 0.510) < 1e-9);
  // A round that opens with another config than the last one ended with: no noise sample.
  const rotated = summarizeToggle([
    block(0, 9, 900),
    block(1, 9, 900),
    block(2, 9, 900),
    block(2, 0.5, 300),
    block(1, 0.5, 300),
    block(0, 0.5, 300),
    block(1, 0.5, 300),
    block(2, 0.5, 300),
    block(0, 0.5, 300),
  ], 2);
  assert.equal(rotated.noiseP50, null);
  assert.equal(rotated.variants[1]?.p50?.n, 2);
});

Deno.test("runToggle() switches before each block, warms up, and measures CPU around the loop", async () => {
  const calls: string[] = [];
  let ns = 0;
  const blocks = await runToggle(2, {
    switchTo: (c) => {
      calls.push(`switch ${c}`);
      return Promise.resolve();
    },
    warmUp: () => {
      calls.push("warm");
      return Promise.resolve();
    },
    measure: () => {
      calls.push("measure");
      ns += 4_000_000; // 4 ms of CPU over 2 requests: 2,000 µs each
      return Promise.resolve({ latencies: [0.4, 0.2], errors: 1 });
    },
    cpuNs: () => Promise.resolve(ns),
    saturate: () => {
      calls.push("saturate");
      return Promise.resolve({ rps: 5000, errors: 2 });
    },
  }, () => {});
  assert.deepEqual(calls.slice(0, 8), [
    "switch 0",
    "warm",
    "measure",
    "saturate",
    "switch 1",
    "warm",
    "measure",
    "saturate",
  ]);
  assert.deepEqual(blocks.map((b) => b.config), [0, 1, 1, 0]);
  // The closed loop's CPU is not the open loop's: read before it starts.
  assert.equal(blocks[0]?.cpuPerReq, 2000);
  assert.equal(blocks[0]?.rps, 5000);
  assert.equal(blocks[0]?.errors, 3);
  assert.ok(blocks[0]!.p50 >= 0.2 && blocks[0]!.p50 <= 0.4);
});

Deno.test("cpuNs() reads this process's threads' CPU time, and null for a pid that is gone", async () => {
  const a = await cpuNs(Deno.pid);
  assert.ok(a !== null && a > 0);
  let x = 0;
  for (let i = 0; i < 2e6; i++) x += Math.sqrt(i);
  assert.ok(x > 0);
  const b = await cpuNs(Deno.pid);
  assert.ok(b !== null && b > a);
  assert.equal(await cpuNs(2 ** 22 + 12345), null);
});
