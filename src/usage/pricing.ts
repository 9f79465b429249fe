/**
 * The price book: USD per million tokens for a `(provider, model)`, from (first match wins)
 * `pricing.models["provider/model"]`, llm-proxy's `providers.<p>.models.<m>.pricing`,
 * `pricing.models["model"]`, then the built-in table below (unless `pricing.builtin: false`).
 * A model nobody prices has no cost (null), never a guessed one.
 * @module
 */
import { type Config, FREE_TYPES, type ModelPrice } from "../config/mod.ts";

export type { ModelPrice };

/**
 * Built-in list prices, USD per 1M tokens, as published by each vendor on the date given in
 * each block (override any of them in `pricing.models`). `cache_read`/`cache_write` are the
 * vendors' prompt-caching rates (Anthropic: 5-minute cache writes); reasoning tokens are billed
 * at the output rate by every vendor here, so `reasoning` is left to default to `output`.
 */
/**
 * Claude Sonnet 4 and 4.5, on Anthropic and Bedrock alike,
 * https://docs.anthropic.com/en/docs/about-claude/pricing#long-context-pricing (2025-10-15).
 */
const SONNET_4: ModelPrice = {
  input: 3,
  cache_write: 3.75,
  cache_read: 0.3,
  output: 15,
  long_context: { threshold: 200_000, input: 6, cache_write: 7.5, cache_read: 0.6, output: 22.5 },
};

export const BUILTIN_PRICES: Readonly<Record<string, ModelPrice>> = {
  // OpenAI, https://platform.openai.com/docs/pricing (2025-08-07).
  "gpt-5": { input: 1.25, cache_read: 0.125, output: 10 },
  // GPT-5.1 (2025-11-13): GPT-5's prices.
  "gpt-5.1": { input: 1.25, cache_read: 0.125, output: 10 },
  "gpt-5-mini": { input: 0.25, cache_read: 0.025, output: 2 },
  "gpt-5-nano": { input: 0.05, cache_read: 0.005, output: 0.4 },
  "gpt-4.1": { input: 2, cache_read: 0.5, output: 8 },
  "gpt-4.1-mini": { input: 0.4, cache_read: 0.1, output: 1.6 },
  "gpt-4.1-nano": { input: 0.1, cache_read: 0.025, output: 0.4 },
  "gpt-4o": { input: 2.5, cache_read: 1.25, output: 10 },
  "gpt-4o-mini": { input: 0.15, cache_read: 0.075, output: 0.6 },
  "o3": { input: 2, cache_read: 0.5, output: 8 },
  "o4-mini": { input: 1.1, cache_read: 0.275, output: 4.4 },
  "o1": { input: 15, cache_read: 7.5, output: 60 },
  // Older models still served (llm-gateway's README routes them), the same page's "Other
  // models" table (2025-08-07).
  // The GPT-4 Turbo previews and the 32k / 16k variants are listed so that `gpt-4` and
  // `gpt-3.5-turbo` never price them through the dated-suffix match below.
  "gpt-4-turbo": { input: 10, output: 30 },
  "gpt-4-0125-preview": { input: 10, output: 30 },
  "gpt-4-1106-preview": { input: 10, output: 30 },
  "gpt-4-1106-vision-preview": { input: 10, output: 30 },
  "gpt-4": { input: 30, output: 60 },
  "gpt-4-32k": { input: 60, output: 120 },
  "gpt-3.5-turbo": { input: 0.5, output: 1.5 },
  "gpt-3.5-turbo-16k": { input: 3, output: 4 },
  // Snapshots priced apart from the model their name extends (the dated-suffix match would
  // bill them at its lower price): the first GPT-4o, and the older GPT-3.5 Turbo snapshots.
  "gpt-4o-2024-05-13": { input: 5, output: 15 },
  "chatgpt-4o-latest": { input: 5, output: 15 },
  "gpt-3.5-turbo-1106": { input: 1, output: 2 },
  "gpt-3.5-turbo-0613": { input: 1.5, output: 2 },
  "gpt-3.5-turbo-0301": { input: 1.5, output: 2 },
  "gpt-3.5-turbo-instruct": { input: 1.5, output: 2 },
  "o1-mini": { input: 1.1, cache_read: 0.55, output: 4.4 },
  "o3-mini": { input: 1.1, cache_read: 0.55, output: 4.4 },
  "text-embedding-3-small": { input: 0.02, output: 0 },
  "text-embedding-3-large": { input: 0.13, output: 0 },
  // The default of LangChain's OpenAIEmbeddings.
  "text-embedding-ada-002": { input: 0.1, output: 0 },
  // Mistral's embeddings model (the `mistral` preset), https://mistral.ai/pricing (2025-10).
  "mistral-embed": { input: 0.1, output: 0 },
  // Anthropic, https://docs.anthropic.com/en/docs/about-claude/pricing (2025-10-15).
  // Claude Opus 4.5, https://www.anthropic.com/news/claude-opus-4-5 (2025-11-24).
  "claude-opus-4-5": { input: 5, cache_write: 6.25, cache_read: 0.5, output: 25 },
  "claude-opus-4-1": { input: 15, cache_write: 18.75, cache_read: 1.5, output: 75 },
  "claude-opus-4": { input: 15, cache_write: 18.75, cache_read: 1.5, output: 75 },
  // Sonnet 4 and 4.5 with the 1M context window: a prompt over 200K tokens (cache reads and
  // writes counted) bills every token at the long-context rates, caching multipliers on top.
  "claude-sonnet-4-5": { ...SONNET_4 },
  "claude-sonnet-4": { ...SONNET_4 },
  "claude-3-7-sonnet": { input: 3, cache_write: 3.75, cache_read: 0.3, output: 15 },
  "claude-haiku-4-5": { input: 1, cache_write: 1.25, cache_read: 0.1, output: 5 },
  "claude-3-5-haiku": { input: 0.8, cache_write: 1, cache_read: 0.08, output: 4 },
  "claude-3-opus": { input: 15, cache_write: 18.75, cache_read: 1.5, output: 75 },
  "claude-3-haiku": { input: 0.25, cache_write: 0.3, cache_read: 0.03, output: 1.25 },
  // Claude 3 Sonnet, retired 2025-07-21: its last list price (no prompt-caching rates).
  "claude-3-sonnet": { input: 3, output: 15 },
  // Google Gemini API, https://ai.google.dev/gemini-api/docs/pricing (2025-09-01); the
  // cached rate is what implicit and explicit cache hits cost, thinking is output.
  "gemini-2.5-pro": {
    input: 1.25,
    cache_read: 0.31,
    output: 10,
    long_context: { threshold: 200_000, input: 2.5, cache_read: 0.625, output: 15 },
  },
  "gemini-2.5-flash": { input: 0.3, cache_read: 0.075, output: 2.5 },
  "gemini-2.5-flash-lite": { input: 0.1, cache_read: 0.025, output: 0.4 },
  "gemini-2.0-flash": { input: 0.1, cache_read: 0.025, output: 0.4 },
  "gemini-2.0-flash-lite": { input: 0.075, output: 0.3 },
  "gemini-embedding-001": { input: 0.15, output: 0 },
  // Amazon Bedrock on-demand, https://aws.amazon.com/bedrock/pricing/ (2025-10-15, us-east-1);
  // geo prefixes (`us.`, `eu.`, ...) are stripped before the lookup. Claude 4.5 rates are the
  // global profile's: a geographic or in-Region call costs 10 % more (`REGIONAL_PREMIUM`).
  "anthropic.claude-sonnet-4-5": { ...SONNET_4 },
  "anthropic.claude-sonnet-4": { ...SONNET_4 },
  "anthropic.claude-3-7-sonnet": { input: 3, cache_write: 3.75, cache_read: 0.3, output: 15 },
  "anthropic.claude-haiku-4-5": { input: 1, cache_write: 1.25, cache_read: 0.1, output: 5 },
  "anthropic.claude-3-5-haiku": { input: 0.8, cache_write: 1, cache_read: 0.08, output: 4 },
  "anthropic.claude-opus-4-5": { input: 5, cache_write: 6.25, cache_read: 0.5, output: 25 },
  "anthropic.claude-opus-4-1": { input: 15, cache_write: 18.75, cache_read: 1.5, output: 75 },
  "anthropic.claude-opus-4": { input: 15, cache_write: 18.75, cache_read: 1.5, output: 75 },
  // Older Claude models on Bedrock: Anthropic's list prices, without prompt-caching rates.
  "anthropic.claude-3-5-sonnet": { input: 3, output: 15 },
  "anthropic.claude-3-opus": { input: 15, output: 75 },
  "anthropic.claude-3-haiku": { input: 0.25, output: 1.25 },
  "meta.llama3-1-70b-instruct-v1": { input: 0.72, output: 0.72 },
  "meta.llama3-1-8b-instruct-v1": { input: 0.22, output: 0.22 },
  "amazon.titan-embed-text-v2": { input: 0.02, output: 0 },
  "amazon.titan-embed-text-v1": { input: 0.1, output: 0 },
  "cohere.embed-english-v3": { input: 0.1, output: 0 },
  "cohere.embed-multilingual-v3": { input: 0.1, output: 0 },
  // Text inputs (images are priced per image, which a token count cannot say).
  "cohere.embed-v4": { input: 0.12, output: 0 },
  "amazon.nova-pro-v1": { input: 0.8, cache_read: 0.2, output: 3.2 },
  "amazon.nova-lite-v1": { input: 0.06, cache_read: 0.015, output: 0.24 },
  "amazon.nova-micro-v1": { input: 0.035, cache_read: 0.00875, output: 0.14 },
  "meta.llama3-3-70b-instruct-v1": { input: 0.72, output: 0.72 },
  // Mistral, https://mistral.ai/pricing#api-pricing (2025-08-01).
  "mistral-large-latest": { input: 2, output: 6 },
  "mistral-small-latest": { input: 0.1, output: 0.3 },
  // Groq, https://groq.com/pricing (2025-08-01).
  "llama-3.3-70b-versatile": { input: 0.59, output: 0.79 },
  "llama-3.1-8b-instant": { input: 0.05, output: 0.08 },
  // DeepSeek, https://api-docs.deepseek.com/quick_start/pricing (2025-09-05).
  "deepseek-chat": { input: 0.56, cache_read: 0.07, output: 1.68 },
  "deepseek-reasoner": { input: 0.56, cache_read: 0.07, output: 1.68 },
  // xAI, https://docs.x.ai/docs/models (2025-08-01).
  "grok-4": { input: 3, cache_read: 0.75, output: 15 },
  "grok-3-mini": { input: 0.3, cache_read: 0.075, output: 0.5 },
};

/** Bedrock's cross-region inference profiles prefix the model id with a geography. */
const GEO_PREFIX = /^(?:us|eu|apac|au|jp|ca|us-gov|global)\./;

/**
 * The built-in entry for `model`: an exact name, else the longest listed name it extends
 * with a dated or versioned suffix (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`,
 * `anthropic.claude-sonnet-4-20250514-v1:0`), never a different model (`gpt-4o-mini` is
 * not `gpt-4o`: the rest must start with `-` and a digit, or `:`).
 */
export function builtinPrice(model: string): ModelPrice | null {
  const base = model.replace(GEO_PREFIX, "");
  const price = priceIn(BUILTIN_PRICES, base);
  if (price === null || model.startsWith("global.") || !REGIONAL_PREMIUM.test(base)) return price;
  return scaledPrice(price, 1.1);
}

/**
 * From Claude 4.5 on, Bedrock prices a geographic profile (`us.`, `eu.`, ...) and an in-Region
 * call 10 % above the global profile (`global.`), whose rates the table lists
 * (https://aws.amazon.com/bedrock/pricing/, "global" and "regional" endpoints).
 */
const REGIONAL_PREMIUM = /^anthropic\.claude-(?:sonnet|haiku|opus)-4-5(?:$|[-:@])/;

function scaledPrice(p: ModelPrice, factor: number): ModelPrice {
  // Rounded to the micro-dollar per million tokens: 3 x 1.1 is 3.3, not 3.3000000000000003.
  const scale = (n: number) => Math.round(n * factor * 1e6) / 1e6;
  const rates = (r: Record<string, unknown>) =>
    Object.fromEntries(
      Object.entries(r).map((
        [k, v],
      ) => [k, typeof v === "number" && k !== "threshold" ? scale(v) : v]),
    );
  const out = rates(p) as ModelPrice;
  return p.long_context
    ? { ...out, long_context: rates(p.long_context) as NonNullable<ModelPrice["long_context"]> }
    : out;
}

/**
 * What may follow a model's name and still name that model: a date (`-0613`, `-20250514`,
 * `-2024-08-06`), a revision (`-001`, `-v1:0`, `:0`, `@20240229`), `-latest`, or Anthropic's
 * `-0` aliases (`claude-sonnet-4-0` is `claude-sonnet-4`). Another one- or two-digit number
 * is another model (`claude-opus-4-5` is not `claude-opus-4`, at a third of its price).
 */
const SAME_MODEL_SUFFIX =
  /^(?:-\d{4}(?:\d{4}|-\d{2}-\d{2})?(?:$|[-:@])|-\d{3}(?:$|[:@])|-v\d|-latest$|-0$|:|@)/;

/**
 * `table`'s entry for `name`: exact, else the longest key `name` extends with a dated or
 * versioned suffix. A price configured for `gpt-4o` is the price of the `gpt-4o-2024-08-06`
 * an answer names (what passthrough bills by when the request streamed upstream unread).
 */
function priceIn(
  table: Readonly<Record<string, ModelPrice>>,
  name: string,
): ModelPrice | null {
  // Own keys only: a model named `toString` or `constructor` is not a price.
  const exact = Object.hasOwn(table, name) ? table[name] : undefined;
  if (exact) return exact;
  let best: string | null = null;
  for (const key of Object.keys(table)) {
    if (!name.startsWith(key) || (best !== null && key.length <= best.length)) continue;
    if (SAME_MODEL_SUFFIX.test(name.slice(key.length))) best = key;
  }
  return best === null ? null : table[best] as ModelPrice;
}

/**
 * A configured price that leaves out the prompt-caching rates (llm-proxy's pricing keys have
 * only input and output) takes the built-in table's for the same model: cache reads and
 * writes are never billed as normal input where the vendor's rate is known.
 */
function withCacheRates(own: ModelPrice, builtin: ModelPrice | null): ModelPrice {
  if (builtin === null) return own;
  const read = own.cache_read === undefined ? builtin.cache_read : undefined;
  const write = own.cache_write === undefined ? builtin.cache_write : undefined;
  if (read === undefined && write === undefined) return own;
  return {
    ...own,
    ...(read !== undefined ? { cache_read: read } : {}),
    ...(write !== undefined ? { cache_write: write } : {}),
  };
}

/** What a provider whose answers are made in the process costs. */
const FREE: ModelPrice = { input: 0, output: 0 };

export interface PriceBook {
  /** The price of `model` on `provider` (its config name), or null when unpriced. */
  priceOf(provider: string, model: string): ModelPrice | null;
}

/**
 * The model id a provider prices `model` as (a Bedrock ARN -> the model or profile id it
 * names); the provider's own knowledge, from its adapter.
 */
export type PricedAs = (provider: string, model: string) => string;

/** The book for one config generation (lookups memoised: the hot path asks the same pairs). */
export function createPriceBook(
  config: Config,
  pricedAs: PricedAs = (_provider, model) => model,
): PriceBook {
  const own = config.pricing.models;
  const memo = new Map<string, ModelPrice | null>();
  const configured = (provider: string, model: string): ModelPrice | null =>
    priceIn(own, `${provider}/${model}`) ??
      priceIn(config.providers[provider]?.model_pricing ?? {}, model) ??
      priceIn(own, model);
  // A cross-region profile (`us.anthropic....`) is priced as its model, in `pricing.models` too,
  // and an ARN as the id it names; a price set for the name as asked wins.
  const lookup = (provider: string, model: string): ModelPrice | null => {
    const type = Object.hasOwn(config.providers, provider)
      ? config.providers[provider]?.type
      : undefined;
    if (type !== undefined && FREE_TYPES.has(type)) return FREE;
    const id = pricedAs(provider, model);
    const names = [...new Set([model, id, id.replace(GEO_PREFIX, "")])];
    const builtin = config.pricing.builtin ? builtinPrice(id) : null;
    let mine: ModelPrice | null = null;
    for (const name of names) {
      mine = configured(provider, name);
      if (mine !== null) break;
    }
    return mine === null ? builtin : withCacheRates(mine, builtin);
  };
  return {
    priceOf(provider, model) {
      const key = `${provider}\u0000${model}`;
      let price = memo.get(key);
      if (price === undefined) {
        price = lookup(provider, model);
        if (memo.size < 10_000) memo.set(key, price);
      }
      return price;
    },
  };
}
