/**
 * Redis Sentinel: the URL grammar and the config's `sentinel:` blocks (good and bad), the
 * hosts the permission planner grants, then against a real deployment (master, replica,
 * three Sentinels): the link's guarantees on the master, a failover followed by commands and
 * subscriptions, the limits' fleet through the master, and two sidecars whose breaker state
 * survives a failover with no request failing for it.
 */
import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { planGrants } from "../../src/permissions/mod.ts";
import { secretsOf } from "../../src/runtime.ts";
import { createRedisLink, luaScript } from "../../src/state/redis_link.ts";
import { openRedisLink } from "../../src/state/redis_pool.ts";
import {
  parseRedisTarget,
  redisHosts,
  redisUrlSecrets,
  sentinelUrl,
} from "../../src/state/redis_url.ts";
import { cli, type RedisSentinels, startRedisSentinels } from "../helpers/redis_sentinel.ts";
import { breakerTiming } from "../../src/breaker/mod.ts";
import { createStateResources } from "../../src/usage/resources.ts";
import { createRedisBreakerStore } from "../../src/state/redis_breaker_store.ts";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { type InProcessGateway, startGateway } from "../helpers/in_process.ts";
import { chatBody, type Daemon, startDaemon } from "../integration/daemon.ts";
import { runLimitsFleet } from "../limits/fleet.ts";
import { captureLogger, waitFor, within } from "./support.ts";

Deno.test("parseRedisTarget() reads a redis+sentinel:// URL; sentinelUrl() writes one", () => {
  const url =
    "rediss+sentinel://app:p%40ss@s1:26380,s2/mymaster/3?sentinel_password=sp&data_nodes=10.0.0.5:6379,10.0.0.6:6380";
  assert.deepEqual(parseRedisTarget(url)?.sentinel, {
    name: "mymaster",
    nodes: [{ host: "s1", port: 26380 }, { host: "s2", port: 26379 }],
    tls: true,
    username: "app",
    password: "p@ss",
    sentinelPassword: "sp",
    db: 3,
    dataNodes: ["10.0.0.5:6379", "10.0.0.6:6380"],
  });
  assert.equal(parseRedisTarget(url)?.cluster, null);
  assert.deepEqual(redisHosts(url), ["s1:26380", "s2:26379", "10.0.0.5:6379", "10.0.0.6:6380"]);
  assert.deepEqual(redisUrlSecrets(url), ["p@ss", "sp"]);
  assert.equal(
    sentinelUrl({
      name: "mymaster",
      nodes: ["s1:26380", "s2"],
      username: "app",
      password: "p@ss",
      sentinel_password: "sp",
      db: 3,
      tls: true,
      data_nodes: ["10.0.0.5:6379", "10.0.0.6:6380"],
    }),
    url,
  );
  // Not a Sentinel URL: no master name, no Sentinel, a bad option, a bad data node.
  for (
    const bad of [
      "redis+sentinel://s1:26379",
      "redis+sentinel:///mymaster",
      "redis+sentinel://s1/mymaster?password=x",
      "redis+sentinel://s1/mymaster?data_nodes=a:b",
      "redis+sentinel://s1/mymaster/x",
    ]
  ) assert.equal(parseRedisTarget(bad), null, bad);
});

Deno.test("a redis+sentinel:// query is percent-decoded only: a + stays a +", () => {
  // Hand-written: `+` is the password's own character; `%2B` and `%20` decode as usual.
  const url = "redis+sentinel://s1/m?sentinel_password=ab+c/d&sentinel_username=u%2Bv%20w";
  const s = parseRedisTarget(url)?.sentinel;
  assert.equal(s?.sentinelPassword, "ab+c/d");
  assert.equal(s?.sentinelUsername, "u+v w");
  assert.deepEqual(redisUrlSecrets(url), ["ab+c/d"], "the redactor hides the real secret");
  // A config block's values survive the round trip through the URL, spaces and pluses alike.
  const written = sentinelUrl({
    name: "m",
    nodes: ["s1"],
    password: "p+q r",
    sentinel_username: "a b",
    sentinel_password: "x+y z&k=v",
  });
  assert.deepEqual(
    [parseRedisTarget(written)?.sentinel?.password, parseRedisTarget(written)?.sentinel],
    ["p+q r", {
      name: "m",
      nodes: [{ host: "s1", port: 26379 }],
      tls: false,
      password: "p+q r",
      sentinelUsername: "a b",
      sentinelPassword: "x+y z&k=v",
      dataNodes: [],
    }],
  );
});

const parse = (text: string) => parseConfigText(text, () => undefined, "c.yaml").config;

/** The one-line message of a refused config. */
function refusal(text: string): string {
  try {
    parse(text);
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  throw new Error(`accepted: ${text}`);
}

Deno.test("config: a sentinel block in state.redis and in each feature's redis block", () => {
  const text = `
state:
  backend: redis
  redis:
    sentinel:
      name: mymaster
      nodes: ["10.0.0.1:26379", "10.0.0.2"]
      password: "data-secret"
      sentinel_password: "sentinel-secret"
      data_nodes: ["10.0.0.5:6379", "10.0.0.6:6379"]
features:
  circuit_breaker:
    enabled: true
    backend: redis
    redis: { sentinel: { name: cb, nodes: ["10.1.0.1:26379"], data_nodes: ["10.1.0.5"] }, db: 2 }
  rate_limiting:
    enabled: true
    backend: redis
    redis: { url: "redis+sentinel://10.2.0.1:26379/rl?data_nodes=10.2.0.5:6379" }
    limits: { requests_per_minute: 100 } # a limiter without limits connects to nothing
cache:
  enabled: true
  backend: redis
  redis: { sentinel: { name: c, nodes: ["10.3.0.1:26379"], data_nodes: ["10.3.0.5:6379"] } }
`;
  const config = parse(text);
  assert.equal(
    config.state.redis.url,
    "redis+sentinel://:data-secret@10.0.0.1:26379,10.0.0.2/mymaster" +
      "?sentinel_password=sentinel-secret&data_nodes=10.0.0.5:6379,10.0.0.6:6379",
  );
  assert.deepEqual(config.features.circuit_breaker.redis, {
    url: "redis+sentinel://10.1.0.1:26379/cb?data_nodes=10.1.0.5",
    db: 2,
  });
  assert.equal(
    config.features.rate_limiting.redis?.url,
    "redis+sentinel://10.2.0.1:26379/rl?data_nodes=10.2.0.5:6379",
  );
  // The planner grants the Sentinels and the data nodes listed, nothing else.
  const net = planGrants(config, { configPath: null, configText: text, cwd: "/" }).net;
  for (
    const host of [
      "10.0.0.1:26379",
      "10.0.0.2:26379",
      "10.0.0.5:6379",
      "10.0.0.6:6379",
      "10.1.0.1:26379",
      "10.1.0.5:6379",
      "10.2.0.1:26379",
      "10.2.0.5:6379",
      "10.3.0.1:26379",
      "10.3.0.5:6379",
    ]
  ) assert.ok(net.includes(host), `${host} granted: ${net}`);
  assert.ok(!net.some((h) => h.startsWith("localhost:") || h.startsWith("127.0.0.1:6379")));
  const secrets = secretsOf(config);
  assert.ok(secrets.includes("data-secret") && secrets.includes("sentinel-secret"));
});

Deno.test("config: a bad sentinel block is refused with its path and what is wrong", () => {
  const cases: [string, RegExp][] = [
    [`state: { redis: { sentinel: { name: m, nodes: [] } } }`, /nodes.*at least one Sentinel/],
    [`state: { redis: { sentinel: { nodes: ["a:1"] } } }`, /sentinel\.name/],
    [`state: { redis: { sentinel: { name: m, nodes: "a:1" } } }`, /sentinel\.nodes/],
    [`state: { redis: { sentinel: { name: m, nodes: ["redis://a:1"] } } }`, /Must be host:port/],
    [
      `state: { redis: { url: "redis://a:1", sentinel: { name: m, nodes: ["a:1"] } } }`,
      /one of url, cluster or sentinel/,
    ],
    [
      `state: { redis: { sentinel: { name: m, nodes: ["a:1"], data_nodes: ["a b"] } } }`,
      /data_nodes.*host:port/,
    ],
    [`state: { redis: { url: "redis+sentinel://a:26379" } }`, /Name the master group/],
    [`state: { redis: { url: "redis+sentinel://a/m?pasword=x" } }`, /Unknown option pasword/],
    [
      `features: { circuit_breaker: { redis: { url: "redis://a:1", sentinel: { name: m, nodes: ["a"] } } } }`,
      /either url or sentinel/,
    ],
  ];
  for (const [text, expected] of cases) assert.match(refusal(text), expected, text);
  // An unknown key is a warning, as everywhere in the config.
  const typo = `state: { redis: { sentinel: { name: m, nodes: ["a:1"], port: 1 } } }`;
  assert.deepEqual(parseConfigText(typo, () => undefined, "c.yaml").warnings, [
    "state.redis.sentinel.port: Unknown key, ignored",
  ]);
});

Deno.test("config: a sentinel's db is used unless the feature's own db is written", () => {
  const sentinel = `sentinel: { name: m, nodes: ["10.0.0.1"], db: 3 }`;
  const config = parse(`
features:
  circuit_breaker: { redis: { ${sentinel} } }
  rate_limiting: { redis: { url: "redis+sentinel://10.0.0.1/m/3", db: 5 } }
cache: { enabled: true, backend: redis, redis: { ${sentinel} } }
`);
  // Bad case first: the cache block used to carry db 0 always, over the sentinel's 3.
  assert.equal(config.cache.redis?.db, undefined);
  assert.equal(config.cache.redis?.sentinel, "redis+sentinel://10.0.0.1/m/3");
  assert.deepEqual(config.features.circuit_breaker.redis, { url: "redis+sentinel://10.0.0.1/m/3" });
  // Written beside it, the feature's db wins.
  assert.deepEqual(config.features.rate_limiting.redis, {
    url: "redis+sentinel://10.0.0.1/m/3",
    db: 5,
  });
  assert.equal(parse(`cache: { redis: { ${sentinel}, db: 4 } }`).cache.redis?.db, 4);
  // A cache block without a sentinel still reads as llm-gateway's: localhost:6379, db 0.
  assert.deepEqual(parse(`cache: { redis: { key_prefix: "p:" } }`).cache.redis, {
    address: "localhost:6379",
    password: "",
    key_prefix: "p:",
  });
  // An address beside a sentinel would be silently ignored: refused, naming both keys.
  for (const at of ["cache", "features: { circuit_breaker"]) {
    const close = at === "cache" ? "" : " }";
    assert.match(
      refusal(`${at}: { redis: { address: "r:6379", ${sentinel} } }${close}`),
      /redis.*Set either address or sentinel, not both/,
    );
  }
});

const portLine = (port: number) => new RegExp(`^tcp_port:${port}\\s*$`, "m");

const INCR_TWICE = luaScript(`
redis.call('INCR', KEYS[1])
return redis.call('INCR', KEYS[1])
`);

Deno.test("Redis Sentinel (master, replica, three Sentinels)", async (t) => {
  const redis = await startRedisSentinels();
  try {
    await t.step("the link: commands, scripts after SCRIPT FLUSH, pub/sub, heartbeat", async () => {
      const { logger } = captureLogger();
      const link = createRedisLink({ url: redis.url, name: "test", logger, heartbeatMs: 50 });
      let connects = 0;
      link.onConnect(() => Promise.resolve(void connects++));
      try {
        await waitFor("the link to connect", () => link.ready());
        const master = await redis.masterPort();
        assert.match(String(await link.command(["INFO", "server"])), portLine(master));
        assert.equal(await link.eval(INCR_TWICE, ["k"], []), 2);
        await link.command(["SCRIPT", "FLUSH"]);
        assert.equal(await link.eval(INCR_TWICE, ["k"], []), 4, "EVAL after NOSCRIPT");
        const got = Promise.withResolvers<string>();
        await link.subscribe("chan", (m) => got.resolve(m));
        await link.publish("chan", "hello");
        assert.equal(await within("the message", got.promise), "hello");
        // Several heartbeats pass on an idle link without dropping it.
        await new Promise((r) => setTimeout(r, 200));
        assert.ok(link.ready());
        assert.equal(connects, 1);
      } finally {
        await link.close();
      }
    });

    await t.step("a failover: the link follows the new master, subscriptions resume", async () => {
      const { logger, lines } = captureLogger();
      const link = createRedisLink({ url: redis.url, name: "test", logger });
      let connects = 0;
      link.onConnect(() => Promise.resolve(void connects++));
      const messages: string[] = [];
      try {
        await waitFor("the link to connect", () => link.ready());
        await link.subscribe("chan", (m) => messages.push(m));
        await link.command(["SET", "before", "1"]);
        const next = await redis.failover();
        // The new master answers this link's commands; its subscription was restored there.
        await waitFor("the link on the new master", () => link.ready() && connects >= 2, 10_000);
        assert.match(String(await link.command(["INFO", "server"])), portLine(next));
        assert.ok(
          lines.some((l) =>
            l.level === "warn" && l.fields?.error === "Redis Sentinel: the master changed"
          ),
          "the change of master ended the pair",
        );
        assert.equal(await link.command(["GET", "before"]), "1", "replicated before the failover");
        assert.equal(await link.command(["SET", "after", "1"]), "OK");
        await link.publish("chan", "after failover");
        await waitFor("the message on the new master", () => messages.includes("after failover"));
        assert.ok(
          !lines.some((l) => l.level === "error"),
          JSON.stringify(lines.filter((l) => l.level === "error")),
        );
      } finally {
        await link.close();
      }
    });

    await t.step("the pool shares a link per database, not across databases", async () => {
      const { logger } = captureLogger();
      const open = (db: number) => openRedisLink({ url: `${redis.url}/${db}`, name: "t", logger });
      const [one, alsoOne, two] = [open(1), open(1), open(2)];
      try {
        await waitFor("connected", () => one.ready() && alsoOne.ready() && two.ready());
        await one.command(["SET", "pool-db", "one"]);
        assert.equal(await alsoOne.command(["GET", "pool-db"]), "one");
        assert.equal(await two.command(["GET", "pool-db"]), null, "db 2 is another keyspace");
      } finally {
        await Promise.all([one.close(), alsoOne.close(), two.close()]);
      }
    });

    await t.step(
      "the cache's link selects the sentinel's db, or the db written beside it",
      async () => {
        const master = await redis.masterPort();
        const nodes = redis.sentinelPorts.map((p) => `"127.0.0.1:${p}"`).join(", ");
        const keysIn = async (db: number) =>
          new TextDecoder().decode(
            (await new Deno.Command("redis-cli", {
              args: ["-p", String(master), "-n", String(db), "--scan", "--pattern", "dbtest:*"],
            }).output()).stdout,
          ).trim();
        // [the cache block's own db line, the database its entries must land in]
        for (const [own, db] of [["", 3], ["db: 4", 4]] as const) {
          const config = parse(`
cache:
  enabled: true
  backend: redis
  redis:
    key_prefix: "dbtest:"
    ${own}
    sentinel: { name: mymaster, nodes: [${nodes}], db: 3 }
`);
          const resources = createStateResources({ now: Date.now });
          const cache = resources.cache(config, captureLogger().logger)!;
          try {
            await within("the cache's Redis", cache.ready!());
            await cache.set(`k${db}`, "v", 60_000);
            assert.equal(await cache.get(`k${db}`), "v");
            assert.equal(await keysIn(db), `dbtest:k${db}`, `db ${db} holds the entry`);
            assert.equal(await keysIn(0), "", "not database 0");
          } finally {
            await resources.close();
          }
        }
      },
    );

    await t.step("the limits' fleet through the Sentinel master", async (t) => {
      await runLimitsFleet(t, redis.url);
    });

    await t.step(
      "two sidecars share a breaker through Sentinel and follow a failover, no request failing",
      async () => {
        await breakerAcrossFailover(redis);
      },
    );

    await t.step(
      "the sandboxed daemon: data_nodes granted, limits shared; a master not granted is named",
      async () => {
        await sandboxedDaemon(redis);
      },
    );

    // Last: it leaves one Sentinel down.
    await t.step(
      "a Sentinel lost while traffic runs: the link stays ready, no reconnect; failovers followed",
      async () => {
        await sentinelLost(redis);
      },
    );
  } finally {
    await redis.dispose();
  }
});

/** The running Sentinels holding a `+switch-master` watcher (a plain SUBSCRIBE: sub=1). */
async function watchedBy(redis: RedisSentinels, down: ReadonlySet<number>): Promise<number[]> {
  const ports = redis.sentinelPorts.filter((p) => !down.has(p));
  const lists = await Promise.all(ports.map((p) => cli(p, ["CLIENT", "LIST"])));
  return ports.filter((_, i) => / sub=1 psub=0 /.test(lists[i]!));
}

async function sentinelLost(redis: RedisSentinels): Promise<void> {
  const { logger, lines } = captureLogger();
  // Commands may wait up to 3 s: on a loaded machine (the whole suite in parallel) a 50 ms
  // heartbeat's ping past the 500 ms default marked the link down, which is not what this
  // step is about (a Sentinel lost, the data connection untouched).
  const link = createRedisLink({
    url: redis.url,
    name: "test",
    logger,
    heartbeatMs: 50,
    commandTimeoutMs: 3_000,
  });
  let connects = 0;
  link.onConnect(() => Promise.resolve(void connects++));
  const states: boolean[] = [];
  let stop = false;
  let done = 0;
  const failures: string[] = [];
  let traffic: Promise<void> = Promise.resolve();
  try {
    await waitFor("the link to connect", () => link.ready());
    link.onStateChange((ready) => states.push(ready));
    const down = new Set<number>();
    const [watched] = await watchedBy(redis, down);
    assert.ok(watched !== undefined, "the watcher is on a Sentinel");
    traffic = (async () => {
      while (!stop) {
        try {
          await link.command(["INCR", "sentinel-lost"]);
          done++;
        } catch (err) {
          failures.push(String(err));
          // A link that is down fails at once: yield to the timers.
          await new Promise((r) => setTimeout(r, 1));
        }
      }
    })();
    await waitFor("traffic", () => done > 20);
    // The watcher's Sentinel goes (node-redis' own connection is on it too).
    down.add(watched);
    await redis.stopSentinel(watched);
    let moved: number[] = [];
    await until("the watcher on another Sentinel", async () => {
      moved = await watchedBy(redis, down);
      return moved.length === 1;
    });
    const after = done;
    await waitFor("traffic after the move", () => done > after + 20);
    stop = true;
    await traffic;
    assert.deepEqual(failures, [], "no command failed");
    assert.deepEqual(states, [], "the link never went unready");
    assert.equal(connects, 1, "the pair was not replaced");
    assert.ok(
      lines.some((l) => l.level === "warn" && l.msg.includes(`${watched} went away`)),
      JSON.stringify(lines),
    );
    // The watcher where it moved still hears a failover: the link follows it.
    const next = await redis.failover();
    await waitFor("the link on the new master", () => link.ready() && connects === 2, 10_000);
    assert.match(String(await link.command(["INFO", "server"])), portLine(next));
    assert.ok(
      lines.some((l) =>
        l.level === "warn" && l.fields?.error === "Redis Sentinel: the master changed"
      ),
      `the announcement ended the pair: ${JSON.stringify(lines)}`,
    );
  } finally {
    stop = true;
    await traffic;
    await link.close();
  }
}

/** The daemon as `deno task start` runs it (planned grants only), its state on Sentinel. */
async function sandboxedDaemon(
  redis: Awaited<ReturnType<typeof startRedisSentinels>>,
): Promise<void> {
  const up = startFakeUpstream();
  const config = (dataNodes: string) => `
server: { port: {{PORT}}, socket: "{{SOCKET}}" }
providers:
  up: { base_url: "${up.url}/v1" }
state:
  backend: redis
  redis:
    sentinel:
      name: mymaster
      nodes: [${redis.sentinelPorts.map((p) => `"127.0.0.1:${p}"`).join(", ")}]
      # Its own database: the limits' fleet step ran its clock minutes ahead, on the same
      # rule keys, so a real minute it reached would already be spent here.
      db: 5
      ${dataNodes}
features:
  rate_limiting:
    enabled: true
    fleet_size: 2
    limits: { requests_per_minute: 2 }
`;
  const mode = async (d: Daemon) =>
    (await (await fetch(d.url("/health"))).json()).rate_limiting.mode;
  try {
    const granted = await startDaemon(
      config(`data_nodes: [${redis.dataPorts.map((p) => `"127.0.0.1:${p}"`).join(", ")}]`),
    );
    try {
      await until("shared", async () => (await mode(granted)) === "shared");
      const statuses = [];
      for (let i = 0; i < 3; i++) {
        const res = await fetch(granted.url("/v1/chat/completions"), {
          method: "POST",
          body: chatBody("up/gpt-4o"),
        });
        await res.body?.cancel();
        statuses.push(res.status);
      }
      assert.deepEqual(statuses, [200, 200, 429], "the whole limit, shared through the master");
    } finally {
      assert.equal(await granted.stop(), 0);
    }
    const master = `127.0.0.1:${await redis.masterPort()}`;
    const denied = await startDaemon(config(""));
    try {
      await denied.waitForLog("may not connect to", 10_000);
      const line = denied.logs().split("\n").find((l) => l.includes("may not connect to"))!;
      assert.match(line, /"level":"error"/);
      assert.ok(line.includes(`Redis Sentinel names ${master} for \\"mymaster\\"`), line);
      assert.ok(line.includes("state.redis.sentinel.data_nodes"), line);
      assert.equal(await mode(denied), "fallback", "it serves on its share meanwhile");
    } finally {
      assert.equal(await denied.stop(), 0);
    }
  } finally {
    await up.close();
  }
}

async function ask(d: InProcessGateway, model: string): Promise<number> {
  const res = await d.request("/v1/chat/completions", { method: "POST", body: chatBody(model) });
  await res.body?.cancel();
  return res.status;
}

async function breakerState(d: InProcessGateway): Promise<{ fallback: boolean }> {
  const cb = (await (await d.request("/health")).json()).circuit_breaker;
  return { fallback: cb.redis_fallback };
}

/** Poll `check` (which talks to the sidecars) until it holds, within `ms`. */
async function until(what: string, check: () => Promise<boolean>, ms = 10_000) {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function breakerAcrossFailover(
  redis: Awaited<ReturnType<typeof startRedisSentinels>>,
): Promise<void> {
  const up = startFakeUpstream();
  // The feature's own redis block in its sentinel form (the in-process factory builds it).
  const config = `
providers:
  up: { base_url: "${up.url}/v1" }
routing:
  failover: { backoff: { initial: 5ms, max: 10ms } }
features:
  circuit_breaker:
    enabled: true
    backend: redis
    redis:
      sentinel:
        name: mymaster
        nodes: [${redis.sentinelPorts.map((p) => `"127.0.0.1:${p}"`).join(", ")}]
    failure_threshold: 2
    cooldown_seconds: 60
    max_transient_retries: 0
`;
  // The store as the daemon's factory builds it, from the parsed block (its sentinel URL).
  const sidecar = () =>
    startGateway(config, {}, {
      breakerStore: (cfg, logger) =>
        createRedisBreakerStore({
          ...cfg.features.circuit_breaker.redis!,
          timing: breakerTiming(cfg.features.circuit_breaker),
          logger,
        }),
    });
  const [a, b] = [sidecar(), sidecar()];
  try {
    for (const d of [a, b]) {
      await until("connected", async () => (await breakerState(d)).fallback === false);
      assert.equal((await (await d.request("/health")).json()).circuit_breaker.backend, "redis");
    }
    up.script({ kind: "json" });
    // Requests flow through both sidecars for the whole failover: none may fail for it.
    let stop = false;
    const statuses: number[] = [];
    const traffic = Promise.all([a, b].map(async (d) => {
      while (!stop) statuses.push(await ask(d, "up/healthy"));
    }));
    const next = await redis.failover();
    for (const d of [a, b]) {
      await until("back on Redis", async () => (await breakerState(d)).fallback === false);
    }
    stop = true;
    await traffic;
    assert.ok(statuses.length > 0);
    assert.deepEqual([...new Set(statuses)], [200], "no request failed for the failover");
    // The shared state now lives on the new master: A's failures open the breaker on B.
    up.script({ kind: "json", status: 500, body: { error: { message: "boom" } } });
    assert.equal(await ask(a, "up/gpt-4o"), 503);
    assert.equal(await ask(a, "up/gpt-4o"), 503);
    // B fast-fails the key A opened: a 503 that made no upstream call.
    await until("B fast-fails", async () => {
      const calls = up.requests.length;
      return (await ask(b, "up/gpt-4o")) === 503 && up.requests.length === calls;
    }, 2_000);

    const keys = await new Deno.Command("redis-cli", {
      args: ["-p", String(next), "--scan", "--pattern", "{pilotfish:cb}:*"],
    }).output();
    assert.ok(new TextDecoder().decode(keys.stdout).includes("{pilotfish:cb}:"));
  } finally {
    await Promise.all([a.close(), b.close()]);
    await up.close();
  }
}
