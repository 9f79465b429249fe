/**
 * The app-key stage. `pre_http`: who is calling (`ex.principal.appKey` = the key's id),
 * refusing a missing (with `require_key`), unknown, revoked or expired key with 401 and a
 * key over its budget with 429, in the route's own format; a key sent in a header other than
 * `Authorization` is removed before anything is forwarded. `pre_llm`: the key's model and
 * provider allowlists (403), narrowing the targets to the allowed ones. `request_end`
 * (subscribed after every other listener, so the cost is known): counts the request, its
 * tokens and `ex.cost` against the key's day and month.
 * @module
 */
import { GatewayError } from "../errors.ts";
import { awsErrorHeaders, errorEnvelope, formatForPath } from "../pipeline/encode/error.ts";
import type { EventOf } from "../pipeline/events.ts";
import { type Exchange, isUsage } from "../pipeline/exchange.ts";
import type { PreHttpResult, PreLlmResult, Stage } from "../pipeline/stages.ts";
import { periodClock } from "./key.ts";
import type { Identity, KeyService, Refusal } from "./service.ts";
import type { KeyRecord } from "./types.ts";
import { HeldSlot } from "../slot.ts";

/** `Authorization: Bearer pf_...`. */
const PF_BEARER = /^Bearer\s+pf_/i;

export interface AppKeyStage extends Stage {
  /** The `request_end` listener: counts the request against its key. */
  onRequestEnd(event: EventOf<"request_end">): void;
}

export function createAppKeyStage(
  service: KeyService,
  now: () => number,
  dispose: () => Promise<void>,
  /** Sub-micro-dollar remainders per key: the store's, so a reload does not drop them. */
  carry: Map<string, number> = new Map(),
): AppKeyStage {
  // The key of each exchange still in flight (on the exchange: one that never ends leaks nothing).
  const keyOf = new HeldSlot<KeyRecord>("appKey");
  const periods = periodClock();
  /*
   * Spend is counted in whole micro-dollars; what a request costs below that is carried per
   * key to the next one (in `carry`, which outlives this generation), so a stream of tiny
   * requests adds up (rounding each to the nearest micro-dollar billed a $0.00000048
   * embedding as $0 for ever).
   */
  const micros = (id: string, usd: number): number => {
    const exact = usd * 1_000_000 + (carry.get(id) ?? 0);
    const whole = Math.floor(exact);
    const rest = exact - whole;
    if (rest > 1e-9) carry.set(id, rest);
    else carry.delete(id);
    return whole;
  };

  const admit = (ex: Exchange, id: Identity): PreHttpResult => {
    if (id.kind === "none") {
      // An unknown Butter key let through as none: not forwarded either.
      if (id.header !== undefined && id.header !== "?key") dropHeader(ex, id.header);
      return;
    }
    if (id.kind === "refused") {
      if (id.keyId !== undefined) ex.principal.appKey = id.keyId;
      return refuse(ex, id.refusal);
    }
    keyOf.set(ex, id.record);
    ex.principal.appKey = id.record.id;
    // A configured key of any shape goes no further wherever else it is written (another
    // header, a cookie): a `pf_` one is dropped by the forwarding code already.
    if (id.value !== undefined && !id.value.startsWith("pf_") && id.value.length >= 8) {
      dropHolding(ex, id.value);
    }
    // A key in its own header goes no further. A `pf_` bearer is never forwarded anyway (the
    // forwarding code drops it), so only a config key of another shape (Butter's static keys
    // may be any string) has to be taken out of `Authorization`.
    if (id.header === "?key") return; // passthrough drops an app key from the query itself
    if (
      id.header !== "authorization" ||
      (id.record.source === "config" && !PF_BEARER.test(ex.headers.get("authorization") ?? ""))
    ) {
      dropHeader(ex, id.header);
    }
  };

  /**
   * What a headers rewrite does (`ex.headers` replaced by a copy), done here: the chain would
   * copy our copy again through `new Headers(headers)`, whose WebIDL sequence conversion
   * costs several times the forEach + append below.
   */
  const dropHeader = (ex: Exchange, drop: string) => {
    const headers = new Headers();
    ex.headers.forEach((value, name) => {
      if (name !== drop) headers.append(name, value);
    });
    ex.headers = headers;
  };

  /** Every header whose value holds `secret`. */
  const dropHolding = (ex: Exchange, secret: string) => {
    let holding = false;
    ex.headers.forEach((value) => holding ||= value.includes(secret));
    if (!holding) return;
    const headers = new Headers();
    ex.headers.forEach((value, name) => {
      if (!value.includes(secret)) headers.append(name, value);
    });
    ex.headers = headers;
  };

  return {
    name: "app_keys",
    // A key check that cannot run must not let the request through.
    fail_mode: "closed",
    timeout_ms: 2_000,
    pre_http(ex) {
      const id = service.identify((name) => ex.headers.get(name), ex.search);
      return id instanceof Promise ? id.then((r) => admit(ex, r)) : admit(ex, id);
    },
    pre_llm(ex, view): PreLlmResult {
      const record = keyOf.get(ex);
      if (record === undefined) return;
      if (record.allowed_models.length === 0 && record.allowed_providers.length === 0) return;
      const passthrough = view.schema === "passthrough";
      const r = service.allow(
        record,
        ex.model,
        passthrough ? ex.provider : undefined,
        ex.targets,
      );
      if ("refusal" in r) {
        keyOf.delete(ex); // refused here: not a request the key made use of
        return refuse(ex, r.refusal);
      }
      ex.targets = r.targets;
    },
    onRequestEnd(event) {
      const ex = event.exchange;
      const record = keyOf.get(ex);
      if (record === undefined) return;
      keyOf.delete(ex);
      // Counted as /api/v1/usage counts (the meter ran first): requests that reached a provider
      // or the cache, with the billed tokens (a cut stream's estimated prompt included).
      if (!isUsage(ex)) return;
      service.backend.record(record.id, periods(now()), {
        requests: 1,
        tokens: ex.billedUsage?.total_tokens ?? event.usage?.total_tokens ?? 0,
        cost_micros: ex.cost !== null && Number.isFinite(ex.cost) && ex.cost > 0
          ? micros(record.id, ex.cost)
          : 0,
      });
    },
    dispose,
  };
}

/**
 * A refusal in the route's format: 401/403/503 as a stage rejection; 429 answered here so
 * it carries `Retry-After` (when the budget resets) and a `budget_exceeded` code.
 */
function refuse(ex: Exchange, r: Refusal): PreHttpResult & PreLlmResult {
  if (r.status !== 429) return { action: "reject", status: r.status, message: r.message };
  const err = new GatewayError("rate_limited", r.message, {
    upstreamCode: "budget_exceeded",
  });
  const format = ex.errorFormat ?? formatForPath(ex.path);
  const headers = budgetHeaders(r);
  if (format === "aws_json") Object.assign(headers, awsErrorHeaders(429, ex.id));
  return { action: "respond", status: 429, body: errorEnvelope(err, format), headers };
}

/** A budget's 429: when it resets, and (the OpenAI and Anthropic SDKs retry a 429 unless
 * told not to, and a budget resets in hours) not to retry. */
export function budgetHeaders(r: Refusal): Record<string, string> {
  return { "retry-after": String(r.retryAfter ?? 60), "x-should-retry": "false" };
}
