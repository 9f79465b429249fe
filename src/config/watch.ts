/** What identifies one version of a file: mtime, size and inode ("missing" when absent). */
export async function fileFingerprint(path: string): Promise<string> {
  try {
    const st = await Deno.stat(path);
    return `${st.mtime?.getTime() ?? 0}:${st.size}:${st.ino ?? 0}`;
  } catch {
    return "missing";
  }
}

/** The watcher's memory: the version in force, and a new one seen once and not yet settled. */
export interface WatchState {
  readonly last: string;
  readonly seen: string | null;
}

/**
 * One look at the file. A new fingerprint is acted on only when the next look finds it
 * unchanged: a writer that truncates and then writes (`>`, `writeFile`) leaves an empty or
 * half-written file for a moment, and loading that would swap in a config with parts
 * missing. A missing file is never a change (a rename into place is about to land).
 */
export function look(state: WatchState, now: string): { state: WatchState; changed: boolean } {
  if (now === "missing" || now === state.last) {
    return { state: { last: state.last, seen: null }, changed: false };
  }
  if (now !== state.seen) return { state: { last: state.last, seen: now }, changed: false };
  return { state: { last: now, seen: null }, changed: true };
}

/** How soon the second look comes: long enough for a write to finish, short enough not to be felt. */
const SETTLE_MS = 50;

/**
 * Poll a config file's fingerprint. Polling (as Butter does) survives editors and
 * Kubernetes ConfigMaps that replace the file by rename, which breaks an inotify watch on
 * the file itself. `initial` is the fingerprint taken *before* the running config was
 * read, so an edit that lands between that read and this call is not missed.
 * Returns a stop function.
 */
export function watchConfigFile(
  path: string,
  intervalMs: number,
  initial: string,
  onChange: () => void | Promise<void>,
): () => void {
  let state: WatchState = { last: initial, seen: null };
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = async () => {
    const seen = look(state, await fileFingerprint(path));
    if (stopped) return;
    state = seen.state;
    if (seen.changed) await onChange();
    if (stopped) return;
    timer = setTimeout(tick, state.seen === null ? intervalMs : Math.min(intervalMs, SETTLE_MS));
  };
  timer = setTimeout(tick, intervalMs);
  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
  };
}
