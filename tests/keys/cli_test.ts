import assert from "node:assert/strict";
import { KeysCliError, parseKeysCli } from "../../src/cli/keys.ts";
import { startDaemon } from "../integration/daemon.ts";
import { ADMIN } from "./support.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** `deno task keys …` as a user runs it. */
async function keysTask(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command("deno", {
    args: ["task", "--quiet", "keys", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("parseKeysCli() builds the admin call; bad input is one clear message", () => {
  const env = (name: string) => (name === "PILOTFISH_ADMIN_TOKEN" ? "t0k" : undefined);
  assert.deepEqual(
    parseKeysCli([
      "create",
      "--name",
      "ci",
      "--models",
      "gpt-4o,mock/*",
      "--daily-usd",
      "2.5",
      "--ttl",
      "3600",
    ], env),
    {
      command: "create",
      method: "POST",
      path: "/keys",
      body: {
        name: "ci",
        allowed_models: ["gpt-4o", "mock/*"],
        budget: { daily_usd: 2.5 },
        ttl_seconds: 3600,
      },
      socket: "/tmp/pilotfish.sock",
      token: "t0k",
    },
  );
  const usage = parseKeysCli(["usage", "key_1", "--url", "http://127.0.0.1:9002/"], env);
  assert.ok(usage !== "help");
  assert.equal(usage.path, "/keys/key_1/usage");
  assert.equal(usage.url, "http://127.0.0.1:9002");
  const clear = parseKeysCli(
    ["update", "key_1", "--monthly-usd", "none", "--expires-at", "never"],
    env,
  );
  assert.ok(clear !== "help");
  assert.deepEqual(clear.body, { budget: { monthly_usd: null }, expires_at: null });
  assert.equal(parseKeysCli([], env), "help");

  const bad: [string[], RegExp][] = [
    [["frobnicate"], /Unknown command "frobnicate"/],
    [["revoke"], /"revoke" needs a key id/],
    [["list", "x"], /"list" takes no id/],
    [["create", "--daily-usd", "lots"], /--daily-usd must be a positive number/],
    [["create", "--ttl", "1.5"], /--ttl must be a whole number/],
    [["update", "key_1"], /update needs at least one option/],
    [["get", "key_1", "--name", "x"], /--name only applies to create and update/],
    [["list", "--bogus"], /bogus/],
  ];
  for (const [args, re] of bad) {
    assert.throws(
      () => parseKeysCli(args, env),
      (e) => e instanceof KeysCliError && re.test(e.message),
    );
  }
  assert.throws(() => parseKeysCli(["list"], () => undefined), /No admin token/);
});

Deno.test("deno task keys: create, use, usage, rotate, revoke against a running daemon's socket", async () => {
  const d = await startDaemon(`
server: { port: {{PORT}}, socket: {{SOCKET}}, admin_token: ${ADMIN} }
providers: { mock: {} }
app_keys: { require_key: true, persistence: { enabled: false } }
`);
  const env = { PILOTFISH_ADMIN_TOKEN: ADMIN, PILOTFISH_SOCKET: d.socket };
  const chatWith = async (key: string) => {
    const r = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      headers: { authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: "mock/echo", messages: [{ role: "user", content: "hi" }] }),
    });
    await r.body?.cancel();
    return r.status;
  };
  try {
    const made = await keysTask(["create", "--name", "ci", "--monthly-usd", "20"], env);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stderr, /not shown again/);
    const created = JSON.parse(made.stdout);
    assert.equal(created.name, "ci");
    assert.deepEqual(created.budget, { daily_usd: null, monthly_usd: 20 });
    assert.equal(await chatWith(created.key), 200);

    const usage = await keysTask(["usage", created.id], env);
    assert.equal(JSON.parse(usage.stdout).month.requests, 1);

    const list = await keysTask(["list"], env);
    assert.ok(!list.stdout.includes(created.key));
    assert.equal(JSON.parse(list.stdout).data.length, 1);

    const rotated = JSON.parse((await keysTask(["rotate", created.id], env)).stdout);
    assert.equal(await chatWith(created.key), 401);
    assert.equal(await chatWith(rotated.key), 200);

    const revoked = await keysTask(["revoke", created.id], env);
    assert.equal(JSON.parse(revoked.stdout).status, "revoked");
    assert.equal(await chatWith(rotated.key), 401);

    // Errors: the daemon's message, one line, exit 1.
    const missing = await keysTask(["get", "key_nope"], env);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim(), 'pilotfish keys: 404: No app key "key_nope"');
    const wrong = await keysTask(["list"], { ...env, PILOTFISH_ADMIN_TOKEN: "nope" });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^pilotfish keys: 401: /);
    assert.ok(!wrong.stderr.includes(ADMIN));
    const tcp = await keysTask(["list", "--url", d.url("")], env);
    assert.equal(tcp.code, 0, tcp.stderr);
  } finally {
    await d.stop();
  }
  const gone = await keysTask(["list"], {
    PILOTFISH_ADMIN_TOKEN: ADMIN,
    PILOTFISH_SOCKET: d.socket,
  });
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /^pilotfish keys: Cannot reach the daemon at the socket /);
  assert.equal(gone.stderr.trim().split("\n").length, 1);
});
