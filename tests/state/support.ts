/**
 * Helpers of the state tests: a capturing logger, polling of a local condition, and timers
 * the test fires by hand.
 * @module
 */
import type { Timers } from "../../src/state/redis_link.ts";
import type { LogFields, Logger } from "../../src/telemetry/mod.ts";

export interface CapturedLog {
  level: string;
  msg: string;
  fields: LogFields | undefined;
}

export function captureLogger(): { logger: Logger; lines: CapturedLog[] } {
  const lines: CapturedLog[] = [];
  const at = (level: string) => (msg: string, fields?: LogFields) => {
    lines.push({ level, msg, fields });
  };
  return {
    lines,
    logger: {
      debug: at("debug"),
      info: at("info"),
      warn: at("warn"),
      error: at("error"),
      enabled: () => true,
    },
  };
}

/** Poll a local condition (no Redis involved) until true; returns how long it took. */
export async function waitFor(
  what: string,
  cond: () => boolean,
  timeoutMs = 5_000,
): Promise<number> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - start;
}

export interface ManualTimer {
  readonly ms: number;
  fire(): void;
}

/** Timers that never fire on their own: the test waits for one to be set, then fires it. */
export function manualTimers(): Timers & {
  /** The next pending timer whose delay matches (one already set counts). */
  next(match: (ms: number) => boolean): Promise<ManualTimer>;
  pending(): number[];
} {
  const timers = new Map<number, { ms: number; fn: () => void }>();
  const waiters: { match: (ms: number) => boolean; resolve: (t: ManualTimer) => void }[] = [];
  let seq = 0;
  const handle = (id: number): ManualTimer => {
    const t = timers.get(id);
    if (!t) throw new Error(`timer ${id} is not pending`);
    return {
      ms: t.ms,
      fire: () => {
        if (timers.delete(id)) t.fn();
      },
    };
  };
  return {
    setTimeout(fn, ms) {
      const id = ++seq;
      timers.set(id, { ms, fn });
      const i = waiters.findIndex((w) => w.match(ms));
      if (i >= 0) waiters.splice(i, 1)[0]!.resolve(handle(id));
      return id;
    },
    clearTimeout(id) {
      if (typeof id === "number") timers.delete(id);
    },
    next(match) {
      for (const [id, t] of timers) if (match(t.ms)) return Promise.resolve(handle(id));
      const { promise, resolve } = Promise.withResolvers<ManualTimer>();
      waiters.push({ match, resolve });
      return promise;
    },
    pending: () => [...timers.values()].map((t) => t.ms),
  };
}

/** `p`, or a clear failure after `timeoutMs` (a lost message must fail a test, not hang it). */
export async function within<T>(what: string, p: Promise<T>, timeoutMs = 5_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([p, expired]);
  } finally {
    clearTimeout(timer);
  }
}
