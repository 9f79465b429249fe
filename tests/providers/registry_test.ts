import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { GatewayError } from "../../src/errors.ts";
import { createAdapters } from "../../src/providers/mod.ts";
import { createRedactor } from "../../src/telemetry/mod.ts";
import { SANITIZE } from "../helpers/sanitize.ts";

Deno.test("createAdapters() builds one adapter per enabled provider", SANITIZE, () => {
  const { config } = parseConfigText(
    [
      "providers:",
      "  openai: {}",
      "  groq: {}",
      "  mock: {}",
      "  anthropic: {}",
      "  gemini: {}",
      "  off:",
      "    base_url: http://127.0.0.1:1/v1",
      "    enabled: false",
    ].join("\n"),
    () => undefined,
    "r",
  );
  const adapters = createAdapters(config, {
    fetch: () => Promise.reject(new Error("no fetch")),
    redact: createRedactor([]),
    random: Math.random,
  });
  assert.deepEqual([...adapters.keys()].sort(), ["anthropic", "gemini", "groq", "mock", "openai"]);
  assert.equal(adapters.get("gemini")?.type, "gemini");
  assert.ok(adapters.get("gemini")?.embeddings, "Gemini has an embeddings API");
  assert.equal(adapters.get("groq")?.type, "openai");
  assert.equal(adapters.get("mock")?.type, "mock");
});

Deno.test(
  "createAdapters() answers 400 (never a 5xx the SDKs would retry) for providers without a unified adapter",
  SANITIZE,
  async () => {
    const { config } = parseConfigText("providers:\n  bedrock: {}\n", () => undefined, "r");
    const adapter = createAdapters(config, {
      fetch: () => Promise.reject(new Error("no fetch")),
      redact: createRedactor([]),
      random: Math.random,
    }).get("bedrock");
    assert.ok(adapter);
    await assert.rejects(
      () =>
        adapter.chat({
          body: {
            model: "anthropic.claude-sonnet-4-5",
            messages: [{ role: "user", content: "hi" }],
          },
          stream: false,
          signal: new AbortController().signal,
          timeoutMs: 1_000,
          apiKey: null,
          clientAuthorization: null,
        }, "anthropic.claude-sonnet-4-5"),
      (err: unknown) => {
        assert.ok(err instanceof GatewayError);
        assert.equal(err.code, "invalid_request");
        assert.equal(err.status, 400);
        assert.equal(err.info.provider, "bedrock");
        return true;
      },
    );
  },
);
