import YAML from "yaml";
import * as v from "valibot";
import { type EnvLookup, interpolateTree } from "./interpolate.ts";
import { PROVIDER_PRESETS, PROVIDER_TYPES } from "./presets.ts";
import {
  type Config,
  configSchema,
  type ProviderConfig,
  type ProviderKeyConfig,
  resolveProvider,
} from "./schema.ts";

/** A config that cannot be used; `problems` lists every issue, each with its key path. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly source: string, readonly problems: readonly string[]) {
    super(`Invalid config ${source}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }
}

export interface LoadedConfig {
  readonly config: Config;
  /** Non-fatal findings: unknown keys, empty keys. */
  readonly warnings: readonly string[];
  /** Where it came from: a file path or "embedded default". */
  readonly source: string;
}

/** Parse and validate YAML text. Throws ConfigError listing every problem. */
export function parseConfigText(text: string, env: EnvLookup, source: string): LoadedConfig {
  let raw: unknown;
  try {
    const doc = YAML.parseDocument(text, { prettyErrors: false });
    if (doc.errors.length > 0) {
      throw new ConfigError(source, doc.errors.map((e) => `YAML syntax: ${e.message}`));
    }
    raw = doc.toJS() ?? {};
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(source, [`YAML syntax: ${(err as Error).message}`]);
  }
  return validateConfig(raw, env, source);
}

/** Validate an already-parsed tree (YAML or embedded default). */
export function validateConfig(raw: unknown, env: EnvLookup, source: string): LoadedConfig {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(source, ["(root): Expected a mapping of config sections"]);
  }
  const tree = dropNulls(interpolateTree(raw, env)) as Record<string, unknown>;
  const warnings: string[] = [];
  const errors: string[] = [];

  let result = v.safeParse(configSchema, tree, { abortEarly: false });
  if (!result.success) {
    const unknown: (readonly PropertyKey[])[] = [];
    for (const issue of result.issues) {
      const path = issuePath(issue);
      if (issue.type === "strict_object") {
        unknown.push(path);
        warnings.push(`${formatPath(path)}: Unknown key, ignored`);
      } else {
        errors.push(`${formatPath(path)}: ${issue.message}`);
      }
    }
    if (errors.length > 0) {
      // Report reference errors too, judged against the provider names as written.
      const names = isRecord(tree.providers) ? Object.keys(tree.providers) : [];
      errors.push(...referenceErrors(new Set(names), tree.routing));
      throw new ConfigError(source, errors);
    }
    // Only unknown keys: drop them and validate again.
    for (const path of unknown) {
      const parent = getAt(tree, path.slice(0, -1));
      if (isRecord(parent)) delete parent[path[path.length - 1] as string];
    }
    result = v.safeParse(configSchema, tree, { abortEarly: false });
    if (!result.success) {
      throw new ConfigError(
        source,
        result.issues.map((i) => `${formatPath(issuePath(i))}: ${i.message}`),
      );
    }
  }
  const parsed = result.output;

  // server.address (Butter) → host/port unless those are given explicitly.
  const rawServer = (tree.server ?? {}) as Record<string, unknown>;
  let { host, port } = parsed.server;
  if (parsed.server.address !== undefined) {
    const m = /^(.*):(\d+)$/.exec(parsed.server.address);
    if (!m) {
      errors.push(
        `server.address: Expected "host:port" or ":port", got "${parsed.server.address}"`,
      );
    } else {
      if (rawServer.host === undefined) host = m[1] === "" ? "0.0.0.0" : m[1] as string;
      if (rawServer.port === undefined) port = Number(m[2]);
      if (port > 65535) errors.push(`server.address: Port ${port} is out of range`);
    }
  }

  const providers: Record<string, ProviderConfig> = {};
  for (const [name, rawProvider] of Object.entries(parsed.providers)) {
    const p = resolveProvider(name, rawProvider);
    const path = `providers.${name}`;
    if (!p.typeKnown) {
      errors.push(
        `${path}: Unknown provider "${name}": set "type" (${
          PROVIDER_TYPES.join(", ")
        }) or "base_url" for an OpenAI-compatible API`,
      );
      continue;
    }
    if (p.type !== "mock" && p.type !== "bedrock" && p.base_url === "") {
      errors.push(`${path}.base_url: Required for a provider of type "${p.type}"`);
    }
    const keys: ProviderKeyConfig[] = [];
    p.keys.forEach((k, i) => {
      if (k.key.trim() === "") {
        warnings.push(
          `${path}.keys[${i}].key: Empty (is its env var set?); the key is not used`,
        );
        return;
      }
      keys.push({ ...k, id: k.id ?? `${name}#${i}` });
    });
    if (!p.enabled) continue;
    const { typeKnown: _typeKnown, ...rest } = p;
    if (p.type === "bedrock") {
      // llm-proxy: region from the block, else AWS_REGION, else us-west-2; `endpoint` wins
      // over the regional host (tests, VPC endpoints).
      const region = p.region ?? env("AWS_REGION") ?? "us-west-2";
      const base = (p.endpoint ?? `https://bedrock-runtime.${region}.amazonaws.com`).replace(
        /\/$/,
        "",
      );
      providers[name] = { ...rest, keys, region, base_url: base };
      continue;
    }
    providers[name] = { ...rest, keys };
  }

  errors.push(...referenceErrors(new Set(Object.keys(providers)), parsed.routing));
  if (errors.length > 0) throw new ConfigError(source, errors);

  const aliases: Record<string, string> = {};
  for (const [alias, raw] of Object.entries(parsed.routing.aliases)) {
    aliases[alias] = aliasString(raw) ?? "";
  }
  const config: Config = {
    ...parsed,
    routing: { ...parsed.routing, aliases },
    server: { ...parsed.server, host, port, socket_mode: parseInt(parsed.server.socket_mode, 8) },
    providers,
  };
  return { config: deepFreeze(config), warnings, source };
}

/**
 * The config used when no file is given: TCP 127.0.0.1:9002, the default socket, the
 * `mock` provider, and every preset provider whose API key env var is set.
 */
export function embeddedDefault(env: EnvLookup): LoadedConfig {
  const providers: Record<string, unknown> = { mock: {} };
  for (const [name, preset] of Object.entries(PROVIDER_PRESETS)) {
    const key = preset.env_key ? env(preset.env_key) : undefined;
    if (key) providers[name] = { keys: [{ key }] };
  }
  const defaultProvider = "openai" in providers ? "openai" : "mock";
  return validateConfig(
    { providers, routing: { default_provider: defaultProvider } },
    env,
    "embedded default",
  );
}

/** Read, parse and validate a config file, or the embedded default when `path` is null. */
export async function loadConfig(path: string | null, env: EnvLookup): Promise<LoadedConfig> {
  if (path === null) return embeddedDefault(env);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new ConfigError(path, [`Cannot read file: ${(err as Error).message}`]);
  }
  return parseConfigText(text, env, path);
}

/**
 * Provider names that `routing` refers to but that are not configured. Takes the routing
 * block loosely typed so it also runs when other fields failed validation: `--check` then
 * lists every problem at once.
 */
function referenceErrors(known: Set<string>, routing: unknown): string[] {
  const errors: string[] = [];
  if (!isRecord(routing)) return errors;
  const configured = [...known].join(", ") || "none";
  const unknown = (name: unknown) => typeof name === "string" && !known.has(name);
  if (
    typeof routing.default_provider === "string" && routing.default_provider !== "" &&
    unknown(routing.default_provider)
  ) {
    errors.push(
      `routing.default_provider: Unknown provider "${routing.default_provider}" (configured: ${configured})`,
    );
  }
  if (isRecord(routing.models)) {
    for (const [model, route] of Object.entries(routing.models)) {
      if (!isRecord(route) || !Array.isArray(route.providers)) continue;
      route.providers.forEach((entry: unknown, i: number) => {
        const name = typeof entry === "string" ? splitTarget(entry).provider : entry;
        if (unknown(name)) {
          errors.push(
            `routing.models.${model}.providers[${i}]: Unknown provider "${name}" (configured: ${configured})`,
          );
        }
      });
      if (Array.isArray(route.weights) && route.weights.length !== route.providers.length) {
        errors.push(
          `routing.models.${model}.weights: Expected ${route.providers.length} weights, one per provider`,
        );
      }
    }
  }
  if (isRecord(routing.aliases)) {
    for (const [alias, raw] of Object.entries(routing.aliases)) {
      const target = aliasString(raw);
      if (target === null) continue;
      const slash = target.indexOf("/");
      if (slash <= 0 || slash === target.length - 1) {
        errors.push(`routing.aliases.${alias}: Expected "provider/model", got "${target}"`);
      } else if (unknown(target.slice(0, slash))) {
        errors.push(
          `routing.aliases.${alias}: Unknown provider "${
            target.slice(0, slash)
          }" (configured: ${configured})`,
        );
      }
    }
  }
  return errors;
}

/** An alias target as `provider/model` (llm-gateway's `{provider, model}` included). */
function aliasString(raw: unknown): string | null {
  if (typeof raw === "string") return raw;
  if (isRecord(raw) && typeof raw.provider === "string" && typeof raw.model === "string") {
    return `${raw.provider}/${raw.model}`;
  }
  return null;
}

/** `provider` or `provider/model` as written in `routing.models.<m>.providers`. */
export function splitTarget(entry: string): { provider: string; model: string | null } {
  const slash = entry.indexOf("/");
  return slash > 0 && slash < entry.length - 1
    ? { provider: entry.slice(0, slash), model: entry.slice(slash + 1) }
    : { provider: entry, model: null };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * Drop map entries whose value is null: a section whose keys are all commented out
 * (`server:` followed by comments) means "defaults", not "invalid".
 */
function dropNulls(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(dropNulls);
  if (!isRecord(node)) return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) if (value !== null) out[key] = dropNulls(value);
  return out;
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(root)";
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

function issuePath(issue: v.BaseIssue<unknown>): PropertyKey[] {
  return (issue.path ?? []).map((item) => item.key as PropertyKey);
}

function getAt(tree: unknown, path: readonly PropertyKey[]): unknown {
  let node = tree;
  for (const seg of path) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<PropertyKey, unknown>)[seg];
  }
  return node;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
