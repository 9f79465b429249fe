import assert from "node:assert/strict";
import { startGateway } from "../../helpers/in_process.ts";

const BASE = `
providers:
  mock:
    type: mock
features:
  circuit_breaker:
    enabled: true
`;

Deno.test("admin API: 403 while server.admin_token is unset", async () => {
  const gw = startGateway(BASE);
  try {
    const res = await gw.request("/api/v1/breaker/reset", { method: "POST" });
    assert.equal(res.status, 403);
    const body = await res.json();
    assert.match(body.error.message, /server\.admin_token/);
  } finally {
    await gw.close();
  }
});

Deno.test("admin API: 401 without the right bearer, 200 with it", async () => {
  const gw = startGateway(`server:\n  admin_token: s3cret-token\n${BASE}`);
  try {
    for (const auth of [undefined, "Bearer wrong", "Basic s3cret-token", "Bearer s3cret-tokenX"]) {
      const headers: Record<string, string> = auth ? { authorization: auth } : {};
      const res = await gw.request("/api/v1/breaker/reset", { method: "POST", headers });
      assert.equal(res.status, 401, `auth ${auth}`);
      const body = await res.json();
      assert.ok(!JSON.stringify(body).includes("s3cret"), "the token is never echoed");
    }
    const ok = await gw.request("/api/v1/breaker/reset", {
      method: "POST",
      headers: { authorization: "Bearer s3cret-token" },
    });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { reset: [] });
    const bad = await gw.request("/api/v1/breaker/reset", {
      method: "POST",
      headers: { authorization: "Bearer s3cret-token" },
      body: "{nope",
    });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    // A body that is not {"key": …} resets nothing (it used to reset every key).
    for (const body of ["[]", "null", '"mock"', '{"provider":"mock"}', '{"key":1}', '{"key":""}']) {
      const res = await gw.request("/api/v1/breaker/reset", {
        method: "POST",
        headers: { authorization: "Bearer s3cret-token" },
        body,
      });
      assert.equal(res.status, 400, body);
      assert.equal((await res.json()).error.type, "invalid_request_error", body);
    }
    const unknown = await gw.request("/api/v1/breaker/reset", {
      method: "POST",
      headers: { authorization: "Bearer s3cret-token" },
      body: '{"key":"nope:gpt-4o"}',
    });
    assert.equal(unknown.status, 404);
    assert.match(
      (await unknown.json()).error.message,
      /"nope" is not a configured provider\. Configured: mock/,
    );
    const one = await gw.request("/api/v1/breaker/reset", {
      method: "POST",
      headers: { authorization: "Bearer s3cret-token" },
      body: '{"key":"mock:echo"}',
    });
    assert.equal(one.status, 200);
    await one.body?.cancel();
  } finally {
    await gw.close();
  }
});

Deno.test("admin API: reload without a config file says why, 422", async () => {
  const gw = startGateway(`server:\n  admin_token: t\n${BASE}`);
  try {
    const res = await gw.request("/api/v1/reload", {
      method: "POST",
      headers: { authorization: "Bearer t" },
    });
    assert.equal(res.status, 422);
    const body = await res.json();
    assert.equal(body.ok, false);
    assert.match(body.problems[0], /not read from a file/);
  } finally {
    await gw.close();
  }
});
