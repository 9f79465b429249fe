// deno-lint-ignore-file no-console -- a CLI report: stdout is its whole point.
/** Formatting of the benchmark's results. Informational only: nothing here fails a run. */
import { percentile } from "./load.ts";
import { readProcFile } from "./proc.ts";

export interface Row {
  readonly name: string;
  /** Open-loop latency at the base rate, ms. */
  readonly p50: number;
  readonly p99: number;
  readonly sentRate: number;
  /** Open-loop latency at the high rate, ms. */
  readonly p50High: number;
  readonly p99High: number;
  readonly sentRateHigh: number;
  /** Closed-loop throughput, requests per second: median and range over the rounds. */
  readonly rps: number;
  readonly rpsMin: number;
  readonly rpsMax: number;
  /** Streams one at a time: first content p50/p99 and stream end p50, ms. */
  readonly ttfbP50: number;
  readonly ttfbP99: number;
  readonly streamP50: number;
  /** Concurrent streams: first chunk p99 and the worst stall, ms; null when not run. */
  readonly many: {
    readonly ttfbP99: number;
    readonly maxStall: number;
    readonly stalled: number;
    readonly completed: number;
    readonly errors: number;
  } | null;
  /** Bytes; null where there is no proxy process. */
  readonly rssReady: number | null;
  readonly rssIdle: number | null;
  readonly rssPeak: number | null;
  /** CPU per request at the high rate, microseconds, per process. */
  readonly cpuPerReq: {
    readonly proxy: number | null;
    readonly client: number | null;
    readonly upstream: number | null;
  };
  readonly errors: number;
  /** Each round's own figures (same order for every row). */
  readonly rounds: readonly RoundFigures[];
}

/** One round's figures of one target: latencies in ms, CPU in µs per request. */
export interface RoundFigures {
  readonly p50: number;
  readonly p99: number;
  readonly p50High: number;
  readonly p99High: number;
  readonly cpuPerReq: number | null;
  readonly rps: number;
  readonly ttfbP50: number;
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
  readonly highRate: number;
  readonly seconds: number;
  readonly rounds: number;
  readonly concurrency: number;
  readonly ttfbSeconds: number;
  readonly warmupSeconds: number;
  readonly settleSeconds: number;
  readonly chunks: number;
  readonly chunkDelayMs: number;
  readonly streams: number;
  readonly manyChunks: number;
  readonly pinned: boolean;
  /** Seconds of the interleaved open loop (0: skipped), split into this many blocks. */
  readonly interleavedSeconds: number;
  readonly interleavedBlocks: number;
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

/** `rig`: the load generator and upstream in use (or the warning that the Deno ones are). */
export function printHeader(m: Machine, s: Settings, rig: string): void {
  console.log("Pilotfish benchmark");
  console.log(`  machine : ${m.cpu}, ${m.cores} cores, ${m.os}`);
  console.log(`  runtime : deno ${m.deno}, v8 ${m.v8}`);
  console.log(
    `  load    : per target, ${s.seconds}s each of open-loop latency at ${s.rate} and at ` +
      `${s.highRate} req/s and closed-loop throughput at ${s.concurrency} in flight, ` +
      `${s.ttfbSeconds}s of streams one at a time; each split into ${s.rounds} rounds ` +
      `interleaved across targets` +
      (s.streams > 0
        ? `; then ${s.streams} concurrent streams of ${s.manyChunks} chunks at 10/s per target, twice (targets in opposite orders, the worse run by max stall kept)`
        : ""),
  );
  console.log(
    `  upstream: mock OpenAI in its own process; streams one at a time have ${s.chunks} ` +
      `content chunks ${s.chunkDelayMs} ms apart; warm-up ${s.warmupSeconds}s per target ` +
      `(half that before each round); idle RSS after ${s.settleSeconds}s settle`,
  );
  console.log(
    s.pinned
      ? "  cores   : proxies pinned to core 0; load generator and upstream to core 1"
      : `  cores   : not pinned: load generator, upstream and proxy share ${m.cores} cores`,
  );
  console.log(`  rig     : ${rig}`);
  console.log("");
}

const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : "-");
const mb = (v: number | null) => (v === null ? "-" : (v / (1024 * 1024)).toFixed(1));
const us = (v: number | null) => (v === null ? "-" : v.toFixed(0));
const signedMs = (v: number | null) =>
  v === null || !Number.isFinite(v) ? "-" : (v >= 0 ? "+" : "") + v.toFixed(2);

/** What a row adds over the direct call, ms. */
function added(row: Row, direct: Row) {
  return {
    p50: row.p50 - direct.p50,
    p99: row.p99 - direct.p99,
    p50High: row.p50High - direct.p50High,
    p99High: row.p99High - direct.p99High,
    ttfbP50: row.ttfbP50 - direct.ttfbP50,
    ttfbP99: row.ttfbP99 - direct.ttfbP99,
    streamP50: row.streamP50 - direct.streamP50,
    manyTtfbP99: row.many && direct.many ? row.many.ttfbP99 - direct.many.ttfbP99 : null,
  };
}

/**
 * The issue's table: one line per figure, one column per target (the first row is the direct
 * call, the others add to it), then the ratio of Pilotfish over TCP to the bare proxy.
 */
export function printTable(rows: readonly Row[], s: Settings): void {
  const direct = rows[0] as Row;
  const targets = rows.slice(1);
  const bare = rows.find((r) => r.name === "bare proxy");
  const pf = rows.find((r) => r.name === "pilotfish tcp");
  const pair = (a: string, b: string) => `${a} / ${b}`;
  type Line = [string, (r: Row) => string, ((pf: Row, bare: Row) => string)?];
  const ratioOf = (f: (r: Row) => number | null) => (p: Row, b: Row) => {
    const x = f(p);
    const y = f(b);
    return x === null || y === null || !Number.isFinite(x) || !Number.isFinite(y) || y === 0
      ? "-"
      : `${(x / y).toFixed(2)}x`;
  };
  const lines: Line[] = [
    [
      `CPU us per request at ${s.highRate} req/s`,
      (r) => us(r.cpuPerReq.proxy),
      ratioOf((r) => r.cpuPerReq.proxy),
    ],
    [
      `max req/s, ${s.concurrency} connections (range)`,
      (r) => `${r.rps.toFixed(0)} (${r.rpsMin.toFixed(0)}-${r.rpsMax.toFixed(0)})`,
      ratioOf((r) => r.rps),
    ],
    [
      `added p50 / p99 ms at ${s.rate} req/s`,
      (r) => pair(signedMs(added(r, direct).p50), signedMs(added(r, direct).p99)),
      (p, b) =>
        pair(
          ratioOf((r) => added(r, direct).p50)(p, b),
          ratioOf((r) => added(r, direct).p99)(p, b),
        ),
    ],
    [
      `added p50 / p99 ms at ${s.highRate} req/s`,
      (r) => pair(signedMs(added(r, direct).p50High), signedMs(added(r, direct).p99High)),
      (p, b) =>
        pair(
          ratioOf((r) => added(r, direct).p50High)(p, b),
          ratioOf((r) => added(r, direct).p99High)(p, b),
        ),
    ],
    [
      "SSE: added time to first content p50 / p99 ms",
      (r) => pair(signedMs(added(r, direct).ttfbP50), signedMs(added(r, direct).ttfbP99)),
      (p, b) =>
        pair(
          ratioOf((r) => added(r, direct).ttfbP50)(p, b),
          ratioOf((r) => added(r, direct).ttfbP99)(p, b),
        ),
    ],
    [
      `SSE: added total stream time p50 ms (${s.chunks} chunks)`,
      (r) => signedMs(added(r, direct).streamP50),
    ],
    ...(s.streams > 0
      ? [[
        `${s.streams} streams: added first-content p99 / max stall ms`,
        (r: Row) =>
          r.many === null
            ? "-"
            : pair(signedMs(added(r, direct).manyTtfbP99), r.many.maxStall.toFixed(1)),
      ] as Line]
      : []),
    [
      "RSS MiB start / after load / peak",
      (r) => `${mb(r.rssReady)} / ${mb(r.rssIdle)} / ${mb(r.rssPeak)}`,
    ],
    ["errors", (r) => String(r.errors)],
  ];
  const head = ["figure", ...targets.map((r) => r.name), "pilotfish tcp / bare"];
  const body = lines.map(([label, cell, ratio]) => [
    label,
    ...targets.map(cell),
    ratio && pf && bare ? ratio(pf, bare) : "",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]?.length ?? 0)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join("  ");
  console.log(line(head));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of body) console.log(line(row));
  console.log(
    `direct call: p50 ${ms(direct.p50)} ms at ${s.rate} req/s, ${ms(direct.p50High)} ms at ` +
      `${s.highRate} req/s (sent ${direct.sentRateHigh.toFixed(0)}/s); SSE first content p50 ` +
      `${ms(direct.ttfbP50)} ms; load generator ${us(direct.cpuPerReq.client)} us and ` +
      `upstream ${us(direct.cpuPerReq.upstream)} us CPU per request` +
      // The rig's own floor for the concurrent streams: a stall here is the generator's or upstream's.
      (direct.many === null
        ? ""
        : `; ${s.streams} streams direct: first content p99 ${ms(direct.many.ttfbP99)} ms, ` +
          `max stall ${direct.many.maxStall.toFixed(1)} ms`),
  );
  console.log("");
}

export interface Check {
  readonly target: string;
  readonly measured: string;
  readonly ok: boolean | null;
}

/** The performance issue's goals, each against what was measured. */
export function checks(rows: readonly Row[]): Check[] {
  const direct = rows[0] as Row;
  const bare = rows.find((r) => r.name === "bare proxy");
  const pf = rows.find((r) => r.name === "pilotfish tcp");
  const out: Check[] = [];
  if (!bare || !pf) return out;
  const a = added(pf, direct);
  const b = added(bare, direct);
  const mine = pf.cpuPerReq.proxy;
  const base = bare.cpuPerReq.proxy;
  if (mine !== null && base !== null) {
    out.push({
      target: "CPU per request <= 1.25x bare proxy's",
      measured: `${us(mine)} vs ${us(base)} us (${ratio(mine, base)})`,
      ok: mine <= 1.25 * base,
    });
  }
  out.push({
    target: "throughput >= 85% of bare proxy's",
    measured: `${pf.rps.toFixed(0)} vs ${bare.rps.toFixed(0)} req/s (${pct(pf.rps / bare.rps)})`,
    ok: pf.rps >= 0.85 * bare.rps,
  });
  for (const [label, x, y] of [["200", a.p99, b.p99], ["high", a.p99High, b.p99High]] as const) {
    out.push({
      target: `added p99 <= 1.5x bare proxy's (${label === "200" ? "base" : "high"} rate)`,
      measured: `${signedMs(x)} vs ${signedMs(y)} ms (${ratio(x, y)})`,
      ok: x <= 1.5 * Math.max(y, 0),
    });
  }
  out.push({
    target: "SSE added time to first content p50 <= bare's + 0.3 ms",
    measured: `${signedMs(a.ttfbP50)} vs ${signedMs(b.ttfbP50)} ms`,
    ok: a.ttfbP50 <= b.ttfbP50 + 0.3,
  });
  out.push({
    target: "SSE added total stream time <= bare's",
    measured: `${signedMs(a.streamP50)} vs ${signedMs(b.streamP50)} ms`,
    ok: a.streamP50 <= b.streamP50,
  });
  if (pf.many !== null && a.manyTtfbP99 !== null) {
    out.push({
      target: "concurrent streams: no stall > 50 ms, added first-content p99 < 5 ms",
      measured: `max stall ${pf.many.maxStall.toFixed(1)} ms (${pf.many.stalled} streams over ` +
        `50 ms), added first-content p99 ${
          signedMs(a.manyTtfbP99)
        } ms, ${pf.many.completed} completed`,
      ok: pf.many.maxStall <= 50 && a.manyTtfbP99 < 5 && pf.many.errors === 0,
    });
  }
  out.push({
    target: "idle RSS <= 45 MiB (at start, before traffic)",
    measured: `${mb(pf.rssReady)} MiB (bare ${mb(bare.rssReady)})`,
    ok: pf.rssReady === null ? null : pf.rssReady <= 45 * 1024 * 1024,
  });
  if (pf.rssIdle !== null && bare.rssIdle !== null) {
    out.push({
      target: "RSS after load <= 1.2x bare proxy's",
      measured: `${mb(pf.rssIdle)} vs ${mb(bare.rssIdle)} MiB (${ratio(pf.rssIdle, bare.rssIdle)})`,
      ok: pf.rssIdle <= 1.2 * bare.rssIdle,
    });
  }
  const sock = rows.find((r) => r.name === "pilotfish socket");
  if (sock) {
    out.push({
      target: "socket p50 lower than TCP p50 (info)",
      measured: `${ms(sock.p50)} vs ${ms(pf.p50)} ms`,
      ok: null,
    });
  }
  return out;
}

/**
 * One daemon against another (features on vs off, after vs before, or a control identical to
 * the base), same run, same rounds: the pooled differences, then each round's.
 */
export function printVariant(direct: Row, base: Row, variant: Row, note?: string): void {
  const a = added(base, direct);
  const b = added(variant, direct);
  const d = (x: number, y: number) => `${y - x >= 0 ? "+" : ""}${((y - x) * 1000).toFixed(0)} us`;
  console.log(`${variant.name} vs ${base.name} (same run${note ? `; ${note}` : ""}):`);
  console.log(
    `  added p50 at base rate   ${signedMs(a.p50)} -> ${signedMs(b.p50)} ms (${d(a.p50, b.p50)})`,
  );
  console.log(
    `  added p50 at high rate   ${signedMs(a.p50High)} -> ${signedMs(b.p50High)} ms (${
      d(a.p50High, b.p50High)
    })`,
  );
  console.log(
    `  added p99 at base rate   ${signedMs(a.p99)} -> ${signedMs(b.p99)} ms (${d(a.p99, b.p99)})`,
  );
  const x = base.cpuPerReq.proxy;
  const y = variant.cpuPerReq.proxy;
  console.log(
    `  CPU per request          ${us(x)} -> ${us(y)} us (${
      x === null || y === null ? "-" : `${y - x >= 0 ? "+" : ""}${(y - x).toFixed(0)} us`
    })`,
  );
  console.log(
    `  max req/s                ${base.rps.toFixed(0)} -> ${variant.rps.toFixed(0)} (${
      pct(variant.rps / base.rps)
    })`,
  );
  console.log(
    `  SSE added first content  ${signedMs(a.ttfbP50)} -> ${signedMs(b.ttfbP50)} ms (${
      d(a.ttfbP50, b.ttfbP50)
    })`,
  );
  printRounds(base, variant);
  console.log("");
}

/**
 * Per round, variant minus base (the direct call cancels out of "added" within a round): a
 * pooled difference smaller than the spread of these is not a result.
 */
function printRounds(base: Row, variant: Row): void {
  const n = Math.min(base.rounds.length, variant.rounds.length);
  if (n < 2) return;
  const signed = (v: number | null, digits = 0) =>
    v === null || !Number.isFinite(v) ? "-" : `${v >= 0 ? "+" : ""}${v.toFixed(digits)}`;
  const lines: [string, (b: RoundFigures, v: RoundFigures) => string][] = [
    ["added p50 at base rate, us", (b, v) => signed((v.p50 - b.p50) * 1000)],
    ["added p50 at high rate, us", (b, v) => signed((v.p50High - b.p50High) * 1000)],
    ["added p99 at base rate, us", (b, v) => signed((v.p99 - b.p99) * 1000)],
    ["added p99 at high rate, us", (b, v) => signed((v.p99High - b.p99High) * 1000)],
    [
      "CPU per request, us",
      (b, v) =>
        signed(v.cpuPerReq === null || b.cpuPerReq === null ? null : v.cpuPerReq - b.cpuPerReq),
    ],
    ["max req/s, %", (b, v) => signed((v.rps / b.rps - 1) * 100, 1)],
    ["SSE first content p50, us", (b, v) => signed((v.ttfbP50 - b.ttfbP50) * 1000)],
  ];
  const cells = lines.map(([label, f]) => [
    label,
    ...Array.from(
      { length: n },
      (_, i) => f(base.rounds[i] as RoundFigures, variant.rounds[i] as RoundFigures),
    ),
  ]);
  const head = [
    "  per round (variant - base)",
    ...Array.from({ length: n }, (_, i) => `r${i + 1}`),
  ];
  const widths = head.map((h, i) =>
    Math.max(h.length, ...cells.map((c) => (c[i] ?? "").length + (i === 0 ? 2 : 0)))
  );
  const line = (c: string[]) =>
    c.map((x, i) => (i === 0 ? x.padEnd(widths[i] ?? 0) : x.padStart(widths[i] ?? 0))).join("  ");
  console.log(line(head));
  for (const c of cells) console.log(line([`    ${c[0]}`, ...c.slice(1)]));
}

/** One target's latencies (ms) in each block of the interleaved open loop. */
export interface Interleaved {
  readonly name: string;
  readonly blocks: readonly (readonly number[])[];
}

/**
 * The interleaved open loop: neighbouring requests go to different targets, so a difference
 * of medians here is not the drift between two rounds. Each variant is shown against the
 * reference (Pilotfish) pooled and per block; a difference within the blocks' spread, or
 * within the control daemon's, is not a result.
 */
export function printInterleaved(
  list: readonly Interleaved[],
  reference: string,
  s: Settings,
): void {
  const sorted = (xs: readonly number[]) => [...xs].sort((a, b) => a - b);
  const p50 = (xs: readonly number[]) => percentile(sorted(xs), 50);
  const pooled = (t: Interleaved) => t.blocks.flat();
  const direct = list.find((t) => t.name === "direct");
  const ref = list.find((t) => t.name === reference);
  if (!direct || !ref) return;
  const signedUs = (v: number) => `${v >= 0 ? "+" : ""}${(v * 1000).toFixed(0)}`;
  console.log(
    `Interleaved open loop: ${s.rate} req/s in all, request i to target i mod ${list.length}, ` +
      `${s.interleavedSeconds}s in ${s.interleavedBlocks} blocks (${
        Math.round(s.interleavedSeconds * s.rate / list.length)
      } requests per target)`,
  );
  const head = ["  target", "p50 ms", "added p50 us", `vs ${reference}, us`, "per block"];
  const rows = list.map((t) => {
    const own = p50(pooled(t));
    const cells = [
      `  ${t.name}`,
      own.toFixed(3),
      t === direct ? "" : signedUs(own - p50(pooled(direct))),
    ];
    if (t === direct || t === ref) return [...cells, "", ""];
    const blocks = t.blocks.map((b, i) => signedUs(p50(b) - p50(ref.blocks[i] ?? [])));
    return [...cells, signedUs(own - p50(pooled(ref))), blocks.join(" ")];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (c: string[]) =>
    c.map((x, i) => (i === 0 || i === 4 ? x.padEnd(widths[i] ?? 0) : x.padStart(widths[i] ?? 0)))
      .join("  ").trimEnd();
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  console.log("");
}

/** The four daemons of an ABBA run (BENCH_ABBA), in the order they were started. */
export interface AbbaRun {
  readonly base: Row;
  readonly variant: Row;
  readonly variant2: Row;
  readonly base2: Row;
}

/**
 * BENCH_ABBA: the base and the variant each run twice, started in the order base, variant,
 * variant, base. Identical daemons read tens of microseconds of p50 and of CPU per request
 * apart (often the later-started one faster), so one variant against one base can be off
 * by that much; the pairs' means cancel a drift linear in start order. Shown: the pairs'
 * difference (interleaved p50, pooled and per block; CPU per request at the high rate) and
 * each pair's own difference, the run's noise.
 */
export function printAbba(
  run: AbbaRun,
  interleaved: readonly Interleaved[] | null,
  direct: Row,
): void {
  const names = [run.base, run.variant, run.variant2, run.base2].map((r) => r.name);
  console.log(
    `ABBA: ${run.variant.name} vs ${run.base.name}, each twice (started ${names.join(", ")}):`,
  );
  const signedUs = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(0)} us`;
  const mean = (a: number, b: number) => (a + b) / 2;
  const p50 = (xs: readonly number[]) => percentile([...xs].sort((a, b) => a - b), 50);
  if (interleaved !== null) {
    const find = (name: string) => interleaved.find((t) => t.name === name);
    const [b1, v1, v2, b2] = names.map(find);
    if (b1 && v1 && v2 && b2) {
      const pair = (x: Interleaved, y: Interleaved, f: (t: Interleaved) => number) =>
        mean(f(x), f(y)) * 1000;
      const pooled = (t: Interleaved) => p50(t.blocks.flat());
      const diff = pair(v1, v2, pooled) - pair(b1, b2, pooled);
      const blocks = b1.blocks.map((_, i) => {
        const at = (t: Interleaved) => p50(t.blocks[i] ?? []);
        return signedUs(pair(v1, v2, at) - pair(b1, b2, at)).replace(" us", "");
      });
      console.log(
        `  interleaved p50, variant pair - base pair   ${signedUs(diff)} (per block: ${
          blocks.join(" ")
        })`,
      );
      console.log(
        `  same daemon twice (noise): base #2 - base ${
          signedUs((pooled(b2) - pooled(b1)) * 1000)
        }, variant #2 - variant ${signedUs((pooled(v2) - pooled(v1)) * 1000)}`,
      );
    }
  }
  const cpu = [run.base, run.variant, run.variant2, run.base2].map((r) => r.cpuPerReq.proxy);
  const [c1, c2, c3, c4] = cpu;
  if (c1 != null && c2 != null && c3 != null && c4 != null) {
    console.log(
      `  CPU per request at the high rate            ${
        signedUs(mean(c2, c3) - mean(c1, c4))
      } (base ${c1.toFixed(0)} / ${c4.toFixed(0)}, variant ${c2.toFixed(0)} / ${c3.toFixed(0)} us)`,
    );
  }
  const a = (r: Row) => added(r, direct);
  const rounds = (f: (x: ReturnType<typeof added>) => number) =>
    (mean(f(a(run.variant)), f(a(run.variant2))) - mean(f(a(run.base)), f(a(run.base2)))) * 1000;
  console.log(
    `  rounds: added p50 at base / high rate       ${signedUs(rounds((x) => x.p50))} / ${
      signedUs(rounds((x) => x.p50High))
    }`,
  );
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
