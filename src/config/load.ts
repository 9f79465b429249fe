import YAML from "yaml";
import * as v from "valibot";
import { type EnvLookup, interpolateTree } from "./interpolate.ts";
import { fromLlmGateway, isLlmGatewayConfig } from "./dialects/llm_gateway.ts";
import { isLlmProxyForm, withLlmProxyProviders } from "./dialects/llm_proxy.ts";
import { formatPath, PathOrigins } from "./paths.ts";
import { EMBEDDED_DEFAULT_PROVIDER, PROVIDER_PRESETS, PROVIDER_TYPES } from "./presets.ts";
import {
  type Config,
  configSchema,
  NO_CAP_BODY_BYTES,
  type ProviderConfig,
  type ProviderKeyConfig,
  REQUESTLOG_LEVELS,
  resolveProvider,
  switchedOff,
} from "./schema.ts";

type ParsedConfig = v.InferOutput<typeof configSchema>;

/** A config that cannot be used; `problems` lists every issue, each with its key path. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly source: string,
    readonly problems: readonly string[],
    /** What was also found that is not an error (unknown keys), for `--check` to list. */
    readonly warnings: readonly string[] = [],
  ) {
    super(`Invalid config ${source}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }
}

export interface LoadedConfig {
  readonly config: Config;
  /** Non-fatal findings: unknown keys, empty keys. */
  readonly warnings: readonly string[];
  /** Where it came from: a file path or "embedded default". */
  readonly source: string;
  /** The seed dialect the file was written in, when not Pilotfish's own. */
  readonly dialect?: "llm-gateway" | "llm-proxy";
  /** What the dialect reading means, worth an info line (not a problem). */
  readonly notes?: readonly string[];
}

export interface LoadOptions {
  /** `--check --strict`: unknown keys are errors, not warnings. */
  readonly strict?: boolean;
  /**
   * A hot reload: a file with no content is refused rather than read as "no providers".
   * A writer that truncates and then writes leaves exactly that for a moment.
   */
  readonly reload?: boolean;
}

/** Parse and validate YAML text. Throws ConfigError listing every problem. */
export function parseConfigText(
  text: string,
  env: EnvLookup,
  source: string,
  opts: LoadOptions = {},
): LoadedConfig {
  let raw: unknown;
  let doc: YAML.Document | null = null;
  try {
    doc = YAML.parseDocument(text, { prettyErrors: false });
    if (doc.errors.length > 0) throw new ConfigError(source, [yamlProblem(text, doc.errors)]);
    raw = doc.toJS();
    if (raw == null && opts.reload) {
      throw new ConfigError(source, [
        "The file is empty (a write still in progress?); the running config stays in force",
      ]);
    }
    raw ??= {};
  } catch (err) {
    // A permission the daemon lacks (npm:yaml reads LOG_TOKENS) is not the file's fault.
    if (err instanceof ConfigError || err instanceof Deno.errors.NotCapable) throw err;
    // Alias errors come from building the values, with no position: the alias has one.
    const at = doc === null ? null : aliasOffset(doc);
    const where = at === null ? "" : ` at ${lineColumn(text, at)}`;
    throw new ConfigError(source, [`YAML syntax${where}: ${(err as Error).message}`]);
  }
  return validateConfig(raw, env, source, opts);
}

/**
 * The first YAML error with its line and column. Later ones are almost always echoes of
 * the first (one missing bracket upsets every line after it), so only their count is given.
 */
function yamlProblem(text: string, errors: readonly YAML.YAMLError[]): string {
  const first = errors[0]!;
  const more = errors.length > 1
    ? ` (${errors.length - 1} more YAML error${errors.length > 2 ? "s" : ""} after it)`
    : "";
  return `YAML syntax at ${lineColumn(text, first.pos[0])}: ${first.message}${more}`;
}

/** "line L, column C" of `offset`; an error at the end of the file is on its last line. */
function lineColumn(text: string, offset: number): string {
  const at = Math.min(offset, text.replace(/\s+$/, "").length);
  const before = text.slice(0, at);
  const line = before.split("\n").length;
  return `line ${line}, column ${at - (before.lastIndexOf("\n") + 1) + 1}`;
}

/**
 * Where an alias error points: the first alias with no anchor before it, else (too many
 * aliases: a "billion laughs" file) the first alias. Null when the document has none.
 */
function aliasOffset(doc: YAML.Document): number | null {
  let unresolved: number | null = null;
  let first: number | null = null;
  YAML.visit(doc, {
    Alias(_, node) {
      const start = node.range?.[0];
      if (start === undefined) return;
      first ??= start;
      if (unresolved === null && node.resolve(doc) === undefined) unresolved = start;
    },
  });
  return unresolved ?? first;
}

/**
 * `server.address` / `host`, the socket path and `state.path`, from the values as validated,
 * or as written when validation failed elsewhere (a value of the wrong type is skipped: its
 * own problem is reported already).
 */
function listenProblems(
  server: Readonly<Record<string, unknown>>,
  statePath: unknown,
  at: (path: readonly PropertyKey[]) => string,
): string[] {
  const problems: string[] = [];
  const { address, host, socket } = server;
  let hostFrom: "host" | "address" = "host";
  let checkedHost = typeof host === "string" ? host : undefined;
  if (typeof address === "string") {
    const m = /^(.*):(\d+)$/.exec(address);
    if (!m) {
      problems.push(
        `${at(["server", "address"])}: Expected "host:port" or ":port", got "${address}"`,
      );
    } else {
      if (Number(m[2]) > 65535) {
        problems.push(`${at(["server", "address"])}: Port ${m[2]} is out of range`);
      }
      if (host === undefined) {
        checkedHost = m[1] === "" ? "0.0.0.0" : m[1];
        hostFrom = "address";
      }
    }
  }
  const hostError = checkedHost === undefined ? null : hostProblem(checkedHost);
  if (hostError !== null) problems.push(`${at(["server", hostFrom])}: ${hostError}`);
  for (const [path, value] of [[["server", "socket"], socket], [["state", "path"], statePath]]) {
    const problem = typeof value === "string" ? pathProblem(value) : null;
    if (problem !== null) problems.push(`${at(path as string[])}: ${problem}`);
  }
  const socketProblem = typeof socket === "string" ? socketPathProblem(socket) : null;
  if (socketProblem !== null) problems.push(`${at(["server", "socket"])}: ${socketProblem}`);
  return problems;
}

/** Validate an already-parsed tree (YAML or embedded default). */
export function validateConfig(
  raw: unknown,
  env: EnvLookup,
  source: string,
  opts: LoadOptions = {},
): LoadedConfig {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(source, ["(root): Expected a mapping of config sections"]);
  }
  let tree = dropNulls(interpolateTree(raw, env)) as Record<string, unknown>;
  const warnings: string[] = [];
  const errors: string[] = [];
  // A seed dialect is translated first; its origins name problems by the user's key path.
  let origins = new PathOrigins();
  let dialect: LoadedConfig["dialect"];
  const notes: string[] = [];
  if (isLlmGatewayConfig(tree)) {
    const translated = fromLlmGateway(tree);
    ({ tree, origins, dialect } = translated);
    errors.push(...translated.errors);
    warnings.push(...translated.warnings);
  }
  if (isLlmProxyForm(tree)) {
    const read = withLlmProxyProviders(tree);
    tree = read.tree;
    dialect = "llm-proxy";
    notes.push(read.notice);
  }
  const at = (path: readonly PropertyKey[]) => origins.userPath(path);

  // valibot reports one unknown key per object: drop those and validate again, until only
  // known keys are left (each round removes at least one key, so this ends). A round's other
  // problems come back in the next round too: a set keeps each once.
  const problems = new Set<string>();
  let result = v.safeParse(configSchema, tree, { abortEarly: false });
  while (!result.success) {
    const unknown: (readonly PropertyKey[])[] = [];
    for (const issue of result.issues) {
      const path = issuePath(issue);
      if (issue.type === "strict_object" && issue.expected !== "never") {
        // strictObject reports a required key that is absent, and a value that is no mapping
        // at all (`rateLimit.global: 100`), with the same issue type.
        const given = issue.input;
        problems.add(
          given === undefined
            ? `${at(path)}: Missing required key`
            : `${at(path)}: Expected a mapping of keys but received ${issue.received}`,
        );
      } else if (issue.type === "strict_object") {
        // Dropped either way, so the next round can find the mapping's other unknown keys.
        unknown.push(path);
        if (opts.strict) problems.add(`${at(path)}: Unknown key`);
        else warnings.push(`${at(path)}: Unknown key, ignored`);
      } else {
        problems.add(`${at(path)}: ${issueMessage(issue, path)}`);
      }
    }
    let dropped = 0;
    for (const path of unknown) {
      const parent = getAt(tree, path.slice(0, -1));
      const key = path[path.length - 1] as string;
      if (isRecord(parent) && Object.hasOwn(parent, key)) {
        delete parent[key];
        dropped++;
      }
    }
    if (dropped === 0) break;
    result = v.safeParse(configSchema, tree, { abortEarly: false });
  }
  if (!result.success || problems.size > 0) {
    errors.push(...problems);
    // Report reference errors too, judged against the provider names as written.
    const names = isRecord(tree.providers) ? Object.keys(tree.providers) : [];
    errors.push(...referenceErrors(new Set(names), tree.routing, at));
    // And the keys' own problems and the listeners', so one --check lists them with the rest.
    errors.push(...rawKeyErrors(tree.providers, at));
    const server = isRecord(tree.server) ? tree.server : {};
    errors.push(...listenProblems(server, isRecord(tree.state) ? tree.state.path : undefined, at));
    throw new ConfigError(source, errors, warnings);
  }
  const parsed = result.output;
  // The old per-provider retry key still loads (schema.ts reads it as `max_retries`).
  const rawFailover = isRecord(tree.routing) ? tree.routing.failover : undefined;
  if (isRecord(rawFailover) && rawFailover.retries_per_provider !== undefined) {
    warnings.push(
      rawFailover.max_retries === undefined
        ? "routing.failover.retries_per_provider: Deprecated, read as max_retries (retries per provider)"
        : "routing.failover.retries_per_provider: Deprecated and ignored: max_retries is set (retries per provider)",
    );
  }

  // server.address (Butter) -> host/port unless those are given explicitly.
  const rawServer = (tree.server ?? {}) as Record<string, unknown>;
  let { host, port } = parsed.server;
  const address = parsed.server.address === undefined
    ? null
    : /^(.*):(\d+)$/.exec(parsed.server.address);
  if (address) {
    if (rawServer.host === undefined) host = address[1] === "" ? "0.0.0.0" : address[1] as string;
    if (rawServer.port === undefined) port = Number(address[2]);
  }
  errors.push(
    ...listenProblems(
      // The host as written: one taken from `address` is that key's problem.
      { ...parsed.server, host: rawServer.host === undefined ? undefined : parsed.server.host },
      parsed.state.path,
      at,
    ),
  );

  const providers: Record<string, ProviderConfig> = {};
  const writtenProviders = isRecord(tree.providers) ? tree.providers : {};
  for (const [name, rawProvider] of Object.entries(parsed.providers)) {
    const written = writtenProviders[name];
    // Butter waits for an upstream as long as its server.write_timeout: a provider without a
    // timeout of its own does too (llm-gateway's providers keep their 60 s default).
    const upstreamWait = dialect !== "llm-gateway" &&
        !(isRecord(written) && written.timeout !== undefined)
      ? parsed.server.write_timeout
      : undefined;
    const p = resolveProvider(
      name,
      upstreamWait === undefined ? rawProvider : { ...rawProvider, timeout: upstreamWait },
    );
    const path = at(["providers", name]);
    if (!p.typeKnown) {
      errors.push(
        `${path}: Unknown provider "${name}": set "type" (${
          PROVIDER_TYPES.join(", ")
        }) or "base_url" for an OpenAI-compatible API`,
      );
      continue;
    }
    if (p.type !== "mock" && p.type !== "bedrock" && p.base_url === "") {
      errors.push(
        `${at(["providers", name, "base_url"])}: Required for a provider of type "${p.type}"`,
      );
    }
    if (p.responses === "native" && p.type !== "openai") {
      errors.push(
        `${
          at(["providers", name, "responses"])
        }: "native" needs an OpenAI-type provider whose upstream speaks the Responses API; a provider of type "${p.type}" gets it translated`,
      );
    }
    const keys: ProviderKeyConfig[] = [];
    let emptyKeys = 0;
    p.keys.forEach((k, i) => {
      // A key read from a file or a mounted secret often ends with a line break.
      const key = k.key.trim();
      if (key === "") {
        emptyKeys++;
        warnings.push(
          `${
            at(["providers", name, "keys", i, "key"])
          }: Empty (is its env var set?); the key is not used`,
        );
        return;
      }
      const bad = keyProblem(key);
      if (bad !== null) {
        // Never the key itself: this line goes to stderr and logs. A disabled provider never
        // sends its keys: no reason to refuse the config for one.
        if (p.enabled) errors.push(`${at(["providers", name, "keys", i, "key"])}: ${bad}`);
        return;
      }
      keys.push({ ...k, key, id: k.id ?? `${name}#${i}` });
    });
    if (!p.enabled) continue;
    const { typeKnown: _typeKnown, ...rest } = p;
    if (p.type === "bedrock" && rawProvider.credential_mode === "gateway") {
      // Not accepted and ignored: whoever sets it means to stop clients using their own AWS
      // identity, which a relay that never signs cannot do.
      errors.push(
        `${
          at(["providers", name, "credential_mode"])
        }: "gateway" cannot apply to Bedrock: /bedrock/* relays the client's SigV4 signature unchanged and never signs (the unified routes sign with the gateway's AWS credentials under \`sign: true\`)`,
      );
    }
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
    providers[name] = {
      ...rest,
      keys,
      ...(emptyKeys > 0 && emptyKeys === p.keys.length ? { keys_unset: true as const } : {}),
    };
  }

  errors.push(...referenceErrors(new Set(Object.keys(providers)), parsed.routing, at));
  const requestlog = parsed.plugins.requestlog;
  const writtenLevel = getAt(tree, ["plugins", "requestlog", "level"]);
  if (
    typeof writtenLevel === "string" &&
    ![...REQUESTLOG_LEVELS, "warning"].includes(writtenLevel.toLowerCase() as "info")
  ) {
    warnings.push(
      `${
        at(["plugins", "requestlog", "level"])
      }: Unknown level "${writtenLevel}"; read as info, as Butter does (debug, info, warn, error)`,
    );
  }
  const idHeader = requestlog?.request_id_header;
  if (idHeader !== undefined && idHeader.toLowerCase() !== "x-request-id") {
    (opts.strict ? errors : warnings).push(
      `${
        at(["plugins", "requestlog", "request_id_header"])
      }: Not supported (the request id is read from and echoed in X-Request-ID)${
        opts.strict ? "" : "; ignored"
      }`,
    );
  }
  if (requestlog?.log_bodies === true) {
    warnings.push(
      `${
        at(["plugins", "requestlog", "log_bodies"])
      }: Request bodies are logged (secrets redacted, as logging.request_body); response bodies are not`,
    );
  }
  if (errors.length > 0) throw new ConfigError(source, errors);

  const aliases: Record<string, string> = {};
  for (const [alias, raw] of Object.entries(parsed.routing.aliases)) {
    aliases[alias] = aliasString(raw) ?? "";
  }
  const config: Config = {
    ...parsed,
    routing: {
      ...parsed.routing,
      aliases,
      failover: { ...parsed.routing.failover, deadline: deadlineOf(parsed, tree, providers) },
    },
    logging: butterLogging(parsed, tree.logging),
    // Butter's `plugins.metrics.per_key_metrics` when ours is not written.
    metrics: {
      ...parsed.metrics,
      per_key: isRecord(tree.metrics) && tree.metrics.per_key !== undefined
        ? parsed.metrics.per_key
        : parsed.plugins.metrics?.per_key_metrics ?? parsed.metrics.per_key,
    },
    server: {
      ...parsed.server,
      host,
      port,
      socket_mode: parseInt(parsed.server.socket_mode, 8),
      // Butter's `max_request_bytes` when ours is not written.
      max_body_bytes: rawServer.max_body_bytes === undefined
        ? butterBodyLimit(parsed.server.max_request_bytes) ?? parsed.server.max_body_bytes
        : parsed.server.max_body_bytes,
    },
    providers,
  };
  return {
    config: deepFreeze(config),
    warnings,
    source,
    ...(dialect ? { dialect } : {}),
    ...(notes.length > 0 ? { notes } : {}),
  };
}

/**
 * `logging` with Butter's `plugins.requestlog.log_bodies` / `body_max_bytes` where ours are
 * not written (Butter truncates at 1024 bytes by default).
 */
function butterLogging(parsed: ParsedConfig, raw: unknown): ParsedConfig["logging"] {
  const rl = parsed.plugins.requestlog;
  const logging = parsed.logging;
  if (rl === undefined) return logging;
  const written = isRecord(raw) ? raw : {};
  const bodies = written.request_body === undefined && rl.log_bodies !== undefined;
  return {
    ...logging,
    request_body: bodies ? rl.log_bodies === true : logging.request_body,
    request_body_max_bytes: written.request_body_max_bytes === undefined
      ? rl.body_max_bytes ?? (bodies ? 1024 : logging.request_body_max_bytes)
      : logging.request_body_max_bytes,
  };
}

/**
 * `routing.failover.deadline` as written, else its default stretched to the longest provider
 * timeout: a provider given `timeout: 300s` is waited for that long, not cut at 120 s by a
 * deadline nobody wrote.
 */
function deadlineOf(
  parsed: ParsedConfig,
  tree: Record<string, unknown>,
  providers: Record<string, ProviderConfig>,
): number {
  const routing = tree.routing;
  const failover = isRecord(routing) ? routing.failover : undefined;
  const base = parsed.routing.failover.deadline;
  if (isRecord(failover) && failover.deadline !== undefined) return base;
  return Math.max(base, ...Object.values(providers).map((p) => p.timeout));
}

/** Butter's `max_request_bytes` as a limit: negative (its "no cap") is `NO_CAP_BODY_BYTES`. */
function butterBodyLimit(bytes: number | undefined): number | undefined {
  return bytes !== undefined && bytes < 0 ? NO_CAP_BODY_BYTES : bytes;
}

/**
 * Marks a config `embeddedDefault` built. An enumerable symbol, so copies made with a
 * spread (CLI overrides) keep it, while JSON and `Object.keys` do not see it.
 */
const EMBEDDED = Symbol("pilotfish.embeddedDefault");

/**
 * The config used when no file is given: TCP 127.0.0.1:9002, the default socket, the
 * `mock` provider (for `mock/...` models only), and every preset provider whose API key
 * env var is set. Bare model names go to `openai` when it is enabled, otherwise nothing
 * serves them (a 404 naming the env vars), never a silent echo from the mock.
 */
export function embeddedDefault(env: EnvLookup): LoadedConfig {
  const providers: Record<string, unknown> = { mock: {} };
  for (const [name, preset] of Object.entries(PROVIDER_PRESETS)) {
    const key = preset.env_key ? env(preset.env_key) : undefined;
    if (key) providers[name] = { keys: [{ key }] };
  }
  const defaultProvider = EMBEDDED_DEFAULT_PROVIDER in providers ? EMBEDDED_DEFAULT_PROVIDER : "";
  const loaded = validateConfig(
    { providers, routing: { default_provider: defaultProvider } },
    env,
    "embedded default",
  );
  return { ...loaded, config: Object.freeze({ ...loaded.config, [EMBEDDED]: true }) };
}

/** True for the embedded default, CLI overrides applied or not (its 404s name env vars). */
export function isEmbeddedDefault(config: Config): boolean {
  return (config as Config & { [EMBEDDED]?: true })[EMBEDDED] === true;
}

/** Read, parse and validate a config file, or the embedded default when `path` is null. */
export async function loadConfig(
  path: string | null,
  env: EnvLookup,
  opts: LoadOptions = {},
): Promise<LoadedConfig> {
  if (path === null) return embeddedDefault(env);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new ConfigError(path, [`Cannot read file: ${readFailure(err, path)}`]);
  }
  return parseConfigText(text, env, path, opts);
}

/** Why a file could not be read, in words (Deno's messages name the syscall). */
function readFailure(err: unknown, path: string): string {
  if (err instanceof Deno.errors.NotFound) return "no such file";
  if (err instanceof Deno.errors.IsADirectory) return "it is a directory";
  if (err instanceof Deno.errors.NotCapable) {
    return `this process may not read it (missing --allow-read=${path})`;
  }
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied by the file system";
  if (err instanceof Deno.errors.InvalidData) return "it is not UTF-8 text";
  return (err as Error).message;
}

/**
 * Provider names that `routing` refers to but that are not configured. Takes the routing
 * block loosely typed so it also runs when other fields failed validation: `--check` then
 * lists every problem at once.
 */
function referenceErrors(
  known: Set<string>,
  routing: unknown,
  at: (path: readonly PropertyKey[]) => string = formatPath,
): string[] {
  const errors: string[] = [];
  if (!isRecord(routing)) return errors;
  const configured = [...known].join(", ") || "none";
  const unknown = (name: unknown) => typeof name === "string" && !known.has(name);
  if (
    typeof routing.default_provider === "string" && routing.default_provider !== "" &&
    unknown(routing.default_provider)
  ) {
    errors.push(
      `${
        at(["routing", "default_provider"])
      }: Unknown provider "${routing.default_provider}" (configured: ${configured})`,
    );
  }
  if (Array.isArray(routing.fallback)) {
    routing.fallback.forEach((name: unknown, i: number) => {
      if (unknown(name)) {
        errors.push(
          `${
            at(["routing", "fallback", i])
          }: Unknown provider "${name}" (configured: ${configured})`,
        );
      }
    });
  }
  if (isRecord(routing.models)) {
    for (const [model, route] of Object.entries(routing.models)) {
      if (!isRecord(route) || !Array.isArray(route.providers)) continue;
      route.providers.forEach((entry: unknown, i: number) => {
        const name = typeof entry === "string" ? splitTarget(entry).provider : entry;
        if (unknown(name)) {
          errors.push(
            `${
              at(["routing", "models", model, "providers", i])
            }: Unknown provider "${name}" (configured: ${configured})`,
          );
        }
      });
      if (Array.isArray(route.weights) && route.weights.length !== route.providers.length) {
        errors.push(
          `${
            at(["routing", "models", model, "weights"])
          }: Expected ${route.providers.length} weights, one per provider`,
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
        errors.push(
          `${at(["routing", "aliases", alias])}: Expected "provider/model", got "${target}"`,
        );
      } else if (unknown(target.slice(0, slash))) {
        errors.push(
          `${at(["routing", "aliases", alias])}: Unknown provider "${
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

/** Key names whose values may be credentials (`keys[0].key`, `apiKey`, `admin_token`, ...). */
const SECRET_KEY =
  /^(?:keys?|api_?key|token|password|secret|credentials?)$|[_-](?:token|password|secret)$/i;

/**
 * valibot's message, without the offending value where the path may hold a credential
 * (anything under `keys`, `apiKey`, `admin_token`, a `password`...): a key written in the wrong
 * place (`keys: "sk-..."`) must not reach stderr, a log line or the reload answer. Elsewhere the
 * value helps (`format: "xml"`, `perKey.window: "1x"`).
 */
function issueMessage(issue: v.BaseIssue<unknown>, path: readonly PropertyKey[]): string {
  const secret = path.some((p) => typeof p === "string" && SECRET_KEY.test(p));
  if (!secret || issue.input === null || typeof issue.input === "object") return issue.message;
  // A number or boolean too: an unquoted numeric token (`admin_token: 98765432109876`) is one.
  const kind = typeof issue.input === "string" ? "a string" : `a ${typeof issue.input}`;
  // Only where a string was expected: a bad number (`weight: 0`) is not cured by quoting.
  const hint = typeof issue.input === "number" && issue.type === "string"
    ? " (quote it: YAML reads digits as a number)"
    : "";
  return issue.message.replaceAll(issue.received, kind) + hint;
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

/**
 * Why `key` cannot be sent in an HTTP header (null when it can): an API key is printable
 * ASCII. Caught here, it is a config error naming the key's path; at request time it was
 * fetch's "Invalid header value" error, which quotes the value.
 */
function keyProblem(key: string): string | null {
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c > 0x20 && c < 0x7f) continue;
    const what = c === 0x0a || c === 0x0d
      ? "a line break"
      : c === 0x20 || c === 0x09
      ? "a space"
      : c < 0x20 || c === 0x7f
      ? "a control character"
      : "a non-ASCII character";
    return `Contains ${what} (at character ${
      i + 1
    }); an API key is printable ASCII without spaces (two keys in one variable? list them as two keys)`;
  }
  return null;
}

/** `keyProblem` over a providers block the schema refused (what can be read of it). */
function rawKeyErrors(
  providers: unknown,
  at: (path: readonly PropertyKey[]) => string,
): string[] {
  const out: string[] = [];
  if (!isRecord(providers)) return out;
  for (const [name, p] of Object.entries(providers)) {
    if (!isRecord(p) || switchedOff(p.enabled) || !Array.isArray(p.keys)) continue;
    p.keys.forEach((k, i) => {
      const key = isRecord(k) && typeof k.key === "string" ? k.key.trim() : "";
      const bad = key === "" ? null : keyProblem(key);
      if (bad !== null) out.push(`${at(["providers", name, "keys", i, "key"])}: ${bad}`);
    });
  }
  return out;
}

/**
 * Why `host` cannot be listened on (an IP address or a DNS name), or null. Checked here so
 * that a bad one is a config error with its key path, not Deno refusing the permission
 * flag it would go into.
 */
export function hostProblem(host: string): string | null {
  if (host.includes(":")) {
    // At least two colons (`::`, `::1`, `fe80::1%eth0`), bracketed or not, never half.
    const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
    return /^[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*(?:%[A-Za-z0-9]+)?$/.test(bare)
      ? null
      : `"${host}" is not an IPv6 address`;
  }
  // DNS labels, with `_` too: compose and Swarm service names carry it and resolve.
  return /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/
      .test(host)
    ? null
    : `"${host}" is not an IP address or a host name`;
}

/** Why a file path cannot be granted to the daemon, or null. */
/** The bytes a Unix socket path may hold (`sun_path` is 108, with its terminating NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;

/** Why `path` cannot name a Unix socket, or null. */
export function socketPathProblem(path: string): string | null {
  const bytes = new TextEncoder().encode(path).length;
  return bytes > MAX_SOCKET_PATH_BYTES
    ? `a Unix socket path holds at most ${MAX_SOCKET_PATH_BYTES} bytes; this one has ${bytes}`
    : null;
}

export function pathProblem(path: string): string | null {
  return path.includes(",")
    ? `"${path}" contains a comma, which Deno's permission flags cannot express: choose a path without one`
    : null;
}
