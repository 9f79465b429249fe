/**
 * Poll a config file's mtime and size. Polling (as Butter does) survives editors and
 * Kubernetes ConfigMaps that replace the file by rename, which breaks an inotify watch on
 * the file itself. Returns a stop function.
 */
export function watchConfigFile(
  path: string,
  intervalMs: number,
  onChange: () => void | Promise<void>,
): () => void {
  let last = "";
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const fingerprint = async (): Promise<string> => {
    try {
      const st = await Deno.stat(path);
      return `${st.mtime?.getTime() ?? 0}:${st.size}:${st.ino ?? 0}`;
    } catch {
      return "missing";
    }
  };
  const tick = async () => {
    const now = await fingerprint();
    if (stopped) return;
    if (now !== last && now !== "missing") {
      last = now;
      await onChange();
    }
    if (!stopped) timer = setTimeout(tick, intervalMs);
  };
  // Take the starting fingerprint first so the initial load does not count as a change.
  fingerprint().then((fp) => {
    last = fp;
    if (!stopped) timer = setTimeout(tick, intervalMs);
  });
  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
  };
}
