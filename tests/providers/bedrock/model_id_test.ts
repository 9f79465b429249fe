import assert from "node:assert/strict";
import { bedrockBaseModelId, bedrockModelId } from "../../../src/providers/bedrock/model_id.ts";

const PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const BASE = "anthropic.claude-sonnet-4-5-20250929-v1:0";

Deno.test("bedrockModelId() reads the id out of a model's or a system profile's ARN", () => {
  assert.equal(
    bedrockModelId(`arn:aws:bedrock:us-west-2:123456789012:inference-profile/${PROFILE}`),
    PROFILE,
  );
  assert.equal(bedrockModelId(`arn:aws:bedrock:us-west-2::foundation-model/${BASE}`), BASE);
  assert.equal(
    bedrockModelId(`arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/${BASE}`),
    BASE,
  );
  assert.equal(bedrockModelId(PROFILE), PROFILE);
  // An application profile's id names no model: left as it is.
  const app = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3";
  assert.equal(bedrockModelId(app), app);
});

Deno.test("bedrockBaseModelId() drops the profile's geography, ARN or not", () => {
  assert.equal(bedrockBaseModelId(PROFILE), BASE);
  assert.equal(bedrockBaseModelId(`global.${BASE}`), BASE);
  assert.equal(bedrockBaseModelId(`us-gov.${BASE}`), BASE);
  assert.equal(bedrockBaseModelId(`apac.${BASE}`), BASE);
  assert.equal(
    bedrockBaseModelId(`arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.${BASE}`),
    BASE,
  );
  assert.equal(bedrockBaseModelId(BASE), BASE);
  assert.equal(bedrockBaseModelId("amazon.titan-embed-text-v2:0"), "amazon.titan-embed-text-v2:0");
});
