/**
 * OpenTelemetry traces: a server span per request and a client span per upstream attempt
 * (retries and hedges are siblings under the server span), GenAI attributes and token usage
 * on both, the client's W3C `traceparent` continued and each attempt's sent upstream.
 * Spans are built from the exchange's telemetry events only; a stream's spans end when its
 * last chunk went out. The spans are ours (span.ts: what the SDK's tracer would build, at
 * a fraction of its cost); the SDK's batch processor queues them and its OTLP/HTTP exporter
 * sends them: a slow or absent collector never blocks or fails a request (a full queue
 * drops spans).
 *
 * Loaded with a dynamic import only when tracing is on.
 * @module
 */
import { callsMade } from "../../routing/attempt.ts";
import {
  type Attributes,
  isSpanContextValid,
  ROOT_CONTEXT,
  type SpanContext,
  SpanKind,
  trace,
} from "@opentelemetry/api";
import {
  type ExportResult,
  ExportResultCode,
  W3CTraceContextPropagator,
} from "@opentelemetry/core";
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import type { TelemetryEvent } from "../../pipeline/events.ts";
import type { AttemptRecord, Target } from "../../routing/mod.ts";
import type { Usage } from "../../providers/types.ts";
import {
  errorType,
  hasOutputTokens,
  operationName,
  requestedModel,
  responseModel,
} from "../labels.ts";
import { LeanSpan, type SpanSink } from "./span.ts";
import { HeldSlot } from "../../slot.ts";
import type { OtlpProtocol } from "../otel_env.ts";

export interface TracingSettings {
  /** The OTLP/HTTP traces URL (`.../v1/traces`). */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly serviceName: string;
  /** OTLP/HTTP's encoding: protobuf's exporter is imported only when it is asked for. */
  readonly protocol: OtlpProtocol;
  /** `OTEL_RESOURCE_ATTRIBUTES`, `service.name` left out (it is `serviceName`). */
  readonly attributes: Readonly<Record<string, string>>;
  /** What cannot be done as configured, and what is done instead (logged at start). */
  readonly warnings?: readonly string[];
}

export interface Tracing {
  readonly settings: TracingSettings;
  listener(event: TelemetryEvent): void;
  /** Export what is queued (tests, shutdown). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

interface AttemptSpan {
  readonly target: Target;
  /** `gen_ai.operation.name`. */
  readonly operation: string;
  readonly span: LeanSpan;
  /** The W3C `traceparent` sent upstream for it: what its `first_chunk` names. */
  readonly traceparent: string;
  /** Epoch ms at the attempt's start (ends are start + the record's duration). */
  readonly start: number;
  done: boolean;
  /**
   * A stream's winning attempt whose usage settled before the exchange ended: ended at
   * `request_end`, which says whether the upstream cut the stream.
   */
  held?: { readonly record: AttemptRecord; readonly usage: Usage | null; readonly at: number };
}

/** Stream endings that are the upstream's failure: its client span fails on them. */
const UPSTREAM_ENDINGS: ReadonlySet<string> = new Set(["upstream_cut", "idle_timeout"]);

interface ExchangeSpans {
  readonly server: LeanSpan;
  readonly attempts: AttemptSpan[];
  /** The client's `tracestate` (as the propagator parsed it) when its trace is continued. */
  readonly tracestate?: string;
}

const propagator = new W3CTraceContextPropagator();
const getter = {
  get: (carrier: Headers, key: string) => carrier.get(key) ?? undefined,
  keys: (carrier: Headers) => [...carrier.keys()],
};

/** W3C `traceparent` of a span. */
function traceparentOf(span: LeanSpan): string {
  const c = span.spanContext();
  return `00-${c.traceId}-${c.spanId}-0${(c.traceFlags & 1).toString(16)}`;
}

function usageAttributes(span: LeanSpan, usage: Usage | null, operation: string): void {
  if (usage === null) return;
  span.setAttribute("gen_ai.usage.input_tokens", usage.prompt_tokens ?? 0);
  if (hasOutputTokens(operation)) {
    span.setAttribute("gen_ai.usage.output_tokens", usage.completion_tokens ?? 0);
  }
}

/**
 * A failed attempt's `error.type`, low-cardinality as on server spans and metrics: the
 * upstream's status code (`503`), `cancelled` for a hedge's loser, else the failure's code.
 */
function attemptErrorType(record: AttemptRecord): string {
  if (record.outcome === "cancelled") return "cancelled";
  const reason = record.reason;
  if (reason === undefined) return record.outcome;
  return reason.startsWith("HTTP ") ? reason.slice(5) : reason;
}

/**
 * The exporter for `protocol`. JSON's is imported with this module; protobuf's (its
 * encoder) only when configured, so a daemon exporting JSON loads none of it. Spans that
 * end before it is in wait in the batch processor's export call.
 */
function exporterFor(protocol: OtlpProtocol, config: ExporterConfig): SpanExporter {
  if (protocol === "http/json") return new OTLPTraceExporter(config);
  const ready = import("@opentelemetry/exporter-trace-otlp-proto").then((m) =>
    new m.OTLPTraceExporter(config)
  );
  // Handled at once: a failed import (a binary built without it) fails each export, and must
  // not be an unhandled rejection, which ends the process, before the first span.
  ready.catch(() => {});
  return {
    export(spans: ReadableSpan[], done: (result: ExportResult) => void) {
      ready.then(
        (e) => e.export(spans, done),
        (error: Error) => done({ code: ExportResultCode.FAILED, error }),
      );
    },
    shutdown: () => ready.then((e) => e.shutdown(), () => {}),
    forceFlush: () => ready.then((e) => e.forceFlush(), () => {}),
  };
}

interface ExporterConfig {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly timeoutMillis: number;
}

export function createTracing(settings: TracingSettings): Tracing {
  const exporter = exporterFor(settings.protocol, {
    url: settings.url,
    headers: { ...settings.headers },
    timeoutMillis: 5_000,
  });
  const processor = new BatchSpanProcessor({
    exporter,
    maxQueueSize: 2048,
    scheduledDelayMillis: 1_000,
  });
  // Spans are built here (span.ts), not by the SDK's tracer; the SDK's batch processor
  // queues and exports them.
  const sink: SpanSink = {
    processor,
    resource: resourceFromAttributes({
      ...settings.attributes,
      "service.name": settings.serviceName,
    }),
    scope: { name: "pilotfish" },
  };
  const open = new HeldSlot<ExchangeSpans>("spans");

  /** The span of `record`: the first of its target's not ended yet, in start order. */
  const claim = (spans: ExchangeSpans, record: AttemptRecord): AttemptSpan | undefined =>
    spans.attempts.find((a) =>
      !a.done && a.target.provider === record.provider && a.target.model === record.model
    );

  const endAttempt = (
    a: AttemptSpan,
    record: AttemptRecord,
    usage: Usage | null,
    ending?: { readonly outcome: string; readonly at: number },
  ) => {
    a.done = true;
    const span = a.span;
    if (record.key_id !== null) span.setAttribute("pilotfish.key_id", record.key_id);
    if (record.response_model !== undefined) {
      span.setAttribute("gen_ai.response.model", record.response_model);
    }
    // Only a response the upstream sent has a status: a refused connection or a timeout
    // (recorded as 502 / 504 for the log) got none (OTel HTTP client semconv). A hedge's
    // loser has the status it got before it was cut, if any.
    if (
      record.status !== null &&
      (record.reason === undefined || record.reason.startsWith("HTTP ") ||
        record.outcome === "cancelled")
    ) {
      span.setAttribute("http.response.status_code", record.status);
    }
    span.setAttribute("pilotfish.attempt.outcome", record.outcome);
    usageAttributes(span, usage, a.operation);
    if (record.outcome === "ok") {
      // An error the upstream answered that is relayed as the answer (a native route's 4xx):
      // the client span fails on it all the same (OTel HTTP client semconv).
      if (record.status !== null && record.status >= 400) {
        span.setAttribute("error.type", String(record.status));
        span.setError();
      } else if (ending !== undefined && UPSTREAM_ENDINGS.has(ending.outcome)) {
        // The upstream cut the stream after it was committed, or went silent.
        span.setAttribute("error.type", ending.outcome);
        span.setError();
      }
      // A stream's attempt ends with its last chunk (its usage settled then).
      span.end(ending?.at);
      return;
    }
    span.setAttribute("error.type", attemptErrorType(record));
    if (record.outcome !== "cancelled") span.setError();
    span.end(a.start + record.duration_ms);
  };

  const listener = (e: TelemetryEvent): void => {
    switch (e.type) {
      case "request_start": {
        const ex = e.exchange;
        let parent: SpanContext | undefined;
        let tracestate: string | undefined;
        if (ex.trace.traceparent !== null) {
          const remote = trace.getSpanContext(propagator.extract(ROOT_CONTEXT, ex.headers, getter));
          if (remote !== undefined && isSpanContextValid(remote)) {
            parent = remote;
            tracestate = remote.traceState?.serialize() || undefined;
          }
        }
        const server = LeanSpan.start(sink, `${ex.method} ${ex.path}`, SpanKind.SERVER, {
          "http.request.method": ex.method,
          "url.path": ex.path,
        }, parent);
        open.set(ex, { server, attempts: [], ...(tracestate ? { tracestate } : {}) });
        return;
      }
      case "attempt_start": {
        const spans = open.get(e.exchange);
        if (!spans) return;
        const op = operationName(e.exchange);
        // A native call whose body was not read has no model to name.
        const name = e.target.model === "" ? op : `${op} ${e.target.model}`;
        const span = LeanSpan.start(
          sink,
          name,
          SpanKind.CLIENT,
          {
            "gen_ai.operation.name": op,
            "gen_ai.provider.name": e.target.provider,
            ...(e.target.model === "" ? {} : { "gen_ai.request.model": e.target.model }),
          },
          spans.server.spanContext(),
          spans.server.nowMs(),
        );
        const traceparent = traceparentOf(span);
        spans.attempts.push({
          target: e.target,
          operation: op,
          span,
          traceparent,
          start: span.nowMs(),
          done: false,
        });
        e.propagate.traceparent = traceparent;
        if (spans.tracestate !== undefined) e.propagate.tracestate = spans.tracestate;
        return;
      }
      case "first_chunk": {
        // The attempt it names: an earlier attempt on the same target (a retry's failed one)
        // is not ended yet, its attempt_end comes when the run's usage settles.
        const a = open.get(e.exchange)?.attempts.find((a) => a.traceparent === e.traceparent);
        a?.span.addEvent("gen_ai.first_chunk", { "pilotfish.ms": e.ms });
        return;
      }
      case "retry":
        open.get(e.exchange)?.server.addEvent("pilotfish.retry", {
          "gen_ai.provider.name": e.attempt.provider,
          "pilotfish.wait_ms": e.wait_ms,
        });
        return;
      case "failover":
        open.get(e.exchange)?.server.addEvent("pilotfish.failover", {
          "pilotfish.from": e.from.provider,
          "pilotfish.to": e.to.provider,
        });
        return;
      case "hedge":
        open.get(e.exchange)?.server.addEvent("pilotfish.hedge", {
          "pilotfish.primary": e.primary.provider,
          "pilotfish.secondary": e.secondary.provider,
        });
        return;
      case "attempt_end": {
        const spans = open.get(e.exchange);
        if (!spans) return;
        const a = claim(spans, e.attempt);
        if (a === undefined) return;
        const ex = e.exchange;
        if (ex.response === null) {
          if (ex.stream && e.attempt.outcome === "ok") {
            a.done = true;
            a.held = { record: e.attempt, usage: e.usage, at: spans.server.nowMs() };
            return;
          }
          endAttempt(a, e.attempt, e.usage);
        } else {
          endAttempt(a, e.attempt, e.usage, {
            outcome: ex.response.outcome,
            at: spans.server.nowMs(),
          });
        }
        return;
      }
      case "request_end": {
        const ex = e.exchange;
        const spans = open.get(ex);
        if (!spans) return;
        open.delete(ex);
        for (const a of spans.attempts) {
          if (a.held !== undefined) {
            endAttempt(a, a.held.record, a.held.usage, { outcome: e.outcome, at: a.held.at });
          } else if (!a.done) {
            a.done = true;
            a.span.end();
          }
        }
        const s = spans.server;
        // One attributes object, one call: each setAttribute is validated on its own.
        const attrs: Attributes = {
          "http.response.status_code": e.status,
          // Upstream calls, as x-pilotfish-attempts counts them.
          "pilotfish.attempts": callsMade(ex.attempts),
        };
        if (ex.route !== null) {
          s.updateName(`${ex.method} ${ex.route}`);
          attrs["http.route"] = ex.route;
        }
        if (ex.schema !== null) {
          attrs["gen_ai.operation.name"] = operationName(ex);
          const requested = requestedModel(ex);
          if (requested !== undefined) attrs["gen_ai.request.model"] = requested;
        }
        if (ex.provider !== undefined) attrs["gen_ai.provider.name"] = ex.provider;
        const answered = responseModel(ex);
        if (answered !== undefined) attrs["gen_ai.response.model"] = answered;
        if (ex.cost !== null) attrs["pilotfish.cost_usd"] = ex.cost;
        // What was billed: the estimated parts of a cut or uncounted answer included, as
        // in the log, the metrics and /api/v1/usage.
        const usage = ex.billedUsage ?? e.usage;
        if (usage !== null) {
          attrs["gen_ai.usage.input_tokens"] = usage.prompt_tokens ?? 0;
          if (ex.schema === null || hasOutputTokens(operationName(ex))) {
            attrs["gen_ai.usage.output_tokens"] = usage.completion_tokens ?? 0;
          }
        }
        const err = errorType(ex, e.status, e.outcome);
        if (err !== null) {
          attrs["error.type"] = err;
          // HTTP semconv: a server span's 4xx is the client's error, its status stays unset;
          // a 5xx, or a stream cut short after a 2xx, is ours.
          if (e.status < 400 || e.status >= 500) s.setError();
        }
        s.setAttributes(attrs);
        s.end();
        return;
      }
    }
  };

  return {
    settings,
    listener,
    // An export that failed (collector away) is dropped, never a caller's error.
    flush: () => processor.forceFlush().catch(() => {}),
    close: () => processor.shutdown().catch(() => {}),
  };
}

export const TRACE_EVENTS = [
  "request_start",
  "attempt_start",
  "first_chunk",
  "retry",
  "failover",
  "hedge",
  "attempt_end",
  "request_end",
] as const;
