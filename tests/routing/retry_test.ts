import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { GatewayError } from "../../src/errors.ts";
import { backoffMs, classifyFailure, retryAfterMs } from "../../src/routing/mod.ts";
import { sameProviderRetries } from "../../src/routing/retry.ts";

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
    // Outside retry_on, a provider's failure moves on (Butter), a client's error is final.
    [upstream(501), "next"],
    [upstream(505), "next"],
    [upstream(400), "final"],
    [upstream(404), "final"],
    [upstream(422), "final"],
    [upstream(401), "key"],
    [upstream(403), "key"],
    [new GatewayError("upstream_unreachable", "refused"), "connection"],
    [new GatewayError("upstream_timeout", "slow"), "connection"],
    [new GatewayError("client_closed", "client left"), "final"],
    [new GatewayError("not_found", "no key"), "final"],
    // The gateway cannot call this provider (no credentials): another target may answer.
    [new GatewayError("unavailable", "no creds", { status: 500, unconfigured: true }), "next"],
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

Deno.test("sameProviderRetries() picks the budget: breaker classes first, then Butter's", () => {
  const butter = { ...policy, max_retries: 3 };
  const off = { ...butter, enabled: false };
  const cb = { max_transient_retries: 1, max_rate_limit_retries: 4 };
  const table: [Parameters<typeof sameProviderRetries>, number, string][] = [
    [["retryable", "provider_degraded", butter, null, true], 3, "no breaker: max_retries"],
    [["retryable", "provider_degraded", off, null, false], 0, "no breaker, failover off"],
    [["final", "client_error", butter, null, true], 0, "other 4xx"],
    [["connection", "provider_degraded", butter, null, false], 0, "no breaker: never"],
    [["retryable", "provider_degraded", butter, cb, true], 1, "breaker: transient"],
    [["retryable", "provider_degraded", off, cb, false], 1, "breaker, failover off"],
    [["retryable", "localized_rate_limit", off, cb, false], 4, "breaker: rate limit"],
    [["retryable", "global_rate_limit", butter, cb, true], 4, "breaker: global limit"],
    [["connection", "provider_degraded", butter, cb, true], 0, "moves on at once"],
    [["connection", "provider_degraded", butter, cb, false], 1, "nowhere to go: retried"],
    [["final", "provider_degraded", off, cb, false], 1, "501 is degraded to llm-proxy"],
    [["key", "client_error", butter, cb, true], 0, "401 is not the breaker's"],
    [["retryable", "client_error", butter, cb, true], 3, "a 4xx listed in retry_on"],
  ];
  for (const [args, want, why] of table) assert.equal(sameProviderRetries(...args), want, why);
});
