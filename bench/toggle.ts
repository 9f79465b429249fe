// deno-lint-ignore-file no-console -- part of a CLI: the report goes to stdout.
/**
 * BENCH_TOGGLE: one daemon whose config is switched between the base and the variant by hot
 * reload (`POST /api/v1/reload`) between blocks of the same open loop, in the order
 * base, variant | variant, base | base, variant | ... Separate daemons differ by 30-120 µs of
 * p50 even when identical, for reasons not known (README, BENCH_ABBA); one process measured in
 * alternating blocks has no such offset. Whole runs still differ more than their pairs (README):
 * a difference is read from repeated runs. Each pair's variant-minus-base difference
 * is one sample of the feature's cost; the neighbouring blocks that share a config (the
 * variant ending one pair and starting the next, and so on) give the same kind of difference
 * with nothing changed, which is the noise. The first pair is a warm-up and is not counted.
 * @module
 */
import { percentile } from "./load.ts";

export interface ToggleBlock {
  readonly config: "base" | "variant";
  /** p50 latency of the block's open loop, ms. */
  readonly p50: number;
  /** CPU time of the daemon (every thread) per completed request, µs; null if unreadable. */
  readonly cpuPerReq: number | null;
  /** Requests per second of the block's closed loop, when the rig runs one (else null). */
  readonly rps: number | null;
  readonly errors: number;
}

export interface ToggleRig {
  /** Make `config` the daemon's running config (reload it), or throw. */
  switchTo(config: "base" | "variant"): Promise<void>;
  /** Traffic after a reload, before measuring: the new generation's code paths warm. */
  warmUp(): Promise<void>;
  /** One measured open loop: latencies (ms) and failures. */
  measure(): Promise<{ readonly latencies: readonly number[]; readonly errors: number }>;
  /** The daemon's CPU time so far, ns (every thread), or null. */
  cpuNs(): Promise<number | null>;
  /**
   * A closed loop after the open one (BENCH_TOGGLE_CLOSED_SECONDS): the block's max req/s.
   * Throughput read this way shares the daemon and the minute with its pair, as p50 does.
   */
  saturate?(): Promise<{ readonly rps: number; readonly errors: number }>;
}

/** The blocks' configs for `pairs` pairs: base, variant | variant, base | ... */
export function toggleOrder(pairs: number): ("base" | "variant")[] {
  const order: ("base" | "variant")[] = [];
  for (let p = 0; p < pairs; p++) {
    order.push(...(p % 2 === 0 ? ["base", "variant"] as const : ["variant", "base"] as const));
  }
  return order;
}

export async function runToggle(
  pairs: number,
  rig: ToggleRig,
  progress: (msg: string) => void,
): Promise<ToggleBlock[]> {
  const blocks: ToggleBlock[] = [];
  const order = toggleOrder(pairs);
  for (const [i, config] of order.entries()) {
    progress(`toggle: block ${i + 1}/${order.length} (${config})`);
    await rig.switchTo(config);
    await rig.warmUp();
    const before = await rig.cpuNs();
    const { latencies, errors } = await rig.measure();
    const after = await rig.cpuNs();
    const closed = rig.saturate ? await rig.saturate() : null;
    const sorted = [...latencies].sort((a, b) => a - b);
    blocks.push({
      config,
      p50: percentile(sorted, 50),
      cpuPerReq: before === null || after === null || sorted.length === 0
        ? null
        : (after - before) / 1000 / sorted.length,
      rps: closed?.rps ?? null,
      errors: errors + (closed?.errors ?? 0),
    });
  }
  return blocks;
}

export interface Spread {
  readonly n: number;
  readonly median: number;
  readonly q1: number;
  readonly q3: number;
  /** How many of the samples are above zero. */
  readonly positive: number;
}

/** Linear interpolation between ranks: with a dozen samples, nearest rank moves in big steps. */
function quantile(sorted: readonly number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (at - lo);
}

function spread(values: readonly number[]): Spread | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  return {
    n: s.length,
    median: quantile(s, 0.5),
    q1: quantile(s, 0.25),
    q3: quantile(s, 0.75),
    positive: s.filter((v) => v > 0).length,
  };
}

export interface ToggleSummary {
  /** Variant minus base per pair (the first pair left out), µs. */
  readonly p50: Spread | null;
  readonly cpu: Spread | null;
  /** Later minus earlier of neighbouring blocks with the same config, µs: the noise. */
  readonly noiseP50: Spread | null;
  readonly noiseCpu: Spread | null;
  /** Variant's max req/s against the base's per pair, percent more (below 0: fewer). */
  readonly rps: Spread | null;
  /** The same between neighbouring blocks with the same config: the noise. */
  readonly noiseRps: Spread | null;
  readonly errors: number;
}

/** `b` against `a` in percent (+10: `b` is 10 % more); null unless both are known and `a` > 0. */
function percentMore(a: number | null, b: number | null): number | null {
  return a === null || b === null || a <= 0 ? null : (b / a - 1) * 100;
}

/** The pairs' differences and the noise beside them (pure: blocks in run order). */
export function summarizeToggle(blocks: readonly ToggleBlock[]): ToggleSummary {
  const dP50: number[] = [];
  const dCpu: number[] = [];
  const dRps: number[] = [];
  // Pair p is blocks 2p and 2p+1; pair 0 is the warm-up.
  for (let i = 2; i + 1 < blocks.length; i += 2) {
    const [x, y] = [blocks[i] as ToggleBlock, blocks[i + 1] as ToggleBlock];
    const [base, variant] = x.config === "base" ? [x, y] : [y, x];
    dP50.push((variant.p50 - base.p50) * 1000);
    if (base.cpuPerReq !== null && variant.cpuPerReq !== null) {
      dCpu.push(variant.cpuPerReq - base.cpuPerReq);
    }
    const r = percentMore(base.rps, variant.rps);
    if (r !== null) dRps.push(r);
  }
  const nP50: number[] = [];
  const nCpu: number[] = [];
  const nRps: number[] = [];
  // Blocks 2p+1 and 2p+2 share a config (the end of one pair, the start of the next).
  for (let i = 3; i + 1 < blocks.length; i += 2) {
    const [x, y] = [blocks[i] as ToggleBlock, blocks[i + 1] as ToggleBlock];
    nP50.push((y.p50 - x.p50) * 1000);
    if (x.cpuPerReq !== null && y.cpuPerReq !== null) nCpu.push(y.cpuPerReq - x.cpuPerReq);
    const r = percentMore(x.rps, y.rps);
    if (r !== null) nRps.push(r);
  }
  return {
    p50: spread(dP50),
    cpu: spread(dCpu),
    noiseP50: spread(nP50),
    noiseCpu: spread(nCpu),
    rps: spread(dRps),
    noiseRps: spread(nRps),
    errors: blocks.reduce((sum, b) => sum + b.errors, 0),
  };
}

export function printToggle(
  summary: ToggleSummary,
  variant: string,
  how: { readonly rate: number; readonly seconds: number; readonly closedSeconds: number },
): void {
  const us = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(0)}`;
  const line = (label: string, s: Spread | null) =>
    console.log(
      `  ${label.padEnd(44)}${
        s === null
          ? "n/a"
          : `${us(s.median)} us (IQR ${us(s.q1)} to ${us(s.q3)}; ${s.positive} of ${s.n} above 0)`
      }`,
    );
  // Throughput as the variant's share of the base's (`rps` holds percent more or fewer).
  const pct = (v: number) => `${(100 + v).toFixed(0)} %`;
  const share = (label: string, s: Spread | null) =>
    s !== null && console.log(
      `  ${label.padEnd(44)}${pct(s.median)} (IQR ${pct(s.q1)} to ${
        pct(s.q3)
      }; ${s.positive} of ${s.n} above 100 %)`,
    );
  const closed = how.closedSeconds > 0
    ? `, then ${how.closedSeconds}s of a closed loop (max req/s)`
    : "";
  console.log(
    `Toggle: one daemon, reloaded between base and ${variant}; blocks of ${how.seconds}s at ` +
      `${how.rate} req/s${closed}, pairs after the first:`,
  );
  line("p50, variant - base, per pair", summary.p50);
  line("CPU per request, variant - base, per pair", summary.cpu);
  share("max req/s, variant / base, per pair", summary.rps);
  line("noise: p50, same config twice in a row", summary.noiseP50);
  line("noise: CPU per request, same config twice", summary.noiseCpu);
  share("noise: max req/s, same config twice", summary.noiseRps);
  if (summary.errors > 0) console.log(`  failed requests in the blocks: ${summary.errors}`);
  console.log("");
}
