import type { Context } from "hono";
import { DEFAULT_DEGRADED_SIGNAL } from "../breaker/mod.ts";
import { needsApiKey, type ProviderConfig } from "../config/mod.ts";
import type { Runtime } from "../runtime.ts";
import type { AppEnv } from "./context.ts";
import { send } from "../server/whole.ts";

/** Rows shown on `/health`: per-IP or per-user counters can be many; the tightest come first. */
const USAGE_ROWS = 100;

function usageBlock(limits: NonNullable<Runtime["limits"]>) {
  const rows = limits.usage();
  rows.sort((a, b) => a.remaining / a.limit - b.remaining / b.limit);
  return { counters: rows.length, usage: rows.slice(0, USAGE_ROWS) };
}

/** `GET /healthz`: liveness, plain `ok` (Butter). */
export function healthz(c: Context<AppEnv>): Response {
  c.get("exchange").errorFormat = "plain";
  return send(c, "text", "ok");
}

/** `GET /ready`: 200 once config and listeners are up. */
export function ready(isReady: () => boolean) {
  return function readyHandler(c: Context<AppEnv>): Response {
    c.get("exchange").errorFormat = "plain";
    return isReady() ? send(c, "text", "ready") : send(c, "text", "not ready", 503);
  };
}

/** A provider's line on `/health`: `status` plus, when it is not healthy, why. */
interface ProviderHealth {
  status: "healthy" | "unconfigured" | "unreachable";
  reason?: string;
  /** Unreachable: when the failures in a row began and the latest one (Unix seconds). */
  unreachable_since?: number;
  last_failure_at?: number;
  consecutive_failures?: number;
}

/**
 * `unconfigured`: calls cannot be authenticated (no usable key while the provider needs one
 * and does not take the client's, or no AWS credentials for Bedrock signing). `unreachable`:
 * its last call failed to connect to the configured host, until a call connects again.
 */
async function providerHealth(rt: Runtime, p: ProviderConfig): Promise<ProviderHealth> {
  const usableKeys = p.keys.some((k) => k.key.trim() !== "");
  if (!usableKeys && p.credential_mode !== "passthrough" && needsApiKey(p.name, p.type)) {
    return {
      status: "unconfigured",
      reason: `No API key: set providers.${p.name}.keys, or credential_mode: passthrough ` +
        `to forward the client's`,
    };
  }
  const problem = await rt.adapters.get(p.name)?.credentialProblem?.();
  if (problem) return { status: "unconfigured", reason: rt.redact(problem) };
  const down = rt.routing.unreachableSince(p.name);
  // A failure recorded against another host (before a reload moved the provider) is moot.
  if (down !== null && down.origin === (URL.parse(p.base_url)?.origin ?? "")) {
    return {
      status: "unreachable",
      reason: down.reason,
      unreachable_since: Math.floor(down.since / 1000),
      last_failure_at: Math.floor(down.at / 1000),
      consecutive_failures: down.failures,
    };
  }
  return { status: "healthy" };
}

/**
 * `GET /health`: llm-proxy's shape: `status`, `timestamp` (Unix seconds), `providers` keyed
 * by name (`status` healthy / unconfigured / unreachable, with a `reason` when not healthy),
 * `features`, and the circuit breaker's blocks when it is on. The top-level `status` is the
 * daemon's own: a provider's trouble shows on its line, not as a failing probe.
 */
export async function health(c: Context<AppEnv>): Promise<Response> {
  c.get("exchange").errorFormat = "plain";
  return send(c, "json", await healthReport(c.get("runtime")));
}

/** `/health`'s body (also what the admin API's providers status reports). */
export async function healthReport(rt: Runtime): Promise<HealthReport> {
  const now = rt.now();
  const configured = Object.values(rt.config.providers);
  const [statuses] = await Promise.all([
    Promise.all(configured.map((p) => providerHealth(rt, p))),
    // The fleet's counts as they are now, not as this sidecar last heard them.
    rt.limits?.refresh(),
  ]);
  const providers: Record<string, Record<string, unknown>> = {};
  for (const [i, p] of configured.entries()) {
    const { status, ...detail } = statuses[i] as ProviderHealth;
    providers[p.name] = {
      provider: p.name,
      type: p.type,
      status,
      ...detail,
      baseURL: shownUrl(p.base_url),
      streaming_support: true,
      // Bodies are read for usage and limits on every route (llm-proxy's flag).
      body_parsing: true,
      ...rt.adapters.get(p.name)?.healthFields,
      keys: p.keys.map((k) => {
        const cooldown = rt.routing.keyCooldown(k.id, now);
        return cooldown
          ? {
            id: k.id,
            status: "cooldown",
            reason: cooldown.reason,
            last_status: cooldown.status,
            cooldown_until: Math.ceil(cooldown.until / 1000),
          }
          : { id: k.id, status: "ok" };
      }),
    };
  }
  const breaker = rt.breaker;
  const cb = rt.config.features.circuit_breaker;
  let circuitBlock: Record<string, unknown> | undefined;
  if (cb.enabled) {
    const perProvider: Record<string, unknown> = {};
    let total = 0;
    for (const name of Object.keys(providers)) {
      const h = breaker.health(name, now);
      perProvider[name] = h;
      total += h.failures;
      // llm-proxy's legacy per-provider fields, kept for existing dashboards.
      Object.assign(providers[name] as Record<string, unknown>, {
        circuit_state: h.state,
        circuit_failures: h.failures,
        ...(h.cooldown_until !== undefined ? { circuit_cooldown_until: h.cooldown_until } : {}),
      });
    }
    const store = breaker.store.describe();
    circuitBlock = {
      enabled: true,
      mode: breaker.mode,
      backend: store.backend,
      redis_fallback: store.fallback,
      providers: perProvider,
      total_failures: total,
      degraded_signal: cb.degraded_signal || DEFAULT_DEGRADED_SIGNAL,
    };
  }
  // With app keys on there is always a limiter (a key may carry limits): it is reported once a
  // limit exists, configured or on a key that has been used.
  const limits = rt.limits !== null &&
      (rt.limits.rules.length > 0 || rt.limits.usage().length > 0)
    ? rt.limits
    : null;
  return {
    status: "healthy",
    timestamp: Math.floor(now / 1000),
    providers,
    // llm-proxy's flags as its config set them: rate limiting is on when enabled, even with
    // every limit 0 (unlimited), as in its dev example.
    features: {
      cost_tracking: rt.config.features.cost_tracking.enabled,
      circuit_breaker: cb.enabled,
      rate_limiting: rt.config.features.rate_limiting.enabled || limits !== null,
    },
    ...(circuitBlock ? { circuit_breaker: circuitBlock } : {}),
    // Per counter (rule x scope value) as this sidecar knows it; `notice` while on its share.
    ...(limits
      ? { rate_limiting: { enabled: true, ...limits.health(), ...usageBlock(limits) } }
      : {}),
  };
}

export interface HealthReport {
  readonly status: "healthy";
  readonly timestamp: number;
  readonly providers: Record<string, Record<string, unknown>>;
  readonly features: Record<string, boolean>;
  readonly circuit_breaker?: Record<string, unknown>;
  readonly rate_limiting?: Record<string, unknown>;
}

/**
 * A base URL as `/health` (unauthenticated) shows it: credentials in the userinfo and the
 * query (`?key=...`, or a bare token) are replaced, the rest kept.
 */
export function shownUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return raw;
  }
  if (url.username === "" && url.password === "" && url.search === "") return raw;
  if (url.username !== "" || url.password !== "") {
    url.username = REDACTED;
    url.password = "";
  }
  // A bare token (`?SECRET`) has no value to replace: the whole query goes.
  if (url.search !== "") url.search = "";
  const shown = url.toString().replaceAll(encodeURIComponent(REDACTED), REDACTED);
  return raw.includes("?") ? `${shown}?${REDACTED}` : shown;
}

const REDACTED = "[REDACTED]";
