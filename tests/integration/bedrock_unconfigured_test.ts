/**
 * Bedrock signing with no AWS credentials: the gateway is not set up to call it, which says
 * nothing of Bedrock's health. The caller gets the 500 saying what to set, the breaker counts
 * nothing, and failover goes straight to the next target.
 */
import assert from "node:assert/strict";
import { type InProcessGateway, startGateway } from "../helpers/in_process.ts";
import { signWithEnv } from "../providers/bedrock/helpers.ts";

const BREAKER = `
features:
  circuit_breaker:
    enabled: true
    failure_threshold: 2
    cooldown_seconds: 60
    max_transient_retries: 1
`;

/** A gateway whose Bedrock provider signs with no credentials (whatever this process has). */
function gateway(extra: string): InProcessGateway {
  const gw = startGateway(`
providers:
  bedrock: { sign: true, region: us-west-2, endpoint: "http://127.0.0.1:9" }
  mock: {}
routing:
  failover:
    backoff: { initial: 1ms, max: 2ms }
  models:
    smart: { providers: [bedrock/model-x, mock/echo] }
${extra}`);
  signWithEnv(gw.runtime, "bedrock", {});
  return gw;
}

async function chat(gw: InProcessGateway, model: string) {
  const id = crypto.randomUUID();
  const res = await gw.request("/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json", "x-request-id": id },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
  });
  const body = await res.json();
  await gw.waitForLog(`"request_id":"${id}"`);
  const log = JSON.parse(gw.logs.find((l) => l.includes(`"request_id":"${id}"`))!);
  return { res, body, log };
}

const NO_CREDENTIALS = /no AWS credentials were found \(set AWS_ACCESS_KEY_ID/;

Deno.test("breaker on, no AWS credentials: the credentials 500 every time, never counted, never retried", async () => {
  const gw = gateway(BREAKER);
  try {
    for (let i = 0; i < 3; i++) {
      const { res, body, log } = await chat(gw, "bedrock/model-a");
      assert.equal(res.status, 500, JSON.stringify(body));
      assert.equal(res.headers.get("x-llm-proxy-error-class"), null);
      assert.match(body.error.message, NO_CREDENTIALS);
      assert.equal(res.headers.get("x-pilotfish-attempts"), "0", "no call was made");
      assert.equal(log.attempts.length, 1, "not retried on the same provider");
      assert.equal(log.attempts[0].no_call, true);
    }
    const h = await (await gw.request("/health")).json();
    assert.equal(h.circuit_breaker.providers.bedrock.state, "closed");
    assert.equal(h.circuit_breaker.providers.bedrock.failures, 0);
  } finally {
    await gw.close();
  }
});

Deno.test("breaker on, no AWS credentials: a routing model goes straight to its next target", async () => {
  const gw = gateway(BREAKER);
  try {
    for (let i = 0; i < 2; i++) {
      const { res, body, log } = await chat(gw, "smart");
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.equal(res.headers.get("x-pilotfish-provider"), "mock");
      assert.equal(body.choices[0].message.content, "hi");
      assert.deepEqual(
        log.attempts.map((a: { provider: string; outcome: string }) => [a.provider, a.outcome]),
        [["bedrock", "next"], ["mock", "ok"]],
      );
    }
    const h = await (await gw.request("/health")).json();
    assert.equal(h.circuit_breaker.providers.bedrock.failures, 0);
  } finally {
    await gw.close();
  }
});

Deno.test("breaker off, no AWS credentials: the 500 says what to set", async () => {
  const gw = gateway("");
  try {
    const { res, body } = await chat(gw, "bedrock/model-a");
    assert.equal(res.status, 500);
    assert.match(body.error.message, NO_CREDENTIALS);
    const routed = await chat(gw, "smart");
    assert.equal(routed.res.status, 200);
    assert.equal(routed.res.headers.get("x-pilotfish-provider"), "mock");
  } finally {
    await gw.close();
  }
});
