/**
 * A `Schedule` (Runtime.schedule, the stream gate's timers) that fires only when the test
 * says so: tests drive timeouts without sleeping.
 */
import type { Schedule } from "../../src/pipeline/stages.ts";

export interface ScheduledTimer {
  readonly ms: number;
  fire(): void;
}

export interface ManualSchedule {
  readonly schedule: Schedule;
  /** Timers scheduled and neither fired nor cancelled. */
  readonly pending: ReadonlySet<ScheduledTimer>;
  /** The next pending timer whose delay matches `accept`, once one is scheduled. */
  next(accept?: (ms: number) => boolean): Promise<ScheduledTimer>;
}

export function manualSchedule(): ManualSchedule {
  const pending = new Set<ScheduledTimer>();
  const waiters = new Set<
    { accept: (ms: number) => boolean; resolve: (t: ScheduledTimer) => void }
  >();
  const schedule: Schedule = (ms, fire) => {
    const timer: ScheduledTimer = {
      ms,
      fire() {
        if (pending.delete(timer)) fire();
      },
    };
    pending.add(timer);
    for (const w of waiters) {
      if (w.accept(ms)) {
        waiters.delete(w);
        w.resolve(timer);
        break;
      }
    }
    return () => pending.delete(timer);
  };
  return {
    schedule,
    pending,
    next(accept = () => true) {
      for (const t of pending) if (accept(t.ms)) return Promise.resolve(t);
      return new Promise((resolve) => waiters.add({ accept, resolve }));
    },
  };
}
