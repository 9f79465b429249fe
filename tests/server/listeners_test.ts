import assert from "node:assert/strict";
import { clearStaleSocket, ListenError } from "../../src/server/listeners.ts";

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
