import assert from "node:assert/strict";
import { type InProcessGateway, startGateway, testClock } from "../helpers/in_process.ts";
import { startRedisServer } from "../helpers/redis_server.ts";
import { type Daemon, startDaemon } from "../integration/daemon.ts";
import { ADMIN, admin, bearer, chargeStage, chat, keysConfig } from "./support.ts";

/** Poll until `check` holds or `ms` runs out (a bounded wait on a condition, not a sleep). */
async function within(ms: number, check: () => Promise<boolean>, what: string): Promise<void> {
  const started = performance.now();
  while (performance.now() - started < ms) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

Deno.test("fleet: three sidecars on one redis-server share keys, budgets and counters", async (t) => {
  const redis = await startRedisServer();
  const clock = testClock();
  clock.advance(Date.UTC(2026, 8, 15, 10) - Date.now());
  const config = keysConfig({
    state: `  backend: redis\n  redis: { url: "${redis.url}" }`,
    appKeys: "  require_key: true",
  });
  const sidecar = () =>
    startGateway(config, {}, { now: clock.now, stages: () => [chargeStage(() => 0.25)] });
  let fleet: InProcessGateway[] = [sidecar(), sidecar(), sidecar()];
  const [a, b, c] = fleet as [InProcessGateway, InProcessGateway, InProcessGateway];
  try {
    let key = "", id = "";
    await t.step("a key created on one sidecar works on all of them", async () => {
      await within(5_000, async () => {
        const r = await admin(a, "POST", "/api/v1/keys", {
          name: "fleet",
          budget: { daily_usd: 1 },
        });
        if (r.status === 503) return false;
        assert.equal(r.status, 201, JSON.stringify(r.json));
        ({ key, id } = r.json as { key: string; id: string });
        return true;
      }, "Redis reachable");
      for (const gw of fleet) {
        await within(5_000, async () => (await chat(gw, bearer(key))).status !== 503, "ready");
      }
    });

    await t.step("the budget holds fleet-wide: the sidecars' spend adds up", async () => {
      // Three requests went through above (one per sidecar): $0.75 of the $1 budget.
      await within(2_000, async () => {
        const u = await admin(c, "GET", `/api/v1/keys/${id}/usage`);
        return (u.json.day as { cost_usd: number }).cost_usd === 0.75;
      }, "three requests counted");
      assert.equal((await chat(b, bearer(key))).status, 200);
      await within(2_000, async () => {
        const u = await admin(a, "GET", `/api/v1/keys/${id}/usage`);
        return (u.json.day as { cost_usd: number }).cost_usd === 1;
      }, "four requests counted");
      for (const gw of fleet) {
        const r = await chat(gw, bearer(key));
        assert.equal(r.status, 429);
        assert.match((r.json.error as { message: string }).message, /daily budget of \$1/);
      }
      const u = await admin(b, "GET", `/api/v1/keys/${id}/usage`);
      assert.equal((u.json.day as { requests: number }).requests, 4, "rollups sum exactly");
      assert.equal((u.json.month as { cost_usd: number }).cost_usd, 1);
    });

    await t.step("concurrent requests overshoot by at most one request's cost each", async () => {
      const r = await admin(a, "POST", "/api/v1/keys", { budget: { daily_usd: 0.5 } });
      const k2 = r.json.key as string;
      const statuses = await Promise.all(fleet.map((gw) => chat(gw, bearer(k2))));
      assert.ok(statuses.every((s) => s.status === 200), "under budget when they started");
      await within(2_000, async () => {
        const u = await admin(a, "GET", `/api/v1/keys/${r.json.id}/usage`);
        return (u.json.day as { cost_usd: number }).cost_usd === 0.75;
      }, "three counted");
      for (const gw of fleet) assert.equal((await chat(gw, bearer(k2))).status, 429);
    });

    await t.step("a revocation on one sidecar reaches the others", async () => {
      const fresh = await admin(a, "POST", "/api/v1/keys", { name: "doomed" });
      const k3 = fresh.json.key as string;
      assert.equal((await chat(b, bearer(k3))).status, 200); // b now holds it in memory
      await admin(c, "DELETE", `/api/v1/keys/${fresh.json.id}`);
      await within(2_000, async () => (await chat(b, bearer(k3))).status === 401, "revoked on b");
    });

    await t.step("a restart of every sidecar keeps keys, budgets and counters", async () => {
      await Promise.all(fleet.map((gw) => gw.close()));
      fleet = [sidecar()];
      const d = fleet[0] as InProcessGateway;
      await within(5_000, async () => (await chat(d, bearer(key))).status !== 503, "ready");
      assert.equal((await chat(d, bearer(key))).status, 429);
      const u = await admin(d, "GET", `/api/v1/keys/${id}/usage`);
      assert.equal((u.json.day as { requests: number }).requests, 4);
      clock.advance(86_400_000);
      assert.equal((await chat(d, bearer(key))).status, 200);
    });
  } finally {
    await Promise.all(fleet.map((gw) => gw.close()));
    await redis.stop();
  }
});

Deno.test("Redis outage: admin calls answer 503, a key seen before still authenticates", async () => {
  const redis = await startRedisServer();
  const gw = startGateway(
    keysConfig({ state: `  backend: redis\n  redis: { url: "${redis.url}" }` }),
  );
  try {
    let key = "";
    let budgeted = "";
    await within(5_000, async () => {
      const r = await admin(gw, "POST", "/api/v1/keys", {});
      key = r.json.key as string;
      return r.status === 201;
    }, "Redis reachable");
    budgeted = (await admin(gw, "POST", "/api/v1/keys", { budget: { daily_usd: 1 } })).json
      .key as string;
    assert.equal((await chat(gw, bearer(key))).status, 200);
    assert.equal((await chat(gw, bearer(budgeted))).status, 200);
    await redis.stop();
    await within(5_000, async () => (await admin(gw, "GET", "/api/v1/keys")).status === 503, "503");
    assert.equal((await chat(gw, bearer(key))).status, 200, "cached record");
    // A key with a budget too: held on the spend last read, not refused.
    assert.equal((await chat(gw, bearer(budgeted))).status, 200, "budgeted, cached record");
    const unknown = await chat(gw, bearer("pf_" + "z".repeat(43)));
    assert.equal(unknown.status, 503);
    assert.match((unknown.json.error as { message: string }).message, /key store is unavailable/);
    // Usage the outage keeps from Redis is said once, not on every request.
    for (let i = 0; i < 5; i++) await chat(gw, bearer(key));
    const told = gw.logs.filter((l) =>
      l.includes("app key usage is held while its store is unavailable")
    );
    assert.equal(told.length, 1, gw.logs.join(""));
    assert.ok(!gw.logText().includes("app key store write failed"));
  } finally {
    await gw.close();
    await redis.stop();
  }
});

Deno.test("fleet of three daemons (narrowed permissions) on one redis-server: one key, summed counters", async () => {
  const redis = await startRedisServer();
  const yaml = `
server: { port: {{PORT}}, socket: {{SOCKET}}, admin_token: ${ADMIN} }
providers: { mock: {} }
state: { backend: redis, redis: { url: "${redis.url}" } }
app_keys: { require_key: true }
`;
  const daemons = await Promise.all([startDaemon(yaml), startDaemon(yaml), startDaemon(yaml)]);
  const call = async (d: Daemon, path: string, init: RequestInit = {}) => {
    const r = await fetch(d.url(path), init);
    return { status: r.status, json: await r.json() };
  };
  const ask = (d: Daemon, key: string) =>
    call(d, "/v1/chat/completions", {
      method: "POST",
      headers: bearer(key),
      body: JSON.stringify({ model: "mock/echo", messages: [{ role: "user", content: "hi" }] }),
    });
  try {
    const [a, b, c] = daemons as [Daemon, Daemon, Daemon];
    let made = { status: 0, json: {} as Record<string, string> };
    await within(10_000, async () => {
      made = await call(a, "/api/v1/keys", {
        method: "POST",
        headers: bearer(ADMIN),
        body: JSON.stringify({ name: "fleet" }),
      });
      return made.status === 201;
    }, "key created");
    const key = made.json.key as string;
    for (const d of [a, b, c]) {
      await within(10_000, async () => (await ask(d, key)).status === 200, "key works");
    }
    for (const d of [a, b, c]) assert.equal((await ask(d, key)).status, 200);
    await within(2_000, async () => {
      const u = await call(c, `/api/v1/keys/${made.json.id}/usage`, { headers: bearer(ADMIN) });
      return u.json.day.requests === 6;
    }, "every sidecar's requests in one counter");
    assert.equal((await ask(b, "pf_" + "q".repeat(43))).status, 401);
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
    await redis.stop();
  }
});

Deno.test("Redis outage: a budgeted key's spend meanwhile is written once Redis is back, once", async () => {
  const redis = await startRedisServer();
  const gw = startGateway(
    keysConfig({ state: `  backend: redis\n  redis: { url: "${redis.url}" }` }),
    {},
    { stages: () => [chargeStage(() => 0.25)] },
  );
  const day = async (id: string) => {
    const u = await admin(gw, "GET", `/api/v1/keys/${id}/usage`);
    return u.status === 200 ? u.json.day as { cost_usd: number; requests: number } : null;
  };
  let key = "", id = "";
  try {
    await within(5_000, async () => {
      const r = await admin(gw, "POST", "/api/v1/keys", { budget: { daily_usd: 1 } });
      ({ key, id } = r.json as { key: string; id: string });
      return r.status === 201;
    }, "Redis reachable");
    const free = (await admin(gw, "POST", "/api/v1/keys", {})).json as { key: string; id: string };
    assert.equal((await chat(gw, bearer(key))).status, 200);
    assert.equal((await chat(gw, bearer(free.key))).status, 200);
    await within(2_000, async () => (await day(free.id))?.requests === 1, "counted");
    // Frozen: the key without a budget makes no Redis call before its answer, so its write
    // goes out and gets none (applied or not is not known: it is sent again, with its number).
    redis.pause();
    assert.equal((await chat(gw, bearer(free.key))).status, 200);
    await within(5_000, async () => (await admin(gw, "GET", "/api/v1/keys")).status === 503, "503");
    // Down: these writes are held.
    assert.equal((await chat(gw, bearer(key))).status, 200);
    assert.equal((await chat(gw, bearer(key))).status, 200);
    redis.resume();
    await within(5_000, async () => (await day(id))?.cost_usd === 0.75, "the outage's spend");
    assert.equal((await day(free.id))?.requests, 2, "the unanswered write counted once");
    // $0.25 of the budget is left: one request.
    assert.equal((await chat(gw, bearer(key))).status, 200);
    assert.equal((await chat(gw, bearer(key))).status, 429);
    assert.equal((await day(id))?.cost_usd, 1);
  } finally {
    redis.resume();
    await gw.close();
    await redis.stop();
  }
});

Deno.test("Redis outage after an outage: a key seen before still authenticates; so does one created here", async () => {
  const redis = await startRedisServer();
  const gw = startGateway(
    keysConfig({ state: `  backend: redis\n  redis: { url: "${redis.url}" }` }),
  );
  const outage = async () => {
    await redis.stop();
    await within(5_000, async () => (await admin(gw, "GET", "/api/v1/keys")).status === 503, "503");
  };
  try {
    let key = "";
    await within(5_000, async () => {
      const r = await admin(gw, "POST", "/api/v1/keys", {});
      key = r.json.key as string;
      return r.status === 201;
    }, "Redis reachable");
    // Created on this sidecar, never used before the outage.
    const made = (await admin(gw, "POST", "/api/v1/keys", {})).json.key as string;
    assert.equal((await chat(gw, bearer(key))).status, 200);
    await outage();
    assert.equal((await chat(gw, bearer(key))).status, 200, "first outage");
    assert.equal((await chat(gw, bearer(made))).status, 200, "created here");
    await redis.restart();
    await within(
      5_000,
      async () => (await admin(gw, "GET", "/api/v1/keys")).status === 200,
      "back",
    );
    // Not used while Redis was back: the next outage must not lock it out.
    await outage();
    assert.equal((await chat(gw, bearer(key))).status, 200, "second outage");
  } finally {
    await gw.close();
    await redis.stop();
  }
});

Deno.test("on a Redis Cluster: keys, budgets and usage rollups work (their keys share a slot)", async () => {
  const { startRedisCluster } = await import("../helpers/redis_cluster.ts");
  const cluster = await startRedisCluster();
  const clock = testClock();
  clock.advance(Date.UTC(2026, 8, 15, 10) - Date.now());
  const config = keysConfig({
    state: `  backend: redis\n  redis: { url: "${cluster.url}" }`,
    appKeys: "  require_key: true",
  });
  const sidecar = () =>
    startGateway(config, {}, { now: clock.now, stages: () => [chargeStage(() => 0.25)] });
  const [a, b] = [sidecar(), sidecar()];
  try {
    let key = "";
    await within(10_000, async () => {
      const r = await admin(a, "POST", "/api/v1/keys", { name: "c", budget: { daily_usd: 0.5 } });
      if (r.status === 503) return false;
      assert.equal(r.status, 201, JSON.stringify(r.json));
      key = r.json.key as string;
      return true;
    }, "the key store on the cluster");
    assert.equal((await chat(a, bearer(key))).status, 200);
    assert.equal((await chat(b, bearer(key))).status, 200);
    // The spend reached the cluster: the budget holds on either sidecar.
    await within(5_000, async () => (await chat(b, bearer(key))).status === 429, "the budget");
    // The usage rollups are written and read back.
    await within(10_000, async () => {
      const u = await admin(a, "GET", "/api/v1/usage");
      return u.status === 200 && (u.json.total_requests as number) >= 2;
    }, "usage on the cluster");
  } finally {
    await a.close();
    await b.close();
    await cluster.dispose();
  }
});
