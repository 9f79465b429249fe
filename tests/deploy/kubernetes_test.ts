/**
 * examples/kubernetes: every manifest is valid against the Kubernetes API schemas, each
 * Deployment is the native-sidecar pattern with the security settings the README promises,
 * and each ConfigMap's Pilotfish config passes the daemon's `--check --strict`. There is no
 * cluster here: what a kubelet does at run time (probing, the symlink swap) is covered by
 * configmap_reload_test.ts and the daemon's own tests.
 */
import assert from "node:assert/strict";
import type { IIoK8sApiCoreV1PodSpec as PodSpec } from "kubernetes-models/v1/PodSpec";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import { assertPassesCheck, imageBinary, ROOT } from "./helpers.ts";
import {
  type Manifest,
  parseManifests,
  redisProblems,
  schemaProblems,
  sidecarProblems,
} from "./kubernetes.ts";

const DIR = `${ROOT}examples/kubernetes/`;
const BASE = "pilotfish-sidecar.yaml";
const WITH_REDIS = "with-redis/pilotfish-sidecar.yaml";

async function manifestFiles(dir = DIR, prefix = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) {
      files.push(...await manifestFiles(`${dir}${e.name}/`, `${prefix}${e.name}/`));
    } else if (/\.ya?ml$/.test(e.name)) files.push(`${prefix}${e.name}`);
  }
  return files.sort();
}

async function load(file: string): Promise<Manifest[]> {
  return parseManifests(await Deno.readTextFile(`${DIR}${file}`), file);
}

/** A copy of the docs with `edit` applied to the pod spec of the Deployment `name`. */
function withPod(docs: readonly Manifest[], name: string, edit: (pod: PodSpec) => void) {
  const copy = structuredClone(docs) as Manifest[];
  const d = copy.find((m) => m.kind === "Deployment" && m.metadata?.name === name) as
    | IDeployment
    | undefined;
  edit(d!.spec!.template.spec!);
  return copy;
}

Deno.test("examples/kubernetes: every object is valid against the Kubernetes API schemas", async () => {
  const files = await manifestFiles();
  assert.deepEqual(files, [BASE, WITH_REDIS], "a new manifest needs its pattern test here");
  for (const file of files) {
    const docs = await load(file);
    assert.ok(docs.length > 0, file);
    assert.deepEqual(docs.flatMap(schemaProblems), [], file);
  }
});

Deno.test("the schema validation rejects what the API server would", async () => {
  const docs = await load(BASE);
  const cases: [string, (pod: PodSpec) => void, RegExp][] = [
    ["restartPolicy of the wrong type", (p) => {
      (p.initContainers![0] as { restartPolicy: unknown }).restartPolicy = 1;
    }, /restartPolicy must be string/],
    ["a container without a name", (p) => {
      delete (p.containers[0] as { name?: string }).name;
    }, /containers\/0 must have required property name/],
    ["a probe command that is not a list", (p) => {
      (p.initContainers![0]!.startupProbe!.exec as { command: unknown }).command = "pilotfish";
    }, /command must be array/],
    ["an unknown pull policy", (p) => {
      (p.containers[0] as { imagePullPolicy: string }).imagePullPolicy = "Sometimes";
    }, /imagePullPolicy must be equal to one of the allowed values/],
  ];
  for (const [what, edit, expected] of cases) {
    const problems = withPod(docs, "my-app", edit).flatMap(schemaProblems);
    assert.equal(problems.length, 1, `${what}: ${problems.join("; ")}`);
    assert.match(problems[0]!, expected, what);
  }
  assert.deepEqual(
    schemaProblems({ apiVersion: "v1", kind: "Pod" }),
    ["v1 Pod: no schema in this test (add it to VALIDATORS)"],
  );
});

Deno.test("pilotfish-sidecar.yaml: the native-sidecar pattern, locked down", async () => {
  const docs = await load(BASE);
  const { problems, config } = sidecarProblems(docs, "my-app", await imageBinary());
  assert.deepEqual(problems, []);
  assert.equal(config?.state.backend, "memory");
});

Deno.test("with-redis: the same pattern, with fleet state in a shared, locked-down Redis", async () => {
  const docs = await load(WITH_REDIS);
  const pattern = sidecarProblems(docs, "my-app", await imageBinary());
  assert.deepEqual(pattern.problems, []);
  assert.deepEqual(redisProblems(docs, pattern), []);
});

Deno.test("the pattern check names each thing that breaks the sidecar pattern", async () => {
  const docs = await load(BASE);
  const binary = await imageBinary();
  const cases: [string, (pod: PodSpec) => void, RegExp][] = [
    ["a plain init container", (p) => {
      delete p.initContainers![0]!.restartPolicy;
    }, /restartPolicy Always/],
    ["a writable root filesystem", (p) => {
      p.initContainers![0]!.securityContext!.readOnlyRootFilesystem = false;
    }, /pilotfish: readOnlyRootFilesystem/],
    ["an app container running as root", (p) => {
      p.containers[0]!.securityContext!.runAsUser = 0;
      p.containers[0]!.securityContext!.runAsNonRoot = false;
    }, /app: runAsNonRoot/],
    ["capabilities kept", (p) => {
      p.initContainers![0]!.securityContext!.capabilities = { drop: ["NET_RAW"] };
    }, /pilotfish: capabilities.drop \[ALL\]/],
    ["the config as a subPath mount", (p) => {
      const m = p.initContainers![0]!.volumeMounts!.find((m) => m.name === "pilotfish-config")!;
      m.mountPath = "/etc/pilotfish/pilotfish.yaml";
      m.subPath = "pilotfish.yaml";
    }, /is not a ConfigMap volume mount/],
    ["an HTTP startup probe (the daemon listens on 127.0.0.1 only)", (p) => {
      p.initContainers![0]!.startupProbe = { httpGet: { path: "/ready", port: 9002 } };
    }, /startupProbe: exec undefined/],
    ["a probe of another socket", (p) => {
      p.initContainers![0]!.livenessProbe!.exec!.command![3] = "/tmp/pilotfish.sock";
    }, /livenessProbe: exec/],
    ["a key as a literal", (p) => {
      p.initContainers![0]!.env![0] = { name: "OPENAI_API_KEY", value: "sk-live" };
    }, /OPENAI_API_KEY from a Secret/],
    ["no fsGroup for the socket", (p) => {
      delete p.securityContext!.fsGroup;
    }, /fsGroup = pilotfish's GID/],
    ["a memory limit under the bench's peak", (p) => {
      p.initContainers![0]!.resources!.limits!.memory = "128Mi";
    }, /memory limit 128Mi/],
    ["the socket on the node's disk", (p) => {
      const v = p.volumes!.find((v) => v.name === "pilotfish-socket")!;
      delete v.emptyDir;
      v.hostPath = { path: "/var/run/pilotfish" };
    }, /is not an emptyDir mount/],
    ["an app without the socket", (p) => {
      p.containers[0]!.volumeMounts = [];
    }, /app: socket volume/],
    ["an SDK pointed elsewhere", (p) => {
      p.containers[0]!.env![0]!.value = "https://api.openai.com/v1";
    }, /OPENAI_BASE_URL https:\/\/api.openai.com\/v1 is not the sidecar's port/],
  ];
  for (const [what, edit, expected] of cases) {
    const { problems } = sidecarProblems(withPod(docs, "my-app", edit), "my-app", binary);
    assert.ok(problems.some((p) => expected.test(p)), `${what}: ${problems.join("; ")}`);
  }
});

Deno.test("the Redis check names a broken link between the sidecars and Redis", async () => {
  const docs = await load(WITH_REDIS);
  const binary = await imageBinary();
  const noService = docs.filter((d) => d.kind !== "Service");
  const pattern = sidecarProblems(noService, "my-app", binary);
  assert.deepEqual(redisProblems(noService, pattern), [
    "no Service pilotfish-redis for pilotfish-redis:6379",
  ]);
  const noPassword = withPod(docs, "pilotfish-redis", (p) => {
    p.containers[0]!.args = ["--save", ""];
  });
  assert.ok(
    redisProblems(noPassword, sidecarProblems(noPassword, "my-app", binary))
      .includes("redis: --requirepass $(VAR) from a Secret"),
  );
  const memoryOnly = sidecarProblems(await load(BASE), "my-app", binary);
  assert.deepEqual(redisProblems(await load(BASE), memoryOnly).slice(0, 2), [
    "config: state.backend redis",
    "config: features.circuit_breaker.backend redis",
  ]);
});

Deno.test("examples/kubernetes: each ConfigMap's config passes the daemon's --check --strict", async () => {
  for (const file of await manifestFiles()) {
    for (const doc of await load(file)) {
      if (doc.kind !== "ConfigMap") continue;
      const data = (doc as { data?: Record<string, string> }).data ?? {};
      assert.ok(data["pilotfish.yaml"], `${file}: ConfigMap without pilotfish.yaml`);
      await assertPassesCheck(data["pilotfish.yaml"]!, `${file} ConfigMap ${doc.metadata?.name}`);
    }
  }
});
