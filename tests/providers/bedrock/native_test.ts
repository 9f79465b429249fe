import assert from "node:assert/strict";
import { bedrockUsageOf } from "../../../src/providers/bedrock/native.ts";

Deno.test("bedrockUsageOf(): a stream's invocation metrics count cache reads and writes in the prompt", () => {
  // InvokeModelWithResponseStream's last chunk: inputTokenCount excludes the cache.
  const cached = bedrockUsageOf({
    "amazon-bedrock-invocationMetrics": {
      inputTokenCount: 300,
      outputTokenCount: 400,
      cacheReadInputTokenCount: 500,
      cacheWriteInputTokenCount: 200,
      invocationLatency: 1200,
      firstByteLatency: 300,
    },
  });
  assert.equal(cached?.prompt_tokens, 1000);
  assert.equal(cached?.completion_tokens, 400);
  assert.equal(cached?.prompt_tokens_details?.cached_tokens, 500);
  const plain = bedrockUsageOf({
    "amazon-bedrock-invocationMetrics": { inputTokenCount: 12, outputTokenCount: 3 },
  });
  assert.equal(plain?.prompt_tokens, 12);
  assert.equal(plain?.completion_tokens, 3);
  // Converse's usage likewise.
  const converse = bedrockUsageOf({
    usage: {
      inputTokens: 300,
      outputTokens: 400,
      cacheReadInputTokens: 500,
      cacheWriteInputTokens: 200,
    },
  });
  assert.equal(converse?.prompt_tokens, 1000);
});
