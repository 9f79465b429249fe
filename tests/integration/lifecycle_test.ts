import assert from "node:assert/strict";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway } from "../helpers/in_process.ts";
import { chatBody, freePort, runCli, startDaemon } from "./daemon.ts";
import { fixtureWasm } from "../plugins/wat.ts";

/** Where the daemon listens; an in-process gateway leaves them out. */
const LISTENERS = "  port: {{PORT}}\n  socket: {{SOCKET}}\n";

const upstreamConfig = (url: string, extra = "") => `
server:
${LISTENERS}  reload_interval: 100ms
  drain_timeout: 10s
providers:
  mock: {}
  up:
    base_url: ${url}/v1
    keys: [{ key: sk-live-configured-secret-0001 }]
${extra}`;

Deno.test("listening on every interface without required app keys is warned about at start", async () => {
  const upstream = startFakeUpstream();
  const open = await startDaemon(upstreamConfig(upstream.url), { args: ["--host", "0.0.0.0"] });
  const local = await startDaemon(upstreamConfig(upstream.url));
  try {
    await open.waitForLog("listening on every interface without app_keys.require_key");
    assert.match(open.logs(), /"level":"warn"/);
    assert.doesNotMatch(local.logs(), /every interface/);
  } finally {
    await open.stop();
    await local.stop();
    await upstream.close();
  }
});

Deno.test("a closed stdout drops log lines, said once on stderr; requests are still served", async () => {
  const upstream = startFakeUpstream();
  const d = await startDaemon(upstreamConfig(upstream.url), {
    closeStdoutAfter: "pilotfish listening",
  });
  try {
    await d.waitForLog("pilotfish listening");
    for (let i = 0; i < 3; i++) {
      const health = await fetch(d.url("/healthz"));
      assert.equal(health.status, 200);
      assert.equal(await health.text(), "ok");
      const res = await fetch(d.url("/v1/chat/completions"), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chatBody("mock/echo"),
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    await d.waitForLog("log output failed (BrokenPipe");
    assert.equal(d.logs().split("log output failed").length, 2, "said once");
  } finally {
    assert.equal(await d.stop(), 0);
    await upstream.close();
  }
});

Deno.test("a passthrough stream its upstream cuts is one log line, not an unhandled server error", async () => {
  const upstream = startFakeUpstream();
  const chunk =
    `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"partial"}}]}\n\n`;
  const d = await startDaemon(upstreamConfig(upstream.url));
  try {
    // Ends without [DONE] (the relay's usage sniff cuts it), then with the connection reset.
    for (const thenBreak of [false, true]) {
      upstream.script({ kind: "sse", events: [chunk], thenBreak });
      const res = await fetch(d.url("/native/up/chat/completions"), {
        method: "POST",
        body: chatBody("gpt-4o-mini", { stream: true }),
      });
      await assert.rejects(res.text());
      const id = res.headers.get("x-request-id")!;
      await d.waitForLog(`"request_id":"${id}"`);
      const line = d.logs().split("\n").find((l) => l.includes(`"request_id":"${id}"`))!;
      assert.equal(JSON.parse(line).outcome, "upstream_cut");
    }
    assert.doesNotMatch(d.logs(), /unhandled server error/);
  } finally {
    await d.stop();
    await upstream.close();
  }
});

Deno.test("a client that disconnects mid-stream aborts the upstream request", async () => {
  const upstream = startFakeUpstream();
  // An endless stream, paced: the client leaves while it still runs.
  upstream.script({ kind: "stream", endless: true, delayMs: 20 });
  // In process: a client's disconnect over TCP needs a listener, not the daemon.
  const gw = startGateway(upstreamConfig(upstream.url).replace(LISTENERS, ""));
  try {
    const ac = new AbortController();
    const res = await fetch(gw.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("up/gpt-4o-mini", { stream: true }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.read();
    ac.abort();
    await reader.cancel().catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      upstream.cancelled,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("upstream never saw the cancellation")), 5_000);
      }),
    ]);
    clearTimeout(timer);
    await gw.waitForLog(`"outcome":"client_abort"`);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("SIGTERM during a stream lets it finish, then exits 0", async () => {
  const upstream = startFakeUpstream();
  // The stream holds after its first chunk until the daemon is shutting down.
  const { promise: gate, resolve: release } = Promise.withResolvers<void>();
  upstream.script({
    kind: "stream",
    chunks: ["a", "b", "c", "d", "e", "f", "g", "h"],
    gate,
  });
  const d = await startDaemon(upstreamConfig(upstream.url));
  try {
    const res = await d.socketFetch("/v1/chat/completions", {
      method: "POST",
      body: chatBody("up/gpt-4o-mini", { stream: true }),
    });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = (await reader.read()).value ?? "";
    d.signal("SIGTERM");
    await d.waitForLog("shutting down");
    release();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += value;
    }
    assert.ok(text.endsWith("data: [DONE]\n\n"), text);
    assert.match(text, /"content":"h"/);
    assert.equal((await d.exited).code, 0);
    assert.match(d.logs(), /shutdown complete/);
    await assert.rejects(Deno.stat(d.socket), Deno.errors.NotFound, "socket file removed at exit");
  } finally {
    release();
    await d.stop();
    await upstream.close();
  }
});

Deno.test("hot reload applies a good file and refuses a bad one", async () => {
  const upstream = startFakeUpstream();
  const d = await startDaemon(upstreamConfig(upstream.url));
  const ask = (model: string) =>
    fetch(d.url("/v1/chat/completions"), { method: "POST", body: chatBody(model) });
  try {
    // No default provider: a bare alias is unknown before the reload.
    let res = await ask("smart");
    assert.equal(res.status, 404);
    await res.body?.cancel();

    await Deno.writeTextFile(
      d.configPath,
      upstreamConfig(upstream.url, "routing:\n  aliases:\n    smart: mock/echo\n")
        .replaceAll("{{PORT}}", String(d.port)).replaceAll("{{SOCKET}}", d.socket),
    );
    await d.waitForLog("config reloaded");
    res = await ask("smart");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-pilotfish-provider"), "mock");
    await res.body?.cancel();

    await Deno.writeTextFile(d.configPath, "server:\n  port: [not a port\nproviders: {\n");
    await d.waitForLog("config reload refused");
    await Deno.writeTextFile(
      d.configPath,
      upstreamConfig(upstream.url, "routing:\n  default_provider: nowhere\n")
        .replaceAll("{{PORT}}", String(d.port)).replaceAll("{{SOCKET}}", d.socket),
    );
    await d.waitForLog(`routing.default_provider: Unknown provider \\"nowhere\\"`);
    res = await ask("smart");
    assert.equal(res.status, 200, "the previous config stays in force");
    await res.body?.cancel();

    // A writer caught between truncating and writing leaves an empty file: refused, never
    // read as a config with no providers.
    await Deno.writeTextFile(d.configPath, "");
    await d.waitForLog("The file is empty");
    res = await ask("smart");
    assert.equal(res.status, 200, "an emptied file changes nothing");
    await res.body?.cancel();
  } finally {
    await d.stop();
    await upstream.close();
  }
});

Deno.test("--check validates a good file and lists every problem of a bad one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = `${dir}/good.yaml`;
    await Deno.writeTextFile(good, "providers:\n  mock: {}\nserver:\n  port: 9100\n  bogus: 1\n");
    let r = await runCli(["--check", "--config", good]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /is valid/);
    assert.match(r.stderr, /server\.bogus: Unknown key/);

    const bad = `${dir}/bad.yaml`;
    await Deno.writeTextFile(
      bad,
      [
        "server:",
        "  port: high",
        "  drain_timeout: soon",
        "providers:",
        "  mystery: {}",
        "routing:",
        "  models:",
        "    gpt-4o: { providers: [ghost] }",
      ].join("\n"),
    );
    r = await runCli(["--check", "--config", bad]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /server\.port:/);
    assert.match(r.stderr, /server\.drain_timeout: Invalid duration "soon"/);

    const missing = await runCli(["--check", "--config", `${dir}/nope.yaml`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Cannot read file/);

    const badFlag = await runCli(["--check", "--port", "99999"]);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /Invalid port "99999"/);

    // Cross-reference errors surface once the field errors are fixed.
    await Deno.writeTextFile(
      bad,
      "providers:\n  mystery: {}\nrouting:\n  models:\n    gpt-4o: { providers: [ghost] }\n",
    );
    r = await runCli(["--check", "--config", bad]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /providers\.mystery: Unknown provider "mystery"/);
    assert.match(r.stderr, /routing\.models\.gpt-4o\.providers\[0\]: Unknown provider "ghost"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--check loads wasm_plugins: what the start would refuse, it refuses too", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const noop = await fixtureWasm(dir, "noop");
    await Deno.writeTextFile(`${dir}/garbage.wasm`, "garbage");
    const file = `${dir}/plugins.yaml`;
    const plugins = (entries: string[]) =>
      Deno.writeTextFile(file, `providers:\n  mock: {}\nwasm_plugins:\n${entries.join("\n")}\n`);
    await plugins([`  - { name: ok, path: ${noop} }`]);
    let r = await runCli(["--check", "--config", file]);
    assert.equal(r.code, 0, r.stderr);

    await plugins([
      `  - { name: u, path: ${noop}, hooks: [stream_chunk] }`,
      `  - { name: gone, path: ${dir}/nonexistent.wasm }`,
      `  - { name: junk, path: ${dir}/garbage.wasm }`,
    ]);
    r = await runCli(["--check", "--config", file]);
    assert.equal(r.code, 1);
    // Each names its key path as written, and the plugin.
    assert.match(
      r.stderr,
      /wasm_plugins\[0\]\.hooks \("u"\): lists "stream_chunk", which it does not export/,
    );
    assert.match(r.stderr, /wasm_plugins\[1\]\.path \("gone"\): cannot read/);
    assert.match(r.stderr, /wasm_plugins\[2\]\.path \("junk"\): .* is not a usable module/);
    // The start says the same, named by the config file.
    r = await runCli(["--config", file, "--port", "0", "--socket", ""]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`Invalid config ${file}: wasm_plugins\\[0\\]\\.hooks`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("API keys and Authorization values never reach the logs", async () => {
  const upstream = startFakeUpstream();
  const d = await startDaemon(upstreamConfig(upstream.url), {
    env: { MY_SECRET: "sk-from-env-777777" },
  });
  try {
    upstream.script({
      kind: "json",
      status: 401,
      body: {
        error: {
          message:
            "Incorrect API key provided: sk-live-configured-secret-0001. Also Bearer abc.def",
          type: "invalid_request_error",
          code: "invalid_api_key",
        },
      },
    });
    const res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      headers: {
        authorization: "Bearer sk-client-secret-987654",
        "x-api-key": "sk-client-secret-987654",
      },
      body: chatBody("up/gpt-4o-mini"),
    });
    assert.equal(res.status, 401);
    const body = await res.text();
    assert.doesNotMatch(body, /sk-live-configured-secret-0001/);
    await fetch(d.url("/v1/chat/completions?key=AIzaSyA-secret-query-key-000000"), {
      method: "POST",
      headers: { authorization: "Bearer sk-client-secret-987654" },
      body: chatBody("mock/echo"),
    }).then((r) => r.body?.cancel());
    await d.waitForLog(`"status":200`);
    const logs = d.logs();
    assert.match(logs, /"status":401/);
    for (
      const secret of [
        "sk-live-configured-secret-0001",
        "sk-client-secret-987654",
        "AIzaSyA-secret",
      ]
    ) {
      assert.ok(!logs.includes(secret), `${secret} leaked into the logs`);
    }
  } finally {
    await d.stop();
    await upstream.close();
  }
});

Deno.test("a live daemon's socket is never stolen; a stale one is replaced", async () => {
  const staleDir = await Deno.makeTempDir();
  const stale = `${staleDir}/stale.sock`;
  // A crashed daemon leaves its socket file behind; python's bind() without unlink does the same.
  await new Deno.Command("python3", {
    args: ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", stale],
  }).output();
  assert.ok((await Deno.lstat(stale)).isSocket);
  const s = await startDaemon(upstreamConfig("http://127.0.0.1:9"), { args: ["--socket", stale] });
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: stale } });
  const ok = await fetch("http://pilotfish/healthz", { client });
  assert.equal(await ok.text(), "ok");
  client.close();
  await s.stop();
  await Deno.remove(staleDir, { recursive: true });

  const d = await startDaemon(upstreamConfig("http://127.0.0.1:9"));
  try {
    const second = await runCli(["--config", d.configPath, "--port", "0"]);
    assert.notEqual(second.code, 0);
    assertOneLine(
      second.stderr,
      new RegExp(`Socket ${d.socket} is held by a live daemon.*--socket`),
    );
  } finally {
    await d.stop();
  }
});

Deno.test("the sandbox: a reload that needs a host the daemon was not granted is refused", async () => {
  const d = await startDaemon(upstreamConfig("http://127.0.0.1:9"));
  /** Rewrite the daemon's file with `extra` providers (the file watcher reloads it). */
  const rewrite = (extra: string) =>
    Deno.writeTextFile(
      d.configPath,
      upstreamConfig("http://127.0.0.1:9", extra)
        .replaceAll("{{PORT}}", String(d.port)).replaceAll("{{SOCKET}}", d.socket),
    );
  try {
    await rewrite("  other:\n    base_url: https://example.invalid/v1\n");
    await d.waitForLog("config reload refused: it needs permissions");
    assert.match(d.logs(), /--allow-net=example\.invalid:443/);
    const res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("other/x"),
    });
    assert.equal(res.status, 404, "the old config stays in force");
    await res.body?.cancel();

    // A ${VAR} not granted at start: the flag, not Deno's own message.
    await rewrite("  other:\n    base_url: ${RELOAD_NEW_BASE:-http://127.0.0.1:9}/v1\n");
    await d.waitForLog("--allow-env=RELOAD_NEW_BASE");
    assert.doesNotMatch(d.logs(), /NotCapable/);

    // A new variable and a new host at once: both flags in one refusal.
    await rewrite(
      '  other:\n    base_url: https://both.invalid/v1\n    keys: [{ key: "${RELOAD_BOTH_KEY:-sk-x}" }]\n',
    );
    await d.waitForLog("--allow-env=RELOAD_BOTH_KEY");
    const line = d.logs().split("\n").find((l) => l.includes("RELOAD_BOTH_KEY"))!;
    assert.match(line, /--allow-net=both\.invalid:443/, line);
  } finally {
    await d.stop();
  }
});

Deno.test("in-flight streams finish on the config they started with", async () => {
  const upstream = startFakeUpstream();
  // The stream holds after its first chunk until the reload is done.
  const { promise: gate, resolve: release } = Promise.withResolvers<void>();
  upstream.script({ kind: "stream", chunks: ["a", "b", "c", "d", "e", "f"], gate });
  const d = await startDaemon(upstreamConfig(upstream.url));
  try {
    const res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("up/gpt-4o-mini", { stream: true }),
    });
    // Reload to a config without the "up" provider while the stream is running.
    await Deno.writeTextFile(
      d.configPath,
      `server:\n  port: ${d.port}\n  socket: ${d.socket}\n  reload_interval: 100ms\nproviders:\n  mock: {}\n`,
    );
    await d.waitForLog("config reloaded");
    release();
    const text = await res.text();
    assert.ok(text.endsWith("data: [DONE]\n\n"), text);
    const after = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("up/gpt-4o-mini"),
    });
    assert.equal(after.status, 404, "new requests see the new config");
    await after.body?.cancel();
  } finally {
    release();
    await d.stop();
    await upstream.close();
  }
});

Deno.test("drain_timeout bounds shutdown when a stream never ends", async () => {
  const upstream = startFakeUpstream();
  // Endless on purpose (paced, so it does not flood the pipe): drain_timeout must cut it.
  upstream.script({ kind: "stream", endless: true, delayMs: 50 });
  const d = await startDaemon(
    upstreamConfig(upstream.url).replace("drain_timeout: 10s", "drain_timeout: 300ms"),
  );
  try {
    const res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("up/gpt-4o-mini", { stream: true }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    const started = performance.now();
    d.signal("SIGTERM");
    assert.equal((await d.exited).code, 0);
    assert.ok(performance.now() - started < 5_000);
    assert.match(d.logs(), /drain timeout reached/);
    await reader.cancel().catch(() => {});
  } finally {
    await d.stop();
    await upstream.close();
  }
});

Deno.test("a second SIGTERM during the drain ends it at once: the stream gets its error event, the daemon exits 0", async () => {
  const upstream = startFakeUpstream();
  upstream.script({ kind: "stream", endless: true, delayMs: 50 });
  // drain_timeout 10s: only the second signal can end the drain within the test's bound.
  const d = await startDaemon(upstreamConfig(upstream.url));
  try {
    const res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("up/gpt-4o-mini", { stream: true }),
    });
    const body = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    await body.read();
    const started = performance.now();
    d.signal("SIGTERM");
    await d.waitForLog("shutting down");
    d.signal("SIGTERM");
    let text = "";
    for (;;) {
      const { done, value } = await body.read().catch(() => ({ done: true, value: "" }));
      if (done) break;
      text += value;
    }
    assert.equal((await d.exited).code, 0);
    assert.ok(performance.now() - started < 5_000, `${performance.now() - started} ms`);
    assert.match(text, /shutting down: the stream was ended by a second SIGTERM/);
    assert.doesNotMatch(text, /drain_timeout ran out/);
    assert.match(d.logs(), /second signal: ending the drain now/);
  } finally {
    await d.stop();
    await upstream.close();
  }
});

Deno.test("drain_timeout cuts a native passthrough stream: logged as a shutdown, not as a server fault", async () => {
  const upstream = startFakeUpstream();
  upstream.script({ kind: "stream", endless: true, delayMs: 50 });
  const d = await startDaemon(
    upstreamConfig(upstream.url).replace("drain_timeout: 10s", "drain_timeout: 300ms"),
  );
  try {
    const res = await fetch(d.url("/native/up/chat/completions"), {
      method: "POST",
      body: chatBody("gpt-4o-mini", { stream: true }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    d.signal("SIGTERM");
    assert.equal((await d.exited).code, 0);
    await reader.cancel().catch(() => {});
    assert.match(d.logs(), /"reason":"shutdown"/);
    assert.doesNotMatch(d.logs(), /unhandled server error/);
  } finally {
    await d.stop();
    await upstream.close();
  }
});

Deno.test("drain_timeout: a request still waiting on its upstream gets its route's 503 and its log line", async () => {
  const upstream = startFakeUpstream();
  upstream.script({ kind: "hang" });
  const d = await startDaemon(
    upstreamConfig(upstream.url, "routing: { failover: { enabled: true } }").replace(
      "drain_timeout: 10s",
      "drain_timeout: 300ms",
    ),
  );
  try {
    const chat = fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("up/gpt-4o-mini"),
    });
    const messages = fetch(d.url("/v1/messages"), {
      method: "POST",
      body: JSON.stringify({
        model: "up/gpt-4o-mini",
        max_tokens: 5,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    while (upstream.requests.length < 2) await new Promise((r) => setTimeout(r, 10));
    d.signal("SIGTERM");
    const [a, b] = await Promise.all([chat, messages]);
    assert.equal(a.status, 503);
    const openai = await a.json();
    assert.equal(openai.error.code, "unavailable");
    assert.match(openai.error.message, /shutting down/);
    assert.equal(b.status, 503);
    const anthropic = await b.json();
    assert.equal(anthropic.type, "error");
    assert.match(anthropic.error.message, /shutting down/);
    assert.equal((await d.exited).code, 0);
    const lines = d.logs().split("\n").filter((l) => l.includes('"msg":"request"'));
    assert.equal(lines.filter((l) => l.includes('"status":503')).length, 2, d.logs());
    // One call each: a shutdown is not the provider's failure, so nothing is retried.
    assert.equal(upstream.requests.length, 2);
  } finally {
    await d.stop();
    await upstream.close();
  }
});

Deno.test("either listener can be disabled", async () => {
  const socketOnly = await startDaemon(
    "server:\n  port: {{PORT}}\n  socket: {{SOCKET}}\n  tcp: false\nproviders:\n  mock: {}\n",
  );
  try {
    assert.equal(await (await socketOnly.socketFetch("/healthz")).text(), "ok");
    await assert.rejects(fetch(socketOnly.url("/healthz")));
  } finally {
    await socketOnly.stop();
  }
  const tcpOnly = await startDaemon(
    'server:\n  port: {{PORT}}\n  socket: ""\nproviders:\n  mock: {}\n',
  );
  try {
    assert.equal(await (await fetch(tcpOnly.url("/healthz"))).text(), "ok");
    await assert.rejects(Deno.stat(tcpOnly.socket), Deno.errors.NotFound);
  } finally {
    await tcpOnly.stop();
  }
});

Deno.test("PORT from the environment overrides the config file's port", async () => {
  const port = freePort();
  const d = await startDaemon(
    "server:\n  port: 1\n  socket: {{SOCKET}}\nproviders:\n  mock: {}\n",
    {
      env: { PORT: String(port) },
    },
  );
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(await res.text(), "ok");
  } finally {
    await d.stop();
  }
});

/** Exactly one line on stderr, matching `re`, with nothing that looks like a stack trace. */
function assertOneLine(stderr: string, re: RegExp): void {
  assert.equal(stderr.split("\n").length, 2, `not one line:\n${stderr}`);
  assert.ok(stderr.endsWith("\n"));
  assert.match(stderr, re);
  assert.doesNotMatch(stderr, /^\s+at |\.ts:\d+:\d+|error: Uncaught/m);
}

Deno.test("startup failures are one clear line and a non-zero exit", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await t.step("port in use: names the address and --port", async () => {
      const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (busy.addr as Deno.NetAddr).port;
      try {
        const cfg = `${dir}/busy.yaml`;
        await Deno.writeTextFile(
          cfg,
          `server:\n  port: ${port}\n  socket: ""\nproviders:\n  mock: {}\n`,
        );
        const r = await runCli(["--config", cfg]);
        assert.equal(r.code, 1);
        assertOneLine(
          r.stderr,
          new RegExp(
            `^pilotfish: Cannot listen on 127\\.0\\.0\\.1:${port}: address already in use .*--port`,
          ),
        );
      } finally {
        busy.close();
      }
    });
    await t.step("a host name that does not resolve: names it and --host", async () => {
      // `.invalid` never resolves (RFC 6761).
      const r = await runCli(["--host", "pilotfish.invalid", "--port", "0", "--socket", ""]);
      assert.equal(r.code, 1);
      assertOneLine(
        r.stderr,
        /^pilotfish: Cannot listen on pilotfish\.invalid:0: the host name does not resolve \(change --host/,
      );
    });
    await t.step("a path that is not a socket: names it and --socket", async () => {
      const file = `${dir}/not-a-socket`;
      await Deno.writeTextFile(file, "");
      const r = await runCli(["--socket", file, "--port", "0"]);
      assert.equal(r.code, 1);
      assertOneLine(
        r.stderr,
        new RegExp(`${file}: the file exists and is not a socket .*--socket`),
      );
    });
    await t.step("unreadable config: path and reason", async () => {
      const r = await runCli(["--config", `${dir}/missing.yaml`]);
      assert.equal(r.code, 1);
      assertOneLine(
        r.stderr,
        new RegExp(`^pilotfish: Cannot read config ${dir}/missing\\.yaml: no such file\\n`),
      );
    });
    await t.step("bad config: the first problem, and how to see all", async () => {
      const cfg = `${dir}/bad.yaml`;
      await Deno.writeTextFile(cfg, "server:\n  port: high\n  drain_timeout: soon\n");
      const r = await runCli(["--config", cfg]);
      assert.equal(r.code, 1);
      assertOneLine(
        r.stderr,
        /^pilotfish: Invalid config .*server\.port: .*\(\+1 more; `--check` lists them all\)\n/,
      );
    });
    await t.step(
      "nothing to listen on: refused by --check and at start, unless a flag gives one",
      async () => {
        const cfg = `${dir}/silent.yaml`;
        await Deno.writeTextFile(
          cfg,
          'server:\n  tcp: false\n  socket: ""\nproviders: { mock: {} }\n',
        );
        const checked = await runCli(["--check", "--config", cfg]);
        assert.equal(checked.code, 1);
        assert.match(checked.stderr, /server: Nothing to listen on/);
        const started = await runCli(["--config", cfg]);
        assert.equal(started.code, 1);
        assertOneLine(started.stderr, /^pilotfish: Invalid config .*Nothing to listen on/);
        const rescued = await runCli(["--check", "--config", cfg, "--socket", `${dir}/pf.sock`]);
        assert.equal(rescued.code, 0, rescued.stderr);
      },
    );
    await t.step("YAML syntax errors carry line and column, once", async () => {
      const cfg = `${dir}/syntax.yaml`;
      await Deno.writeTextFile(cfg, "server:\n  port: [not a port\nproviders: {\n");
      const r = await runCli(["--check", "--config", cfg]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /YAML syntax at line 3, column 1: .*\(1 more YAML error after it\)/);
      assert.equal(r.stderr.trim().split("\n").length, 2, r.stderr);
    });
    await t.step("missing permission (plain deno run): names the permission", async () => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          "--no-prompt",
          `${new URL("../../src/main.ts", import.meta.url).pathname}`,
        ],
        env: { NO_COLOR: "1" },
        stdin: "null",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 1);
      assertOneLine(
        stderr,
        /^pilotfish: Missing permission: Requires env access to "\w+".*deno task start/,
      );
    });
    await t.step(
      "missing env permission while reading a config file: not a YAML error",
      async () => {
        const cfg = `${dir}/plain.yaml`;
        await Deno.writeTextFile(cfg, "server:\n  port: 19999\n");
        const out = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--quiet",
            "--no-prompt",
            `--allow-read=${dir}`,
            `${new URL("../../src/main.ts", import.meta.url).pathname}`,
            "--config",
            cfg,
            "--port",
            "19998",
          ],
          env: { NO_COLOR: "1" },
          stdin: "null",
        }).output();
        const stderr = new TextDecoder().decode(out.stderr);
        assert.equal(out.code, 1);
        assertOneLine(stderr, /^pilotfish: Missing permission: Requires env access to "\w+"/);
        assert.doesNotMatch(stderr, /YAML syntax/);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task start: a relative --config is the caller's directory's, not the repo's", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pf-task-cwd-" });
  try {
    await Deno.writeTextFile(`${dir}/mine.yaml`, "providers: { mock: {} }\n");
    const root = new URL("../../", import.meta.url).pathname;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "task",
        "--quiet",
        "--config",
        `${root}deno.json`,
        "start",
        "--check",
        "--config",
        "mine.yaml",
      ],
      cwd: dir,
      // As from a shell: `deno task` keeps an INIT_CWD it inherits (this suite's own task's).
      clearEnv: true,
      env: Object.fromEntries(
        ["PATH", "HOME", "DENO_DIR"].flatMap((k) => {
          const v = Deno.env.get(k);
          return v === undefined ? [] : [[k, v]];
        }).concat([["NO_COLOR", "1"]]),
      ),
      stdin: "null",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    assert.match(text, /Config mine\.yaml is valid/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--version and --help", async () => {
  const version = await runCli(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^pilotfish \d+\.\d+\.\d+\n$/);
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0);
  for (
    const flag of ["--config", "--host", "--port", "--socket", "--check", "--strict", "--version"]
  ) {
    assert.ok(help.stdout.includes(flag), `--help lacks ${flag}`);
  }
  const bad = await runCli(["--bogus"]);
  assert.equal(bad.code, 2);
  assertOneLine(bad.stderr, /^pilotfish: .*bogus.*\(see --help\)\n/);
});

Deno.test("--check --strict turns unknown keys into errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cfg = `${dir}/unknown.yaml`;
    await Deno.writeTextFile(cfg, "providers:\n  mock: {}\nserver:\n  colour: blue\n");
    const lenient = await runCli(["--check", "--config", cfg]);
    assert.equal(lenient.code, 0);
    assert.match(lenient.stderr, /warning: server\.colour: Unknown key, ignored/);
    const strict = await runCli(["--check", "--strict", "--config", cfg]);
    assert.equal(strict.code, 1);
    assert.match(strict.stderr, /server\.colour: Unknown key/);
    // What only loading finds (a plugin file missing) is listed beside it, as without it.
    await Deno.writeTextFile(
      cfg,
      "providers:\n  mock: {}\nserver:\n  colour: blue\nwasm_plugins:\n  - { name: g, path: /nonexistent/g.wasm }\n",
    );
    const both = await runCli(["--check", "--strict", "--config", cfg]);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /server\.colour: Unknown key/);
    assert.match(both.stderr, /wasm_plugins\[0\]\.path \("g"\): cannot read/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hot reload applies breaker timing and server limits; a listener change waits for a restart, refusing nothing", async () => {
  const upstream = startFakeUpstream();
  const base = (breaker: string, server = "") =>
    upstreamConfig(
      upstream.url,
      `routing:\n  failover: { enabled: false }\nfeatures:\n  circuit_breaker: { enabled: true, max_transient_retries: 0, max_rate_limit_retries: 0, ${breaker} }\n`,
    ).replace("  drain_timeout: 10s\n", `  drain_timeout: 10s\n${server}`);
  const d = await startDaemon(base("failure_threshold: 50"));
  const fill = (text: string) =>
    text.replaceAll("{{PORT}}", String(d.port)).replaceAll("{{SOCKET}}", d.socket);
  const fail = async () => {
    upstream.script({
      kind: "json",
      status: 500,
      body: { error: { message: "boom", type: "server_error" } },
    });
    const res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("up/m"),
    });
    await res.body?.cancel();
    return res.status;
  };
  const state = async () => {
    const health = await (await fetch(d.url("/health"))).json();
    return health.circuit_breaker.providers.up.keys?.["up:m"] ?? { state: "closed" };
  };
  try {
    await fail();
    assert.equal((await state()).state, "closed");

    // failure_threshold 1, a body limit of 200 bytes, and a new port: reloaded, not refused.
    await Deno.writeTextFile(
      d.configPath,
      fill(base("failure_threshold: 1", "  max_body_bytes: 200\n"))
        .replace(`port: ${d.port}`, `port: ${freePort()}`) +
        "responses: { store: { ttl: 2s } }\n",
    );
    await d.waitForLog("config reloaded");
    assert.match(d.logs(), /take effect on restart.*"server\.port"/);
    // Not applied (the store is the process's), and said so.
    assert.match(d.logs(), /responses\.store changes take effect on restart/);
    await fail();
    assert.equal((await state()).state, "open", "the new threshold opened it");
    const big = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("mock/echo", { metadata: { pad: "x".repeat(300) } }),
    });
    assert.equal(big.status, 413, "server.max_body_bytes applies on reload");
    await big.body?.cancel();
    // Still on the old port.
    const ok = await fetch(d.url("/healthz"));
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  } finally {
    await d.stop();
    await upstream.close();
  }
});

Deno.test("reloads run one at a time; the API answer names what waits for a restart; SIGHUP reloads", async () => {
  const yaml = `
server:
${LISTENERS}  reload_interval: 0
  admin_token: adm-reload-0001
providers:
  mock: {}
`;
  const d = await startDaemon(yaml);
  const reload = async () => {
    const res = await fetch(d.url("/api/v1/reload"), {
      method: "POST",
      headers: { authorization: "Bearer adm-reload-0001" },
    });
    return await res.json() as { ok: boolean; generation: number; restart_required?: string[] };
  };
  try {
    // Eight at once: eight generations, each its own number.
    const results = await Promise.all(Array.from({ length: 8 }, reload));
    assert.ok(results.every((r) => r.ok));
    assert.deepEqual(results.map((r) => r.generation).sort((a, b) => a - b), [
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      9,
    ]);
    // A listener change is applied on restart only, and the answer says so.
    const text = await Deno.readTextFile(d.configPath);
    await Deno.writeTextFile(d.configPath, text.replace(`port: ${d.port}`, `port: ${freePort()}`));
    const moved = await reload();
    assert.equal(moved.ok, true);
    assert.deepEqual(moved.restart_required, ["server.port"]);
    // SIGHUP reloads instead of ending the daemon (and its streams).
    d.signal("SIGHUP");
    await d.waitForLog('"generation":11');
    const alive = await fetch(d.url("/healthz"));
    assert.equal(alive.status, 200);
    await alive.body?.cancel();
  } finally {
    assert.equal(await d.stop(), 0);
  }
});

Deno.test("an asked-for reload of an edit is not done again by the file watcher", async () => {
  const yaml = `
server:
${LISTENERS}  reload_interval: 100ms
  admin_token: adm-reload-0002
logging: { level: debug }
providers:
  mock: {}
`;
  const d = await startDaemon(yaml);
  try {
    const text = await Deno.readTextFile(d.configPath);
    await Deno.writeTextFile(d.configPath, `${text}routing: { aliases: { one: mock/echo } }\n`);
    const res = await fetch(d.url("/api/v1/reload"), {
      method: "POST",
      headers: { authorization: "Bearer adm-reload-0002" },
    });
    assert.equal((await res.json()).generation, 2);
    // The watcher sees the edit too, and finds what is running.
    await d.waitForLog("reads the same: not reloaded");
    await Deno.writeTextFile(d.configPath, `${text}routing: { aliases: { two: mock/echo } }\n`);
    await d.waitForLog('"generation":3');
    assert.ok(!d.logs().includes('"generation":4'));
  } finally {
    assert.equal(await d.stop(), 0);
  }
});
