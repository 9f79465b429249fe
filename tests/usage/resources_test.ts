import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { createLogger, createRedactor } from "../../src/telemetry/mod.ts";
import { createStateResources } from "../../src/usage/mod.ts";

const logger = createLogger({
  level: "error",
  format: "json",
  redact: createRedactor([]),
  write: () => {},
});
const load = (text: string) => parseConfigText(text, () => undefined, "t.yaml").config;

Deno.test("createStateResources(): rollups and cache survive a reload unless their section changed", async () => {
  const resources = createStateResources({ now: () => 0 });
  try {
    const first = load("cache: { enabled: true }\nlogging: { level: info }");
    const ledger = resources.ledger(first, logger);
    const cache = resources.cache(first, logger);
    assert.ok(cache);
    // A reload that changes something else keeps both (counters and entries intact).
    const reload = load("cache: { enabled: true }\nlogging: { level: debug }");
    assert.equal(resources.ledger(reload, logger), ledger);
    assert.equal(resources.cache(reload, logger), cache);
    // A changed cache block gets a fresh cache; disabling it, none.
    const resized = load("cache: { enabled: true, max_entries: 5 }");
    assert.notEqual(resources.cache(resized, logger), cache);
    assert.equal(resources.cache(load("cache: { enabled: false }"), logger), null);
    assert.equal(resources.ledger(resized, logger), ledger);
  } finally {
    await resources.close();
  }
});

Deno.test("memory cache: llm-gateway's maxSize alone bounds bytes, not entries; max_entries or neither: 10,000", async () => {
  const resources = createStateResources({ now: () => 0 });
  const fill = (cache: NonNullable<ReturnType<typeof resources.cache>>) => {
    for (let i = 0; i <= 10_000; i++) cache.set(`k${i}`, "v", 60_000);
    return cache.get("k0");
  };
  try {
    const sized = resources.cache(load("cache: { enabled: true, max_size_mb: 512 }"), logger);
    assert.ok(sized);
    assert.equal(await fill(sized), "v");
    for (
      const text of [
        "cache: { enabled: true }",
        "cache: { enabled: true, max_size_mb: 512, max_entries: 10000 }",
      ]
    ) {
      const capped = resources.cache(load(text), logger);
      assert.ok(capped);
      assert.equal(await fill(capped), null, text);
    }
  } finally {
    await resources.close();
  }
});
