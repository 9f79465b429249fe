import assert from "node:assert/strict";
import { ConfigError, parseConfigText } from "../../src/config/mod.ts";
import { appKeysEnabled, keyStorage } from "../../src/keys/mod.ts";
import { secretsOf } from "../../src/runtime.ts";
import { startGateway, testClock } from "../helpers/in_process.ts";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { admin, bearer, chat } from "./support.ts";

const load = (yaml: string) => parseConfigText(yaml, () => undefined, "t.yaml");

Deno.test("without require_key, a Butter key the store does not know is no key; an unknown pf_ key is refused", async () => {
  // A migrating Butter fleet: keys Butter vended at runtime (its bbolt store) do not come along.
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  mock: {}
  openai: { base_url: "${up.url}/v1", keys: [{ key: sk-up-0001 }] }
app_keys:
  enabled: true
  require_key: false
  header: X-Butter-App-Key
  keys: [{ key: btr_static_key_for_ci_0001, label: ci }]
`);
  try {
    assert.equal((await chat(gw, { "x-butter-app-key": "btr_abcdefghijklmnopqrst" })).status, 200);
    assert.equal((await chat(gw, {})).status, 200);
    // Let through as none, it is still not forwarded.
    const res = await gw.request("/openai/v1/chat/completions", {
      method: "POST",
      headers: {
        "x-butter-app-key": "btr_abcdefghijklmnopqrst",
        "content-type": "application/json",
      },
      body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.equal(up.requests.at(-1)?.headers.get("x-butter-app-key"), null);
    assert.equal((await chat(gw, { "x-butter-app-key": "pf_" + "x".repeat(43) })).status, 401);
    assert.equal((await chat(gw, bearer("pf_" + "y".repeat(43)))).status, 401);
  } finally {
    await gw.close();
    await up.close();
  }
  // With require_key, unknown is unknown.
  const strict = startGateway(`
providers: { mock: {} }
app_keys: { enabled: true, require_key: true, header: X-Butter-App-Key }
`);
  try {
    assert.equal(
      (await chat(strict, { "x-butter-app-key": "btr_abcdefghijklmnopqrst" })).status,
      401,
    );
  } finally {
    await strict.close();
  }
});

Deno.test("Butter's app_keys block loads unchanged and means what it meant", async () => {
  // Butter's config.example.yaml shape: enabled, require_key, header, default_ttl, keys[]
  // with label / allowed_models / allowed_providers, persistence (bbolt there, SQLite here).
  const yaml = `
server: { admin_token: adm-token-0001 }
providers: { mock: {} }
app_keys:
  enabled: true
  require_key: true
  header: X-Butter-App-Key
  default_ttl: 720h
  keys:
    - key: btr_static_key_for_ci_0001
      label: ci
      allowed_models: [mock/echo]
    - key: pf_static_other_key_000002
      label: other
      allowed_providers: [openai]
  persistence:
    enabled: false
    flush_interval: 30s
`;
  const { config, warnings } = load(yaml);
  assert.deepEqual(warnings, []);
  assert.equal(appKeysEnabled(config), true);
  assert.equal(config.app_keys.default_ttl, 720 * 3600_000);
  assert.deepEqual(keyStorage(config), { kind: "memory" });
  // Static key values are secrets: the log redactor masks them wherever they would appear.
  assert.ok(secretsOf(config).includes("btr_static_key_for_ci_0001"));

  const clock = testClock();
  const gw = startGateway(yaml, {}, { now: clock.now });
  try {
    // The static key, in Butter's header or as a bearer.
    assert.equal(
      (await chat(gw, { "x-butter-app-key": "btr_static_key_for_ci_0001" })).status,
      200,
    );
    assert.equal((await chat(gw, bearer("btr_static_key_for_ci_0001"))).status, 200);
    assert.equal(
      (await chat(gw, { "x-butter-app-key": "btr_static_key_for_ci_0001" }, "mock/slow")).status,
      403,
    );
    assert.equal((await chat(gw, bearer("pf_static_other_key_000002"))).status, 403);
    // With a custom header, only it (and the bearer) carry keys.
    assert.equal(
      (await chat(gw, { "x-pilotfish-app-key": "btr_static_key_for_ci_0001" })).status,
      401,
    );

    const list = await gw.request("/api/v1/keys", { headers: bearer("adm-token-0001") });
    const keys = (await list.json()).data as { id: string; name: string; source: string }[];
    assert.deepEqual(keys.map((k) => [k.name, k.source]), [["ci", "config"], ["other", "config"]]);
    assert.ok(!JSON.stringify(keys).includes("static_key_for_ci"));
    const ci = keys[0]!.id;
    const revoke = await gw.request(`/api/v1/keys/${ci}`, {
      method: "DELETE",
      headers: bearer("adm-token-0001"),
    });
    assert.equal(revoke.status, 409);
    assert.match((await revoke.json()).error.message, /defined in the config/);
    const usage = await gw.request(`/api/v1/keys/${ci}/usage`, {
      headers: bearer("adm-token-0001"),
    });
    assert.equal((await usage.json()).day.requests, 2);

    // default_ttl applies to created keys.
    const made = await gw.request("/api/v1/keys", {
      method: "POST",
      headers: bearer("adm-token-0001"),
      body: "{}",
    });
    const body = await made.json();
    assert.equal(Date.parse(body.expires_at) - clock.now() <= 720 * 3600_000, true);
    clock.advance(721 * 3600_000);
    assert.equal((await chat(gw, { "x-butter-app-key": body.key })).status, 401);
  } finally {
    await gw.close();
  }
});

Deno.test("examples/config/app_keys.yaml loads and plans exactly its state file", async () => {
  const text = await Deno.readTextFile(
    new URL("../../examples/config/app_keys.yaml", import.meta.url),
  );
  const env: Record<string, string> = {
    PILOTFISH_ADMIN_TOKEN: "adm-example",
    OPENAI_API_KEY: "sk-example",
    CI_APP_KEY: "pf_example_static_key_0001",
  };
  const { config, warnings } = parseConfigText(text, (n) => env[n], "app_keys.yaml");
  assert.deepEqual(warnings, []);
  assert.equal(config.app_keys.require_key, true);
  assert.deepEqual(keyStorage(config), {
    kind: "sqlite",
    path: "pilotfish-state.db",
    flushMs: 1000,
  });
  assert.deepEqual(config.app_keys.keys[0]?.budget, { daily_usd: 5, monthly_usd: 50 });
});

Deno.test("app_keys: on by default once the block asks for keys; bad values name their key", () => {
  assert.equal(appKeysEnabled(load("providers: { mock: {} }").config), false);
  assert.equal(appKeysEnabled(load("app_keys: { require_key: true }").config), true);
  assert.equal(
    appKeysEnabled(load("app_keys: { require_key: true, enabled: false }").config),
    false,
  );
  const c = load("state: { path: /data/pf.db }\napp_keys: { enabled: true }").config;
  assert.deepEqual(keyStorage(c), { kind: "sqlite", path: "/data/pf.db", flushMs: 1000 });

  const bad = `
app_keys:
  header: "not a header"
  default_ttl: forever
  keys: [{ key: short, budget: { daily_usd: 0 } }]
  colour: red
`;
  assert.throws(() => load(bad), (e) => {
    assert.ok(e instanceof ConfigError);
    const text = e.problems.join("\n");
    assert.match(text, /app_keys\.header/);
    assert.match(text, /app_keys\.default_ttl/);
    assert.match(text, /app_keys\.keys\[0\]\.key/);
    assert.match(text, /app_keys\.keys\[0\]\.budget\.daily_usd/);
    return true;
  });
  const { warnings } = load("app_keys: { colour: red }");
  assert.deepEqual(warnings, ["app_keys.colour: Unknown key, ignored"]);
});

Deno.test("the admin API rejects bodies that are not JSON objects", async () => {
  const gw = startGateway(
    `server: { admin_token: adm }\napp_keys: { enabled: true, persistence: { enabled: false } }`,
  );
  try {
    const r = await gw.request("/api/v1/keys", {
      method: "POST",
      headers: bearer("adm"),
      body: "{nope",
    });
    assert.equal(r.status, 400);
    assert.match((await r.json()).error.message, /JSON object/);
    const arr = await admin(
      { request: (p, i) => gw.request(p, { ...i, headers: bearer("adm") }) },
      "POST",
      "/api/v1/keys",
      [1],
    );
    assert.equal(arr.status, 400);
  } finally {
    await gw.close();
  }
});
