/**
 * What only the Redis store has: keys and channels under its prefix, several stores on one
 * link, fleet-wide atomicity across links, and Redis going away.
 */
import assert from "node:assert/strict";
import { createClient } from "redis";
import { createRedisLink, type RedisLink } from "../../src/state/redis_link.ts";
import { createRedisStateStore, DEFAULT_STATE_PREFIX } from "../../src/state/redis_store.ts";
import { StateUnavailable } from "../../src/state/store.ts";
import { type RedisServer, startRedisServer } from "../helpers/redis_server.ts";
import { captureLogger, waitFor, within } from "./support.ts";

async function connected(server: RedisServer): Promise<RedisLink> {
  const link = createRedisLink({ url: server.url, name: "test", logger: captureLogger().logger });
  await waitFor("the link to connect", () => link.ready());
  return link;
}

Deno.test("redis store: keys and channels live under the prefix; stores share a link", async () => {
  const server = await startRedisServer();
  const link = await connected(server);
  const raw = createClient({ url: server.url, maintNotifications: "disabled" });
  raw.on("error", () => {});
  await raw.connect();
  const a = createRedisStateStore({ link });
  const b = createRedisStateStore({ link, prefix: "other:" });
  try {
    await a.set("k", "from-a", { ttlMs: 60_000 });
    await b.incr("k", 7);
    assert.equal(await raw.get(`${DEFAULT_STATE_PREFIX}k`), "from-a");
    assert.equal(await raw.get("other:k"), "7");
    assert.equal(await a.get("k"), "from-a");
    assert.equal(await b.get("k"), "7");
    assert.deepEqual((await raw.keys("*")).sort(), ["other:k", `${DEFAULT_STATE_PREFIX}k`]);

    const got = Promise.withResolvers<string>();
    await b.subscribe("ch", got.resolve);
    await raw.publish("other:ch", "hello");
    assert.equal(await within("the prefixed channel", got.promise), "hello");

    // Closing one store leaves the link, and the other store, working.
    await a.close();
    assert.equal(link.ready(), true);
    assert.equal(await b.get("k"), "7");
    await assert.rejects(a.get("k"), StateUnavailable);
  } finally {
    await raw.close();
    await b.close();
    await link.close();
    await server.stop();
  }
});

Deno.test("redis store: counters and scripts are atomic across sidecars", async () => {
  const server = await startRedisServer();
  const links = [await connected(server), await connected(server)];
  const [a, b] = links.map((link) => createRedisStateStore({ link, prefix: "fleet:" }));
  try {
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a! : b!).incr("hits", 1, 60_000)),
    );
    assert.equal(await a!.get("hits"), "40");
    const wins = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 === 0 ? a! : b!).set("lock", `${i}`, {
          ifAbsent: true,
        })),
    );
    assert.equal(wins.filter(Boolean).length, 1);
    // A message from one sidecar reaches the other.
    const got = Promise.withResolvers<string>();
    await b!.subscribe("events", got.resolve);
    await a!.publish("events", "opened");
    assert.equal(await within("the fleet message", got.promise), "opened");
  } finally {
    await a!.close();
    await b!.close();
    for (const link of links) await link.close();
    await server.stop();
  }
});

Deno.test("redis store: unavailable at once while Redis is away, whole again when it returns", async () => {
  const server = await startRedisServer();
  const link = await connected(server);
  const s = createRedisStateStore({ link });
  const messages: string[] = [];
  const arrived = Promise.withResolvers<void>();
  await s.subscribe("ch", (m) => {
    messages.push(m);
    arrived.resolve();
  });
  try {
    assert.equal(s.available(), true);
    await server.stop();
    await waitFor("the store to notice", () => !s.available());
    const started = performance.now();
    await assert.rejects(s.get("k"), StateUnavailable);
    await assert.rejects(s.incr("k", 1), StateUnavailable);
    await assert.rejects(s.publish("ch", "lost"), StateUnavailable);
    assert.ok(performance.now() - started < 100, "calls must not wait on a Redis that is away");

    await server.restart();
    await waitFor("the store to return", () => s.available(), 10_000);
    assert.equal(await s.incr("k", 1), 1); // restarted empty: nothing persisted
    await s.publish("ch", "back");
    await within("the message after the restart", arrived.promise);
    assert.deepEqual(messages, ["back"]);
  } finally {
    await s.close();
    await link.close();
    await server.stop();
  }
});
