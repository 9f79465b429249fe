// deno-lint-ignore-file no-console -- a CLI: progress goes to stderr, the table to stdout.
/**
 * `deno task soak --minutes N` (or `--seconds N`): mixed traffic against a spawned daemon
 * (started as `deno task start` starts it) and a misbehaving local upstream — streams and
 * plain completions, upstream 5xx, resets before and during a stream, client aborts — at a
 * steady rate, with one table row per interval (a minute, or a tenth of a `--seconds` run):
 * requests, failures by kind, p50/p99 of the successful ones, the daemon's RSS and open fds.
 * Then the verdict: RSS slope after warm-up (target < 1 MB/min), p99 drift (< 10 %), fd
 * growth. Exit 1 when a target is missed, 2 when the soak itself could not run.
 *
 * Options: --minutes N | --seconds N, --rate R (requests/s, default 50), --interval S
 * (seconds per row), --warmup N (requests sent as fast as possible first, default 4000: V8
 * grows its heap over the first few thousand requests, and that is not a leak).
 */
import { fileURLToPath } from "node:url";
import { startChaosUpstream } from "../tests/helpers/chaos_upstream.ts";
import { findDaemonPid, procStats, slope } from "../tests/helpers/proc_stats.ts";
import { percentile } from "./load.ts";
import { spawnService } from "./proc.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

export interface SoakOptions {
  readonly seconds: number;
  readonly intervalSeconds: number;
  readonly rate: number;
  readonly warmupRequests: number;
  /** V8 flags for the daemon (`DENO_V8_FLAGS`), e.g. a tighter heap for a short leak check. */
  readonly v8Flags?: string;
  /** Progress lines (stderr for the CLI; nothing in tests). */
  readonly progress?: (line: string) => void;
}

export interface SoakRow {
  readonly at: number; // seconds since the measured phase began
  readonly requests: number;
  readonly ok: number;
  readonly upstreamErrors: number; // in-format errors for the 5xx and resets we caused
  readonly aborts: number; // client aborts we caused
  readonly bad: number; // hangs, silent ends, broken answers: never acceptable
  readonly p50: number;
  readonly p99: number;
  readonly rssMb: number;
  readonly fds: number;
}

export interface SoakReport {
  readonly coldRssMb: number;
  readonly warmRssMb: number;
  readonly rows: SoakRow[];
  /** Least-squares RSS slope over the rows after the first, MB per minute. */
  readonly rssSlopeMbPerMin: number;
  /** Mean p99 of the last third of those rows against the first third, in %. */
  readonly p99DriftPct: number;
  /** Open fds of the last row minus the second (the first after warm-up settled). */
  readonly fdGrowth: number;
  readonly bad: number;
  readonly failures: string[];
}

type Kind =
  | "ok"
  | "ok_stream"
  | "status_500"
  | "reset_mid_stream"
  | "reset_before_headers"
  | "abort";
// The mix: mostly healthy, one in five a failure we cause, one in ten a client abort.
const MIX: readonly [Kind, number][] = [
  ["ok", 40],
  ["ok_stream", 30],
  ["status_500", 10],
  ["reset_mid_stream", 5],
  ["reset_before_headers", 5],
  ["abort", 10],
];

function pickKind(i: number): Kind {
  // Deterministic spread: request i takes the slot i mod 100 of the mix.
  let slot = (i * 37) % 100;
  for (const [kind, weight] of MIX) {
    if (slot < weight) return kind;
    slot -= weight;
  }
  return "ok";
}

type Ending = "ok" | "upstream_error" | "abort" | "bad";

async function one(
  url: string,
  kind: Kind,
  deadlineMs: number,
): Promise<{ ending: Ending; ms: number; detail: string }> {
  const started = performance.now();
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort("deadline"), deadlineMs);
  const stream = kind !== "ok" && kind !== "status_500" && kind !== "reset_before_headers";
  const model = kind === "abort" ? "chaos/drip_stream" : `chaos/${kind}`;
  const ms = () => performance.now() - started;
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model,
        messages: [{ role: "user", content: "hi" }],
        ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
      }),
      signal: abort.signal,
    });
    if (kind === "abort") {
      // Read the first chunk, then walk away mid-stream.
      const reader = res.body!.getReader();
      await reader.read();
      await reader.cancel();
      return { ending: "abort", ms: ms(), detail: "" };
    }
    const text = await res.text();
    const failing = kind === "status_500" || kind.startsWith("reset");
    if (res.status === 200 && !failing) {
      const complete = stream
        ? text.trimEnd().endsWith("data: [DONE]")
        : text.includes('"choices"');
      return { ending: complete ? "ok" : "bad", ms: ms(), detail: text.slice(-120) };
    }
    const inFormat = /"error"\s*:\s*\{/.test(text);
    return {
      ending: failing && inFormat ? "upstream_error" : "bad",
      ms: ms(),
      detail: `${res.status} ${text.slice(0, 120)}`,
    };
  } catch (err) {
    return { ending: "bad", ms: ms(), detail: abort.signal.aborted ? "hang" : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const say = opts.progress ?? (() => {});
  const upstream = startChaosUpstream({ dripMs: 5 });
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-soak-" });
  const port = freePort();
  const config = `${dir}/config.yaml`;
  await Deno.writeTextFile(
    config,
    `server: { host: 127.0.0.1, port: ${port}, socket: "${dir}/pf.sock", write_timeout: 10s }
logging: { level: warn }
providers:
  chaos: { type: openai, base_url: "${upstream.url}", keys: [{ key: sk-soak }], timeout: 5s }
routing: { failover: { max_retries: 1, backoff: { initial: 5ms, max: 20ms }, deadline: 10s } }
`,
  );
  const daemon = spawnService("pilotfish", "sh", [`${ROOT}scripts/start.sh`, "--config", config], {
    cwd: dir,
    env: { NO_COLOR: "1", ...(opts.v8Flags ? { DENO_V8_FLAGS: opts.v8Flags } : {}) },
  });
  const url = `http://127.0.0.1:${port}/v1/chat/completions`;
  const failures: string[] = [];
  try {
    await waitListening(port, daemon.exited);
    const pid = await findDaemonPid(config);
    const cold = await procStats(pid);
    say(`daemon pid ${pid}, cold RSS ${mb(cold.rss)} MB; warm-up ${opts.warmupRequests} requests`);
    let w = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (w < opts.warmupRequests) {
        const r = await one(url, pickKind(w++), 15_000);
        if (r.ending === "bad") failures.push(`warm-up: ${r.detail}`);
      }
    }));
    const warm = await procStats(pid);
    say(`warm RSS ${mb(warm.rss)} MB; soaking ${opts.seconds} s at ${opts.rate} req/s`);

    const rows: SoakRow[] = [];
    const start = performance.now();
    const intervalMs = opts.intervalSeconds * 1000;
    const total = Math.round(opts.seconds * opts.rate);
    let current = newBucket();
    const inflight = new Set<Promise<void>>();
    let sent = 0;
    let nextRow = start + intervalMs;
    while (sent < total || performance.now() < start + opts.seconds * 1000) {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - start) / 1000) * opts.rate));
      for (; sent < due; sent++) {
        const bucket = current;
        const p = one(url, pickKind(sent), 15_000).then((r) => {
          bucket.requests++;
          if (r.ending === "ok") {
            bucket.ok++;
            bucket.latencies.push(r.ms);
          } else if (r.ending === "upstream_error") bucket.upstreamErrors++;
          else if (r.ending === "abort") bucket.aborts++;
          else {
            bucket.bad++;
            failures.push(r.detail);
          }
        });
        inflight.add(p);
        p.finally(() => inflight.delete(p));
      }
      if (now >= nextRow) {
        const s = await procStats(pid);
        const row = toRow(current, (nextRow - start) / 1000, s);
        rows.push(row);
        say(formatRow(row));
        current = newBucket();
        nextRow += intervalMs;
      }
      // The pacing tick of an open loop (requests go out on schedule, not when others end).
      await new Promise((r) => setTimeout(r, 10));
    }
    await Promise.all(inflight);
    if (current.requests > 0 && rows.length * intervalMs < opts.seconds * 1000) {
      rows.push(toRow(current, opts.seconds, await procStats(pid)));
    }
    // The first row still carries the warm-up's tail (late GC, queued connections): the
    // trend is read from the rows after it.
    const settled = rows.length > 2 ? rows.slice(1) : rows;
    const third = Math.max(1, Math.floor(settled.length / 3));
    const meanP99 = (rs: SoakRow[]) => rs.reduce((n, r) => n + r.p99, 0) / rs.length;
    return {
      coldRssMb: cold.rss / 1048576,
      warmRssMb: warm.rss / 1048576,
      rows,
      rssSlopeMbPerMin: slope(settled.map((r) => r.at / 60), settled.map((r) => r.rssMb)),
      p99DriftPct: (meanP99(settled.slice(-third)) / meanP99(settled.slice(0, third)) - 1) * 100,
      fdGrowth: settled.at(-1)!.fds - settled[0]!.fds,
      bad: rows.reduce((n, r) => n + r.bad, 0),
      failures: failures.slice(0, 20),
    };
  } finally {
    await daemon.stop();
    await upstream.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

interface Bucket {
  requests: number;
  ok: number;
  upstreamErrors: number;
  aborts: number;
  bad: number;
  latencies: number[];
}

function newBucket(): Bucket {
  return { requests: 0, ok: 0, upstreamErrors: 0, aborts: 0, bad: 0, latencies: [] };
}

function toRow(b: Bucket, at: number, s: { rss: number; fds: number }): SoakRow {
  const sorted = b.latencies.sort((x, y) => x - y);
  return {
    at,
    requests: b.requests,
    ok: b.ok,
    upstreamErrors: b.upstreamErrors,
    aborts: b.aborts,
    bad: b.bad,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    rssMb: s.rss / 1048576,
    fds: s.fds,
  };
}

const mb = (bytes: number) => (bytes / 1048576).toFixed(1);

const HEADER = "   t(s)  requests     ok  errors  aborts  bad   p50 ms   p99 ms   RSS MB   fds";
function formatRow(r: SoakRow): string {
  return `${r.at.toFixed(0).padStart(7)} ${String(r.requests).padStart(9)} ${
    String(r.ok).padStart(6)
  } ` +
    `${String(r.upstreamErrors).padStart(7)} ${String(r.aborts).padStart(7)} ${
      String(r.bad).padStart(4)
    } ` +
    `${r.p50.toFixed(1).padStart(8)} ${r.p99.toFixed(1).padStart(8)} ${
      r.rssMb.toFixed(1).padStart(8)
    } ` +
    `${String(r.fds).padStart(5)}`;
}

/** Targets (issue 17): RSS < 1 MB/min after warm-up, p99 drift < 10 %, fds not growing. */
export function verdict(
  report: SoakReport,
  limits = { rssMbPerMin: 1, p99DriftPct: 10, fdGrowth: 10 },
) {
  const misses: string[] = [];
  if (report.rssSlopeMbPerMin > limits.rssMbPerMin) {
    misses.push(
      `RSS grows ${report.rssSlopeMbPerMin.toFixed(2)} MB/min (limit ${limits.rssMbPerMin})`,
    );
  }
  if (report.p99DriftPct > limits.p99DriftPct) {
    misses.push(`p99 drifted ${report.p99DriftPct.toFixed(1)} % (limit ${limits.p99DriftPct})`);
  }
  if (report.fdGrowth > limits.fdGrowth) misses.push(`open fds grew by ${report.fdGrowth}`);
  if (report.bad > 0) {
    misses.push(`${report.bad} requests hung or ended broken: ${report.failures[0]}`);
  }
  return misses;
}

export function printReport(report: SoakReport, print: (line: string) => void): void {
  print(
    `cold RSS ${report.coldRssMb.toFixed(1)} MB, after warm-up ${report.warmRssMb.toFixed(1)} MB`,
  );
  print(HEADER);
  for (const r of report.rows) print(formatRow(r));
  print(
    `RSS slope ${report.rssSlopeMbPerMin.toFixed(2)} MB/min, p99 drift ${
      report.p99DriftPct.toFixed(1)
    } %, ` +
      `fd growth ${report.fdGrowth}, broken ${report.bad}`,
  );
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Resolve once the daemon answers /healthz; reject if it exits first or takes over 30 s. */
async function waitListening(port: number, exited: Promise<Deno.CommandStatus>): Promise<void> {
  let gone = false;
  exited.then(() => gone = true);
  const until = Date.now() + 30_000;
  while (Date.now() < until && !gone) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      await res.body?.cancel();
      if (res.ok) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100)); // start-up poll
  }
  throw new Error(gone ? "the daemon exited during start-up" : "the daemon did not start in 30 s");
}

function parseArgs(args: string[]): SoakOptions {
  let seconds = 30 * 60;
  let interval: number | null = null;
  let rate = 50;
  let warmup = 4000;
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i]!.split("=", 2);
    const value = Number(inline ?? args[++i]);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`${flag} needs a positive number`);
    if (flag === "--minutes") seconds = value * 60;
    else if (flag === "--seconds") seconds = value;
    else if (flag === "--interval") interval = value;
    else if (flag === "--rate") rate = value;
    else if (flag === "--warmup") warmup = Math.floor(value);
    else {throw new Error(
        `unknown option ${flag} (--minutes, --seconds, --rate, --interval, --warmup)`,
      );}
  }
  return {
    seconds,
    intervalSeconds: interval ?? (seconds >= 120 ? 60 : Math.max(1, seconds / 10)),
    rate,
    warmupRequests: warmup,
  };
}

if (import.meta.main) {
  let opts: SoakOptions;
  try {
    opts = parseArgs(Deno.args);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    Deno.exit(2);
  }
  try {
    const report = await runSoak({ ...opts, progress: (l) => console.error(`[soak] ${l}`) });
    printReport(report, (l) => console.log(l));
    const misses = verdict(report);
    console.log(misses.length === 0 ? "targets met" : `targets missed:\n  ${misses.join("\n  ")}`);
    Deno.exit(misses.length === 0 ? 0 : 1);
  } catch (err) {
    console.error(`soak could not run: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exit(2);
  }
}
