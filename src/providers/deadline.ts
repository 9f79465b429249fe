/**
 * Coarse shared deadlines: one real timer per 25 ms slot, however many attempts wait in it.
 * A per-request `setTimeout` showed up as ~4% of the daemon's CPU under load; a timeout
 * that fires up to 25 ms late is fine for upstream deadlines measured in seconds.
 *
 * A slot's timer is never cleared: when its last waiter leaves, it stays armed and fires on
 * an empty set. Clearing it cost a `setTimeout`/`clearTimeout` pair per request whenever
 * requests did not overlap (8% of a request's CPU in-process). The timer is
 * `AbortSignal.timeout`'s, which the test sanitizer does not count against the request that
 * opened the slot. With its listener it does keep the event loop alive until it fires, so a
 * process that embeds the app ends with `Deno.exit` (as main.ts does after draining) instead
 * of waiting out the longest deadline still armed.
 */
const SLOT_MS = 25;

const slots = new Map<number, Set<() => void>>();

function arm(at: number, waiting: Set<() => void>, ms: number): void {
  AbortSignal.timeout(ms).addEventListener("abort", () => {
    slots.delete(at);
    for (const f of waiting) f();
  }, { once: true });
}

/** Call `fire` after about `ms`; returns a cancel function (cheap, idempotent). */
export function scheduleDeadline(ms: number, fire: () => void): () => void {
  const now = Date.now();
  const at = Math.ceil((now + ms) / SLOT_MS) * SLOT_MS;
  const waiting = slots.get(at) ?? openSlot(at, at - now);
  waiting.add(fire);
  return () => void waiting.delete(fire);
}

function openSlot(at: number, ms: number): Set<() => void> {
  const waiting = new Set<() => void>();
  slots.set(at, waiting);
  arm(at, waiting, ms);
  return waiting;
}
