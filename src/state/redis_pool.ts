/**
 * One Redis link per Redis in a daemon, shared by every feature that uses it. Each feature
 * (breaker, keys, limits, usage, fleet, responses, cache) used to open its own link, a
 * command and a subscriber connection each: 14 connections per sidecar with all of them on,
 * so a fleet of 1,000 pods would pass redis-server's default `maxclients` of 10,000. Shared,
 * it is 2 (4 with the response cache, whose shorter command deadline keeps its own link: a
 * lookup slower than 250 ms must not drop the others' connection).
 *
 * A feature gets a **member** of the shared link with the link's contract kept per member:
 * - `ready()` holds once the link is ready *and* this member's `onConnect` hooks ran on the
 *   current connection; its state listeners see its own transitions; its commands are
 *   refused until then, as the link refuses them while connecting.
 * - A member that joins a link already up has its hooks run on the live connection (after
 *   its subscriptions are in place), then turns ready: a feature created on reload resyncs
 *   without reconnecting the others.
 * - A member's hooks that fail or overrun `HOOK_DEADLINE_MS` cost only that member: it stays
 *   unready and retries with backoff on the live connection, without its failures counting
 *   as outages of the pair, while the others stay ready. (When the connection itself is gone,
 *   the link reconnects and runs every member's hooks again.)
 * - `close()` ends the member: its listeners, subscriptions and hooks go; the link closes
 *   with its last member.
 *
 * The pool is the process's: a generation built on reload joins the links of the one it
 * replaces. The link logs its own outages (`redis (breaker, keys, ...): ...`, naming the features
 * on it) through the newest open member's logger, so a reload's logging settings apply too. Links with injected timers or
 * jitter (tests of the link itself) are never shared.
 * @module
 */
import type { Logger } from "../telemetry/mod.ts";
import {
  createRedisLink,
  errorText,
  type PoolableLink,
  type RedisCommands,
  type RedisLink,
  type RedisLinkOptions,
} from "./redis_link.ts";
import { StateUnavailable } from "./store.ts";
import { parseRedisTarget } from "./redis_url.ts";

type Hook = (session: RedisCommands) => Promise<void>;

interface Member {
  readonly name: string;
  readonly logger: Logger;
  readonly hooks: Set<Hook>;
  readonly listeners: Set<(ready: boolean) => void>;
  readonly unsubscribes: Set<() => Promise<void>>;
  /** Subscriptions still being made: a join's hooks and `close()` wait for them. */
  readonly subscribing: Set<Promise<unknown>>;
  /** Its hooks ran on the link's current connection. */
  synced: boolean;
  /** A join (hooks on the live connection) is running or scheduled. */
  joining: boolean;
  /** Bumped when the connection a join runs on is gone: its late outcome is ignored. */
  epoch: number;
  retries: number;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  closed: boolean;
}

interface Shared {
  readonly link: PoolableLink;
  readonly members: Set<Member>;
  /** Counts the link's connections: a hook's outcome counts only for the one it ran on. */
  connection: number;
}

const pool = new Map<string, Shared>();

/** One member's hooks on one connection; past it, that member fails alone and retries. */
const HOOK_DEADLINE_MS = 2_000;
/** Join retries: 100 ms doubling to 2 s, jittered, like the link's reconnects. */
const RETRY = { minMs: 100, maxMs: 2_000 };

/**
 * The database a link selects: `db`, else the URL's (`redis://h:6379/2`,
 * `redis+sentinel://h/mymaster/2`), else 0.
 */
function databaseOf(opts: RedisLinkOptions): number {
  if (opts.db !== undefined) return opts.db;
  const sentinel = parseRedisTarget(opts.url)?.sentinel;
  if (sentinel) return sentinel.db ?? 0;
  const path = /^rediss?:\/\/[^/]*\/(\d+)\/?$/.exec(opts.url);
  return path ? Number(path[1]) : 0;
}

/** Where a URL points, its database left out (`databaseOf` has it). */
function withoutDatabase(url: string): string {
  const sentinel = parseRedisTarget(url)?.sentinel;
  if (sentinel) {
    const { db: _, ...rest } = sentinel;
    return JSON.stringify(rest);
  }
  return url.replace(/\/\d*\/?$/, "");
}

/** The options that decide what a link does (all but who uses it). */
function identity(opts: RedisLinkOptions): string {
  return JSON.stringify([
    withoutDatabase(opts.url),
    opts.password || null,
    databaseOf(opts),
    opts.commandTimeoutMs ?? null,
    opts.heartbeatMs ?? null,
    opts.connectTimeoutMs ?? null,
    opts.attemptTimeoutMs ?? null,
    opts.backoff ?? null,
  ]);
}

/**
 * A member of the daemon's link to this Redis (created on first use). Throws, like
 * `createRedisLink`, only for a URL that is not a Redis URL.
 */
export function openRedisLink(opts: RedisLinkOptions): RedisLink {
  if (opts.timers !== undefined || opts.random !== undefined) return createRedisLink(opts);
  const key = identity(opts);
  let shared = pool.get(key);
  if (shared === undefined) {
    const members = new Set<Member>();
    const logger = newestLogger(members, opts.logger);
    shared = share(createRedisLink({ ...opts, name: "redis", logger }), members);
    pool.set(key, shared);
  }
  return member(shared, opts.name, opts.logger, () => pool.delete(key));
}

/**
 * Logs through the newest open member's logger (the first one's once all are gone), with the
 * link's `redis:` prefix naming the features on it: `redis (breaker, keys): ...`.
 */
function newestLogger(members: Set<Member>, first: Logger): Logger {
  const current = (): Logger => {
    let newest = first;
    for (const m of members) if (!m.closed) newest = m.logger;
    return newest;
  };
  const label = (msg: string): string => {
    if (!msg.startsWith("redis: ")) return msg;
    const names = new Set<string>();
    for (const m of members) if (!m.closed) names.add(m.name);
    return names.size === 0 ? msg : `redis (${[...names].join(", ")}): ${msg.slice(7)}`;
  };
  return {
    debug: (msg, fields) => current().debug(label(msg), fields),
    info: (msg, fields) => current().info(label(msg), fields),
    warn: (msg, fields) => current().warn(label(msg), fields),
    error: (msg, fields) => current().error(label(msg), fields),
    enabled: (level) => current().enabled(level),
  };
}

/** `p`, or a rejection once `HOOK_DEADLINE_MS` has passed (the timer never outlives it). */
async function withinHookDeadline(name: string, p: Promise<void>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${name}: Redis resync took over ${HOOK_DEADLINE_MS} ms`)),
      HOOK_DEADLINE_MS,
    );
  });
  try {
    await Promise.race([p, expired]);
  } finally {
    clearTimeout(timer);
  }
}

async function runHooks(m: Member, session: RedisCommands): Promise<void> {
  for (const hook of [...m.hooks]) await hook(session);
}

/** The link's hooks and state, fanned out to its members. */
function share(link: PoolableLink, members: Set<Member>): Shared {
  const shared: Shared = { link, members, connection: 0 };
  // Every member's hooks on each new connection, side by side (each had its own attempt
  // deadline before they shared a link), before the link turns ready. A member's failure is
  // its own: it retries once the link is up (see join).
  link.onConnect(async (session) => {
    const connection = ++shared.connection;
    await Promise.all([...members].map(async (m) => {
      if (m.closed) return;
      m.synced = false;
      try {
        await withinHookDeadline(m.name, runHooks(m, session));
        if (shared.connection !== connection || m.closed) return;
        m.synced = true;
        m.retries = 0;
      } catch (err) {
        if (shared.connection !== connection) return;
        m.retries++;
        m.logger.warn(`${m.name}: Redis resync failed; retrying`, { error: errorText(err) });
      }
    }));
  });
  link.onStateChange((ready) => {
    for (const m of [...members]) {
      if (m.closed) continue;
      if (!ready) {
        clearTimeout(m.retryTimer);
        m.retryTimer = undefined;
        m.joining = false;
        m.epoch++;
        const was = m.synced;
        m.synced = false;
        if (was) notify(m, false);
      } else if (m.synced) notify(m, true);
      else join(shared, m);
    }
  });
  return shared;
}

function notify(m: Member, ready: boolean): void {
  for (const cb of [...m.listeners]) {
    try {
      cb(ready);
    } catch (err) {
      m.logger.warn(`${m.name}: a Redis state listener threw`, { error: errorText(err) });
    }
  }
}

/** Run `m`'s hooks on the live connection, then turn it ready; on failure, retry later. */
function join(shared: Shared, m: Member): void {
  if (m.closed || m.synced || m.joining) return;
  const live = shared.link.liveSession();
  if (live === null) return;
  m.joining = true;
  const epoch = m.epoch;
  const current = () => m.epoch === epoch && !m.closed;
  // The member's hooks stop at their next command once their connection is gone or the
  // member closed: they never run on into the next connection's resync.
  const guard = async <T>(f: () => Promise<T>): Promise<T> => {
    if (!current()) throw new Error(`${m.name}: Redis resync superseded`);
    const reply = await f();
    if (!current()) throw new Error(`${m.name}: Redis resync superseded`);
    return reply;
  };
  const session: RedisCommands = {
    command: (args) => guard(() => live.command(args)),
    eval: (script, keys, args) => guard(() => live.eval(script, keys, args)),
  };
  const run = async () => {
    await Promise.allSettled([...m.subscribing]);
    await runHooks(m, session);
  };
  withinHookDeadline(m.name, run()).then(
    () => {
      if (!current()) return; // the link went down meanwhile: its reconnect runs the hooks
      m.joining = false;
      if (!shared.link.ready()) return;
      m.synced = true;
      m.retries = 0;
      notify(m, true);
    },
    (err) => {
      if (!current()) return;
      m.logger.warn(`${m.name}: Redis resync failed; retrying`, { error: errorText(err) });
      const delay = Math.min(RETRY.maxMs, RETRY.minMs * 2 ** m.retries++);
      m.retryTimer = setTimeout(() => {
        m.retryTimer = undefined;
        m.joining = false;
        join(shared, m);
      }, Math.round(delay * (0.5 + Math.random() / 2)));
    },
  );
}

function member(shared: Shared, name: string, logger: Logger, last: () => void): RedisLink {
  const { link } = shared;
  const m: Member = {
    name,
    logger,
    hooks: new Set(),
    listeners: new Set(),
    unsubscribes: new Set(),
    subscribing: new Set(),
    synced: false,
    joining: false,
    epoch: 0,
    retries: 0,
    retryTimer: undefined,
    closed: false,
  };
  shared.members.add(m);
  // On a link already up, the hooks registered right after this call run before `m` turns
  // ready (the link's contract: register right after creating it).
  queueMicrotask(() => join(shared, m));

  // Async, so a refusal is a rejection, as the link's.
  const usable = () => {
    if (m.closed) throw new StateUnavailable(`${name}: the Redis link is closed`);
    if (!m.synced) throw new StateUnavailable(`${name}: Redis is not connected`);
  };
  return {
    ready: () => !m.closed && m.synced && link.ready(),
    onStateChange(cb) {
      m.listeners.add(cb);
      return () => m.listeners.delete(cb);
    },
    onConnect(hook) {
      m.hooks.add(hook);
      return () => m.hooks.delete(hook);
    },
    async command(args) {
      usable();
      return await link.command(args);
    },
    async eval(script, keys, args) {
      usable();
      return await link.eval(script, keys, args);
    },
    async publish(channel, message) {
      usable();
      await link.publish(channel, message);
    },
    async subscribe(channel, onMessage) {
      if (m.closed) throw new StateUnavailable(`${name}: the Redis link is closed`);
      const made = link.subscribe(channel, onMessage);
      m.subscribing.add(made);
      let unsubscribe: () => Promise<void>;
      try {
        unsubscribe = await made;
      } finally {
        m.subscribing.delete(made);
      }
      // Closed while subscribing: close() has already let go of the others.
      if (m.closed) {
        await unsubscribe();
        return () => Promise.resolve();
      }
      const once = async () => {
        if (!m.unsubscribes.delete(once)) return;
        await unsubscribe();
      };
      m.unsubscribes.add(once);
      return once;
    },
    async close() {
      if (m.closed) return;
      const wasReady = m.synced && link.ready();
      m.closed = true;
      m.epoch++;
      clearTimeout(m.retryTimer);
      m.hooks.clear();
      if (wasReady) notify(m, false);
      m.listeners.clear();
      // A subscription still being made unsubscribes itself once made (see subscribe).
      await Promise.allSettled([...m.subscribing]);
      await Promise.all([...m.unsubscribes].map((u) => u()));
      shared.members.delete(m);
      if (shared.members.size === 0) {
        last();
        await link.close();
      }
    },
  };
}
