import assert from "node:assert/strict";
import { createRoutingState } from "../../src/routing/mod.ts";
import { buildRuntime } from "../../src/runtime.ts";
import { parseConfigText } from "../../src/config/mod.ts";
import { breakerTiming, createMemoryBreakerStore } from "../../src/breaker/mod.ts";

const COOL = { until: 10_000, reason: "auth" as const, status: 401 };

Deno.test("keysAre(): a cooldown stays with its key's value, not with its position", () => {
  const state = createRoutingState(() => 0);
  state.keysAre(new Map([["p#0", "sk-revoked"], ["p#1", "sk-good"]]));
  state.coolKey("p#0", COOL);
  // An unrelated edit: the same keys, the cooldown stays.
  state.keysAre(new Map([["p#0", "sk-revoked"], ["p#1", "sk-good"], ["q#0", "sk-q"]]));
  assert.deepEqual(state.keyCooldown("p#0", 1), COOL);
  // Rotated in place: p#0 is another key now, and has not been refused.
  state.keysAre(new Map([["p#0", "sk-fresh"], ["p#1", "sk-good"]]));
  assert.equal(state.keyCooldown("p#0", 1), null);
  // A key inserted above: the refused key is p#2 now, and keeps its cooldown; p#1 is fresh.
  state.coolKey("p#1", COOL);
  state.keysAre(new Map([["p#0", "sk-new"], ["p#1", "sk-fresh"], ["p#2", "sk-good"]]));
  assert.equal(state.keyCooldown("p#1", 1), null);
  assert.deepEqual(state.keyCooldown("p#2", 1), COOL);
  // Removed from the config: nothing rests, and a key added back later starts afresh.
  state.keysAre(new Map([["p#0", "sk-new"]]));
  state.keysAre(new Map([["p#0", "sk-new"], ["p#1", "sk-good"]]));
  assert.equal(state.keyCooldown("p#1", 1), null);
});

Deno.test("buildRuntime(): a reload that rotates a refused key in place clears its cooldown", () => {
  const routing = createRoutingState(() => 0);
  const config = (key: string) =>
    parseConfigText(
      `providers:\n  p: { base_url: "http://127.0.0.1:9/v1", keys: [{ key: ${key} }, { key: sk-good-0001 }] }\n`,
      () => undefined,
      "t.yaml",
    ).config;
  const deps = {
    fetch,
    random: Math.random,
    routing,
    breakerStore: createMemoryBreakerStore(
      breakerTiming(config("sk-x-0001").features.circuit_breaker),
    ),
    write: () => {},
  };
  const first = buildRuntime(config("sk-revoked-0001"), 1, deps);
  routing.coolKey("p#0", COOL);
  const same = buildRuntime(config("sk-revoked-0001"), 2, deps);
  assert.deepEqual(routing.keyCooldown("p#0", 1), COOL, "an unchanged key keeps its cooldown");
  const rotated = buildRuntime(config("sk-fresh-0001"), 3, deps);
  assert.equal(routing.keyCooldown("p#0", 1), null);
  for (const rt of [first, same, rotated]) {
    rt.retire();
    rt.dispose();
  }
});
