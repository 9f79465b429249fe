/**
 * Every adapter sends the attempt's W3C trace context (`CallBasics.trace`) with its upstream
 * call (Bedrock's, which must also stay signed, is in bedrock/adapter_test.ts).
 */
import assert from "node:assert/strict";
import type { CallBasics } from "../../src/providers/mod.ts";
import { adapterWithFetch, headersOf, jsonResponse } from "../helpers/fake_fetch.ts";
import { callBasics } from "../helpers/calls.ts";

const CONFIG = `
providers:
  oa: { type: openai, base_url: "http://oa.test/v1", keys: [{ key: sk-oa-0001 }] }
  an: { type: anthropic, base_url: "http://an.test/v1", keys: [{ key: sk-an-0001 }] }
  ge: { type: gemini, base_url: "http://ge.test/v1beta", keys: [{ key: ge-key-0001 }] }
`;

const TRACE = {
  traceparent: "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01",
  tracestate: "rojo=00f067aa0ba902b7",
};

Deno.test("each adapter sends the attempt's traceparent and tracestate upstream", async (t) => {
  // Bedrock (signed) is checked with its fake, which verifies the signature too.
  for (const provider of ["oa", "an", "ge"]) {
    await t.step(provider, async () => {
      // Any answer will do: the request's headers are what is checked.
      const { adapter, requests } = adapterWithFetch(
        { configText: CONFIG, configName: "trace.yaml" },
        () => jsonResponse({ error: { message: "no" } }, 400),
        provider,
      );
      const basics: CallBasics = { ...callBasics(null), trace: TRACE };
      await adapter.chat({
        ...basics,
        body: { model: "m", messages: [{ role: "user", content: "Hi" }] },
        stream: false,
      }, "m").then((o) => o.kind === "stream" ? o.body.cancel() : undefined, () => {});
      assert.ok(requests.length > 0);
      for (const r of requests) {
        const h = headersOf(r);
        assert.equal(h.get("traceparent"), TRACE.traceparent, r.url);
        assert.equal(h.get("tracestate"), TRACE.tracestate, r.url);
      }
    });
  }

  await t.step("untraced: no trace context is made up", async () => {
    const { adapter, requests } = adapterWithFetch(
      { configText: CONFIG, configName: "trace.yaml" },
      () => jsonResponse({ error: { message: "no" } }, 400),
      "oa",
    );
    await adapter.chat({
      ...callBasics(null),
      body: { model: "m", messages: [{ role: "user", content: "Hi" }] },
      stream: false,
    }, "m").catch(() => {});
    assert.equal(headersOf(requests[0]).get("traceparent"), null);
  });
});
