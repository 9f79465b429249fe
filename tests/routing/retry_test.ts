import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { GatewayError } from "../../src/errors.ts";
import { backoffMs, classifyFailure, retryAfterMs } from "../../src/routing/mod.ts";

const policy = parseConfigText(
  "routing:\n  failover:\n    backoff: { initial: 100ms, multiplier: 2, max: 1s }\n",
  () => undefined,
  "t",
)
  .config.routing.failover;

const upstream = (status: number) =>
  new GatewayError(status === 429 ? "rate_limited" : "upstream_error", "x", {
    upstreamStatus: status,
    status,
  });

Deno.test("classifyFailure() sorts failures into what to do next", () => {
  const table: [GatewayError, string][] = [
    [upstream(429), "retryable"],
    [upstream(500), "retryable"],
    [upstream(502), "retryable"],
    [upstream(503), "retryable"],
    [upstream(504), "retryable"],
    [upstream(529), "retryable"],
    [upstream(501), "final"],
    [upstream(400), "final"],
    [upstream(404), "final"],
    [upstream(422), "final"],
    [upstream(401), "key"],
    [upstream(403), "key"],
    [new GatewayError("upstream_unreachable", "refused"), "connection"],
    [new GatewayError("upstream_timeout", "slow"), "connection"],
    [new GatewayError("upstream_unreachable", "client left", { status: 499 }), "final"],
    [new GatewayError("not_found", "no key"), "final"],
  ];
  for (const [err, kind] of table) {
    assert.equal(classifyFailure(err, policy), kind, `${err.code} ${err.info.upstreamStatus}`);
  }
});

Deno.test("backoffMs() is full jitter under an exponential cap", () => {
  assert.equal(backoffMs(0, policy, () => 0.999_999), 100);
  assert.equal(backoffMs(1, policy, () => 0.999_999), 200);
  assert.equal(backoffMs(3, policy, () => 0.999_999), 800);
  assert.equal(backoffMs(10, policy, () => 0.999_999), 1_000, "capped by backoff.max");
  assert.equal(backoffMs(2, policy, () => 0), 0);
  assert.equal(backoffMs(2, policy, () => 0.5), 200);
});

Deno.test("retryAfterMs() reads delta-seconds and HTTP dates", () => {
  const now = Date.parse("2026-11-23T10:00:00Z");
  assert.equal(retryAfterMs("1", now), 1_000);
  assert.equal(retryAfterMs("0.5", now), 500);
  assert.equal(retryAfterMs("Mon, 23 Nov 2026 10:00:07 GMT", now), 7_000);
  assert.equal(retryAfterMs("Mon, 23 Nov 2026 09:00:00 GMT", now), 0);
  assert.equal(retryAfterMs(undefined, now), null);
  assert.equal(retryAfterMs("soon", now), null);
  assert.equal(retryAfterMs("-3", now), null);
});
