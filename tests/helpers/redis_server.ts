/**
 * A throwaway `redis-server` for tests: started on a free port (never the machine's 6379),
 * with persistence off so a restart really comes back empty, and stoppable/restartable on
 * the same port to play a Redis outage.
 * @module
 */
import { freePort } from "../integration/daemon.ts";

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** SIGKILL the server (an outage, not a clean shutdown) and wait for it to exit. */
  stop(): Promise<void>;
  /** Start it again on the same port (empty: nothing is persisted) and wait for PING. */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: a Redis that accepts connections but never answers. */
  pause(): void;
  resume(): void;
}

/** Start `redis-server` on a free port and resolve once it answers PING. */
export async function startRedisServer(): Promise<RedisServer> {
  const binary = redisServerBinary();
  let port = freePort();
  let child: Deno.ChildProcess | null = null;
  // Its own working directory: a replica's full resync writes dump.rdb there even with
  // `--save ""`, and a dump.rdb found at start is loaded (stale limit keys from another run).
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-redis-" });
  const spawn = async () => {
    await Deno.mkdir(dir, { recursive: true });
    child = new Deno.Command(binary, {
      args: [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
        "--save",
        "",
        "--appendonly",
        "no",
        "--loglevel",
        "warning",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitForPing(port, child);
  };
  // freePort() frees the port before the server binds it: under `deno test --parallel` another
  // test may take it first, and the server exits. Then again on another port (twice at most).
  for (let attempt = 1;; attempt++) {
    try {
      await spawn();
      break;
    } catch (err) {
      if (!(err instanceof ServerExited) || attempt === 3) throw err;
      port = freePort();
    }
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      const c: Deno.ChildProcess | null = child;
      if (!c) return;
      child = null;
      try {
        c.kill("SIGKILL");
      } catch { /* already exited */ }
      await c.status;
      // Made again by a restart: a stopped server leaves nothing in the temp dir.
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
    restart: spawn,
    pause: () => (child as Deno.ChildProcess | null)?.kill("SIGSTOP"),
    resume: () => (child as Deno.ChildProcess | null)?.kill("SIGCONT"),
  };
}

/** What a test that needs Redis fails with when `redis-server` is not installed. */
export const REDIS_SERVER_MISSING = "redis-server not found: apt-get install redis-server";

/**
 * The `redis-server` on PATH (`searchPath`). When there is none, every Redis test fails with
 * the one line above instead of a stack of ENOENT from Deno.Command: it throws the string
 * itself, because Deno's test reporter prints a thrown string as one line and an Error always
 * with a stack frame.
 */
export function redisServerBinary(searchPath = Deno.env.get("PATH") ?? ""): string {
  for (const dir of searchPath.split(":")) {
    if (!dir) continue;
    try {
      const path = `${dir}/redis-server`;
      if (Deno.statSync(path).isFile) return path;
    } catch { /* not in this directory */ }
  }
  throw REDIS_SERVER_MISSING;
}

class ServerExited extends Error {}

/** Speak just enough RESP to send PING until the server answers +PONG. */
async function waitForPing(port: number, child: Deno.ChildProcess, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.status.then(() => exited = true);
  while (Date.now() < deadline) {
    if (exited) throw new ServerExited(`redis-server on port ${port} exited before answering PING`);
    if (await pingOnce(port)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms`);
}

async function pingOnce(port: number): Promise<boolean> {
  let conn: Deno.TcpConn | null = null;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("PING\r\n"));
    const buf = new Uint8Array(64);
    const n = await conn.read(buf);
    return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("+PONG");
  } catch {
    return false;
  } finally {
    conn?.close();
  }
}
