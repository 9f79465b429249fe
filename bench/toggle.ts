// deno-lint-ignore-file no-console -- part of a CLI: the report goes to stdout.
/**
 * BENCH_TOGGLE: one daemon whose config is switched between the base and one or more variants
 * by hot reload (`POST /api/v1/reload`) between blocks of the same open loop, in rounds that
 * alternate direction and rotate: base, v1, v2 | v2, v1, base | v1, v2, base | ... (one
 * variant: pairs, base, variant | variant, base | ...; see `toggleOrder`).
 * Separate daemons differ by 30-120 µs of p50 even when identical, for reasons not known
 * (README, BENCH_ABBA); one process measured in alternating blocks has no such offset. Whole
 * runs still differ more than their rounds (README): a difference is read from repeated runs.
 * Each round's variant-minus-base difference is one sample of that variant's cost, so several
 * variants (e.g. limits on the memory and on the Redis backend) are compared with the same base
 * in the same minutes; the neighbouring blocks that share a config (the last of one round, the
 * first of the next) give the same kind of difference with the config unchanged, which is the
 * noise. In it the later block always follows its own config, the earlier one another: the
 * noise's median read -48 to +21 µs over six runs with two variants, so what a block follows
 * may matter, and the rotation (`toggleOrder`) gives that place to every config alike. The
 * first round is a warm-up and is not counted.
 * @module
 */
import { percentile } from "./load.ts";

export interface ToggleBlock {
  /** 0: the base; i > 0: the i-th variant. */
  readonly config: number;
  /** p50 latency of the block's open loop, ms. */
  readonly p50: number;
  /** CPU time of the daemon (every thread) per completed request, µs; null if unreadable. */
  readonly cpuPerReq: number | null;
  /** Requests per second of the block's closed loop, when the rig runs one (else null). */
  readonly rps: number | null;
  readonly errors: number;
}

export interface ToggleRig {
  /** Make config `config` (0: the base, i: the i-th variant) the running one (reload), or throw. */
  switchTo(config: number): Promise<void>;
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

/**
 * The blocks' configs for `rounds` rounds of the base and `variants` variants. One variant:
 * base, variant | variant, base | ... With more, the counted rounds (after the warm-up) also
 * rotate which config opens them: 0 1 2 | 2 1 0 | 1 2 0 | 0 2 1 | 2 0 1 | 1 0 2 | ... Over each
 * 2 × (variants + 1) counted rounds every config holds every place in a round equally often,
 * and opens a round right after itself once (the noise samples). So following one's own
 * config (above) and any drift within a round fall on all configs alike; which other config a
 * block follows is not balanced. `wholeRounds` rounds a count up to
 * whole periods.
 */
export function toggleOrder(rounds: number, variants = 1): number[] {
  const n = variants + 1;
  const order: number[] = [];
  for (let r = 0; r < rounds; r++) {
    // The warm-up is round -1 of the rotation, so the counted rounds start a period.
    const c = n > 2 ? r - 1 : r;
    const shift = n > 2 ? ((Math.floor(c / 2) % n) + n) % n : 0;
    const round = Array.from({ length: n }, (_, i) => (i + shift) % n);
    order.push(...(c % 2 === 0 ? round : round.reverse()));
  }
  return order;
}

/** `rounds` rounded up to a warm-up and whole periods of `toggleOrder`'s rotation. */
export function wholeRounds(rounds: number, variants = 1): number {
  if (variants < 2) return rounds;
  const period = 2 * (variants + 1);
  return 1 + Math.max(1, Math.ceil((rounds - 1) / period)) * period;
}

export async function runToggle(
  rounds: number,
  rig: ToggleRig,
  progress: (msg: string) => void,
  variants = 1,
): Promise<ToggleBlock[]> {
  const blocks: ToggleBlock[] = [];
  const order = toggleOrder(rounds, variants);
  for (const [i, config] of order.entries()) {
    progress(
      `toggle: block ${i + 1}/${order.length} (${config === 0 ? "base" : `variant ${config}`})`,
    );
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

export interface VariantSummary {
  /** Variant minus base per round (the first round left out), µs. */
  readonly p50: Spread | null;
  readonly cpu: Spread | null;
  /** Variant's max req/s against the base's per round, percent more (below 0: fewer). */
  readonly rps: Spread | null;
}

export interface ToggleSummary {
  /** One per variant, in the order given. */
  readonly variants: readonly VariantSummary[];
  /** Later minus earlier of neighbouring blocks with the same config, µs: the noise. */
  readonly noiseP50: Spread | null;
  readonly noiseCpu: Spread | null;
  /** The same for max req/s, percent more: the noise. */
  readonly noiseRps: Spread | null;
  /** The base's p50 over its counted blocks (median), ms: what a variant's cost is a share of. */
  readonly baseP50: number | null;
  readonly errors: number;
}

/** `b` against `a` in percent (+10: `b` is 10 % more); null unless both are known and `a` > 0. */
function percentMore(a: number | null, b: number | null): number | null {
  return a === null || b === null || a <= 0 ? null : (b / a - 1) * 100;
}

/** `b` minus `a` for the figures both blocks have: p50 and CPU in µs, max req/s in percent. */
function differences(a: ToggleBlock, b: ToggleBlock, into: [number[], number[], number[]]): void {
  into[0].push((b.p50 - a.p50) * 1000);
  if (a.cpuPerReq !== null && b.cpuPerReq !== null) into[1].push(b.cpuPerReq - a.cpuPerReq);
  const r = percentMore(a.rps, b.rps);
  if (r !== null) into[2].push(r);
}

/** The rounds' differences and the noise beside them (pure: blocks in run order). */
export function summarizeToggle(blocks: readonly ToggleBlock[], variants = 1): ToggleSummary {
  const size = variants + 1;
  const per = Array.from(
    { length: variants },
    () => [[], [], []] as [number[], number[], number[]],
  );
  // Round r is blocks r*size .. r*size+size-1; round 0 is the warm-up.
  for (let start = size; start + size <= blocks.length; start += size) {
    const round = blocks.slice(start, start + size);
    const base = round.find((b) => b.config === 0);
    if (base === undefined) continue;
    for (const b of round) if (b.config > 0) differences(base, b, per[b.config - 1]!);
  }
  const noise: [number[], number[], number[]] = [[], [], []];
  // Where a counted round ends with the config the next one opens with.
  for (let i = 2 * size - 1; i + 1 < blocks.length; i += size) {
    const [x, y] = [blocks[i] as ToggleBlock, blocks[i + 1] as ToggleBlock];
    if (x.config === y.config) differences(x, y, noise);
  }
  return {
    variants: per.map(([p50, cpu, rps]) => ({
      p50: spread(p50),
      cpu: spread(cpu),
      rps: spread(rps),
    })),
    noiseP50: spread(noise[0]),
    noiseCpu: spread(noise[1]),
    noiseRps: spread(noise[2]),
    baseP50: spread(
      blocks.slice(size, blocks.length - (blocks.length % size)).filter((b) => b.config === 0)
        .map((b) => b.p50),
    )?.median ?? null,
    errors: blocks.reduce((sum, b) => sum + b.errors, 0),
  };
}

export function printToggle(
  summary: ToggleSummary,
  variants: readonly string[],
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
  const unit = variants.length === 1 ? "pair" : "round";
  console.log(
    `Toggle: one daemon, reloaded between base and ${variants.join(", ")}; blocks of ` +
      `${how.seconds}s at ${how.rate} req/s${closed}, ${unit}s after the first:`,
  );
  summary.variants.forEach((v, i) => {
    const name = variants.length === 1 ? "variant" : `${variants[i]}`;
    if (variants.length > 1) console.log(`  ${name}:`);
    line(`p50, variant - base, per ${unit}`, v.p50);
    line(`CPU per request, variant - base, per ${unit}`, v.cpu);
    share(`max req/s, variant / base, per ${unit}`, v.rps);
  });
  line("noise: p50, same config twice in a row", summary.noiseP50);
  line("noise: CPU per request, same config twice", summary.noiseCpu);
  share("noise: max req/s, same config twice", summary.noiseRps);
  if (summary.baseP50 !== null) {
    console.log(
      `  ${"base's p50, median of its blocks".padEnd(44)}${summary.baseP50.toFixed(3)} ms`,
    );
  }
  if (summary.errors > 0) console.log(`  failed requests in the blocks: ${summary.errors}`);
  console.log("");
}
