import assert from "node:assert/strict";
import { startGateway, testClock } from "../helpers/in_process.ts";
import { admin, bearer, chat, createKey, keysConfig } from "./support.ts";

Deno.test("app keys through the admin API: create (shown once), use, revoke, expire, rotate", async (t) => {
  const clock = testClock();
  const gw = startGateway(keysConfig(), {}, { now: clock.now });
  try {
    const { id, key } = await createKey(gw, { name: "ci", owner: "team-a" });

    await t.step("the value is pf_ + 256 bits, shown only at creation", async () => {
      assert.match(key, /^pf_[A-Za-z0-9_-]{43}$/);
      assert.match(id, /^key_[0-9a-f]{16}$/);
      const got = await admin(gw, "GET", `/api/v1/keys/${id}`);
      assert.equal(got.status, 200);
      assert.equal(got.json.key, undefined);
      assert.equal(got.json.name, "ci");
      assert.equal(got.json.owner, "team-a");
      assert.equal(got.json.status, "active");
      assert.ok(!JSON.stringify(got.json).includes(key.slice(3, 20)));
      const list = await admin(gw, "GET", "/api/v1/keys");
      assert.deepEqual((list.json.data as { id: string }[]).map((k) => k.id), [id]);
      assert.ok(!JSON.stringify(list.json).includes(key.slice(3, 20)));
    });

    await t.step("a request with the key goes through and is counted", async () => {
      const r = await chat(gw, bearer(key));
      assert.equal(r.status, 200);
      const usage = await admin(gw, "GET", `/api/v1/keys/${id}/usage`);
      assert.equal((usage.json.day as { requests: number }).requests, 1);
      assert.equal((usage.json.month as { requests: number }).requests, 1);
    });

    await t.step("a stream is counted when it ends, with its tokens", async () => {
      const res = await gw.request("/v1/chat/completions", {
        method: "POST",
        headers: bearer(key),
        body: JSON.stringify({
          model: "mock/echo",
          stream: true,
          stream_options: { include_usage: true },
          messages: [{ role: "user", content: "hello there" }],
        }),
      });
      assert.equal(res.status, 200);
      assert.match(await res.text(), /\[DONE\]/);
      const usage = await admin(gw, "GET", `/api/v1/keys/${id}/usage`);
      const day = usage.json.day as { requests: number; tokens: number };
      assert.equal(day.requests, 2);
      assert.ok(day.tokens > 0);
    });

    await t.step("an unknown key is 401 in the route's format, without the value", async () => {
      const bogus = "pf_" + "x".repeat(43);
      const r = await chat(gw, bearer(bogus));
      assert.equal(r.status, 401);
      assert.equal((r.json.error as { code: string }).code, "unauthenticated");
      assert.ok(!JSON.stringify(r.json).includes(bogus));
      const m = await gw.request("/v1/messages", {
        method: "POST",
        headers: { "x-api-key": "unused", "x-pilotfish-app-key": bogus },
        body: JSON.stringify({ model: "mock/echo", max_tokens: 5, messages: [] }),
      });
      assert.equal(m.status, 401);
      const body = await m.json();
      assert.equal(body.type, "error");
      assert.equal(body.error.type, "authentication_error");
    });

    await t.step("without require_key, no key at all is fine", async () => {
      assert.equal((await chat(gw, {})).status, 200);
    });

    let fresh = "";
    await t.step("rotate: the new value works, the old one is 401", async () => {
      const r = await admin(gw, "POST", `/api/v1/keys/${id}/rotate`);
      assert.equal(r.status, 200);
      fresh = r.json.key as string;
      assert.notEqual(fresh, key);
      assert.equal(r.json.id, id);
      assert.equal((await chat(gw, bearer(key))).status, 401);
      assert.equal((await chat(gw, bearer(fresh))).status, 200);
    });

    await t.step("revoke (DELETE): 401 naming the key id", async () => {
      const d = await admin(gw, "DELETE", `/api/v1/keys/${id}`);
      assert.equal(d.status, 200);
      assert.equal(d.json.status, "revoked");
      const denied = await chat(gw, bearer(fresh));
      assert.equal(denied.status, 401);
      assert.match((denied.json.error as { message: string }).message, /revoked/);
      const again = await admin(gw, "POST", `/api/v1/keys/${id}/rotate`);
      assert.equal(again.status, 409);
    });

    await t.step("expire: a key past expires_at is 401, PATCH extends it", async () => {
      const k = await createKey(gw, { name: "short", ttl_seconds: 60 });
      assert.equal((await chat(gw, bearer(k.key))).status, 200);
      clock.advance(61_000);
      const r = await chat(gw, bearer(k.key));
      assert.equal(r.status, 401);
      assert.match((r.json.error as { message: string }).message, /expired at/);
      const p = await admin(gw, "PATCH", `/api/v1/keys/${k.id}`, { expires_at: null });
      assert.equal(p.status, 200);
      assert.equal(p.json.expires_at, null);
      assert.equal((await chat(gw, bearer(k.key))).status, 200);
    });

    await t.step("bad admin input: 400 naming the field; unknown id 404", async () => {
      const bad = await admin(gw, "POST", "/api/v1/keys", { name: 3, budget: { daily_usd: -1 } });
      assert.equal(bad.status, 400);
      const msg = (bad.json.error as { message: string }).message;
      assert.match(msg, /name/);
      assert.match(msg, /budget\.daily_usd/);
      const both = await admin(gw, "POST", "/api/v1/keys", {
        ttl_seconds: 5,
        expires_at: "2030-01-01T00:00:00Z",
      });
      assert.equal(both.status, 400);
      assert.match((both.json.error as { message: string }).message, /not both/);
      const unknown = await admin(gw, "POST", "/api/v1/keys", { colour: "red" });
      assert.equal(unknown.status, 400);
      assert.equal((await admin(gw, "GET", "/api/v1/keys/key_nope")).status, 404);
      const patch = await admin(gw, "PATCH", `/api/v1/keys/${id}`, { expires_at: "soon" });
      assert.equal(patch.status, 400);
    });

    await t.step(
      "bad admin input: a provider not configured, a limit past counting, a NUL",
      async () => {
        const cases: [Record<string, unknown>, RegExp][] = [
          [{ allowed_providers: ["mock", "opnai"] }, /"opnai" is not a configured provider/],
          [{ limits: { requests_per_minute: 1e300 } }, /limits\.requests_per_minute: At most/],
          [{ budget: { monthly_usd: 1e15 } }, /budget\.monthly_usd: At most/],
          [{ name: "a\u0000b" }, /name: Must not hold control characters/],
          [{ allowed_models: ["mock/echo\n"] }, /allowed_models\.0: Must not hold control/],
        ];
        for (const [body, message] of cases) {
          for (
            const [method, path] of [["POST", "/api/v1/keys"], ["PATCH", `/api/v1/keys/${id}`]]
          ) {
            const r = await admin(gw, method!, path!, body);
            assert.equal(r.status, 400, JSON.stringify(body));
            assert.match((r.json.error as { message: string }).message, message);
          }
        }
        // The largest that can be counted, and a provider the config has, are taken.
        const ok = await admin(gw, "PATCH", `/api/v1/keys/${id}`, {
          allowed_providers: ["mock"],
          limits: { requests_per_minute: Number.MAX_SAFE_INTEGER },
        });
        assert.equal(ok.status, 200, JSON.stringify(ok.json));
        const back = await admin(gw, "PATCH", `/api/v1/keys/${id}`, {
          allowed_providers: null,
          limits: null,
        });
        assert.equal(back.status, 200);
      },
    );
  } finally {
    await gw.close();
  }
});

Deno.test("model and provider allowlists: 403 in the route's format; allowed models pass", async () => {
  // A second provider for a key to be limited to (a key may name only configured ones).
  const gw = startGateway(
    keysConfig({ more: `routing:\n  aliases:\n    fast: mock/echo` }).replace(
      "  mock: {}",
      '  mock: {}\n  openai: { base_url: "http://127.0.0.1:9/v1", keys: [{ key: sk-x }] }',
    ),
  );
  try {
    const only = await createKey(gw, { name: "narrow", allowed_models: ["mock/echo"] });
    assert.equal((await chat(gw, bearer(only.key), "mock/echo")).status, 200);
    // An alias that routes to an allowed model is allowed.
    assert.equal((await chat(gw, bearer(only.key), "fast")).status, 200);
    const denied = await chat(gw, bearer(only.key), "mock/slow");
    assert.equal(denied.status, 403);
    assert.equal((denied.json.error as { code: string }).code, "forbidden");
    assert.match((denied.json.error as { message: string }).message, /mock\/slow/);

    const wild = await createKey(gw, { name: "wild", allowed_models: ["mock/e*"] });
    assert.equal((await chat(gw, bearer(wild.key), "mock/echo")).status, 200);
    assert.equal((await chat(gw, bearer(wild.key), "mock/slow")).status, 403);

    const prov = await createKey(gw, { name: "prov", allowed_providers: ["openai"] });
    assert.equal((await chat(gw, bearer(prov.key), "mock/echo")).status, 403);
  } finally {
    await gw.close();
  }
});
