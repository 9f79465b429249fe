import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import {
  builtinPrice,
  costOf,
  createPriceBook,
  formatUsd,
  splitTokens,
} from "../../src/usage/mod.ts";

Deno.test("builtinPrice() matches dated and versioned ids, never another model", () => {
  assert.equal(builtinPrice("gpt-4o-2024-08-06"), builtinPrice("gpt-4o"));
  assert.equal(builtinPrice("gpt-4o-mini-2024-07-18")?.input, 0.15);
  assert.equal(builtinPrice("gpt-4o-audio-preview"), null);
  // Older models llm-gateway's README routes, dated names included; never a neighbour's price.
  assert.equal(builtinPrice("gpt-4")?.input, 30);
  assert.equal(builtinPrice("gpt-4-0613")?.output, 60);
  assert.equal(builtinPrice("gpt-4-turbo-2024-04-09")?.input, 10);
  assert.equal(builtinPrice("gpt-3.5-turbo-0125")?.output, 1.5);
  assert.equal(builtinPrice("claude-3-opus-20240229")?.output, 75);
  assert.equal(builtinPrice("claude-3-haiku-20240307")?.cache_read, 0.03);
  assert.equal(builtinPrice("claude-3-sonnet")?.input, 3);
  assert.equal(builtinPrice("gpt-4-1106-preview")?.input, 10);
  // Snapshots with their own list price, not their base model's.
  assert.deepEqual(builtinPrice("gpt-4o-2024-05-13"), { input: 5, output: 15 });
  assert.deepEqual(builtinPrice("gpt-3.5-turbo-1106"), { input: 1, output: 2 });
  assert.deepEqual(builtinPrice("gpt-3.5-turbo-0613"), { input: 1.5, output: 2 });
  assert.equal(builtinPrice("gpt-3.5-turbo-0125"), builtinPrice("gpt-3.5-turbo"));
  assert.equal(builtinPrice("gpt-4o-2024-11-20"), builtinPrice("gpt-4o"));
  assert.deepEqual(builtinPrice("mistral-embed"), { input: 0.1, output: 0 });
  assert.equal(builtinPrice("gpt-4-32k-0613")?.input, 60);
  assert.equal(builtinPrice("gpt-3.5-turbo-16k-0613")?.output, 4);
  assert.equal(builtinPrice("claude-sonnet-4-5-20250929")?.cache_write, 3.75);
  // Claude 4.5 on Bedrock: the table's rates are the global profile's; a geographic profile
  // or an in-Region call costs 10 % more.
  assert.deepEqual(
    builtinPrice("global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    builtinPrice("claude-sonnet-4-5"),
  );
  assert.deepEqual(builtinPrice("us.anthropic.claude-sonnet-4-5-20250929-v1:0"), {
    input: 3.3,
    cache_write: 4.125,
    cache_read: 0.33,
    output: 16.5,
    long_context: {
      threshold: 200_000,
      input: 6.6,
      cache_write: 8.25,
      cache_read: 0.66,
      output: 24.75,
    },
  });
  assert.deepEqual(
    builtinPrice("anthropic.claude-sonnet-4-5-20250929-v1:0"),
    builtinPrice("eu.anthropic.claude-sonnet-4-5-20250929-v1:0"),
  );
  assert.equal(builtinPrice("global.anthropic.claude-haiku-4-5-20251001-v1:0")?.input, 1);
  assert.equal(builtinPrice("us.anthropic.claude-haiku-4-5-20251001-v1:0")?.input, 1.1);
  // Older models have one Bedrock price.
  assert.equal(builtinPrice("us.anthropic.claude-sonnet-4-20250514-v1:0")?.input, 3);
  assert.equal(builtinPrice("mock/ok"), null);
  // Common embedding models, as SDKs name them.
  assert.equal(builtinPrice("text-embedding-ada-002")?.input, 0.1);
  assert.equal(builtinPrice("amazon.titan-embed-text-v1")?.input, 0.1);
  assert.equal(builtinPrice("us.cohere.embed-v4:0")?.input, 0.12);
  assert.equal(builtinPrice("gemini-embedding-001")?.input, 0.15);
  // A short number after the name is another model, never its neighbour's price.
  assert.equal(builtinPrice("claude-opus-4-5-20251101")?.input, 5);
  assert.equal(builtinPrice("global.anthropic.claude-opus-4-5-20251101-v1:0")?.output, 25);
  assert.equal(builtinPrice("claude-opus-4-20250514")?.input, 15);
  assert.equal(builtinPrice("claude-opus-4-7-20270101"), null);
  assert.equal(builtinPrice("claude-3-5-haiku-latest")?.input, 0.8);
  assert.equal(builtinPrice("claude-sonnet-4-0")?.input, 3, "Anthropic's alias of Sonnet 4");
  assert.equal(builtinPrice("claude-opus-4-0")?.output, 75);
  assert.equal(builtinPrice("gemini-2.0-flash-001")?.input, 0.1, "a revision of the same model");
  // Bedrock ids with their revision.
  assert.equal(builtinPrice("anthropic.claude-3-haiku-20240307-v1:0")?.output, 1.25);
  assert.equal(builtinPrice("meta.llama3-1-8b-instruct-v1:0")?.input, 0.22);
  assert.equal(builtinPrice("amazon.titan-embed-text-v2:0")?.input, 0.02);
  assert.equal(builtinPrice("amazon.nova-micro-v1:0")?.output, 0.14);
});

Deno.test("costOf() bills each token class once, at its own rate", () => {
  const price = { input: 3, output: 15, cache_read: 0.3, cache_write: 3.75 };
  const usage = {
    prompt_tokens: 132,
    completion_tokens: 10,
    total_tokens: 142,
    prompt_tokens_details: { cached_tokens: 100, cache_write_tokens: 20 },
  };
  assert.deepEqual(splitTokens(usage), {
    input: 12,
    cacheRead: 100,
    cacheWrite: 20,
    output: 10,
    reasoning: 0,
  });
  assert.equal(costOf(usage, price), 0.000291);
  // Cached reads without a cache price: billed as input (never silently free).
  assert.equal(costOf(usage, { input: 1, output: 1 }), 0.000142);
  // Counts that do not add up are clamped, not negative.
  assert.equal(
    costOf({
      prompt_tokens: 5,
      completion_tokens: 0,
      total_tokens: 5,
      prompt_tokens_details: { cached_tokens: 9 },
    }, price),
    0.0000027,
  );
  assert.equal(formatUsd(0.0000027), "0.0000027");
  assert.equal(formatUsd(0), "0");
  assert.equal(formatUsd(12.5), "12.5");
  // Plain decimals, rounded to whole nano-dollars, as `toFixed(9)` without its trailing zeros.
  for (
    const [usd, text] of [
      [3, "3"],
      [0.000000001, "0.000000001"],
      [0.0000000004, "0"],
      [1.0000000006, "1.000000001"],
      [0.1 + 0.2, "0.3"],
      [123456.000789, "123456.000789"],
      [1e-7, "0.0000001"],
      [-0.25, "-0.25"],
    ] as const
  ) assert.equal(formatUsd(usd), text, String(usd));
});

Deno.test("costOf() applies a long-context tier above its threshold", () => {
  const price = builtinPrice("gemini-2.5-pro")!;
  const small = { prompt_tokens: 200_000, completion_tokens: 1000, total_tokens: 201_000 };
  const large = { prompt_tokens: 200_001, completion_tokens: 1000, total_tokens: 201_001 };
  assert.equal(costOf(small, price), 0.26);
  assert.equal(costOf(large, price), 0.5150025);
});

Deno.test("costOf(): Claude Sonnet 4 and 4.5 bill a prompt over 200K tokens at the long-context rates", () => {
  // 250K in, 1K out: $6 and $22.50 a million (not $3 and $15).
  const long = { prompt_tokens: 250_000, completion_tokens: 1000, total_tokens: 251_000 };
  for (
    const model of [
      "claude-sonnet-4-5",
      "claude-sonnet-4-20250514",
      "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
    ]
  ) {
    assert.equal(costOf(long, builtinPrice(model)!), 1.5225, model);
  }
  // A geographic Bedrock profile of 4.5 costs 10 % more, the long-context tier too.
  assert.equal(
    costOf(long, builtinPrice("us.anthropic.claude-sonnet-4-5-20250929-v1:0")!),
    1.67475,
  );
  // Cache reads count toward the threshold and are billed at 0.1x the long-context input rate.
  const cached = {
    prompt_tokens: 210_000,
    completion_tokens: 0,
    total_tokens: 210_000,
    prompt_tokens_details: { cached_tokens: 200_000, cache_write_tokens: 5_000 },
  };
  // 5K input x 6 + 200K read x 0.6 + 5K write x 7.5, per million.
  assert.equal(costOf(cached, builtinPrice("claude-sonnet-4-5")!), 0.1875);
  // At 200K exactly, the base rates.
  const edge = { prompt_tokens: 200_000, completion_tokens: 0, total_tokens: 200_000 };
  assert.equal(costOf(edge, builtinPrice("claude-sonnet-4")!), 0.6);
});

Deno.test("createPriceBook(): pricing.models and llm-proxy's providers.<p>.models.*.pricing", () => {
  const { config, warnings } = parseConfigText(
    `
providers:
  openai:
    keys: [{ key: sk-1 }]
    models:
      "gpt-5":
        enabled: true
        aliases: ["gpt-5-2025-08-07"]
        pricing: { input: 1.25, output: 10.00 }
      "gemini-ish":
        pricing:
          - { threshold: 200000, input: 2.0, output: 12.0 }
          - { threshold: 0, input: 4.0, output: 18.0 }
      "off-model": { enabled: false }
pricing:
  models:
    "openai/gpt-4o": { input: 9, output: 9 }
    "gpt-4o": { input: 8, output: 8 }
    "house-model": { input: 1, output: 2, cache_read: 0.1 }
    "bedrock/anthropic.claude-sonnet-4-5": { input: 1, output: 4 }
    "eu.anthropic.claude-haiku-4-5": { input: 7, output: 7 }
`,
    () => undefined,
    "t.yaml",
  );
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.providers.openai!.models, ["gpt-5", "gemini-ish"]);
  const book = createPriceBook(config);
  assert.equal(book.priceOf("openai", "gpt-5")?.input, 1.25);
  assert.equal(book.priceOf("openai", "gpt-5-2025-08-07")?.output, 10);
  assert.deepEqual(book.priceOf("openai", "gemini-ish"), {
    input: 2,
    output: 12,
    long_context: { threshold: 200_000, input: 4, output: 18 },
  });
  assert.equal(book.priceOf("openai", "gpt-4o")?.input, 9, "provider/model wins");
  assert.equal(book.priceOf("other", "gpt-4o")?.input, 8, "then the bare model");
  assert.equal(book.priceOf("other", "gpt-4o-mini")?.input, 0.15, "then the built-in table");
  assert.equal(book.priceOf("x", "house-model")?.cache_read, 0.1);
  // The dated name an answer gives takes the configured price of the name it extends.
  assert.equal(book.priceOf("openai", "gpt-4o-2024-08-06")?.input, 9);
  assert.equal(book.priceOf("other", "gpt-4o-2024-08-06")?.input, 8);
  assert.equal(book.priceOf("openai", "gemini-ish-20250101")?.input, 2);
  assert.equal(book.priceOf("x", "house-model@2025")?.input, 1);
  // A cross-region profile takes its model's configured price; one set for it wins.
  assert.equal(
    book.priceOf("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")?.input,
    1,
  );
  assert.equal(book.priceOf("bedrock", "eu.anthropic.claude-haiku-4-5-20251001-v1:0")?.input, 7);
});

Deno.test("createPriceBook(): a model is priced as the id its provider says it names", () => {
  const { config } = parseConfigText(
    `
providers:
  bedrock: { region: us-west-2 }
pricing:
  models:
    "bedrock/arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-haiku-4-5": { input: 9, output: 9 }
`,
    () => undefined,
    "t.yaml",
  );
  const arn = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/";
  const book = createPriceBook(config, (_p, model) => model.replace(arn, ""));
  const profile = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
  assert.deepEqual(book.priceOf("bedrock", `${arn}${profile}`), book.priceOf("bedrock", profile));
  assert.equal(book.priceOf("bedrock", `${arn}${profile}`)?.input, 3.3);
  // A price configured for the name as asked wins over the id's.
  assert.equal(
    book.priceOf(
      "bedrock",
      "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-haiku-4-5",
    )
      ?.input,
    9,
  );
  // Without the provider's reading an ARN names nothing priced.
  assert.equal(createPriceBook(config).priceOf("bedrock", `${arn}${profile}`), null);
});

Deno.test("createPriceBook(): a configured price without cache rates takes the built-in ones", () => {
  const book = (builtin: boolean) =>
    createPriceBook(
      parseConfigText(
        `
providers:
  anthropic:
    keys: [{ key: sk-ant-1 }]
    models:
      claude-sonnet-4-5: { pricing: { input: 3.0, output: 15.0 } }
pricing:
  builtin: ${builtin}
  models:
    "gpt-4o": { input: 2, output: 8, cache_read: 0.2 }
    "house-model": { input: 1, output: 2 }
`,
        () => undefined,
        "t.yaml",
      ).config,
    );
  const on = book(true);
  // llm-proxy's pricing keys name input and output only; Anthropic's cache rates still apply.
  const sonnet = on.priceOf("anthropic", "claude-sonnet-4-5-20250929")!;
  assert.deepEqual(
    [sonnet.input, sonnet.output, sonnet.cache_read, sonnet.cache_write],
    [3, 15, 0.3, 3.75],
  );
  const usage = {
    prompt_tokens: 7100,
    completion_tokens: 400,
    total_tokens: 7500,
    prompt_tokens_details: { cached_tokens: 5000, cache_write_tokens: 2000 },
  };
  // 100 × 3 + 5000 × 0.3 + 2000 × 3.75 + 400 × 15 per 1M, not 7100 × 3 + 400 × 15.
  assert.equal(costOf(usage, sonnet), 0.0153);
  // A rate set wins; a model the table does not know, or builtin: false, keeps the input rate.
  assert.equal(on.priceOf("openai", "gpt-4o")?.cache_read, 0.2);
  assert.equal(on.priceOf("x", "house-model")?.cache_read, undefined);
  assert.equal(book(false).priceOf("anthropic", "claude-sonnet-4-5")?.cache_read, undefined);
});

Deno.test("pricing config: bad prices are refused with their key path; builtin: false", () => {
  assert.throws(
    () =>
      parseConfigText(
        `pricing: { models: { m: { input: -1, output: 1 } } }`,
        () => undefined,
        "t.yaml",
      ),
    /pricing\.models\.m\.input/,
  );
  assert.throws(
    () => parseConfigText(`pricing: { models: { m: { input: 1 } } }`, () => undefined, "t.yaml"),
    /pricing\.models\.m/,
  );
  const { config } = parseConfigText(`pricing: { builtin: false }`, () => undefined, "t.yaml");
  assert.equal(createPriceBook(config).priceOf("openai", "gpt-4o"), null);
});

Deno.test("createPriceBook(): the mock's answers cost 0 (made in the process); an unpriced model has no cost", () => {
  const { config } = parseConfigText(
    "providers:\n  mock: {}\n  local: { type: openai, base_url: http://127.0.0.1:9/v1 }\n",
    () => undefined,
    "t.yaml",
  );
  const book = createPriceBook(config);
  assert.deepEqual(book.priceOf("mock", "echo"), { input: 0, output: 0 });
  assert.equal(book.priceOf("local", "house-llm-7b"), null);
});

Deno.test("a model named like an Object member (toString, constructor) is unpriced, never NaN", () => {
  const config = parseConfigText(
    `providers:\n  openai: { keys: [{ key: sk-t }] }\npricing: { models: { "gpt-4o": { input: 1, output: 2 } } }\n`,
    () => undefined,
    "t.yaml",
  ).config;
  const book = createPriceBook(config);
  for (const name of ["toString", "constructor", "valueOf", "hasOwnProperty", "__proto__"]) {
    assert.equal(builtinPrice(name), null, name);
    assert.equal(book.priceOf("openai", name), null, name);
  }
});
