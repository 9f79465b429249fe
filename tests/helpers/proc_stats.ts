/**
 * A spawned daemon's resident memory and open file descriptors, read from /proc (Linux).
 * Deno refuses /proc reads without --allow-all, so a shell reads them (the tests may run
 * subprocesses); each reading forks once, which is fine at one sample per second or slower.
 * @module
 */

export interface ProcStats {
  /** VmRSS, bytes. */
  readonly rss: number;
  /** Entries in /proc/<pid>/fd: sockets, pipes, files and Deno's own descriptors. */
  readonly fds: number;
}

const STATS_SCRIPT = `
pid=$1
[ -r "/proc/$pid/status" ] || exit 3
while read -r key val _; do
  [ "$key" = "VmRSS:" ] && rss=$val
done < "/proc/$pid/status"
n=0
for f in /proc/$pid/fd/*; do n=$((n + 1)); done
echo "$rss $n"
`;

/** RSS and fd count of `pid`; throws once the process is gone. */
export async function procStats(pid: number): Promise<ProcStats> {
  const out = await new Deno.Command("sh", {
    args: ["-c", STATS_SCRIPT, "sh", String(pid)],
    stdout: "piped",
    stderr: "null",
  }).output();
  const [rss, fds] = new TextDecoder().decode(out.stdout).trim().split(" ").map(Number);
  if (!out.success || !(rss! > 0) || !(fds! > 0)) throw new Error(`no /proc entry for ${pid}`);
  return { rss: rss! * 1024, fds: fds! };
}

/**
 * The pid of the deno process running `src/main.ts` whose command line contains `marker`
 * (e.g. the daemon's unique config path): scripts/start.sh exec's it, so this is the daemon.
 */
export async function findDaemonPid(marker: string): Promise<number> {
  const out = await new Deno.Command("ps", {
    args: ["-e", "-o", "pid=,args="],
    stdout: "piped",
    stderr: "null",
  }).output();
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const m = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (m && m[2]!.includes("src/main.ts") && m[2]!.includes(marker)) return Number(m[1]);
  }
  throw new Error(`no daemon process with "${marker}" on its command line`);
}

/** Least-squares slope of `ys` over `xs` (per unit of x); 0 with fewer than two points. */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = Math.min(xs.length, ys.length);
  if (n < 2) return 0;
  let sx = 0, sy = 0;
  for (let i = 0; i < n; i++) {
    sx += xs[i]!;
    sy += ys[i]!;
  }
  const mx = sx / n, my = sy / n;
  let num = 0, den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
