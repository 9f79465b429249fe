import assert from "node:assert/strict";
import { clearStaleSocket, ListenError } from "../../src/server/listeners.ts";
import { freePort } from "../integration/daemon.ts";

/** A socket file nobody listens on (bound, then its listener closed without removing it). */
async function leftoverSocket(dir: string): Promise<string> {
  const path = `${dir}/pf.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  listener.close();
  // Closing a Deno unix listener may remove its file: put a plain socket file back if so.
  try {
    await Deno.lstat(path);
  } catch {
    const cmd = new Deno.Command("python3", {
      args: ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", path],
    });
    await cmd.output();
  }
  return path;
}

Deno.test("clearStaleSocket(): only a refused connection means stale; any other failure keeps the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = await leftoverSocket(dir);
    assert.ok((await Deno.lstat(path)).isSocket);
    // No permission to connect (another user's 0600 socket): it may be a live daemon's.
    const denied = () => Promise.reject(new Deno.errors.PermissionDenied("Permission denied"));
    await assert.rejects(
      clearStaleSocket(path, denied),
      (err: unknown) =>
        err instanceof ListenError && /may belong to a live daemon.*--socket/.test(err.message),
    );
    assert.ok((await Deno.lstat(path)).isSocket, "not taken");
    // Refused: a crashed daemon's leftover, replaced.
    await clearStaleSocket(path);
    await assert.rejects(Deno.lstat(path), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a socket path longer than a Unix socket holds is a clear error, at --check too", async () => {
  const { parseConfigText, ConfigError } = await import("../../src/config/mod.ts");
  const { parseCli, CliError } = await import("../../src/cli.ts");
  const long = `/tmp/${"a".repeat(110)}.sock`;
  assert.throws(
    () => parseConfigText(`server: { socket: "${long}" }\n`, () => undefined, "t.yaml"),
    (err: unknown) =>
      err instanceof ConfigError &&
      err.problems.some((p) =>
        /server\.socket: a Unix socket path holds at most 107 bytes/.test(p)
      ),
  );
  assert.throws(() => parseCli(["--socket", long], () => undefined), CliError);
  // 107 bytes is still a socket path.
  const fits = `/tmp/${"b".repeat(107 - 10)}.sock`;
  assert.equal(new TextEncoder().encode(fits).length, 107);
  assert.equal(parseCli(["--socket", fits], () => undefined).socket, fits);
});

Deno.test("a daemon that drains leaves alone the socket a replacement bound on its path meanwhile", async () => {
  const { parseConfigText } = await import("../../src/config/mod.ts");
  const { startListeners } = await import("../../src/server/listeners.ts");
  const { createLogger } = await import("../../src/telemetry/mod.ts");
  const dir = await Deno.makeTempDir();
  const path = `${dir}/pf.sock`;
  const server = parseConfigText(
    `server: { tcp: false, socket: "${path}" }\n`,
    () => undefined,
    "t.yaml",
  ).config.server;
  const logger = createLogger({ level: "error", redact: (t) => t, write: () => {} });
  const release = Promise.withResolvers<void>();
  const started = Promise.withResolvers<void>();
  const old = await startListeners(
    async () => {
      started.resolve();
      await release.promise;
      return new Response("old");
    },
    server,
    logger,
  );
  // A request the old daemon is still answering keeps its drain going.
  const conn = await Deno.connect({ transport: "unix", path });
  await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
  await started.promise;
  const draining = old.shutdown(10_000);
  // Deno unlinks the file once the listener has closed (a moment later, by path): the path is
  // then free for a replacement. Waited for, as a replacement started later would find it.
  const gone = () => Deno.lstat(path).then(() => false, () => true);
  for (let i = 0; i < 500 && !(await gone()); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(await gone(), "Deno unlinked the closed listener's socket");
  const replacement = await startListeners(() => new Response("new"), server, logger);
  try {
    release.resolve();
    await draining;
    await Deno.lstat(path); // still there: the replacement's
    const client = Deno.createHttpClient({ proxy: { transport: "unix", path } });
    const res = await fetch("http://x/", { client });
    assert.equal(await res.text(), "new");
    client.close();
  } finally {
    conn.close();
    await replacement.shutdown(1_000);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("out of file descriptors (idle connections held open), a listener listens again; the process lives", async () => {
  const dir = await Deno.makeTempDir();
  const port = freePort();
  const socket = `${dir}/pf.sock`;
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      `ulimit -n 96; exec "${Deno.execPath()}" run -A --quiet "${
        new URL("./listeners_emfile_child.ts", import.meta.url).pathname
      }" ${port} ${socket}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const reading = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) out += chunk;
  })();
  const idle: Deno.Conn[] = [];
  try {
    await within("ready", () => Promise.resolve(out.includes("ready")));
    for (let i = 0; i < 150; i++) {
      try {
        idle.push(await Deno.connect({ port }));
      } catch {
        break; // the backlog is full too
      }
    }
    await within("the failure said", () => Promise.resolve(out.includes("listener failed")));
    for (const c of idle.splice(0)) c.close();
    const ok = async (init: () => Promise<Response>) => {
      try {
        const res = await init();
        return (await res.text()) === "ok";
      } catch {
        return false;
      }
    };
    await within("TCP again", () => ok(() => fetch(`http://127.0.0.1:${port}/`)));
    const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socket } });
    try {
      await within("the socket again", () => ok(() => fetch("http://localhost/", { client })));
    } finally {
      client.close();
    }
  } finally {
    for (const c of idle) c.close();
    child.kill();
    await child.status;
    await reading.catch(() => {});
    await child.stderr.cancel();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Poll `check` until it holds, for at most 10 s (a bounded wait on a condition). */
async function within(what: string, check: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: not within 10 s`);
}
