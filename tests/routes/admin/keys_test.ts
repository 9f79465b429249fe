import assert from "node:assert/strict";
import { startFakeUpstream } from "../../fakes/fake_upstream.ts";
import { closedPort, startGateway } from "../../helpers/in_process.ts";

const TOKEN = "adm-routes-token";
const auth = { authorization: `Bearer ${TOKEN}` };

Deno.test("admin key routes: every one needs the admin token, over /api/v1 and Butter's aliases", async () => {
  const gw = startGateway(`
server: { admin_token: ${TOKEN} }
providers: { mock: {} }
app_keys: { enabled: true, persistence: { enabled: false } }
`);
  try {
    const routes: [string, string][] = [
      ["GET", "/api/v1/keys"],
      ["POST", "/api/v1/keys"],
      ["GET", "/api/v1/keys/key_x"],
      ["PATCH", "/api/v1/keys/key_x"],
      ["DELETE", "/api/v1/keys/key_x"],
      ["POST", "/api/v1/keys/key_x/rotate"],
      ["GET", "/api/v1/keys/key_x/usage"],
      ["GET", "/api/v1/providers/status"],
      ["GET", "/v1/app-keys"],
      ["POST", "/v1/app-keys"],
      ["GET", "/v1/app-keys/key_x/usage"],
      ["PATCH", "/v1/app-keys/key_x"],
      ["DELETE", "/v1/app-keys/key_x"],
      ["POST", "/v1/app-keys/key_x/rotate"],
    ];
    for (const [method, path] of routes) {
      for (const headers of [{}, { authorization: "Bearer nope" }]) {
        const r = await gw.request(path, { method, headers, body: method === "GET" ? null : "{}" });
        assert.equal(r.status, 401, `${method} ${path}`);
        await r.body?.cancel();
      }
    }
    // With the token, an unknown id is a 404 in OpenAI's shape.
    const r = await gw.request("/api/v1/keys/key_x/usage", { headers: auth });
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error.code, "not_found");
    // An answer that shows a key value is never cached.
    const made = await gw.request("/api/v1/keys", { method: "POST", headers: auth, body: "{}" });
    assert.equal(made.status, 201);
    assert.equal(made.headers.get("cache-control"), "no-store");
    await made.body?.cancel();
  } finally {
    await gw.close();
  }
});

Deno.test("GET /api/v1/providers/status: health, key cooldowns and the circuit per provider", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
server: { admin_token: ${TOKEN} }
providers:
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-up }] }
  down: { type: openai, base_url: "http://127.0.0.1:${closedPort()}/v1", keys: [{ key: sk-down }] }
  nokey: { type: openai, base_url: "${up.url}/v1" }
features:
  circuit_breaker: { enabled: true }
`);
  try {
    // One call to the closed port, so `down` is known to be unreachable.
    const miss = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: JSON.stringify({ model: "down/gpt-4o", messages: [{ role: "user", content: "hi" }] }),
    });
    await miss.body?.cancel();
    const r = await gw.request("/api/v1/providers/status", { headers: auth });
    assert.equal(r.status, 200);
    const body = await r.json();
    const by = Object.fromEntries(
      (body.providers as { name: string }[]).map((p) => [p.name, p as Record<string, unknown>]),
    );
    assert.deepEqual(Object.keys(by).sort(), ["down", "nokey", "up"]);
    assert.equal(by.up!.status, "healthy");
    assert.equal(by.down!.status, "unreachable");
    assert.equal(by.nokey!.status, "unconfigured");
    assert.equal((by.up!.circuit as { state: string }).state, "closed");
    assert.ok(Array.isArray(by.up!.keys));
    assert.equal(body.circuit_breaker.enabled, true);
    assert.equal(body.circuit_breaker.backend, "memory");
    assert.ok(!JSON.stringify(body).includes("sk-up"), "keys are never shown");
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("admin key routes: a body that is JSON but not an object is a 400, never an empty body", async () => {
  const gw = startGateway(`
server: { admin_token: ${TOKEN} }
providers: { mock: {} }
app_keys: { enabled: true, persistence: { enabled: false } }
`);
  try {
    const made = await gw.request("/api/v1/keys", {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ name: "svc" }),
    });
    assert.equal(made.status, 201);
    const { id } = await made.json();
    for (const body of ["[]", "null", "[1,2]", '"x"', "7"]) {
      const create = await gw.request("/api/v1/keys", { method: "POST", headers: auth, body });
      assert.equal(create.status, 400, `POST ${body}`);
      assert.match((await create.json()).error.message, /Body must be a JSON object/);
      const patch = await gw.request(`/api/v1/keys/${id}`, {
        method: "PATCH",
        headers: auth,
        body,
      });
      assert.equal(patch.status, 400, `PATCH ${body}`);
      await patch.body?.cancel();
    }
    // Not JSON at all: said so, with the parser's reason.
    for (const body of ["{bad", '{"name": }']) {
      const create = await gw.request("/api/v1/keys", { method: "POST", headers: auth, body });
      assert.equal(create.status, 400, `POST ${body}`);
      const { error } = await create.json();
      assert.match(error.message, /^Body must be a JSON object; it is not valid JSON \(/);
      assert.equal(error.param, "body");
    }
    const list = await (await gw.request("/api/v1/keys", { headers: auth })).json();
    assert.equal(list.data?.length ?? list.keys?.length, 1, "no key was made from [] or null");
  } finally {
    await gw.close();
  }
});

Deno.test("admin key routes read a gzip body as the unified routes do; an encoding they cannot read is a 415", async () => {
  const gw = startGateway(`
server: { admin_token: ${TOKEN} }
providers: { mock: {} }
app_keys: { enabled: true, persistence: { enabled: false } }
`);
  try {
    const gz = new Uint8Array(
      await new Response(
        new Blob([JSON.stringify({ name: "gz" })]).stream().pipeThrough(
          new CompressionStream("gzip"),
        ),
      ).arrayBuffer(),
    );
    const made = await gw.request("/api/v1/keys", {
      method: "POST",
      headers: { ...auth, "content-encoding": "gzip" },
      body: gz,
    });
    assert.equal(made.status, 201);
    assert.equal((await made.json()).name, "gz");
    const br = await gw.request("/api/v1/keys", {
      method: "POST",
      headers: { ...auth, "content-encoding": "br" },
      body: JSON.stringify({ name: "br" }),
    });
    assert.equal(br.status, 415);
    await br.body?.cancel();
    const list = await (await gw.request("/api/v1/keys", { headers: auth })).json();
    assert.equal(list.data?.length ?? list.keys?.length, 1, "no key was made from the br body");
  } finally {
    await gw.close();
  }
});

Deno.test("admin key routes: out-of-range expiries, budgets and lists are 400s naming the field; nothing is stored", async () => {
  const gw = startGateway(`
server: { admin_token: ${TOKEN} }
providers: { mock: {} }
app_keys: { enabled: true, persistence: { enabled: false } }
`);
  try {
    const made = await gw.request("/api/v1/keys", {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ name: "svc" }),
    });
    const { id } = await made.json();
    const cases: [string, RegExp][] = [
      // 1e20 s made a time no Date holds: a 500, the key stored, every listing a 500 after.
      ['{"ttl_seconds":1e20}', /ttl_seconds: At most 100 years/],
      ['{"expires_at":"1"}', /expires_at: Must be an ISO 8601 time/],
      ['{"expires_at":"hello 2025"}', /expires_at: Must be an ISO 8601 time/],
      // V8 reads a day that does not exist as a later one (March 2nd): refused, not moved.
      ['{"expires_at":"2027-02-30"}', /expires_at: Must be an ISO 8601 time/],
      // JSON.parse reads 1e309 as Infinity: no budget at all, silently.
      ['{"budget":{"daily_usd":1e309}}', /budget\.daily_usd: Must be a finite number/],
      ['{"name":"a","label":"b"}', /give name or label/],
      [
        JSON.stringify({ allowed_models: Array.from({ length: 1001 }, (_, i) => `m${i}`) }),
        /allowed_models: At most 1,000/,
      ],
    ];
    for (const [body, message] of cases) {
      const create = await gw.request("/api/v1/keys", { method: "POST", headers: auth, body });
      assert.equal(create.status, 400, `POST ${body.slice(0, 60)}`);
      assert.match((await create.json()).error.message, message);
      const patch = await gw.request(`/api/v1/keys/${id}`, {
        method: "PATCH",
        headers: auth,
        body,
      });
      assert.equal(patch.status, 400, `PATCH ${body.slice(0, 60)}`);
      await patch.body?.cancel();
    }
    const past = await gw.request("/api/v1/keys", {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ expires_at: "2020-01-01T00:00:00Z" }),
    });
    assert.equal(past.status, 400);
    assert.match((await past.json()).error.message, /expires_at is in the past/);
    const list = await gw.request("/api/v1/keys", { headers: auth });
    assert.equal(list.status, 200);
    const keys = await list.json();
    assert.equal(keys.data?.length ?? keys.keys?.length, 1, "only the first key was made");
    const ok = await gw.request("/api/v1/keys", {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ expires_at: "2999-01-31", ttl_seconds: undefined }),
    });
    assert.equal(ok.status, 201);
    assert.equal((await ok.json()).expires_at, "2999-01-31T00:00:00.000Z");
  } finally {
    await gw.close();
  }
});

Deno.test("admin routes: a body over server.max_body_bytes is a 413, not read whole", async () => {
  const gw = startGateway(`
server: { admin_token: ${TOKEN}, max_body_bytes: 1024 }
providers: { mock: {} }
app_keys: { enabled: true, persistence: { enabled: false } }
`);
  try {
    const big = JSON.stringify({ name: "x".repeat(4096) });
    for (const path of ["/api/v1/keys", "/api/v1/breaker/reset"]) {
      const res = await gw.request(path, { method: "POST", headers: auth, body: big });
      assert.equal(res.status, 413, path);
      assert.match((await res.json()).error.message, /exceeds the limit of 1024 bytes/);
    }
    // Within the limit, as before; bytes that are not UTF-8 are a 400.
    const made = await gw.request("/api/v1/keys", {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ name: "svc" }),
    });
    assert.equal(made.status, 201);
    await made.body?.cancel();
    const bad = await gw.request("/api/v1/keys", {
      method: "POST",
      headers: auth,
      body: new Uint8Array([0x7b, 0xff, 0x7d]),
    });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
  } finally {
    await gw.close();
  }
});
