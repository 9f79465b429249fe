import assert from "node:assert/strict";
import { Hono } from "hono";
import { GatewayError } from "../../../src/errors.ts";
import { parseConfigText } from "../../../src/config/mod.ts";
import { breakerTiming, createMemoryBreakerStore } from "../../../src/breaker/mod.ts";
import { createRoutingState } from "../../../src/routing/mod.ts";
import { buildRuntime } from "../../../src/runtime.ts";
import type { AppEnv } from "../../../src/routes/mod.ts";
import type { ErrorFormat, Exchange } from "../../../src/pipeline/exchange.ts";
import { noUsage } from "../../../src/streaming/mod.ts";
import { renderError } from "../../../src/server/middleware/error_handler.ts";
import { requestContext } from "../../../src/server/middleware/request_context.ts";

const DEGRADED = new GatewayError(
  "provider_degraded",
  "[MARK] Provider p is currently degraded or unavailable. Please try again later.",
  { headers: { "x-llm-proxy-error-class": "provider_degraded" } },
);
const BODY =
  '{"error":{"message":"[MARK] Provider p is currently degraded or unavailable. Please try again later.","type":"provider_degraded","code":"provider_degraded"}}';

type Facts = Partial<Pick<Exchange, "provider" | "model" | "attempts" | "errorFormat">>;

const RUNTIME = (() => {
  const { config } = parseConfigText("providers: {}", () => undefined, "t.yaml");
  return buildRuntime(config, 1, {
    fetch,
    random: Math.random,
    routing: createRoutingState(),
    breakerStore: createMemoryBreakerStore(breakerTiming(config.features.circuit_breaker)),
    write: () => {},
  });
})();

/** An app whose every route throws `err` after noting `facts` on the exchange. */
function appThrowing(err: unknown, facts: Facts = {}) {
  const app = new Hono<AppEnv>();
  app.use(requestContext(() => RUNTIME));
  app.all("*", (c) => {
    Object.assign(c.get("exchange"), facts);
    throw err;
  });
  app.onError(renderError);
  return app;
}

Deno.test("renderError() the degraded signal is one body in every route's format", async () => {
  const formats: [string, ErrorFormat | undefined][] = [
    ["/v1/chat/completions", undefined],
    ["/v1/messages", "anthropic_json"],
    ["/anthropic/v1/messages", "anthropic_json"],
    ["/gemini/v1beta/models/x:generateContent", "google_rpc"],
    ["/openai/v1/chat/completions", "openai_json"],
    ["/native/groq/chat/completions", "openai_json"],
    ["/health", "plain"],
  ];
  for (const [path, errorFormat] of formats) {
    const res = await appThrowing(DEGRADED, errorFormat ? { errorFormat } : {}).request(path);
    assert.equal(res.status, 503, path);
    assert.equal(res.headers.get("x-llm-proxy-error-class"), "provider_degraded", path);
    assert.equal(res.headers.get("x-amzn-errortype"), null, path);
    assert.equal(await res.text(), BODY, path);
  }
  const res = await appThrowing(DEGRADED, { errorFormat: "aws_json" }).request("/bedrock/model/m");
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("x-amzn-errortype"), "ServiceUnavailableException");
  // The request's id, as AWS sends its own: the SDKs' `$metadata.requestId`.
  assert.equal(res.headers.get("x-amzn-requestid"), res.headers.get("x-request-id"));
  assert.ok(res.headers.get("x-amzn-requestid"));
  const text = await res.text();
  assert.ok(text.startsWith(BODY.slice(0, -1) + ',"message":"[MARK] Provider p'), text);
  const json = JSON.parse(text);
  assert.equal(json.message, json.error.message, "AWS SDKs read the top-level message");
});

Deno.test("renderError() other errors keep their route's envelope", async () => {
  const err = new GatewayError("invalid_request", "bad");
  const anthropic = await (await appThrowing(err, { errorFormat: "anthropic_json" }).request("/x"))
    .json();
  assert.equal(anthropic.type, "error");
  const gemini = await (await appThrowing(err, { errorFormat: "google_rpc" }).request("/x")).json();
  assert.equal(gemini.error.status, "INVALID_ARGUMENT");
  const bedrock = await appThrowing(err, { errorFormat: "aws_json" }).request("/x");
  assert.deepEqual(await bedrock.json(), { message: "bad" });
  assert.equal(bedrock.headers.get("x-amzn-errortype"), "ValidationException");
});

Deno.test("renderError() names the chosen provider, model and attempts on errors", async () => {
  const upstream = new GatewayError("rate_limited", "slow down", {
    status: 429,
    upstreamStatus: 429,
  });
  let res = await appThrowing(upstream, { provider: "p", model: "m" }).request("/v1/x");
  assert.equal(res.status, 429);
  assert.equal(res.headers.get("x-pilotfish-provider"), "p");
  assert.equal(res.headers.get("x-pilotfish-model"), "m");
  assert.equal(res.headers.get("x-pilotfish-attempts"), "1", "an upstream answer: one call");
  await res.body?.cancel();

  // Refused before any call (e.g. oversize body on a passthrough route): zero attempts.
  res = await appThrowing(new GatewayError("payload_too_large", "big"), { provider: "p" })
    .request("/openai/v1/x");
  assert.equal(res.headers.get("x-pilotfish-provider"), "p");
  assert.equal(res.headers.get("x-pilotfish-model"), null, "no model known");
  assert.equal(res.headers.get("x-pilotfish-attempts"), "0");
  await res.body?.cancel();

  // The route's attempt log counts; the failover's own headers win over the context.
  const attempts = [1, 2, 3].map(() => ({
    provider: "p",
    model: "m",
    key_id: null,
    status: 502,
    duration_ms: 1,
    outcome: "retry" as const,
    first_chunk_ms: null,
    usage: noUsage(),
  }));
  res = await appThrowing(
    new GatewayError("upstream_error", "bad gateway", {
      upstreamStatus: 502,
      headers: { "x-pilotfish-provider": "q", "x-pilotfish-model": "n" },
    }),
    { provider: "p", model: "m", attempts },
  ).request("/v1/x");
  assert.equal(res.headers.get("x-pilotfish-provider"), "q");
  assert.equal(res.headers.get("x-pilotfish-model"), "n");
  assert.equal(res.headers.get("x-pilotfish-attempts"), "3");
  await res.body?.cancel();

  // No provider chosen (unknown model, bad JSON): no provider headers at all.
  res = await appThrowing(new GatewayError("not_found", "Unknown model"), { model: "gpt-9" })
    .request("/v1/x");
  assert.equal(res.status, 404);
  for (const h of ["x-pilotfish-provider", "x-pilotfish-model", "x-pilotfish-attempts"]) {
    assert.equal(res.headers.get(h), null, h);
  }
  await res.body?.cancel();
});

Deno.test("renderError() a request_timeout is a 408 in every route's format", async () => {
  const err = () =>
    new GatewayError("request_timeout", "The request body did not arrive in time", {
      headers: { connection: "close" },
    });
  const cases: [
    string,
    ErrorFormat,
    (body: unknown, res: Response) => void,
  ][] = [
    ["/v1/chat/completions", "openai_json", (body) => {
      assert.deepEqual(body, {
        error: {
          message: "The request body did not arrive in time",
          type: "invalid_request_error",
          param: null,
          code: "request_timeout",
        },
      });
    }],
    ["/v1/messages", "anthropic_json", (body) => {
      assert.deepEqual(body, {
        type: "error",
        error: {
          type: "invalid_request_error",
          message: "The request body did not arrive in time",
        },
      });
    }],
    ["/gemini/v1beta/models/g:generateContent", "google_rpc", (body) => {
      assert.deepEqual(body, {
        error: {
          code: 408,
          message: "The request body did not arrive in time",
          status: "DEADLINE_EXCEEDED",
        },
      });
    }],
    ["/bedrock/model/m/invoke", "aws_json", (body, res) => {
      // The AWS name botocore and the JS SDK retry as transient (not ModelTimeoutException,
      // which blames the model).
      assert.equal(res.headers.get("x-amzn-errortype"), "RequestTimeoutException");
      assert.deepEqual(body, { message: "The request body did not arrive in time" });
    }],
  ];
  for (const [path, errorFormat, check] of cases) {
    const res = await appThrowing(err(), { errorFormat }).request(path, { method: "POST" });
    assert.equal(res.status, 408, path);
    assert.equal(res.headers.get("connection"), "close", path);
    check(await res.json(), res);
  }
});
