import assert from "node:assert/strict";
import { BEDROCK_NATIVE } from "../../src/providers/bedrock/native.ts";
import {
  containmentProblem,
  percentDecode,
  queryParam,
  rawTarget,
  restAfter,
  withoutParams,
} from "../../src/routes/passthrough_path.ts";

Deno.test("rawTarget() keeps the request-target as sent: dot-segments, escapes, query", () => {
  assert.deepEqual(rawTarget("http://127.0.0.1:9002/openai/v1/../../x?a=%2e#f"), {
    path: "/openai/v1/../../x",
    query: "?a=%2e",
    fragment: true,
  });
  assert.deepEqual(rawTarget("http://h/gemini/v1beta/models/%2e%2e:generateContent"), {
    path: "/gemini/v1beta/models/%2e%2e:generateContent",
    query: "",
    fragment: false,
  });
  // Deno.serve pastes the Host header in front of the target: the path starts where Hono's does.
  assert.equal(rawTarget("http://a?b/openai/v1/x").path, "/openai/v1/x");
  assert.equal(rawTarget("http://[::1]:80/x?y").path, "/x");
});

Deno.test("containmentProblem() accepts ordinary API paths", () => {
  for (
    const path of [
      "/openai/v1/chat/completions",
      "/openai/v1/models/ft%3Agpt-4o-mini%3Aorg%3A%3Aabc",
      "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent",
      "/native/openrouter/v1/models/openai/gpt-4o/endpoints",
      "/openai/v1/files/file-abc.jsonl",
      "/openai/v1/models/",
      "/openai/v1/a...b/..c/c../.hidden/%2e%2e%2e",
      "/openai/v1/caf%C3%A9/é",
      "/openai",
    ]
  ) {
    assert.equal(containmentProblem(path), null, path);
  }
});

Deno.test("containmentProblem() refuses every spelling of a traversal", () => {
  const cases: [string, RegExp][] = [
    ["/openai/v1/../../x", /dot-segment/],
    ["/openai/v1/./x", /dot-segment/],
    ["/openai/v1/%2e%2e/x", /dot-segment/],
    ["/openai/v1/%2E%2E/x", /dot-segment/],
    ["/openai/v1/.%2e/x", /dot-segment/],
    ["/openai/v1/%2e./x", /dot-segment/],
    ["/openai/v1/%2e/x", /dot-segment/],
    ["/openai/v1/%252e%252e/x", /dot-segment/],
    ["/openai/v1/%25252e%25252e/x", /dot-segment/],
    ["/openai/v1/..;/x", /dot-segment/],
    // A server that decodes before it cuts the query or fragment sees `..` here.
    ["/openai/v1/..%3f/x", /dot-segment/],
    ["/openai/v1/..%23x/y", /dot-segment/],
    ["/openai/v1/.%3Fa/x", /dot-segment/],
    ["/openai/v1/..%3Bjsessionid/x", /dot-segment/],
    ["/openai/v1/..%20/x", /dot-segment/],
    ["/openai/v1/%EF%BC%8E%EF%BC%8E/x", /dot-segment/],
    ["/openai/v1/\uff0e\uff0e/x", /dot-segment/],
    ["/openai/v1/\u2025/x", /dot-segment/],
    ["/openai/v1/..", /dot-segment/],
    ["/openai/v1/x/..", /dot-segment/],
    ["/openai/v1/..\\..\\x", /backslash/],
    ["/openai/v1/%5c..%5cx", /backslash/],
    ["/openai/v1/%255c", /backslash/],
    ["/openai/v1/%EF%BC%BC", /backslash/],
    ["/openai/v1/a%2F..%2Fb", /dot-segment/],
    ["/openai/v1/a%2f%2fb", /empty segment/],
    ["/openai/v1/%2Fetc", /empty segment/],
    ["/openai/v1/a%2fb", /encoded slash/],
    ["/anthropic/v1/a%2Fb", /encoded slash/],
    ["/native/local/a%2fb", /encoded slash/],
    ["/openai/v1/a%252Fb", /encoded slash/],
    // Only a provider's opaque segments may carry one (see below).
    ["/openai/v1/arn%3Aaws%3Abedrock%3Ax%2Fy", /encoded slash/],
    ["/gemini//HOST/v1beta/models", /empty segment/],
    ["//openai/v1", /empty segment/],
    ["/openai/v1/%00", /control character/],
    ["/openai/v1/..%00", /control character/],
    ["/openai/v1/%2525252525252e", /too many times/],
    ["/openai/v1/%c0%ae%c0%ae/x", /not UTF-8/],
    ["/openai/v1/%u002e%u002e/x", /%u escape/],
    ["openai/v1", /start with/],
  ];
  for (const [path, reason] of cases) {
    assert.match(containmentProblem(path) ?? "accepted", reason, path);
  }
});

Deno.test("containmentProblem(): an encoded slash only inside a segment the provider's API names opaque", () => {
  const arn =
    "model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A1%3Ainference-profile%2Feu.anthropic.x/converse";
  const opaque = BEDROCK_NATIVE.opaqueSegment;
  assert.ok(opaque);
  // Bedrock's inference-profile ARN, on /bedrock and on /native/{a second bedrock provider}.
  assert.equal(containmentProblem(`/bedrock/${arn}`, opaque), null);
  assert.equal(containmentProblem(`/native/bedrock-eu/${arn}`, opaque), null);
  // Without the provider's pattern (any other provider), or outside such a segment: refused.
  assert.match(containmentProblem(`/native/openrouter/${arn}`) ?? "", /encoded slash/);
  assert.match(containmentProblem("/bedrock/model/a%2Fb/converse", opaque) ?? "", /encoded slash/);
  assert.match(
    containmentProblem("/bedrock/model/arn%3Aaws%3Abedrock%3Ax%2F..%2Fy/invoke", opaque) ?? "",
    /dot-segment/,
  );
});

Deno.test("restAfter() only strips a prefix written as is", () => {
  assert.equal(restAfter("/openai/v1/models", "/openai"), "/v1/models");
  assert.equal(restAfter("/openai", "/openai"), "");
  assert.equal(restAfter("/%6fpenai/v1/models", "/openai"), null);
  assert.equal(restAfter("/openaix/v1", "/openai"), null);
});

Deno.test("withoutParams() drops only the named parameters and keeps every other byte", () => {
  const drop = (name: string) => name === "x-llm-proxy-bypass-circuit" || name === "key";
  assert.equal(
    withoutParams("?X-Amz-Date=2025%3A&b=a+b&key=AIza&c", drop),
    "?X-Amz-Date=2025%3A&b=a+b&c",
  );
  assert.equal(withoutParams("?k%65y=1", drop), "", "names compare decoded");
  assert.equal(withoutParams("?a=%2F&b", drop), "?a=%2F&b", "untouched when nothing is dropped");
  assert.equal(withoutParams("", drop), "");
});

Deno.test("queryParam() and percentDecode() read like URLSearchParams, never throw", () => {
  assert.equal(queryParam("?alt=sse&key=a%2Bb", "key"), "a+b");
  assert.equal(queryParam("?key", "key"), "");
  assert.equal(queryParam("?alt=sse", "key"), null);
  assert.equal(percentDecode("%zz%2e%C3%A9%FF"), "%zz.é\ufffd");
});
