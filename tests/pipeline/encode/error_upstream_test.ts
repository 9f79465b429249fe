/**
 * An upstream's failure on a route of another format: OpenAI's `type` (closest by status) with
 * the provider's own error name as `code` on OpenAI-format routes, Anthropic's `type` on
 * `/v1/messages`; the status kept. Fake upstreams answer in each provider's wire format.
 */
import assert from "node:assert/strict";
import { startFakeAnthropic } from "../../fakes/fake_anthropic.ts";
import { startFakeGemini } from "../../fakes/fake_gemini.ts";
import { startFakeUpstream } from "../../fakes/fake_upstream.ts";
import { startGateway } from "../../helpers/in_process.ts";

const post = (body: unknown) => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});
const chat = (model: string) => post({ model, messages: [{ role: "user", content: "hi" }] });
const responses = (model: string) => post({ model, input: "hi" });
const messages = (model: string) =>
  post({ model, max_tokens: 10, messages: [{ role: "user", content: "hi" }] });

Deno.test("upstream errors keep their own name as code, typed in the route's own vocabulary", async (t) => {
  const anthropic = startFakeAnthropic();
  const gemini = startFakeGemini();
  const openai = startFakeUpstream();
  const gw = startGateway(`
providers:
  anthropic: { base_url: ${anthropic.url}/v1, keys: [{ key: sk-ant-1 }] }
  gemini: { base_url: ${gemini.url}, keys: [{ key: g-1 }] }
  compat: { type: openai, base_url: ${openai.url}/v1, keys: [{ key: sk-1 }] }
routing:
  failover: { enabled: false }
`);
  const errorOf = async (path: string, init: RequestInit) => {
    const res = await gw.request(path, init);
    return { status: res.status, body: await res.json() };
  };
  try {
    const anthropicCases: [number, string, string][] = [
      [529, "error_529", "api_error"],
      [429, "error_429", "rate_limit_error"],
      [400, "error_400", "invalid_request_error"],
    ];
    for (const [status, fixture, openAIType] of anthropicCases) {
      await t.step(`Anthropic ${status} on /v1/chat/completions and /v1/responses`, async () => {
        anthropic.script({ errorStatus: status, errorFixture: fixture });
        const anthropicType = (await (await Deno.readTextFile(
          new URL(`../../fixtures/anthropic/${fixture}.json`, import.meta.url),
        ).then(JSON.parse))).error.type;
        for (
          const [path, body] of [
            ["/v1/chat/completions", chat("anthropic/claude-sonnet-4-5")],
            ["/v1/responses", responses("anthropic/claude-sonnet-4-5")],
          ] as const
        ) {
          const got = await errorOf(path, body);
          assert.equal(got.status, status, path);
          assert.equal(got.body.error.type, openAIType, path);
          assert.equal(got.body.error.code, anthropicType, path);
        }
      });
    }
    await t.step("Anthropic 529 on /v1/messages stays overloaded_error", async () => {
      anthropic.script({ errorStatus: 529, errorFixture: "error_529" });
      const got = await errorOf("/v1/messages", messages("anthropic/claude-sonnet-4-5"));
      assert.equal(got.status, 529);
      assert.deepEqual(got.body.error.type, "overloaded_error");
    });
    await t.step(
      "Gemini 429 on /v1/chat/completions: rate_limit_error, RESOURCE_EXHAUSTED",
      async () => {
        gemini.script({ errorStatus: 429, errorFixture: "error_429" });
        const got = await errorOf("/v1/chat/completions", chat("gemini/gemini-2.5-flash"));
        assert.equal(got.status, 429);
        assert.equal(got.body.error.type, "rate_limit_error");
        assert.equal(got.body.error.code, "RESOURCE_EXHAUSTED");
      },
    );
    await t.step("Gemini and OpenAI failures on /v1/messages: Anthropic's types", async () => {
      gemini.script({ errorStatus: 429, errorFixture: "error_429" });
      const g = await errorOf("/v1/messages", messages("gemini/gemini-2.5-flash"));
      assert.equal(g.status, 429);
      assert.deepEqual(g.body.type, "error");
      assert.equal(g.body.error.type, "rate_limit_error");
      openai.script({
        kind: "json",
        status: 404,
        body: {
          error: {
            message: "no such model",
            type: "invalid_request_error",
            code: "model_not_found",
          },
        },
      });
      const o = await errorOf("/v1/messages", messages("compat/gpt-x"));
      assert.equal(o.status, 404);
      assert.equal(o.body.error.type, "not_found_error");
    });
    await t.step(
      "an OpenAI-format upstream's own type and code are relayed as they were",
      async () => {
        openai.script({
          kind: "json",
          status: 429,
          body: { error: { message: "slow down", type: "requests", code: "rate_limit_exceeded" } },
        });
        const got = await errorOf("/v1/chat/completions", chat("compat/gpt-x"));
        assert.equal(got.body.error.type, "requests");
        assert.equal(got.body.error.code, "rate_limit_exceeded");
      },
    );
  } finally {
    await gw.close();
    await Promise.all([anthropic.close(), gemini.close(), openai.close()]);
  }
});

Deno.test("a 424 from upstream (Bedrock's ModelErrorException) is the model's failure, not the caller's", async () => {
  const { GatewayError } = await import("../../../src/errors.ts");
  const { toOpenAIError } = await import("../../../src/schema/openai.ts");
  const { toAnthropicError } = await import("../../../src/schema/anthropic.ts");
  const err = new GatewayError("upstream_error", "The model failed", {
    status: 424,
    upstreamCode: "ModelErrorException",
  });
  assert.equal(toOpenAIError(err).error.type, "api_error");
  assert.equal(toOpenAIError(err).error.code, "ModelErrorException");
  assert.equal(toAnthropicError(err).error.type, "api_error");
});
