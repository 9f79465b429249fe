import assert from "node:assert/strict";
import type { Attributes } from "@opentelemetry/api";
import {
  AggregationTemporality,
  DataPointType,
  MeterProvider,
  MetricReader,
} from "@opentelemetry/sdk-metrics";
import { ValueType } from "@opentelemetry/api";
import { PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  CUMULATIVE,
  DOUBLE,
  GAUGE,
  HISTOGRAM,
  Registry,
  SUM,
} from "../../../src/telemetry/metrics/aggregate.ts";
import { producerOf } from "../../../src/telemetry/metrics/scrape.ts";

class PullReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

const serializer = () => new PrometheusSerializer(undefined, false, undefined, true, true);
const BOUNDS = [0.5, 1, 2.5, 10];

/**
 * The same recordings into the SDK's own instruments and into a Registry read through a
 * producer: each scrape's text must be the same.
 */
function pair() {
  const resource = resourceFromAttributes({ "service.name": "t" });
  const sdkReader = new PullReader();
  const sdk = new MeterProvider({ resource, readers: [sdkReader] }).getMeter("pilotfish");
  const reg = new Registry("pilotfish");
  const regReader = new PullReader({ metricProducers: [producerOf(reg, resource)] });
  new MeterProvider({ resource, readers: [regReader] });
  const s1 = serializer();
  const s2 = serializer();
  return {
    sdk,
    reg,
    async scrape(): Promise<[string, string]> {
      const a = await sdkReader.collect();
      const b = await regReader.collect();
      return [s1.serialize(a.resourceMetrics), s2.serialize(b.resourceMetrics)];
    },
  };
}

/** A small deterministic generator (no Math.random: a failure must replay). */
function lcg(seed: number) {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff;
  };
}

Deno.test("Registry: scrapes equal the SDK's for counters, histograms and gauges, collection after collection", async () => {
  const p = pair();
  const c1 = p.sdk.createCounter("reqs", { description: "Requests" });
  const h1 = p.sdk.createHistogram("dur", {
    unit: "s",
    description: "Duration",
    advice: { explicitBucketBoundaries: BOUNDS },
  });
  const u1 = p.sdk.createUpDownCounter("active", { description: "Active" });
  const r2 = p.reg.counter("reqs", { description: "Requests" });
  const h2 = p.reg.histogram("dur", { unit: "s", description: "Duration" }, BOUNDS);
  const u2 = p.reg.upDownCounter("active", { description: "Active" });
  let states: [string, number][] = [];
  p.sdk.createObservableGauge("state", { description: "State" }).addCallback((r) => {
    for (const [k, v] of states) r.observe(v, { key: k });
  });
  p.reg.gauge("state", { description: "State" }, (observe) => {
    for (const [k, v] of states) observe(v, { key: k });
  });
  c1.add(0);
  r2.add(0);
  const rnd = lcg(42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  // Bound handles, reused as the hot path reuses them.
  const bound = new Map<string, ReturnType<typeof r2.bind>>();
  for (let i = 0; i < 3000; i++) {
    const attrs: Attributes = { route: pick(["/a", "/b", "/c"]), status: pick(["200", "500"]) };
    if (rnd() < 0.3) attrs.model = pick(["m1", "m2"]);
    const v = pick([1, 0.1, 0.2, 0.7, -1, 3, 1e-3]);
    const key = JSON.stringify(attrs);
    c1.add(v, attrs);
    let b = bound.get(key);
    if (b === undefined) bound.set(key, b = r2.bind(attrs));
    b.add(v);
    // Same attribute set in another key order: the same series.
    const swapped = attrs.model === undefined
      ? { status: attrs.status, route: attrs.route }
      : { model: attrs.model, status: attrs.status, route: attrs.route };
    const d = pick([0.5, 1, 2.5, 10, 11, 0, 0.25, -2, NaN, 0.1 + 0.2]);
    h1.record(d, swapped);
    h2.record(d, swapped);
    const a = pick([1, -1]);
    u1.add(a, { route: attrs.route });
    u2.add(a, { route: attrs.route });
    if (rnd() < 0.02) {
      // Series are only added and updated here: a series no longer observed is ours to
      // drop (the SDK keeps it), tested on its own below.
      const k = `k${i % 7}`;
      states = [...states.filter(([s]) => s !== k), [k, pick([0, 1, 2])]];
      const [x, y] = await p.scrape();
      assert.equal(y, x);
    }
  }
  const [x, y] = await p.scrape();
  assert.equal(y, x);
  assert.match(y, /# TYPE dur histogram/);
});

Deno.test("Registry: past 1999 series in one collection interval, the rest folds into otel.metric.overflow as in the SDK", async () => {
  const p = pair();
  const c1 = p.sdk.createCounter("flood");
  const c2 = p.reg.counter("flood");
  const h1 = p.sdk.createHistogram("flood_h", { advice: { explicitBucketBoundaries: BOUNDS } });
  const h2 = p.reg.histogram("flood_h", {}, BOUNDS);
  const handles = new Map<number, ReturnType<typeof c2.bind>>();
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 2500; i++) {
      const k = (i * 7 + round * 1000) % 4000;
      c1.add(1, { k: String(k) });
      let b = handles.get(k);
      if (b === undefined) handles.set(k, b = c2.bind({ k: String(k) }));
      b.add(1);
      h1.record(k % 12, { k: String(k % 2100) });
      h2.record(k % 12, { k: String(k % 2100) });
    }
    const [x, y] = await p.scrape();
    assert.equal(y, x);
    assert.match(y, /otel_metric_overflow="true"/);
  }
});

Deno.test("Registry: a dropped recording creates no series; NaN creates it without a count", () => {
  const reg = new Registry("s");
  const c = reg.counter("c");
  const h = reg.histogram("h", {}, BOUNDS);
  c.add(-1, { a: "x" });
  h.record(-1, { a: "x" });
  const none = reg.collect();
  assert.equal(none.length, 0);
  h.record(NaN, { a: "y" });
  const [data] = reg.collect();
  assert.equal(data?.dataPoints.length, 1);
  assert.deepEqual(data?.dataPoints[0]?.attributes, { a: "y" });
  assert.equal((data?.dataPoints[0]?.value as { count: number }).count, 0);
});

Deno.test("Registry: a counter with unitsPer sums whole units and exports them divided back", () => {
  const reg = new Registry("s");
  const usd = reg.counter("usd", { unitsPer: 1e9 });
  const plain = reg.counter("plain");
  // 400 answers at $0.0031925 (3,192,500 nano-dollars each).
  for (let i = 0; i < 400; i++) {
    usd.add(3_192_500);
    plain.add(0.0031925);
  }
  const [u, p] = reg.collect();
  assert.equal(u?.dataPoints[0]?.value, 1.277);
  assert.notEqual(p?.dataPoints[0]?.value, 1.277, "a float sum carries residue");
});

Deno.test("Registry: a gauge reports the series its callback observes now, not every one it ever did", () => {
  const reg = new Registry("pilotfish");
  let keys = ["a", "b"];
  reg.gauge("g", { description: "G" }, (observe) => {
    for (const k of keys) observe(1, { key: k });
  });
  const first = reg.collect().find((m) => m.descriptor.name === "g");
  assert.deepEqual(first?.dataPoints.map((d) => d.attributes.key), ["a", "b"]);
  keys = ["b"];
  const second = reg.collect().find((m) => m.descriptor.name === "g");
  assert.deepEqual(second?.dataPoints.map((d) => d.attributes.key), ["b"]);
});

Deno.test("Registry: the enum values it spells out (to record without loading the SDK) are the SDK's", () => {
  assert.equal(DOUBLE, ValueType.DOUBLE);
  assert.equal(CUMULATIVE, AggregationTemporality.CUMULATIVE);
  assert.equal(HISTOGRAM, DataPointType.HISTOGRAM);
  assert.equal(GAUGE, DataPointType.GAUGE);
  assert.equal(SUM, DataPointType.SUM);
});
