/**
 * The telemetry bus: typed events in order, nothing built when nobody listens, a throwing
 * subscriber never breaks a request; and the events of a real exchange.
 */
import assert from "node:assert/strict";
import { createEventBus, type TelemetryEvent } from "../../src/pipeline/events.ts";
import type { Exchange } from "../../src/pipeline/exchange.ts";
import { gateway, post } from "./support.ts";

const SANITIZE = { sanitizeOps: true, sanitizeResources: true };

Deno.test("createEventBus() flags what is listened to and delivers in order", () => {
  const errors: unknown[] = [];
  const bus = createEventBus((err) => errors.push(err));
  assert.equal(bus.on.request_end, false);
  const seen: string[] = [];
  const off = bus.subscribe((e) => seen.push(`1:${e.type}`), ["request_start", "request_end"]);
  bus.subscribe(() => {
    throw new Error("subscriber bug");
  }, ["request_end"]);
  bus.subscribe((e) => seen.push(`3:${e.type}`), ["request_end"]);
  assert.equal(bus.on.request_end, true);
  assert.equal(bus.on.attempt_start, false);
  const ex = {} as Exchange;
  bus.emit({ type: "request_start", exchange: ex });
  bus.emit({
    type: "request_end",
    exchange: ex,
    status: 200,
    outcome: "complete",
    duration_ms: 1,
    usage: null,
  });
  assert.deepEqual(seen, ["1:request_start", "1:request_end", "3:request_end"]);
  assert.equal(errors.length, 1, "the throwing subscriber is reported, the next still runs");
  off();
  assert.equal(bus.on.request_start, false);
  assert.equal(bus.on.request_end, true);
});

Deno.test(
  "an exchange's events: start, attempts (with retries and failover), end",
  SANITIZE,
  async () => {
    let calls = 0;
    const gw = gateway({
      config: `
providers:
  a: { base_url: "http://a.test/v1", keys: [{ key: sk-a-configured-0001 }] }
  b: { base_url: "http://b.test/v1", keys: [{ key: sk-b-configured-0002 }] }
routing:
  models:
    m: { providers: [a, b] }
  failover: { max_retries: 1, backoff: { initial: 1ms, max: 1ms } }
`,
      handler: (url) => {
        calls++;
        if (url.startsWith("http://a.test")) {
          return new Response('{"error":{"message":"down"}}', { status: 503 });
        }
        return new Response(
          JSON.stringify({
            id: "c",
            object: "chat.completion",
            choices: [{
              index: 0,
              message: { role: "assistant", content: "ok" },
              finish_reason: "stop",
            }],
            usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
          }),
          { headers: { "content-type": "application/json" } },
        );
      },
    });
    const res = await gw.request(
      "/v1/chat/completions",
      post({
        model: "m",
        messages: [{ role: "user", content: "hi" }],
      }),
    );
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.equal(calls, 3);
    const summary = gw.events.map((e: TelemetryEvent) => {
      switch (e.type) {
        case "attempt_start":
          return `start:${e.target.provider}`;
        case "attempt_end":
          return `end:${e.attempt.provider}:${e.attempt.outcome}`;
        case "retry":
          return `retry:${e.attempt.provider}`;
        case "failover":
          return `failover:${e.from.provider}->${e.to.provider}`;
        default:
          return e.type;
      }
    });
    assert.deepEqual(summary, [
      "request_start",
      "start:a",
      "retry:a",
      "start:a",
      "failover:a->b",
      "start:b",
      "end:a:retry",
      "end:a:next",
      "end:b:ok",
      "request_end",
    ]);
    const end = gw.events.at(-1)!;
    assert.ok(end.type === "request_end");
    assert.equal(end.status, 200);
    assert.equal(end.exchange.provider, "b");
    assert.deepEqual(end.usage, { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 });
  },
);

Deno.test("a breaker transition is an event", SANITIZE, async () => {
  const gw = gateway({
    config: `
providers:
  a: { base_url: "http://a.test/v1", keys: [{ key: sk-a-configured-0001 }] }
routing:
  failover: { enabled: false }
features:
  circuit_breaker: { enabled: true, failure_threshold: 1, max_transient_retries: 0 }
`,
    handler: () => new Response("{}", { status: 500 }),
  });
  const res = await gw.request(
    "/v1/chat/completions",
    post({
      model: "a/x",
      messages: [{ role: "user", content: "hi" }],
    }),
  );
  await res.body?.cancel();
  // The failure is written to the store in the background; the transition follows it.
  for (let i = 0; i < 100 && !gw.events.some((e) => e.type === "breaker_transition"); i++) {
    await Promise.resolve();
  }
  const t = gw.events.find((e) => e.type === "breaker_transition");
  assert.ok(t && t.type === "breaker_transition");
  assert.deepEqual([t.provider, t.key, t.from, t.to], ["a", "a:x", "closed", "open"]);
});
