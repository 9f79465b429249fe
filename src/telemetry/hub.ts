/**
 * Observability across config generations: the metrics, the tracer, the status rollup and
 * the fleet heartbeat live as long as the process (counters survive reloads), and each
 * generation subscribes them to its event bus in `buildRuntime` and unsubscribes when it is
 * disposed. OpenTelemetry is imported only when metrics or tracing are on
 * (`preloadTelemetry` before the first generation is built; a generation that needs it
 * before then starts the import and subscribes once it is in).
 * @module
 */
import type { Config } from "../config/mod.ts";
import type { Runtime } from "../runtime.ts";
import type { Metrics } from "./metrics/mod.ts";
import type { Tracing, TracingSettings } from "./tracing/mod.ts";
import { createRollup, type Rollup, ROLLUP_EVENTS } from "./rollup.ts";
import { otlpProtocol, parseResourceAttributes } from "./otel_env.ts";
import type { Fleet } from "./fleet.ts";

type MetricsModule = typeof import("./metrics/mod.ts");
type TracingModule = typeof import("./tracing/mod.ts");

let metricsModule: MetricsModule | null = null;
let tracingModule: TracingModule | null = null;

/** Whether `config` serves `/metrics`. */
export function metricsEnabled(config: Config): boolean {
  return config.metrics.enabled || config.plugins.metrics !== undefined;
}

/** Reads an env var the daemon may not be granted (then: unset). */
function envVar(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Where traces go, or null when tracing is off. On with Butter's `plugins.tracing`, with
 * `telemetry.tracing.enabled`, or with the standard `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`.
 * The resource is `OTEL_RESOURCE_ATTRIBUTES` with `service.name` set by, first to last:
 * Butter's `service_name`, `OTEL_SERVICE_NAME`, the attributes' own, `telemetry.service_name`.
 */
export function tracingSettings(
  config: Config,
  env: (name: string) => string | undefined = envVar,
): TracingSettings | null {
  // Butter's block without an endpoint exports nothing.
  const butterEndpoint = config.plugins.tracing?.endpoint?.trim() ?? "";
  const butter = butterEndpoint !== "" ? config.plugins.tracing : undefined;
  const ours = config.telemetry.tracing;
  const signalUrl = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const baseUrl = env("OTEL_EXPORTER_OTLP_ENDPOINT");
  const resource = parseResourceAttributes(env("OTEL_RESOURCE_ATTRIBUTES"));
  const protocol = otlpProtocol(
    env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? env("OTEL_EXPORTER_OTLP_PROTOCOL"),
  );
  const { "service.name": resourceName, ...attributes } = resource.attributes;
  const serviceName = butter?.service_name ?? env("OTEL_SERVICE_NAME") ?? resourceName ??
    config.telemetry.service_name;
  const warnings = [resource.warning, protocol.warning].filter((w) => w !== undefined);
  const common = { headers: ours.headers, serviceName, protocol: protocol.protocol, attributes };
  let url: string;
  if (butter !== undefined) {
    const e = butterEndpoint;
    const base = /^https?:\/\//.test(e) ? e : `${butter.insecure ? "http" : "https"}://${e}`;
    const parsed = URL.parse(base);
    url = base.replace(/\/$/, "") + (parsed && parsed.pathname !== "/" ? "" : "/v1/traces");
  } else if (!ours.enabled && signalUrl === undefined && baseUrl === undefined) {
    return null;
  } else {
    url = ours.endpoint ?? signalUrl ??
      (baseUrl !== undefined
        ? `${baseUrl.replace(/\/$/, "")}/v1/traces`
        : "http://localhost:4318/v1/traces");
  }
  return { url, ...common, ...(warnings.length > 0 ? { warnings } : {}) };
}

/** Import what `config` needs of OpenTelemetry (once per process). */
export async function preloadTelemetry(config: Config): Promise<void> {
  if (metricsEnabled(config)) metricsModule ??= await import("./metrics/mod.ts");
  if (tracingSettings(config) !== null) tracingModule ??= await import("./tracing/mod.ts");
}

/**
 * A short hash of a config, to tell generations apart and see which sidecars of a fleet
 * run the same one: the listeners (`server`) and the sidecar's own fleet name are left
 * out, since they differ between sidecars that otherwise share a config.
 */
export function configHash(config: Config): string {
  const { server: _server, ...shared } = config;
  const fleet = { ...config.telemetry.fleet, name: undefined };
  const text = JSON.stringify({ ...shared, telemetry: { ...config.telemetry, fleet } });
  return fnv1a(text, 0x811c9dc5).toString(16).padStart(8, "0") +
    fnv1a(text, 0x2f3a9e71).toString(16).padStart(8, "0").slice(0, 4);
}

/** FNV-1a (32 bits) from `seed`: an identity for configs, not a secret (no node:crypto). */
function fnv1a(text: string, seed: number): number {
  let h = seed;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export interface Observability {
  readonly rollup: Rollup;
  /** This sidecar's name in the fleet. */
  readonly name: string;
  /** Subscribe a generation; returns its detach (called when it is disposed). */
  attach(rt: Runtime): () => Promise<void>;
  /** Prometheus text, or null while metrics are off or still loading. */
  metricsText(): Promise<string | null>;
  /** The fleet's heartbeats (null without Redis), and this generation's hash. */
  fleet(): Promise<FleetView | null>;
  configHash(rt: Runtime): string;
  /** Export queued spans now (tests). */
  flushTraces(): Promise<void>;
}

export interface FleetView {
  readonly connected: boolean;
  readonly members: Awaited<ReturnType<Fleet["members"]>>;
}

export interface ObservabilityDeps {
  readonly now: () => number;
  /** The heartbeat body of this sidecar (status JSON minus the fleet). */
  readonly beat: (rt: Runtime) => Record<string, unknown>;
}

const hubs = new WeakMap<object, Observability>();

/**
 * The observability of the process that owns `owner` (its routing state, which every
 * generation shares): created on the first call, closed when its last generation detached.
 */
export function observabilityFor(owner: object, deps: ObservabilityDeps): Observability {
  let hub = hubs.get(owner);
  if (!hub) {
    hub = createObservability(deps, () => hubs.delete(owner));
    hubs.set(owner, hub);
  }
  return hub;
}

function createObservability(deps: ObservabilityDeps, onClosed: () => void): Observability {
  const rollup = createRollup(deps.now);
  let metrics: Metrics | null = null;
  const tracers = new Map<string, { tracing: Tracing; users: number }>();
  /** The fleet link; its module (and the Redis client) is imported only when configured. */
  let fleet: { fleet: Promise<Fleet>; key: string; users: number } | null = null;
  /** The fleet once its module loaded (for the link gauge, read synchronously). */
  let fleetLink: Fleet | null = null;
  let attached = 0;
  let current: Runtime | null = null;
  const hashes = new WeakMap<Runtime, string>();
  const hashOf = (rt: Runtime) => {
    let h = hashes.get(rt);
    if (h === undefined) hashes.set(rt, h = configHash(rt.config));
    return h;
  };
  let name = "";
  /** Warnings about the exporter's env, said once: the environment does not change on reload. */
  const said = new Set<string>();

  const hub: Observability = {
    rollup,
    get name() {
      return name;
    },
    configHash: hashOf,
    attach(rt) {
      attached++;
      current = rt;
      const cfg = rt.config;
      name ||= cfg.telemetry.fleet.name ??
        `${
          cfg.server.tcp ? `${cfg.server.host}:${cfg.server.port}` : cfg.server.socket
        }#${Deno.pid}`;
      const offs: (() => void | Promise<void>)[] = [];
      offs.push(rt.events.subscribe(rollup.listener, ROLLUP_EVENTS));
      let detached = false;

      const wantsMetrics = metricsEnabled(cfg);
      const settings = tracingSettings(cfg);
      // Said once, at start or at the reload that turns tracing on: what the exporter will
      // not do as configured.
      for (const w of settings?.warnings ?? []) {
        if (said.has(w)) continue;
        said.add(w);
        rt.logger.warn(w);
      }
      const subscribeOtel = () => {
        if (detached) return;
        if (wantsMetrics && metricsModule) {
          metrics ??= metricsModule.createMetrics(cfg.telemetry.service_name);
          metrics.current(rt, hashOf(rt), () => fleetLink === null ? null : fleetLink.connected());
          offs.push(rt.events.subscribe(metrics.listen(rt), metricsModule.METRIC_EVENTS));
        }
        if (settings !== null && tracingModule) {
          const key = JSON.stringify(settings);
          let t = tracers.get(key);
          if (!t) {
            tracers.set(key, t = { tracing: tracingModule.createTracing(settings), users: 0 });
          }
          t.users++;
          const entry = t;
          offs.push(rt.events.subscribe(entry.tracing.listener, tracingModule.TRACE_EVENTS));
          offs.push(() => {
            if (--entry.users > 0) return;
            tracers.delete(key);
            return entry.tracing.close();
          });
        }
      };
      if ((wantsMetrics && !metricsModule) || (settings !== null && !tracingModule)) {
        // Not preloaded (a reload that turned them on): subscribe once imported.
        preloadTelemetry(cfg).then(
          subscribeOtel,
          (error) => rt.logger.warn("telemetry could not load", { error }),
        );
      } else {
        subscribeOtel();
      }

      if (cfg.state.backend === "redis" && cfg.telemetry.fleet.enabled) {
        const key = `${cfg.state.redis.url} ${cfg.telemetry.fleet.interval}`;
        // A reload that moved Redis: the old generation's detach closes the old link.
        if (fleet && fleet.key !== key) fleet = null;
        fleet ??= {
          key,
          users: 0,
          fleet: import("./fleet.ts").then(({ createFleet }) =>
            fleetLink = createFleet({
              url: cfg.state.redis.url,
              name,
              intervalMs: cfg.telemetry.fleet.interval,
              logger: rt.logger,
              now: deps.now,
              beat: () => deps.beat(current ?? rt),
            })
          ),
        };
        fleet.users++;
        const entry = fleet;
        offs.push(() => {
          if (--entry.users > 0) return;
          if (fleet === entry) fleet = null;
          return entry.fleet.then((f) => {
            if (fleetLink === f) fleetLink = null;
            return f.close();
          });
        });
      }

      return async () => {
        if (detached) return;
        detached = true;
        await Promise.all(offs.map((off) => off()));
        if (--attached > 0) return;
        onClosed();
        await metrics?.close();
        metrics = null;
      };
    },
    async metricsText() {
      return metrics === null ? null : await metrics.render();
    },
    async fleet() {
      if (fleet === null) return null;
      const f = await fleet.fleet;
      return { connected: f.connected(), members: await f.members() };
    },
    async flushTraces() {
      await Promise.all([...tracers.values()].map((t) => t.tracing.flush()));
    },
  };
  return hub;
}
