/**
 * Run the real daemon as a subprocess, exactly as `deno task start` does (scripts/start.sh,
 * which derives the permission flags from the config), and talk to it over TCP or its socket.
 * For what only the process shows: listeners and the socket, signals and draining, granted
 * permissions, hot reload through the file watcher, startup errors and the CLI. Everything
 * else runs in process (tests/helpers/in_process.ts), which is much cheaper.
 */
const ROOT = new URL("../../", import.meta.url).pathname;

export interface Daemon {
  readonly port: number;
  readonly socket: string;
  readonly dir: string;
  readonly configPath: string;
  /** Everything the daemon wrote to stdout and stderr so far. */
  logs(): string;
  /** Resolves once a log line containing `text` appears. */
  waitForLog(text: string, timeoutMs?: number): Promise<void>;
  /** fetch over the Unix socket. */
  socketFetch(path: string, init?: RequestInit): Promise<Response>;
  url(path: string): string;
  signal(sig: Deno.Signal): void;
  /** SIGTERM and wait; returns the exit code. */
  stop(): Promise<number>;
  readonly exited: Promise<Deno.CommandStatus>;
}

export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

interface StartOptions {
  env?: Record<string, string>;
  args?: string[];
  /** Stop reading stdout (closing the pipe) once it has shown this text. */
  closeStdoutAfter?: string;
}

/**
 * `yaml` may use {{PORT}} and {{SOCKET}}; they are filled with a free port and a temp socket.
 * freePort() frees the port again before the daemon binds it: under `deno test --parallel`
 * another test may take it first. A daemon that then says the address is in use is started
 * again on another port (twice at most).
 */
export async function startDaemon(yaml: string, opts: StartOptions = {}): Promise<Daemon> {
  for (let attempt = 1;; attempt++) {
    const port = freePort();
    try {
      return await startDaemonOnce(yaml, opts, port);
    } catch (err) {
      const taken = err instanceof Error &&
        err.message.includes(`:${port}: address already in use`);
      if (!taken || !yaml.includes("{{PORT}}") || attempt === 3) throw err;
    }
  }
}

async function startDaemonOnce(yaml: string, opts: StartOptions, port: number): Promise<Daemon> {
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-test-" });
  const socket = `${dir}/pf.sock`;
  const configPath = `${dir}/config.yaml`;
  await Deno.writeTextFile(
    configPath,
    yaml.replaceAll("{{PORT}}", String(port)).replaceAll("{{SOCKET}}", socket),
  );
  const child = new Deno.Command("sh", {
    args: [`${ROOT}scripts/start.sh`, "--config", configPath, ...(opts.args ?? [])],
    cwd: dir,
    env: { NO_COLOR: "1", ...opts.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const waiters: { needle: string; resolve: () => void }[] = [];
  const drain = async (stream: ReadableStream<Uint8Array>, closeAfter?: string) => {
    for await (const part of stream.pipeThrough(new TextDecoderStream())) {
      text += part;
      for (const w of [...waiters]) {
        if (text.includes(w.needle)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
      // Leaving the loop cancels the stream: the pipe's read end closes.
      if (closeAfter !== undefined && text.includes(closeAfter)) break;
    }
  };
  const drained = Promise.all([
    drain(child.stdout, opts.closeStdoutAfter),
    drain(child.stderr),
  ]);
  const exited = drained.then(() => child.status);
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socket } });

  const daemon: Daemon = {
    port,
    socket,
    dir,
    configPath,
    exited,
    logs: () => text,
    waitForLog(needle, timeoutMs = 10_000) {
      if (text.includes(needle)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`log "${needle}" not seen; logs:\n${text}`)),
          timeoutMs,
        );
        waiters.push({
          needle,
          resolve: () => {
            clearTimeout(t);
            resolve();
          },
        });
      });
    },
    socketFetch: (path, init) => fetch(`http://pilotfish${path}`, { ...init, client }),
    url: (path) => `http://127.0.0.1:${port}${path}`,
    signal: (sig) => child.kill(sig),
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      const status = await exited;
      client.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      return status.code;
    },
  };
  let listening = false;
  const exitedEarly = exited.then((s) => {
    if (!listening) throw new Error(`daemon exited with ${s.code} before listening:\n${text}`);
  });
  try {
    await Promise.race([daemon.waitForLog("pilotfish listening", 20_000), exitedEarly]);
  } catch (err) {
    // Nothing left behind: a test sees the error, a retry starts clean.
    exitedEarly.catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await exited.catch(() => {});
    client.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
  listening = true;
  return daemon;
}

/** Run the daemon CLI to completion (e.g. `--check`). */
export async function runCli(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command("sh", {
    args: [`${ROOT}scripts/start.sh`, ...args],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

export const chatBody = (model: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], ...extra });
