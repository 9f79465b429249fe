/** What only the memory store has: its entry bound, and subscribers that throw. */
import assert from "node:assert/strict";
import { createMemoryStateStore } from "../../src/state/memory_store.ts";
import { captureLogger, within } from "./support.ts";

Deno.test("memory store: maxEntries evicts the least recently used key", async () => {
  const s = createMemoryStateStore({ maxEntries: 2 });
  await s.set("a", "1");
  await s.set("b", "2");
  assert.equal(await s.get("a"), "1"); // a is now more recent than b
  await s.set("c", "3");
  assert.equal(await s.get("b"), null);
  assert.equal(await s.get("a"), "1");
  assert.equal(await s.get("c"), "3");
  // Counters count as entries, and writing an existing key evicts nothing.
  await s.incr("c", 1);
  assert.equal(await s.get("a"), "1");
  await s.incr("n", 1);
  assert.equal(await s.get("c"), null);
  await s.close();
});

Deno.test("memory store: expired keys give their room back", async () => {
  let clock = 0;
  const s = createMemoryStateStore({ maxEntries: 2, now: () => clock });
  await s.set("old", "x", { ttlMs: 10 });
  await s.set("keep", "y");
  clock = 20;
  await s.set("new", "z"); // evicts the oldest entry, the expired one, not "keep"
  assert.equal(await s.get("keep"), "y");
  assert.equal(await s.get("new"), "z");
  await s.close();
});

Deno.test("memory store: a bad maxEntries is refused", () => {
  for (const maxEntries of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => createMemoryStateStore({ maxEntries }), RangeError, String(maxEntries));
  }
});

Deno.test("memory store: a subscriber that throws is logged and the others still receive", async () => {
  const { logger, lines } = captureLogger();
  const s = createMemoryStateStore({ logger });
  const got = Promise.withResolvers<string>();
  await s.subscribe("ch", () => {
    throw new Error("boom");
  });
  await s.subscribe("ch", got.resolve);
  await s.publish("ch", "m");
  assert.equal(await within("the message", got.promise), "m");
  assert.equal(lines.filter((l) => l.level === "warn" && l.fields?.error === "boom").length, 1);
  await s.close();
});
