import assert from "node:assert/strict";
import { COMPILED_GRANTS, type Grants, launchFlags } from "../../src/permissions/mod.ts";
import { freePort } from "../integration/daemon.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CHILD = new URL("./fixtures/narrow_child.ts", import.meta.url).pathname;

/** Revocation is process-wide and final: every case runs in its own child process. */
async function narrowInChild(flags: string[], input: unknown, env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      "--config",
      `${ROOT}deno.json`,
      ...flags,
      CHILD,
      JSON.stringify(input),
    ],
    env,
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(text) as {
    narrowed: {
      revoked: string[];
      global: string[];
      state: Record<string, string>;
      error?: string;
    };
    results: Record<string, string>;
  };
}

function listener() {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const conn of l) conn.close();
  })();
  return {
    port: (l.addr as Deno.NetAddr).port,
    close: async () => {
      l.close();
      await accepting.catch(() => {});
    },
  };
}

Deno.test("narrowPermissions(): broad list grants shrink to the plan, and the rest really fails", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-narrow-" });
  const configured = listener();
  const other = listener();
  try {
    await Deno.mkdir(`${dir}/etc`);
    await Deno.mkdir(`${dir}/secrets`);
    await Deno.writeTextFile(`${dir}/etc/config.yaml`, "providers: {}\n");
    await Deno.writeTextFile(`${dir}/secrets/token`, "s3cret");
    const needed: Grants = {
      net: [`127.0.0.1:${configured.port}`],
      read: [`${dir}/etc/config.yaml`],
      write: [`${dir}/etc/pf.sock`],
      env: ["PILOTFISH_CONFIG"],
    };
    const launched = {
      net: [`127.0.0.1:${configured.port}`, `127.0.0.1:${other.port}`],
      read: [`${dir}/etc`, `${dir}/secrets`],
      write: [`${dir}/etc`, `${dir}/secrets`],
      env: ["PILOTFISH_CONFIG", "SECRET_OUTSIDE"],
    };
    const { narrowed, results } = await narrowInChild(
      [...launchFlags(launched), "--allow-run", "--allow-sys", "--allow-ffi"],
      {
        needed,
        launched,
        attempts: {
          read: [`${dir}/etc/config.yaml`, `${dir}/secrets/token`],
          write: [`${dir}/secrets/new`],
          env: ["PILOTFISH_CONFIG", "SECRET_OUTSIDE"],
          connect: [
            { hostname: "127.0.0.1", port: configured.port },
            { hostname: "127.0.0.1", port: other.port },
          ],
          spawn: true,
        },
      },
      { PILOTFISH_CONFIG: "x", SECRET_OUTSIDE: "s3cret" },
    );
    assert.deepEqual(narrowed.revoked, [
      "--allow-run",
      "--allow-ffi",
      "--allow-sys",
      `--allow-net=127.0.0.1:${other.port}`,
      `--allow-read=${dir}/secrets`,
      `--allow-write=${dir}/secrets`,
      "--allow-env=SECRET_OUTSIDE",
    ]);
    assert.deepEqual(narrowed.global, []);
    assert.deepEqual(results, {
      [`read ${dir}/etc/config.yaml`]: "ok",
      [`read ${dir}/secrets/token`]: "NotCapable",
      [`write ${dir}/secrets/new`]: "NotCapable",
      "env PILOTFISH_CONFIG": "ok",
      "env SECRET_OUTSIDE": "NotCapable",
      [`connect 127.0.0.1:${configured.port}`]: "ok",
      [`connect 127.0.0.1:${other.port}`]: "NotCapable",
      spawn: "NotCapable",
    });
  } finally {
    await configured.close();
    await other.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("narrowPermissions(): kinds the config does not need go whole; global grants are reported", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-narrow-" });
  try {
    await Deno.writeTextFile(`${dir}/file`, "x");
    const { narrowed, results } = await narrowInChild(
      ["--allow-net", "--allow-env", `--allow-read=${dir}`, `--allow-write=${dir}`],
      {
        // A TCP-only config: no socket, so nothing to write.
        needed: { net: ["127.0.0.1:9002"], read: [], write: [], env: ["PORT"] },
        launched: { net: "all", env: "all", read: [dir], write: [dir] },
        attempts: {
          read: [`${dir}/file`],
          write: [`${dir}/file`],
          env: ["HOME"],
          connect: [],
          spawn: false,
        },
      },
      { HOME: "/root" },
    );
    assert.deepEqual(narrowed.revoked, [`--allow-read=${dir}`, `--allow-write=${dir}`]);
    assert.deepEqual(results[`read ${dir}/file`], "NotCapable");
    assert.deepEqual(results[`write ${dir}/file`], "NotCapable");
    // Deno cannot take one variable or host back from a global grant: stated, not hidden.
    assert.deepEqual(narrowed.global, ["--allow-net", "--allow-env"]);
    assert.equal(results["env HOME"], "ok");
    assert.deepEqual(narrowed.state, {
      net: "all",
      read: "none",
      write: "none",
      env: "all",
      run: "none",
      ffi: "none",
      sys: "none",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("narrowPermissions(): an entry under a broader grant is left alone, never half-revoked", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-narrow-" });
  try {
    await Deno.mkdir(`${dir}/sub`);
    await Deno.writeTextFile(`${dir}/config.yaml`, "x");
    const { narrowed, results } = await narrowInChild(
      [`--allow-read=${dir},${dir}/sub`],
      {
        needed: { net: [], read: [`${dir}/config.yaml`], write: [], env: [] },
        // The launcher also granted the parent, which the narrowing was not told about:
        // revoking ${dir}/sub would take the parent (and the config) with it.
        launched: { net: [], env: [], read: [`${dir}/sub`], write: [] },
        attempts: { read: [`${dir}/config.yaml`], write: [], env: [], connect: [], spawn: false },
      },
    );
    assert.equal(narrowed.error, undefined);
    assert.ok(!narrowed.revoked.some((f) => f.startsWith("--allow-read")), narrowed.revoked.join());
    assert.equal(results[`read ${dir}/config.yaml`], "ok");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The daemon itself, launched like the compiled binary (its baked flags) plus run and sys. */
Deno.test("the daemon gives up what the compiled binary's grants allow beyond its config", async () => {
  // Under /tmp, which the binary may read and write: the config and socket live there.
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pilotfish-narrow-" });
  const port = freePort();
  const configPath = `${dir}/config.yaml`;
  const config = (extra: string) =>
    `server:\n  port: ${port}\n  socket: ${dir}/pf.sock\n  reload_interval: 100ms\n` +
    `logging:\n  level: debug\nproviders:\n  mock: {}\n${extra}`;
  await Deno.writeTextFile(configPath, config(""));
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      "--unstable-no-legacy-abort",
      "--config",
      `${ROOT}deno.json`,
      ...launchFlags(COMPILED_GRANTS),
      "--allow-run",
      "--allow-sys",
      `${ROOT}src/main.ts`,
      "--config",
      configPath,
    ],
    env: { HOME: "/home/nonroot", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let logs = "";
  const waiters: { needle: string; resolve: () => void }[] = [];
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const part of stream.pipeThrough(new TextDecoderStream())) {
      logs += part;
      for (const w of [...waiters]) {
        if (logs.includes(w.needle)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    }
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  const waitFor = (needle: string) => {
    if (logs.includes(needle)) return Promise.resolve();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const t = setTimeout(() => reject(new Error(`"${needle}" not logged:\n${logs}`)), 20_000);
    waiters.push({ needle, resolve: () => (clearTimeout(t), resolve()) });
    return promise;
  };
  try {
    await waitFor("pilotfish listening");
    const line = logs.split("\n").find((l) => l.includes('"permissions narrowed"'));
    assert.ok(line, logs);
    const narrowed = JSON.parse(line) as { revoked: string[]; global: string[]; state: unknown };
    assert.deepEqual(narrowed.revoked, [
      "--allow-run",
      "--allow-sys",
      "--allow-read=/etc/pilotfish",
      "--allow-read=/var/run/pilotfish",
      "--allow-read=/var/lib/pilotfish",
      "--allow-read=/home/nonroot/.aws",
      "--allow-read=/var/run/secrets/eks.amazonaws.com/serviceaccount",
      "--allow-read=/dev/null",
      "--allow-write=/var/run/pilotfish",
      "--allow-write=/var/lib/pilotfish",
      "--allow-write=/dev/null",
    ]);
    assert.deepEqual(narrowed.global, ["--allow-net", "--allow-env"]);

    // Proof through what a client can make it do: a reload that turns on Bedrock signing
    // needs ~/.aws/credentials, which the binary could read at launch and gave up.
    await Deno.writeTextFile(
      configPath,
      config("  bedrock:\n    sign: true\n    region: us-west-2\n"),
    );
    await waitFor("config reload refused: it needs permissions");
    assert.match(logs, /--allow-read=\/home\/nonroot\/\.aws\/credentials/);
    const res = await fetch(`http://127.0.0.1:${port}/ready`);
    assert.equal(res.status, 200, "the running config stays in force");
    await res.body?.cancel();
  } finally {
    child.kill("SIGTERM");
    await drained;
    await child.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("launchHint(): deno task start from source; the compiled binary's own folders", async () => {
  const { launchHint } = await import("../../src/permissions/narrow.ts");
  assert.match(launchHint(() => "/usr/bin/deno"), /deno task start/);
  const compiled = launchHint(() => "/usr/local/bin/pilotfish");
  assert.doesNotMatch(compiled, /deno task start/);
  assert.match(compiled, /\/var\/lib\/pilotfish/);
});
