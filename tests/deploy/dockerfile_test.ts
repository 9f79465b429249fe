/**
 * The Dockerfile, checked statically: no Docker engine here, and `deno compile` cannot
 * download its runtime (denort). What can be checked is checked: the stages, the base
 * images, the user, the entry point, the probe, the build context, and that the permissions
 * the compile task bakes in are the ones the planner needs for the image's documented paths.
 */
import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { COMPILED_GRANTS, launchFlags, planGrants, uncovered } from "../../src/permissions/mod.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

interface Instruction {
  readonly op: string;
  readonly args: string;
}
interface Stage {
  readonly from: string;
  readonly name: string | null;
  readonly body: Instruction[];
}

/** Dockerfile instructions by stage: continuation lines joined, comments dropped. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const joined = text.replace(/\\\r?\n/g, " ");
  for (const raw of joined.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([A-Za-z]+)\s+(.*)$/.exec(line);
    assert.ok(m, `not an instruction: ${line}`);
    const op = m[1]!.toUpperCase();
    const args = m[2]!.replace(/\s+/g, " ").trim();
    if (op === "FROM") {
      const [from, as, name] = args.split(" ");
      assert.ok(from);
      stages.push({ from, name: as?.toUpperCase() === "AS" ? name ?? null : null, body: [] });
      continue;
    }
    assert.ok(stages.length > 0, `${op} before FROM`);
    stages.at(-1)!.body.push({ op, args });
  }
  return stages;
}

const execForm = (args: string): string[] => {
  const json = args.replace(/^--\S+\s+/g, "");
  const parsed: unknown = JSON.parse(json.slice(json.indexOf("[")));
  assert.ok(Array.isArray(parsed) && parsed.every((a) => typeof a === "string"), args);
  return parsed as string[];
};

const stages = parseDockerfile(await Deno.readTextFile(`${ROOT}Dockerfile`));
const deno = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)) as {
  tasks: Record<string, string>;
};

Deno.test("Dockerfile: a build stage compiles the binary with `deno task compile`", () => {
  assert.equal(stages.length, 2);
  const [build] = stages;
  assert.match(build!.from, /^denoland\/deno:2\.\d+\.\d+$/, "a pinned Deno 2 image");
  assert.equal(build!.name, "build");
  const runs = build!.body.filter((i) => i.op === "RUN").map((i) => i.args).join(" && ");
  assert.match(runs, /deno install --frozen/, "the lockfile is honoured");
  assert.match(runs, /deno task compile/);
  const copies = build!.body.filter((i) => i.op === "COPY").map((i) => i.args);
  assert.deepEqual(copies, ["deno.json deno.lock ./", "src ./src"]);
});

Deno.test("Dockerfile: the runtime stage is distroless, non-root, and runs only the binary", () => {
  const run = stages.at(-1)!;
  assert.match(run.from, /^gcr\.io\/distroless\/cc-debian\d+:nonroot$/);
  const users = run.body.filter((i) => i.op === "USER");
  assert.equal(users.length, 1);
  const [uid, gid] = users[0]!.args.split(":");
  assert.ok(Number(uid) > 0 && Number(gid) > 0, `non-root numeric user: ${users[0]!.args}`);
  const entry = execForm(run.body.find((i) => i.op === "ENTRYPOINT")!.args);
  assert.deepEqual(entry, ["/usr/local/bin/pilotfish"]);
  const cmd = execForm(run.body.find((i) => i.op === "CMD")!.args);
  // No --host: a flag beats the config file, so a default 0.0.0.0 here opened the port of
  // every pod that set PILOTFISH_CONFIG (keeping these arguments) to the pod network.
  assert.deepEqual(cmd, ["--socket", "/var/run/pilotfish/pilotfish.sock"]);
  const copies = run.body.filter((i) => i.op === "COPY").map((i) => i.args);
  assert.ok(copies.includes("--from=build /src/pilotfish /usr/local/bin/pilotfish"), copies.join());
  // The directories the baked grants name exist and belong to the user.
  for (const dir of ["/etc/pilotfish", "/var/run/pilotfish", "/home/nonroot/.aws"]) {
    assert.ok(
      copies.includes(`--from=build --chown=${uid}:${gid} /out${dir} ${dir}`),
      `${dir} owned by ${uid}:${gid}`,
    );
  }
  assert.equal(run.body.find((i) => i.op === "ENV")?.args, "HOME=/home/nonroot");
  assert.equal(run.body.find((i) => i.op === "WORKDIR")?.args, IMAGE_WORKDIR);
});

/** Where the image starts: relative config paths resolve there. */
const IMAGE_WORKDIR = "/var/run/pilotfish";

Deno.test("the baked grants cover relative state and plugin paths in the image's working directory", () => {
  const text = `
providers: { mock: {} }
state: { path: pilotfish-state.db }
wasm_plugins:
  - { name: guard, path: plugins/guard.wasm }
`;
  const { config } = parseConfigText(text, () => undefined, "/etc/pilotfish/pilotfish.yaml");
  const needed = planGrants(config, {
    configPath: "/etc/pilotfish/pilotfish.yaml",
    configText: text,
    cwd: IMAGE_WORKDIR,
    env: () => undefined,
  });
  const worker = new URL("../../src/plugins/worker.ts", import.meta.url).pathname;
  const src = worker.slice(0, worker.lastIndexOf("/") + 1);
  assert.deepEqual(uncovered(needed, COMPILED_GRANTS).filter((f) => !f.includes(src)), []);
});

Deno.test("Dockerfile: the health check is the binary's own --probe (no shell needed)", () => {
  const check = stages.at(-1)!.body.find((i) => i.op === "HEALTHCHECK");
  assert.ok(check);
  const cmd = check.args.slice(check.args.indexOf("CMD ") + 4);
  assert.deepEqual(execForm(cmd), [
    "/usr/local/bin/pilotfish",
    "--probe",
    "--socket",
    "/var/run/pilotfish/pilotfish.sock",
  ]);
});

Deno.test("deno.json's compile task bakes exactly COMPILED_GRANTS, and never run, ffi or sys", () => {
  const task = deno.tasks.compile!;
  assert.equal(
    task,
    `deno compile --no-prompt --unstable-no-legacy-abort ${
      launchFlags(COMPILED_GRANTS).join(" ")
    } --include src/plugins/worker.ts --output pilotfish src/main.ts`,
  );
  assert.doesNotMatch(task, /--allow-(run|ffi|sys|all)|\s-A\b/);
});

Deno.test("the compile task embeds every worker's module (deno compile leaves workers out)", async () => {
  const task = deno.tasks.compile!;
  const included = [...task.matchAll(/--include[ =](\S+)/g)].map((m) => m[1]);
  const workers: string[] = [];
  for await (const file of walkTs(`${ROOT}src`)) {
    const text = await Deno.readTextFile(file);
    if (!text.includes("new Worker(")) continue;
    for (const m of text.matchAll(/new URL\("(\.\.?\/[^"]+\.ts)", import\.meta\.url\)/g)) {
      const url = new URL(m[1]!, `file://${file}`);
      workers.push(url.pathname.slice(ROOT.length));
    }
  }
  assert.ok(workers.includes("src/plugins/worker.ts"), `found: ${workers.join(", ")}`);
  for (const w of workers) assert.ok(included.includes(w), `--include ${w} is missing`);
});

async function* walkTs(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) yield* walkTs(path);
    else if (e.name.endsWith(".ts")) yield path;
  }
}

Deno.test("the baked grants cover what the planner needs for the image's documented setup", () => {
  // Bedrock signing (file and IRSA) + Redis + socket, at the documented paths.
  const text = `
server:
  host: 127.0.0.1
  socket: /var/run/pilotfish/pilotfish.sock
providers:
  bedrock: { sign: true, region: us-west-2 }
  openai: { keys: [{ key: "\${OPENAI_API_KEY}" }] }
state:
  backend: redis
  redis: { url: "redis://redis:6379" }
`;
  const { config } = parseConfigText(text, () => undefined, "/etc/pilotfish/pilotfish.yaml");
  const env: Record<string, string> = {
    HOME: "/home/nonroot",
    AWS_WEB_IDENTITY_TOKEN_FILE: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
    AWS_ROLE_ARN: "arn:aws:iam::123456789012:role/pilotfish",
    AWS_REGION: "us-west-2",
  };
  const needed = planGrants(config, {
    configPath: "/etc/pilotfish/pilotfish.yaml",
    configText: text,
    cwd: "/",
    env: (n) => env[n],
  });
  assert.ok(needed.read.includes("/home/nonroot/.aws/credentials"));
  assert.ok(needed.read.includes(env.AWS_WEB_IDENTITY_TOKEN_FILE!));
  assert.ok(needed.net.includes("sts.us-west-2.amazonaws.com:443"));
  assert.deepEqual(uncovered(needed, COMPILED_GRANTS), []);
  // A credentials file somewhere else is named, so the docs can say where to mount it.
  const elsewhere = planGrants(config, {
    configPath: "/etc/pilotfish/pilotfish.yaml",
    configText: text,
    cwd: "/",
    env: (n) => ({ ...env, AWS_SHARED_CREDENTIALS_FILE: "/secrets/aws" })[n],
  });
  assert.deepEqual(uncovered(elsewhere, COMPILED_GRANTS), ["--allow-read=/secrets/aws"]);
});

Deno.test(".dockerignore keeps tests, history and local secrets out of the build context", async () => {
  const ignored = (await Deno.readTextFile(`${ROOT}.dockerignore`)).split("\n")
    .map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
  for (const entry of [".git", "tests", "bench", "node_modules", "pilotfish", ".env"]) {
    assert.ok(ignored.includes(entry), entry);
  }
  for (const needed of ["src", "deno.json", "deno.lock"]) {
    assert.ok(!ignored.includes(needed), `${needed} is part of the build`);
  }
});

Deno.test("the baked grants cover a WASM plugin mounted under /etc/pilotfish", () => {
  const text = `
providers: { mock: {} }
wasm_plugins:
  - { name: guard, path: /etc/pilotfish/plugins/guard.wasm }
`;
  const { config } = parseConfigText(text, () => undefined, "/etc/pilotfish/pilotfish.yaml");
  const needed = planGrants(config, {
    configPath: "/etc/pilotfish/pilotfish.yaml",
    configText: text,
    cwd: "/",
    env: () => undefined,
  });
  assert.ok(needed.read.includes("/etc/pilotfish/plugins/guard.wasm"));
  assert.ok(needed.write.includes("/dev/null"));
  // The worker and its modules are inside the binary (compile --include), not files to grant.
  const worker = new URL("../../src/plugins/worker.ts", import.meta.url).pathname;
  const src = worker.slice(0, worker.lastIndexOf("/") + 1);
  const missing = uncovered(needed, COMPILED_GRANTS).filter((flag) => !flag.includes(src));
  assert.deepEqual(missing, []);
});
