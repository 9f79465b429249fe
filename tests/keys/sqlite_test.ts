import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { startGateway, testClock } from "../helpers/in_process.ts";
import { startDaemon } from "../integration/daemon.ts";
import { ADMIN, admin, bearer, chargeStage, chat, createKey, keysConfig } from "./support.ts";

Deno.test("SQLite state file: keys, budgets and spend survive a restart; only hashes at rest", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pf-keys-" });
  const path = `${dir}/state.db`;
  const clock = testClock();
  clock.advance(Date.UTC(2026, 6, 1, 8) - Date.now());
  const config = keysConfig({
    state: `  path: ${path}`,
    appKeys: "  persistence: { flush_interval: 1h }",
  });
  const opts = { now: clock.now, stages: () => [chargeStage(() => 0.4)] };
  try {
    const first = startGateway(config, {}, opts);
    let key: string, id: string;
    try {
      ({ key, id } = await createKey(first, { name: "kept", budget: { daily_usd: 0.8 } }));
      assert.equal((await chat(first, bearer(key))).status, 200);
      assert.equal((await chat(first, bearer(key))).status, 200);
      assert.equal((await chat(first, bearer(key))).status, 429);
    } finally {
      // The counters are written on close (flush_interval is an hour here).
      await first.close();
    }

    const db = new DatabaseSync(path, { readOnly: true });
    try {
      const dump = JSON.stringify(db.prepare("SELECT * FROM app_keys").all());
      assert.ok(!dump.includes(key), "the key value is not stored");
      assert.ok(dump.includes(id));
    } finally {
      db.close();
    }

    const second = startGateway(config, {}, opts);
    try {
      const r = await chat(second, bearer(key));
      assert.equal(r.status, 429, "the spend survived: still over budget");
      const u = await admin(second, "GET", `/api/v1/keys/${id}/usage`);
      assert.equal((u.json.day as { cost_usd: number }).cost_usd, 0.8);
      assert.equal((u.json.day as { requests: number }).requests, 2);
      const k = await admin(second, "GET", `/api/v1/keys/${id}`);
      assert.deepEqual(k.json.budget, { daily_usd: 0.8, monthly_usd: null });
      clock.advance(86_400_000);
      assert.equal((await chat(second, bearer(key))).status, 200);
    } finally {
      await second.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a state file that cannot be opened is one clear startup error", async () => {
  const { runCli } = await import("../integration/daemon.ts");
  const dir = await Deno.makeTempDir({ prefix: "pf-keys-" });
  try {
    const cfg = `${dir}/c.yaml`;
    await Deno.writeTextFile(
      cfg,
      `server: { port: 0, socket: "" }\nstate: { path: ${dir}/missing/dir/state.db }\napp_keys: { enabled: true }\n`,
    );
    const out = await runCli(["--config", cfg]);
    assert.equal(out.code, 1);
    assert.match(
      out.stderr,
      /^pilotfish: Cannot open the state file ".*missing\/dir\/state\.db" \(state\.path\)/,
    );
    assert.ok(!out.stderr.includes("    at "), out.stderr);
    // Deno's advice is not ours: the daemon never runs with -A.
    assert.doesNotMatch(out.stderr, /--allow-all|Startup failed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("daemon under its narrowed permissions: the state file is granted, a restart keeps keys", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pf-keys-daemon-" });
  const yaml = `
server: { port: {{PORT}}, socket: {{SOCKET}}, admin_token: ${ADMIN} }
logging: { level: debug }
providers: { mock: {} }
state: { path: ${dir}/state.db }
app_keys: { require_key: true }
`;
  const call = (d: Awaited<ReturnType<typeof startDaemon>>, path: string, init: RequestInit) =>
    fetch(d.url(path), init).then(async (r) => ({ status: r.status, json: await r.json() }));
  try {
    const a = await startDaemon(yaml);
    let key: string;
    try {
      const made = await call(a, "/api/v1/keys", {
        method: "POST",
        headers: bearer(ADMIN),
        body: JSON.stringify({ name: "daemon", budget: { monthly_usd: 5 } }),
      });
      assert.equal(made.status, 201, JSON.stringify(made.json) + a.logs());
      key = made.json.key;
      const ok = await call(a, "/v1/chat/completions", {
        method: "POST",
        headers: bearer(key),
        body: JSON.stringify({ model: "mock/echo", messages: [{ role: "user", content: "hi" }] }),
      });
      assert.equal(ok.status, 200);
    } finally {
      assert.equal(await a.stop(), 0);
    }
    // It ran in WAL mode under the planner's grants (the file and its siblings only).
    assert.ok(a.logs().includes('"permissions narrowed"'));

    const b = await startDaemon(yaml);
    try {
      const ok = await call(b, "/v1/chat/completions", {
        method: "POST",
        headers: bearer(key),
        body: JSON.stringify({ model: "mock/echo", messages: [{ role: "user", content: "hi" }] }),
      });
      assert.equal(ok.status, 200, b.logs());
      const list = await call(b, "/api/v1/keys", { headers: bearer(ADMIN) });
      const keys = list.json.data as { name: string; budget: unknown }[];
      assert.deepEqual(keys.map((k) => [k.name, k.budget]), [["daemon", {
        daily_usd: null,
        monthly_usd: 5,
      }]]);
      const id = (list.json.data as { id: string }[])[0]!.id;
      const usage = await call(b, `/api/v1/keys/${id}/usage`, { headers: bearer(ADMIN) });
      assert.equal(usage.json.month.requests, 2, "both daemons' requests counted");
      const missing = await call(b, "/v1/chat/completions", {
        method: "POST",
        body: JSON.stringify({ model: "mock/echo", messages: [] }),
      });
      assert.equal(missing.status, 401);
    } finally {
      assert.equal(await b.stop(), 0);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Butter's persistence path holding its bbolt file: left as it is, keys kept beside it, under the narrowed permissions", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pf-keys-bbolt-" });
  const bbolt = `${dir}/butter-appkeys.db`;
  // A bbolt file starts with its meta page, nothing like SQLite's header.
  const original = new Uint8Array(4096).fill(0xed, 0, 16);
  await Deno.writeFile(bbolt, original);
  const yaml = `
server: { port: {{PORT}}, socket: {{SOCKET}}, admin_token: ${ADMIN} }
providers: { mock: {} }
app_keys:
  enabled: true
  persistence: { enabled: true, path: ${bbolt}, flush_interval: 30s }
`;
  try {
    const d = await startDaemon(yaml);
    try {
      await d.waitForLog("is not a SQLite file");
      const made = await fetch(d.url("/api/v1/keys"), {
        method: "POST",
        headers: bearer(ADMIN),
        body: JSON.stringify({ name: "beside" }),
      });
      assert.equal(made.status, 201, d.logs());
      await made.body?.cancel();
    } finally {
      assert.equal(await d.stop(), 0);
    }
    assert.deepEqual(await Deno.readFile(bbolt), original);
    const db = new DatabaseSync(`${bbolt}.pilotfish.sqlite`, { readOnly: true });
    try {
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all();
      assert.ok(tables.length > 0);
    } finally {
      db.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
