import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { buildRuntime } from "../../src/runtime.ts";
import { createApp } from "../../src/server/app.ts";
import { createRoutingState } from "../../src/routing/mod.ts";
import { breakerTiming, createMemoryBreakerStore } from "../../src/breaker/mod.ts";
import { observabilityFor, preloadTelemetry } from "../../src/telemetry/hub.ts";

const yamlOf = (extra: string) => `
providers:
  mock: {}
${extra}`;

Deno.test("observability across a reload: counters carry on, the generation gauge moves, the last dispose closes it", async () => {
  const first = parseConfigText(yamlOf(""), () => undefined, "a.yaml").config;
  const second = parseConfigText(yamlOf("metrics: { per_key: true }\n"), () => undefined, "b.yaml")
    .config;
  await preloadTelemetry(first);
  const deps = {
    fetch: globalThis.fetch,
    random: Math.random,
    routing: createRoutingState(),
    breakerStore: createMemoryBreakerStore(breakerTiming(first.features.circuit_breaker)),
    write: () => {},
  };
  let runtime = buildRuntime(first, 1, deps);
  const app = createApp({ runtime: () => runtime, isReady: () => true });
  const chat = async () => {
    const res = await app.fetch(
      new Request("http://localhost/v1/chat/completions", {
        method: "POST",
        body: JSON.stringify({ model: "mock/echo", messages: [{ role: "user", content: "x" }] }),
      }),
    );
    assert.equal(res.status, 200);
    await res.body?.cancel();
  };
  const metrics = async () =>
    await (await app.fetch(new Request("http://localhost/metrics"))).text();
  await chat();
  assert.match(await metrics(), /^pilotfish_config_generation\{hash="[0-9a-f]{12}"\} 1$/m);
  const previous = runtime;
  runtime = buildRuntime(second, 2, deps);
  assert.equal(runtime.observability, previous.observability, "one per process");
  previous.retire();
  await previous.dispose();
  await chat();
  const text = await metrics();
  assert.match(text, /^llm_gateway_requests_total 2$/m, "counted on both generations");
  assert.match(text, /^pilotfish_config_generation\{hash="[0-9a-f]{12}"\} 2$/m);
  assert.equal(text.match(/^pilotfish_config_generation\{/gm)?.length, 1, "the current one only");
  assert.match(text, /app_key="none"/, "the new generation's per_key applies");
  runtime.retire();
  await runtime.dispose();
  const fresh = observabilityFor(deps.routing, { now: Date.now, beat: () => ({}) });
  assert.notEqual(fresh, runtime.observability, "closed with its last generation");
  await deps.breakerStore.close();
});
