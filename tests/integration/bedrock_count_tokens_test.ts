import assert from "node:assert/strict";
import { startFakeBedrock, TEST_CREDENTIALS } from "../fakes/fake_bedrock.ts";
import { startGateway } from "../helpers/in_process.ts";
import { signWithEnv } from "../providers/bedrock/helpers.ts";

const PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
/** What Bedrock CountTokens accepts: the base model id (a profile id gets a 400). */
const COUNTED = "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/count-tokens";

Deno.test("token counts for a Bedrock inference profile call CountTokens with its base model id", async (t) => {
  const bedrock = startFakeBedrock("us-west-2");
  const gw = startGateway(`
providers:
  bedrock: { sign: true, region: us-west-2, endpoint: "${bedrock.url}" }
`);
  signWithEnv(gw.runtime, "bedrock", {
    AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
    AWS_SESSION_TOKEN: TEST_CREDENTIALS.sessionToken,
  });
  const post = async (path: string, body: Record<string, unknown>) => {
    const res = await gw.request(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: await res.json(), headers: res.headers };
  };
  try {
    for (
      const model of [
        PROFILE,
        `arn:aws:bedrock:us-west-2:123456789012:inference-profile/${PROFILE}`,
      ]
    ) {
      await t.step(`/v1/messages/count_tokens, ${model}`, async () => {
        const r = await post("/v1/messages/count_tokens", {
          model: `bedrock/${model}`,
          messages: [{ role: "user", content: "Hello" }],
        });
        assert.equal(r.status, 200, JSON.stringify(r.json));
        assert.equal(r.headers.get("x-pilotfish-token-count"), "provider");
        assert.ok(r.json.input_tokens > 0);
        assert.equal(bedrock.requests.at(-1)?.rawPath, COUNTED);
        assert.equal(bedrock.requests.at(-1)?.signatureValid, true);
      });
    }
    await t.step("/v1/responses/input_tokens", async () => {
      const r = await post("/v1/responses/input_tokens", {
        model: `bedrock/${PROFILE}`,
        input: "Hello",
      });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(bedrock.requests.at(-1)?.rawPath, COUNTED);
    });
  } finally {
    await gw.close();
    await bedrock.close();
  }
});
