/**
 * llm-gateway's `gateway.yaml`, read as a dialect: its tree is translated into Pilotfish's
 * native shape before validation, and every native key remembers the path the user wrote,
 * so problems are reported as `providers[1].baseUrl: ...`, not under the translated name.
 *
 * Meaning kept (llm-gateway README):
 * - `providers` is a list; `name` becomes the provider's key, `apiKey` its one key,
 *   `baseUrl`/`models`/`timeout` the native fields;
 * - `priority` (lower first, list order on ties) orders the providers that serve a model
 *   and picks the default provider when `routing.defaultProvider` is absent; without a
 *   `fallbackChain` it is also the order tried on failure;
 * - `routing.fallbackChain` is the provider order tried on failure: each listed model
 *   routes to its providers, then the rest of the chain; a model no provider lists goes
 *   to the default provider, then the chain (`routing.fallback`);
 * - `maxRetries`: retries on that provider before moving on (`providers.<p>.max_retries`);
 * - `routing.modelMappings` are aliases (`{provider, model}`);
 * - camelCase keys of `server`, `server.cors`, `cache`, `rateLimit` and `logging` map to
 *   their snake_case native keys; a file with a `providers` list and no `server.port`
 *   listens on 8080, as llm-gateway.
 */
import { formatPath, type KeyPath, PathOrigins } from "../paths.ts";
import { PROVIDER_PRESETS } from "../presets.ts";

export interface DialectResult {
  readonly dialect: "llm-gateway";
  /** The tree in Pilotfish's native shape. */
  readonly tree: Record<string, unknown>;
  readonly origins: PathOrigins;
  /** Problems only the dialect can see (a provider without a name, ...), as user paths. */
  readonly errors: readonly string[];
  readonly warnings: readonly string[];
}

type Tree = Record<string, unknown>;

/** How one mapping's keys translate; `children` by native key. */
interface Spec {
  readonly rename?: Readonly<Record<string, string>>;
  readonly children?: Readonly<Record<string, Spec>>;
}

const SPEC: Spec = {
  rename: { rateLimit: "rate_limit" },
  children: {
    server: {
      rename: { readTimeout: "read_timeout", writeTimeout: "write_timeout" },
      children: {
        cors: {
          rename: {
            allowedOrigins: "allowed_origins",
            allowedMethods: "allowed_methods",
            allowedHeaders: "allowed_headers",
            exposedHeaders: "exposed_headers",
            allowCredentials: "allow_credentials",
            maxAge: "max_age",
          },
        },
      },
    },
    cache: { rename: { maxSize: "max_size_mb", maxEntries: "max_entries" } },
    rate_limit: {
      rename: { perKey: "per_key", perModel: "per_model", perProvider: "per_provider" },
    },
    logging: {
      rename: { requestBody: "request_body", requestBodyMaxBytes: "request_body_max_bytes" },
    },
    routing: { rename: { defaultProvider: "default_provider", modelMappings: "aliases" } },
  },
};

/** llm-gateway's default port. */
const LLM_GATEWAY_PORT = 8080;

/** Keys only llm-gateway writes; any of them (or a `providers` list) selects the dialect. */
const MARKERS: readonly (readonly string[])[] = [
  ["routing", "defaultProvider"],
  ["routing", "modelMappings"],
  ["routing", "fallbackChain"],
  ["server", "readTimeout"],
  ["server", "writeTimeout"],
  ["server", "cors", "allowedOrigins"],
  ["cache", "maxSize"],
  ["rateLimit"],
  ["logging", "requestBody"],
];

/** The markers of its routing and server blocks: only its own file has them. */
const OWN_FILE_MARKERS = MARKERS.filter(([block]) => block === "routing" || block === "server");

function has(tree: Tree, path: readonly string[]): boolean {
  let node: unknown = tree;
  for (const key of path) {
    if (!isRecord(node) || !(key in node)) return false;
    node = node[key];
  }
  return true;
}

export function isLlmGatewayConfig(tree: Tree): boolean {
  if (Array.isArray(tree.providers)) return true;
  return MARKERS.some((path) => has(tree, path));
}

const PROVIDER_NAME_RE = /^[a-z0-9][a-z0-9_-]*$/;

interface ListedProvider {
  readonly name: string;
  readonly index: number;
  readonly priority: number;
  readonly models: readonly string[];
}

export function fromLlmGateway(input: Tree): DialectResult {
  const origins = new PathOrigins();
  const errors: string[] = [];
  const warnings: string[] = [];
  const problem = (path: KeyPath, message: string) =>
    errors.push(`${formatPath(path)}: ${message}`);

  const tree = translate(input, [], [], SPEC, origins) as Tree;
  // llm-gateway listens on 8080 unless told otherwise (its README's clients call
  // localhost:8080); `PORT` and `--port` still win over the file. Only for its own file (a
  // `providers` list, or its routing or server keys): one of ours that borrows a key of a
  // block both read (`cache.maxSize`, `rateLimit`, `logging.requestBody`) keeps ours.
  if (Array.isArray(input.providers) || OWN_FILE_MARKERS.some((path) => has(input, path))) {
    if (tree.server === undefined) tree.server = {};
    if (isRecord(tree.server) && tree.server.port === undefined) {
      tree.server.port = LLM_GATEWAY_PORT;
    }
  }

  // providers: a list -> a map keyed by name.
  const listed: ListedProvider[] = [];
  if (Array.isArray(input.providers)) {
    const providers: Tree = {};
    input.providers.forEach((entry: unknown, index: number) => {
      const at: KeyPath = ["providers", index];
      if (!isRecord(entry)) {
        problem(at, "Expected a mapping with name, apiKey, baseUrl, models, \u2026");
        return;
      }
      const name = entry.name;
      if (typeof name !== "string" || name.trim() === "") {
        problem([...at, "name"], "Required: the provider's name (e.g. openai)");
        return;
      }
      if (!PROVIDER_NAME_RE.test(name)) {
        problem([...at, "name"], `Provider names are lowercase [a-z0-9_-], got "${name}"`);
        return;
      }
      if (name in providers) {
        problem([...at, "name"], `Duplicate provider "${name}"`);
        return;
      }
      const native: Tree = {};
      const base: KeyPath = ["providers", name];
      origins.set(base, at);
      // Named as the user would write them even when absent ("baseUrl: Required ...").
      origins.set([...base, "base_url"], [...at, "baseUrl"]);
      origins.set([...base, "keys"], [...at, "apiKey"]);
      let priority = Number.POSITIVE_INFINITY;
      for (const [key, value] of Object.entries(entry)) {
        const user: KeyPath = [...at, key];
        switch (key) {
          case "name":
            break;
          case "apiKey":
            native.keys = [{ key: value }];
            origins.set([...base, "keys"], user);
            origins.set([...base, "keys", 0], user);
            origins.set([...base, "keys", 0, "key"], user);
            break;
          case "baseUrl":
            native.base_url = value;
            origins.set([...base, "base_url"], user);
            break;
          case "maxRetries":
            native.max_retries = value;
            origins.set([...base, "max_retries"], user);
            break;
          case "priority": {
            const n = finiteNumber(value);
            if (n === null) problem(user, "Expected a number (lower is tried first)");
            else priority = n;
            break;
          }
          default:
            // models, timeout and any native key keep their name.
            native[key] = value;
            origins.set([...base, key], user);
        }
      }
      providers[name] = native;
      const models = Array.isArray(entry.models)
        ? entry.models.filter((m): m is string => typeof m === "string")
        : [];
      listed.push({ name, index, priority, models });
    });
    tree.providers = providers;
  }

  // Provider order: priority (lower first), list order on ties.
  const order = listed.toSorted((a, b) => a.priority - b.priority || a.index - b.index);
  const prioritised = listed.some((p) => Number.isFinite(p.priority));
  const known = new Set(listed.map((p) => p.name));

  const rawRouting = isRecord(input.routing) ? input.routing : {};
  const routing = isRecord(tree.routing) ? tree.routing : {};
  let chain: string[] = [];
  const chainPath = (i: number): KeyPath => ["routing", "fallbackChain", i];
  if ("fallbackChain" in rawRouting) {
    delete routing.fallbackChain;
    const raw = rawRouting.fallbackChain;
    if (!Array.isArray(raw)) {
      problem(["routing", "fallbackChain"], "Expected a list of provider names");
    } else {
      raw.forEach((name: unknown, i: number) => {
        if (typeof name !== "string") problem(chainPath(i), "Expected a provider name");
        else if (listed.length > 0 && !known.has(name)) {
          // llm-gateway's own reference config chains to a provider it does not list: a
          // known provider that is not configured is skipped; anything else is a typo.
          const configured = `(configured: ${[...known].join(", ") || "none"})`;
          if (name in PROVIDER_PRESETS) {
            warnings.push(
              `${
                formatPath(chainPath(i))
              }: Provider "${name}" is not configured; skipped ${configured}`,
            );
          } else problem(chainPath(i), `Unknown provider "${name}" ${configured}`);
        } else if (!chain.includes(name)) chain.push(name);
      });
    }
  } else if (prioritised) {
    chain = order.map((p) => p.name);
  }

  // The default provider: as written, else the first by priority.
  if (routing.default_provider === undefined && order.length > 0) {
    routing.default_provider = order[0]!.name;
    origins.set(["routing", "default_provider"], ["providers", order[0]!.index, "name"]);
  }

  // Each listed model routes to the providers listing it (by priority), then the chain.
  const models: Tree = isRecord(routing.models) ? routing.models : {};
  const seen = new Set(Object.keys(models));
  for (const p of order) {
    p.models.forEach((model, j) => {
      if (seen.has(model)) return;
      seen.add(model);
      const owners = order.filter((o) => o.models.includes(model)).map((o) => o.name);
      const providers = [...owners, ...chain.filter((n) => !owners.includes(n))];
      models[model] = { providers, strategy: "priority" };
      origins.set(["routing", "models", model], ["providers", p.index, "models", j]);
    });
  }
  if (Object.keys(models).length > 0) routing.models = models;
  // Models no provider lists go to the default provider, then along the chain.
  if (chain.length > 0 && routing.fallback === undefined) {
    routing.fallback = chain;
    origins.set(["routing", "fallback"], ["routing", "fallbackChain"]);
  }

  if (Object.keys(routing).length > 0) tree.routing = routing;

  return { dialect: "llm-gateway", tree, origins, errors, warnings };
}

/** Rename keys by `spec`, recording where each native key came from. Lists are copied. */
function translate(
  node: unknown,
  user: KeyPath,
  native: KeyPath,
  spec: Spec | undefined,
  origins: PathOrigins,
): unknown {
  if (!isRecord(node) || spec === undefined) return node;
  const out: Tree = {};
  for (const [key, value] of Object.entries(node)) {
    const nativeKey = spec.rename?.[key] ?? key;
    const n = [...native, nativeKey];
    const u = [...user, key];
    if (nativeKey !== key) origins.set(n, u);
    out[nativeKey] = translate(value, u, n, spec.children?.[nativeKey], origins);
  }
  return out;
}

/** Numbers, or numeric strings from `${ENV}` substitution. */
function finiteNumber(value: unknown): number | null {
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  return typeof n === "number" && Number.isFinite(n) ? n : null;
}

function isRecord(v: unknown): v is Tree {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
