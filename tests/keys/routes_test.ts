import assert from "node:assert/strict";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startFakeGemini } from "../fakes/fake_gemini.ts";
import { startFakeAnthropic } from "../fakes/fake_anthropic.ts";
import { startGateway } from "../helpers/in_process.ts";
import { ADMIN, admin, bearer, chat, createKey } from "./support.ts";

Deno.test("require_key on every route family; a key in a header never reaches the upstream", async (t) => {
  const openai = startFakeUpstream();
  const gemini = startFakeGemini();
  const gw = startGateway(`
server: { admin_token: ${ADMIN} }
providers:
  mock: {}
  openai: { base_url: "${openai.url}/v1", keys: [{ key: sk-configured }] }
  gemini: { base_url: "${gemini.url}", keys: [{ key: AIza-configured-key-000000000 }] }
app_keys:
  require_key: true
  persistence: { enabled: false }
`);
  try {
    const { key } = await createKey(gw);

    await t.step("unified chat, messages, embeddings, models: 401 without a key", async () => {
      assert.equal((await chat(gw, {})).status, 401);
      const m = await gw.request("/v1/messages", {
        method: "POST",
        body: JSON.stringify({ model: "mock/echo", max_tokens: 5, messages: [] }),
      });
      assert.equal(m.status, 401);
      const refusal = await m.json();
      assert.equal(refusal.type, "error");
      // It names where the Anthropic SDK sends a key, as the others' too.
      assert.match(refusal.error.message, /"x-api-key", "api-key", "x-goog-api-key", "\?key="/);
      const e = await gw.request("/v1/embeddings", {
        method: "POST",
        body: JSON.stringify({ model: "openai/text-embedding-3-small", input: "x" }),
      });
      assert.equal(e.status, 401);
      await e.body?.cancel();
      const l = await gw.request("/v1/models");
      assert.equal(l.status, 401);
      assert.match((await l.json()).error.message, /app key is required/);
      const ok = await gw.request("/v1/models", { headers: bearer(key) });
      assert.equal(ok.status, 200);
      await ok.body?.cancel();
      assert.equal((await chat(gw, bearer(key))).status, 200);
    });

    await t.step("a client's provider credential is not an app key", async () => {
      assert.equal((await chat(gw, { authorization: "Bearer sk-client-own" })).status, 401);
    });

    await t.step("passthrough: 401 without a key (google.rpc on /gemini)", async () => {
      // (GET /v1/models above asked the providers for their lists.)
      const [seenOpenai, seenGemini] = [openai.requests.length, gemini.requests.length];
      const g = await gw.request("/gemini/v1beta/models/gemini-2.0-flash:generateContent", {
        method: "POST",
        body: JSON.stringify({ contents: [{ parts: [{ text: "hi" }] }] }),
      });
      assert.equal(g.status, 401);
      const body = await g.json();
      assert.equal(body.error.status, "UNAUTHENTICATED");
      assert.equal(gemini.requests.length, seenGemini);
      const o = await gw.request("/openai/v1/chat/completions", {
        method: "POST",
        body: JSON.stringify({ model: "gpt-4o", messages: [] }),
      });
      assert.equal(o.status, 401);
      await o.body?.cancel();
      assert.equal(openai.requests.length, seenOpenai);
    });

    await t.step(
      "passthrough with the key in X-Butter-App-Key: stripped, configured key injected",
      async () => {
        const o = await gw.request("/openai/v1/chat/completions", {
          method: "POST",
          headers: { "x-butter-app-key": key },
          body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] }),
        });
        assert.equal(o.status, 200);
        await o.body?.cancel();
        const seen = openai.requests.at(-1)!;
        assert.equal(seen.headers.get("authorization"), "Bearer sk-configured");
        assert.equal(seen.headers.get("x-butter-app-key"), null);
        for (const [, v] of seen.headers) assert.ok(!v.includes(key), "the key was forwarded");
      },
    );

    await t.step("passthrough with a pf_ bearer: counts as no credential", async () => {
      const o = await gw.request("/openai/v1/chat/completions", {
        method: "POST",
        headers: bearer(key),
        body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] }),
      });
      assert.equal(o.status, 200);
      await o.body?.cancel();
      assert.equal(openai.requests.at(-1)!.headers.get("authorization"), "Bearer sk-configured");
    });

    await t.step("passthrough allowlist: the model in the body or the path", async () => {
      const narrow = await createKey(gw, { allowed_models: ["gemini-2.0-flash", "gpt-4o"] });
      const denied = await gw.request("/openai/v1/chat/completions", {
        method: "POST",
        headers: bearer(narrow.key),
        body: JSON.stringify({ model: "gpt-4.1", messages: [] }),
      });
      assert.equal(denied.status, 403);
      await denied.body?.cancel();
      const g = await gw.request("/gemini/v1beta/models/gemini-2.5-pro:generateContent", {
        method: "POST",
        headers: { "x-pilotfish-app-key": narrow.key },
        body: JSON.stringify({ contents: [{ parts: [{ text: "hi" }] }] }),
      });
      assert.equal(g.status, 403);
      assert.equal((await g.json()).error.status, "PERMISSION_DENIED");
      const ok = await gw.request("/gemini/v1beta/models/gemini-2.0-flash:generateContent", {
        method: "POST",
        headers: { "x-pilotfish-app-key": narrow.key },
        body: JSON.stringify({ contents: [{ parts: [{ text: "hi" }] }] }),
      });
      assert.equal(ok.status, 200);
      await ok.body?.cancel();
      const fwd = gemini.requests.at(-1)!;
      assert.equal(fwd.headers.get("x-pilotfish-app-key"), null);
    });

    await t.step("key values never appear in the log", () => {
      assert.ok(!gw.logText().includes(key));
    });
  } finally {
    await gw.close();
    await openai.close();
    await gemini.close();
  }
});

Deno.test("Butter's /v1/app-keys aliases: behind the admin token, keys named by value or id", async () => {
  const gw = startGateway(`
server: { admin_token: ${ADMIN} }
providers: { mock: {} }
app_keys: { enabled: true, persistence: { enabled: false } }
`);
  try {
    const open = await gw.request("/v1/app-keys", { method: "POST", body: "{}" });
    assert.equal(open.status, 401);
    await open.body?.cancel();
    const made = await admin(gw, "POST", "/v1/app-keys", { label: "svc", ttl_seconds: 3600 });
    assert.equal(made.status, 201);
    assert.equal(made.json.name, "svc");
    assert.equal(made.json.label, "svc", "Butter's field, beside ours");
    assert.ok(made.json.expires_at !== null);
    // Butter's ttl_seconds: 0 is no expiry, on creation and on a change.
    const forever = await admin(gw, "POST", "/v1/app-keys", { label: "f", ttl_seconds: 0 });
    assert.equal(forever.status, 201);
    assert.equal(forever.json.expires_at, null);
    const cleared = await admin(gw, "PATCH", `/v1/app-keys/${made.json.id}`, { ttl_seconds: 0 });
    assert.equal(cleared.json.expires_at, null);
    const key = made.json.key as string;
    const list = await gw.request("/v1/app-keys", { headers: bearer(ADMIN) });
    assert.ok(Array.isArray(await list.json()));
    assert.equal((await chat(gw, { "x-butter-app-key": key })).status, 200);
    const usage = await admin(gw, "GET", `/v1/app-keys/${key}/usage`);
    assert.equal(usage.status, 200);
    assert.equal((usage.json.day as { requests: number }).requests, 1);
    const byId = await admin(gw, "GET", `/v1/app-keys/${made.json.id}/usage`);
    assert.equal(byId.json.id, made.json.id);
    const patched = await admin(gw, "PATCH", `/v1/app-keys/${key}`, { allowed_models: ["x"] });
    assert.deepEqual(patched.json.allowed_models, ["x"]);
    // Butter renames by label.
    const renamed = await admin(gw, "PATCH", `/v1/app-keys/${key}`, { label: "svc-1" });
    assert.equal(renamed.status, 200, JSON.stringify(renamed.json));
    assert.equal(renamed.json.label, "svc-1");
    assert.equal(renamed.json.name, "svc-1");
    // Butter's rotation: 201 {old, new}, the new key's value in new.key, a label override.
    const rotated = await admin(gw, "POST", `/v1/app-keys/${key}/rotate`, { label: "svc-2" });
    assert.equal(rotated.status, 201);
    const fresh = rotated.json.new as { key: string; label: string; status: string };
    const old = rotated.json.old as { status: string; revoked_at: string | null };
    assert.equal(old.status, "revoked");
    assert.ok(old.revoked_at !== null && !Number.isNaN(Date.parse(old.revoked_at)));
    assert.equal(fresh.label, "svc-2");
    assert.equal(fresh.status, "active");
    assert.equal((await chat(gw, { "x-butter-app-key": key })).status, 401, "the old key");
    // The new key is known (its allowlist, kept from the PATCH above, refuses the model).
    assert.equal((await chat(gw, { "x-butter-app-key": fresh.key })).status, 403);
    // Butter's revocation: 204, no body; the key then fails.
    const revoked = await gw.request(`/v1/app-keys/${fresh.key}`, {
      method: "DELETE",
      headers: bearer(ADMIN),
    });
    assert.equal(revoked.status, 204);
    assert.equal(await revoked.text(), "");
    assert.equal((await chat(gw, { "x-butter-app-key": fresh.key })).status, 401);
    // Ours keep their shapes.
    const own = await admin(gw, "POST", "/api/v1/keys", { name: "own" });
    const ownRotated = await admin(gw, "POST", `/api/v1/keys/${own.json.id}/rotate`);
    assert.equal(ownRotated.status, 200);
    assert.equal(typeof ownRotated.json.key, "string");
    const ownRevoked = await admin(gw, "DELETE", `/api/v1/keys/${own.json.id}`);
    assert.equal(ownRevoked.json.status, "revoked");
  } finally {
    await gw.close();
  }
});

Deno.test("admin key routes: 403 while admin_token is unset, 409 while app keys are off", async () => {
  const off = startGateway(
    `providers: { mock: {} }\napp_keys: { enabled: true, persistence: { enabled: false } }`,
  );
  const noKeys = startGateway(`server: { admin_token: ${ADMIN} }\nproviders: { mock: {} }`);
  try {
    const r = await off.request("/api/v1/keys");
    assert.equal(r.status, 403);
    await r.body?.cancel();
    const alias = await off.request("/v1/app-keys");
    assert.equal(alias.status, 403);
    await alias.body?.cancel();
    const k = await admin(noKeys, "GET", "/api/v1/keys");
    assert.equal(k.status, 409);
    assert.match((k.json.error as { message: string }).message, /app_keys\.enabled/);
    // With app keys off, nothing checks keys: a pf_ bearer is just ignored.
    assert.equal((await chat(noKeys, bearer("pf_" + "y".repeat(43)))).status, 200);
  } finally {
    await off.close();
    await noKeys.close();
  }
});

Deno.test("a config key in Authorization never reaches a provider that forwards the client's credential", async (t) => {
  const openai = startFakeUpstream();
  // No keys: the client's own Authorization would be forwarded, unless it is an app key.
  const gw = startGateway(`
providers:
  openai: { base_url: "${openai.url}/v1" }
app_keys:
  require_key: true
  persistence: { enabled: false }
  keys:
    - { key: pf_config_static_key_0001, name: pf-shaped }
    - { key: butter-style-static-key, name: any-shape }
`);
  try {
    for (const key of ["pf_config_static_key_0001", "butter-style-static-key"]) {
      await t.step(key, async () => {
        for (const path of ["/v1/chat/completions", "/openai/v1/chat/completions"]) {
          const res = await gw.request(path, {
            method: "POST",
            headers: bearer(key),
            body: JSON.stringify({
              model: "openai/gpt-4o",
              messages: [{ role: "user", content: "hi" }],
            }),
          });
          assert.equal(res.status, 200, path);
          await res.body?.cancel();
          const seen = openai.requests.at(-1)!;
          for (const [, v] of seen.headers) {
            assert.ok(!v.includes(key), `${path}: the key was forwarded`);
          }
        }
      });
    }
  } finally {
    await gw.close();
    await openai.close();
  }
});

Deno.test("a config key of any shape on a native route is never forwarded: the configured key goes instead, from every place an SDK sends it", async () => {
  const openai = startFakeUpstream();
  const anthropic = startFakeUpstream();
  const gemini = startFakeGemini();
  const STATIC = "butter-style-static-key-0001";
  const gw = startGateway(`
providers:
  openai: { base_url: "${openai.url}/v1", keys: [{ key: sk-configured-openai-0001 }] }
  anthropic: { base_url: "${anthropic.url}", keys: [{ key: sk-ant-configured-0001 }] }
  gemini: { base_url: "${gemini.url}", keys: [{ key: gm-configured-key-0001 }] }
app_keys:
  persistence: { enabled: false }
  keys:
    - { key: ${STATIC}, name: any-shape }
`);
  const chatBody = JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] });
  const messagesBody = JSON.stringify({
    model: "claude-sonnet-4-5",
    max_tokens: 5,
    messages: [{ role: "user", content: "hi" }],
  });
  const geminiBody = JSON.stringify({ contents: [{ parts: [{ text: "hi" }] }] });
  const geminiPath = "/gemini/v1beta/models/gemini-2.0-flash:generateContent";
  try {
    const cases: [string, string, Record<string, string>, string, () => Headers, string][] = [
      [
        "Authorization",
        "/openai/v1/chat/completions",
        { authorization: `Bearer ${STATIC}` },
        chatBody,
        () => openai.requests.at(-1)!.headers,
        "authorization",
      ],
      [
        "x-api-key",
        "/anthropic/v1/messages",
        { "x-api-key": STATIC, "anthropic-version": "2023-06-01" },
        messagesBody,
        () => anthropic.requests.at(-1)!.headers,
        "x-api-key",
      ],
      [
        "x-goog-api-key",
        geminiPath,
        { "x-goog-api-key": STATIC },
        geminiBody,
        () => gemini.requests.at(-1)!.headers,
        "x-goog-api-key",
      ],
      [
        "?key=",
        `${geminiPath}?key=${STATIC}`,
        {},
        geminiBody,
        () => gemini.requests.at(-1)!.headers,
        "x-goog-api-key",
      ],
    ];
    for (const [how, path, headers, body, seen, credential] of cases) {
      const res = await gw.request(path, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body,
      });
      assert.equal(res.status, 200, `${how}: ${await res.text()}`);
      const sent = seen();
      for (const [name, v] of sent) assert.ok(!v.includes(STATIC), `${how}: forwarded in ${name}`);
      assert.match(sent.get(credential) ?? "", /configured/, `${how}: no configured key injected`);
    }
    assert.ok(!gemini.requests.at(-1)!.search.includes(STATIC), "forwarded in the query");
    // A pf_ key anywhere in a header value (not where a key is presented) is not forwarded.
    const created = "pf_" + "A".repeat(43);
    const res = await gw.request("/openai/v1/chat/completions", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        cookie: `k=${created}`,
        "x-note": `token ${created}`,
      },
      body: chatBody,
    });
    await res.body?.cancel();
    for (const [name, v] of openai.requests.at(-1)!.headers) {
      assert.ok(!v.includes("pf_"), `pf_ key forwarded in ${name}`);
    }
    // Nor the config key, presented in its header and written again elsewhere.
    const again = await gw.request("/openai/v1/chat/completions", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-pilotfish-app-key": STATIC,
        "x-butter-app-key": STATIC,
        "x-other": STATIC,
        cookie: `k=${STATIC}`,
        "x-extra": `token=${STATIC}`,
      },
      body: chatBody,
    });
    assert.equal(again.status, 200);
    await again.body?.cancel();
    for (const [name, v] of openai.requests.at(-1)!.headers) {
      assert.ok(!v.includes(STATIC), `the config key forwarded in ${name}`);
    }
  } finally {
    await gw.close();
    await openai.close();
    await anthropic.close();
    await gemini.close();
  }
});

Deno.test("a revoked key sent the Google SDKs' way (x-goog-api-key, ?key=) is refused too", async () => {
  const gemini = startFakeGemini();
  const gw = startGateway(`
server: { admin_token: ${ADMIN} }
providers:
  gemini: { base_url: "${gemini.url}", keys: [{ key: AIza-configured-key-000000000 }] }
app_keys:
  enabled: true
  persistence: { enabled: false }
`);
  try {
    const created = await createKey(gw);
    await admin(gw, "DELETE", `/api/v1/keys/${created.id}`);
    const path = "/gemini/v1beta/models/gemini-2.0-flash:generateContent";
    const body = JSON.stringify({ contents: [{ parts: [{ text: "hi" }] }] });
    for (
      const [where, init] of [
        ["x-goog-api-key", { headers: { "x-goog-api-key": created.key } }],
        ["?key=", { query: `?key=${created.key}` }],
      ] as const
    ) {
      const query = "query" in init ? init.query : "";
      const headers = "headers" in init ? init.headers : {};
      const res = await gw.request(`${path}${query}`, { method: "POST", headers, body });
      assert.equal(res.status, 401, where);
      assert.match((await res.json()).error.message, /revoked/, where);
    }
    assert.equal(gemini.requests.length, 0);
  } finally {
    await gw.close();
    await gemini.close();
  }
});

Deno.test("a provider/model allowlist entry allows that model on the provider's passthrough", async () => {
  await withMiniKey(async (gw, key) => {
    const ask = async (model: string) => {
      const res = await gw.request("/openai/v1/chat/completions", {
        method: "POST",
        headers: { ...bearer(key), "content-type": "application/json" },
        body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
      });
      await res.body?.cancel();
      return res.status;
    };
    assert.equal(await ask("gpt-4o-mini"), 200);
    assert.equal(await ask("gpt-4o"), 403);
  });
});

Deno.test("an upload names its model in a form field: the allowlist reads it there", async () => {
  await withMiniKey(async (gw, key, up) => {
    const send = async (models: string[]) => {
      const form = new FormData();
      form.append("file", new Blob([new Uint8Array([1, 2, 3, 255])]), "a.mp3");
      for (const m of models) form.append("model", m);
      const req = new Request("http://x/", { method: "POST", body: form });
      const body = new Uint8Array(await req.arrayBuffer());
      const res = await gw.request("/openai/v1/audio/transcriptions", {
        method: "POST",
        headers: { ...bearer(key), "content-type": req.headers.get("content-type")! },
        body,
      });
      return { res, body };
    };
    // An allowed model: relayed, byte for byte.
    const ok = await send(["gpt-4o-mini"]);
    assert.equal(ok.res.status, 200);
    await ok.res.body?.cancel();
    assert.equal(ok.res.headers.get("x-pilotfish-model"), "gpt-4o-mini");
    assert.equal(up.requests.length, 1);
    assert.equal(up.requests[0]!.body.length, new TextDecoder().decode(ok.body).length);
    // Another model: the key may not; a second model field is refused, not decided on one.
    const denied = await send(["gpt-4o"]);
    assert.equal(denied.res.status, 403);
    await denied.res.body?.cancel();
    const twice = await send(["gpt-4o-mini", "gpt-4o"]);
    assert.equal(twice.res.status, 400);
    assert.match((await twice.res.json()).error.message, /names "model" more than once/);
    // A part the runtime's parser skips but a provider's reads (Go's mime/multipart takes any
    // case and `name*=`): counted as a second model, refused, never decided on the other.
    for (const spelling of ['NAME="model"', "name*=UTF-8''model", 'name = "model"']) {
      const raw = "--b\r\n" +
        `Content-Disposition: form-data; ${spelling}\r\n\r\ngpt-4o\r\n` +
        '--b\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-4o-mini\r\n' +
        '--b\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n\r\nxyz\r\n' +
        "--b--\r\n";
      const res = await gw.request("/openai/v1/audio/transcriptions", {
        method: "POST",
        headers: { ...bearer(key), "content-type": "multipart/form-data; boundary=b" },
        body: raw,
      });
      assert.equal(res.status, 400, spelling);
      await res.body?.cancel();
    }
    assert.equal(up.requests.length, 1, "nothing else went upstream");
  });
});

Deno.test("a native body naming model twice is refused (400), not decided on one value and relayed with both", async () => {
  await withMiniKey(async (gw, key, up) => {
    const send = (body: string) =>
      gw.request("/openai/v1/chat/completions", {
        method: "POST",
        headers: { ...bearer(key), "content-type": "application/json" },
        body,
      });
    const msgs = '"messages":[{"role":"user","content":"hi"}]';
    for (
      const body of [
        `{"model":"gpt-4o","model":"gpt-4o-mini",${msgs}}`,
        `{"model":"gpt-4o","mod\\u0065l":"gpt-4o-mini",${msgs}}`,
        `{"model":"gpt-4o-mini",${msgs},"stream":false,"stream":true}`,
        // Go's encoding/json (Ollama) matches field names case-insensitively.
        `{"model":"gpt-4o-mini","MODEL":"gpt-4o",${msgs}}`,
      ]
    ) {
      const res = await send(body);
      assert.equal(res.status, 400, body);
      const err = (await res.json()).error;
      assert.equal(err.type, "invalid_request_error");
      assert.match(err.message, /names "(model|stream)" more than once/i);
    }
    assert.equal(up.requests.length, 0, "nothing went upstream");
    // The same word inside a value or a nested object is no duplicate.
    const ok = await send(
      `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\\"model\\": x, model"}],"metadata":{"model":"a"}}`,
    );
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  });
});

Deno.test("a provider/model entry is that model on that provider: not the name sent to another one", async () => {
  await withMiniKey(async (gw, key, up) => {
    const chat = async (path: string, body: Record<string, unknown>) => {
      const res = await gw.request(path, {
        method: "POST",
        headers: { ...bearer(key), "content-type": "application/json" },
        body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], ...body }),
      });
      await res.body?.cancel();
      return res.status;
    };
    const before = up.requests.length;
    // x-gateway.provider would send the literal name "openai/gpt-4o-mini" to the router.
    assert.equal(
      await chat("/v1/chat/completions", {
        model: "openai/gpt-4o-mini",
        "x-gateway": { provider: "router" },
      }),
      403,
    );
    // So would the router's own passthrough routes.
    assert.equal(
      await chat("/native/router/chat/completions", { model: "openai/gpt-4o-mini" }),
      403,
    );
    assert.equal(up.requests.length, before, "nothing went upstream");
    assert.equal(await chat("/v1/chat/completions", { model: "openai/gpt-4o-mini" }), 200);
    // A model id with a slash that names no configured provider is a model name as written.
    const { key: slashed } = await createKey(gw, { allowed_models: ["meta-llama/llama-3-8b"] });
    const res = await gw.request("/native/router/chat/completions", {
      method: "POST",
      headers: { ...bearer(slashed), "content-type": "application/json" },
      body: JSON.stringify({ model: "meta-llama/llama-3-8b", messages: [] }),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  });
});

/**
 * A gateway with two OpenAI-type providers (`openai`, `router`) on one fake upstream and an
 * app key allowed only `openai/gpt-4o-mini`, for the native-route allowlist tests.
 */
async function withMiniKey(
  fn: (
    gw: ReturnType<typeof startGateway>,
    key: string,
    up: ReturnType<typeof startFakeUpstream>,
  ) => Promise<void>,
): Promise<void> {
  const up = startFakeUpstream();
  const gw = startGateway(`
server: { admin_token: ${ADMIN} }
providers:
  openai: { base_url: "${up.url}/v1", keys: [{ key: sk-configured }] }
  router: { type: openai, base_url: "${up.url}/v1", keys: [{ key: sk-router }] }
app_keys:
  enabled: true
  persistence: { enabled: false }
`);
  try {
    const { key } = await createKey(gw, { allowed_models: ["openai/gpt-4o-mini"] });
    await fn(gw, key, up);
  } finally {
    await gw.close();
    await up.close();
  }
}

Deno.test("GET /v1/models lists what the caller's key may use; retrieve finds nothing else", async () => {
  const gw = startGateway(`
server: { admin_token: ${ADMIN} }
providers:
  openai: { base_url: "http://127.0.0.1:9/v1", keys: [{ key: sk-configured }], models: [gpt-4o-mini, gpt-4o] }
  other: { type: openai, base_url: "http://127.0.0.1:9/v1", keys: [{ key: sk-o }], models: [m1] }
app_keys:
  enabled: true
  persistence: { enabled: false }
  keys:
    - { key: pf_static_listing_key_0001, allowed_models: [openai/gpt-4o-mini] }
`);
  try {
    const ids = async (headers: Record<string, string>) =>
      ((await (await gw.request("/v1/models", { headers })).json()).data as { id: string }[])
        .map((m) => m.id).sort();
    assert.deepEqual(await ids({}), ["openai/gpt-4o", "openai/gpt-4o-mini", "other/m1"]);
    const { key } = await createKey(gw, { allowed_providers: ["other"] });
    assert.deepEqual(await ids(bearer(key)), ["other/m1"]);
    // A key from the config file, too.
    assert.deepEqual(await ids(bearer("pf_static_listing_key_0001")), ["openai/gpt-4o-mini"]);
    const hidden = await gw.request("/v1/models/openai%2Fgpt-4o", {
      headers: bearer("pf_static_listing_key_0001"),
    });
    assert.equal(hidden.status, 404);
    await hidden.body?.cancel();
    const shown = await gw.request("/v1/models/openai%2Fgpt-4o-mini", {
      headers: bearer("pf_static_listing_key_0001"),
    });
    assert.equal(shown.status, 200);
    await shown.body?.cancel();
  } finally {
    await gw.close();
  }
});

Deno.test("a pf_ key a client puts in the body's user is not sent to any provider", async (t) => {
  const openai = startFakeUpstream();
  const anthropic = startFakeAnthropic();
  const gw = startGateway(`
server: { admin_token: ${ADMIN} }
providers:
  openai: { base_url: "${openai.url}/v1", keys: [{ key: sk-configured }] }
  anthropic: { base_url: "${anthropic.url}/v1", keys: [{ key: sk-ant-configured }] }
app_keys:
  require_key: true
  persistence: { enabled: false }
`);
  try {
    const { key } = await createKey(gw);
    const post = (path: string, body: Record<string, unknown>) =>
      gw.request(path, {
        method: "POST",
        headers: { ...bearer(key), "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const messages = [{ role: "user", content: "hi" }];
    await t.step("OpenAI's user, to an OpenAI and a translated Anthropic provider", async () => {
      for (const model of ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"]) {
        const res = await post("/v1/chat/completions", { model, messages, user: key });
        assert.equal(res.status, 200, model);
        await res.body?.cancel();
      }
      const sent = JSON.parse(openai.requests.at(-1)!.body);
      assert.equal("user" in sent, false);
      assert.equal(JSON.parse(anthropic.requests.at(-1)!.body).metadata, undefined);
    });
    await t.step("Anthropic's metadata.user_id, one with the key inside it too", async () => {
      const res = await post("/v1/messages", {
        model: "anthropic/claude-sonnet-4-5",
        max_tokens: 10,
        messages,
        metadata: { user_id: `tenant-7:${key}` },
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      assert.deepEqual(JSON.parse(anthropic.requests.at(-1)!.body).metadata, {});
    });
    await t.step("a user that only looks like one (too short) goes as sent", async () => {
      const res = await post("/v1/chat/completions", {
        model: "openai/gpt-4o-mini",
        messages,
        user: "pf_user_17",
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      assert.equal(JSON.parse(openai.requests.at(-1)!.body).user, "pf_user_17");
    });
    for (const r of [...openai.requests, ...anthropic.requests]) {
      assert.equal(r.body.includes(key), false);
    }
  } finally {
    await gw.close();
    await openai.close();
    await anthropic.close();
  }
});
