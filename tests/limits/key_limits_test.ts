/**
 * Per-key limits: an app key's own `limits` (llm-proxy's metric names), set on create and
 * PATCH through the admin API, kept by the SQLite and Redis stores, enforced by the limiter
 * in the app-key scope next to the config's `perKey` (the tightest decides).
 */
import assert from "node:assert/strict";
import { startGateway, testClock } from "../helpers/in_process.ts";
import { startRedisServer } from "../helpers/redis_server.ts";
import { admin, bearer, chat, createKey, keysConfig } from "../keys/support.ts";

const MINUTE_START = Date.UTC(2026, 6, 1, 8, 0, 0);

Deno.test("a key's own limits: enforced in the app-key scope, changed by PATCH at once", async () => {
  const clock = testClock();
  clock.advance(MINUTE_START + 1_000 - Date.now());
  const gw = startGateway(
    keysConfig({
      more: "rate_limit: { enabled: true, per_key: { requests: 5, window: 1m } }",
    }),
    {},
    { now: clock.now },
  );
  try {
    const limited = await createKey(gw, { name: "l", limits: { requests_per_minute: 2 } });
    const plain = await createKey(gw, { name: "p" });
    const shown = await admin(gw, "GET", `/api/v1/keys/${limited.id}`);
    assert.deepEqual(shown.json.limits, {
      requests_per_minute: 2,
      tokens_per_minute: 0,
      requests_per_day: 0,
      tokens_per_day: 0,
    });

    // The key's 2/minute is tighter than the config's perKey 5/minute: it decides.
    const first = await chat(gw, bearer(limited.key));
    assert.equal(first.status, 200);
    assert.equal(first.headers.get("x-ratelimit-limit"), "2");
    assert.equal(first.headers.get("x-ratelimit-remaining"), "1");
    assert.equal((await chat(gw, bearer(limited.key))).status, 200);
    const third = await chat(gw, bearer(limited.key));
    assert.equal(third.status, 429);
    assert.equal(third.headers.get("x-ratelimit-limit"), "2");
    assert.equal(third.headers.get("x-ratelimit-scope"), `key:${limited.id}`);
    assert.equal(third.headers.get("x-ratelimit-metric"), "requests");
    assert.equal(third.headers.get("x-ratelimit-window"), "minute");
    assert.ok(Number(third.headers.get("retry-after")) >= 1);
    assert.match(String((third.json.error as { message: string }).message), /Rate limit exceeded/);

    // Another key is held to the config's perKey only.
    for (let i = 0; i < 5; i++) {
      const r = await chat(gw, bearer(plain.key));
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("x-ratelimit-limit"), "5");
    }
    assert.equal((await chat(gw, bearer(plain.key))).status, 429);

    // PATCH raises the limit: the next request passes, counted with what the window holds.
    const patched = await admin(gw, "PATCH", `/api/v1/keys/${limited.id}`, {
      limits: { requests_per_minute: 3 },
    });
    assert.equal(patched.status, 200);
    assert.equal((patched.json.limits as { requests_per_minute: number }).requests_per_minute, 3);
    const after = await chat(gw, bearer(limited.key));
    assert.equal(after.status, 200);
    assert.equal(after.headers.get("x-ratelimit-limit"), "3");
    assert.equal(after.headers.get("x-ratelimit-remaining"), "0");
    assert.equal((await chat(gw, bearer(limited.key))).status, 429);

    // `limits: null` clears them: the config's perKey (5) is what is left.
    await admin(gw, "PATCH", `/api/v1/keys/${limited.id}`, { limits: null });
    const cleared = await chat(gw, bearer(limited.key));
    assert.equal(cleared.status, 200);
    assert.equal(cleared.headers.get("x-ratelimit-limit"), "5");

    // A new window: whole again.
    await admin(gw, "PATCH", `/api/v1/keys/${limited.id}`, { limits: { requests_per_minute: 1 } });
    assert.equal((await chat(gw, bearer(limited.key))).status, 429);
    clock.advance(60_000);
    assert.equal((await chat(gw, bearer(limited.key))).status, 200);
  } finally {
    await gw.close();
  }
});

Deno.test("a key's token limit: estimated, then reconciled; without any configured limit", async () => {
  const clock = testClock();
  clock.advance(MINUTE_START + 1_000 - Date.now());
  // No rate limit in the config at all: the key's own limits still apply.
  const gw = startGateway(keysConfig(), {}, { now: clock.now });
  try {
    const k = await createKey(gw, { name: "t", limits: { tokens_per_day: 1 } });
    const plain = await createKey(gw, { name: "p" });
    const first = await chat(gw, bearer(k.key));
    assert.equal(first.status, 200, "the first token-bearing request of a window is admitted");
    assert.equal(first.headers.get("x-ratelimit-limit"), "1");
    const second = await chat(gw, bearer(k.key));
    assert.equal(second.status, 429);
    assert.equal(second.headers.get("x-ratelimit-metric"), "tokens");
    assert.equal(second.headers.get("x-ratelimit-window"), "day");
    const other = await chat(gw, bearer(plain.key));
    assert.equal(other.status, 200);
    assert.equal(other.headers.get("x-ratelimit-limit"), null, "a key without limits: no headers");
    const usage = gw.runtime.limits!.usage().find((r) => r.scope === `key:${k.id}`);
    assert.equal(usage?.metric, "tokens");
  } finally {
    await gw.close();
  }
});

Deno.test("bad limits are a 400 in the admin API's format; nothing is created", async () => {
  const gw = startGateway(keysConfig());
  try {
    for (
      const limits of [
        { requests_per_minute: -1 },
        { requests_per_minute: 1.5 },
        { requests_per_hour: 10 },
        { tokens_per_day: "100" },
        [5],
      ]
    ) {
      const r = await admin(gw, "POST", "/api/v1/keys", { name: "bad", limits });
      assert.equal(r.status, 400, JSON.stringify(limits));
      const err = r.json.error as { message: string; type: string };
      assert.match(err.message, /^Invalid key request: limits/, err.message);
    }
    assert.equal(((await admin(gw, "GET", "/api/v1/keys")).json.data as unknown[]).length, 0);
    const k = await createKey(gw, { name: "ok" });
    const bad = await admin(gw, "PATCH", `/api/v1/keys/${k.id}`, {
      limits: { requests_per_minute: -5 },
    });
    assert.equal(bad.status, 400);
    assert.match((bad.json.error as { message: string }).message, /limits\.requests_per_minute/);
    const kept = await admin(gw, "GET", `/api/v1/keys/${k.id}`);
    assert.equal((kept.json.limits as { requests_per_minute: number }).requests_per_minute, 0);
    // Butter's alias takes the same field.
    const alias = await admin(gw, "POST", "/v1/app-keys", {
      label: "b",
      limits: { requests_per_day: 7 },
    });
    assert.equal(alias.status, 201);
    assert.equal((alias.json.limits as { requests_per_day: number }).requests_per_day, 7);
  } finally {
    await gw.close();
  }
});

Deno.test("SQLite: a key's limits survive a restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pf-key-limits-" });
  const config = keysConfig({ state: `  path: ${dir}/state.db`, appKeys: "" });
  try {
    const first = startGateway(config);
    let k: { id: string; key: string };
    try {
      k = await createKey(first, { name: "kept", limits: { requests_per_day: 1 } });
    } finally {
      await first.close();
    }
    const second = startGateway(config);
    try {
      const shown = await admin(second, "GET", `/api/v1/keys/${k.id}`);
      assert.equal((shown.json.limits as { requests_per_day: number }).requests_per_day, 1);
      assert.equal((await chat(second, bearer(k.key))).status, 200);
      const refused = await chat(second, bearer(k.key));
      assert.equal(refused.status, 429);
      assert.equal(refused.headers.get("x-ratelimit-window"), "day");
    } finally {
      await second.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Redis store: a key's limits round-trip and hold across two sidecars", async () => {
  const redis = await startRedisServer();
  const config = keysConfig({ state: `  backend: redis\n  redis: { url: "${redis.url}" }` });
  const a = startGateway(config);
  const b = startGateway(config);
  try {
    await a.runtime.limits!.shared();
    await b.runtime.limits!.shared();
    let k: { id: string; key: string } | null = null;
    for (let i = 0; i < 100 && k === null; i++) {
      // The key store's link comes up on its own: 503 until then.
      const r = await admin(a, "POST", "/api/v1/keys", {
        name: "fleet",
        limits: { requests_per_minute: 3 },
      });
      if (r.status === 201) k = { id: r.json.id as string, key: r.json.key as string };
      else await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(k !== null, "created once the key store is reachable");
    const onB = await admin(b, "GET", `/api/v1/keys/${k.id}`);
    assert.equal((onB.json.limits as { requests_per_minute: number }).requests_per_minute, 3);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      statuses.push((await chat(a, bearer(k.key))).status, (await chat(b, bearer(k.key))).status);
    }
    assert.equal(statuses.filter((s) => s === 200).length, 3, `fleet-wide: ${statuses}`);
    // PATCH on one sidecar reaches the other at once (the change notice).
    await admin(a, "PATCH", `/api/v1/keys/${k.id}`, { limits: { requests_per_minute: 10 } });
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++) {
      ok = (await chat(b, bearer(k.key))).status === 200;
      if (!ok) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(ok, "the raised limit applies on the other sidecar");
  } finally {
    await a.close();
    await b.close();
    await redis.stop();
  }
});

Deno.test("deno task keys: --requests-per-minute and friends set the key's limits", async () => {
  const { parseKeysCli } = await import("../../src/cli/keys.ts");
  const env = (name: string) => (name === "PILOTFISH_ADMIN_TOKEN" ? "t" : undefined);
  const inv = parseKeysCli(
    ["update", "key_1", "--requests-per-minute", "60", "--tokens-per-day", "0"],
    env,
  );
  assert.ok(inv !== "help");
  assert.deepEqual(inv.body, { limits: { requests_per_minute: 60, tokens_per_day: 0 } });
  assert.throws(
    () => parseKeysCli(["create", "--tokens-per-minute", "1.5"], env),
    /--tokens-per-minute must be a whole number/,
  );
  assert.throws(
    () => parseKeysCli(["list", "--requests-per-day", "5"], env),
    /--requests-per-day only applies to create and update/,
  );
});
