/**
 * The limiter as a stage: `pre_llm` (the parsed request for token estimates, the resolved
 * target for model and provider scopes) admits or refuses; a refusal is a 429 in the
 * route's format and never reaches an upstream (so it is never a breaker failure). The
 * decision puts the headers on the answer (`ex.replyHeaders`: every one on a 429,
 * Limit/Remaining/Reset on admitted answers); `request_end` reconciles token estimates with
 * the real input tokens (an upstream's `X-LLM-Input-Tokens` first), both ways.
 * @module
 */
import type { Exchange } from "../pipeline/exchange.ts";
import type { LlmRequestView, PreLlmResult, Stage } from "../pipeline/stages.ts";
import type { TelemetryEvent } from "../pipeline/events.ts";
import type { KeyRecord } from "../keys/mod.ts";
import { usageNow, usageReported } from "../streaming/usage.ts";
import type { Usage } from "../providers/types.ts";
import { type Cidr, clientIp } from "./proxies.ts";
import { type Admission, type CheckState, type LimitBackend, tightest } from "./backend.ts";
import {
  type Check,
  checkCache,
  checksFor,
  credentialOf,
  estimateTokens,
  type Estimation,
  fingerprint,
  keyRulesOf,
  type Rule,
  type Subject,
  userIdOf,
} from "./policy.ts";

/** One-shot decodes (no `stream` state): one decoder serves them all. */
const utf8 = new TextDecoder();

/** What the limiter decided for one exchange (`ex.rateLimit`). */
export interface RateLimitFacts {
  readonly admission: Admission;
}

export interface LimitStageOptions {
  readonly rules: readonly Rule[];
  readonly backend: LimitBackend;
  readonly estimation: Estimation;
  /** Wall clock, ms (windows are wall-clock minutes and UTC days). */
  readonly now: () => number;
  /** App keys are on: a key's own `limits` apply in the app-key scope (next to `perKey`). */
  readonly appKeys?: boolean;
  /** Butter's `trusted_proxies`: whose forwarded headers name the client for `per_ip`. */
  readonly trustedProxies?: readonly Cidr[];
  /** Butter's `per_app_key`: the bucket rule of a key (by its hash), counted per key id. */
  readonly butterKey?: ((keyHash: string | undefined) => Rule) | null;
}

const NEEDS = (rules: readonly Rule[], scope: Rule["scope"]) =>
  rules.some((r) => r.scope === scope);

export function limitStage(opts: LimitStageOptions): Stage {
  const { rules, backend, estimation, now } = opts;
  const needUser = NEEDS(rules, "user");
  const needKey = NEEDS(rules, "key");
  const appKeys = opts.appKeys === true;
  // A key's own limits may count tokens: reconcile whenever keys are on.
  const needTokens = appKeys || rules.some((r) => r.metric === "tokens");
  // The body is read for token estimates, the user id and a passthrough body's model.
  const needBody = needTokens || needUser || NEEDS(rules, "model");
  const check = checkCache();
  // Global rules only: every request gets the same checks, built once per generation.
  const fixed = rules.every((r) => r.scope === "global" && !r.unlessAppKey)
    ? checksFor(rules, { models: [] })
    : null;
  const butterKey = opts.butterKey ?? null;
  const needIp = NEEDS(rules, "ip");
  const trusted = opts.trustedProxies ?? [];
  /** Butter's per-key bucket of the request's app key (null without one). */
  const butterKeyCheck = (ex: Exchange): Check | null => {
    const id = ex.principal.appKey;
    if (butterKey === null || id === undefined) return null;
    return check(butterKey(ex.runtime.keys?.peek(id)?.hash), id);
  };

  // The checks of a key's own limits, built once per record (a change saves a new record).
  const ownChecks = new WeakMap<KeyRecord, readonly Check[]>();
  const keyChecksOf = (ex: Exchange): readonly Check[] | null => {
    const id = ex.principal.appKey;
    if (id === undefined) return null;
    const rec = ex.runtime.keys?.backend.peek(id);
    if (rec == null || rec.limits === undefined) return null;
    let own = ownChecks.get(rec);
    if (own === undefined) {
      own = keyRulesOf(id, rec.limits).map((r) => check(r, id));
      ownChecks.set(rec, own);
    }
    return own.length > 0 ? own : null;
  };

  const subjectOf = (ex: Exchange, body: unknown): Subject => {
    const target = ex.targets[0];
    const provider = target?.provider ?? ex.provider;
    const search = needUser || needKey ? new URLSearchParams(ex.search) : null;
    // The query parameter a provider's native API takes a key in (passthrough routes).
    const queryParam = search !== null && provider !== undefined
      ? ex.runtime.adapters.get(provider)?.native?.auth.queryParam ?? null
      : null;
    let key: string | undefined;
    if (needKey) {
      const app = ex.principal.appKey;
      const cred = app ?? credentialOf(ex.headers, search, queryParam);
      // An app key id is shown as is; a secret (a pf_ key, a provider credential) only hashed.
      // A client that sends no credential is counted by its address: dropping the header
      // must not step around a per-key limit (over the Unix socket there is none).
      key = cred === null
        ? ex.principal.ip !== undefined ? `ip-${ex.principal.ip}` : undefined
        : app !== undefined && !app.startsWith("pf_")
        ? app
        : fingerprint(cred);
    }
    const models: string[] = [];
    if (ex.model !== undefined) models.push(ex.model);
    if (target !== undefined && target.model !== ex.model) models.push(target.model);
    if (ex.schema === "passthrough" && isRecord(body) && typeof body.model === "string") {
      models.push(body.model);
    }
    const inPath = ex.schema === "passthrough" ? /\/models?\/([^/:]+)/.exec(ex.path) : null;
    if (inPath) models.push(decodeURIComponent(inPath[1] as string));
    return {
      key,
      appKey: ex.principal.appKey,
      user: needUser ? userIdOf(ex.headers, body, search, ex.principal.ip, queryParam) : undefined,
      ip: needIp && trusted.length > 0
        ? clientIp(ex.principal.ip, ex.headers, trusted)
        : ex.principal.ip,
      models,
      provider,
    };
  };

  const decided = (ex: Exchange, admission: Admission): PreLlmResult => {
    ex.rateLimit = { admission };
    showLimit(ex, admission);
    const bus = ex.runtime.events;
    if (bus.on.rate_limit) {
      if (admission.ok) {
        bus.emit({ type: "rate_limit", exchange: ex, decision: "allow", limits: admission.states });
      } else if (admission.blocked !== undefined) {
        bus.emit({
          type: "rate_limit",
          exchange: ex,
          decision: "deny",
          limits: [admission.blocked],
        });
      }
    }
    if (admission.ok) return undefined;
    const b = admission.blocked as CheckState;
    return {
      action: "reject",
      status: 429,
      message: admission.unavailable
        ? `Rate limit store unavailable: ${b.check.rule.metric} per ${b.check.rule.windowName} (${b.check.scope}) refuses requests while it is down`
        : `Rate limit exceeded: ${b.limit} ${b.check.rule.metric} per ${b.check.rule.windowName} (${b.check.scope}); retry after ${
          retryAfter(b)
        } s`,
    };
  };

  const reconcile = (event: TelemetryEvent) => {
    if (event.type !== "request_end") return;
    const facts = event.exchange.rateLimit;
    if (!facts || !facts.admission.ok) return;
    const states = facts.admission.states;
    // A 5xx that used nothing gives back what it took (llm-proxy cancels the request and its
    // estimate on a server error): a failing upstream or an open breaker costs no quota.
    if (event.status >= 500 && nothingUsed(event.exchange)) {
      const t = now();
      for (const s of states) if (s.cost > 0) backend.adjust(s, -s.cost, t);
      return;
    }
    if (!states.some((s) => s.check.rule.metric === "tokens")) return;
    // A cache hit used no provider tokens: its token estimate goes back (it still counts as
    // a request).
    if (event.exchange.cacheStatus === "hit") {
      const t = now();
      for (const s of states) {
        if (s.check.rule.metric === "tokens" && s.cost > 0) backend.adjust(s, -s.cost, t);
      }
      return;
    }
    const actual = reportedInput(event.exchange) ?? inputTokens(event.exchange);
    // llm-proxy reconciles input tokens, and only when they are known.
    if (actual === null) return;
    const t = now();
    for (const s of states) {
      if (s.check.rule.metric === "tokens" && actual !== s.cost) {
        backend.adjust(s, actual - s.cost, t);
      }
    }
  };

  return {
    name: "rate_limit",
    fail_mode: "open",
    // A borrow from Redis waits at most its command deadline, then falls back locally.
    timeout_ms: 2_000,
    pre_llm(ex: Exchange, view: LlmRequestView) {
      const body = needBody ? bodyOf(ex, view, estimation.max_sample_bytes) : undefined;
      let provider: string | undefined;
      let checks: readonly Check[];
      if (fixed !== null) {
        checks = fixed;
        if (needTokens) provider = ex.targets[0]?.provider ?? ex.provider;
      } else {
        const subject = subjectOf(ex, body);
        provider = subject.provider;
        checks = checksFor(rules, subject, check);
      }
      if (appKeys) {
        const own = keyChecksOf(ex);
        if (own !== null) checks = checks.length === 0 ? own : [...checks, ...own];
      }
      const bucket = butterKeyCheck(ex);
      if (bucket !== null) checks = [...checks, bucket];
      if (checks.length === 0) return undefined;
      let tokens = 0;
      if (needTokens && checks.some((c) => c.rule.metric === "tokens")) {
        const bytes = view.schema === "passthrough"
          ? view.body?.byteLength ?? 0
          : Number(ex.headers.get("content-length") ?? 0);
        tokens = estimateTokens(estimation, body, bytes, provider);
      }
      const costs = checks.map((c: Check) => (c.rule.metric === "tokens" ? tokens : 1));
      const result = backend.admit(checks, costs, now());
      return result instanceof Promise ? result.then((a) => decided(ex, a)) : decided(ex, result);
    },
    // Every limit gives back a 5xx that used nothing; token limits also reconcile.
    trace_events: ["request_end"] as const,
    trace: reconcile,
    dispose: () => backend.close(),
  };
}

/**
 * The answer's headers (`ex.replyHeaders`, on whatever answer it gets): every one on a
 * refusal, Limit/Remaining/Reset of the tightest limit on an admitted request.
 */
function showLimit(ex: Exchange, a: Admission): void {
  const shown = a.ok ? tightest(a.states) : a.blocked;
  if (shown === undefined) return;
  const h = ex.replyHeaders ??= {};
  h["x-ratelimit-limit"] = String(shown.limit);
  h["x-ratelimit-remaining"] = String(a.ok ? shown.remaining : 0);
  h["x-ratelimit-reset"] = String(Math.ceil(shown.resetAt / 1000));
  if (a.ok) return;
  h["retry-after"] = String(retryAfter(shown));
  h["x-ratelimit-reason"] = a.unavailable
    ? "rate limit store unavailable"
    : reasonOf(shown.check.rule.windowName);
  h["x-ratelimit-metric"] = shown.check.rule.metric;
  h["x-ratelimit-window"] = shown.check.rule.windowName;
  h["x-ratelimit-scope"] = shown.check.scope;
}

/** The input tokens the answering upstream reported in `X-LLM-Input-Tokens` (native routes). */
function reportedInput(ex: Exchange): number | null {
  for (let i = ex.attempts.length - 1; i >= 0; i--) {
    const n = ex.attempts[i]!.reported_input_tokens;
    if (n !== undefined) return n;
  }
  return null;
}

/**
 * No model worked for it: no usage, and every attempt was refused before its call, could not
 * connect, or was answered by its upstream with a 5xx. A call cut by a deadline or the gate
 * (`x-gateway.timeout`) may still be running, and billed, upstream: it keeps its quota.
 */
function nothingUsed(ex: Exchange): boolean {
  // An estimate (the prompt's size) is no upstream's count: a 5xx answer used nothing.
  if ((ex.usage !== null && !ex.usage.estimated) || inputTokens(ex) !== null) return false;
  // A native route relays the upstream's 5xx as its answer (an attempt that "succeeded").
  return ex.attempts.every((a) =>
    a.no_call === true || a.unsent === true || UPSTREAM_5XX.test(a.reason ?? "") ||
    (a.outcome === "ok" && a.status !== null && a.status >= 500)
  );
}

/** The failover's reason for an attempt the upstream answered with a 5xx. */
const UPSTREAM_5XX = /^HTTP 5\d\d$/;

/** Input tokens of every attempt that reported usage (a finished hedge loser was billed too). */
function inputTokens(ex: Exchange): number | null {
  let sum: number | null = null;
  for (const a of ex.attempts) {
    const n = countedInput(a.usage);
    if (n !== null) sum = (sum ?? 0) + n;
  }
  if (sum === null && ex.usage && !ex.usage.estimated) sum = positive(ex.usage.prompt_tokens);
  return sum;
}

/**
 * The input count an upstream itself reported for an attempt; null when it reported none
 * (a stream without usage is metered with an input of 0 or a guess, which must not replace
 * the admission's estimate: that would let such streams spend no token budget).
 */
function countedInput(usage: Promise<Usage | null>): number | null {
  const reported = usageReported(usage);
  if (reported !== null) return positive(reported.prompt_tokens);
  const u = usageNow(usage);
  return u && !u.estimated ? positive(u.prompt_tokens) : null;
}

/** llm-proxy reconciles only with a count above zero. */
function positive(n: number | undefined): number | null {
  return typeof n === "number" && n > 0 ? n : null;
}

/** llm-proxy's `X-RateLimit-Reason`: `minute limit exceeded`, `daily limit exceeded`. */
function reasonOf(windowName: string): string {
  return windowName === "day" ? "daily limit exceeded" : `${windowName} limit exceeded`;
}

function retryAfter(s: CheckState): number {
  return Math.max(1, Math.ceil(s.retryAfterMs / 1000));
}

/** The request body as JSON: canonical (the client's, for Messages), passthrough parsed when small. */
function bodyOf(ex: Exchange, view: LlmRequestView, maxBytes: number): unknown {
  if (view.schema !== "passthrough") {
    const req = ex.request;
    return req?.schema === "anthropic_messages" ? req.body : view.body;
  }
  const bytes = view.body;
  if (bytes === null || bytes.byteLength === 0 || bytes.byteLength > maxBytes) return undefined;
  if (bytes[0] !== 0x7b) return undefined; // not a JSON object
  try {
    return JSON.parse(utf8.decode(bytes));
  } catch {
    return undefined;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
