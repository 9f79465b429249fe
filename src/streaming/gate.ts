/**
 * The stream gate: a stream is committed to the client only when its first *content*
 * arrives. SSE comments and keep-alives (`: OPENROUTER PROCESSING`), a role-only chunk, or
 * the opening events that carry no output yet (`message_start`, `ping`, `response.created`)
 * do not commit it; until then the attempt can still fail over. Two timers:
 * - `firstChunkMs` (routing.failover.first_chunk_timeout): no content by then fails the
 *   attempt before commit (failover moves on);
 * - `idleMs` (routing.failover.stream_idle_timeout): after commit, an upstream silent that
 *   long while the client waits for more ends the stream with `StreamIdleTimeout`, which the
 *   route renders as an error event in its format (the log says `idle_timeout`).
 * The idle watchdog is one scheduled check that compares a timestamp: a chunk costs a clock
 * read, never a timer re-arm.
 * @module
 */
import { modelOfEvent } from "./response_model.ts";
import { GatewayError } from "../errors.ts";
import { relayStream } from "./observe.ts";
import { type ChunkReader, chunkReader, DONE } from "./reader.ts";
import { createSseDataReader } from "./sse.ts";

/** Schedules `fire` after `ms`; returns the cancel (the Runtime's, injectable). */
export type GateSchedule = (ms: number, fire: () => void) => () => void;

/** The stream encodings an attempt can produce: typed chat chunks, or SSE bytes per wire. */
export type GateFormat = "chunks" | "openai_sse" | "anthropic_sse" | "responses_sse";

export interface GateOptions {
  /** Aborts the wait before commit (the client left, the deadline passed). */
  readonly signal: AbortSignal;
  /** Time left for the first content, ms; none when undefined. */
  readonly firstChunkMs?: number | undefined;
  /** The `first_chunk_timeout` the error names, when `firstChunkMs` is what is left of it. */
  readonly firstChunkSetMs?: number | undefined;
  /** Longest upstream silence after commit, ms; none when undefined. */
  readonly idleMs?: number | undefined;
  readonly schedule: GateSchedule;
  readonly now: () => number;
  /** The provider, for the error messages. */
  readonly provider: string;
  /**
   * SSE wires: the error an event reports (the upstream failed in place of answering), else
   * null. Before commit it fails the attempt, which can then fail over.
   */
  readonly failure?: ((data: string) => Error | null) | undefined;
  /**
   * The attempt's own deadline before commit, on a real (coarse) timer: `error` is thrown
   * when nothing committed the stream within `ms`.
   */
  readonly deadline?: {
    readonly ms: number;
    readonly schedule: GateSchedule;
    readonly error: () => Error;
  };
  /** Told the model the stream's opening events name (`gen_ai.response.model`), once. */
  readonly onModel?: ((model: string) => void) | undefined;
}

/**
 * `first_chunk_timeout` passed with no content (before or after the upstream's headers). The
 * key is named without its section: `routing.failover`, the model's or `x-gateway` set it.
 */
export function noContentWithin(provider: string, ms: number): GatewayError {
  return new GatewayError(
    "upstream_timeout",
    `Provider "${provider}" sent no content within ${ms} ms (first_chunk_timeout)`,
    { provider },
  );
}

/** An idle stream ended by the gate (the access log's outcome `idle_timeout`). */
export class StreamIdleTimeout extends GatewayError {
  constructor(provider: string, ms: number) {
    super(
      "upstream_timeout",
      `Provider "${provider}" sent nothing for ${ms} ms (stream_idle_timeout)`,
      { provider },
    );
  }
}

/** Opening events that carry no output: they do not commit a stream. */
const NOT_CONTENT_EVENTS = new Set([
  "message_start",
  "ping",
  "response.created",
  "response.in_progress",
  "response.queued",
]);

/** Events that report a failure in place of an answer (Anthropic, Responses API). */
const FAILURE_EVENTS = new Set(["error", "response.failed"]);

/** Is this chat chunk (typed or parsed) more than a role announcement? */
function chunkHasContent(chunk: unknown): boolean {
  if (chunk === null || typeof chunk !== "object") return true;
  const c = chunk as { choices?: unknown; usage?: unknown; error?: unknown };
  // An error event is no answer: it does not commit (the wire's `failure` reads it).
  if (c.error !== undefined && c.error !== null) return false;
  if (c.usage !== undefined && c.usage !== null) return true;
  if (!Array.isArray(c.choices)) return true;
  for (
    const choice of c.choices as { delta?: Record<string, unknown>; finish_reason?: unknown }[]
  ) {
    if (choice?.finish_reason !== null && choice?.finish_reason !== undefined) return true;
    const d = choice?.delta;
    if (d === undefined || d === null) continue;
    if (typeof d.content === "string" && d.content !== "") return true;
    if (typeof d.refusal === "string" && d.refusal !== "") return true;
    if (Array.isArray(d.tool_calls) && d.tool_calls.length > 0) return true;
    if (typeof d.reasoning_content === "string" && d.reasoning_content !== "") return true;
  }
  return false;
}

/**
 * Is this SSE `data:` payload content, for the stream's wire format? What commits a stream
 * (and what a tap counts as output begun).
 */
export function dataHasContent(format: GateFormat, data: string): boolean {
  return eventHasContent(format, data) ?? true;
}

/**
 * `dataHasContent`, or null for an event that is not JSON (a broken stream). `seen` is shown
 * each event parsed.
 */
function eventHasContent(
  format: GateFormat,
  data: string,
  seen?: (event: unknown) => void,
): boolean | null {
  if (format === "openai_sse") {
    if (data === "[DONE]") return true;
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      return null;
    }
    seen?.(chunk);
    return chunkHasContent(chunk);
  }
  try {
    const event = JSON.parse(data) as Record<string, unknown>;
    seen?.(event);
    const type = event.type;
    if (typeof type !== "string") return true;
    if (NOT_CONTENT_EVENTS.has(type) || FAILURE_EVENTS.has(type)) return false;
    // An empty text block (Anthropic) or an empty message item or part (Responses) opens
    // output without any: as on the chat route, where it arrives as a role-only chunk.
    if (type === "content_block_start") return !emptyText(event.content_block);
    if (type === "response.output_item.added") {
      const item = event.item as { type?: unknown; content?: unknown } | undefined;
      return !(item?.type === "message" &&
        (!Array.isArray(item.content) || item.content.length === 0));
    }
    if (type === "response.content_part.added") return !emptyText(event.part);
    return true;
  } catch {
    return null;
  }
}

/** A text block or part with no text yet (`{"type":"text","text":""}`, `output_text` too). */
function emptyText(block: unknown): boolean {
  if (block === null || typeof block !== "object") return false;
  const b = block as { type?: unknown; text?: unknown };
  return (b.type === "text" || b.type === "output_text") && b.text === "";
}

/**
 * A per-stream test of "has content arrived", fed each chunk before commit; it throws the
 * wire's `failure` for an event that reports one.
 */
function contentDetector<T>(
  format: GateFormat,
  failure: GateOptions["failure"],
  provider: string,
  onModel: GateOptions["onModel"],
): (chunk: T) => boolean {
  // The events before commit are parsed here anyway: the model they name costs a lookup.
  let seen: ((event: unknown) => void) | undefined = onModel && ((event) => {
    const model = modelOfEvent(format, event);
    if (model === undefined) return;
    seen = undefined;
    onModel(model);
  });
  if (format === "chunks") {
    return (chunk) => {
      seen?.(chunk);
      return chunkHasContent(chunk);
    };
  }
  const decoder = new TextDecoder();
  const read = createSseDataReader();
  return (chunk) => {
    const text = decoder.decode(chunk as Uint8Array, { stream: true });
    for (const data of read(text)) {
      const failed = failure?.(data);
      if (failed) throw failed;
      const content = eventHasContent(format, data, seen);
      // Relayed as bytes, an event that is not JSON would reach the client's SDK, which
      // throws on it: before commit it is the upstream's failure (failover may answer).
      if (content === null) {
        throw new GatewayError(
          "upstream_error",
          `Provider "${provider}" sent a stream event that is not JSON`,
          { provider, upstreamStatus: 502 },
        );
      }
      if (content) return true;
    }
    return false;
  };
}

/**
 * Hold `source` until its first content (or its end), then hand it over: a stream that
 * replays what was held, then the rest, watched for idleness. Rejects (the source
 * cancelled) if the source fails or ends empty, `signal` aborts, or `firstChunkMs` passes
 * first.
 */
export async function gateStream<T>(
  source: ReadableStream<T>,
  format: GateFormat,
  opts: GateOptions,
): Promise<ReadableStream<T>> {
  const reader = chunkReader(source);
  const held: T[] = [];
  const hasContent = contentDetector<T>(format, opts.failure, opts.provider, opts.onModel);
  let onAbort = () => {};
  let cancelTimer = () => {};
  let cancelDeadline = () => {};
  const stopped = new Promise<never>((_, reject) => {
    onAbort = () => reject(opts.signal.reason);
    if (opts.signal.aborted) onAbort();
    else opts.signal.addEventListener("abort", onAbort, { once: true });
    const deadline = opts.deadline;
    if (deadline !== undefined) {
      cancelDeadline = deadline.schedule(deadline.ms, () => reject(deadline.error()));
    }
    if (opts.firstChunkMs !== undefined) {
      const ms = opts.firstChunkMs;
      cancelTimer = opts.schedule(
        Math.max(0, ms),
        () => reject(noContentWithin(opts.provider, opts.firstChunkSetMs ?? ms)),
      );
    }
  });
  stopped.catch(() => {}); // settled or never will be: no unhandled rejection either way
  let ended = false;
  let content = false;
  try {
    while (true) {
      const next = await Promise.race([reader.read(), stopped]);
      if (next.done) {
        ended = true;
        break;
      }
      held.push(next.value);
      if (hasContent(next.value)) {
        content = true;
        break;
      }
    }
  } catch (err) {
    await reader.cancel(err).catch(() => {});
    throw truncatedBeforeContent(err);
  } finally {
    opts.signal.removeEventListener("abort", onAbort);
    cancelTimer();
    cancelDeadline();
  }
  if (held.length === 0) throw new Error("Upstream stream ended before its first chunk");
  // Opening events only (a role, message_start, a ping), then a clean end: nothing was
  // answered and nothing reached the client, so it fails over like a failure before a 200.
  if (!content) {
    throw new GatewayError(
      "upstream_error",
      `Stream from provider "${opts.provider}" ended before any content`,
      { provider: opts.provider, upstreamStatus: 502 },
    );
  }
  return committed(reader, held, ended, opts, format);
}

/**
 * A stream the upstream ended short (its tap's "ended before it was complete") before any
 * content: nothing reached the client, so it is a failure before a 200 and fails over like
 * one (a 502). A cut connection already does; an error event the upstream sent says its own.
 */
function truncatedBeforeContent(err: unknown): unknown {
  if (
    !(err instanceof GatewayError) || err.code !== "upstream_error" ||
    err.info.upstreamStatus !== undefined || err.info.told === true
  ) return err;
  return new GatewayError(err.code, err.message, { ...err.info, upstreamStatus: 502 });
}

/**
 * Whether a committed chunk is the upstream speaking, for the idle watchdog: keep-alive
 * comments and Anthropic's `ping` events are not (a silent upstream that pings would
 * otherwise never be idle). Parsed only when `stream_idle_timeout` is set.
 */
function activityOf<T>(format: GateFormat): (chunk: T) => boolean {
  if (format === "chunks") return () => true;
  const decoder = new TextDecoder();
  const read = createSseDataReader();
  return (chunk) => {
    let active = false;
    for (const data of read(decoder.decode(chunk as Uint8Array, { stream: true }))) {
      if (!PING.test(data)) active = true;
    }
    return active;
  };
}

/** Anthropic's keep-alive event's data. */
const PING = /^\s*\{\s*"type"\s*:\s*"ping"\s*\}\s*$/;

/** The committed stream: `held` first, then the reader's rest, under the idle watchdog. */
function committed<T>(
  reader: ChunkReader<T>,
  held: T[],
  ended: boolean,
  opts: GateOptions,
  format: GateFormat,
): ReadableStream<T> {
  const idleMs = opts.idleMs;
  let i = 0;
  if (idleMs === undefined) {
    // A relay: the route's and the access log's observers attach to it instead of wrapping it.
    return relayStream<T>(
      () => i < held.length ? { done: false, value: held[i++] as T } : ended ? DONE : reader.read(),
      (reason) => reader.cancel(reason),
    );
  }
  // Silence counts only while the client waits for more (a read is pending): a slow
  // client is not an idle upstream. Keep-alives are silence too.
  const active = activityOf<T>(format);
  let waiting = false;
  /** When the pending read began; and the waiting since the upstream last spoke, before it. */
  let since = opts.now();
  let silent = 0;
  let failed = false;
  let stop = () => {};
  let out!: ReadableStreamDefaultController<T>;
  const check = () => {
    const quiet = silent + (waiting ? opts.now() - since : 0);
    if (!waiting || quiet < idleMs) {
      stop = opts.schedule(waiting ? idleMs - quiet : idleMs, check);
      return;
    }
    failed = true;
    const err = new StreamIdleTimeout(opts.provider, idleMs);
    out.error(err);
    reader.cancel(err).catch(() => {});
  };
  return new ReadableStream<T>({
    start(controller) {
      out = controller;
      if (!ended) stop = opts.schedule(idleMs, check);
    },
    async pull(controller) {
      if (i < held.length) return controller.enqueue(held[i++] as T);
      if (ended) return controller.close();
      waiting = true;
      since = opts.now();
      let result: ReadableStreamReadResult<T>;
      try {
        result = await reader.read();
      } catch (err) {
        stop();
        if (!failed) controller.error(err);
        return;
      } finally {
        waiting = false;
      }
      if (failed) return;
      silent = result.done || active(result.value) ? 0 : silent + opts.now() - since;
      if (result.done) {
        stop();
        controller.close();
      } else controller.enqueue(result.value);
    },
    cancel(reason) {
      stop();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
