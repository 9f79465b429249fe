/**
 * Sandbox proof: the daemon started exactly as `deno task start` starts it (scripts/start.sh,
 * the planner's flags) cannot read a file, open a connection, read an env var or spawn a
 * process outside its grants, shown through what a client can make it do: crafted
 * passthrough paths, and config reloads that reach for a new host, a file or a variable.
 * (WASM plugins join this once the plugins issue lands.)
 */
import assert from "node:assert/strict";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { chatBody, startDaemon } from "../integration/daemon.ts";

const config = (upstream: string, extra = "") => `
server:
  port: {{PORT}}
  socket: {{SOCKET}}
  reload_interval: 100ms
logging:
  level: debug
providers:
  mock: {}
  up:
    type: openai
    base_url: ${upstream}/v1
    keys: [{ key: sk-sandbox-test-key-0001 }]
${extra}`;

/** One raw HTTP/1.1 request: `fetch` would resolve dot-segments before sending. */
async function rawGet(port: number, target: string): Promise<{ status: number; text: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
      ),
    );
    let text = "";
    const decoder = new TextDecoder();
    const buf = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n), { stream: true });
    }
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? "0"), text };
  } finally {
    try {
      conn.close();
    } catch { /* closed by the peer */ }
  }
}

Deno.test("sandbox: the daemon `deno task start` runs holds only its plan", async (t) => {
  const upstream = startFakeUpstream();
  const other = startFakeUpstream();
  const third = startFakeUpstream();
  const d = await startDaemon(config(upstream.url), {
    env: { SECRET_ENV: "top-secret-value-4242", HOME: "/root" },
  });
  const rewrite = (text: string) =>
    Deno.writeTextFile(
      d.configPath,
      text.replaceAll("{{PORT}}", String(d.port)).replaceAll("{{SOCKET}}", d.socket),
    );
  const chat = async (model: string) => {
    const res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody(model),
    });
    await res.body?.cancel();
    return res.status;
  };
  try {
    await t.step("no run, ffi or sys; every other kind is the plan, never global", () => {
      const line = d.logs().split("\n").find((l) => l.includes('"permissions narrowed"'));
      assert.ok(line, d.logs());
      assert.deepEqual(JSON.parse(line).state, {
        net: "plan",
        read: "plan",
        write: "plan",
        env: "plan",
        run: "none",
        ffi: "none",
        sys: "none",
      });
      // Nothing to give back: start.sh granted exactly the plan.
      assert.deepEqual(JSON.parse(line).revoked, []);
    });

    await t.step("crafted passthrough paths never leave the provider's base path", async () => {
      for (
        const target of [
          "/native/up/..%2f..%2f..%2fetc%2fpasswd",
          "/native/up/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
          "/native/up/../../../etc/passwd",
          "/native/..%2f..%2fetc/passwd",
          "/native/x/..%2f..%2fetc/passwd",
        ]
      ) {
        const { status, text } = await rawGet(d.port, target);
        assert.ok(status >= 400 && status < 500, `${target}: ${status}\n${text}`);
        assert.ok(!text.includes("root:"), `${target} leaked a file`);
      }
      for (const r of upstream.requests) {
        assert.ok(r.path.startsWith("/v1/"), `upstream saw ${r.path}`);
      }
    });

    await t.step(
      "a reload to a host outside the grants is refused; the old config serves",
      async () => {
        await rewrite(config(
          upstream.url,
          `  elsewhere:\n    type: openai\n    base_url: ${other.url}/v1\n`,
        ));
        await d.waitForLog("config reload refused: it needs permissions");
        const host = new URL(other.url).host;
        assert.ok(d.logs().includes(`--allow-net=${host}`), d.logs());
        assert.equal(await chat("elsewhere/gpt-4o-mini"), 404, "the old config stays in force");
        assert.equal(other.requests.length, 0, "no connection to the new host");
      },
    );

    await t.step("a reload pointing a configured provider elsewhere is refused too", async () => {
      await rewrite(config(third.url));
      await d.waitForLog(`--allow-net=${new URL(third.url).host}`);
      assert.equal(third.requests.length, 0);
    });

    await t.step(
      "a reload that refers to ${SECRET_ENV} outside the grants is refused",
      async () => {
        await rewrite(
          config(upstream.url).replace(
            "keys: [{ key: sk-sandbox-test-key-0001 }]",
            'keys: [{ key: "${SECRET_ENV}" }]',
          ),
        );
        await d.waitForLog("SECRET_ENV");
        assert.match(d.logs(), /config reload refused.*SECRET_ENV/);
        assert.ok(!d.logs().includes("top-secret-value-4242"), "the value was never read");
      },
    );

    await t.step("a reload that needs credentials outside the grants is refused", async () => {
      // Signing reads AWS_* variables and ~/.aws/credentials: none of it in this plan.
      await rewrite(config(upstream.url, "  bedrock:\n    sign: true\n    region: us-west-2\n"));
      await d.waitForLog("--allow-env=AWS_ACCESS_KEY_ID");
      assert.match(d.logs(), /config reload refused: it needs permissions.*AWS_ACCESS_KEY_ID/);
    });

    await t.step("the original config still answers", async () => {
      assert.equal(await chat("mock/echo"), 200);
    });
  } finally {
    await d.stop();
    await upstream.close();
    await other.close();
    await third.close();
  }
});
