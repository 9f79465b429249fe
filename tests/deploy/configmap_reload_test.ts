/**
 * The Kubernetes example mounts its config from a ConfigMap directory. The kubelet updates
 * such a volume the way its AtomicWriter does: the files are links `key -> ..data/key`, the
 * payload lives in a timestamped directory, and an update writes a new one and renames a new
 * `..data` link over the old one. Nothing at the path the daemon was given changes. This
 * drives the real daemon (started as `deno task start` starts it, with only the grants its
 * config needs) through that swap: each payload is picked up, a bad one is refused.
 */
import assert from "node:assert/strict";
import { chatBody, startDaemon } from "../integration/daemon.ts";

const BASE = `server:
  port: {{PORT}}
  socket: {{SOCKET}}
  reload_interval: 100ms
providers:
  mock: {}
`;

/** A ConfigMap volume at `dir` whose key `file` the daemon reads; `publish` swaps its payload. */
function configMapVolume(dir: string, file: string) {
  let generation = 0;
  return {
    async publish(text: string): Promise<void> {
      generation++;
      const payload = `..2026_01_01_00_00_00.${String(generation).padStart(9, "0")}`;
      await Deno.mkdir(`${dir}/${payload}`);
      await Deno.writeTextFile(`${dir}/${payload}/${file}`, text);
      await Deno.symlink(payload, `${dir}/..data_tmp`);
      await Deno.rename(`${dir}/..data_tmp`, `${dir}/..data`);
      if (generation === 1) {
        // The first publish turns the plain file into the kubelet's layout.
        await Deno.symlink(`..data/${file}`, `${dir}/${file}.tmp`);
        await Deno.rename(`${dir}/${file}.tmp`, `${dir}/${file}`);
      } else {
        const previous = `..2026_01_01_00_00_00.${String(generation - 1).padStart(9, "0")}`;
        await Deno.remove(`${dir}/${previous}`, { recursive: true });
      }
    },
  };
}

Deno.test("hot reload follows a ConfigMap's ..data symlink swap, and refuses a bad payload", async () => {
  const d = await startDaemon(BASE);
  const fill = (yaml: string) =>
    yaml.replaceAll("{{PORT}}", String(d.port)).replaceAll("{{SOCKET}}", d.socket);
  const ask = async (model: string) => {
    const res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody(model),
    });
    await res.body?.cancel();
    return res;
  };
  const file = d.configPath.slice(d.configPath.lastIndexOf("/") + 1);
  const volume = configMapVolume(d.dir, file);
  try {
    assert.equal((await ask("smart")).status, 404, "no alias before any reload");

    // Into the kubelet's layout with a payload the daemon must refuse (distinct log line).
    await volume.publish(fill(`${BASE}routing:\n  default_provider: nowhere\n`));
    await d.waitForLog(`routing.default_provider: Unknown provider \\"nowhere\\"`);
    assert.ok((await Deno.lstat(`${d.dir}/${file}`)).isSymlink);

    // The swap proper: only ..data changes; the new payload is applied.
    await volume.publish(fill(`${BASE}routing:\n  aliases:\n    smart: mock/echo\n`));
    await d.waitForLog("config reloaded");
    const res = await ask("smart");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-pilotfish-provider"), "mock");

    // A bad payload swapped in is refused; the running config stays.
    await volume.publish(fill(`${BASE}routing:\n  default_provider: elsewhere\n`));
    await d.waitForLog(`routing.default_provider: Unknown provider \\"elsewhere\\"`);
    assert.equal((await ask("smart")).status, 200, "the previous config stays in force");
  } finally {
    await d.stop();
  }
});
