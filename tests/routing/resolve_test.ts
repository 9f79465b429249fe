import assert from "node:assert/strict";
import { type Config, parseConfigText } from "../../src/config/mod.ts";
import { GatewayError } from "../../src/errors.ts";
import { resolveTargets } from "../../src/routing/mod.ts";

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
