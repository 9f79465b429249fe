/**
 * Private per-object state, for state that belongs to one request or one stream.
 *
 * Not a WeakMap: V8's scavenger treats every WeakMap and WeakSet entry as live until the
 * next full collection, so an entry keyed by a request-scoped object keeps the key, the
 * value and all they reach alive through every minor GC. A per-request WeakMap therefore
 * promotes each request's objects to the old generation, which makes scavenges copy them
 * and grows the old generation between full collections (200k young keys with 0.5 KB
 * values: a scavenge went from 0.05 ms freeing all of it to 14-16 ms freeing none). A
 * symbol-keyed property on the object dies with it in the next scavenge.
 * @module
 */

/** A slot on objects of type `K` holding a `V`: the WeakMap methods, stored on the object. */
export class Slot<K extends object, V> {
  readonly #key: symbol;

  constructor(name: string) {
    this.#key = Symbol(name);
  }

  get(owner: K): V | undefined {
    return (owner as Record<symbol, V | undefined>)[this.#key];
  }

  has(owner: K): boolean {
    return (owner as Record<symbol, V | undefined>)[this.#key] !== undefined;
  }

  set(owner: K, value: V): void {
    (owner as Record<symbol, V | undefined>)[this.#key] = value;
  }

  /**
   * Clears the slot; true when it held a value. The property stays (as `undefined`), so the
   * object keeps its shape instead of turning into a slow dictionary-mode object.
   */
  delete(owner: K): boolean {
    const o = owner as Record<symbol, V | undefined>;
    if (o[this.#key] === undefined) return false;
    o[this.#key] = undefined;
    return true;
  }
}

/**
 * A `Slot` kept in an owner's `slots` object (the Exchange's) rather than on the owner, so
 * the owner's own shape never changes: code that reads the exchange's fields stays
 * monomorphic whichever capabilities are on.
 */
export class HeldSlot<V> {
  readonly #slot: Slot<object, V>;

  constructor(name: string) {
    this.#slot = new Slot(name);
  }

  get(owner: { readonly slots: object }): V | undefined {
    return this.#slot.get(owner.slots);
  }

  has(owner: { readonly slots: object }): boolean {
    return this.#slot.has(owner.slots);
  }

  set(owner: { readonly slots: object }, value: V): void {
    this.#slot.set(owner.slots, value);
  }

  delete(owner: { readonly slots: object }): boolean {
    return this.#slot.delete(owner.slots);
  }
}
