/**
 * The usage ledger: records go into pending deltas at once (no I/O on the request path)
 * and reach the backend in batches, on a timer and before every report. The memory backend
 * is applied directly. A backend that fails (Redis away, disk full) keeps the deltas for the
 * next flush, which comes on the timer even if nothing else is recorded: counts are delayed,
 * never dropped or doubled. A batch whose write failed is sent again as it was, under its own
 * number, so a write that did land (its reply timed out) is not counted twice.
 * @module
 */
import {
  PendingRows,
  type RollupBackend,
  type RollupBatch,
  type RollupRow,
  summarise,
  type UsageQuery,
  type UsageRecord,
  type UsageReport,
} from "./rollup.ts";

export interface UsageLedger {
  readonly kind: RollupBackend["kind"];
  record(rec: UsageRecord): void;
  /** Pending deltas written, then the rows of `q` summed. */
  report(q: UsageQuery): Promise<UsageReport>;
  /** Write pending deltas now (rejects when the backend cannot take them; they stay). */
  flush(): Promise<void>;
  /** Resolves once the backend can take writes (Redis connected). */
  ready(): Promise<void>;
  close(): Promise<void>;
}

export interface LedgerOptions {
  readonly now: () => number;
  /** How long deltas wait before a write (ms). */
  readonly flushMs?: number;
  readonly onError: (error: unknown) => void;
}

export function createLedger(
  backend: RollupBackend | Promise<RollupBackend>,
  opts: LedgerOptions,
): UsageLedger {
  const flushMs = opts.flushMs ?? 1_000;
  const pending = new PendingRows();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  let ready: RollupBackend | null = backend instanceof Promise ? null : backend;
  const resolved = Promise.resolve(backend).then((b) => (ready = b));
  resolved.catch(() => {});
  let writing: Promise<void> = Promise.resolve();
  const writer = crypto.randomUUID();
  let seq = 0;
  /** The batch whose write failed: it may have landed, so it goes again unchanged. */
  let unsure: { rows: RollupRow[]; batch: RollupBatch } | null = null;

  const write = async (): Promise<void> => {
    const b = await resolved;
    try {
      if (unsure !== null) {
        await b.apply(unsure.rows, opts.now(), unsure.batch);
        unsure = null;
      }
      const rows = pending.take();
      if (rows.length === 0) return;
      unsure = { rows, batch: { writer, seq: ++seq } };
      await b.apply(rows, opts.now(), unsure.batch);
      unsure = null;
    } catch (err) {
      // Again on the timer: a sidecar that gets no more requests still catches up.
      schedule();
      throw err;
    }
  };
  const flush = (): Promise<void> => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    // One write at a time: a second flush waits for the first, then writes what is left.
    const next = writing.catch(() => {}).then(write);
    writing = next;
    return next;
  };
  const schedule = () => {
    if (timer !== undefined || closed) return;
    const t = setTimeout(() => {
      timer = undefined;
      flush().catch(opts.onError);
    }, flushMs);
    // A pending flush must not keep the process alive: close() writes what is left.
    Deno.unrefTimer(t);
    timer = t;
  };
  return {
    get kind() {
      return ready?.kind ?? "redis";
    },
    record(rec) {
      if (closed) return;
      if (ready?.record !== undefined) {
        ready.record(rec);
        return;
      }
      pending.addRecord(rec);
      schedule();
    },
    async report(q) {
      await flush();
      const b = await resolved;
      return summarise(q, await b.rows(q));
    },
    flush,
    async ready() {
      await (await resolved).ready?.();
    },
    async close() {
      if (closed) return;
      try {
        await flush();
      } catch (err) {
        opts.onError(err);
      }
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      const b = await resolved.catch(() => null);
      await b?.close();
    },
  };
}
