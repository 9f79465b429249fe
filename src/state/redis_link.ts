/**
 * One reusable link to Redis: a command connection and a subscriber connection, kept alive
 * in the background, that never makes a caller wait longer than its command deadline.
 * Features do not create one each: they open a member of the process's link to their Redis
 * (`redis_pool.ts`).
 *
 * - Connects at once and, after losing the connection, reconnects with jittered exponential
 *   backoff on a fresh pair (node-redis' own reconnect loop is off: it would resubscribe
 *   without letting the owner resynchronise).
 * - A heartbeat PINGs both connections while ready: a Redis that vanished without FIN/RST
 *   (partition, hung server) would otherwise go unnoticed on an idle sidecar, and its
 *   subscriber would silently miss the fleet's messages.
 * - Every command has a deadline; a command that misses it, or any connection-level error,
 *   drops the pair (it counts as an outage) and the background loop reconnects.
 * - Scripts run by EVALSHA, falling back to EVAL when Redis does not know them (restart,
 *   failover, SCRIPT FLUSH).
 * - Subscriptions are restored on every new pair, then the owners' `onConnect` hooks run
 *   (e.g. resynchronise a local view), and only then does the link report `ready()`.
 *
 * While not ready, `command`/`eval`/`publish` reject with `StateUnavailable` at once.
 *
 * **Redis Cluster**: a `redis+cluster://host:port,host:port` URL (`rediss+cluster://` for TLS)
 * lists the seed nodes; commands go to the node that owns their key (a script's, its first
 * key's), so a script's keys must share one hash tag (`{...}`) and one slot. Pub/sub works as
 * on one Redis (cluster-wide). A node lost counts as an outage of the whole link.
 *
 * **Redis Sentinel**: a `redis+sentinel://host:26379,host:26379/mastername` URL (see
 * `redis_url.ts`) names the Sentinels; each pair connects to the master they name (checked
 * with ROLE). A change of master ends the pair: the link reconnects to the new master,
 * resubscribes and runs the hooks, as after any outage; a Sentinel lost is not one (the pair
 * moves its Sentinel connections to another). A master the sandbox does not let the
 * daemon reach is logged once, naming it and the `data_nodes` key that grants it.
 * @module
 */
import { createHash } from "node:crypto";
import type { createClient, createCluster, createSentinel } from "@redis/client";
import type { Logger } from "../telemetry/mod.ts";
import { StateCommandError, type StateReply, StateUnavailable } from "./store.ts";
import { parseRedisTarget, type SentinelTarget } from "./redis_url.ts";

/**
 * node-redis, loaded by the first link that connects: a sidecar without Redis never pays for
 * it. Its core package, not `redis`: that one adds the Bloom, JSON, Search and TimeSeries
 * modules, which attach hundreds of commands to every client (a Redis-configured daemon
 * started at 147 MiB resident with them, 118 MiB without).
 */
let redis: typeof import("@redis/client") | null = null;

/** Whether `err` is a Redis server's error reply (only a loaded client can produce one). */
function isErrorReply(err: unknown): err is Error {
  return redis !== null && err instanceof redis.ErrorReply;
}

/** A Lua script with its SHA1, so it can be sent by EVALSHA. */
export interface LuaScript {
  readonly src: string;
  readonly sha: string;
}

export function luaScript(src: string): LuaScript {
  return { src, sha: createHash("sha1").update(src).digest("hex") };
}

/** The timers the link runs on (deadlines, heartbeat, backoff); tests inject their own. */
export interface Timers {
  /** Returns a handle that only `clearTimeout` looks at. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface RedisLinkOptions {
  /**
   * `redis[s]://[[user][:password]@]host[:port][/db]`, a cluster's seed nodes:
   * `redis[s]+cluster://[[user][:password]@]host:port,host:port`, or Sentinels:
   * `redis[s]+sentinel://[[user][:password]@]host[:port],.../mastername[/db][?options]`.
   */
  url: string;
  /** Overrides the URL's password (llm-proxy's `redis.password`); empty means none. */
  password?: string;
  /** Overrides the URL's database (llm-proxy's `redis.db`). */
  db?: number;
  /** Who uses the link: the prefix of its log lines and of the Redis client name. */
  name: string;
  logger: Logger;
  /** Deadline of one command (default 500 ms). */
  commandTimeoutMs?: number;
  /** PING interval while ready (default 5 s). */
  heartbeatMs?: number;
  /** TCP connect deadline of one attempt (default 1 s). */
  connectTimeoutMs?: number;
  /** Deadline of a whole (re)connection: connect, resubscribe, `onConnect` hooks (3 s). */
  attemptTimeoutMs?: number;
  /** Reconnect delays: `minMs * 2^n` capped at `maxMs`, each jittered to 50-100 %. */
  backoff?: { minMs: number; maxMs: number };
  timers?: Timers;
  /** Jitter source in [0, 1). */
  random?: () => number;
}

/** Commands bound to a connection: the link's current one, or the pair a hook syncs. */
export interface RedisCommands {
  /** One command, e.g. `["GET", key]`. */
  command(args: readonly string[]): Promise<StateReply>;
  /** EVALSHA, or EVAL when Redis does not know the script. */
  eval(
    script: LuaScript,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<StateReply>;
}

/** A link as `redis_pool.ts` shares it. */
export interface PoolableLink extends RedisLink {
  /**
   * Commands on the ready pair as a hook's session has them: raw errors, and a failure is not
   * an outage of the link (a member's resync that times out fails that member, not the pair).
   * Null while not ready; its calls reject once that pair is gone.
   */
  liveSession(): RedisCommands | null;
}

export interface RedisLink extends RedisCommands {
  /** Connected, subscriptions restored and every `onConnect` hook done. */
  ready(): boolean;
  /** Called on every transition of `ready()`. Returns a function that stops the calls. */
  onStateChange(cb: (ready: boolean) => void): () => void;
  /**
   * Run `hook` on every new pair before the link turns ready (e.g. write back and reload
   * state). Its commands go over that pair; if it throws or the attempt's deadline passes,
   * the pair is dropped and retried with backoff. Register it right after creating the link
   * to cover the first connection. Returns a function that removes it.
   */
  onConnect(hook: (session: RedisCommands) => Promise<void>): () => void;
  publish(channel: string, message: string): Promise<void>;
  /**
   * Receive the channel's messages, now and after every reconnection (messages published
   * while disconnected are lost). Resolves once subscribed, or at once while disconnected.
   */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

const DEFAULTS = {
  commandTimeoutMs: 500,
  heartbeatMs: 5_000,
  connectTimeoutMs: 1_000,
  attemptTimeoutMs: 3_000,
  backoff: { minMs: 100, maxMs: 2_000 },
};
/** Bounds memory if Redis stalls under a burst; beyond it calls fail fast. */
const QUEUE_MAX = 10_000;
const QUEUE_FULL = "The queue is full";
/**
 * Error replies that mean this server cannot serve now (not that the command is wrong): they
 * count as an outage, like a timeout. Anything else is the caller's `StateCommandError`.
 */
const SERVER_UNAVAILABLE =
  /^(LOADING|READONLY|MASTERDOWN|BUSY|CLUSTERDOWN|TRYAGAIN|NOAUTH|WRONGPASS|OOM|MISCONF|NOREPLICAS)\b/;

const REAL_TIMERS: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout> | undefined),
};

/** What the link needs of a connection: one Redis (node-redis client) or a whole cluster. */
interface Client {
  connect(): Promise<unknown>;
  /** `args[0]` is the command; a cluster routes by `key` (random node without one). */
  send(args: string[], key?: string): Promise<unknown>;
  ping(): Promise<unknown>;
  subscribe(channel: string, cb: (message: string) => void): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  close(): Promise<unknown>;
  /** Tear down now; a teardown that finishes later returns when it has (close() waits). */
  destroy(): void | Promise<unknown>;
  on(event: "error" | "terminated", cb: (err: unknown) => void): void;
  duplicate(): Client;
}

export { parseRedisTarget, type RedisTarget } from "./redis_url.ts";

function singleClient(c: ReturnType<typeof createClient>): Client {
  return {
    connect: () => c.connect(),
    send: (args) => c.sendCommand(args),
    ping: () => c.ping(),
    subscribe: (channel, cb) => c.subscribe(channel, cb),
    unsubscribe: (channel) => c.unsubscribe(channel),
    close: () => c.close(),
    destroy: () => c.destroy(),
    on: (event, cb) => void c.on(event, cb),
    duplicate: () => singleClient(c.duplicate()),
  };
}

function clusterClient(c: ReturnType<typeof createCluster>): Client {
  return {
    connect: () => c.connect(),
    send: (args, key) => c.sendCommand(key, false, args),
    ping: () => c.sendCommand(undefined, true, ["PING"]),
    subscribe: (channel, cb) => c.subscribe(channel, cb),
    unsubscribe: (channel) => c.unsubscribe(channel),
    close: () => c.close(),
    destroy: () => c.destroy(),
    // A cluster has no 'terminated': a node whose socket is gone (node-redis does not
    // reconnect it: reconnectStrategy is off) is the link's outage.
    on: (event, cb) => {
      if (event === "error") c.on("error", cb);
      else {
        c.on("node-disconnect", () => cb(new Error("Redis Cluster: a node disconnected")));
        c.on("node-error", (err: unknown) => cb(err));
      }
    },
    duplicate: () => clusterClient(c.duplicate()),
  };
}

interface RedisNode {
  host: string;
  port: number;
}

/**
 * The master the last `+switch-master` named, for a while: the Sentinel a new pair asks may
 * not have heard of the failover yet (Sentinels tell each other every 2 s) and name the old
 * master, which keeps answering as one until it is reconfigured (up to 10 s later).
 */
interface Announced {
  master: RedisNode | null;
  until: number;
}
const ANNOUNCED_MS = 10_000;

/** How the `+switch-master` watcher moves to another Sentinel, and says so. */
interface WatchOptions {
  /** The command deadline, for its SENTINEL and SUBSCRIBE calls. */
  deadline<T>(p: Promise<T>): Promise<T>;
  timers: Timers;
  /** Pause before trying the Sentinels again when none answered. */
  retryMs: number;
  note(level: "info" | "warn", message: string, err?: unknown): void;
}

/** A Sentinel the watcher moved to names another master: the pair's end. */
class MasterMoved extends Error {}

/**
 * A Sentinel-managed master: node-redis' sentinel client asks the Sentinels for the master,
 * listens to their announcements and sends the commands there (its sockets never reconnect:
 * no `reconnectStrategy`). Any change of master is this pair's end ('terminated'), so the
 * link reconnects and resynchronises on the new master like after any outage. The heartbeat
 * is ROLE, not PING: a master demoted under the pair ends it even if no announcement came.
 * `duplicate()` is the subscriber: a plain connection to the master found, with its own PING.
 *
 * Losing a Sentinel is not the pair's end (the master still serves): node-redis moves its own
 * connection to another, and the `+switch-master` watcher re-attaches to the next configured
 * Sentinel that answers, first checking that it names the same master (a failover announced
 * while it was away ends the pair then).
 */
function sentinelClient(
  s: ReturnType<typeof createSentinel>,
  st: SentinelTarget,
  announced: Announced,
  subscriber: (master: RedisNode) => Client,
  watcher: (sentinel: RedisNode) => Client,
  rewatch: WatchOptions,
): Client {
  const name = st.name;
  let connecting: Promise<RedisNode> | null = null;
  let watch: Client | null = null;
  /** The master this pair serves from, once connected. */
  let serving: RedisNode | null = null;
  let retry: unknown;
  let destroyed = false;
  const ended: ((err: unknown) => void)[] = [];
  const end = (err: unknown) => {
    for (const cb of ended) cb(err);
  };
  const onSwitch = (message: string) => {
    // `<name> <old ip> <old port> <new ip> <new port>`
    const [group, , , host, port] = message.split(" ");
    if (group !== name) return;
    if (host !== undefined && port !== undefined) {
      announced.master = { host, port: Number(port) };
      announced.until = Date.now() + ANNOUNCED_MS;
    }
    end(new Error("Redis Sentinel: the master changed"));
  };
  /**
   * Watch `sentinel` for `+switch-master`. With `check`, first ask it for the master: one it
   * names other than `check` means a failover went by unheard, and ends the pair. (A change in
   * the round trip between that answer and SUBSCRIBE is left to the ROLE heartbeat.)
   */
  const listen = async (sentinel: RedisNode, check: RedisNode | null): Promise<void> => {
    const w = watch = watcher(sentinel);
    let armed = false;
    const gone = (err: unknown) => {
      if (armed && watch === w && !destroyed) void moveWatch(sentinel, err);
    };
    w.on("error", gone);
    w.on("terminated", gone);
    try {
      await w.connect();
      if (check !== null) {
        const named = await rewatch.deadline(
          w.send(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", name]),
        );
        const [host, port] = Array.isArray(named) ? named.map(String) : [];
        if (host !== check.host || Number(port) !== check.port) {
          throw new MasterMoved(
            `Redis Sentinel: ${sentinel.host}:${sentinel.port} names ${
              host === undefined ? "no master" : `${host}:${port}`
            }, not ${check.host}:${check.port}: the master changed`,
          );
        }
      }
      await rewatch.deadline(w.subscribe("+switch-master", onSwitch));
      if (destroyed) throw new Error("Redis Sentinel: connection closed");
      armed = true;
    } catch (err) {
      if (watch === w) watch = null;
      w.destroy();
      throw err;
    }
  };
  /** The watcher's Sentinel went away: the others in turn (it last), then again after a pause. */
  const moveWatch = async (lost: RedisNode, err: unknown) => {
    const old = watch;
    watch = null;
    old?.destroy();
    rewatch.note("warn", `Redis Sentinel ${lost.host}:${lost.port} went away`, err);
    const nodes = st.nodes;
    const i = nodes.findIndex((n) => n.host === lost.host && n.port === lost.port);
    const order = [...nodes.slice(i + 1), ...nodes.slice(0, i + 1)];
    const attach = async () => {
      retry = undefined;
      for (const node of order) {
        if (destroyed || serving === null) return;
        try {
          await listen(node, serving);
          rewatch.note("info", `Redis Sentinel: watching failovers on ${node.host}:${node.port}`);
          return;
        } catch (e) {
          if (e instanceof MasterMoved) return end(e);
        }
      }
      // None answers: no failover can happen without them either; the ROLE heartbeat still
      // notices a demoted master. Try again later.
      if (!destroyed) retry = rewatch.timers.setTimeout(() => void attach(), rewatch.retryMs);
    };
    await attach();
  };
  // During a failover a Sentinel may still name the old master: only a master will do.
  const checkRole = async () => {
    const role = await s.sendCommand(false, ["ROLE"]);
    const is = Array.isArray(role) ? String(role[0]) : String(role);
    if (is !== "master") {
      const at = s.getMasterNode();
      throw new Error(`Redis Sentinel: ${at?.host}:${at?.port} is a ${is}, not the master`);
    }
  };
  const connect = () =>
    connecting ??= (async () => {
      await s.connect();
      const master = s.getMasterNode();
      const sentinel = s.getSentinelNode();
      if (master === undefined || sentinel === undefined) {
        throw new Error("Redis Sentinel: no master connected");
      }
      const expected = announced.until > Date.now() ? announced.master : null;
      if (expected !== null && (expected.host !== master.host || expected.port !== master.port)) {
        throw new Error(
          `Redis Sentinel: ${sentinel.host}:${sentinel.port} still names ${master.host}:` +
            `${master.port}; the failover named ${expected.host}:${expected.port}`,
        );
      }
      await checkRole();
      // node-redis listens for the pattern 'switch-master', which matches no channel
      // (Sentinel publishes '+switch-master'), so a failover could go unnoticed for as long
      // as the old master kept answering. Listen for it on the Sentinel it asked.
      if (destroyed) throw new Error("Redis Sentinel: connection closed");
      await listen(sentinel, null);
      serving = master;
      return master;
    })();
  return {
    connect,
    send: (args) => s.sendCommand(false, args),
    ping: checkRole,
    subscribe: () => Promise.reject(new Error("Redis Sentinel: subscribe on the subscriber")),
    unsubscribe: () => Promise.resolve(),
    close: () => Promise.all([s.close(), watch?.close()]),
    destroy: () => {
      destroyed = true;
      rewatch.timers.clearTimeout(retry);
      watch?.destroy();
      return s.destroy().catch(() => {});
    },
    on: (event, cb) => {
      if (event === "error") {
        // A Sentinel lost is node-redis' to replace (it asks the next one); the master's
        // connection failing is the pair's.
        s.on("error", (err: unknown) => {
          if (err instanceof Error && err.message.startsWith("Master Client")) cb(err);
        });
      } else {
        ended.push(cb);
        s.on("reconnecting", () => cb(new Error("Redis Sentinel: the master changed")));
      }
    },
    duplicate: () => {
      let client: Client | null = null;
      let destroyed = false;
      const handlers: [Parameters<Client["on"]>[0], (err: unknown) => void][] = [];
      const live = (): Client => {
        if (client === null) throw new Error("Redis Sentinel: the subscriber is not connected");
        return client;
      };
      return {
        async connect() {
          const master = await connect();
          if (destroyed) throw new Error("Redis Sentinel: connection closed");
          client = subscriber(master);
          for (const [event, cb] of handlers) client.on(event, cb);
          return await client.connect();
        },
        send: (args, key) => live().send(args, key),
        ping: () => live().ping(),
        subscribe: (channel, cb) => live().subscribe(channel, cb),
        unsubscribe: (channel) => live().unsubscribe(channel),
        close: () => client?.close() ?? Promise.resolve(),
        destroy: () => {
          destroyed = true;
          client?.destroy();
        },
        on: (event, cb) => {
          handlers.push([event, cb]);
          client?.on(event, cb);
        },
        duplicate: () => {
          throw new Error("Redis Sentinel: one subscriber per pair");
        },
      };
    },
  };
}

/** The `host:port` a connection was refused by the sandbox for (Deno's NotCapable), if so. */
function forbiddenHost(err: unknown): string | null {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const m = /Requires net access to "([^"]+)"/.exec(e.message);
    if (m) return m[1] as string;
  }
  return null;
}

/** One pair of connections; a new pair is made for every reconnection. */
interface Conn {
  readonly cmd: Client;
  readonly sub: Client;
  /** Settles when both `connect()` calls have, so close() can wait out a pending attempt. */
  readonly connected: Promise<PromiseSettledResult<unknown>[]>;
  /** Both sockets are up: subscriptions may be added to `sub`. */
  open: boolean;
  readonly subscribed: Set<string>;
}

class RedisTimeout extends Error {
  constructor(ms: number) {
    super(`Redis command timed out after ${ms} ms`);
    this.name = "RedisTimeout";
  }
}

/**
 * Create the link and start connecting. Throws only here, for a URL that is not `redis://`
 * or `rediss://`: a config error is refused now rather than retried forever.
 */
export function createRedisLink(opts: RedisLinkOptions): PoolableLink {
  const { name, logger } = opts;
  const target = parseRedisTarget(opts.url);
  if (target === null) {
    throw new TypeError(
      `${name}: the Redis URL must look like redis://host:port, ` +
        `redis+cluster://host:port,host:port or redis+sentinel://host:26379,host:26379/mastername`,
    );
  }
  const timers = opts.timers ?? REAL_TIMERS;
  const random = opts.random ?? Math.random;
  const commandTimeout = opts.commandTimeoutMs ?? DEFAULTS.commandTimeoutMs;
  const heartbeatMs = opts.heartbeatMs ?? DEFAULTS.heartbeatMs;
  const attemptTimeout = opts.attemptTimeoutMs ?? DEFAULTS.attemptTimeoutMs;
  const backoff = opts.backoff ?? DEFAULTS.backoff;
  const clientName = `pilotfish-${name}-${crypto.randomUUID().slice(0, 8)}`;

  const listeners = new Map<string, Set<(message: string) => void>>();
  const hooks = new Set<(session: RedisCommands) => Promise<void>>();
  const stateListeners = new Set<(ready: boolean) => void>();

  let current: Conn | null = null; // connecting or ready
  let readyConn: Conn | null = null; // === current once the hooks are done
  let attempt = 0;
  let retryTimer: unknown;
  let heartbeatTimer: unknown;
  let attemptDone: Promise<void> = Promise.resolve();
  let outageLogged = false;
  /** The link has been ready once (a later return is "again"). */
  let everReady = false;
  let closed = false;

  /** Reject with `RedisTimeout` after `ms`; the loser is still observed, so never unhandled. */
  const deadline = <T>(p: Promise<T>, ms: number): Promise<T> => {
    let timer: unknown;
    const expired = new Promise<never>((_, reject) => {
      timer = timers.setTimeout(() => reject(new RedisTimeout(ms)), ms);
    });
    return Promise.race([p, expired]).finally(() => timers.clearTimeout(timer));
  };

  const clientOptions = () => ({
    ...(opts.password ? { password: opts.password } : {}),
    // Fail fast rather than queue while disconnected: the caller degrades on its own.
    disableOfflineQueue: true,
    commandsQueueMaxLength: QUEUE_MAX,
    // Its handshake reads env vars and may resolve DNS that the sandbox does not grant.
    maintNotifications: "disabled" as const,
    name: clientName,
  });
  const socketOptions = (tls: boolean) => ({
    connectTimeout: opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    // We reconnect ourselves, with a fresh pair and the hooks each time, on a timer that
    // close() can cancel.
    reconnectStrategy: false as const,
    ...(tls ? { tls: true as const } : {}),
  });

  const newClient = (): Client => {
    if (target.sentinel) return newSentinelClient(target.sentinel);
    if (target.cluster === null) {
      return singleClient(redis!.createClient({
        url: opts.url,
        ...clientOptions(),
        ...(opts.db !== undefined ? { database: opts.db } : {}),
        socket: socketOptions(false),
      }));
    }
    // The nodes the cluster announces get the seeds' options (password, TLS, deadlines).
    const tls = opts.url.startsWith("rediss+");
    return clusterClient(redis!.createCluster({
      rootNodes: target.cluster.map((url) => ({ url })),
      defaults: { ...clientOptions(), socket: socketOptions(tls) },
    }));
  };

  const announced: Announced = { master: null, until: 0 };
  const newSentinelClient = (st: SentinelTarget): Client => {
    const password = opts.password || st.password;
    const nodeOptions = {
      ...clientOptions(),
      ...(st.username !== undefined ? { username: st.username } : {}),
      ...(password ? { password } : {}),
      ...(opts.db ?? st.db) !== undefined ? { database: opts.db ?? st.db } : {},
    };
    const sentinelOptions = {
      ...(st.sentinelUsername !== undefined ? { username: st.sentinelUsername } : {}),
      ...(st.sentinelPassword !== undefined ? { password: st.sentinelPassword } : {}),
      maintNotifications: "disabled" as const,
      disableOfflineQueue: true,
      socket: socketOptions(st.tls),
    };
    return sentinelClient(
      redis!.createSentinel({
        name: st.name,
        sentinelRootNodes: st.nodes.map(({ host, port }) => ({ host, port })),
        nodeClientOptions: { ...nodeOptions, socket: socketOptions(st.tls) },
        sentinelClientOptions: sentinelOptions,
        masterPoolSize: 1,
        // node-redis' own rediscovery is left on: a failover announced while the Sentinels
        // still flag it in progress is retried until they name the new master ('reconnecting').
        passthroughClientErrorEvents: true,
      }),
      st,
      announced,
      (master) =>
        singleClient(redis!.createClient({
          ...nodeOptions,
          socket: { ...socketOptions(st.tls), host: master.host, port: master.port },
        })),
      (sentinel) =>
        singleClient(redis!.createClient({
          ...sentinelOptions,
          socket: { ...socketOptions(st.tls), host: sentinel.host, port: sentinel.port },
        })),
      {
        deadline: (p) => deadline(p, commandTimeout),
        timers,
        retryMs: backoff.maxMs,
        note: (level, message, err) => {
          if (closed) return;
          const fields = err === undefined ? undefined : { error: errorText(err) };
          logger[level](`${name}: ${message}`, fields);
        },
      },
    );
  };

  /** Sentinel named a data node the sandbox does not let the daemon reach: say which, once. */
  const forbiddenLogged = new Set<string>();
  const noteForbidden = (err: unknown) => {
    const host = forbiddenHost(err);
    if (!target.sentinel || host === null || forbiddenLogged.has(host)) return;
    forbiddenLogged.add(host);
    logger.error(
      `${name}: Redis Sentinel names ${host} for "${target.sentinel.name}", which this daemon ` +
        `may not connect to: add "${host}" to the sentinel's data_nodes (state.redis.sentinel` +
        `.data_nodes, or that feature's redis.sentinel.data_nodes) and restart`,
      { host, sentinel: target.sentinel.name },
    );
  };

  const setReady = (ready: boolean) => {
    for (const cb of [...stateListeners]) {
      try {
        cb(ready);
      } catch (err) {
        logger.warn(`${name}: a Redis state listener threw`, { error: errorText(err) });
      }
    }
  };

  const noteOutage = (err: unknown) => {
    if (closed) return;
    const error = errorText(err);
    if (outageLogged) return logger.debug(`${name}: Redis still unreachable`, { error });
    outageLogged = true;
    logger.warn(`${name}: Redis unreachable; working without it until it returns`, { error });
  };

  /** Teardowns still finishing (a Sentinel client's rediscovery loop ends at its next turn). */
  const teardowns = new Set<Promise<unknown>>();
  const destroy = (c: Conn) => {
    for (const client of [c.cmd, c.sub]) {
      try {
        const done = client.destroy();
        if (done) {
          teardowns.add(done);
          done.finally(() => teardowns.delete(done));
        }
      } catch { /* already torn down */ }
    }
  };

  /** The pair `c` failed (socket closed, command error or timeout): go unready, reconnect. */
  const lost = (c: Conn, err: unknown) => {
    if (current !== c) return;
    const wasReady = readyConn === c;
    current = null;
    readyConn = null;
    timers.clearTimeout(heartbeatTimer);
    heartbeatTimer = undefined;
    destroy(c);
    noteOutage(err);
    schedule();
    if (wasReady) setReady(false);
  };

  const heartbeat = (c: Conn) => {
    heartbeatTimer = timers.setTimeout(async () => {
      heartbeatTimer = undefined;
      if (readyConn !== c) return;
      try {
        await deadline(Promise.all([c.cmd.ping(), c.sub.ping()]), commandTimeout);
      } catch (err) {
        return lost(c, err);
      }
      if (readyConn === c) heartbeat(c);
    }, heartbeatMs);
  };

  const schedule = () => {
    if (closed || retryTimer !== undefined) return;
    const base = Math.min(backoff.maxMs, backoff.minMs * 2 ** attempt);
    attempt++;
    // Jitter so that a fleet does not reconnect in lockstep when Redis returns.
    const delay = Math.round(base * (0.5 + random() / 2));
    retryTimer = timers.setTimeout(() => {
      retryTimer = undefined;
      attemptDone = connect();
    }, delay);
  };

  const dispatch = (c: Conn, channel: string, message: string) => {
    if (current !== c) return;
    for (const cb of [...listeners.get(channel) ?? []]) {
      try {
        cb(message);
      } catch (err) {
        logger.warn(`${name}: a Redis subscriber threw`, { channel, error: errorText(err) });
      }
    }
  };

  const ensureSubscribed = async (c: Conn, channel: string) => {
    if (c.subscribed.has(channel)) return;
    c.subscribed.add(channel);
    await c.sub.subscribe(channel, (message: string) => dispatch(c, channel, message));
  };

  /** Commands over `c` for as long as it is the link's pair; raw errors, no reconnect. */
  const session = (c: Conn): RedisCommands => {
    const guard = async <T>(f: () => Promise<T>): Promise<T> => {
      // The attempt may have been given up (deadline, close) while it awaited.
      if (current !== c) throw new Error(`${name}: Redis connection superseded`);
      const reply = await f();
      if (current !== c) throw new Error(`${name}: Redis connection superseded`);
      return reply;
    };
    return {
      command: (args) => guard(() => sendOn(c, args)),
      eval: (script, keys, args) => guard(() => evalOn(c, script, keys, args)),
    };
  };

  // A cluster routes a command by its key (the second word of the commands we send).
  const sendOn = async (c: Conn, args: readonly string[]) =>
    toReply(await deadline(c.cmd.send([...args], args[1]), commandTimeout));

  const evalOn = async (
    c: Conn,
    script: LuaScript,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<StateReply> => {
    const tail = [String(keys.length), ...keys, ...args.map(String)];
    try {
      return toReply(
        await deadline(c.cmd.send(["EVALSHA", script.sha, ...tail], keys[0]), commandTimeout),
      );
    } catch (err) {
      if (!isErrorReply(err) || !err.message.startsWith("NOSCRIPT")) throw err;
      return toReply(
        await deadline(c.cmd.send(["EVAL", script.src, ...tail], keys[0]), commandTimeout),
      );
    }
  };

  /** Connect, resubscribe, run the hooks: the link is ready when this returns. */
  const establish = async (c: Conn) => {
    const results = await c.connected;
    if (current !== c) throw new Error(`${name}: Redis connection superseded`);
    for (const r of results) if (r.status === "rejected") throw r.reason;
    c.open = true;
    // Before the hooks: a hook that reads state must not miss what is published meanwhile.
    for (const channel of [...listeners.keys()]) await ensureSubscribed(c, channel);
    const s = session(c);
    for (const hook of [...hooks]) await hook(s);
  };

  const connect = async (): Promise<void> => {
    if (closed) return;
    let c: Conn;
    try {
      redis ??= await import("@redis/client");
      if (closed) return;
      const cmd = newClient();
      const sub = cmd.duplicate();
      const self = (): Conn => c;
      for (const client of [cmd, sub]) {
        // An 'error' listener is mandatory (EventEmitter throws without one). With
        // reconnectStrategy false, 'terminated' means that socket is gone for good.
        client.on("error", (err: unknown) => {
          // Sentinel's own retries may outlast the attempt: name a master not granted now.
          noteForbidden(err);
          if (readyConn === self()) lost(self(), err);
        });
        client.on("terminated", (err: unknown) => lost(self(), err));
      }
      c = {
        cmd,
        sub,
        connected: Promise.allSettled([cmd.connect(), sub.connect()]),
        open: false,
        subscribed: new Set(),
      };
    } catch (err) {
      noteOutage(err);
      schedule();
      return;
    }
    current = c;
    try {
      await deadline(establish(c), attemptTimeout);
    } catch (err) {
      if (closed) return;
      if (current === c) {
        current = null;
        destroy(c);
      }
      noteForbidden(err);
      noteOutage(err);
      schedule();
      return;
    }
    if (closed || current !== c) return;
    readyConn = c;
    attempt = 0;
    heartbeat(c);
    if (outageLogged) {
      outageLogged = false;
      // Unreachable from the start: nothing was there to resynchronise.
      logger.info(
        everReady
          ? `${name}: Redis reachable again; state resynchronised`
          : `${name}: Redis reachable`,
      );
    }
    everReady = true;
    setReady(true);
  };

  /**
   * A failed call on the ready pair: a command error leaves the pair alone; anything else
   * (but a full queue, which is load, not a broken link) drops it.
   */
  const failure = (c: Conn, err: unknown): Error => {
    if (isErrorReply(err) && !SERVER_UNAVAILABLE.test(err.message)) {
      return new StateCommandError(err.message, { cause: err });
    }
    if (err instanceof StateCommandError) return err;
    if (!(err instanceof Error && err.message === QUEUE_FULL)) lost(c, err);
    return new StateUnavailable(`${name}: Redis unavailable: ${errorText(err)}`, { cause: err });
  };

  const onReady = async <T>(f: (c: Conn) => Promise<T>): Promise<T> => {
    const c = readyConn;
    if (!c) throw new StateUnavailable(`${name}: Redis is not connected`);
    try {
      return await f(c);
    } catch (err) {
      throw failure(c, err);
    }
  };

  attemptDone = connect();

  return {
    ready: () => readyConn !== null,
    liveSession: () => (readyConn === null ? null : session(readyConn)),
    onStateChange(cb) {
      stateListeners.add(cb);
      return () => stateListeners.delete(cb);
    },
    onConnect(hook) {
      hooks.add(hook);
      return () => hooks.delete(hook);
    },
    command: (args) => onReady((c) => sendOn(c, args)),
    eval: (script, keys, args) => onReady((c) => evalOn(c, script, keys, args)),
    async publish(channel, message) {
      await onReady((c) => sendOn(c, ["PUBLISH", channel, message]));
    },

    async subscribe(channel, onMessage) {
      if (closed) throw new StateUnavailable(`${name}: the Redis link is closed`);
      // A wrapper per call, so the same function subscribed twice unsubscribes separately.
      const cb = (message: string) => onMessage(message);
      let set = listeners.get(channel);
      if (!set) listeners.set(channel, set = new Set());
      set.add(cb);
      const c = current;
      if (c?.open) {
        try {
          await deadline(ensureSubscribed(c, channel), commandTimeout);
        } catch (err) {
          // Restored with the next pair; a pair still connecting fails its own attempt.
          if (readyConn === c) lost(c, err);
        }
      }
      return async () => {
        const set = listeners.get(channel);
        if (!set?.delete(cb) || set.size > 0) return;
        listeners.delete(channel);
        const c = current;
        if (!c?.subscribed.delete(channel)) return;
        // Best effort: a channel without listeners is dropped by dispatch() anyway.
        await deadline(c.sub.unsubscribe(channel), commandTimeout).catch(() => {});
      };
    },

    async close() {
      if (closed) return;
      closed = true;
      timers.clearTimeout(retryTimer);
      timers.clearTimeout(heartbeatTimer);
      retryTimer = heartbeatTimer = undefined;
      const c = current;
      const wasReady = readyConn !== null;
      current = null;
      readyConn = null;
      if (wasReady) setReady(false);
      if (c) {
        // Graceful first (replies in flight are let through), then make sure.
        const quit = (client: Client) => {
          try {
            return client.close();
          } catch { /* never connected, or already closed */ }
        };
        await deadline(Promise.allSettled([quit(c.sub), quit(c.cmd)]), commandTimeout)
          .catch(() => {});
        destroy(c);
        // A connect still in flight ends within its connect timeout once destroyed; a
        // socket it opened meanwhile is destroyed by the second pass.
        await c.connected;
        destroy(c);
      }
      await attemptDone;
      await deadline(Promise.allSettled([...teardowns]), attemptTimeout).catch(() => {});
    },
  };
}

/** node-redis' RESP2 reply as the store's type (verbatim strings, integers, nil, arrays). */
function toReply(x: unknown): StateReply {
  if (x === null || typeof x === "string" || typeof x === "number") return x;
  if (Array.isArray(x)) return x.map(toReply);
  throw new StateCommandError(`unexpected Redis reply of type ${typeof x}`);
}

/** An error's message, for a log line. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
