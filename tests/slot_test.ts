import assert from "node:assert/strict";
import { HeldSlot, Slot } from "../src/slot.ts";

Deno.test("Slot: WeakMap's methods, stored on the object", () => {
  const slot = new Slot<object, number>("n");
  const other = new Slot<object, number>("n");
  const a = {};
  assert.equal(slot.get(a), undefined);
  assert.equal(slot.has(a), false);
  assert.equal(slot.delete(a), false);
  slot.set(a, 1);
  assert.equal(slot.get(a), 1);
  assert.equal(slot.has(a), true);
  // Two slots of the same name are distinct; the property is not an enumerable string key.
  assert.equal(other.get(a), undefined);
  assert.deepEqual(Object.keys(a), []);
  assert.equal(JSON.stringify(a), "{}");
  assert.equal(slot.delete(a), true);
  assert.equal(slot.get(a), undefined);
  assert.equal(slot.has(a), false);
});

Deno.test("HeldSlot: kept in the owner's slots object, the owner untouched", () => {
  const slot = new HeldSlot<string>("s");
  const owner = { slots: {} };
  slot.set(owner, "x");
  assert.equal(slot.get(owner), "x");
  assert.equal(slot.has(owner), true);
  assert.deepEqual(Object.getOwnPropertySymbols(owner), []);
  assert.equal(Object.getOwnPropertySymbols(owner.slots).length, 1);
  assert.equal(slot.delete(owner), true);
  assert.equal(slot.has(owner), false);
  // Each owner has its own.
  const second = { slots: {} };
  assert.equal(slot.get(second), undefined);
});
