import assert from "node:assert/strict";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway, testClock } from "../helpers/in_process.ts";
import { admin, bearer, chargeStage, chat, createKey, keysConfig } from "./support.ts";

/** 2026-03-31 23:00 UTC: an hour before both the day and the month roll over. */
const LATE_MARCH = Date.UTC(2026, 2, 31, 23, 0, 0);

Deno.test("budgets: over the daily budget → 429 naming it and its reset; reset at midnight UTC", async (t) => {
  const clock = testClock();
  clock.advance(LATE_MARCH - Date.now());
  let cost: number | null = 0.25;
  const gw = startGateway(keysConfig(), {}, {
    now: clock.now,
    stages: () => [chargeStage(() => cost)],
  });
  try {
    const { id, key } = await createKey(gw, { name: "b", budget: { daily_usd: 0.5 } });

    await t.step(
      "spend below the budget passes; reaching it refuses the next request",
      async () => {
        assert.equal((await chat(gw, bearer(key))).status, 200);
        assert.equal((await chat(gw, bearer(key))).status, 200);
        const r = await chat(gw, bearer(key));
        assert.equal(r.status, 429);
        const err = r.json.error as { message: string; code: string };
        assert.equal(err.code, "budget_exceeded");
        assert.match(err.message, /daily budget of \$0\.5/);
        assert.match(err.message, /resets at 2026-04-01T00:00:00\.000Z/);
        assert.equal(r.headers.get("retry-after"), "3600");
        // The SDKs would retry a 429 twice; a budget will not reset in their backoff.
        assert.equal(r.headers.get("x-should-retry"), "false");
      },
    );

    await t.step("usage shows the spend, to the micro-dollar", async () => {
      const u = await admin(gw, "GET", `/api/v1/keys/${id}/usage`);
      assert.deepEqual(u.json.day, {
        period: "2026-03-31",
        requests: 2,
        tokens: (u.json.day as { tokens: number }).tokens,
        cost_usd: 0.5,
        budget_usd: 0.5,
        resets_at: "2026-04-01T00:00:00.000Z",
      });
      assert.ok((u.json.day as { tokens: number }).tokens > 0, "tokens counted");
    });

    await t.step("the 429 speaks each route's format", async () => {
      const m = await gw.request("/v1/messages", {
        method: "POST",
        headers: { "x-pilotfish-app-key": key },
        body: JSON.stringify({ model: "mock/echo", max_tokens: 5, messages: [] }),
      });
      assert.equal(m.status, 429);
      const body = await m.json();
      assert.equal(body.type, "error");
      assert.equal(body.error.type, "rate_limit_error");
      assert.match(body.error.message, /daily budget/);
      assert.equal(m.headers.get("x-should-retry"), "false");
      // GET /v1/models is refused by the key gate, not the stage: the same headers.
      const models = await gw.request("/v1/models", { headers: bearer(key) });
      assert.equal(models.status, 429);
      assert.equal(models.headers.get("retry-after"), "3600");
      assert.equal(models.headers.get("x-should-retry"), "false");
      await models.body?.cancel();
    });

    await t.step("at midnight UTC the day resets", async () => {
      clock.advance(3600_000);
      assert.equal((await chat(gw, bearer(key))).status, 200);
    });

    await t.step("a request with no known cost adds nothing to spend", async () => {
      cost = null;
      for (let i = 0; i < 3; i++) assert.equal((await chat(gw, bearer(key))).status, 200);
      const u = await admin(gw, "GET", `/api/v1/keys/${id}/usage`);
      assert.equal((u.json.day as { cost_usd: number }).cost_usd, 0.25);
      assert.equal((u.json.day as { requests: number }).requests, 4);
    });
  } finally {
    await gw.close();
  }
});

Deno.test("budgets: the monthly budget, and a PATCH raising it lets requests through again", async () => {
  const clock = testClock();
  clock.advance(Date.UTC(2026, 4, 10, 12) - Date.now());
  const gw = startGateway(keysConfig(), {}, {
    now: clock.now,
    stages: () => [chargeStage(() => 1.5)],
  });
  try {
    const { id, key } = await createKey(gw, { budget: { monthly_usd: 2, daily_usd: 100 } });
    assert.equal((await chat(gw, bearer(key))).status, 200);
    clock.advance(86_400_000); // another day, same month
    assert.equal((await chat(gw, bearer(key))).status, 200);
    const r = await chat(gw, bearer(key));
    assert.equal(r.status, 429);
    assert.match(
      (r.json.error as { message: string }).message,
      /monthly budget of \$2; it resets at 2026-06-01T00:00:00\.000Z/,
    );
    const p = await admin(gw, "PATCH", `/api/v1/keys/${id}`, { budget: { monthly_usd: 10 } });
    assert.deepEqual(p.json.budget, { daily_usd: 100, monthly_usd: 10 });
    assert.equal((await chat(gw, bearer(key))).status, 200);
    // Clearing a budget: null.
    const q = await admin(gw, "PATCH", `/api/v1/keys/${id}`, { budget: { daily_usd: null } });
    assert.deepEqual(q.json.budget, { daily_usd: null, monthly_usd: 10 });
    // Every budget, and an allowlist, at once: null (as for limits and expires_at).
    await admin(gw, "PATCH", `/api/v1/keys/${id}`, { allowed_models: ["mock/echo"] });
    const none = await admin(gw, "PATCH", `/api/v1/keys/${id}`, {
      budget: null,
      allowed_models: null,
    });
    assert.equal(none.status, 200, JSON.stringify(none.json));
    assert.deepEqual(none.json.budget, { daily_usd: null, monthly_usd: null });
    assert.deepEqual(none.json.allowed_models, []);
  } finally {
    await gw.close();
  }
});

Deno.test("budgets: with both used up, the 429 names the monthly one (the day's reset would not help)", async () => {
  const clock = testClock();
  clock.advance(Date.UTC(2026, 4, 10, 12) - Date.now());
  const gw = startGateway(keysConfig(), {}, {
    now: clock.now,
    stages: () => [chargeStage(() => 1.5)],
  });
  try {
    const { key } = await createKey(gw, { budget: { monthly_usd: 1, daily_usd: 1 } });
    assert.equal((await chat(gw, bearer(key))).status, 200);
    const r = await chat(gw, bearer(key));
    assert.equal(r.status, 429);
    assert.match((r.json.error as { message: string }).message, /monthly budget of \$1/);
  } finally {
    await gw.close();
  }
});

Deno.test("budgets: requests cheaper than a micro-dollar add up; none is free", async () => {
  const clock = testClock();
  clock.advance(LATE_MARCH - Date.now());
  const gw = startGateway(keysConfig(), {}, {
    now: clock.now,
    // What a short embedding costs: 24 tokens at $0.02 per million.
    stages: () => [chargeStage(() => 0.00000048)],
  });
  try {
    const { id, key } = await createKey(gw, { name: "tiny", budget: { daily_usd: 0.000002 } });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await chat(gw, bearer(key))).status);
    // 0.48 µ$ each: the spend reaches 2 µ$ with the 5th (2.4), so the 6th is refused.
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    const u = await admin(gw, "GET", `/api/v1/keys/${id}/usage`);
    assert.equal((u.json.day as { cost_usd: number }).cost_usd, 0.000002);
  } finally {
    await gw.close();
  }
});

Deno.test("a key's usage counts as /api/v1/usage does: refused-before-any-provider requests not, estimated prompts in", async () => {
  const up = startFakeUpstream();
  // An upstream stream with no usage: the bill estimates the prompt.
  const gw = startGateway(
    keysConfig().replace("  mock: {}", `  mock: {}\n  up: { base_url: "${up.url}/v1" }`),
  );
  try {
    const { id, key } = await createKey(gw, { name: "u" });
    // Bad input and an unknown model reach no provider: not requests the key made use of.
    const bad = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: bearer(key),
      body: JSON.stringify({ model: "up/gpt-4o-mini", messages: "not a list" }),
    });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    assert.equal((await chat(gw, bearer(key), "nowhere/none")).status, 404);
    up.script({ kind: "stream", chunks: ["Hello", " there"] });
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: bearer(key),
      body: JSON.stringify({
        model: "up/gpt-4o-mini",
        stream: true,
        messages: [{ role: "user", content: "please write a long answer about trees" }],
      }),
    });
    await res.text();
    const day = (await admin(gw, "GET", `/api/v1/keys/${id}/usage`)).json.day as {
      requests: number;
      tokens: number;
    };
    const rollup = (await admin(gw, "GET", "/api/v1/usage")).json.by_app_key as Record<
      string,
      { requests: number; total_tokens: number }
    >;
    assert.equal(day.requests, 1);
    assert.equal(day.requests, rollup[id]?.requests);
    assert.equal(day.tokens, rollup[id]?.total_tokens);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("a key refused for its budget is named in the access log and in per-key metrics", async () => {
  const { preloadTelemetry } = await import("../../src/telemetry/hub.ts");
  const { parseConfigText } = await import("../../src/config/mod.ts");
  const yaml = keysConfig({
    more: "metrics: { per_key: true }\nplugins: { requestlog: { log_app_key: true } }",
  });
  await preloadTelemetry(parseConfigText(yaml, () => undefined, "k.yaml").config);
  const gw = startGateway(yaml, {}, { stages: () => [chargeStage(() => 1)] });
  try {
    const { id, key } = await createKey(gw, { name: "b", budget: { daily_usd: 0.5 } });
    assert.equal((await chat(gw, bearer(key))).status, 200);
    assert.equal((await chat(gw, bearer(key))).status, 429);
    const refused = gw.logs.map((l) => JSON.parse(l)).find((l) => l.status === 429);
    assert.equal(refused?.app_key, id);
    const metrics = await (await gw.request("/metrics")).text();
    assert.match(
      metrics,
      new RegExp(`pilotfish_requests_total\\{[^}]*status="429"[^}]*app_key="${id}"[^}]*\\} 1`),
    );
    assert.doesNotMatch(metrics, /status="429"[^}]*app_key="none"/);
  } finally {
    await gw.close();
  }
});
