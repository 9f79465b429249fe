// deno-lint-ignore-file no-console -- a CLI report: stdout is its whole point.
/** Formatting of the benchmark's results. Informational only: nothing here fails a run. */
import { readProcFile } from "./proc.ts";

export interface Row {
  readonly name: string;
  /** Open-loop latency, ms. */
  readonly p50: number;
  readonly p99: number;
  readonly sentRate: number;
  /** Proxy p50 minus direct p50, ms; null for the direct row. */
  readonly addedP50: number | null;
  /** Closed-loop throughput, requests per second: median and range over the rounds. */
  readonly rps: number;
  readonly rpsMin: number;
  readonly rpsMax: number;
  /** Streaming first body chunk and stream end, p50 ms. */
  readonly ttfbP50: number;
  readonly streamP50: number;
  /** Bytes; null where there is no proxy process. */
  readonly rssReady: number | null;
  readonly rssIdle: number | null;
  readonly rssPeak: number | null;
  /** CPU per request during the throughput run, microseconds, per process. */
  readonly cpuPerReq: {
    readonly proxy: number | null;
    readonly client: number | null;
    readonly upstream: number | null;
  };
  readonly errors: number;
}

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly deno: string;
  readonly v8: string;
  readonly os: string;
}

export interface Settings {
  readonly rate: number;
  readonly seconds: number;
  readonly rounds: number;
  readonly concurrency: number;
  readonly ttfbSeconds: number;
  readonly warmupSeconds: number;
  readonly settleSeconds: number;
  readonly chunks: number;
  readonly chunkDelayMs: number;
}

export async function machineInfo(): Promise<Machine> {
  let cpu = "unknown";
  let cores = navigator.hardwareConcurrency;
  const info = await readProcFile("/proc/cpuinfo").catch(() => null);
  if (info !== null) {
    cpu = /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? cpu;
    const processors = info.match(/^processor\s*:/gm)?.length ?? 0;
    if (processors > 0) cores = processors;
  }
  return {
    cpu,
    cores,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    os: `${Deno.build.os} ${Deno.build.arch}`,
  };
}

export function printHeader(m: Machine, s: Settings): void {
  console.log("Pilotfish benchmark");
  console.log(`  machine : ${m.cpu}, ${m.cores} cores, ${m.os}`);
  console.log(`  runtime : deno ${m.deno}, v8 ${m.v8}`);
  console.log(
    `  load    : per target, latency at ${s.rate} req/s open-loop for ${s.seconds}s, ` +
      `throughput at ${s.concurrency} in flight for ${s.seconds}s, streaming TTFB one at a ` +
      `time for ${s.ttfbSeconds}s; each split into ${s.rounds} rounds interleaved across targets`,
  );
  console.log(
    `  upstream: mock OpenAI in its own process; streams ${s.chunks} content chunks ` +
      `${s.chunkDelayMs} ms apart; warm-up ${s.warmupSeconds}s per target (half that before ` +
      `each round); idle RSS after ${s.settleSeconds}s settle`,
  );
  console.log(
    `  note    : load generator, upstream and proxy are separate processes sharing ` +
      `${m.cores} cores, so throughput is bounded by their summed CPU per request; every ` +
      `target sees the same contention`,
  );
  console.log("");
}

const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : "-");
const mb = (v: number | null) => (v === null ? "-" : (v / (1024 * 1024)).toFixed(1));
const us = (v: number | null) => (v === null ? "-" : v.toFixed(0));
const signedMs = (v: number | null) => (v === null ? "-" : (v >= 0 ? "+" : "") + v.toFixed(3));

export function printTable(rows: readonly Row[]): void {
  const head = [
    "target",
    "p50 ms",
    "p99 ms",
    "added p50",
    "sent/s",
    "max req/s",
    "range",
    "TTFB p50",
    "stream p50",
    "RSS start MB",
    "RSS after load MB",
    "RSS peak MB",
    "CPU us/req proxy",
    "client",
    "upstream",
    "errors",
  ];
  const body = rows.map((r) => [
    r.name,
    ms(r.p50),
    ms(r.p99),
    signedMs(r.addedP50),
    r.sentRate.toFixed(0),
    r.rps.toFixed(0),
    `${r.rpsMin.toFixed(0)}-${r.rpsMax.toFixed(0)}`,
    ms(r.ttfbP50),
    ms(r.streamP50),
    mb(r.rssReady),
    mb(r.rssIdle),
    mb(r.rssPeak),
    us(r.cpuPerReq.proxy),
    us(r.cpuPerReq.client),
    us(r.cpuPerReq.upstream),
    String(r.errors),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]?.length ?? 0)));
  // First column left-aligned (names), numbers right-aligned so digits line up.
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join("  ");
  console.log(line(head));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of body) console.log(line(row));
  console.log("");
}

export interface Check {
  readonly target: string;
  readonly measured: string;
  readonly ok: boolean | null;
}

/** The targets the roadmap sets, each against what was measured. */
export function checks(rows: readonly Row[]): Check[] {
  const by = (name: string) => rows.find((r) => r.name === name);
  const bare = by("bare proxy");
  const tcp = by("pilotfish tcp");
  const sock = by("pilotfish socket");
  const out: Check[] = [];
  const judge = (cond: boolean | undefined) => (cond === undefined ? null : cond);
  if (bare?.addedP50 != null && tcp?.addedP50 != null) {
    const limit = 1.3 * bare.addedP50;
    out.push({
      target: "added p50 (TCP) <= 1.3x bare proxy's",
      measured: `${signedMs(tcp.addedP50)} ms vs limit ${ms(limit)} ms (${
        ratio(tcp.addedP50, bare.addedP50)
      } of bare)`,
      ok: judge(tcp.addedP50 <= limit),
    });
  }
  if (tcp && sock) {
    out.push({
      target: "socket p50 lower than TCP p50",
      measured: `${ms(sock.p50)} ms vs ${ms(tcp.p50)} ms (added ${signedMs(sock.addedP50)} vs ${
        signedMs(tcp.addedP50)
      })`,
      ok: judge(sock.p50 < tcp.p50),
    });
  }
  for (const r of [tcp, sock]) {
    if (!r || !bare) continue;
    out.push({
      target: `throughput (${r.name.replace("pilotfish ", "")}) >= 80% of bare proxy's`,
      measured: `${r.rps.toFixed(0)} vs ${bare.rps.toFixed(0)} req/s (${pct(r.rps / bare.rps)})`,
      ok: judge(r.rps >= 0.8 * bare.rps),
    });
  }
  if (tcp) {
    // "Idle" is the sidecar beside an app that has not called it yet. After load, V8 keeps
    // its grown heap (the bare proxy does the same), reported next to it for comparison.
    out.push({
      target: "idle RSS <= 50 MB (at start, before traffic)",
      measured: `${mb(tcp.rssReady)} MB`,
      ok: tcp.rssReady === null ? null : tcp.rssReady <= 50 * 1024 * 1024,
    });
    out.push({
      target: "RSS idle after load (info: bare proxy alongside)",
      measured: `${mb(tcp.rssIdle)} MB vs bare ${mb(bare?.rssIdle ?? null)} MB`,
      ok: null,
    });
    const mine = tcp.cpuPerReq.proxy;
    const base = bare?.cpuPerReq.proxy ?? null;
    if (mine !== null && base !== null) {
      out.push({
        target: "proxy CPU per request (info: what bounds throughput here)",
        measured: `${mine.toFixed(0)} vs bare ${base.toFixed(0)} us (${ratio(mine, base)})`,
        ok: null,
      });
    }
  }
  return out;
}

/** The variant daemon (features on) against the baseline (off), both over TCP, same rounds. */
export function printVariant(base: Row, variant: Row): void {
  const d = (a: number | null, b: number | null, f: (v: number) => string) =>
    a === null || b === null ? "-" : f(b - a);
  const signedUs = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(0)} us`;
  console.log(`Variant vs baseline (same run): ${variant.name} vs ${base.name}`);
  console.log(`  added p50   ${d(base.addedP50, variant.addedP50, (v) => signedUs(v * 1000))}`);
  console.log(`  p99         ${d(base.p99, variant.p99, (v) => signedUs(v * 1000))}`);
  console.log(
    `  CPU/req     ${d(base.cpuPerReq.proxy, variant.cpuPerReq.proxy, signedUs)} (${
      us(base.cpuPerReq.proxy)
    } -> ${us(variant.cpuPerReq.proxy)} us)`,
  );
  console.log(
    `  max req/s   ${variant.rps.toFixed(0)} vs ${base.rps.toFixed(0)} (${
      pct(variant.rps / base.rps)
    })`,
  );
  console.log(`  TTFB p50    ${d(base.ttfbP50, variant.ttfbP50, (v) => signedUs(v * 1000))}`);
  console.log("");
}

export function printChecks(list: readonly Check[]): void {
  console.log("Targets (informational; the exit code does not depend on them)");
  const width = Math.max(...list.map((c) => c.target.length));
  for (const c of list) {
    const verdict = c.ok === null ? "n/a " : c.ok ? "OK  " : "MISS";
    console.log(`  ${verdict}  ${c.target.padEnd(width)}  ${c.measured}`);
  }
  console.log("");
}

function ratio(a: number, b: number): string {
  return b === 0 ? "-" : `${(a / b).toFixed(2)}x`;
}

function pct(v: number): string {
  return Number.isFinite(v) ? `${(v * 100).toFixed(0)}%` : "-";
}
