/** What identifies one version of a file: mtime, size and inode ("missing" when absent). */
export async function fileFingerprint(path: string): Promise<string> {
  try {
    const st = await Deno.stat(path);
    return `${st.mtime?.getTime() ?? 0}:${st.size}:${st.ino ?? 0}`;
  } catch {
    return "missing";
  }
}

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
  let last = initial;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = async () => {
    const now = await fileFingerprint(path);
    if (stopped) return;
    if (now !== last && now !== "missing") {
      last = now;
      await onChange();
    }
    if (!stopped) timer = setTimeout(tick, intervalMs);
  };
  timer = setTimeout(tick, intervalMs);
  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
  };
}
