/**
 * Prometheus metrics over the OpenTelemetry SDK: instruments fed by the exchange's
 * telemetry events only, collected on each scrape by a pull reader and written in the
 * Prometheus text format by the Prometheus exporter's serializer (its HTTP server is not
 * used: `/metrics` is a route of ours, on the socket and the TCP port alike). The
 * instruments are pre-aggregated series (aggregate.ts) the reader collects through a
 * `MetricProducer`: a request's ~10 recordings cost one string key and a few additions,
 * where the SDK's instruments hashed an attribute object per recording.
 *
 * Loaded with a dynamic import only when metrics are on, and the SDK itself (scrape.ts)
 * only at the first scrape: recording needs none of it. One instance per process: counters
 * survive config reloads.
 * @module
 */
import type { Attributes } from "@opentelemetry/api";
import type { Runtime } from "../../runtime.ts";
import type { TelemetryEvent } from "../../pipeline/events.ts";
import { isUsage } from "../../pipeline/exchange.ts";
import {
  createResponseModelLabel,
  errorType,
  hasOutputTokens,
  knownModels,
  modelLabel,
  operationName,
  OTHER,
  reportedModel,
  requestedModel,
} from "../labels.ts";
import { type BoundHistogram, type BoundSum, Registry } from "./aggregate.ts";
import { HeldSlot } from "../../slot.ts";
import { toNanos } from "../../usage/cost.ts";
import type { BreakerStore } from "../../breaker/mod.ts";
import type { Scraper } from "./scrape.ts";

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
/** Distinct response models outside the config kept as labels (dated versions). */
const MAX_RESPONSE_MODELS = 32;
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

/** Composite keys a listener keeps handles for, before it starts over (labels are bounded). */
const MAX_HANDLES = 4096;

/** Remembers `handle` under `key` in `handles` (emptied when full) and returns it. */
function keep<H>(handles: Map<string, H>, key: string, handle: H): H {
  if (handles.size >= MAX_HANDLES) handles.clear();
  handles.set(key, handle);
  return handle;
}

/** The series one kind of finished request records into. */
interface EndHandles {
  readonly requests: BoundSum;
  readonly overhead: BoundHistogram;
  readonly provider: BoundSum;
  readonly modelCost: BoundSum;
  readonly cost: BoundSum;
  readonly duration: BoundHistogram;
  readonly inputTokens: BoundHistogram;
  readonly outputTokens: BoundHistogram;
}

export function createMetrics(serviceName: string): Metrics {
  // Recordings go to pre-aggregated series (aggregate.ts); the SDK's reader, loaded at the
  // first scrape, collects them on each scrape.
  const meter = new Registry("pilotfish");
  let scraper: Promise<Scraper> | null = null;

  // OTel GenAI semantic conventions.
  const tokenUsage = meter.histogram("gen_ai.client.token.usage", {
    unit: "{token}",
    description: "Tokens used per request, by type (input, output)",
  }, TOKEN_BUCKETS);
  const opDuration = meter.histogram("gen_ai.client.operation.duration", {
    unit: "s",
    description: "Request duration, from arrival to the last byte",
  }, DURATION_BUCKETS);
  const firstChunk = meter.histogram("gen_ai.client.operation.time_to_first_chunk", {
    unit: "s",
    description: "Time from an attempt's start to its first stream chunk",
  }, DURATION_BUCKETS);

  // llm-gateway's series, named as its README shows them.
  const lgRequests = meter.counter("llm_gateway_requests", { description: "Requests" });
  const lgTokens = meter.counter("llm_gateway_tokens", { description: "Tokens" });
  // Costs are summed in nano-dollars (exact) and exported in USD.
  const lgCost = meter.counter("llm_gateway_cost", { description: "Cost (USD)", unitsPer: 1e9 });
  const lgCacheHits = meter.counter("llm_gateway_cache_hits", {
    description: "Response cache hits",
  });
  const lgProvider = meter.counter("llm_gateway_provider_requests", {
    description: "Requests by provider",
  });
  const lgModelCost = meter.counter("llm_gateway_model_cost", {
    description: "Cost (USD) by model",
    unitsPer: 1e9,
  });

  // Present from the first scrape, as llm-gateway's are: a dashboard sees 0, not "no data".
  const [allRequests, allTokens, allCost, allCacheHits] = [
    lgRequests,
    lgTokens,
    lgCost,
    lgCacheHits,
  ]
    .map((c) => {
      const b = c.bind();
      b.add(0);
      return b;
    }) as [BoundSum, BoundSum, BoundSum, BoundSum];

  // Ours.
  const requests = meter.counter("pilotfish_requests", {
    description: "Requests by route, status and provider",
  });
  const overhead = meter.histogram("pilotfish_overhead_seconds", {
    unit: "s",
    description: "Time in Pilotfish until the response started, upstream waits excluded",
  }, OVERHEAD_BUCKETS);
  const attempts = meter.counter("pilotfish_upstream_attempts", {
    description: "Upstream attempts by provider, model and outcome",
  });
  const retries = meter.counter("pilotfish_retries", { description: "Retries" });
  const failovers = meter.counter("pilotfish_failovers", {
    description: "Moves to the next provider",
  });
  const hedges = meter.counter("pilotfish_hedges", { description: "Hedged requests" });
  const transitions = meter.counter("pilotfish_breaker_transitions", {
    description: "Circuit breaker state changes",
  });
  const fastFails = meter.counter("pilotfish_breaker_fast_fails", {
    description: "Requests refused by an open breaker",
  });
  const probes = meter.counter("pilotfish_breaker_probes", {
    description: "Half-open probes by outcome",
  });
  const bypasses = meter.counter("pilotfish_breaker_bypass", {
    description: "Breaker bypasses (X-LLM-Proxy-Bypass-Circuit) by reason and outcome",
  });
  const rateLimits = meter.counter("pilotfish_rate_limit_decisions", {
    description: "Rate-limit checks by scope and decision",
  });
  const cache = meter.counter("pilotfish_cache_lookups", {
    description: "Response cache lookups by result",
  });
  const cost = meter.counter("pilotfish_cost_usd", {
    description: "Cost (USD) by provider and model",
    unitsPer: 1e9,
  });
  const activeStreams = meter.upDownCounter("pilotfish_active_streams", {
    description: "Streams being relayed",
  }).bind();

  /**
   * Breaker keys (the store's, `provider:model`) ever seen not closed, with their provider:
   * from this sidecar's transitions and from the store's view, which with Redis holds what
   * the fleet opened. Their state is read from the store at each scrape: the state this
   * sidecar acts on, wherever it was decided.
   */
  const breakerKeys = new Map<string, string>();
  const seeKey = (key: string, provider: string, store: BreakerStore | undefined) => {
    if (breakerKeys.has(key)) return;
    if (breakerKeys.size >= MAX_HANDLES && store !== undefined) {
      // Bounded (a breaker key per model a client names): closed keys make room first.
      for (const k of breakerKeys.keys()) if (store.openUntil(k) === null) breakerKeys.delete(k);
    }
    if (breakerKeys.size < MAX_HANDLES) breakerKeys.set(key, provider);
  };
  let labelsOf: { config: Runtime["config"]; known: ReadonlySet<string> } | null = null;
  meter.gauge("pilotfish_breaker_state", {
    description: "Breaker state per key: 0 closed, 1 half-open, 2 open",
  }, (observe) => {
    if (gen === null) return;
    const rt = gen.rt;
    const store = rt.breaker.store;
    const now = rt.now();
    for (const provider of Object.keys(rt.config.providers)) {
      for (const key of store.openKeys(provider)) seeKey(key, provider, store);
    }
    if (labelsOf?.config !== rt.config) {
      labelsOf = { config: rt.config, known: knownModels(rt.config) };
    }
    // Keys whose models share a label (`other`) report the worst of them.
    const states = new Map<string, { provider: string; value: number }>();
    for (const [key, provider] of breakerKeys) {
      // An open key whose cooldown has passed is half-open (it moves there on its next
      // request; /health says so already).
      const until = store.openUntil(key);
      const value = BREAKER_STATE[until === null ? "closed" : until <= now ? "half_open" : "open"]!;
      const m = key.slice(provider.length + 1);
      const label = m === "" ? provider : `${provider}:${modelLabel(labelsOf.known, m)}`;
      const seen = states.get(label);
      if (seen === undefined || seen.value < value) states.set(label, { provider, value });
    }
    for (const [key, s] of states) observe(s.value, { provider: s.provider, key });
  });
  let gen: { rt: Runtime; hash: string; fleetUp: () => boolean | null } | null = null;
  meter.gauge("pilotfish_config_generation", {
    description: "The config generation serving requests (label: its hash)",
  }, (observe) => {
    if (gen) observe(gen.rt.generation, { hash: gen.hash });
  });
  meter.gauge("pilotfish_redis_link_up", {
    description: "1 when a Redis link is up, per use (breaker: 0 on its memory fallback)",
  }, (observe) => {
    const d = gen?.rt.breaker.store.describe();
    if (d && d.backend === "redis") observe(d.fallback ? 0 : 1, { link: "breaker" });
    const fleet = gen?.fleetUp() ?? null;
    if (fleet !== null) observe(fleet ? 1 : 0, { link: "fleet" });
  });

  /** A stream's time to first chunk (s), recorded at its end with the labels known only then. */
  const streaming = new HeldSlot<number>("streaming");
  const answeredLabel = createResponseModelLabel(MAX_RESPONSE_MODELS);
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
      // Handles by the label values they were bound with (NUL-separated): a request looks its
      // series up with one string key instead of hashing an attribute object per recording.
      const ends = new Map<string, EndHandles>();
      const attemptHandles = new Map<string, BoundSum>();
      const chunkHandles = new Map<string, BoundHistogram>();
      const allowHandles = new Map<string, BoundSum>();
      const denyHandles = new Map<string, BoundSum>();
      const cacheHandles = new Map<string, BoundSum>();

      const bindEnd = (
        route: string,
        status: string,
        provider: string,
        appKey: string | undefined,
        genAi: Attributes,
        err: string | null,
        routed: string,
      ): EndHandles => {
        const base: Attributes = { route, status, provider };
        if (appKey !== undefined) base.app_key = appKey;
        return {
          requests: requests.bind(base),
          overhead: overhead.bind({ route }),
          provider: lgProvider.bind({ provider }),
          // Cost is priced by the model routed to: its labels stay that model.
          modelCost: lgModelCost.bind({ model: routed }),
          cost: cost.bind({ provider, model: routed }),
          duration: opDuration.bind(err === null ? genAi : { ...genAi, "error.type": err }),
          inputTokens: tokenUsage.bind({ ...genAi, "gen_ai.token.type": "input" }),
          outputTokens: tokenUsage.bind({ ...genAi, "gen_ai.token.type": "output" }),
        };
      };

      return (e) => {
        switch (e.type) {
          case "request_end": {
            const ex = e.exchange;
            const provider = ex.provider ?? "none";
            const route = ex.route ?? "unmatched";
            const status = String(e.status);
            const appKey = perKey ? appKeyLabel(ex.principal.appKey) : undefined;
            const llm = ex.schema !== null; // else not an LLM route (health, metrics, status)
            let op = "";
            let requested = "";
            let routed = "";
            let answered = "";
            let err: string | null = null;
            if (llm) {
              op = operationName(ex);
              requested = model(requestedModel(ex));
              routed = model(ex.model);
              answered = answeredLabel(known, reportedModel(ex), routed);
              err = errorType(ex, e.status, e.outcome);
            }
            const key = `${route}\0${status}\0${provider}\0${
              appKey ?? "\x01"
            }\0${op}\0${requested}\0${routed}\0${answered}\0${err ?? "\x01"}`;
            const h = ends.get(key) ?? keep(
              ends,
              key,
              bindEnd(
                route,
                status,
                provider,
                appKey,
                {
                  "gen_ai.operation.name": op,
                  "gen_ai.provider.name": provider,
                  "gen_ai.request.model": requested,
                  "gen_ai.response.model": answered,
                },
                err,
                routed,
              ),
            );
            h.requests.add(1);
            if (ex.overheadMs !== null) h.overhead.record(ex.overheadMs / 1000);
            const firstChunkS = streaming.get(ex);
            if (firstChunkS !== undefined) {
              streaming.delete(ex);
              activeStreams.add(-1);
            }
            if (!llm) return;
            if (firstChunkS !== undefined) {
              // Joinable with the duration histogram: the same four GenAI labels.
              const k = `${op}\0${provider}\0${requested}\0${answered}`;
              (chunkHandles.get(k) ?? keep(
                chunkHandles,
                k,
                firstChunk.bind({
                  "gen_ai.operation.name": op,
                  "gen_ai.provider.name": provider,
                  "gen_ai.request.model": requested,
                  "gen_ai.response.model": answered,
                }),
              )).record(firstChunkS);
            }
            // As /api/v1/usage counts requests (llm-gateway shows the two equal); a provider's
            // are those that reached it (or its answer in the cache), not refusals naming it.
            if (isUsage(ex)) {
              allRequests.add(1);
              if (ex.provider !== undefined) h.provider.add(1);
            }
            const nanos = toNanos(ex.cost ?? 0);
            if (nanos > 0) {
              allCost.add(nanos);
              h.modelCost.add(nanos);
              h.cost.add(nanos);
            }
            h.duration.record(e.duration_ms / 1000);
            // What was billed (the meter runs first): hedge losers that answered and the
            // estimated parts of a cut stream included, as in /api/v1/usage.
            const u = ex.billedUsage ?? e.usage;
            if (u !== null) {
              const input = u.prompt_tokens ?? 0;
              const output = u.completion_tokens ?? 0;
              allTokens.add(input + output);
              h.inputTokens.record(input);
              if (hasOutputTokens(op)) h.outputTokens.record(output);
            }
            return;
          }
          case "attempt_end": {
            const a = e.attempt;
            // Upstream calls only: a breaker fast-fail has its own counter.
            if (a.no_call) return;
            const m = model(a.model);
            const key = `${a.provider}\0${m}\0${a.outcome}`;
            (attemptHandles.get(key) ?? keep(
              attemptHandles,
              key,
              attempts.bind({ provider: a.provider, model: m, outcome: a.outcome }),
            )).add(1);
            return;
          }
          case "first_chunk": {
            // Recorded at the request's end, when the response model is known (see there).
            if (!streaming.has(e.exchange) && !e.exchange.ended) {
              streaming.set(e.exchange, e.ms / 1000);
              activeStreams.add(1);
            }
            return;
          }
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
            seeKey(e.key, e.provider, rt.breaker.store);
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
          case "rate_limit": {
            const handles = e.decision === "allow" ? allowHandles : denyHandles;
            for (const { check: { label } } of e.limits) {
              (handles.get(label.key) ?? keep(
                handles,
                label.key,
                rateLimits.bind({ scope: label.scope, decision: e.decision, metric: label.metric }),
              )).add(1);
            }
            return;
          }
          case "cache":
            (cacheHandles.get(e.result) ??
              keep(cacheHandles, e.result, cache.bind({ result: e.result }))).add(1);
            if (e.result === "hit") allCacheHits.add(1);
            return;
        }
      };
    },
    async render() {
      scraper ??= import("./scrape.ts").then((m) => m.createScraper(meter, serviceName));
      return (await scraper).render();
    },
    close: async () => {
      if (scraper !== null) await (await scraper).close();
    },
  };
}

/**
 * An app key as a label: its id (what the app-key stage records), never a key itself. A
 * value that looks like a raw `pf_...` key is not used.
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
