/**
 * Rate-limit policy as pure functions: the rules each seed dialect means, which of them a
 * request falls under, fixed windows and token buckets over an injected clock, token
 * estimation and the user id in llm-proxy's order. No I/O here: the counters live in a
 * backend (memory.ts, redis.ts) and the stage (stage.ts) wires them to the exchange.
 * @module
 */
import { createHash } from "node:crypto";
import type { Config } from "../config/mod.ts";
import type { KeyLimits } from "../keys/mod.ts";
import { appKeysEnabled } from "../keys/storage.ts";
import { CREDENTIAL_HEADERS } from "../providers/shared/native_auth.ts";
import type { LimitLabel } from "../pipeline/events.ts";

export type ScopeKind = "global" | "key" | "user" | "ip" | "model" | "provider";
export type Metric = "requests" | "tokens";
export type LimitFailMode = "open" | "closed";

const MINUTE = 60_000;
const DAY = 86_400_000;

/** One configured limit. */
export interface Rule {
  /** Stable across reloads of the same config (a counter's identity, in memory and Redis). */
  readonly id: string;
  readonly scope: ScopeKind;
  /** Only requests whose scope value is this (a per-user override, `perModel.<model>`). */
  readonly match?: string;
  readonly metric: Metric;
  /** `window`: fixed windows aligned on the epoch (UTC days); `bucket`: a token bucket. */
  readonly algorithm: "window" | "bucket";
  readonly limit: number;
  readonly windowMs: number;
  /** `X-RateLimit-Window`: minute, hour, day or `<n>s`. */
  readonly windowName: string;
  readonly failMode: LimitFailMode;
  /** Butter's `per_app_key`: a request with an app key is counted in its key's bucket instead. */
  readonly unlessAppKey?: boolean;
}

export function windowName(ms: number): string {
  if (ms === MINUTE) return "minute";
  if (ms === 3_600_000) return "hour";
  if (ms === DAY) return "day";
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

type Limits = {
  readonly requests_per_minute: number;
  readonly tokens_per_minute: number;
  readonly requests_per_day: number;
  readonly tokens_per_day: number;
  readonly fail_mode?: LimitFailMode | undefined;
};

const PROXY_FIELDS = [
  ["requests_per_minute", "requests", MINUTE, "rpm"],
  ["tokens_per_minute", "tokens", MINUTE, "tpm"],
  ["requests_per_day", "requests", DAY, "rpd"],
  ["tokens_per_day", "tokens", DAY, "tpd"],
] as const;

/**
 * The Redis the limiter counts in (its own `redis` block, else `state.redis`), or null: no
 * limiter (no rule, app keys off) or one in memory. What `createLimiter` connects to.
 */
export function limiterRedisUrl(config: Config): string | null {
  if (rulesOf(config).length === 0 && !appKeysEnabled(config)) return null;
  const rl = config.features.rate_limiting;
  if ((rl.backend ?? config.state.backend) !== "redis") return null;
  return rl.redis?.url ?? config.state.redis.url;
}

/** Every limit the config sets, in all three dialects (0 = unlimited is no rule). */
export function rulesOf(config: Config): Rule[] {
  const rules: Rule[] = [];
  const rl = config.features.rate_limiting;
  if (rl.enabled) {
    const global = rl.limits;
    for (const [field, metric, windowMs, tag] of PROXY_FIELDS) {
      if (global[field] > 0) {
        rules.push({
          id: `proxy.${tag}`,
          scope: "global",
          metric,
          algorithm: "window",
          limit: global[field],
          windowMs,
          windowName: windowName(windowMs),
          failMode: global.fail_mode ?? "open",
        });
      }
    }
    // llm-proxy counts each override's scope on its own, and every request against the
    // global limits too: an override can tighten a user, model or key, never loosen the total.
    const override = (
      scope: "user" | "model" | "key",
      name: string,
      limits: Limits,
      matches: readonly string[],
    ) => {
      for (const [field, metric, windowMs, tag] of PROXY_FIELDS) {
        if (limits[field] <= 0) continue;
        matches.forEach((match, i) =>
          rules.push({
            id: `proxy.${scope}.${name}${i > 0 ? `.${i}` : ""}.${tag}`,
            scope,
            match,
            metric,
            algorithm: "window",
            limit: limits[field],
            windowMs,
            windowName: windowName(windowMs),
            failMode: limits.fail_mode ?? global.fail_mode ?? "open",
          })
        );
      }
    };
    const merged = (k: "per_user" | "per_model" | "per_key"): Record<string, Limits> => ({
      ...rl.overrides[k],
      ...rl.limits.overrides[k],
    });
    for (const [user, limits] of Object.entries(merged("per_user"))) {
      override("user", user, limits, [user]);
    }
    for (const [model, limits] of Object.entries(merged("per_model"))) {
      override("model", model, limits, [model]);
    }
    // A key is named by its app key id, or by the credential a client sends, which the key
    // scope only ever holds hashed: the rule matches either. Its id shows only the hash.
    for (const [key, limits] of Object.entries(merged("per_key"))) {
      const hashed = fingerprint(key);
      override("key", hashed, limits, [hashed, key]);
    }
  }
  const gw = config.rate_limit;
  if (gw.enabled) {
    const add = (
      id: string,
      scope: ScopeKind,
      w: { requests: number; window: number; fail_mode?: LimitFailMode | undefined },
      match?: string,
    ) =>
      rules.push({
        id,
        scope,
        ...(match !== undefined ? { match } : {}),
        metric: "requests",
        algorithm: "window",
        limit: w.requests,
        windowMs: w.window,
        windowName: windowName(w.window),
        failMode: w.fail_mode ?? "open",
      });
    if (gw.global) add("gw.global", "global", gw.global);
    if (gw.per_key) add("gw.key", "key", gw.per_key);
    for (const [model, w] of Object.entries(gw.per_model)) {
      add(`gw.model.${model}`, "model", w, model);
    }
    for (const [p, w] of Object.entries(gw.per_provider)) add(`gw.provider.${p}`, "provider", w, p);
  }
  const butter = config.plugins.ratelimit;
  if (butter) {
    rules.push({
      id: butter.per_ip ? "butter.ip" : "butter.global",
      scope: butter.per_ip ? "ip" : "global",
      metric: "requests",
      algorithm: "bucket",
      limit: butter.requests_per_minute,
      windowMs: MINUTE,
      windowName: "minute",
      failMode: butter.fail_mode ?? "open",
      ...(butter.per_app_key ? { unlessAppKey: true } : {}),
    });
  }
  return rules;
}

/**
 * Butter's per-app-key buckets (`plugins.ratelimit.per_app_key`): a key's rate is its entry in
 * `app_key_limits` (by the key's hash), else `per_app_key_rpm`, else `requests_per_minute`.
 * One rule per rate, each counting per key id; null when `per_app_key` is off.
 */
export function butterKeyRules(
  config: Config,
): ((keyHash: string | undefined) => Rule) | null {
  const butter = config.plugins.ratelimit;
  if (!butter?.per_app_key) return null;
  const fallback = butter.per_app_key_rpm ?? butter.requests_per_minute;
  const byRate = new Map<number, Rule>();
  return (keyHash) => {
    const rpm = (keyHash !== undefined ? butter.app_key_limits[keyHash] : undefined) ?? fallback;
    let rule = byRate.get(rpm);
    if (rule === undefined) {
      rule = {
        id: `butter.key.${rpm}`,
        scope: "key",
        metric: "requests",
        algorithm: "bucket",
        limit: rpm,
        windowMs: MINUTE,
        windowName: "minute",
        failMode: butter.fail_mode ?? "open",
      };
      byRate.set(rpm, rule);
    }
    return rule;
  };
}

/**
 * The rules of one app key's own `limits` (its record's field), in the app-key scope: they
 * apply to that key only, next to the config's `perKey`. Ids are stable per key and metric,
 * so a changed limit keeps counting what the window already holds.
 */
export function keyRulesOf(id: string, limits: KeyLimits): Rule[] {
  const rules: Rule[] = [];
  for (const [field, metric, windowMs, tag] of PROXY_FIELDS) {
    if (limits[field] > 0) {
      rules.push({
        id: `key.${id}.${tag}`,
        scope: "key",
        match: id,
        metric,
        algorithm: "window",
        limit: limits[field],
        windowMs,
        windowName: windowName(windowMs),
        failMode: "open",
      });
    }
  }
  return rules;
}

/** What a request is, as far as the limits care. */
export interface Subject {
  /** The app key (`ex.principal.appKey`), else a hash of the client's credential. */
  readonly key?: string | undefined;
  /** The app key's id when the request presented one (`ex.principal.appKey`). */
  readonly appKey?: string | undefined;
  readonly user?: string | undefined;
  readonly ip?: string | undefined;
  /** The model as requested and the model routed to: `perModel.<m>` matches either. */
  readonly models: readonly string[];
  readonly provider?: string | undefined;
}

/** One counter a request must pass: a rule and the scope value it counts under. */
export interface Check {
  readonly rule: Rule;
  /** `X-RateLimit-Scope`: `global`, `user:<id>`, `key:<hash>`, `ip:<ip>`, `model:<m>`, `provider:<p>`. */
  readonly scope: string;
  /** The counter's identity (rule id and scope), built once per check. */
  readonly key: string;
  /** What telemetry counts it under (one label per rule). */
  readonly label: LimitLabel;
}

/** A fresh check of `rule` for the scope value `value` (`global` for the global scope). */
export function checkOf(rule: Rule, value: string): Check {
  const scope = rule.scope === "global" ? "global" : `${rule.scope}:${value}`;
  return { rule, scope, key: `${rule.id}\u0000${scope}`, label: labelOf(rule) };
}

const LABELS = new WeakMap<Rule, LimitLabel>();

/** The rule's telemetry label: its scope's kind (`app_key` for the key scope) and metric. */
function labelOf(rule: Rule): LimitLabel {
  let label = LABELS.get(rule);
  if (label === undefined) {
    const scope = rule.scope === "key" ? "app_key" : rule.scope;
    label = {
      scope,
      metric: rule.metric,
      window: rule.windowName,
      key: `${scope}:${rule.metric}`,
      row: rule.id,
    };
    LABELS.set(rule, label);
  }
  return label;
}

/** Cached checks per scope value for this many values per rule; then the cache starts over. */
const CHECKS_PER_RULE = 4096;

/**
 * `checkOf` remembered per rule and scope value: a client sends the same user, key and model
 * request after request, so its checks (and their counter keys) are built once per generation.
 */
export function checkCache(): (rule: Rule, value: string) => Check {
  // Weak: a key's rules are replaced whenever its limits change.
  const byRule = new WeakMap<Rule, Map<string, Check>>();
  return (rule, value) => {
    let m = byRule.get(rule);
    if (m === undefined) byRule.set(rule, m = new Map());
    let c = m.get(value);
    if (c === undefined) {
      if (m.size >= CHECKS_PER_RULE) m.clear();
      m.set(value, c = checkOf(rule, value));
    }
    return c;
  };
}

/** The checks a request is subject to; a rule whose scope value is unknown does not apply. */
export function checksFor(
  rules: readonly Rule[],
  s: Subject,
  make: (rule: Rule, value: string) => Check = checkOf,
): Check[] {
  const out: Check[] = [];
  for (const rule of rules) {
    if (rule.unlessAppKey && s.appKey !== undefined) continue;
    let value: string | undefined;
    switch (rule.scope) {
      case "global":
        out.push(make(rule, "global"));
        continue;
      case "key":
        value = s.key;
        break;
      case "user":
        value = s.user;
        break;
      case "ip":
        value = s.ip ?? "unknown";
        break;
      case "provider":
        value = s.provider;
        break;
      case "model":
        value = rule.match !== undefined && s.models.includes(rule.match)
          ? rule.match
          : s.models[0];
        break;
    }
    if (value === undefined || value === "") continue;
    if (rule.match !== undefined && rule.match !== value) continue;
    out.push(make(rule, value));
  }
  return out;
}

// ---- counters: pure state transitions ----------------------------------------------------

/** A fixed window's count, or a bucket's level. */
export interface CounterState {
  /** Window: the window's start; bucket: when `level` was last computed. */
  at: number;
  /** Window: units used; bucket: units left. */
  level: number;
}

export function windowStart(rule: Rule, now: number): number {
  return now - (now % rule.windowMs);
}

/** The state as of `now`: a new window starts empty, a bucket has refilled. */
export function current(rule: Rule, state: CounterState | undefined, now: number): CounterState {
  if (rule.algorithm === "window") {
    const start = windowStart(rule, now);
    return state !== undefined && state.at === start ? state : { at: start, level: 0 };
  }
  if (state === undefined) return { at: now, level: rule.limit };
  const refill = ((now - state.at) * rule.limit) / rule.windowMs;
  return { at: now, level: Math.min(rule.limit, state.level + refill) };
}

export function remainingOf(rule: Rule, s: CounterState): number {
  return Math.max(0, Math.floor(rule.algorithm === "window" ? rule.limit - s.level : s.level));
}

/** Wall ms when the counter is whole again (window end; a full bucket). */
export function resetAt(rule: Rule, s: CounterState): number {
  if (rule.algorithm === "window") return s.at + rule.windowMs;
  return s.at + Math.ceil(((rule.limit - s.level) * rule.windowMs) / rule.limit);
}

/** Wall ms from `now` until `cost` fits (the window's end; the bucket's refill). */
export function retryAfterMs(rule: Rule, s: CounterState, cost: number, now: number): number {
  if (rule.algorithm === "window") return Math.max(0, s.at + rule.windowMs - now);
  const need = Math.min(cost, rule.limit) - s.level;
  return need <= 0 ? 0 : Math.ceil((need * rule.windowMs) / rule.limit);
}

/**
 * Whether `cost` fits. llm-proxy's optimistic first request: a token-bearing request that
 * opens an empty window is admitted even when its estimate alone is over the limit.
 */
export function fits(rule: Rule, s: CounterState, cost: number): boolean {
  if (rule.algorithm === "bucket") return s.level >= cost;
  if (rule.metric === "tokens" && s.level === 0) return true;
  return s.level + cost <= rule.limit;
}

/** The state after taking `cost` (negative: giving it back). */
export function take(rule: Rule, s: CounterState, cost: number): CounterState {
  return rule.algorithm === "window"
    ? { at: s.at, level: Math.max(0, s.level + cost) }
    : { at: s.at, level: Math.min(rule.limit, s.level - cost) };
}

// ---- request facts --------------------------------------------------------------------------

/** A short, stable, non-reversible id for a secret (credential, app key) in scope names. */
export function fingerprint(secret: string): string {
  return createHash("sha256").update(secret).digest("hex").slice(0, 16);
}

/**
 * The client's credential, for `key:`/`user:` scopes when nothing better identifies it: in
 * any API's credential header, else in the query parameter its API takes (`queryParam`).
 */
export function credentialOf(
  headers: Headers,
  search: URLSearchParams | null,
  queryParam: string | null = null,
): string | null {
  for (const name of CREDENTIAL_HEADERS) {
    const value = headers.get(name)?.replace(/^(Bearer|Basic)\s+/i, "").trim();
    if (value) return value;
  }
  return queryParam !== null ? search?.get(queryParam) || null : null;
}

/** The query parameter naming the user (llm-proxy's): the gateway's, never forwarded. */
export const USER_ID_PARAM = "llm_user_id";

/**
 * llm-proxy's user id: `X-User-ID`, the body's user (`user`, `metadata.user_id`), the
 * `llm_user_id` query parameter, a hash of the credential, then the client IP.
 */
export function userIdOf(
  headers: Headers,
  body: unknown,
  search: URLSearchParams | null,
  ip: string | undefined,
  queryParam: string | null = null,
): string | undefined {
  const header = headers.get("x-user-id")?.trim();
  if (header) return header;
  if (isRecord(body)) {
    if (typeof body.user === "string" && body.user !== "") return body.user;
    const meta = body.metadata;
    if (isRecord(meta) && typeof meta.user_id === "string" && meta.user_id !== "") {
      return meta.user_id;
    }
  }
  const query = search?.get(USER_ID_PARAM);
  if (query) return query;
  const cred = credentialOf(headers, search, queryParam);
  if (cred) return `cred-${fingerprint(cred)}`;
  return ip;
}

export interface Estimation {
  readonly max_sample_bytes: number;
  readonly bytes_per_token: number;
  readonly chars_per_token: number;
  readonly provider_chars_per_token: Readonly<Record<string, number>>;
}

/** Keys whose strings are message text in the request shapes we accept (any API). */
const TEXT_KEYS = new Set(["content", "text", "system", "prompt", "input", "instructions"]);

/**
 * Input tokens of a request, estimated as llm-proxy does: the message text's characters
 * over `chars_per_token` (the provider's own ratio when configured) for a JSON body up to
 * `max_sample_bytes`; otherwise the body's size over `bytes_per_token`. At least 1.
 */
export function estimateTokens(
  est: Estimation,
  body: unknown,
  bodyBytes: number,
  provider: string | undefined,
): number {
  const perToken = (provider !== undefined ? est.provider_chars_per_token[provider] : undefined) ??
    est.chars_per_token;
  if (body !== undefined && body !== null && bodyBytes <= est.max_sample_bytes) {
    const chars = textChars(body, false, 0);
    return Math.max(1, Math.ceil(chars / perToken));
  }
  return Math.max(1, Math.ceil(bodyBytes / est.bytes_per_token));
}

function textChars(node: unknown, inText: boolean, depth: number): number {
  if (depth > 16) return 0;
  if (typeof node === "string") return inText ? node.length : 0;
  let n = 0;
  if (Array.isArray(node)) {
    for (const item of node) n += textChars(item, inText, depth + 1);
    return n;
  }
  if (isRecord(node)) {
    // for-in, not Object.entries: no array of pairs per object (JSON data: own keys only).
    for (const k in node) {
      if (k === "x-gateway" || k === "metadata") continue;
      // Text is a string under a text key, or in an array under one; `type: "text"` is not.
      n += textChars(node[k], TEXT_KEYS.has(k), depth + 1);
    }
  }
  return n;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
