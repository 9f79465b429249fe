/**
 * The Kubernetes examples (examples/kubernetes/**) read, validated against the Kubernetes API
 * schemas, and checked for the native-sidecar pattern. Schema validation comes from the
 * `kubernetes-models` package: the upstream OpenAPI definitions compiled into ajv validators,
 * for a Kubernetes release that has `initContainers[].restartPolicy` (1.29+). Those
 * definitions do not forbid unknown fields (neither does the API's own OpenAPI), so
 * `sidecarProblems` checks every field the pattern relies on by value.
 * @module
 */
import YAML, { parseAllDocuments } from "yaml";
import { Deployment, type IDeployment } from "kubernetes-models/apps/v1/Deployment";
import { ConfigMap, type IConfigMap } from "kubernetes-models/v1/ConfigMap";
import { type IService, Service } from "kubernetes-models/v1/Service";
import { Secret } from "kubernetes-models/v1/Secret";
import type { IIoK8sApiCoreV1Container as Container } from "kubernetes-models/v1/Container";
import type { IIoK8sApiCoreV1PodSpec as PodSpec } from "kubernetes-models/v1/PodSpec";
import type { IIoK8sApiCoreV1Probe as Probe } from "kubernetes-models/v1/Probe";
import type { Config } from "../../src/config/mod.ts";
import {
  groupCanUse,
  hostPort,
  parseExampleConfig,
  probeCommand,
  quantity,
  RSS,
} from "./helpers.ts";

export interface Manifest {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata?: { readonly name?: string };
  readonly [field: string]: unknown;
}

/** Every YAML document of a manifest file (YAML errors throw with their position). */
export function parseManifests(text: string, source: string): Manifest[] {
  return parseAllDocuments(text).map((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`${source} #${i}: ${doc.errors[0]!.message}`);
    const value: unknown = doc.toJS();
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new Error(`${source} #${i}: not a Kubernetes object`);
    }
    const m = value as Record<string, unknown>;
    if (typeof m.apiVersion !== "string" || typeof m.kind !== "string") {
      throw new Error(`${source} #${i}: apiVersion and kind are required`);
    }
    return m as Manifest;
  });
}

type Validate = (doc: Manifest) => void;

// The models validate on `.validate()` and throw an error listing each schema violation.
const VALIDATORS: Record<string, Validate> = {
  "apps/v1 Deployment": (d) => new Deployment(d as unknown as IDeployment).validate(),
  "v1 ConfigMap": (d) => new ConfigMap(d as unknown as IConfigMap).validate(),
  "v1 Service": (d) => new Service(d as unknown as IService).validate(),
  "v1 Secret": (d) => new Secret(d as ConstructorParameters<typeof Secret>[0]).validate(),
};

/** Schema violations of one object, `[]` when it is valid. Unknown kinds are a problem too. */
export function schemaProblems(doc: Manifest): string[] {
  const key = `${doc.apiVersion} ${doc.kind}`;
  const validate = VALIDATORS[key];
  if (!validate) return [`${key}: no schema in this test (add it to VALIDATORS)`];
  try {
    validate(doc);
    return [];
  } catch (err) {
    return [`${key} ${doc.metadata?.name ?? "?"}: ${(err as Error).message}`];
  }
}

const CONFIG_FLAG = "--config";

/** What `sidecarProblems` found besides the problems: the sidecar's config, for more checks. */
export interface SidecarPattern {
  readonly problems: string[];
  readonly config: Config | null;
  readonly configText: string | null;
  readonly sidecar: Container | null;
}

function byKind<T>(docs: readonly Manifest[], kind: string): T[] {
  return docs.filter((d) => d.kind === kind) as unknown as T[];
}

/** A container's effective security settings: its own, else the pod's. */
function securityProblems(where: string, c: Container, pod: PodSpec): string[] {
  const sc = c.securityContext ?? {};
  const psc = pod.securityContext ?? {};
  const problems: string[] = [];
  const uid = sc.runAsUser ?? psc.runAsUser;
  const gid = sc.runAsGroup ?? psc.runAsGroup;
  if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) problems.push(`${where}: runAsNonRoot`);
  if (typeof uid !== "number" || uid === 0) problems.push(`${where}: a fixed non-root runAsUser`);
  if (typeof gid !== "number" || gid === 0) problems.push(`${where}: a fixed non-root runAsGroup`);
  if (sc.readOnlyRootFilesystem !== true) problems.push(`${where}: readOnlyRootFilesystem`);
  if (sc.allowPrivilegeEscalation !== false) {
    problems.push(`${where}: allowPrivilegeEscalation: false`);
  }
  if (sc.privileged === true) problems.push(`${where}: privileged`);
  if (!sc.capabilities?.drop?.includes("ALL")) problems.push(`${where}: capabilities.drop [ALL]`);
  if ((sc.capabilities?.add ?? []).length > 0) problems.push(`${where}: capabilities.add`);
  if ((sc.seccompProfile ?? psc.seccompProfile)?.type !== "RuntimeDefault") {
    problems.push(`${where}: seccompProfile RuntimeDefault`);
  }
  return problems;
}

function probeProblems(where: string, probe: Probe | undefined, expected: string[]): string[] {
  if (!probe) return [`${where}: missing`];
  const command = probe.exec?.command;
  if (JSON.stringify(command) !== JSON.stringify(expected)) {
    return [`${where}: exec ${JSON.stringify(command)}, want ${JSON.stringify(expected)}`];
  }
  return [];
}

function envValue(c: Container, name: string): string | undefined {
  return c.env?.find((e) => e.name === name)?.value ?? undefined;
}

/**
 * The native-sidecar pattern of one Deployment, as problems (`[]`: all there): Pilotfish is an
 * init container with `restartPolicy: Always` probed by exec of the image's `--probe`, its
 * socket in an emptyDir shared with every app container, its config a ConfigMap directory
 * mount (hot reload through the kubelet's symlink swap), its keys from Secrets, resources
 * sized from the bench, every container locked down, and the app pointed at it.
 */
export function sidecarProblems(
  docs: readonly Manifest[],
  deploymentName: string,
  binary: string,
): SidecarPattern {
  const problems: string[] = [];
  const none = { problems, config: null, configText: null, sidecar: null };
  const deployment = byKind<IDeployment>(docs, "Deployment")
    .find((d) => d.metadata?.name === deploymentName);
  const pod = deployment?.spec?.template.spec;
  if (!deployment || !pod) return { ...none, problems: [`no Deployment ${deploymentName}`] };

  const labels = deployment.spec!.template.metadata?.labels ?? {};
  for (const [k, v] of Object.entries(deployment.spec!.selector.matchLabels ?? {})) {
    if (labels[k] !== v) problems.push(`selector ${k}=${v} does not match the pod's labels`);
  }

  const sidecars = (pod.initContainers ?? []).filter((c) => c.name === "pilotfish");
  if (sidecars.length !== 1) return { ...none, problems: ["one init container named pilotfish"] };
  const pf = sidecars[0]!;
  if (pf.restartPolicy !== "Always") problems.push("pilotfish: restartPolicy Always (sidecar)");
  if (pod.containers.some((c) => c.name === "pilotfish")) {
    problems.push("pilotfish is also an app container");
  }

  // The config: `--config <dir>/<key>`, <dir> the mount of a ConfigMap volume (no subPath).
  const args = pf.args ?? [];
  const configPath = args[args.indexOf(CONFIG_FLAG) + 1];
  if (!args.includes(CONFIG_FLAG) || !configPath) {
    return { ...none, problems: [...problems, "pilotfish: --config FILE in args"] };
  }
  const dir = configPath.slice(0, configPath.lastIndexOf("/"));
  const key = configPath.slice(configPath.lastIndexOf("/") + 1);
  const configMount = pf.volumeMounts?.find((m) => m.mountPath === dir);
  const configVolume = pod.volumes?.find((v) => v.name === configMount?.name);
  const configMap = byKind<IConfigMap>(docs, "ConfigMap")
    .find((c) => c.metadata?.name === configVolume?.configMap?.name);
  if (!configMount || !configVolume?.configMap) {
    problems.push(`pilotfish: ${dir} is not a ConfigMap volume mount`);
  }
  if (configMount?.subPath !== undefined || configMount?.subPathExpr !== undefined) {
    problems.push("pilotfish: the config is a subPath mount (never updated: no hot reload)");
  }
  if (configMount?.readOnly !== true) problems.push("pilotfish: config mount readOnly");
  const configText = configMap?.data?.[key];
  if (configText === undefined) {
    return { ...none, problems: [...problems, `no ConfigMap in this file has the key ${key}`] };
  }
  const config = parseExampleConfig(configText, `ConfigMap ${configMap!.metadata?.name}`);

  // Keys come from Secrets: every ${VAR} of the config is a secretKeyRef in the env.
  const refs = [...configText.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!);
  for (const name of new Set(refs)) {
    const env = pf.env?.find((e) => e.name === name);
    if (!env?.valueFrom?.secretKeyRef) problems.push(`pilotfish: ${name} from a Secret`);
  }
  for (const e of pf.env ?? []) {
    if (/KEY|TOKEN|PASSWORD|SECRET/.test(e.name) && e.value !== undefined) {
      problems.push(`pilotfish: ${e.name} is a literal, not a secretKeyRef`);
    }
  }

  // The socket: in an emptyDir mounted at the same path in Pilotfish and every app container.
  const socket = config.server.socket;
  const socketDir = socket.slice(0, socket.lastIndexOf("/"));
  const socketMount = pf.volumeMounts?.find((m) => m.mountPath === socketDir);
  const socketVolume = pod.volumes?.find((v) => v.name === socketMount?.name);
  if (!socketVolume?.emptyDir) problems.push(`pilotfish: ${socketDir} is not an emptyDir mount`);
  for (const app of pod.containers) {
    const m = app.volumeMounts?.find((m) => m.name === socketMount?.name);
    if (m?.mountPath !== socketDir) problems.push(`${app.name}: socket volume at ${socketDir}`);
    const sdkSocket = envValue(app, "PILOTFISH_SOCKET");
    if (sdkSocket !== socket) problems.push(`${app.name}: PILOTFISH_SOCKET ${sdkSocket}`);
    const base = envValue(app, "OPENAI_BASE_URL");
    const target = base ? hostPort(base) : null;
    if (target?.host !== "127.0.0.1" || target.port !== config.server.port) {
      problems.push(`${app.name}: OPENAI_BASE_URL ${base} is not the sidecar's port`);
    }
  }
  if (config.server.host !== "127.0.0.1") problems.push("config: server.host 127.0.0.1");

  // The app reaches the 0660 socket through the pod's fsGroup, Pilotfish's group.
  const pfGroup = pf.securityContext?.runAsGroup ?? pod.securityContext?.runAsGroup;
  if (pod.securityContext?.fsGroup !== pfGroup) problems.push("pod: fsGroup = pilotfish's GID");
  if (!groupCanUse(config.server.socket_mode)) problems.push("config: socket_mode 0660");

  // Probes: exec of the image's binary in probe mode on the config's socket.
  const probe = probeCommand(binary, socket);
  problems.push(...probeProblems("pilotfish startupProbe", pf.startupProbe, probe));
  problems.push(...probeProblems("pilotfish readinessProbe", pf.readinessProbe, probe));
  problems.push(...probeProblems("pilotfish livenessProbe", pf.livenessProbe, probe));

  // Resources from the bench's RSS figures (Redis link included when the config has one).
  const usesRedis = config.state.backend === "redis" ||
    config.features.circuit_breaker.backend === "redis";
  const r = pf.resources;
  const memRequest = r?.requests?.memory;
  const memLimit = r?.limits?.memory;
  if (!r?.requests?.cpu) problems.push("pilotfish: cpu request");
  if (memRequest === undefined || quantity(memRequest) < (usesRedis ? RSS.withRedis : RSS.idle)) {
    problems.push(`pilotfish: memory request ${memRequest} below the idle RSS`);
  }
  if (memLimit === undefined || quantity(memLimit) < RSS.peak * 1.2) {
    problems.push(`pilotfish: memory limit ${memLimit} without 20% over the peak RSS`);
  }
  if (memRequest !== undefined && memLimit !== undefined) {
    if (quantity(memLimit) < quantity(memRequest)) problems.push("pilotfish: limit < request");
  }
  const drain = config.server.drain_timeout;
  if ((pod.terminationGracePeriodSeconds ?? 30) * 1000 <= drain) {
    problems.push("pod: terminationGracePeriodSeconds must exceed server.drain_timeout");
  }

  for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
    problems.push(...securityProblems(c.name, c, pod));
  }
  return { problems, config, configText, sidecar: pf };
}

/**
 * The Redis variant: the config's Redis URL names a Service of this file that selects a
 * locked-down Redis, which requires the password the URL carries, from the same Secret.
 */
export function redisProblems(docs: readonly Manifest[], pattern: SidecarPattern): string[] {
  const { config, configText, sidecar } = pattern;
  if (!config || !configText || !sidecar) return ["no sidecar config"];
  const problems: string[] = [];
  if (config.state.backend !== "redis") problems.push("config: state.backend redis");
  if (config.features.circuit_breaker.backend !== "redis") {
    problems.push("config: features.circuit_breaker.backend redis");
  }
  const url = new URL(config.state.redis.url);
  const service = byKind<IService>(docs, "Service").find((s) => s.metadata?.name === url.hostname);
  if (!service) return [...problems, `no Service ${url.hostname} for ${url.host}`];
  const port = service.spec?.ports?.find((p) => p.port === Number(url.port || 6379));
  if (!port) problems.push(`Service ${url.hostname}: no port ${url.port}`);
  const selector = Object.entries(service.spec?.selector ?? {});
  const redis = byKind<IDeployment>(docs, "Deployment").find((d) => {
    const labels = d.spec?.template.metadata?.labels ?? {};
    return selector.length > 0 && selector.every(([k, v]) => labels[k] === v);
  });
  const pod = redis?.spec?.template.spec;
  if (!redis || !pod) return [...problems, `Service ${url.hostname} selects no Deployment`];
  const container = pod.containers.find((c) =>
    c.ports?.some((p) => p.name === port?.targetPort || p.containerPort === port?.targetPort)
  );
  if (!container) return [...problems, `Service ${url.hostname}: targetPort is no container port`];
  problems.push(...securityProblems(`redis ${container.name}`, container, pod));
  if (!container.resources?.limits?.memory) problems.push("redis: memory limit");

  const args = container.args ?? [];
  const passVar = /^\$\((\w+)\)$/.exec(args[args.indexOf("--requirepass") + 1] ?? "")?.[1];
  const redisSecret = container.env?.find((e) => e.name === passVar)?.valueFrom?.secretKeyRef;
  const rawUrl = (YAML.parse(configText) as { state?: { redis?: { url?: string } } })
    .state?.redis?.url ?? "";
  const urlVar = /^redis:\/\/:\$\{(\w+)\}@/.exec(rawUrl)?.[1];
  const sidecarSecret = sidecar.env?.find((e) => e.name === urlVar)?.valueFrom?.secretKeyRef;
  if (!redisSecret) problems.push("redis: --requirepass $(VAR) from a Secret");
  if (!sidecarSecret) problems.push("config: state.redis.url carries ${VAR} as its password");
  if (JSON.stringify(redisSecret) !== JSON.stringify(sidecarSecret)) {
    problems.push("the Redis password and the URL's password come from different Secrets");
  }
  return problems;
}
