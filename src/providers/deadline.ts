/**
 * Coarse shared deadlines: one real timer per 25 ms slot, however many attempts wait in it.
 * A per-request `setTimeout` showed up as ~4% of the daemon's CPU under load; a timeout
 * that fires up to 25 ms late is fine for upstream deadlines measured in seconds.
 */
const SLOT_MS = 25;

interface Slot {
  readonly timer: ReturnType<typeof setTimeout>;
  readonly waiting: Set<() => void>;
}

const slots = new Map<number, Slot>();

/** Call `fire` after about `ms`; returns a cancel function (cheap, idempotent). */
export function scheduleDeadline(ms: number, fire: () => void): () => void {
  const now = Date.now();
  const at = Math.ceil((now + ms) / SLOT_MS) * SLOT_MS;
  let slot = slots.get(at);
  if (!slot) {
    const waiting = new Set<() => void>();
    const timer = setTimeout(() => {
      slots.delete(at);
      for (const f of waiting) f();
    }, at - now);
    slot = { timer, waiting };
    slots.set(at, slot);
  }
  const { waiting, timer } = slot;
  waiting.add(fire);
  return () => {
    if (!waiting.delete(fire) || waiting.size > 0) return;
    clearTimeout(timer);
    if (slots.get(at)?.waiting === waiting) slots.delete(at);
  };
}
