/**
 * Redis Cluster: the link against a real three-node cluster the test starts (hash-tagged
 * scripts run on the node owning their slot, cross-slot ones are refused, pub/sub reaches
 * every subscriber, a restarted cluster is reconnected), and the breaker's fleet scenario
 * with its sidecars on that cluster.
 */
import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { planGrants } from "../../src/permissions/mod.ts";
import { createRedisLink, luaScript, parseRedisTarget } from "../../src/state/redis_link.ts";
import { StateCommandError } from "../../src/state/store.ts";
import { startRedisCluster } from "../helpers/redis_cluster.ts";
import { runBreakerFleet } from "../integration/fleet_breaker.ts";
import { captureLogger, waitFor } from "./support.ts";

Deno.test("parseRedisTarget() reads one Redis or a cluster's seed nodes, refuses the rest", () => {
  assert.deepEqual(parseRedisTarget("redis://h:1"), { cluster: null, url: "redis://h:1" });
  assert.deepEqual(parseRedisTarget("rediss://h:1/2")?.cluster, null);
  assert.deepEqual(parseRedisTarget("redis+cluster://a:1,b:2")?.cluster, [
    "redis://a:1",
    "redis://b:2",
  ]);
  assert.deepEqual(parseRedisTarget("rediss+cluster://u:p@a:1,b:2/")?.cluster, [
    "rediss://u:p@a:1",
    "rediss://u:p@b:2",
  ]);
  assert.equal(parseRedisTarget("http://a:1"), null);
  assert.equal(parseRedisTarget("redis+cluster://"), null);
  assert.equal(parseRedisTarget("redis+cluster://,"), null);
});

Deno.test("state.redis.cluster: seed nodes become a redis+cluster:// URL, each one granted", () => {
  const text = `
state:
  backend: redis
  redis:
    cluster: ["redis://:pw@10.0.0.1:7000", "redis://10.0.0.2:7001/"]
`;
  const config = parseConfigText(text, () => undefined, "c.yaml").config;
  assert.equal(config.state.redis.url, "redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001");
  const grants = planGrants(config, { configPath: null, configText: text, cwd: "/" });
  assert.ok(grants.net.includes("10.0.0.1:7000"));
  assert.ok(grants.net.includes("10.0.0.2:7001"));
  const bad = (redis: string) =>
    assert.throws(() => parseConfigText(`state: { redis: ${redis} }`, () => undefined, "b.yaml"));
  bad(`{ cluster: [] }`);
  bad(`{ cluster: ["rediss://a:1", "redis://b:2"] }`);
  bad(`{ cluster: ["http://a:1"] }`);
  bad(`{ url: "redis://a:1", cluster: ["redis://b:2"] }`);
  bad(`{ url: "memcached://a:1" }`);
  assert.equal(
    parseConfigText(`state: { redis: { url: "rediss+cluster://a:1,b:2" } }`, () => undefined, "r")
      .config.state.redis.url,
    "rediss+cluster://a:1,b:2",
  );
});

const TWO_KEYS = luaScript(`
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[1])
return redis.call('GET', KEYS[2])
`);

Deno.test("Redis Cluster (three nodes): the link, then the breaker's fleet on it", async (t) => {
  const cluster = await startRedisCluster();
  try {
    await t.step(
      "hash-tagged scripts run; cross-slot ones are refused; pub/sub works",
      async () => {
        const link = createRedisLink({
          url: cluster.url,
          name: "test",
          logger: captureLogger().logger,
        });
        try {
          await waitFor("the link to connect", () => link.ready());
          // Keys of many slots, so every node answers some of them.
          for (let i = 0; i < 30; i++) {
            const r = await link.eval(TWO_KEYS, [`{g${i}}:a`, `{g${i}}:b`], [`v${i}`]);
            assert.equal(r, `v${i}`);
            assert.equal(await link.command(["GET", `{g${i}}:a`]), `v${i}`);
          }
          await assert.rejects(
            () => link.eval(TWO_KEYS, ["x:a", "y:b"], ["v"]),
            (err: unknown) => err instanceof StateCommandError && /CROSSSLOT/.test(err.message),
          );
          assert.ok(link.ready(), "a refused script is not an outage");
          const got = Promise.withResolvers<string>();
          await link.subscribe("chan", (m) => got.resolve(m));
          await link.publish("chan", "hello");
          assert.equal(await got.promise, "hello");
          await cluster.stop();
          await waitFor("the link to see the outage", () => !link.ready());
          await cluster.restart();
          await waitFor("the link to reconnect", () => link.ready(), 15_000);
          assert.equal(await link.command(["GET", "{g1}:a"]), null, "the cluster came back empty");
        } finally {
          await link.close();
        }
      },
    );
    await t.step("the breaker's fleet test", async (t) => {
      await runBreakerFleet(t, cluster);
    });
  } finally {
    await cluster.dispose();
  }
});
