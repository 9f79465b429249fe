import type { ServerConfig } from "../config/mod.ts";
import type { Logger } from "../telemetry/mod.ts";

export type Handler = (
  req: Request,
  info: Deno.ServeHandlerInfo<Deno.Addr>,
) => Response | Promise<Response>;

export interface Listeners {
  /** Bound TCP address (port resolved when 0 was asked for), if TCP is on. */
  readonly tcp: Deno.NetAddr | null;
  readonly socket: string | null;
  /**
   * Stop accepting, let in-flight requests and streams finish for up to `drainMs`, then
   * close what is left and remove the socket file. Resolves true when everything drained.
   */
  shutdown(drainMs: number): Promise<boolean>;
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
    logger.error("unhandled server error", { error: err });
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
  let tcp: Deno.NetAddr | null = null;
  let socket: string | null = null;
  try {
    if (server.tcp) {
      const s = Deno.serve({
        hostname: server.host,
        port: server.port,
        signal: abort.signal,
        onError,
        onListen: () => {},
      }, handler);
      tcp = s.addr as Deno.NetAddr;
      servers.push(s);
    }
    if (server.socket !== "") {
      await clearStaleSocket(server.socket);
      const s = Deno.serve({
        path: server.socket,
        signal: abort.signal,
        onError,
        onListen: () => {},
      }, handler);
      servers.push(s);
      socket = server.socket;
      await Deno.chmod(server.socket, server.socket_mode);
    }
  } catch (err) {
    abort.abort();
    await Promise.allSettled(servers.map((s) => s.finished));
    throw err;
  }

  return {
    tcp,
    socket,
    async shutdown(drainMs: number): Promise<boolean> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const drained = Promise.all(servers.map((s) => s.shutdown())).then(() => true);
      const timeout = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), drainMs);
      });
      const ok = await Promise.race([drained, timeout]);
      clearTimeout(timer);
      if (socket) await Deno.remove(socket).catch(() => {});
      return ok;
    },
  };
}

/**
 * A socket file left by a crashed daemon would make listen fail. Replace it only if no
 * live daemon answers on it: two sidecars must never steal each other's socket.
 */
async function clearStaleSocket(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  if (!info.isSocket) {
    throw new Error(`Refusing to replace "${path}": it exists and is not a socket`);
  }
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    throw new Error(`Another process is already serving on socket "${path}"`);
  } catch (err) {
    if (err instanceof Error && err.message.startsWith("Another process")) throw err;
    await Deno.remove(path); // nobody answered: stale
  }
}
