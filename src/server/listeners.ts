import { GatewayError } from "../errors.ts";
import type { ServerConfig } from "../config/mod.ts";
import type { Logger } from "../telemetry/mod.ts";
import { recordedFailure } from "../streaming/mod.ts";

/** After the drain time: how long streams get to write their closing error event. */
const DRAIN_GRACE_MS = 1_000;

/** A listener whose accept loop failed listens again this much later. */
const RELISTEN_MS = 1_000;

export type Handler = (
  req: Request,
  info: Deno.ServeHandlerInfo<Deno.Addr>,
) => Response | Promise<Response>;

/** Why the daemon could not start listening, as one line that names the flag to change. */
export class ListenError extends Error {
  override readonly name = "ListenError";
}

export interface Listeners {
  /** Bound TCP address (port resolved when 0 was asked for), if TCP is on. */
  readonly tcp: Deno.NetAddr | null;
  readonly socket: string | null;
  /**
   * Stop accepting, let in-flight requests and streams finish for up to `drainMs`, then
   * close what is left and remove the socket file. Resolves true when everything drained.
   */
  /**
   * Stop accepting and wait up to `drainMs` for what is in flight; `hurry` settling (a second
   * signal) ends the wait at once, as the drain time running out does.
   */
  shutdown(
    drainMs: number,
    onDrainTimeout?: () => void,
    hurry?: Promise<unknown>,
  ): Promise<boolean>;
}

/** Serve one handler on the TCP port and the Unix socket (either may be disabled). */
export async function startListeners(
  handler: Handler,
  server: ServerConfig,
  logger: Logger,
): Promise<Listeners> {
  const servers: Deno.HttpServer<Deno.Addr>[] = [];
  const abort = new AbortController();
  const onError = (err: unknown) => {
    // A body our relays ended on purpose (drain time out, write_timeout, an upstream's
    // in-stream failure on a passthrough body, which is cut so the client can tell) or that
    // broke with its upstream's is already on the request's log line with its outcome: not
    // a server fault.
    if (err instanceof GatewayError || recordedFailure(err)) {
      logger.debug("response body ended", { error: err });
    } else logger.error("unhandled server error", { error: err });
    return new Response(
      JSON.stringify({
        error: {
          message: "Internal gateway error",
          type: "api_error",
          param: null,
          code: "internal",
        },
      }),
      { status: 500, headers: { "content-type": "application/json" } },
    );
  };
  /**
   * A listener whose accept loop fails (out of file descriptors: idle connections held open
   * by a client) ends without ending the process: it is said, and it listens again a moment
   * later, while the connections already open go on being served.
   */
  const keep = (
    first: Deno.HttpServer<Deno.Addr>,
    again: () => Deno.HttpServer<Deno.Addr>,
    where: string,
  ) => {
    const relisten = () => {
      const timer = setTimeout(() => {
        if (abort.signal.aborted) return;
        try {
          watch(again());
          logger.info("listening again", { listener: where });
        } catch (error) {
          logger.error("listener could not listen again; trying again in 1 s", {
            listener: where,
            error,
          });
          relisten();
        }
      }, RELISTEN_MS);
      abort.signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
    };
    const watch = (s: Deno.HttpServer<Deno.Addr>) => {
      servers.push(s);
      s.finished.catch((error: unknown) => {
        servers.splice(servers.indexOf(s), 1);
        if (abort.signal.aborted) return;
        logger.error("listener failed; listening again in 1 s", { listener: where, error });
        relisten();
      });
    };
    watch(first);
  };
  let tcp: Deno.NetAddr | null = null;
  let socket: string | null = null;
  /** Serve on TCP `port`, or on the socket `path`. */
  const serve = (at: { port: number } | { path: string }) =>
    Deno.serve({
      ...("port" in at ? { hostname: server.host, port: at.port } : { path: at.path }),
      signal: abort.signal,
      onError,
      onListen: () => {},
    }, handler);
  try {
    if (server.tcp) {
      const address = `${server.host}:${server.port}`;
      const s = listenOr(
        () => serve({ port: server.port }),
        `Cannot listen on ${address}`,
        "--port (or PORT) and --host",
        `--allow-net=${address}`,
      );
      const bound = s.addr as Deno.NetAddr;
      tcp = bound;
      keep(s, () => serve({ port: bound.port }), address);
    }
    if (server.socket !== "") {
      const path = server.socket;
      await clearStaleSocket(path);
      const s = listenOr(
        () => serve({ path }),
        `Cannot listen on socket ${path}`,
        "--socket",
        `--allow-read=${path} --allow-write=${path}`,
      );
      socket = path;
      await Deno.chmod(path, server.socket_mode);
      keep(s, () => {
        // Ours, left behind by the listener that failed.
        try {
          Deno.removeSync(path);
        } catch { /* gone already */ }
        const again = serve({ path });
        Deno.chmodSync(path, server.socket_mode);
        return again;
      }, path);
    }
  } catch (err) {
    abort.abort();
    await Promise.allSettled(servers.map((s) => s.finished));
    throw err;
  }

  return {
    tcp,
    socket,
    async shutdown(
      drainMs: number,
      onDrainTimeout?: () => void,
      hurry?: Promise<unknown>,
    ): Promise<boolean> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const drained = Promise.all(servers.map((s) => s.shutdown())).then(() => true);
      const timeout = (ms: number) =>
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), ms);
        });
      const waits = [drained, timeout(drainMs)];
      if (hurry) waits.push(hurry.then(() => false, () => false));
      const ok = await Promise.race(waits);
      clearTimeout(timer);
      if (!ok && onDrainTimeout) {
        // Streams still open are told to end (an error event in their format, and their log
        // line); a moment to write it, then what is left is closed.
        onDrainTimeout();
        await Promise.race([drained, timeout(DRAIN_GRACE_MS)]);
        clearTimeout(timer);
      }
      // Deno unlinks the socket as the listener closes, so during the drain a replacement
      // daemon may have bound the same path (an inode number can even be reused): a file
      // something still answers on is not ours to remove.
      if (socket && !(await answers(socket))) await Deno.remove(socket).catch(() => {});
      return ok;
    },
  };
}

/** Something listens on the socket at `path` (our own listener is closed by then). */
function answers(path: string): Promise<boolean> {
  return Deno.connect({ transport: "unix", path }).then((c) => {
    c.close();
    return true;
  }, () => false);
}

/** Run `listen`, turning the errors people hit into one line naming what to change. */
function listenOr<T>(listen: () => T, what: string, flag: string, grant: string): T {
  try {
    return listen();
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) {
      throw new ListenError(`${what}: address already in use (choose another with ${flag})`);
    }
    if (err instanceof Deno.errors.AddrNotAvailable) {
      throw new ListenError(`${what}: address not available on this machine (change ${flag})`);
    }
    if (err instanceof Deno.errors.NotCapable) {
      throw new ListenError(
        `${what}: missing permission ${grant} (start with \`deno task start\`, which grants it)`,
      );
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new ListenError(
        `${what}: permission denied by the operating system (choose another with ${flag})`,
      );
    }
    if (err instanceof Deno.errors.NotFound) {
      throw new ListenError(`${what}: its directory does not exist (choose another with ${flag})`);
    }
    if (err instanceof Deno.errors.NotADirectory) {
      throw new ListenError(
        `${what}: a parent of it is not a directory (choose another with ${flag})`,
      );
    }
    // Deno reports an unknown host name as a plain Error carrying the resolver's words.
    if (err instanceof Error && /failed to lookup address/i.test(err.message)) {
      throw new ListenError(
        `${what}: the host name does not resolve (change --host or server.host)`,
      );
    }
    throw err;
  }
}

/**
 * A socket file left by a crashed daemon would make listen fail. Replace it only if no
 * live daemon answers on it: two sidecars must never steal each other's socket.
 */
export async function clearStaleSocket(
  path: string,
  connect: (path: string) => Promise<Deno.Conn> = (p) =>
    Deno.connect({ transport: "unix", path: p }),
): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    if (err instanceof Deno.errors.NotADirectory) {
      throw new ListenError(
        `Cannot use socket ${path}: a parent of it is not a directory (choose another with --socket)`,
      );
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new ListenError(
        `Cannot use socket ${path}: permission denied by the operating system (choose another with --socket)`,
      );
    }
    if (err instanceof Deno.errors.NotCapable) {
      throw new ListenError(
        `Cannot use socket ${path}: missing permission --allow-read=${path} (start with \`deno task start\`)`,
      );
    }
    throw err;
  }
  if (!info.isSocket) {
    throw new ListenError(
      `Cannot use socket ${path}: the file exists and is not a socket (choose another path with --socket)`,
    );
  }
  let conn: Deno.Conn | null = null;
  try {
    conn = await connect(path);
  } catch (err) {
    // Refused: nobody listens, a crashed daemon's leftover. Anything else (no permission to
    // connect, a full backlog) may be a live daemon this process cannot reach: never taken.
    if (!(err instanceof Deno.errors.ConnectionRefused)) {
      throw new ListenError(
        `Socket ${path} exists and cannot be checked (${
          (err as Error).name
        }): it may belong to a live daemon; remove it if it is stale, or choose another path with --socket`,
      );
    }
  }
  if (conn !== null) {
    conn.close();
    throw new ListenError(
      `Socket ${path} is held by a live daemon (another process is serving on it; choose another path with --socket)`,
    );
  }
  await Deno.remove(path);
}
