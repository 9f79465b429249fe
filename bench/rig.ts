/**
 * The bench's load generator and mock upstream: the Go programs in bench/loadgen and
 * bench/upstream_go when Go is installed (built once per source hash into
 * `$TMPDIR/pilotfish-bench-bin/<hash>`), otherwise the Deno ones (load.ts, upstream.ts), which
 * cost several times the CPU per request on the core they share with each other.
 */
import {
  closedLoop,
  type LatencyResult,
  manyStreams,
  type ManyStreamsResult,
  openLoop,
  streamFirstByte,
  type StreamResult,
  type Target,
  type ThroughputResult,
  warmUp,
} from "./load.ts";
import { readLines } from "./proc.ts";

const BENCH = new URL("./", import.meta.url);

/** Everything a Go build reads: a change to any of these is a new binary. */
const GO_SOURCES = ["go.mod", "internal/h1", "loadgen", "upstream_go"];

/** The load generator's side of the bench: what load.ts offers, whichever program runs it. */
export interface Load {
  /** "go" or "deno", for the report. */
  readonly kind: string;
  /** The process whose CPU is the load generator's. */
  readonly pid: number;
  openLoop(target: Target, rate: number, seconds: number): Promise<LatencyResult>;
  closedLoop(target: Target, concurrency: number, seconds: number): Promise<ThroughputResult>;
  streamFirstByte(target: Target, seconds: number): Promise<StreamResult>;
  manyStreams(
    target: Target,
    count: number,
    model: string,
    gapMs: number,
    rampSeconds: number,
  ): Promise<ManyStreamsResult>;
  warmUp(target: Target, concurrency: number, seconds: number): Promise<number>;
  /**
   * Go only: one open loop of `rate` req/s in all, request i to targets[i mod n]; a result
   * per target, in their order.
   */
  interleaved?(targets: readonly Target[], rate: number, seconds: number): Promise<LatencyResult[]>;
  close(): Promise<void>;
  /** Go only: how late each open-loop run's schedule ran. */
  readonly lateness?: readonly Lateness[];
}

/** load.ts in this process. */
export function denoLoad(): Load {
  return {
    kind: "deno",
    pid: Deno.pid,
    openLoop,
    closedLoop,
    streamFirstByte,
    manyStreams,
    warmUp,
    close: () => Promise.resolve(),
  };
}

export interface GoBinaries {
  readonly loadgen: string;
  readonly upstream: string;
}

/** The go command: BENCH_GO, else `go` on PATH, else the usual install path; null if none. */
async function findGo(): Promise<string | null> {
  const chosen = Deno.env.get("BENCH_GO")?.trim();
  const candidates = chosen ? [chosen] : ["go", "/usr/local/go/bin/go"];
  for (const go of candidates) {
    if (!go) continue;
    try {
      const out = await new Deno.Command(go, { args: ["version"], stdout: "null", stderr: "null" })
        .output();
      if (out.success) return go;
    } catch {
      // Not there: try the next.
    }
  }
  return null;
}

async function sourceHash(): Promise<string> {
  const parts: string[] = [];
  for (const entry of GO_SOURCES) {
    const url = new URL(entry, BENCH);
    const info = await Deno.stat(url);
    const files = info.isDirectory
      ? (await Array.fromAsync(Deno.readDir(url))).filter((e) => e.isFile)
        .map((e) => `${entry}/${e.name}`)
      : [entry];
    for (const file of files.sort()) {
      parts.push(file, await Deno.readTextFile(new URL(file, BENCH)));
    }
  }
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(parts.join("\0")));
  return [...new Uint8Array(digest)].slice(0, 8).map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/**
 * The Go programs, built on first use; or the reason they are not available (no Go, a build
 * error), which the report prints as its one-line warning.
 */
export async function goBinaries(): Promise<GoBinaries | { readonly reason: string }> {
  try {
    return await build();
  } catch (err) {
    return { reason: `Go build not possible: ${err instanceof Error ? err.message : String(err)}` };
  }
}

async function build(): Promise<GoBinaries | { readonly reason: string }> {
  const go = await findGo();
  if (go === null) return { reason: "go not found (BENCH_GO, PATH, /usr/local/go/bin)" };

  const root = `${Deno.env.get("TMPDIR")?.trim() || "/tmp"}/pilotfish-bench-bin`;
  const dir = `${root}/${await sourceHash()}`;
  const bins = { loadgen: `${dir}/loadgen`, upstream: `${dir}/upstream_go` };
  try {
    await Deno.stat(bins.upstream);
    return bins;
  } catch {
    // Not built yet.
  }
  // Build beside the final directory and rename it in, so a concurrent run never sees half.
  await Deno.mkdir(root, { recursive: true });
  const staging = await Deno.makeTempDir({ dir: root, prefix: "build-" });
  try {
    for (const name of ["loadgen", "upstream_go"]) {
      const out = await new Deno.Command(go, {
        args: ["build", "-trimpath", "-o", `${staging}/${name}`, `./${name}`],
        cwd: BENCH,
        // Standard library only: never reach for a toolchain or module download.
        env: { GOTOOLCHAIN: "local", GOPROXY: "off", GOFLAGS: "-mod=mod", CGO_ENABLED: "0" },
        stdout: "null",
        stderr: "piped",
      }).output();
      if (!out.success) {
        const err = new TextDecoder().decode(out.stderr).trim().split("\n")[0] ?? "";
        return { reason: `go build ./${name} failed: ${err}` };
      }
    }
    try {
      await Deno.rename(staging, dir);
    } catch {
      // Another run renamed its build in first: the same sources, so use that one.
    }
    return bins;
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
}

/** An open loop's answer (times in µs), as bench/loadgen/open.go writes it. */
export interface GoOpenAnswer {
  readonly latencies_us: number[];
  readonly errors: number;
  readonly sent_rate: number;
  readonly late_p50_us: number;
  readonly late_p99_us: number;
}

const ms = (us: readonly number[]) => us.map((v) => v / 1000);

function field<T>(answer: Record<string, unknown>, name: string, check: (v: unknown) => boolean) {
  const v = answer[name];
  if (!check(v)) throw new Error(`loadgen answer lacks ${name}: ${JSON.stringify(answer)}`);
  return v as T;
}
const isNumber = (v: unknown) => typeof v === "number" && Number.isFinite(v);
const isNumbers = (v: unknown) => Array.isArray(v) && v.every(isNumber);

/** The open loop's answer as load.ts's LatencyResult (ms), with the generator's lateness. */
export function parseOpen(answer: Record<string, unknown>): LatencyResult & {
  readonly lateP50: number;
  readonly lateP99: number;
} {
  return {
    latencies: ms(field<number[]>(answer, "latencies_us", isNumbers)),
    errors: field<number>(answer, "errors", isNumber),
    sentRate: field<number>(answer, "sent_rate", isNumber),
    lateP50: field<number>(answer, "late_p50_us", isNumber) / 1000,
    lateP99: field<number>(answer, "late_p99_us", isNumber) / 1000,
  };
}

export function parseClosed(answer: Record<string, unknown>): ThroughputResult {
  return {
    completed: field<number>(answer, "completed", isNumber),
    errors: field<number>(answer, "errors", isNumber),
    seconds: field<number>(answer, "seconds", isNumber),
    rps: field<number>(answer, "rps", isNumber),
  };
}

export function parseStreams(answer: Record<string, unknown>): StreamResult {
  return {
    ttfb: ms(field<number[]>(answer, "ttfb_us", isNumbers)),
    total: ms(field<number[]>(answer, "total_us", isNumbers)),
    errors: field<number>(answer, "errors", isNumber),
  };
}

export function parseMany(answer: Record<string, unknown>): ManyStreamsResult {
  return {
    ttfb: ms(field<number[]>(answer, "ttfb_us", isNumbers)),
    maxStall: field<number>(answer, "max_stall_us", isNumber) / 1000,
    stalled: field<number>(answer, "stalled", isNumber),
    completed: field<number>(answer, "completed", isNumber),
    errors: field<number>(answer, "errors", isNumber),
  };
}

/** The generator's lateness against its schedule, ms: pooled over every open-loop run. */
export interface Lateness {
  p50: number;
  p99: number;
}

/**
 * bench/loadgen as a long-lived child: one JSON command per line in, one answer per line
 * out, one command at a time. Its connection pools outlive commands, as a Deno client's do.
 * `command` and `args` may wrap it (taskset).
 */
export function goLoad(
  command: string,
  args: string[],
  opts: { bearer: string; promptBytes: number; uniquePrompts: boolean; newTurns?: boolean },
): Load {
  const child = new Deno.Command(command, {
    args: [
      ...args,
      `--bearer=${opts.bearer}`,
      `--prompt-bytes=${opts.promptBytes}`,
      ...(opts.uniquePrompts ? ["--unique-prompts"] : []),
      ...(opts.newTurns ? ["--new-turns"] : []),
      `--user-agent=Deno/${Deno.version.deno}`,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const lines = readLines(child.stdout);
  let stderr = "";
  const drained = (async () => {
    for await (const line of readLines(child.stderr)) stderr = (stderr + line + "\n").slice(-4000);
  })();
  const encoder = new TextEncoder();
  let queue: Promise<unknown> = Promise.resolve();
  const ask = (cmd: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const answer = queue.then(async () => {
      await writer.write(encoder.encode(JSON.stringify(cmd) + "\n"));
      const { done, value } = await lines.next();
      if (done) throw new Error(`loadgen exited:\n${stderr}`);
      const parsed = JSON.parse(value) as Record<string, unknown>;
      if (typeof parsed.error === "string") throw new Error(`loadgen: ${parsed.error}`);
      return parsed;
    });
    queue = answer.catch(() => {});
    return answer;
  };
  const where = (t: Target) => ({ url: t.url, ...(t.socket ? { socket: t.socket } : {}) });
  const lateness: Lateness[] = [];
  return {
    kind: "go",
    pid: child.pid,
    lateness,
    async openLoop(t, rate, seconds) {
      const r = parseOpen(await ask({ op: "open", ...where(t), rate, seconds }));
      lateness.push({ p50: r.lateP50, p99: r.lateP99 });
      return r;
    },
    async interleaved(targets, rate, seconds) {
      const answer = await ask({ op: "interleaved", targets: targets.map(where), rate, seconds });
      const results = answer.results;
      if (!Array.isArray(results) || results.length !== targets.length) {
        throw new Error(`loadgen answer lacks results: ${JSON.stringify(answer).slice(0, 200)}`);
      }
      return results.map((r) => {
        const parsed = parseOpen(r as Record<string, unknown>);
        lateness.push({ p50: parsed.lateP50, p99: parsed.lateP99 });
        return parsed;
      });
    },
    async closedLoop(t, concurrency, seconds) {
      return parseClosed(await ask({ op: "closed", ...where(t), concurrency, seconds }));
    },
    async streamFirstByte(t, seconds) {
      return parseStreams(await ask({ op: "streams", ...where(t), seconds }));
    },
    async manyStreams(t, count, model, gapMs, rampSeconds) {
      return parseMany(
        await ask({
          op: "many",
          ...where(t),
          count,
          model,
          gap_ms: gapMs,
          ramp_seconds: rampSeconds,
        }),
      );
    },
    async warmUp(t, concurrency, seconds) {
      const r = await ask({ op: "warmup", ...where(t), concurrency, seconds });
      return field<number>(r, "errors", isNumber);
    },
    async close() {
      await queue;
      await writer.close().catch(() => {});
      await child.status;
      await drained;
    },
  };
}
