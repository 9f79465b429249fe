import assert from "node:assert/strict";
import { signedBedrockHeaders } from "../fakes/bedrock_client.ts";
import { startFakeBedrock, TEST_CREDENTIALS } from "../fakes/fake_bedrock.ts";
import { type InProcessGateway, startGateway } from "../helpers/in_process.ts";
import { signWithEnv } from "../providers/bedrock/helpers.ts";

const PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
/** The same model named three ways: profile id, profile ARN, foundation-model ARN. */
const NAMES = [
  PROFILE,
  `arn:aws:bedrock:us-west-2:123456789012:inference-profile/${PROFILE}`,
  "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
];
const ADMIN = "admin-secret-token";
const AWS_ENV = {
  AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
  AWS_SESSION_TOKEN: TEST_CREDENTIALS.sessionToken,
};
/**
 * A static key whose daily budget ($0.00015) is above what one Converse answer of the fake
 * costs (11 in, 4 out at the US profile's rates, 10 % over the global ones: $0.0001023) and
 * below two.
 */
const APP_KEY = "pf_static_bedrock_budget_key_0001";

const converse = JSON.stringify({ messages: [{ role: "user", content: [{ text: "Hello" }] }] });

/** A Converse call on `/bedrock/*`, signed for the real endpoint as an AWS SDK signs it. */
async function passthrough(
  gw: InProcessGateway,
  model: string,
  extra: Record<string, string> = {},
) {
  const path = `/model/${encodeURIComponent(model)}/converse`;
  const headers = await signedBedrockHeaders(path, converse);
  const res = await gw.request(`/bedrock${path}`, {
    method: "POST",
    headers: { ...headers, ...extra },
    body: converse,
  });
  await res.body?.cancel();
  return res;
}

async function totalCost(gw: InProcessGateway): Promise<number> {
  const res = await gw.request("/api/v1/usage", { headers: { authorization: `Bearer ${ADMIN}` } });
  return (await res.json()).total_cost;
}

Deno.test("Bedrock ARNs are priced as the model they name: cost header, usage API, budgets", async (t) => {
  const bedrock = startFakeBedrock("us-west-2");
  const gw = startGateway(`
server: { admin_token: ${ADMIN} }
providers:
  bedrock: { sign: true, region: us-west-2, endpoint: "${bedrock.url}" }
state: { backend: memory }
app_keys:
  enabled: true
  persistence: { enabled: false }
  keys: [{ key: ${APP_KEY}, budget: { daily_usd: 0.00015 } }]
`);
  signWithEnv(gw.runtime, "bedrock", AWS_ENV);
  try {
    await t.step("/bedrock/*: each name gets the plain id's cost header", async () => {
      const costs = [];
      for (const model of NAMES) {
        const res = await passthrough(gw, model);
        assert.equal(res.status, 200, model);
        costs.push(res.headers.get("x-pilotfish-cost-usd"));
      }
      assert.ok(costs[0], "the profile id is priced");
      assert.deepEqual(costs, [costs[0], costs[0], costs[0]]);
    });

    await t.step("/v1/chat/completions bedrock/<name>: the same cost for each name", async () => {
      const costs = [];
      for (const model of NAMES) {
        const res = await gw.request("/v1/chat/completions", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: `bedrock/${model}`,
            messages: [{ role: "user", content: "Hello" }],
          }),
        });
        assert.equal(res.status, 200, model);
        await res.body?.cancel();
        assert.equal(bedrock.requests.at(-1)?.signatureValid, true);
        costs.push(res.headers.get("x-pilotfish-cost-usd"));
      }
      assert.ok(costs[0], "the profile id is priced");
      assert.deepEqual(costs, [costs[0], costs[0], costs[0]]);
    });

    await t.step("the usage API counts their cost", async () => {
      // Six answers at $0.0001023 each.
      assert.ok(Math.abs(await totalCost(gw) - 6 * 0.0001023) < 1e-9);
    });

    await t.step("an app key's USD budget trips on ARN-named calls", async () => {
      const key = { "x-pilotfish-app-key": APP_KEY };
      assert.equal((await passthrough(gw, NAMES[1]!, key)).status, 200);
      assert.equal((await passthrough(gw, NAMES[2]!, key)).status, 200);
      const refused = await passthrough(gw, NAMES[1]!, key);
      assert.equal(refused.status, 429);
    });
  } finally {
    await gw.close();
    await bedrock.close();
  }
});
