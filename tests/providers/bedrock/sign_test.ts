import assert from "node:assert/strict";
import { bedrockTarget, signBedrockRequest } from "../../../src/providers/bedrock/sign.ts";
import { startFakeBedrock, TEST_CREDENTIALS } from "../../fakes/fake_bedrock.ts";
import { SANITIZE } from "./helpers.ts";

const MODEL_PATH = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse";

Deno.test("bedrockTarget() signs what AWS will see", async (t) => {
  await t.step("the regional host: signed as is", () => {
    assert.deepEqual(
      bedrockTarget(
        "https://bedrock-runtime.eu-central-1.amazonaws.com",
        "eu-central-1",
        MODEL_PATH,
      ),
      {
        url: `https://bedrock-runtime.eu-central-1.amazonaws.com${MODEL_PATH}`,
        host: "bedrock-runtime.eu-central-1.amazonaws.com",
        path: MODEL_PATH,
      },
    );
  });
  await t.step("a VPC endpoint: its own host is signed", () => {
    const vpce = "https://vpce-0abc-xyz.bedrock-runtime.us-west-2.vpce.amazonaws.com";
    assert.equal(bedrockTarget(vpce, "us-west-2", MODEL_PATH).host, new URL(vpce).host);
  });
  await t.step("a hop in front of AWS: the regional host and the bare operation path", () => {
    assert.deepEqual(bedrockTarget("http://127.0.0.1:9002/bedrock/", "us-west-2", MODEL_PATH), {
      url: `http://127.0.0.1:9002/bedrock${MODEL_PATH}`,
      host: "bedrock-runtime.us-west-2.amazonaws.com",
      path: MODEL_PATH,
    });
  });
});

Deno.test(
  "signBedrockRequest() produces a signature the SigV4-verifying fake accepts",
  SANITIZE,
  async (t) => {
    const bedrock = startFakeBedrock("us-west-2");
    try {
      const target = bedrockTarget(bedrock.url, "us-west-2", MODEL_PATH);
      const body = JSON.stringify({ messages: [{ role: "user", content: [{ text: "Hello" }] }] });
      const headers = await signBedrockRequest({
        region: "us-west-2",
        credentials: { ...TEST_CREDENTIALS, source: "environment" },
        target,
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body,
      });

      await t.step("the signed headers", () => {
        assert.equal(headers.host, undefined, "fetch sets Host from the URL");
        assert.match(headers["x-amz-date"] ?? "", /^\d{8}T\d{6}Z$/);
        assert.equal(headers["x-amz-security-token"], TEST_CREDENTIALS.sessionToken);
        assert.match(headers["x-amz-content-sha256"] ?? "", /^[0-9a-f]{64}$/);
        assert.match(
          headers.authorization ?? "",
          new RegExp(
            `^AWS4-HMAC-SHA256 Credential=${TEST_CREDENTIALS.accessKeyId}/\\d{8}/us-west-2/` +
              `bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-content-sha256;` +
              `x-amz-date;x-amz-security-token, Signature=[0-9a-f]{64}$`,
          ),
        );
      });

      await t.step("sent as signed: the fake verifies it, %3A intact", async () => {
        const res = await fetch(target.url, { method: "POST", headers, body });
        assert.equal(res.status, 200);
        await res.body?.cancel();
        const seen = bedrock.requests.at(-1)!;
        assert.equal(seen.signatureValid, true);
        assert.equal(seen.rawPath, MODEL_PATH);
      });

      await t.step("one byte changed after signing: rejected", async () => {
        const res = await fetch(target.url, {
          method: "POST",
          headers,
          body: body.replace("Hello", "Jello"),
        });
        assert.equal(res.status, 403);
        assert.match(res.headers.get("x-amzn-errortype") ?? "", /^InvalidSignatureException/);
        await res.body?.cancel();
        assert.equal(bedrock.requests.at(-1)!.signatureValid, false);
      });

      await t.step("signed for another region: rejected", async () => {
        const wrong = await signBedrockRequest({
          region: "eu-west-1",
          credentials: { ...TEST_CREDENTIALS, source: "environment" },
          target,
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        const res = await fetch(target.url, { method: "POST", headers: wrong, body });
        assert.equal(res.status, 403);
        await res.body?.cancel();
      });
    } finally {
      await bedrock.close();
    }
  },
);

Deno.test("signBedrockRequest() is deterministic for a pinned date", async () => {
  const input = {
    region: "us-west-2",
    credentials: {
      accessKeyId: "AKIDEXAMPLE",
      secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
      source: "environment",
    },
    target: bedrockTarget(
      "https://bedrock-runtime.us-west-2.amazonaws.com",
      "us-west-2",
      MODEL_PATH,
    ),
    method: "POST" as const,
    headers: { "content-type": "application/json" },
    body: "{}",
    signingDate: new Date("2026-01-15T12:00:00Z"),
  };
  const a = await signBedrockRequest(input);
  const b = await signBedrockRequest(input);
  assert.deepEqual(a, b);
  assert.equal(a["x-amz-date"], "20260115T120000Z");
  assert.equal(a["x-amz-security-token"], undefined, "no session token, no header");
  assert.equal(
    a["x-amz-content-sha256"],
    "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
  );
});
