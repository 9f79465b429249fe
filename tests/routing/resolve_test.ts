import assert from "node:assert/strict";
import {
  type Config,
  DEFAULT_ENV_KEYS,
  embeddedDefault,
  parseConfigText,
} from "../../src/config/mod.ts";
import { applyOverrides, parseCli } from "../../src/cli.ts";
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

Deno.test("resolveTargets(): a routing.models key with a slash wins over the provider prefix", () => {
  const config = configOf(`
providers:
  openai: {}
  openrouter: {}
routing:
  models:
    "openai/gpt-4o": { providers: [openrouter] }
`);
  assert.deepEqual(resolveTargets(config, "openai/gpt-4o"), [
    { provider: "openrouter", model: "openai/gpt-4o" },
  ]);
  assert.deepEqual(resolveTargets(config, "openai/gpt-4o-mini"), [
    { provider: "openai", model: "gpt-4o-mini" },
  ]);
});

Deno.test("resolveTargets(): a provider whose keys are unset env vars takes no provider/ names (Butter's quick start)", () => {
  const yaml = `
providers:
  openai: { keys: [{ key: "\${OPENAI_API_KEY}" }] }
  openrouter: { base_url: https://openrouter.ai/api/v1, keys: [{ key: "\${OPENROUTER_API_KEY}" }] }
routing:
  default_provider: openrouter
`;
  const only = (names: string[]) => (n: string) =>
    names.includes(n) ? `sk-${n.toLowerCase()}-0000001` : undefined;
  const butter = parseConfigText(yaml, only(["OPENROUTER_API_KEY"]), "butter.yaml").config;
  assert.equal(butter.providers.openai?.keys_unset, true);
  assert.deepEqual(resolveTargets(butter, "openai/gpt-4o-mini"), [
    { provider: "openrouter", model: "openai/gpt-4o-mini" },
  ]);
  // With its key set, the prefix names it, as everywhere else.
  const both = parseConfigText(yaml, only(["OPENROUTER_API_KEY", "OPENAI_API_KEY"]), "b.yaml");
  assert.deepEqual(resolveTargets(both.config, "openai/gpt-4o-mini"), [
    { provider: "openai", model: "gpt-4o-mini" },
  ]);
  // No default to take it: a 404 that says why.
  const alone = parseConfigText(
    'providers:\n  openai: { keys: [{ key: "\${OPENAI_API_KEY}" }] }\n',
    only([]),
    "c.yaml",
  ).config;
  assertNotFound(() => resolveTargets(alone, "openai/gpt-4o"), "model", "has no key");
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

Deno.test("resolveModel() lets x-gateway.provider override routing", async (t) => {
  await t.step("a model routed elsewhere goes to the pin under the requested name", () => {
    // llm-gateway's README example: default_provider elsewhere, "provider": "anthropic".
    assert.deepEqual(resolveModel(CONFIG, "mistral-large", "anthropic"), {
      targets: [{ provider: "anthropic", model: "mistral-large" }],
      route: undefined,
    });
    assert.deepEqual(resolveTargets(CONFIG, "gpt-4o", "anthropic"), [
      { provider: "anthropic", model: "gpt-4o" },
    ]);
  });
  await t.step("a routed model narrows to the pin, without the route's strategy", () => {
    assert.deepEqual(resolveModel(CONFIG, "gpt-4o", "openrouter"), {
      targets: [{ provider: "openrouter", model: "gpt-4o" }],
      route: undefined,
    });
  });
  await t.step("the pin's own name for the model is kept (prefix, alias, route entry)", () => {
    assert.deepEqual(resolveTargets(CONFIG, "openai/gpt-4o", "openai"), [
      { provider: "openai", model: "gpt-4o" },
    ]);
    assert.deepEqual(resolveTargets(CONFIG, "fast", "openai"), [
      { provider: "openai", model: "gpt-4o-mini" },
    ]);
    const { config } = parseConfigText(
      "providers:\n  openai: {}\n  anthropic: {}\nrouting:\n  models:\n" +
        "    smart: { providers: [openai/gpt-4o, anthropic/claude-sonnet-4-5] }\n",
      () => undefined,
      "pin.yaml",
    );
    assert.deepEqual(resolveTargets(config, "smart", "anthropic"), [
      { provider: "anthropic", model: "claude-sonnet-4-5" },
    ]);
  });
  await t.step("an alias that names another provider: the pin gets the requested name", () => {
    // fast → openai/gpt-4o-mini: the expansion is openai's name, not openrouter's.
    assert.deepEqual(resolveTargets(CONFIG, "fast", "openrouter"), [
      { provider: "openrouter", model: "fast" },
    ]);
  });
  await t.step("another provider's prefix is part of the model (OpenRouter names)", () => {
    assert.deepEqual(resolveTargets(CONFIG, "openai/gpt-4o", "openrouter"), [
      { provider: "openrouter", model: "openai/gpt-4o" },
    ]);
  });
  await t.step("a pin works without any default provider", () => {
    assert.deepEqual(resolveTargets(NO_DEFAULT, "mystery-model", "mock"), [
      { provider: "mock", model: "mystery-model" },
    ]);
  });
  await t.step("an unknown pin is not_found listing the configured providers", () => {
    assertNotFound(
      () => resolveTargets(CONFIG, "gpt-4o", "azure"),
      "x-gateway.provider",
      '"azure"',
      "openai, anthropic, openrouter",
    );
    assertNotFound(
      () => resolveTargets(NO_DEFAULT, "mystery-model", "anthropic"),
      "x-gateway.provider",
      '"anthropic"',
      "openai, mock",
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
  // An unknown provider prefix is an unknown model when nothing else matches, and said so.
  assertNotFound(
    () => resolveTargets(NO_DEFAULT, "azure/gpt-4o"),
    "model",
    '"azure/gpt-4o"',
    '"azure" is not a configured provider',
  );
});

Deno.test("resolveModel() with the embedded default never sends a bare model to the mock", async (t) => {
  const noKeys = embeddedDefault(() => undefined).config;
  await t.step("mock/... models reach the mock", () => {
    assert.deepEqual(resolveTargets(noKeys, "mock/echo"), [{ provider: "mock", model: "echo" }]);
  });
  await t.step("a bare or misspelled model is not_found naming the env vars", () => {
    for (const model of ["gpt-4o-mini", "opneai/gpt-4o"]) {
      // Derived from the presets, as the embedded default reads them.
      assertNotFound(
        () => resolveTargets(noKeys, model),
        "model",
        `"${model}"`,
        "Configured providers: mock",
        ...DEFAULT_ENV_KEYS,
      );
    }
    assertNotFound(() => resolveTargets(noKeys, "opneai/gpt-4o"), "model", '"opneai" is not');
  });
  await t.step("--host/--port/--socket overrides keep the embedded default's hint", () => {
    const cli = parseCli(["--port", "9100", "--socket", ""], () => undefined);
    const overridden = applyOverrides(noKeys, cli);
    assert.notEqual(overridden, noKeys);
    assertNotFound(() => resolveTargets(overridden, "gpt-4o-mini"), "model", "OPENAI_API_KEY");
  });
  await t.step("with OPENAI_API_KEY set, bare models go to openai", () => {
    const withOpenAI = embeddedDefault((name) => name === "OPENAI_API_KEY" ? "sk-1" : undefined);
    assert.deepEqual(resolveTargets(withOpenAI.config, "gpt-4o-mini"), [
      { provider: "openai", model: "gpt-4o-mini" },
    ]);
  });
  await t.step("with another key only, the hint lists the vars still unset", () => {
    const anth = embeddedDefault((name) => name === "ANTHROPIC_API_KEY" ? "sk-a" : undefined);
    assert.throws(() => resolveTargets(anth.config, "claude-sonnet-4-5"), (err: unknown) => {
      assert.ok(err instanceof GatewayError && err.status === 404);
      assert.match(err.message, /Configured providers: mock, anthropic|anthropic, mock/);
      assert.match(err.message, /OPENAI_API_KEY .*also serves bare model names/);
      assert.ok(!err.message.includes("ANTHROPIC_API_KEY"), err.message);
      return true;
    });
  });
  await t.step("a user config that routes bare models to the mock keeps them", () => {
    const own = configOf("providers:\n  mock: {}\nrouting:\n  default_provider: mock\n");
    assert.deepEqual(resolveTargets(own, "gpt-4o-mini"), [{
      provider: "mock",
      model: "gpt-4o-mini",
    }]);
    const routed = configOf(
      "providers:\n  mock: {}\nrouting:\n  models:\n    x: { providers: [mock] }\n",
    );
    assert.deepEqual(resolveTargets(routed, "x"), [{ provider: "mock", model: "x" }]);
    // A file config's 404 does not point at env vars it may not read.
    assertNotFound(() => resolveTargets(routed, "y"), "model", '"y"', "mock", "x");
    assert.throws(() => resolveTargets(routed, "y"), (e: unknown) => !String(e).includes("OPENAI"));
  });
});

Deno.test("resolveTargets() refuses a provider prefix with an empty or blank model (400)", () => {
  // With a default provider too: "openai/" would otherwise go there as a model name.
  for (const config of [NO_DEFAULT, CONFIG]) {
    for (const model of ["openai/", "openai/ ", "openai/\t"]) {
      assert.throws(() => resolveTargets(config, model), (err: unknown) => {
        assert.ok(err instanceof GatewayError, String(err));
        assert.equal(err.status, 400);
        assert.equal(err.info.param, "model");
        assert.match(err.message, /names provider "openai" but no model/);
        return true;
      });
    }
  }
  // A prefix that is no provider is a model name like any other (OpenRouter's have slashes).
  assert.deepEqual(resolveTargets(CONFIG, "nope/"), [{ provider: "openrouter", model: "nope/" }]);
});

Deno.test("resolveModel() with the embedded default: a known provider's prefix, unset, is its 404", () => {
  const withOpenAI = embeddedDefault((name) => name === "OPENAI_API_KEY" ? "sk-1" : undefined);
  for (
    const [model, env] of [["anthropic/claude-3-5-haiku", "ANTHROPIC_API_KEY"], [
      "gemini/gemini-2.0-flash",
      "GEMINI_API_KEY",
    ]] as const
  ) {
    assertNotFound(
      () => resolveTargets(withOpenAI.config, model),
      "model",
      `"${model.split("/")[0]}" is not a configured provider`,
      env,
    );
  }
  // Bare names, and names whose prefix is no provider, still go to openai.
  assert.deepEqual(resolveTargets(withOpenAI.config, "gpt-4o-mini"), [
    { provider: "openai", model: "gpt-4o-mini" },
  ]);
  assert.deepEqual(resolveTargets(withOpenAI.config, "ft:org/x"), [
    { provider: "openai", model: "ft:org/x" },
  ]);
  // A config of the user's keeps sending "anthropic/..." to its default (OpenRouter's names).
  assert.deepEqual(resolveTargets(CONFIG, "meta/llama-3"), [
    { provider: "openrouter", model: "meta/llama-3" },
  ]);
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

Deno.test("resolveTargets() tries routing.fallback after default_provider for unlisted models", () => {
  const config = configOf(`
providers:
  openai: {}
  anthropic: {}
  groq: {}
routing:
  default_provider: openai
  fallback: [anthropic, openai, groq]
  models:
    llama: { providers: [groq] }
`);
  assert.deepEqual(resolveTargets(config, "gpt-4"), [
    { provider: "openai", model: "gpt-4" },
    { provider: "anthropic", model: "gpt-4" },
    { provider: "groq", model: "gpt-4" },
  ]);
  // A listed model keeps its own route.
  assert.deepEqual(resolveTargets(config, "llama"), [{ provider: "groq", model: "llama" }]);
  assert.throws(
    () => configOf("providers:\n  openai: {}\nrouting:\n  fallback: [opena1]\n"),
    /routing\.fallback\[0\]: Unknown provider "opena1"/,
  );
});

Deno.test("resolveModel() never takes Object.prototype names for providers, aliases or routes", () => {
  for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
    assertNotFound(() => resolveModel(NO_DEFAULT, name), "model", name);
    assertNotFound(() => resolveModel(NO_DEFAULT, `${name}/x`), "model");
    assertNotFound(() => resolveModel(NO_DEFAULT, "gpt-4o", name), "x-gateway.provider");
  }
});

Deno.test("resolveTargets(): an llm-gateway mapped model fails over along fallbackChain after its own provider", () => {
  const config = configOf(`
providers:
  - { name: openai, apiKey: sk-1 }
  - { name: anthropic, apiKey: sk-ant-1 }
  - { name: azure, apiKey: az-1, baseUrl: "https://r.openai.azure.com" }
routing:
  defaultProvider: openai
  modelMappings:
    fast: { provider: openai, model: gpt-3.5-turbo }
    cheap: { provider: anthropic, model: claude-3-haiku }
  fallbackChain: [openai, anthropic, azure]
`);
  assert.deepEqual(resolveTargets(config, "fast"), [
    { provider: "openai", model: "gpt-3.5-turbo" },
    { provider: "anthropic", model: "gpt-3.5-turbo" },
    { provider: "azure", model: "gpt-3.5-turbo" },
  ]);
  // The chain goes on from the mapped provider's place in it.
  assert.deepEqual(resolveTargets(config, "cheap"), [
    { provider: "anthropic", model: "claude-3-haiku" },
    { provider: "azure", model: "claude-3-haiku" },
  ]);
  // An explicit provider/model is the client's choice: no chain.
  assert.deepEqual(resolveTargets(config, "openai/gpt-4o"), [
    { provider: "openai", model: "gpt-4o" },
  ]);
  // Without a chain an alias is its one target, as before.
  assert.deepEqual(resolveTargets(CONFIG, "fast"), [{ provider: "openai", model: "gpt-4o-mini" }]);
});
