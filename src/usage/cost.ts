/**
 * Cost as pure arithmetic over canonical usage (src/schema/openai.ts `OpenAIUsage`):
 * `prompt_tokens` includes cache reads (`prompt_tokens_details.cached_tokens`) and cache
 * writes (`cache_write_tokens`), so each part is billed once at its own rate, never cached
 * input as normal input; `completion_tokens` includes `reasoning_tokens`, billed at the
 * `reasoning` rate (the output rate unless priced separately).
 * @module
 */
import type { Usage } from "../providers/types.ts";
import type { ModelPrice } from "./pricing.ts";

/** The token classes a price applies to, each counted once. */
export interface TokenSplit {
  /** Input billed at the plain input rate. */
  readonly input: number;
  readonly cacheRead: number;
  readonly cacheWrite: number;
  /** Output that is not reasoning. */
  readonly output: number;
  readonly reasoning: number;
}

/** Split canonical usage into disjoint classes (inconsistent counts are clamped at 0). */
export function splitTokens(usage: Usage): TokenSplit {
  const cacheRead = count(usage.prompt_tokens_details?.cached_tokens);
  const cacheWrite = count(usage.prompt_tokens_details?.cache_write_tokens);
  const reasoning = count(usage.completion_tokens_details?.reasoning_tokens);
  return {
    input: Math.max(0, count(usage.prompt_tokens) - cacheRead - cacheWrite),
    cacheRead,
    cacheWrite,
    output: Math.max(0, count(usage.completion_tokens) - reasoning),
    reasoning,
  };
}

/**
 * USD for `usage` at `price` (per million tokens), rounded to the nano-dollar so sums of
 * many requests stay exact at the micro-dollar. A long-context tier applies when the whole
 * prompt (cached parts included, as the vendors count it) exceeds its threshold.
 */
export function costOf(usage: Usage, price: ModelPrice): number {
  const t = splitTokens(usage);
  const tier = price.long_context && count(usage.prompt_tokens) > price.long_context.threshold
    ? price.long_context
    : price;
  const micro = t.input * tier.input +
    t.cacheRead * (tier.cache_read ?? tier.input) +
    t.cacheWrite * (tier.cache_write ?? tier.input) +
    t.output * tier.output +
    t.reasoning * (tier.reasoning ?? tier.output);
  return toNanos(micro / 1_000_000) / 1e9;
}

/** USD -> whole nano-dollars (what rollups add up, so totals do not drift). */
export function toNanos(usd: number): number {
  return Math.round(usd * 1e9);
}

/** USD as the `x-pilotfish-cost-usd` header and the log show it: plain decimal, no exponent. */
export function formatUsd(usd: number): string {
  // Whole nano-dollars in integer arithmetic: `toFixed` and two regex passes were 1 % of a
  // request's CPU.
  const nanos = toNanos(usd);
  if (nanos === 0) return "0";
  const abs = Math.abs(nanos);
  const whole = Math.floor(abs / 1e9);
  let frac = abs - whole * 1e9;
  const sign = nanos < 0 ? "-" : "";
  if (frac === 0) return `${sign}${whole}`;
  let digits = 9;
  while (frac % 10 === 0) {
    frac /= 10;
    digits--;
  }
  return `${sign}${whole}.${String(frac).padStart(digits, "0")}`;
}

/** Tokens a text of `chars` characters is estimated at (~4 a token, as the meter estimates). */
export function estimateTokens(chars: number): number {
  return chars > 0 ? Math.ceil(chars / 4) : 0;
}

function count(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) && v > 0 ? v : 0;
}
