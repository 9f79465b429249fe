import assert from "node:assert/strict";
import { SpanKind, SpanStatusCode, TraceFlags } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import type { ReadableSpan, SpanProcessor } from "@opentelemetry/sdk-trace";
import { LeanSpan, type SpanSink } from "../../../src/telemetry/tracing/span.ts";

function sink(): SpanSink & { ended: ReadableSpan[] } {
  const ended: ReadableSpan[] = [];
  const processor: SpanProcessor = {
    onStart: () => {},
    onEnd: (span) => void ended.push(span),
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
  return { processor, resource: resourceFromAttributes({}), scope: { name: "t" }, ended };
}

Deno.test("LeanSpan.start(): a root span gets a new sampled trace; a child keeps its trace and state", () => {
  const s = sink();
  const root = LeanSpan.start(s, "root", SpanKind.SERVER, { a: 1 }, undefined);
  const ctx = root.spanContext();
  assert.match(ctx.traceId, /^[0-9a-f]{32}$/);
  assert.match(ctx.spanId, /^[0-9a-f]{16}$/);
  assert.equal(ctx.traceFlags, TraceFlags.SAMPLED);
  assert.equal(root.parentSpanContext, undefined);
  const remote = {
    traceId: "0af7651916cd43dd8448eb211c80319c",
    spanId: "b7ad6b7169203331",
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
  };
  const child = LeanSpan.start(s, "child", SpanKind.CLIENT, {}, remote);
  assert.equal(child.spanContext().traceId, remote.traceId);
  assert.notEqual(child.spanContext().spanId, remote.spanId);
  assert.equal(child.parentSpanContext, remote);
  child.setAttributes({ b: "x" });
  child.setAttribute("c", 2);
  child.setError();
  child.end();
  root.end();
  assert.deepEqual(s.ended.map((x) => x.name), ["child", "root"]);
  assert.deepEqual(s.ended[0]?.attributes, { b: "x", c: 2 });
  assert.equal(s.ended[0]?.status.code, SpanStatusCode.ERROR);
});

Deno.test("LeanSpan: under an unsampled parent nothing records or exports, its ids still propagate", () => {
  const s = sink();
  const parent = {
    traceId: "0af7651916cd43dd8448eb211c80319c",
    spanId: "b7ad6b7169203331",
    traceFlags: TraceFlags.NONE,
    isRemote: true,
  };
  const server = LeanSpan.start(s, "server", SpanKind.SERVER, { a: 1 }, parent);
  const attempt = LeanSpan.start(s, "attempt", SpanKind.CLIENT, {}, server.spanContext());
  assert.equal(attempt.spanContext().traceId, parent.traceId);
  assert.equal(attempt.spanContext().traceFlags, TraceFlags.NONE);
  attempt.addEvent("e", {});
  attempt.setAttribute("k", "v");
  attempt.end();
  server.end();
  assert.equal(s.ended.length, 0);
  assert.deepEqual(attempt.attributes, {});
});

Deno.test("LeanSpan: events past 128 drop the oldest; an end before the start is clamped; end() once", () => {
  const s = sink();
  const span = LeanSpan.start(s, "x", SpanKind.INTERNAL, {}, undefined);
  for (let i = 0; i < 130; i++) span.addEvent(`e${i}`, { i });
  assert.equal(span.events.length, 128);
  assert.equal(span.events[0]?.name, "e2");
  assert.equal(span.droppedEventsCount, 2);
  span.end(Date.now() - 60_000);
  assert.deepEqual(span.endTime, span.startTime);
  assert.deepEqual(span.duration, [0, 0]);
  span.end();
  span.setAttribute("late", 1);
  assert.equal(s.ended.length, 1);
  assert.equal(span.attributes.late, undefined);
});
