import assert from "node:assert/strict";
import { GatewayError } from "../../../src/errors.ts";
import { pathSegment } from "../../../src/providers/shared/path_segment.ts";

Deno.test("pathSegment() keeps any name inside one segment", () => {
  const cases: [string, string][] = [
    ["gpt-4o", "gpt-4o"],
    ["../../x", "..%2F..%2Fx"],
    ["a/../../b", "a%2F..%2F..%2Fb"],
    ["x?key=1", "x%3Fkey%3D1"],
    ["x#y", "x%23y"],
    ["%2e%2e", "%252e%252e"],
    ["a\\b", "a%5Cb"],
    ["...", "..."],
  ];
  for (const [name, segment] of cases) {
    assert.equal(pathSegment(name, "Deployment", "azure"), segment, name);
    const url = new URL(`https://h/openai/deployments/${segment}/chat`);
    assert.equal(url.pathname, `/openai/deployments/${segment}/chat`, name);
  }
});

Deno.test("pathSegment() refuses what no encoding keeps in one segment, as a 400", () => {
  for (const name of ["", ".", "..", "a\nb", "\x00", "\ud800", "x\udc00"]) {
    assert.throws(() => pathSegment(name, "Deployment", "azure"), (err: unknown) => {
      assert.ok(err instanceof GatewayError);
      assert.equal(err.status, 400);
      assert.equal(err.info.param, "model");
      return true;
    }, JSON.stringify(name));
  }
});
