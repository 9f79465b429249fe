/**
 * Spans as the SDK's span processor and OTLP exporter read them (`ReadableSpan`), without
 * the SDK's tracer: a request's two spans are two objects, not a context copy, a sampler
 * call, attribute re-validation per `setAttribute`, hex ids through `Buffer` and the
 * tracer's self-metrics each. What the exporter sees is what the SDK's `Tracer` would have
 * built with our settings (parent-based always-on sampler, default limits, no links): the
 * same ids' shape, times (start at `Date.now()`, later times from `performance.now()`),
 * attribute order, event limit and status rules. A span whose parent is unsampled does not
 * record (nothing built but its ids, which still propagate); it is never exported.
 * @module
 */
import {
  type Attributes,
  type AttributeValue,
  type HrTime,
  type Link,
  type SpanContext,
  SpanKind,
  type SpanStatus,
  SpanStatusCode,
  TraceFlags,
} from "@opentelemetry/api";
import {
  addHrTimes,
  hrTimeDuration,
  type InstrumentationScope,
  millisToHrTime,
} from "@opentelemetry/core";
import type { Resource } from "@opentelemetry/resources";
import type { ReadableSpan, SpanProcessor, TimedEvent } from "@opentelemetry/sdk-trace";

/** The SDK's default `eventCountLimit`. */
const EVENT_LIMIT = 128;
/** Shared by every span without links (all of ours) or events (most): one array less each. */
const NO_LINKS = Object.freeze([]) as unknown as Link[];
const NO_EVENTS = Object.freeze([]) as unknown as TimedEvent[];

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** `words` x 32 random bits as lowercase hex, never all zero (the SDK's rule: last byte 1). */
function randomId(words: number): string {
  let out = "";
  let any = 0;
  for (let i = 0; i < words; i++) {
    const r = (Math.random() * 0x100000000) >>> 0;
    any |= r;
    out += (HEX[r >>> 24] as string) + HEX[(r >>> 16) & 255] + HEX[(r >>> 8) & 255] +
      HEX[r & 255];
  }
  return any === 0 ? out.slice(0, -2) + "01" : out;
}

/** Where spans go when they end, and what they are tagged with. */
export interface SpanSink {
  readonly processor: SpanProcessor;
  readonly resource: Resource;
  readonly scope: InstrumentationScope;
}

export class LeanSpan implements ReadableSpan {
  readonly links = NO_LINKS;
  events = NO_EVENTS;
  readonly startTime: HrTime;
  endTime: HrTime = [0, 0];
  duration: HrTime = [-1, -1];
  status: SpanStatus = { code: SpanStatusCode.UNSET };
  ended = false;
  readonly droppedAttributesCount = 0;
  droppedEventsCount = 0;
  readonly droppedLinksCount = 0;
  readonly resource: Resource;
  readonly instrumentationScope: InstrumentationScope;
  readonly parentSpanContext?: SpanContext;
  private readonly startMs: number;
  private readonly perfStart: number;

  private constructor(
    private readonly sink: SpanSink,
    private readonly context: SpanContext,
    parent: SpanContext | undefined,
    public name: string,
    readonly kind: SpanKind,
    readonly attributes: Attributes,
    /** False under an unsampled parent: ids only, never exported. */
    readonly recording: boolean,
    startMs: number,
  ) {
    if (parent !== undefined) this.parentSpanContext = parent;
    this.startMs = startMs;
    this.startTime = millisToHrTime(startMs);
    this.perfStart = performance.now();
    this.resource = sink.resource;
    this.instrumentationScope = sink.scope;
  }

  /**
   * A span under `parent` (a remote context from `traceparent`, a local span, or none: a new
   * trace). Sampled unless its parent is not (parent-based, always on). `startMs`: a child
   * starts on its local parent's clock (`parent.nowMs()`), so it never ends after the parent
   * by a rounding of `Date.now()`.
   */
  static start(
    sink: SpanSink,
    name: string,
    kind: SpanKind,
    attributes: Attributes,
    parent: SpanContext | undefined,
    startMs: number = Date.now(),
  ): LeanSpan {
    const spanId = randomId(2);
    if (parent === undefined) {
      return new LeanSpan(
        sink,
        { traceId: randomId(4), spanId, traceFlags: TraceFlags.SAMPLED },
        undefined,
        name,
        kind,
        attributes,
        true,
        startMs,
      );
    }
    const sampled = (parent.traceFlags & TraceFlags.SAMPLED) !== 0;
    const context: SpanContext = {
      traceId: parent.traceId,
      spanId,
      traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    };
    if (parent.traceState !== undefined) context.traceState = parent.traceState;
    return new LeanSpan(
      sink,
      context,
      parent,
      name,
      kind,
      sampled ? attributes : {},
      sampled,
      startMs,
    );
  }

  spanContext(): SpanContext {
    return this.context;
  }

  /** Now, as the SDK measures it: the start plus the monotonic time since. */
  private now(): HrTime {
    return addHrTimes(this.startTime, millisToHrTime(performance.now() - this.perfStart));
  }

  /** Now on this span's clock, in epoch milliseconds (fractional). */
  nowMs(): number {
    return this.startMs + (performance.now() - this.perfStart);
  }

  setAttribute(key: string, value: AttributeValue): void {
    if (this.recording && !this.ended) this.attributes[key] = value;
  }

  setAttributes(attributes: Attributes): void {
    if (!this.recording || this.ended) return;
    for (const key in attributes) this.attributes[key] = attributes[key];
  }

  updateName(name: string): void {
    if (this.recording && !this.ended) this.name = name;
  }

  setError(): void {
    if (this.recording && !this.ended && this.status.code !== SpanStatusCode.OK) {
      this.status = { code: SpanStatusCode.ERROR };
    }
  }

  addEvent(name: string, attributes: Attributes): void {
    if (!this.recording || this.ended) return;
    if (this.events === NO_EVENTS) this.events = [];
    if (this.events.length >= EVENT_LIMIT) {
      this.events.shift();
      this.droppedEventsCount++;
    }
    this.events.push({ name, time: this.now(), attributes, droppedAttributesCount: 0 });
  }

  /** Ends now, or at `epochMs`; a recording span goes to the processor (its queue). */
  end(epochMs?: number): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.recording) return;
    this.endTime = epochMs === undefined ? this.now() : millisToHrTime(epochMs);
    this.duration = hrTimeDuration(this.startTime, this.endTime);
    if (this.duration[0] < 0) {
      this.endTime = [this.startTime[0], this.startTime[1]];
      this.duration = [0, 0];
    }
    this.sink.processor.onEnd(this);
  }
}
