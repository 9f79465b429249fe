import { GatewayError } from "../errors.ts";
import { attempt, type AttemptRequest, type FailoverDeps, type Settled } from "./attempt.ts";
import type { Target } from "./resolve.ts";

/**
 * Run the primary; start the secondary if the primary has not answered after `afterMs`.
 * The first success wins and the other is aborted (its upstream request cancelled); a loser
 * that answered anyway keeps its own record and usage.
 */
export async function hedge(
  deps: FailoverDeps,
  req: AttemptRequest,
  primary: Target,
  secondary: Target,
  afterMs: number,
  deadline: number,
  refusedKeys: Set<string>,
  keyOf: (t: Target) => string,
): Promise<Settled[]> {
  const controllers = [new AbortController(), new AbortController()];
  const runs: Promise<Settled>[] = [
    attempt(deps, req, primary, deadline, refusedKeys, keyOf(primary), controllers[0]),
  ];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const startSecond = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, afterMs);
  });
  const first = await Promise.race([
    runs[0]!.then(() => "done" as const),
    startSecond.then(() => "hedge" as const),
  ]);
  clearTimeout(timer);
  if (first === "done") {
    const s = await runs[0]!;
    // Failed fast: no hedge, the caller's loop decides (retry or move on).
    return [s];
  }
  deps.trail?.hedge(primary, secondary);
  runs.push(
    attempt(deps, req, secondary, deadline, refusedKeys, keyOf(secondary), controllers[1]),
  );
  const done = [false, false];
  const winner = await new Promise<number | null>((resolve) => {
    let failed = 0;
    runs.forEach((run, i) =>
      run.then((s) => {
        done[i] = true;
        if (s.ok !== null) resolve(i);
        else if (++failed === runs.length) resolve(null);
      })
    );
  });
  /** The other run, cut by the win while it was still out (not one that had failed already). */
  let cut: number | null = null;
  if (winner !== null) {
    if (!done[1 - winner]) cut = 1 - winner;
    controllers[1 - winner]!.abort(new GatewayError("upstream_error", "Hedge lost"));
  }
  const settled = (await Promise.all(runs)).map((s, i) =>
    i === cut ? { ...s, hedgeLost: true } : s
  );
  // Both may have answered at once: the loser's stream must not hold its connection open
  // (cancelling it settles its usage with what it had streamed).
  settled.forEach((s, i) => {
    if (i !== winner && s.ok?.kind === "stream") s.ok.body.cancel().catch(() => {});
  });
  return settled;
}
