/**
 * Coarse shared deadlines: waiters are grouped in 25 ms slots, and a real timer is armed
 * only for the earliest slot that still has a waiter. A per-request `setTimeout` showed up as
 * ~4% of the daemon's CPU under load; a timeout that fires up to 25 ms late is fine for
 * deadlines measured in hundreds of milliseconds or more.
 *
 * The timer is `AbortSignal.timeout`'s, which the test sanitizer does not count against the
 * request that armed it, but which cannot be cleared, and whose firing builds a DOMException
 * and dispatches an event (about 0.1 ms on the bench machine). So timers are not armed per
 * slot: almost every waiter leaves before its deadline (the request answered), and a timer
 * per slot fired 40 times a second on empty slots, 5 us of CPU per request at 1,000 req/s
 * with a WASM plugin's 500 ms budget. One timer is armed for the earliest slot with a
 * waiter; when it fires, due slots run, empty ones are dropped, and the next timer is armed
 * for the earliest slot that still has one. With its listener a timer keeps the event loop
 * alive until it fires, so a process that embeds the app ends with `Deno.exit` (as main.ts
 * does after draining) instead of waiting out the longest deadline still armed.
 */
const SLOT_MS = 25;

/** Slots by their time (a multiple of SLOT_MS); a slot whose waiters all left stays until swept. */
const slots = new Map<number, Set<() => void>>();
/** Times of the timers armed and not yet fired, earliest last (each is armed before the rest). */
const armed: number[] = [];

function arm(at: number): void {
  armed.push(at);
  AbortSignal.timeout(Math.max(0, at - Date.now())).addEventListener("abort", () => {
    armed.splice(armed.lastIndexOf(at), 1);
    sweep();
  }, { once: true });
}

/** Run the slots that are due, drop the empty ones, and arm for the earliest left if needed. */
function sweep(): void {
  const now = Date.now();
  let next = Infinity;
  const due: Set<() => void>[] = [];
  for (const [at, waiting] of slots) {
    if (waiting.size === 0) slots.delete(at);
    else if (at <= now) {
      slots.delete(at);
      due.push(waiting);
    } else if (at < next) next = at;
  }
  for (const waiting of due) for (const f of waiting) f();
  // A waiter may have scheduled an earlier deadline from inside `f`: `scheduleDeadline`
  // armed for it then.
  if (next !== Infinity && !(armedBy(next))) arm(next);
}

/** Some timer fires at or before `at`. */
function armedBy(at: number): boolean {
  const earliest = armed[armed.length - 1];
  return earliest !== undefined && earliest <= at;
}

/** Call `fire` after about `ms`; returns a cancel function (cheap, idempotent). */
export function scheduleDeadline(ms: number, fire: () => void): () => void {
  const at = Math.ceil((Date.now() + ms) / SLOT_MS) * SLOT_MS;
  let waiting = slots.get(at);
  if (waiting === undefined) {
    waiting = new Set();
    slots.set(at, waiting);
    if (!armedBy(at)) arm(at);
  }
  waiting.add(fire);
  const set = waiting;
  return () => void set.delete(fire);
}

/** Timers armed and not yet fired (tests). */
export function armedTimers(): number {
  return armed.length;
}
