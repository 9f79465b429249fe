/**
 * llm-proxy's degraded signal is one contract on every route: 503, `X-Llm-Proxy-Error-Class:
 * provider_degraded` and the exact llm-proxy body (plus a top-level `message` and
 * `x-amzn-errortype` on /bedrock). Each route is driven the way its users do it, with the
 * SDK that speaks it, against a provider that keeps answering 503. The breaker's transient
 * retry happens although `routing.failover` is disabled.
 */
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { ConverseCommand } from "@aws-sdk/client-bedrock-runtime";
import { ApiError, GoogleGenAI } from "@google/genai";
import OpenAI from "openai";
import { bedrockClientVia, signedBedrockHeaders } from "../fakes/bedrock_client.ts";
import { startFakeAnthropic } from "../fakes/fake_anthropic.ts";
import { startFakeBedrock } from "../fakes/fake_bedrock.ts";
import { startFakeGemini } from "../fakes/fake_gemini.ts";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway } from "../helpers/in_process.ts";
import { chatBody } from "./daemon.ts";

const MARKER = "[LLM_PROXY_PROVIDER_DEGRADED]";
const message = (provider: string) =>
  `${MARKER} Provider ${provider} is currently degraded or unavailable. Please try again later.`;
/** llm-proxy's body, byte for byte. */
const signal = (provider: string) =>
  `{"error":{"message":"${
    message(provider)
  }","type":"provider_degraded","code":"provider_degraded"}}`;

const BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

Deno.test("the degraded signal is llm-proxy's, byte for byte, on every route and SDK", async (t) => {
  const openai = startFakeUpstream();
  const anthropic = startFakeAnthropic();
  const gemini = startFakeGemini();
  const bedrock = startFakeBedrock("us-west-2");
  openai.script({ kind: "json", status: 503, body: { error: { message: "overloaded" } } });
  anthropic.script({ errorStatus: 529, errorFixture: "error_529" });
  gemini.script({ errorStatus: 503, errorFixture: "error_503" });
  bedrock.script({
    error: { status: 503, type: "ServiceUnavailableException", message: "Bedrock is down" },
  });
  const gw = startGateway(`
providers:
  openai: { base_url: "${openai.url}/v1", keys: [{ key: sk-openai-000001 }] }
  anthropic: { base_url: "${anthropic.url}/v1", keys: [{ key: sk-ant-000002 }] }
  gemini: { base_url: "${gemini.url}/v1beta", keys: [{ key: AIza-configured-000003 }] }
  bedrock: { enabled: true, region: us-west-2, endpoint: "${bedrock.url}" }
routing:
  failover:
    enabled: false
    backoff: { initial: 1ms, max: 2ms }
features:
  circuit_breaker:
    enabled: true
    failure_threshold: 1000
    max_transient_retries: 1
`);
  /** Every degraded answer: status, header, the provider and attempts, and its raw body. */
  const check = async (res: Response, provider: string) => {
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("x-llm-proxy-error-class"), "provider_degraded");
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.equal(res.headers.get("x-pilotfish-provider"), provider);
    assert.equal(res.headers.get("x-pilotfish-attempts"), "2", "one transient retry");
    return await res.text();
  };
  try {
    await t.step("/v1/chat/completions: body exact; the openai SDK error carries it", async () => {
      const before = openai.requests.length;
      const res = await gw.request("/v1/chat/completions", {
        method: "POST",
        body: chatBody("openai/gpt-4o"),
      });
      assert.equal(await check(res, "openai"), signal("openai"));
      assert.equal(res.headers.get("x-pilotfish-model"), "gpt-4o");
      assert.equal(openai.requests.length, before + 2, "retried although failover is off");

      const client = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "unused", maxRetries: 0 });
      const err = await client.chat.completions.create({
        model: "openai/gpt-4o",
        messages: [{ role: "user", content: "hi" }],
      }).catch((e: unknown) => e);
      assert.ok(err instanceof OpenAI.APIError, String(err));
      assert.equal(err.status, 503);
      assert.ok(err.message.includes(MARKER), err.message);
      assert.deepEqual(err.error, JSON.parse(signal("openai")).error);
      assert.equal(err.headers?.get("x-llm-proxy-error-class"), "provider_degraded");
    });

    await t.step("/v1/messages: the same body, not Anthropic's envelope", async () => {
      const res = await gw.request("/v1/messages", {
        method: "POST",
        body: JSON.stringify({
          model: "anthropic/claude-x",
          max_tokens: 50,
          messages: [{ role: "user", content: "hi" }],
        }),
      });
      assert.equal(await check(res, "anthropic"), signal("anthropic"));
      assert.equal(res.headers.get("x-pilotfish-model"), "claude-x");

      const client = new Anthropic({ baseURL: gw.url(""), apiKey: "unused", maxRetries: 0 });
      const err = await client.messages.create({
        model: "anthropic/claude-x",
        max_tokens: 50,
        messages: [{ role: "user", content: "hi" }],
      }).catch((e: unknown) => e);
      assert.ok(err instanceof Anthropic.APIError, String(err));
      assert.equal(err.status, 503);
      assert.ok(err.message.includes(MARKER), err.message);
      assert.deepEqual(err.error, JSON.parse(signal("anthropic")));
    });

    await t.step("/anthropic/v1/messages (passthrough): the Anthropic SDK sees it", async () => {
      const before = anthropic.requests.length;
      const client = new Anthropic({
        baseURL: gw.url("/anthropic"),
        apiKey: "sk-ant-client",
        maxRetries: 0,
      });
      const err = await client.messages.create({
        model: "claude-sonnet-4-5",
        max_tokens: 50,
        messages: [{ role: "user", content: "hi" }],
      }).catch((e: unknown) => e);
      assert.ok(err instanceof Anthropic.APIError, String(err));
      assert.equal(err.status, 503);
      assert.ok(err.message.includes(MARKER), err.message);
      assert.deepEqual(err.error, JSON.parse(signal("anthropic")));
      assert.equal(anthropic.requests.length, before + 2);
      const res = await gw.request("/anthropic/v1/messages", {
        method: "POST",
        headers: { "x-api-key": "sk-ant-client", "anthropic-version": "2023-06-01" },
        body: JSON.stringify({ model: "claude-sonnet-4-5", max_tokens: 5, messages: [] }),
      });
      assert.equal(await check(res, "anthropic"), signal("anthropic"));
      assert.equal(res.headers.get("x-pilotfish-model"), "claude-sonnet-4-5");
    });

    await t.step("/gemini (passthrough): the Google GenAI SDK sees it", async () => {
      const client = new GoogleGenAI({
        apiKey: "client-key",
        httpOptions: { baseUrl: gw.url("/gemini") },
      });
      const err = await client.models.generateContent({
        model: "gemini-2.5-flash",
        contents: "hi",
      }).catch((e: unknown) => e);
      assert.ok(err instanceof ApiError, String(err));
      assert.equal(err.status, 503);
      assert.ok(err.message.includes(MARKER), err.message);
      const res = await fetch(
        gw.url("/gemini/v1beta/models/gemini-2.5-flash:generateContent"),
        { method: "POST", body: JSON.stringify({ contents: [{ parts: [{ text: "hi" }] }] }) },
      );
      assert.equal(await check(res, "gemini"), signal("gemini"));
      assert.equal(res.headers.get("x-pilotfish-model"), "gemini-2.5-flash");
    });

    await t.step("/openai/v1/* and /native/{provider}/*: the same bytes", async () => {
      for (const path of ["/openai/v1/chat/completions", "/native/openai/chat/completions"]) {
        const res = await gw.request(path, {
          method: "POST",
          headers: { authorization: "Bearer sk-client" },
          body: chatBody("gpt-4o"),
        });
        assert.equal(await check(res, "openai"), signal("openai"), path);
        assert.equal(res.headers.get("x-pilotfish-model"), "gpt-4o");
      }
    });

    await t.step(
      "/bedrock: the same object plus a top-level message; the AWS SDK raises ServiceUnavailableException",
      async () => {
        const client = bedrockClientVia(gw.url(""), { prefix: "/bedrock" });
        const err = await client.send(
          new ConverseCommand({
            modelId: BEDROCK_MODEL,
            messages: [{ role: "user", content: [{ text: "Hello" }] }],
          }),
        ).catch((e: unknown) => e);
        assert.ok(err instanceof Error, String(err));
        assert.equal(err.name, "ServiceUnavailableException");
        assert.ok(err.message.includes(MARKER), err.message);
        const meta = (err as Error & {
          $metadata?: { httpStatusCode?: number; requestId?: string };
        }).$metadata;
        assert.equal(meta?.httpStatusCode, 503);
        // The gateway's request id, where AWS puts its own.
        assert.match(meta?.requestId ?? "", /\S/);
        // The raw bytes, from a hand-signed request (the fake Bedrock checks every signature).
        const path = `/model/${encodeURIComponent(BEDROCK_MODEL)}/converse`;
        const body = JSON.stringify({ messages: [{ role: "user", content: [{ text: "Hi" }] }] });
        const headers = await signedBedrockHeaders(path, body);
        const before = bedrock.requests.length;
        const res = await gw.request(`/bedrock${path}`, { method: "POST", headers, body });
        assert.equal(bedrock.requests.length, before + 2);
        assert.ok(bedrock.requests.slice(before).every((r) => r.signatureValid));
        assert.equal(res.headers.get("x-amzn-errortype"), "ServiceUnavailableException");
        const text = await check(res, "bedrock");
        assert.equal(
          text,
          `{"error":{"message":"${
            message("bedrock")
          }","type":"provider_degraded","code":"provider_degraded"},"message":"${
            message("bedrock")
          }"}`,
        );
        assert.equal(res.headers.get("x-pilotfish-model"), BEDROCK_MODEL);
      },
    );
  } finally {
    await gw.close();
    await openai.close();
    await anthropic.close();
    await gemini.close();
    await bedrock.close();
  }
});
