/**
 * Run the README's recipes (the files under examples/) against a real daemon. A recipe is
 * written for the documented defaults (127.0.0.1:9002 / localhost:9002 and
 * /tmp/pilotfish.sock); these helpers substitute the test daemon's free port and temp socket,
 * so the file the README shows is exactly the code that runs.
 * @module
 */
import { freePort } from "../integration/daemon.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
export const EXAMPLES = `${ROOT}examples/`;
const NODE_MODULES = `${EXAMPLES}node/node_modules`;
const PYTHON = `${ROOT}.venv/bin/python`;

/** One line each, thrown as strings so Deno's reporter shows exactly that line. */
export const NODE_PACKAGES_MISSING =
  "examples/node/node_modules missing: run `npm ci --prefix examples/node` (or .ci/run)";
export const PYTHON_VENV_MISSING =
  "Python venv missing: run `python3 -m venv .venv && .venv/bin/pip install -r examples/python/requirements.txt` (or .ci/run)";

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Where a recipe reaches the daemon. */
export interface Target {
  readonly port: number;
  readonly socket: string;
}

/** The recipe text with the documented defaults replaced by the test daemon's. */
export function substitute(text: string, target: Target): string {
  return text
    .replaceAll("127.0.0.1:9002", `127.0.0.1:${target.port}`)
    .replaceAll("localhost:9002", `127.0.0.1:${target.port}`)
    .replaceAll("request.port = 9002", `request.port = ${target.port}`)
    .replaceAll("/tmp/pilotfish.sock", target.socket);
}

export interface RecipeRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Run `examples/<file>` (`.mjs` with node, `.py` with the venv's python, `.sh` with sh)
 * against `target`, with a clean environment plus `env` (so nothing from the developer's
 * shell, such as OPENAI_BASE_URL, changes what the SDK does).
 */
export async function runRecipe(
  file: string,
  target: Target,
  env: Record<string, string> = {},
): Promise<RecipeRun> {
  const source = await Deno.readTextFile(`${EXAMPLES}${file}`);
  const ext = file.slice(file.lastIndexOf("."));
  let command: string;
  let dir: string;
  if (ext === ".mjs") {
    if (!exists(NODE_MODULES)) throw NODE_PACKAGES_MISSING;
    command = "node";
    // Next to the original, so node resolves its packages from examples/node/node_modules.
    dir = `${EXAMPLES}node`;
  } else if (ext === ".py") {
    if (!exists(PYTHON)) throw PYTHON_VENV_MISSING;
    command = PYTHON;
    dir = await Deno.makeTempDir({ prefix: "pilotfish-recipe-" });
  } else if (ext === ".sh") {
    command = "sh";
    dir = await Deno.makeTempDir({ prefix: "pilotfish-recipe-" });
  } else {
    throw new Error(`no runner for ${file}`);
  }
  const script = `${dir}/.recipe-${crypto.randomUUID()}${ext}`;
  await Deno.writeTextFile(script, substitute(source, target));
  try {
    const out = await new Deno.Command(command, {
      args: [script],
      clearEnv: true,
      env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: dir, NO_COLOR: "1", ...env },
      stdin: "null",
      // A recipe that hangs fails the test instead of the suite.
      signal: AbortSignal.timeout(60_000),
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    await Deno.remove(script).catch(() => {});
    if (ext !== ".mjs") await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Run a recipe and return its stdout, failing with its stderr when it exits non-zero. */
export async function recipeOutput(
  file: string,
  target: Target,
  env: Record<string, string> = {},
): Promise<string> {
  const r = await runRecipe(file, target, env);
  if (r.code !== 0) {
    throw new Error(`${file} exited with ${r.code}:\n${r.stderr}\n${r.stdout}`);
  }
  return r.stdout;
}

/** The daemon on its embedded default (no config file), as `deno task start` runs it. */
export interface EmbeddedDaemon extends Target {
  logs(): string;
  stop(): Promise<number>;
}

/**
 * Start `scripts/start.sh` with no config (the embedded default) on a free port and a temp
 * socket, with a clean environment (so no provider key of the developer's shell enables a
 * provider) plus `env`.
 */
export async function startEmbeddedDaemon(
  env: Record<string, string> = {},
): Promise<EmbeddedDaemon> {
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-recipe-daemon-" });
  const port = freePort();
  const socket = `${dir}/pilotfish.sock`;
  const child = new Deno.Command("sh", {
    args: [`${ROOT}scripts/start.sh`, "--port", String(port), "--socket", socket],
    cwd: dir,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? dir,
      NO_COLOR: "1",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  let onText = () => {};
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const part of stream.pipeThrough(new TextDecoderStream())) {
      text += part;
      onText();
    }
  };
  const exited = Promise.all([drain(child.stdout), drain(child.stderr)]).then(() => child.status);
  const listening = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon not listening:\n${text}`)), 30_000);
    onText = () => {
      if (text.includes("pilotfish listening")) {
        clearTimeout(timer);
        resolve();
      }
    };
    exited.then((s) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited with ${s.code} before listening:\n${text}`));
    });
  });
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    const status = await exited;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    return status.code;
  };
  try {
    await listening;
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, socket, logs: () => text, stop };
}
