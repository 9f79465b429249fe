/**
 * Prometheus metrics over the OpenTelemetry SDK: instruments fed by the exchange's
 * telemetry events only, collected on each scrape by a pull reader and written in the
 * Prometheus text format by the Prometheus exporter's serializer (its HTTP server is not
 * used: `/metrics` is a route of ours, on the socket and the TCP port alike).
 *
 * Loaded with a dynamic import only when metrics are on, so a daemon without them never
 * pays for the SDK. One instance per process: counters survive config reloads.
 * @module
 */
import type { Attributes } from "@opentelemetry/api";
import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { resourceFromAttributes } from "@opentelemetry/resources";
import type { Runtime } from "../../runtime.ts";
import type { TelemetryEvent } from "../../pipeline/events.ts";
import type { Exchange } from "../../pipeline/exchange.ts";
import {
  errorType,
  knownModels,
  modelLabel,
  operationName,
  OTHER,
  requestedModel,
} from "../labels.ts";

/** Collects only when asked (a scrape); no timer, no push. */
class ScrapeReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

/** GenAI semconv's advised buckets (seconds; tokens). */
const DURATION_BUCKETS = [
  0.01,
  0.02,
  0.04,
  0.08,
  0.16,
  0.32,
  0.64,
  1.28,
  2.56,
  5.12,
  10.24,
  20.48,
  40.96,
  81.92,
];
const TOKEN_BUCKETS = [
  1,
  4,
  16,
  64,
  256,
  1024,
  4096,
  16384,
  65536,
  262144,
  1048576,
  4194304,
  16777216,
  67108864,
];
/**
 * Distinct bypass reasons kept as labels. llm-proxy normalises them (and an allowlist maps
 * the rest to `other`), but without an allowlist a client could still mint new ones.
 */
const MAX_BYPASS_REASONS = 32;
/** Gateway overhead is sub-millisecond to a few ms (seconds). */
const OVERHEAD_BUCKETS = [
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
];

const BREAKER_STATE: Record<string, number> = { closed: 0, half_open: 1, open: 2 };

export interface Metrics {
  /** The event listener of one config generation. */
  listen(rt: Runtime): (event: TelemetryEvent) => void;
  /**
   * The generation gauges read (config generation and hash, Redis links); `fleetUp` is the
   * fleet link's state, null without one.
   */
  current(rt: Runtime, hash: string, fleetUp: () => boolean | null): void;
  /** Prometheus text exposition. */
  render(): Promise<string>;
  close(): Promise<void>;
}

export function createMetrics(serviceName: string): Metrics {
  const reader = new ScrapeReader();
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ "service.name": serviceName }),
    readers: [reader],
  });
  const meter = provider.getMeter("pilotfish");
  const serializer = new PrometheusSerializer(undefined, false, undefined, true, true);

  // OTel GenAI semantic conventions.
  const tokenUsage = meter.createHistogram("gen_ai.client.token.usage", {
    unit: "{token}",
    description: "Tokens used per request, by type (input, output)",
    advice: { explicitBucketBoundaries: TOKEN_BUCKETS },
  });
  const opDuration = meter.createHistogram("gen_ai.client.operation.duration", {
    unit: "s",
    description: "Request duration, from arrival to the last byte",
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  });
  const firstChunk = meter.createHistogram("gen_ai.client.operation.time_to_first_chunk", {
    unit: "s",
    description: "Time from an attempt's start to its first stream chunk",
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  });

  // llm-gateway's series, named as its README shows them.
  const lgRequests = meter.createCounter("llm_gateway_requests", { description: "Requests" });
  const lgTokens = meter.createCounter("llm_gateway_tokens", { description: "Tokens" });
  const lgCost = meter.createCounter("llm_gateway_cost", { description: "Cost (USD)" });
  const lgCacheHits = meter.createCounter("llm_gateway_cache_hits", {
    description: "Response cache hits",
  });
  const lgProvider = meter.createCounter("llm_gateway_provider_requests", {
    description: "Requests by provider",
  });
  const lgModelCost = meter.createCounter("llm_gateway_model_cost", {
    description: "Cost (USD) by model",
  });

  // Present from the first scrape, as llm-gateway's are: a dashboard sees 0, not "no data".
  for (const c of [lgRequests, lgTokens, lgCost, lgCacheHits]) c.add(0);

  // Ours.
  const requests = meter.createCounter("pilotfish_requests", {
    description: "Requests by route, status and provider",
  });
  const overhead = meter.createHistogram("pilotfish_overhead_seconds", {
    unit: "s",
    description: "Time in Pilotfish until the response started, upstream waits excluded",
    advice: { explicitBucketBoundaries: OVERHEAD_BUCKETS },
  });
  const attempts = meter.createCounter("pilotfish_upstream_attempts", {
    description: "Upstream attempts by provider, model and outcome",
  });
  const retries = meter.createCounter("pilotfish_retries", { description: "Retries" });
  const failovers = meter.createCounter("pilotfish_failovers", {
    description: "Moves to the next provider",
  });
  const hedges = meter.createCounter("pilotfish_hedges", { description: "Hedged requests" });
  const transitions = meter.createCounter("pilotfish_breaker_transitions", {
    description: "Circuit breaker state changes",
  });
  const fastFails = meter.createCounter("pilotfish_breaker_fast_fails", {
    description: "Requests refused by an open breaker",
  });
  const probes = meter.createCounter("pilotfish_breaker_probes", {
    description: "Half-open probes by outcome",
  });
  const bypasses = meter.createCounter("pilotfish_breaker_bypass", {
    description: "Breaker bypasses (X-LLM-Proxy-Bypass-Circuit) by reason and outcome",
  });
  const rateLimits = meter.createCounter("pilotfish_rate_limit_decisions", {
    description: "Rate-limit checks by scope and decision",
  });
  const cache = meter.createCounter("pilotfish_cache_lookups", {
    description: "Response cache lookups by result",
  });
  const cost = meter.createCounter("pilotfish_cost_usd", {
    description: "Cost (USD) by provider and model",
  });
  const activeStreams = meter.createUpDownCounter("pilotfish_active_streams", {
    description: "Streams being relayed",
  });

  /** Breaker state per key, from transitions (a key never seen is closed). */
  const breakerKeys = new Map<string, { provider: string; state: string }>();
  meter.createObservableGauge("pilotfish_breaker_state", {
    description: "Breaker state per key: 0 closed, 1 half-open, 2 open",
  }).addCallback((result) => {
    for (const [key, v] of breakerKeys) {
      result.observe(BREAKER_STATE[v.state] ?? 0, { provider: v.provider, key });
    }
  });
  let gen: { rt: Runtime; hash: string; fleetUp: () => boolean | null } | null = null;
  meter.createObservableGauge("pilotfish_config_generation", {
    description: "The config generation serving requests (label: its hash)",
  }).addCallback((result) => {
    if (gen) result.observe(gen.rt.generation, { hash: gen.hash });
  });
  meter.createObservableGauge("pilotfish_redis_link_up", {
    description: "1 when a Redis link is up, per use (breaker: 0 on its memory fallback)",
  }).addCallback((result) => {
    const d = gen?.rt.breaker.store.describe();
    if (d && d.backend === "redis") result.observe(d.fallback ? 0 : 1, { link: "breaker" });
    const fleet = gen?.fleetUp() ?? null;
    if (fleet !== null) result.observe(fleet ? 1 : 0, { link: "fleet" });
  });

  const streaming = new WeakSet<Exchange>();
  const reasons = new Set<string>();
  const reasonLabel = (reason: string) => {
    if (reason === "") return OTHER;
    if (reasons.has(reason)) return reason;
    if (reasons.size >= MAX_BYPASS_REASONS) return OTHER;
    reasons.add(reason);
    return reason;
  };

  return {
    current(rt, hash, fleetUp) {
      gen = { rt, hash, fleetUp };
    },
    listen(rt) {
      const known = knownModels(rt.config);
      const perKey = rt.config.metrics.per_key;
      const model = (m: string | undefined) => modelLabel(known, m);
      return (e) => {
        switch (e.type) {
          case "request_end": {
            const ex = e.exchange;
            const provider = ex.provider ?? "none";
            const route = ex.route ?? "unmatched";
            const base: Attributes = { route, status: String(e.status), provider };
            if (perKey) base.app_key = appKeyLabel(ex.principal.appKey);
            requests.add(1, base);
            if (ex.overheadMs !== null) overhead.record(ex.overheadMs / 1000, { route });
            if (streaming.delete(ex)) activeStreams.add(-1);
            if (ex.schema === null) return; // not an LLM route (health, metrics, status)
            lgRequests.add(1);
            if (ex.provider !== undefined) lgProvider.add(1, { provider });
            const usd = ex.cost ?? 0;
            const responseModel = model(ex.model);
            if (usd > 0) {
              lgCost.add(usd);
              lgModelCost.add(usd, { model: responseModel });
              cost.add(usd, { provider, model: responseModel });
            }
            const attrs: Attributes = {
              "gen_ai.operation.name": operationName(ex.schema),
              "gen_ai.provider.name": provider,
              "gen_ai.request.model": model(requestedModel(ex)),
              "gen_ai.response.model": responseModel,
            };
            const err = errorType(ex, e.status, e.outcome);
            opDuration.record(
              e.duration_ms / 1000,
              err === null ? attrs : { ...attrs, "error.type": err },
            );
            const u = e.usage;
            if (u !== null) {
              const input = u.prompt_tokens ?? 0;
              const output = u.completion_tokens ?? 0;
              lgTokens.add(input + output);
              tokenUsage.record(input, { ...attrs, "gen_ai.token.type": "input" });
              tokenUsage.record(output, { ...attrs, "gen_ai.token.type": "output" });
            }
            return;
          }
          case "attempt_end":
            attempts.add(1, {
              provider: e.attempt.provider,
              model: model(e.attempt.model),
              outcome: e.attempt.outcome,
            });
            return;
          case "first_chunk":
            firstChunk.record(e.ms / 1000, {
              "gen_ai.operation.name": operationName(e.exchange.schema),
              "gen_ai.provider.name": e.target.provider,
              "gen_ai.request.model": model(e.target.model),
            });
            if (!streaming.has(e.exchange) && !e.exchange.ended) {
              streaming.add(e.exchange);
              activeStreams.add(1);
            }
            return;
          case "retry":
            retries.add(1, { provider: e.attempt.provider, model: model(e.attempt.model) });
            return;
          case "failover":
            failovers.add(1, { from: e.from.provider, to: e.to.provider });
            return;
          case "hedge":
            hedges.add(1, { provider: e.primary.provider, secondary: e.secondary.provider });
            return;
          case "breaker_transition": {
            const m = e.key.slice(e.provider.length + 1);
            const key = m === "" ? e.provider : `${e.provider}:${model(m)}`;
            breakerKeys.set(key, { provider: e.provider, state: e.to });
            transitions.add(1, { provider: e.provider, from: e.from, to: e.to });
            return;
          }
          case "breaker_decision": {
            const labels = { provider: e.provider, model: model(e.model) };
            if (e.decision === "fast_fail") fastFails.add(1, labels);
            else if (e.decision === "probe") probes.add(1, { ...labels, outcome: e.outcome });
            else bypasses.add(1, { ...labels, reason: reasonLabel(e.reason), outcome: e.outcome });
            return;
          }
          case "rate_limit":
            rateLimits.add(1, { scope: e.scope, decision: e.decision, metric: e.metric });
            return;
          case "cache":
            cache.add(1, { result: e.result });
            if (e.result === "hit") lgCacheHits.add(1);
            return;
        }
      };
    },
    async render() {
      const { resourceMetrics } = await reader.collect();
      return serializer.serialize(resourceMetrics);
    },
    close: () => provider.shutdown(),
  };
}

/**
 * An app key as a label: its id (what the app-key stage records), never a key itself. A
 * value that looks like a raw `pf_…` key is not used.
 */
function appKeyLabel(appKey: string | undefined): string {
  if (appKey === undefined) return "none";
  return appKey.startsWith("pf_") ? "unidentified" : appKey;
}

/** Events the metrics listen to. */
export const METRIC_EVENTS = [
  "request_end",
  "attempt_end",
  "first_chunk",
  "retry",
  "failover",
  "hedge",
  "breaker_transition",
  "breaker_decision",
  "rate_limit",
  "cache",
] as const;
