import assert from "node:assert/strict";
import { probeReady } from "../src/probe.ts";
import { freePort, runCli, startDaemon } from "./integration/daemon.ts";
import { closedPort } from "./helpers/in_process.ts";
import { SANITIZE } from "./helpers/sanitize.ts";

const MOCK_ONLY = "server:\n  port: {{PORT}}\n  socket: {{SOCKET}}\nproviders:\n  mock: {}\n";

Deno.test("--probe: 0 against a running daemon, over its socket or its port", async (t) => {
  const d = await startDaemon(MOCK_ONLY);
  try {
    await t.step("the socket, preferred when present (the port given is closed)", async () => {
      const out = await runCli([
        "--probe",
        "--config",
        d.configPath,
        "--port",
        String(closedPort()),
      ]);
      assert.equal(out.code, 0, out.stderr);
      assert.equal(out.stderr, "");
      assert.equal(out.stdout, "");
    });
    await t.step("TCP when the socket is disabled", async () => {
      const out = await runCli(["--probe", "--config", d.configPath, "--socket", ""]);
      assert.equal(out.code, 0, out.stderr);
    });
    await t.step("the file on disk broken since the daemon read it: still 0", async () => {
      const good = await Deno.readTextFile(d.configPath);
      try {
        // A typo outside `server` (the daemon refused this edit and kept serving).
        await Deno.writeTextFile(d.configPath, `${good}routing:\n  default_provider: ghost\n`);
        let out = await runCli(["--probe", "--config", d.configPath]);
        assert.equal(out.code, 0, out.stderr);
        // Not YAML at all: the flags say where it listens.
        await Deno.writeTextFile(d.configPath, "server:\n  port: 1\n   host: x\n");
        const socket = good.match(/socket: (.*)/)![1]!.trim();
        out = await runCli(["--probe", "--config", d.configPath, "--socket", socket]);
        assert.equal(out.code, 0, out.stderr);
      } finally {
        await Deno.writeTextFile(d.configPath, good);
      }
    });
    await t.step("TCP when the socket file is not there", async () => {
      const out = await runCli([
        "--probe",
        "--config",
        d.configPath,
        "--socket",
        `${d.dir}/elsewhere.sock`,
      ]);
      assert.equal(out.code, 0, out.stderr);
    });
  } finally {
    await d.stop();
  }
});

Deno.test("--probe: 1 fast with one line when nothing listens, and it starts nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-probe-" });
  try {
    const port = freePort();
    await Deno.writeTextFile(
      `${dir}/c.yaml`,
      `server:\n  port: ${port}\n  socket: ${dir}/pf.sock\nproviders:\n  mock: {}\n`,
    );
    const started = performance.now();
    const out = await runCli(["--probe", "--config", `${dir}/c.yaml`]);
    assert.equal(out.code, 1);
    assert.equal(
      out.stderr,
      `pilotfish: probe failed: nothing is listening on 127.0.0.1:${port}\n`,
    );
    // Refused is immediate: well under the 2 s default timeout, start-up included.
    assert.ok(performance.now() - started < 10_000);
    await assert.rejects(Deno.stat(`${dir}/pf.sock`), Deno.errors.NotFound, "no socket created");
    const probe = Deno.listen({ hostname: "127.0.0.1", port });
    probe.close(); // the port was not taken by the probe either
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--probe: bad input is a usage error (exit 2), a broken config exit 1", async () => {
  let out = await runCli(["--probe", "--probe-timeout", "soon"]);
  assert.equal(out.code, 2);
  assert.match(out.stderr, /Invalid --probe-timeout "soon" \(a duration such as 500ms or 2s\)/);
  out = await runCli(["--probe-timeout", "1s"]);
  assert.equal(out.code, 2);
  assert.match(out.stderr, /--probe-timeout only applies with --probe/);
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-probe-" });
  try {
    await Deno.writeTextFile(`${dir}/c.yaml`, "server:\n  port: [nope\n");
    out = await runCli(["--probe", "--config", `${dir}/c.yaml`]);
    assert.equal(out.code, 1);
    assert.match(out.stderr, /^pilotfish: probe failed: cannot tell where the daemon listens: /);
    assert.equal(out.stderr.trim().split("\n").length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("probeReady(): a daemon that is not ready is a failure", SANITIZE, async () => {
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-probe-" });
  const server = Deno.serve(
    { path: `${dir}/pf.sock`, onListen: () => {} },
    (req) =>
      new URL(req.url).pathname === "/ready"
        ? new Response("not ready", { status: 503 })
        : new Response("?", { status: 404 }),
  );
  try {
    assert.deepEqual(await probeReady({ transport: "unix", path: `${dir}/pf.sock` }, 2_000), {
      ok: false,
      reason: `GET /ready on unix:${dir}/pf.sock answered 503 (not ready)`,
    });
    // The same through the CLI, as an exec probe runs it.
    await Deno.writeTextFile(`${dir}/c.yaml`, `server:\n  socket: ${dir}/pf.sock\n`);
    const out = await runCli(["--probe", "--config", `${dir}/c.yaml`]);
    assert.equal(out.code, 1);
    assert.equal(
      out.stderr,
      `pilotfish: probe failed: GET /ready on unix:${dir}/pf.sock answered 503 (not ready)\n`,
    );
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "probeReady(): the timeout bounds a peer that accepts and never answers",
  SANITIZE,
  async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of listener) held.push(conn);
    })();
    try {
      const started = performance.now();
      const result = await probeReady({ transport: "tcp", hostname: "127.0.0.1", port }, 300);
      const elapsed = performance.now() - started;
      assert.deepEqual(result, {
        ok: false,
        reason: `no answer from 127.0.0.1:${port} within 300ms`,
      });
      assert.ok(elapsed >= 290 && elapsed < 1_500, `took ${elapsed}ms`);
      const out = await runCli([
        "--probe",
        "--probe-timeout",
        "400ms",
        "--socket",
        "",
        "--port",
        String(port),
      ]);
      assert.equal(out.code, 1);
      assert.equal(
        out.stderr,
        `pilotfish: probe failed: no answer from 127.0.0.1:${port} within 400ms\n`,
      );
    } finally {
      listener.close();
      await accepting.catch(() => {});
      for (const c of held) c.close();
    }
  },
);

Deno.test(
  "probeReady(): something that is not HTTP is a failure, not a hang",
  SANITIZE,
  async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const serving = (async () => {
      for await (const conn of listener) {
        await conn.write(new TextEncoder().encode("-ERR unknown command\r\n"));
        conn.close();
      }
    })();
    try {
      assert.deepEqual(await probeReady({ transport: "tcp", hostname: "127.0.0.1", port }, 2_000), {
        ok: false,
        reason: `127.0.0.1:${port} did not answer HTTP`,
      });
    } finally {
      listener.close();
      await serving.catch(() => {});
    }
  },
);
