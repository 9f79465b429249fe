import { resolve } from "node:path";
import type { Config } from "../config/mod.ts";
// Where signing mode looks for credentials, shared so grants and lookups agree.
import {
  CREDENTIAL_ENV_VARS,
  credentialsFilePath,
  webIdentitySettings,
} from "../providers/bedrock/credentials.ts";
import { DEFAULT_ENV_KEYS, referencedEnvVars } from "../config/mod.ts";
import { appKeysEnabled, keyStorage } from "../keys/storage.ts";
import { sqliteFiles } from "../state/sqlite.ts";
import { redisHosts } from "../state/redis_url.ts";
import { breakerRedisUrl } from "../breaker/factory.ts";
import { limiterRedisUrl } from "../limits/policy.ts";
import { OTEL_ENV, OTEL_FILE_ENV } from "../telemetry/otel_env.ts";
import { PROXY_ENV } from "../net/http1.ts";
import { tracingSettings } from "../telemetry/hub.ts";
import { pluginGrants } from "../plugins/grants.ts";

/** The exact capabilities the daemon needs for one config. */
export interface Grants {
  readonly net: readonly string[];
  readonly read: readonly string[];
  readonly write: readonly string[];
  readonly env: readonly string[];
}

export interface PlanContext {
  readonly configPath: string | null;
  /** The config file's text, to find the `${VARS}` it refers to. */
  readonly configText: string | null;
  readonly cwd: string;
  /**
   * For where signing credentials live (AWS_SHARED_CREDENTIALS_FILE, HOME, the web identity
   * token file and STS endpoint). A variable that cannot be read counts as unset.
   */
  readonly env?: (name: string) => string | undefined;
}

/**
 * Env vars the daemon reads whatever the config says. `LOG_TOKENS`/`LOG_STREAM` are
 * npm:yaml's debug switches, read on every parse. The OpenTelemetry SDK's `OTEL_*` turn
 * tracing on by themselves.
 */
export const DAEMON_ENV: readonly string[] = [
  "PILOTFISH_CONFIG",
  "PORT",
  "AWS_REGION",
  "LOG_TOKENS",
  "LOG_STREAM",
  ...OTEL_ENV,
  // Upstream calls go to fetch when one is set (src/net/http1.ts).
  ...PROXY_ENV,
];

/**
 * Derive the grants a config needs: listen address and socket, each provider's host,
 * Redis, the config file (for hot reload) and the env vars it refers to. Pure.
 */
export function planGrants(config: Config, ctx: PlanContext): Grants {
  const net = new Set<string>();
  const read = new Set<string>();
  const write = new Set<string>();
  const env = new Set<string>([...DAEMON_ENV, ...DEFAULT_ENV_KEYS]);

  const s = config.server;
  if (s.tcp) net.add(s.port === 0 ? s.host : `${hostForGrant(s.host)}:${s.port}`);
  if (s.socket !== "") {
    const socket = resolve(ctx.cwd, s.socket);
    net.add(`unix:${socket}`);
    // Listening on a socket also needs read+write on its path (and removing a stale one).
    read.add(socket);
    write.add(socket);
  }
  for (const p of Object.values(config.providers)) {
    for (const url of [p.base_url, p.endpoint]) {
      const host = url ? hostPort(url) : null;
      if (host) net.add(host);
    }
  }
  const redisUrls = [
    // Keys, usage and the Responses store.
    config.state.backend === "redis" ? config.state.redis.url : null,
    // The breaker's and the limiter's, from the same choices that build them (each its own
    // block, else state's; nothing for one that is off or in memory).
    breakerRedisUrl(config),
    limiterRedisUrl(config),
    // The response cache's Redis: Butter's `cache.redis` block, else state.redis.url.
    config.cache.enabled && config.cache.backend === "redis"
      ? (config.cache.redis
        ? config.cache.redis.sentinel ?? `redis://${config.cache.redis.address}`
        : config.state.redis.url)
      : null,
  ];
  // A cluster's seed nodes, each (the nodes it announces must be among them); for Sentinel,
  // the Sentinels and the data nodes listed for them (the master it names must be one).
  for (const url of redisUrls) for (const host of url ? redisHosts(url) : []) net.add(host);
  if (config.state.path !== "") {
    // The embedded SQLite file and the files SQLite keeps beside it (WAL mode).
    const db = resolve(ctx.cwd, config.state.path);
    for (const f of [db, `${db}-wal`, `${db}-shm`, `${db}-journal`]) {
      read.add(f);
      write.add(f);
    }
  }
  if (Object.values(config.providers).some((p) => p.type === "bedrock" && p.sign === true)) {
    for (const name of CREDENTIAL_ENV_VARS) env.add(name);
    // The same lookups as providers/bedrock/credentials.ts, so what it reads is granted.
    const lookup = safeEnv(ctx.env);
    // Keys in the environment come first and are all it reads (the environment is fixed for
    // the process): no file, no token (a service user's HOME may be /nonexistent).
    const fromEnv = lookup("AWS_ACCESS_KEY_ID") !== undefined &&
      lookup("AWS_SECRET_ACCESS_KEY") !== undefined;
    const file = fromEnv ? null : credentialsFilePath(lookup);
    if (file !== null) read.add(resolve(ctx.cwd, file));
    const webIdentity = fromEnv ? null : webIdentitySettings(lookup, 0);
    if (webIdentity !== null) {
      read.add(resolve(ctx.cwd, webIdentity.tokenFile));
      const sts = hostPort(webIdentity.stsUrl);
      if (sts) net.add(sts);
    }
  }
  // App keys in the state file: that file and the siblings SQLite keeps beside it, nothing else.
  const keys = appKeysEnabled(config) ? keyStorage(config) : null;
  if (keys?.kind === "sqlite") {
    for (const f of sqliteFiles(keys.path, ctx.cwd)) {
      read.add(f);
      write.add(f);
    }
    // Butter's bbolt file under that name: read (its first bytes say it is not SQLite), never written.
    if (keys.beside !== undefined) read.add(resolve(ctx.cwd, keys.beside));
  }
  const traces = tracingSettings(config, safeEnv(ctx.env));
  const collector = traces ? hostPort(traces.url) : null;
  if (collector) net.add(collector);
  if (traces) {
    // The exporter reads the PEM files these name (a private CA, client TLS): without the
    // grant every export failed, and the SDK says nothing.
    const lookup = safeEnv(ctx.env);
    for (const name of OTEL_FILE_ENV) {
      const file = lookup(name);
      if (file !== undefined) read.add(resolve(ctx.cwd, file));
    }
  }
  const wasm = pluginGrants(config, ctx.cwd);
  for (const x of wasm.read) read.add(x);
  for (const x of wasm.write) write.add(x);
  for (const x of wasm.net) net.add(x);
  for (const x of wasm.env) env.add(x);
  if (ctx.configPath !== null) read.add(resolve(ctx.cwd, ctx.configPath));
  if (ctx.configText !== null) { for (const v of referencedEnvVars(ctx.configText)) env.add(v); }
  return { net: sorted(net), read: sorted(read), write: sorted(write), env: sorted(env) };
}

/**
 * What `--probe` needs: connect to the daemon's socket (Deno wants read, write and net on
 * its path) or TCP port (loopback for a wildcard listen address), read the config to find
 * them, and its `${VARS}`. No provider hosts, no credentials.
 */
export function planProbeGrants(s: Config["server"], ctx: PlanContext): Grants {
  const net = new Set<string>();
  const read = new Set<string>();
  const write = new Set<string>();
  const env = new Set<string>([...DAEMON_ENV, ...DEFAULT_ENV_KEYS]);
  if (s.socket !== "") {
    const socket = resolve(ctx.cwd, s.socket);
    net.add(`unix:${socket}`);
    read.add(socket);
    write.add(socket);
  }
  if (s.tcp) net.add(`${hostForGrant(probeHost(s.host))}:${s.port}`);
  if (ctx.configPath !== null) read.add(resolve(ctx.cwd, ctx.configPath));
  if (ctx.configText !== null) { for (const v of referencedEnvVars(ctx.configText)) env.add(v); }
  return { net: sorted(net), read: sorted(read), write: sorted(write), env: sorted(env) };
}

/** Where a client reaches a daemon listening on `host`: a wildcard address means loopback. */
export function probeHost(host: string): string {
  if (host === "" || host === "0.0.0.0") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "::1";
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** Deno flags granting exactly `grants`. */
export function grantsToFlags(grants: Grants): string[] {
  const flags: string[] = [];
  const add = (name: string, values: readonly string[]) => {
    if (values.length > 0) flags.push(`--allow-${name}=${values.join(",")}`);
  };
  add("net", grants.net);
  add("read", grants.read);
  add("write", grants.write);
  add("env", grants.env);
  return flags;
}

/** Quote for POSIX sh (used by scripts/start.sh). */
export function shellQuote(arg: string): string {
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

function hostForGrant(host: string): string {
  if (host === "" || host === "::") return "0.0.0.0";
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

const DEFAULT_PORTS: Record<string, string> = {
  "http:": "80",
  "https:": "443",
  "redis:": "6379",
  "rediss:": "6379",
};

function hostPort(url: string): string | null {
  try {
    const u = new URL(url);
    const port = u.port || DEFAULT_PORTS[u.protocol];
    return port ? `${u.hostname}:${port}` : null;
  } catch {
    return null;
  }
}

function safeEnv(
  env: ((name: string) => string | undefined) | undefined,
): (name: string) => string | undefined {
  return (name) => {
    try {
      const v = env?.(name)?.trim();
      return v === "" ? undefined : v;
    } catch {
      return undefined;
    }
  };
}

function sorted(set: Set<string>): string[] {
  return [...set].sort();
}
