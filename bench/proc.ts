/** Subprocess plumbing and /proc readings for the benchmark (Linux only). */

const TAIL_LINES = 200;

export interface Service {
  readonly name: string;
  readonly child: Deno.ChildProcess;
  /** The first stdout line (child processes announce their port there). */
  readonly firstLine: Promise<string>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<Deno.CommandStatus>;
  /** The last lines of stdout+stderr, for error messages. */
  tail(): string;
  /** SIGTERM, then SIGKILL if it is still there after `graceMs`. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/** A throwaway `redis-server` on `port` (no persistence), for benches that share state. */
export function spawnRedis(port: number, opts: { cwd?: string } = {}): Service {
  return spawnService("redis", "redis-server", [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
  ], opts);
}

/**
 * Spawn a long-running process with both pipes drained for its whole life: Pilotfish
 * writes logs synchronously, so a full pipe would stall its event loop and the benchmark
 * would measure our reader instead of the daemon.
 */
export function spawnService(
  name: string,
  command: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Service {
  const child = new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    ...(opts.env !== undefined ? { env: opts.env } : {}),
  }).spawn();
  const lines: string[] = [];
  const remember = (line: string) => {
    lines.push(line);
    if (lines.length > TAIL_LINES) lines.shift();
  };
  const tail = () => lines.join("\n");
  const first = Promise.withResolvers<string>();
  let gotFirst = false;
  const drains = [
    drainLines(child.stdout, (line) => {
      remember(line);
      if (!gotFirst) {
        gotFirst = true;
        first.resolve(line);
      }
    }),
    drainLines(child.stderr, remember),
  ];
  const exited = child.status.then(async (status) => {
    await Promise.allSettled(drains);
    if (!gotFirst) {
      first.reject(
        new Error(`${name} exited (code ${status.code}) before announcing itself:\n${tail()}`),
      );
    }
    return status;
  });
  // A caller that never awaits firstLine must not get an unhandled rejection.
  first.promise.catch(() => {});

  let stopping: Promise<void> | null = null;
  return {
    name,
    child,
    firstLine: first.promise,
    exited,
    tail,
    stop(graceMs = 5_000) {
      stopping ??= (async () => {
        try {
          child.kill("SIGTERM");
        } catch {
          // Already gone.
        }
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<"late">((resolve) => {
          timer = setTimeout(() => resolve("late"), graceMs);
        });
        const result = await Promise.race([exited, late]);
        clearTimeout(timer);
        if (result === "late") {
          try {
            child.kill("SIGKILL");
          } catch {
            // Exited in the meantime.
          }
          await exited;
        }
      })();
      return stopping;
    },
  };
}

async function drainLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  for await (const line of readLines(stream)) onLine(line);
}

/**
 * Deno 2.9 refuses to read anything under /proc without --allow-all, which `deno task
 * bench` does not grant; a shell may read it, so /proc goes through `sh`. Usage samples
 * come from one long-lived shell answering on stdin/stdout with builtins only (no fork per
 * sample), so sampling costs the measured machine next to nothing.
 */
const USAGE_SCRIPT = `
while read -r pid; do
  if [ -r "/proc/$pid/status" ] && read -r stat < "/proc/$pid/stat"; then
    rss=0
    while read -r key val _; do
      [ "$key" = "VmRSS:" ] && rss=$val
    done < "/proc/$pid/status"
    # The command name may contain spaces: split what follows its closing parenthesis.
    set -- \${stat##*) }
    # proc(5) fields 14 and 15 (utime, stime) are the 12th and 13th from field 3 on.
    echo "$rss $((\${12} + \${13}))"
  else
    echo "-"
  fi
done
`;

export interface Usage {
  /** Resident set size, bytes. */
  readonly rss: number;
  /** User+system CPU time so far, in clock ticks (CLOCK_TICKS_PER_SECOND). */
  readonly cpuTicks: number;
}

/**
 * USER_HZ. Linux has reported 100 to user space on every mainstream architecture for
 * decades, and Deno has no sysconf binding; this keeps the assumption in one place.
 */
export const CLOCK_TICKS_PER_SECOND = 100;

export interface UsageReader {
  /** RSS and CPU of `pid`, or null once it is gone. */
  usage(pid: number): Promise<Usage | null>;
  close(): Promise<void>;
}

export function startUsageReader(): UsageReader {
  const child = new Deno.Command("sh", {
    args: ["-c", USAGE_SCRIPT],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  const lines = readLines(child.stdout);
  const encoder = new TextEncoder();
  // One question at a time: answers come back in order on a single pipe.
  let queue: Promise<unknown> = Promise.resolve();
  const ask = async (pid: number): Promise<Usage | null> => {
    await writer.write(encoder.encode(`${pid}\n`));
    const { done, value } = await lines.next();
    if (done) throw new Error("the /proc reader shell exited");
    const [rss, ticks] = value.split(" ").map(Number);
    if (rss === undefined || ticks === undefined || !(rss > 0)) return null;
    return { rss: rss * 1024, cpuTicks: ticks };
  };
  return {
    usage(pid) {
      const answer = queue.then(() => ask(pid));
      queue = answer.catch(() => {});
      return answer;
    },
    async close() {
      await queue;
      await writer.close().catch(() => {});
      await child.status;
    },
  };
}

/** The lines of a byte stream, without their newlines. */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let partial = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (partial + text).split("\n");
    partial = parts.pop() ?? "";
    yield* parts;
  }
  if (partial !== "") yield partial;
}

/** A /proc file's text via `cat` (one-off reads only: this forks). */
export async function readProcFile(path: string): Promise<string | null> {
  const out = await new Deno.Command("cat", { args: [path], stdout: "piped", stderr: "null" })
    .output();
  return out.success ? new TextDecoder().decode(out.stdout) : null;
}

/**
 * CPU time of `pid` so far, ns, summed over its threads' `schedstat` (nanosecond clocks, where
 * `stat`'s ticks are 10 ms: too coarse for a few seconds at 200 req/s). A thread that exited
 * meanwhile drops out of the sum, so only differences over steady threads mean anything.
 */
export async function cpuNs(pid: number): Promise<number | null> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `cat /proc/${pid}/task/*/schedstat`],
    stdout: "piped",
    stderr: "null",
  }).output();
  if (!out.success) return null;
  let ns = 0;
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const first = Number(line.split(" ")[0]);
    if (line !== "" && Number.isFinite(first)) ns += first;
  }
  return ns;
}

/**
 * The pid that actually runs `marker` (a script path): `pid` itself when it exec'd into
 * it, otherwise its first descendant that did. Guards against a launcher script that
 * forks instead of exec'ing, which would make us measure a 1 MB shell.
 */
export async function findProcess(pid: number, marker: string): Promise<number | null> {
  const own = await readProcFile(`/proc/${pid}/cmdline`);
  if (own?.replaceAll("\0", " ").includes(marker)) return pid;
  let listing: string;
  try {
    const out = await new Deno.Command("ps", {
      args: ["-e", "-o", "pid=,ppid=,args="],
      stdout: "piped",
      stderr: "null",
    }).output();
    listing = new TextDecoder().decode(out.stdout);
  } catch {
    return null; // no ps: the caller falls back to the pid it has
  }
  const procs = listing.split("\n").flatMap((line) => {
    const m = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line);
    return m ? [{ pid: Number(m[1]), ppid: Number(m[2]), args: m[3] ?? "" }] : [];
  });
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift() as number;
    for (const p of procs) {
      if (p.ppid !== parent) continue;
      if (p.args.includes(marker)) return p.pid;
      queue.push(p.pid);
    }
  }
  return null;
}

/** Samples a process's RSS on a timer and keeps the peak. */
export function sampleRss(
  reader: UsageReader,
  pid: number,
  everyMs: number,
): { stop(): Promise<number | null> } {
  let peak: number | null = null;
  let inflight: Promise<void> | null = null;
  // Join a sample still in flight rather than pile up questions if the shell is slow.
  const take = (): Promise<void> =>
    inflight ??= reader.usage(pid).then((u) => {
      if (u !== null && (peak === null || u.rss > peak)) peak = u.rss;
    }).finally(() => {
      inflight = null;
    });
  take();
  const timer = setInterval(take, everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await inflight;
      await take();
      return peak;
    },
  };
}
