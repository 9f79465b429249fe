import assert from "node:assert/strict";
import { type Config, parseConfigText } from "../../src/config/mod.ts";
import { GatewayError } from "../../src/errors.ts";
import { resolveModel, resolveTargets } from "../../src/routing/mod.ts";

function configOf(yaml: string): Config {
  return parseConfigText(yaml, () => undefined, "routing.yaml").config;
}

const CONFIG = configOf(`
providers:
  openai: {}
  anthropic: {}
  openrouter: {}
routing:
  default_provider: openrouter
  aliases:
    fast: openai/gpt-4o-mini
    llama: openrouter/meta-llama/llama-3-70b
  models:
    gpt-4o:
      providers: [openai, openrouter]
    claude-sonnet-4-20250514:
      providers: [anthropic, openrouter]
`);

const NO_DEFAULT = configOf(`
providers:
  openai: {}
  mock: {}
routing:
  aliases:
    fast: openai/gpt-4o-mini
  models:
    gpt-4o:
      providers: [openai]
`);

/** Expect a 404 not_found whose message mentions each of `words`. */
function assertNotFound(fn: () => unknown, param: string, ...words: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof GatewayError, `expected GatewayError, got ${err}`);
    assert.equal(err.code, "not_found");
    assert.equal(err.status, 404);
    assert.equal(err.info.param, param);
    for (const w of words) assert.ok(err.message.includes(w), `"${err.message}" lacks "${w}"`);
    return true;
  });
}

Deno.test("resolveTargets() follows an alias to its provider/model", () => {
  assert.deepEqual(resolveTargets(CONFIG, "fast"), [{ provider: "openai", model: "gpt-4o-mini" }]);
  assert.deepEqual(resolveTargets(CONFIG, "llama"), [
    { provider: "openrouter", model: "meta-llama/llama-3-70b" },
  ]);
});

Deno.test("resolveTargets() splits provider/model at the first slash only", () => {
  assert.deepEqual(resolveTargets(CONFIG, "openai/gpt-4o-mini"), [
    { provider: "openai", model: "gpt-4o-mini" },
  ]);
  assert.deepEqual(resolveTargets(CONFIG, "openrouter/meta-llama/llama-3"), [
    { provider: "openrouter", model: "meta-llama/llama-3" },
  ]);
});

Deno.test("resolveTargets() sends a slashed model with an unknown prefix to the default", () => {
  assert.deepEqual(resolveTargets(CONFIG, "meta-llama/llama-3"), [
    { provider: "openrouter", model: "meta-llama/llama-3" },
  ]);
});

Deno.test("resolveTargets() keeps the routing.models provider order", () => {
  assert.deepEqual(resolveTargets(CONFIG, "gpt-4o"), [
    { provider: "openai", model: "gpt-4o" },
    { provider: "openrouter", model: "gpt-4o" },
  ]);
  assert.deepEqual(resolveTargets(CONFIG, "claude-sonnet-4-20250514"), [
    { provider: "anthropic", model: "claude-sonnet-4-20250514" },
    { provider: "openrouter", model: "claude-sonnet-4-20250514" },
  ]);
});

Deno.test("resolveTargets() routes an unlisted bare model to default_provider", () => {
  assert.deepEqual(resolveTargets(CONFIG, "mistral-large"), [
    { provider: "openrouter", model: "mistral-large" },
  ]);
});

Deno.test("resolveTargets() keeps only the x-gateway pinned provider", async (t) => {
  await t.step("a routed model narrows to the pin", () => {
    assert.deepEqual(resolveTargets(CONFIG, "gpt-4o", "openrouter"), [
      { provider: "openrouter", model: "gpt-4o" },
    ]);
  });
  await t.step("a bare model goes to the pin before default_provider", () => {
    assert.deepEqual(resolveTargets(CONFIG, "some-model", "anthropic"), [
      { provider: "anthropic", model: "some-model" },
    ]);
  });
  await t.step("a pin that matches provider/model keeps it", () => {
    assert.deepEqual(resolveTargets(CONFIG, "openai/gpt-4o", "openai"), [
      { provider: "openai", model: "gpt-4o" },
    ]);
  });
  await t.step("a pin outside the route is not_found", () => {
    assertNotFound(
      () => resolveTargets(CONFIG, "gpt-4o", "anthropic"),
      "x-gateway.provider",
      '"gpt-4o"',
      '"anthropic"',
    );
    assertNotFound(
      () => resolveTargets(CONFIG, "openai/gpt-4o", "anthropic"),
      "x-gateway.provider",
    );
  });
  await t.step("an unknown pin is not_found listing the providers", () => {
    assertNotFound(
      () => resolveTargets(CONFIG, "gpt-4o", "azure"),
      "x-gateway.provider",
      '"azure"',
      "openai, anthropic, openrouter",
    );
  });
});

Deno.test("resolveTargets() answers not_found listing providers and routed models", () => {
  assertNotFound(
    () => resolveTargets(NO_DEFAULT, "mystery-model"),
    "model",
    '"mystery-model"',
    "openai, mock",
    "fast",
    "gpt-4o",
  );
  // An unknown provider prefix is just an unknown model when nothing else matches.
  assertNotFound(() => resolveTargets(NO_DEFAULT, "azure/gpt-4o"), "model", '"azure/gpt-4o"');
});

// BUG (src/routing/resolve.ts): "openai/" (empty model after the slash) resolves to
// { provider: "openai", model: "" } and is sent upstream, although routing.aliases refuses
// the same shape at load time. Fix: treat the prefix as a provider only when
// `slash > 0 && slash < name.length - 1`; otherwise fall through (→ 404 listing models).
Deno.test({
  name: "resolveTargets() refuses a provider prefix with an empty model",

  fn() {
    assertNotFound(() => resolveTargets(NO_DEFAULT, "openai/"), "model");
  },
});

Deno.test("resolveModel() reads llm-gateway alias objects and provider/model route entries", () => {
  const { config } = parseConfigText(
    `
providers:
  openai: { keys: [{ key: k1 }] }
  anthropic: { keys: [{ key: k2 }] }
routing:
  aliases:
    smart: { provider: anthropic, model: claude-sonnet-4-5 }
  models:
    gpt-4o: { providers: [openai, anthropic/claude-sonnet-4-5], strategy: round-robin, hedge_after: 1s }
`,
    () => undefined,
    "r.yaml",
  );
  assert.deepEqual(resolveModel(config, "smart").targets, [{
    provider: "anthropic",
    model: "claude-sonnet-4-5",
  }]);
  const r = resolveModel(config, "gpt-4o");
  assert.deepEqual(r.targets, [
    { provider: "openai", model: "gpt-4o" },
    { provider: "anthropic", model: "claude-sonnet-4-5" },
  ]);
  assert.equal(r.route?.strategy, "round-robin");
  assert.equal(r.route?.hedge_after, 1_000);
});

Deno.test("parseConfigText() refuses bad routing settings with their key paths", () => {
  const err = (() => {
    try {
      parseConfigText(
        `
providers:
  openai: {}
routing:
  models:
    gpt-4o: { providers: [openai, ghost/gpt-4o], strategy: fastest, hedge_after: soon }
  failover:
    max_retries: -1
    backoff: { initial: -5ms, multiplier: 0.5 }
  key_cooldown: { auth: never }
`,
        () => undefined,
        "bad.yaml",
      );
    } catch (e) {
      return e as Error & { problems: string[] };
    }
    throw new Error("expected a ConfigError");
  })();
  const text = err.problems.join("\n");
  assert.match(text, /routing\.models\.gpt-4o\.strategy: .*priority/);
  assert.match(text, /routing\.models\.gpt-4o\.hedge_after: Invalid duration "soon"/);
  assert.match(text, /routing\.failover\.max_retries: /);
  assert.match(text, /routing\.failover\.backoff\.initial: Invalid duration "-5ms"/);
  assert.match(text, /routing\.failover\.backoff\.multiplier: /);
  assert.match(text, /routing\.key_cooldown\.auth: Invalid duration "never"/);
  assert.match(text, /routing\.models\.gpt-4o\.providers\[1\]: Unknown provider "ghost"/);
});
