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
