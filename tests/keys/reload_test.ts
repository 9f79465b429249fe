import assert from "node:assert/strict";
import { startDaemon } from "../integration/daemon.ts";
import { ADMIN, bearer } from "./support.ts";

Deno.test("hot reload keeps the key store: keys and spend carry over, new rules apply", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pf-keys-reload-" });
  const config = (requireKey: boolean) => `
server: { port: {{PORT}}, socket: {{SOCKET}}, admin_token: ${ADMIN}, reload_interval: 0 }
providers: { mock: {} }
state: { path: ${dir}/state.db }
app_keys: { enabled: true, require_key: ${requireKey} }
`;
  const d = await startDaemon(config(false));
  const call = async (path: string, init: RequestInit = {}) => {
    const r = await fetch(d.url(path), init);
    return { status: r.status, json: await r.json() };
  };
  const chat = (headers: Record<string, string>) =>
    call("/v1/chat/completions", {
      method: "POST",
      headers,
      body: JSON.stringify({ model: "mock/echo", messages: [{ role: "user", content: "hi" }] }),
    });
  try {
    const made = await call("/api/v1/keys", {
      method: "POST",
      headers: bearer(ADMIN),
      body: JSON.stringify({ name: "kept" }),
    });
    assert.equal(made.status, 201);
    assert.equal((await chat(bearer(made.json.key))).status, 200);
    assert.equal((await chat({})).status, 200);

    await Deno.writeTextFile(
      d.configPath,
      config(true).replaceAll("{{PORT}}", String(d.port)).replaceAll("{{SOCKET}}", d.socket),
    );
    const reload = await call("/api/v1/reload", { method: "POST", headers: bearer(ADMIN) });
    assert.equal(reload.json.ok, true, JSON.stringify(reload.json));

    assert.equal((await chat({})).status, 401, "require_key now applies");
    assert.equal((await chat(bearer(made.json.key))).status, 200, "the key survived the reload");
    const usage = await call(`/api/v1/keys/${made.json.id}/usage`, { headers: bearer(ADMIN) });
    assert.equal(usage.json.day.requests, 2, "counters carried over");
  } finally {
    assert.equal(await d.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a key's spend below a micro-dollar is carried across reloads, not dropped with the generation", async () => {
  const { startFakeUpstream } = await import("../fakes/fake_upstream.ts");
  const up = startFakeUpstream();
  const dir = await Deno.makeTempDir({ prefix: "pf-keys-carry-" });
  const d = await startDaemon(`
server: { port: {{PORT}}, socket: {{SOCKET}}, admin_token: ${ADMIN}, reload_interval: 0 }
providers:
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-carry-0001 }] }
pricing:
  models:
    "up/m": { input: 0.04, output: 0.04 }
state: { path: ${dir}/state.db }
app_keys: { enabled: true }
`);
  const call = async (path: string, init: RequestInit = {}) => {
    const r = await fetch(d.url(path), init);
    return { status: r.status, json: await r.json() };
  };
  try {
    const made = await call("/api/v1/keys", {
      method: "POST",
      headers: bearer(ADMIN),
      body: JSON.stringify({ name: "tiny" }),
    });
    assert.equal(made.status, 201);
    // 10 tokens at $0.04 per million: $0.0000004 each, a reload after each.
    for (let i = 0; i < 6; i++) {
      up.script({ kind: "json" });
      const r = await call("/v1/chat/completions", {
        method: "POST",
        headers: bearer(made.json.key),
        body: JSON.stringify({ model: "up/m", messages: [{ role: "user", content: "hi" }] }),
      });
      assert.equal(r.status, 200);
      const reload = await call("/api/v1/reload", { method: "POST", headers: bearer(ADMIN) });
      assert.equal(reload.json.ok, true, JSON.stringify(reload.json));
    }
    const usage = await call(`/api/v1/keys/${made.json.id}/usage`, { headers: bearer(ADMIN) });
    // 2.4 micro-dollars: 2 whole ones counted, the rest carried.
    assert.equal(usage.json.day.cost_usd, 0.000002);
  } finally {
    assert.equal(await d.stop(), 0);
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});
