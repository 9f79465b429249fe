/**
 * The Redis URLs every Redis-backed feature takes, parsed once for the link, the permission
 * planner and the redactor: one Redis, a Cluster's seed nodes, or a Sentinel deployment.
 *
 * - `redis[s]://[[user][:password]@]host[:port][/db]`
 * - `redis[s]+cluster://[[user][:password]@]host:port,host:port`
 * - `redis[s]+sentinel://[[user][:password]@]host[:port],host[:port]/name[/db][?options]`:
 *   the Sentinels (port 26379 by default) watching the master group `name`, the grammar of
 *   python's Redis-Sentinel-Url and Prefect. The credentials and `db` are the data nodes';
 *   options: `sentinel_username`, `sentinel_password` (the Sentinels' own AUTH) and
 *   `data_nodes=host:port,...` (the masters and replicas Sentinel may name: the permission
 *   planner grants them). TLS (`rediss+`) covers the Sentinels and the data nodes.
 * @module
 */

/** A Sentinel deployment as a `redis[s]+sentinel://` URL names it. */
export interface SentinelTarget {
  /** The master group's name (`sentinel monitor <name> ...`). */
  readonly name: string;
  readonly nodes: readonly { readonly host: string; readonly port: number }[];
  readonly tls: boolean;
  readonly username?: string;
  readonly password?: string;
  readonly sentinelUsername?: string;
  readonly sentinelPassword?: string;
  readonly db?: number;
  /** `host:port` of every data node Sentinel may hand out (granted --allow-net). */
  readonly dataNodes: readonly string[];
}

/**
 * A feature's key prefix on the Redis at `url`. On a cluster every key of the feature shares
 * one hash slot (`pilotfish:keys:` becomes `pilotfish:{keys}:`): its scripts touch several
 * keys, and a cluster refuses a script across slots. On one Redis or Sentinel it is as given,
 * so what is stored there stays where it was.
 */
export function slottedPrefix(url: string, prefix: string): string {
  if (parseRedisTarget(url)?.cluster == null) return prefix;
  return prefix.replace(/^(.*?)([^:{}]+):$/, "$1{$2}:");
}

/** The seed nodes of a `redis[s]+cluster://` URL (null for one Redis). */
export interface RedisTarget {
  readonly cluster: readonly string[] | null;
  readonly url: string;
  /** Set for a `redis[s]+sentinel://` URL (then `cluster` is null). */
  readonly sentinel?: SentinelTarget;
}

export const SENTINEL_PORT = 26379;
const SENTINEL_OPTIONS = new Set(["sentinel_username", "sentinel_password", "data_nodes"]);

/** One Redis, a cluster's seed nodes or a Sentinel deployment; null for what is none. */
export function parseRedisTarget(url: string): RedisTarget | null {
  const m = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?([^/?#]+)\/?$/.exec(url);
  if (m) {
    const [, scheme, auth, hosts] = m as unknown as [string, string, string | undefined, string];
    const nodes = hosts.split(",").map((h) => h.trim()).filter((h) => h !== "");
    const parsed = nodes.map((h) => URL.parse(`${scheme}://${auth ? `${auth}@` : ""}${h}`));
    if (nodes.length === 0 || parsed.some((u) => u === null || u.hostname === "")) return null;
    return { cluster: parsed.map((u) => u!.href.replace(/\/$/, "")), url };
  }
  if (/^rediss?\+sentinel:/.test(url)) {
    const sentinel = parseSentinel(url);
    return sentinel === null ? null : { cluster: null, url, sentinel };
  }
  return /^rediss?:$/.test(URL.parse(url)?.protocol ?? "") ? { cluster: null, url } : null;
}

/** Why a `redis[s]+sentinel://` URL is refused, or null when it is well formed. */
export function sentinelUrlProblem(url: string): string | null {
  const m = /^(rediss?)\+sentinel:\/\/(?:([^@/]*)@)?([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/.exec(url);
  if (!m) return "Must look like redis+sentinel://host:26379,host:26379/mastername";
  const [, , , hosts, path, query] = m as unknown as (string | undefined)[];
  const nodes = (hosts ?? "").split(",").filter((h) => h.trim() !== "");
  if (nodes.length === 0) return "List at least one Sentinel (host:port)";
  if (nodes.some((h) => hostAndPort(h, SENTINEL_PORT) === null)) {
    return "Each Sentinel must be host or host:port";
  }
  const parts = (path ?? "").split("/").filter((p) => p !== "");
  if (parts.length === 0) return "Name the master group after the Sentinels: \u2026/mymaster";
  if (parts.length > 2 || (parts[1] !== undefined && !/^\d+$/.test(parts[1]))) {
    return "The path is /mastername or /mastername/db";
  }
  const params = queryParams(query ?? "");
  for (const key of params.keys()) {
    if (!SENTINEL_OPTIONS.has(key)) {
      return `Unknown option ${key} (known: ${[...SENTINEL_OPTIONS].join(", ")})`;
    }
  }
  const data = params.get("data_nodes");
  if (data !== undefined && data.split(",").some((h) => hostAndPort(h, 6379) === null)) {
    return "data_nodes lists host:port, comma separated";
  }
  return null;
}

function parseSentinel(url: string): SentinelTarget | null {
  if (sentinelUrlProblem(url) !== null) return null;
  const m = /^(rediss?)\+sentinel:\/\/(?:([^@/]*)@)?([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/.exec(url)!;
  const [, scheme, auth, hosts, path, query] = m as unknown as (string | undefined)[];
  const [name, db] = (path ?? "").split("/").filter((p) => p !== "") as [string, string?];
  const params = queryParams(query ?? "");
  const [user, pass] = splitAuth(auth);
  const sentinelUser = params.get("sentinel_username") ?? "";
  const sentinelPass = params.get("sentinel_password") ?? "";
  return {
    name: decodeURIComponent(name),
    nodes: hosts!.split(",").filter((h) => h.trim() !== "").map((h) =>
      hostAndPort(h, SENTINEL_PORT)!
    ),
    tls: scheme === "rediss",
    ...(user !== "" ? { username: user } : {}),
    ...(pass !== "" ? { password: pass } : {}),
    ...(sentinelUser !== "" ? { sentinelUsername: sentinelUser } : {}),
    ...(sentinelPass !== "" ? { sentinelPassword: sentinelPass } : {}),
    ...(db !== undefined ? { db: Number(db) } : {}),
    dataNodes: (params.get("data_nodes") ?? "").split(",").filter((h) => h.trim() !== "").map(
      (h) => {
        const n = hostAndPort(h, 6379)!;
        return `${n.host.includes(":") ? `[${n.host}]` : n.host}:${n.port}`;
      },
    ),
  };
}

/** The settings of a Sentinel deployment, as the config's `sentinel:` block gives them. */
export interface SentinelSettings {
  readonly name: string;
  readonly nodes: readonly string[];
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly sentinel_username?: string | undefined;
  readonly sentinel_password?: string | undefined;
  readonly db?: number | undefined;
  readonly tls?: boolean | undefined;
  readonly data_nodes?: readonly string[] | undefined;
}

/** The `redis[s]+sentinel://` URL of a config `sentinel:` block (the reverse of the parse). */
export function sentinelUrl(s: SentinelSettings): string {
  const enc = encodeURIComponent;
  const auth = s.username || s.password
    ? `${enc(s.username ?? "")}${s.password ? `:${enc(s.password)}` : ""}@`
    : "";
  const params: string[] = [];
  if (s.sentinel_username) params.push(`sentinel_username=${enc(s.sentinel_username)}`);
  if (s.sentinel_password) params.push(`sentinel_password=${enc(s.sentinel_password)}`);
  if (s.data_nodes && s.data_nodes.length > 0) {
    params.push(`data_nodes=${enc(s.data_nodes.join(",")).replaceAll("%2C", ",")}`);
  }
  const query = params.length > 0 ? `?${params.join("&").replaceAll("%3A", ":")}` : "";
  const db = s.db !== undefined ? `/${s.db}` : "";
  return `${s.tls ? "rediss" : "redis"}+sentinel://${auth}${s.nodes.join(",")}/${
    enc(s.name)
  }${db}${query}`;
}

/**
 * `host:port` of every host a Redis URL makes the daemon connect to: the one server, each
 * cluster seed, or the Sentinels and the data nodes listed for them. Empty for a bad URL.
 */
export function redisHosts(url: string): string[] {
  const target = parseRedisTarget(url);
  if (target === null) return [];
  if (target.sentinel) {
    const s = target.sentinel;
    return [
      ...s.nodes.map((n) => `${n.host.includes(":") ? `[${n.host}]` : n.host}:${n.port}`),
      ...s.dataNodes,
    ];
  }
  const urls = target.cluster ?? [url];
  return urls.flatMap((u) => {
    const p = URL.parse(u);
    return p === null || p.hostname === "" ? [] : [`${p.hostname}:${p.port || "6379"}`];
  });
}

/** The passwords a Redis URL carries (decoded), for the redactor. */
export function redisUrlSecrets(url: string): string[] {
  const target = parseRedisTarget(url);
  if (target?.sentinel) {
    return [target.sentinel.password, target.sentinel.sentinelPassword].filter(
      (p): p is string => p !== undefined,
    );
  }
  // A cluster URL (`redis+cluster://auth@h:p,h:p`) does not parse as one URL: its first node does.
  const parsed = URL.parse(url.replace(/^(rediss?)\+cluster:/, "$1:").replace(/,.*$/, ""));
  if (!parsed?.password) return [];
  try {
    return [decodeURIComponent(parsed.password)];
  } catch {
    return [parsed.password];
  }
}

/** `host`, `host:port` or `[v6]:port`; null when it is not one. */
function hostAndPort(text: string, defaultPort: number): { host: string; port: number } | null {
  const m = /^\s*(\[[0-9a-fA-F:.]+\]|[^\s:/@,[\]]+)(?::(\d{1,5}))?\s*$/.exec(text);
  if (!m) return null;
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return { host: (m[1] as string).replace(/^\[(.*)\]$/, "$1"), port };
}

/**
 * A query's options, percent-decoded only: `URLSearchParams` reads `+` as a space (form
 * encoding), which would change a hand-written `sentinel_password=ab+c`. The first of a
 * repeated key wins, as with `URLSearchParams.get`.
 */
function queryParams(query: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const i = pair.indexOf("=");
    const [key, value] = i < 0 ? [pair, ""] : [pair.slice(0, i), pair.slice(i + 1)];
    const k = decode(key);
    if (!params.has(k)) params.set(k, decode(value));
  }
  return params;
}

/** Percent-decoded, or as written when it is not valid percent-encoding. */
function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function splitAuth(auth: string | undefined): [string, string] {
  if (!auth) return ["", ""];
  const i = auth.indexOf(":");
  return i < 0 ? [decode(auth), ""] : [decode(auth.slice(0, i)), decode(auth.slice(i + 1))];
}
