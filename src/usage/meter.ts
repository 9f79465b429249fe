/**
 * Metering: when an exchange ends, price what it used and add it to the rollups. A
 * `request_end` subscriber registered before every other one, so the access log and later
 * subscribers read `ex.cost`; plus a `post_http` hook that puts `x-pilotfish-cost-usd` on
 * non-stream answers (their usage is known before the body goes out).
 *
 * What is billed: every attempt that produced usage, each at its own provider and model's
 * price (a hedge loser that answered was paid for too); a cache hit costs 0. A stream cut
 * short is billed for what was streamed; when the upstream sent no counts they are
 * estimated (~4 characters a token, the prompt from the request) and marked so.
 * @module
 */
import type { Usage } from "../providers/types.ts";
import type { EventOf } from "../pipeline/events.ts";
import { type Exchange, isUsage } from "../pipeline/exchange.ts";
import type { Stage } from "../pipeline/stages.ts";
import { promptBytes, textChars, usageNow } from "../streaming/mod.ts";
import { costOf, estimateTokens, formatUsd, toNanos } from "./cost.ts";
import type { UsageLedger } from "./ledger.ts";
import type { PriceBook } from "./pricing.ts";

export const COST_HEADER = "x-pilotfish-cost-usd";

export interface MeterDeps {
  readonly prices: PriceBook;
  readonly ledger: UsageLedger;
  /** Wall clock (ms) for the rollup buckets. */
  readonly now: () => number;
  /** Put `x-pilotfish-cost-usd` on answers (llm-proxy's `features.cost_tracking.enabled`). */
  readonly costHeader?: boolean;
}

/** What one exchange used, summed over its attempts, and what that costs. */
export interface Bill {
  readonly usage: Usage | null;
  /** USD; null when some usage has no price (or there was no usage). */
  readonly cost: number | null;
  readonly estimated: boolean;
  /** Per attempt that used any: what it used, at its provider and model's price. */
  readonly parts: readonly BillPart[];
}

export interface BillPart {
  readonly provider: string;
  readonly model: string;
  readonly usage: Usage;
  /** USD; null when unpriced. */
  readonly cost: number | null;
}

/**
 * The bill of an exchange (pure over its attempts; reads settled usage synchronously).
 * Attempts whose usage is null (failures) cost nothing.
 */
export function billOf(ex: Exchange, prices: PriceBook): Bill {
  if (ex.cacheStatus === "hit") {
    return { usage: null, cost: 0, estimated: false, parts: [] };
  }
  let usage: Usage | null = null;
  let cost: number | null = 0;
  let estimated = false;
  const parts: BillPart[] = [];
  for (const a of ex.attempts) {
    let u = usageNow(a.usage) ?? null;
    if (u === null) continue;
    if (u.estimated) {
      estimated = true;
      // No input count from the upstream: estimate it from the request it was sent.
      if (u.prompt_tokens === 0) {
        const prompt = promptEstimate(ex);
        u = { ...u, prompt_tokens: prompt, total_tokens: prompt + u.completion_tokens };
      }
    }
    // A passthrough body streamed upstream unread: the model is the one the answer named.
    const model = a.model || ex.model || "";
    const price = prices.priceOf(a.provider, model);
    const priced = price === null ? null : costOf(u, price);
    // A figure that is not one (a malformed price) is unknown, never NaN in a rollup.
    const own = priced !== null && Number.isFinite(priced) ? priced : null;
    cost = own === null || cost === null ? null : cost + own;
    usage = usage === null ? u : addUsage(usage, u);
    parts.push({ provider: a.provider, model, usage: u, cost: own });
  }
  if (usage === null) return { usage: null, cost: null, estimated: false, parts };
  return { usage, cost: cost === null ? null : toNanos(cost) / 1e9, estimated, parts };
}

/** The metering subscriber and the cost-header stage of one config generation. */
export function createMeter(deps: MeterDeps): {
  onRequestEnd: (event: EventOf<"request_end">) => void;
  stage: Stage;
} {
  const { prices, ledger } = deps;
  const costHeader = deps.costHeader ?? true;
  return {
    onRequestEnd(event) {
      const ex = event.exchange;
      const bill = billOf(ex, prices);
      ex.billedUsage = bill.usage;
      ex.cost = bill.cost;
      ex.costEstimated = bill.estimated;
      const u = bill.usage;
      // Requests that reached no provider and no cache (bad input, auth) are not usage.
      if (!isUsage(ex)) return;
      const meta = ex.gateway.metadata;
      const base = {
        at: deps.now(),
        appKey: ex.principal.appKey ?? null,
        user: textOf(meta?.user_id) ?? userOf(ex),
        feature: textOf(meta?.feature),
        cache: ex.cacheStatus === "hit" ? "hit" : "miss",
      } as const;
      // A hedge loser that answered was paid for at its own provider: its tokens and cost
      // go to that provider's and model's rows, the request counts once, as the winner's.
      const elsewhere = bill.parts.filter((p) => p.provider !== ex.provider);
      const main = elsewhere.length === 0 || ex.provider === undefined ? null : sumParts(
        bill.parts.filter((p) => p.provider === ex.provider),
      );
      const usage = main === null ? u : main.usage;
      const cost = main === null ? bill.cost : main.cost;
      ledger.record({
        ...base,
        provider: ex.provider ?? null,
        // A model-less call (a passthrough GET) has no model bucket, not one named "".
        model: ex.model || null,
        ...tokensOf(usage),
        costNanos: cost === null ? 0 : toNanos(cost),
        estimated: main === null ? bill.estimated : usage?.estimated === true,
      });
      if (main === null) return;
      for (const part of elsewhere) {
        ledger.record({
          ...base,
          provider: part.provider,
          model: part.model || null,
          ...tokensOf(part.usage),
          costNanos: part.cost === null ? 0 : toNanos(part.cost),
          estimated: part.usage.estimated === true,
          extra: true,
        });
      }
    },
    stage: {
      name: "usage_cost",
      fail_mode: "open",
      timeout_ms: 1_000,
      post_http(ex, res) {
        // A stream's usage is known only at its end (its cost is in the log and the usage
        // API). A passthrough answer has it when its JSON was read whole before it went out.
        if (!costHeader || ex.stream || res.status >= 400) return;
        const bill = billOf(ex, prices);
        if (bill.cost === null || (ex.schema === "passthrough" && bill.usage === null)) return;
        try {
          res.headers.set(COST_HEADER, formatUsd(bill.cost));
        } catch {
          // immutable headers (a relayed Response): nothing to add
        }
      },
    },
  };
}

/** The parts of one provider, summed (null usage when there are none). */
function sumParts(parts: readonly BillPart[]): { usage: Usage | null; cost: number | null } {
  let usage: Usage | null = null;
  let cost: number | null = 0;
  for (const p of parts) {
    usage = usage === null ? p.usage : addUsage(usage, p.usage);
    cost = p.cost === null || cost === null ? null : cost + p.cost;
  }
  return { usage, cost: usage === null ? 0 : cost };
}

function tokensOf(u: Usage | null) {
  return {
    promptTokens: u?.prompt_tokens ?? 0,
    completionTokens: u?.completion_tokens ?? 0,
    cachedTokens: u?.prompt_tokens_details?.cached_tokens ?? 0,
    cacheWriteTokens: u?.prompt_tokens_details?.cache_write_tokens ?? 0,
    reasoningTokens: u?.completion_tokens_details?.reasoning_tokens ?? 0,
  };
}

function addUsage(a: Usage, b: Usage): Usage {
  const sum = (x: number | undefined, y: number | undefined) => (x ?? 0) + (y ?? 0);
  return {
    prompt_tokens: a.prompt_tokens + b.prompt_tokens,
    completion_tokens: a.completion_tokens + b.completion_tokens,
    total_tokens: a.total_tokens + b.total_tokens,
    prompt_tokens_details: {
      cached_tokens: sum(
        a.prompt_tokens_details?.cached_tokens,
        b.prompt_tokens_details?.cached_tokens,
      ),
      cache_write_tokens: sum(
        a.prompt_tokens_details?.cache_write_tokens,
        b.prompt_tokens_details?.cache_write_tokens,
      ),
    },
    completion_tokens_details: {
      reasoning_tokens: sum(
        a.completion_tokens_details?.reasoning_tokens,
        b.completion_tokens_details?.reasoning_tokens,
      ),
    },
    ...(a.estimated || b.estimated ? { estimated: true } : {}),
  };
}

/** The request's input tokens as estimated (~4 characters a token) before any upstream count. */
export function promptEstimate(ex: Exchange): number {
  return estimateTokens(requestChars(ex));
}

function embeddingTokens(input: unknown): number {
  if (typeof input === "string") return estimateTokens(textChars(input));
  if (!Array.isArray(input)) return 0;
  let tokens = 0;
  for (const item of input) {
    if (typeof item === "number") tokens++;
    else if (typeof item === "string") tokens += estimateTokens(textChars(item));
    else if (Array.isArray(item)) tokens += item.length;
  }
  return tokens;
}

/** Characters of the prompt the upstream was sent (for an estimate only). */
function requestChars(ex: Exchange): number {
  const req = ex.request;
  if (req === null) return 0;
  switch (req.schema) {
    case "openai_chat":
      return textChars(JSON.stringify(req.body.messages ?? ""));
    case "anthropic_messages":
      return textChars(JSON.stringify(req.body.messages ?? "")) +
        textChars(JSON.stringify(req.body.system ?? ""));
    case "embeddings":
      // Token ids count as themselves (4 characters each here), texts by their own
      // characters: not the JSON of the array, whose quotes and commas are no tokens.
      return embeddingTokens(req.body.input) * 4;
    case "responses":
      return textChars(JSON.stringify(req.body.input ?? "")) +
        textChars(JSON.stringify(req.body.instructions ?? ""));
    case "passthrough":
      return promptBytes(req.body) ?? req.bytes ?? 0;
  }
}

/**
 * The user the request names itself, when `x-gateway.metadata.user_id` is absent: OpenAI's
 * `user`, Anthropic's `metadata.user_id`, the same in a native route's body when it was read
 * (the route reads it once, for its model and user).
 */
function userOf(ex: Exchange): string | null {
  const req = ex.request;
  if (req === null) return null;
  switch (req.schema) {
    case "openai_chat":
    case "responses":
      return textOf(req.body.user);
    case "anthropic_messages":
      return textOf(req.body.metadata?.user_id);
    case "embeddings":
      return textOf(req.body.user);
    case "passthrough":
      return req.user ?? null;
  }
}

function textOf(v: unknown): string | null {
  return typeof v === "string" && v !== "" ? v : typeof v === "number" ? String(v) : null;
}
