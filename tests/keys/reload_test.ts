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
