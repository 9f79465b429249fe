/**
 * Pre-aggregated metric series: counters, histograms and gauges kept as plain numbers, and
 * handed to the OpenTelemetry SDK at scrape time as a `MetricProducer` registered on its
 * reader, so the Prometheus exporter writes them. The SDK's synchronous instruments hash
 * each recording's attribute object (sorted keys, JSON) to find its series; here a caller
 * binds an attribute set once and records through the handle, so a request's recordings
 * are number updates.
 *
 * What a scrape shows is the SDK's, point for point: cumulative series in the order they
 * were first recorded, a series created only by a recording the SDK would keep (a negative
 * counter or histogram value is dropped before), its cardinality limit (2000 series per
 * instrument and collection interval, the rest folded into `otel.metric.overflow`), and
 * gauges whose series, once observed, keep their last value.
 *
 * Only types come from the SDK here: recording never loads it (see `mod.ts`, which loads
 * the SDK at the first scrape), so the enum values it needs are spelled out below.
 * @module
 */
import type { Attributes, HrTime, ValueType } from "@opentelemetry/api";
import type {
  AggregationTemporality,
  DataPointType,
  MetricData,
  MetricDescriptor,
} from "@opentelemetry/sdk-metrics";

/** The SDK's enum values (tests/telemetry/metrics/aggregate_test.ts checks them). */
export const DOUBLE = 1 as ValueType.DOUBLE;
export const CUMULATIVE = 1 as AggregationTemporality.CUMULATIVE;
export const HISTOGRAM = 0 as DataPointType.HISTOGRAM;
export const GAUGE = 2 as DataPointType.GAUGE;
export const SUM = 3 as DataPointType.SUM;

/** The SDK's default per-instrument limit, less the overflow series it keeps room for. */
const CARDINALITY_LIMIT = 2000 - 1;
const OVERFLOW: Attributes = { "otel.metric.overflow": true };

/** A series' identity: its attributes whatever their order (as the SDK hashes them). */
function identity(attributes: Attributes): string {
  const keys = Object.keys(attributes).sort();
  return JSON.stringify(keys.map((k) => [k, attributes[k]]));
}
const OVERFLOW_ID = identity(OVERFLOW);

function hrNow(): HrTime {
  const ms = Date.now();
  return [Math.trunc(ms / 1000), (ms % 1000) * 1e6];
}

interface Series {
  readonly attributes: Attributes;
  readonly startTime: HrTime;
  /** The collection interval it was last recorded in. */
  epoch: number;
}

interface SumSeries extends Series {
  /** Cumulative up to the last collection; `delta` since (kept apart: the SDK adds them so). */
  value: number;
  delta: number;
}

interface HistogramSeries extends Series {
  count: number;
  /** As a sum's `value` and `delta`. */
  sum: number;
  deltaSum: number;
  min: number;
  max: number;
  readonly counts: number[];
}

export interface InstrumentOptions {
  readonly description?: string;
  readonly unit?: string;
  /**
   * Sums only: values are added as whole counts of 1/`unitsPer` (e.g. 1e9 for nano-dollars)
   * and exported divided back, so a long sum of prices reads as the price table's decimals,
   * not as float residue (0.0031924999999999996).
   */
  readonly unitsPer?: number;
}

function describe(name: string, options: InstrumentOptions): MetricDescriptor {
  return {
    name,
    description: options.description ?? "",
    unit: options.unit ?? "",
    valueType: DOUBLE,
  };
}

/** One synchronous instrument's series, in first-recorded order. */
abstract class SyncInstrument<S extends Series> {
  readonly descriptor: MetricDescriptor;
  protected readonly series = new Map<string, S>();
  /** Incremented by each collection; `touched` counts the series recorded since. */
  epoch = 0;
  private touched = 0;

  constructor(name: string, options: InstrumentOptions) {
    this.descriptor = describe(name, options);
  }

  protected abstract create(attributes: Attributes): S;
  abstract data(endTime: HrTime): MetricData | null;

  /** The series of `attributes`, created (recorded in this interval) or undefined when full. */
  lookup(attributes: Attributes): S | undefined {
    const id = identity(attributes);
    const found = this.series.get(id);
    if (found !== undefined || this.touched >= CARDINALITY_LIMIT) return found;
    const s = this.create(attributes);
    s.epoch = this.epoch;
    this.touched++;
    this.series.set(id, s);
    return s;
  }

  /** Where a recording into `s` lands: `s`, or the overflow series once the interval is full. */
  target(s: S | undefined): S {
    if (s !== undefined) {
      if (s.epoch === this.epoch) return s;
      if (this.touched < CARDINALITY_LIMIT) {
        s.epoch = this.epoch;
        this.touched++;
        return s;
      }
    }
    let o = this.series.get(OVERFLOW_ID);
    if (o === undefined) this.series.set(OVERFLOW_ID, o = this.create(OVERFLOW));
    if (o.epoch !== this.epoch) {
      o.epoch = this.epoch;
      this.touched++;
    }
    return o;
  }

  /** A new collection interval starts. */
  rollover(): void {
    this.epoch++;
    this.touched = 0;
  }

  /** Adds what a series recorded since the last collection to its cumulative values. */
  protected abstract fold(s: S): void;

  protected points<T>(endTime: HrTime, value: (s: S) => T) {
    return [...this.series.values()].map((s) => {
      if (s.epoch === this.epoch) this.fold(s);
      return {
        attributes: s.attributes,
        startTime: s.startTime,
        endTime,
        value: value(s),
      };
    });
  }
}

/** A handle on one attribute set of an instrument; its series exists from the first recording. */
abstract class Bound<S extends Series, I extends SyncInstrument<S>> {
  protected s: S | undefined = undefined;
  constructor(protected readonly instrument: I, readonly attributes: Attributes) {}
  protected resolve(): S {
    return this.instrument.target(this.s ??= this.instrument.lookup(this.attributes));
  }
}

export class BoundSum extends Bound<SumSeries, Sum> {
  add(value: number): void {
    if (value < 0 && this.instrument.monotonic) return;
    this.resolve().delta += value;
  }
}

/** A counter (`monotonic`, negative values dropped) or an up-down counter. */
export class Sum extends SyncInstrument<SumSeries> {
  private readonly unitsPer: number;
  constructor(name: string, options: InstrumentOptions, readonly monotonic: boolean) {
    super(name, options);
    this.unitsPer = options.unitsPer ?? 1;
  }
  protected create(attributes: Attributes): SumSeries {
    return { attributes, startTime: hrNow(), epoch: -1, value: 0, delta: 0 };
  }
  protected fold(s: SumSeries): void {
    s.value += s.delta;
    s.delta = 0;
  }
  bind(attributes: Attributes = {}): BoundSum {
    return new BoundSum(this, attributes);
  }
  /** One-off recording (cold paths): binds, records, forgets the handle. */
  add(value: number, attributes: Attributes = {}): void {
    this.bind(attributes).add(value);
  }
  data(endTime: HrTime): MetricData | null {
    if (this.series.size === 0) return null;
    return {
      descriptor: this.descriptor,
      aggregationTemporality: CUMULATIVE,
      dataPointType: SUM,
      isMonotonic: this.monotonic,
      dataPoints: this.points(
        endTime,
        this.unitsPer === 1 ? (s) => s.value : (s) => s.value / this.unitsPer,
      ),
    };
  }
}

export class BoundHistogram extends Bound<HistogramSeries, Histogram> {
  record(value: number): void {
    if (value < 0) return;
    const s = this.resolve();
    if (Number.isNaN(value)) return; // the SDK keeps the series but not the value
    s.count++;
    s.deltaSum += value;
    if (value < s.min) s.min = value;
    if (value > s.max) s.max = value;
    // Buckets are (previous, bound]; a dozen bounds: a scan beats a binary search.
    const bounds = this.instrument.boundaries;
    let i = 0;
    while (i < bounds.length && (bounds[i] as number) < value) i++;
    (s.counts[i] as number)++;
  }
}

/** An explicit-bucket histogram (negative values dropped, min and max kept). */
export class Histogram extends SyncInstrument<HistogramSeries> {
  constructor(name: string, options: InstrumentOptions, readonly boundaries: readonly number[]) {
    super(name, options);
  }
  protected create(attributes: Attributes): HistogramSeries {
    return {
      attributes,
      startTime: hrNow(),
      epoch: -1,
      count: 0,
      sum: 0,
      deltaSum: 0,
      min: Infinity,
      max: -Infinity,
      counts: new Array<number>(this.boundaries.length + 1).fill(0),
    };
  }
  protected fold(s: HistogramSeries): void {
    s.sum += s.deltaSum;
    s.deltaSum = 0;
  }
  bind(attributes: Attributes = {}): BoundHistogram {
    return new BoundHistogram(this, attributes);
  }
  record(value: number, attributes: Attributes = {}): void {
    this.bind(attributes).record(value);
  }
  private value(s: HistogramSeries) {
    const seen = s.count > 0;
    return {
      buckets: { boundaries: [...this.boundaries], counts: [...s.counts] },
      sum: s.sum,
      count: s.count,
      ...(seen ? { min: s.min, max: s.max } : {}),
    };
  }
  data(endTime: HrTime): MetricData | null {
    if (this.series.size === 0) return null;
    return {
      descriptor: this.descriptor,
      aggregationTemporality: CUMULATIVE,
      dataPointType: HISTOGRAM,
      dataPoints: this.points(endTime, (s) => this.value(s)),
    };
  }
}

export type Observe = (value: number, attributes?: Attributes) => void;

/**
 * An observable gauge: its callback runs at each collection, and only the series it observes
 * then are reported (a past config generation's hash is not a series for ever).
 */
export class Gauge {
  readonly descriptor: MetricDescriptor;
  private readonly series = new Map<
    string,
    { attributes: Attributes; startTime: HrTime; value: number }
  >();
  constructor(
    name: string,
    options: InstrumentOptions,
    private readonly callback: (observe: Observe) => void,
  ) {
    this.descriptor = describe(name, options);
  }
  data(endTime: HrTime): MetricData | null {
    const seen = new Set<string>();
    this.callback((value, attributes = {}) => {
      let id = identity(attributes);
      seen.add(id);
      let s = this.series.get(id);
      if (s === undefined && this.series.size >= CARDINALITY_LIMIT) {
        id = OVERFLOW_ID;
        attributes = OVERFLOW;
        s = this.series.get(id);
      }
      if (s === undefined) this.series.set(id, { attributes, startTime: endTime, value });
      else s.value = value;
      seen.add(id);
    });
    for (const id of this.series.keys()) if (!seen.has(id)) this.series.delete(id);
    if (this.series.size === 0) return null;
    return {
      descriptor: this.descriptor,
      aggregationTemporality: CUMULATIVE,
      dataPointType: GAUGE,
      dataPoints: [...this.series.values()].map((s) => ({
        attributes: s.attributes,
        startTime: s.startTime,
        endTime,
        value: s.value,
      })),
    };
  }
}

type Instrument = Sum | Histogram | Gauge;

/**
 * The instruments of one meter scope, reported in creation order (as the SDK reports a
 * meter's instruments) by `collect`, which `scrape.ts` hands to the SDK's reader.
 */
export class Registry {
  private readonly instruments: Instrument[] = [];
  constructor(readonly scope: string) {}

  counter(name: string, options: InstrumentOptions = {}): Sum {
    return this.add(new Sum(name, options, true));
  }
  upDownCounter(name: string, options: InstrumentOptions = {}): Sum {
    return this.add(new Sum(name, options, false));
  }
  histogram(name: string, options: InstrumentOptions, boundaries: readonly number[]): Histogram {
    return this.add(new Histogram(name, options, boundaries));
  }
  gauge(name: string, options: InstrumentOptions, callback: (observe: Observe) => void): Gauge {
    return this.add(new Gauge(name, options, callback));
  }
  private add<T extends Instrument>(i: T): T {
    this.instruments.push(i);
    return i;
  }

  /** A snapshot of every series; a new collection interval starts. */
  collect(): MetricData[] {
    const endTime = hrNow();
    const out: MetricData[] = [];
    for (const i of this.instruments) {
      const d = i.data(endTime);
      if (d !== null) out.push(d);
      if (!(i instanceof Gauge)) i.rollover();
    }
    return out;
  }
}
