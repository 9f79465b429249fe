/**
 * The daemon's shared Redis link against a real `redis-server`: features on one Redis share
 * one connection pair, each keeps the link's contract as its own (readiness after its own
 * hooks, its own subscriptions, its own close), and a member's failing hook costs only it.
 */
import assert from "node:assert/strict";
import { createClient } from "redis";
import { openRedisLink } from "../../src/state/redis_pool.ts";
import type { RedisCommands } from "../../src/state/redis_link.ts";
import { StateUnavailable } from "../../src/state/store.ts";
import { type RedisServer, startRedisServer } from "../helpers/redis_server.ts";
import { captureLogger, waitFor } from "./support.ts";
import { startDaemon } from "../integration/daemon.ts";

async function rawClient(server: RedisServer) {
  const raw = createClient({ url: server.url, maintNotifications: "disabled" });
  raw.on("error", () => {});
  await raw.connect();
  return raw;
}

/** Connections whose client name is Pilotfish's (the raw client has none). */
async function pilotfishConnections(raw: Awaited<ReturnType<typeof rawClient>>) {
  const list = await raw.sendCommand(["CLIENT", "LIST"]) as string;
  return list.split("\n").filter((l) => / name=pilotfish-/.test(l)).length;
}

Deno.test("pool: features on one Redis share one connection pair; it closes with the last", async () => {
  const server = await startRedisServer();
  const raw = await rawClient(server);
  const { logger } = captureLogger();
  try {
    const names = ["breaker", "keys", "limits", "usage", "fleet", "responses"];
    const links = names.map((name) => openRedisLink({ url: server.url, name, logger }));
    await waitFor("every member ready", () => links.every((l) => l.ready()));
    assert.equal(await pilotfishConnections(raw), 2);
    // Another option set (the cache's shorter deadline) is another link.
    const cache = openRedisLink({ url: server.url, name: "cache", logger, commandTimeoutMs: 250 });
    await waitFor("the cache link", () => cache.ready());
    assert.equal(await pilotfishConnections(raw), 4);
    await cache.close();

    for (const link of links.slice(1)) await link.close();
    const [last] = links;
    assert.equal(last!.ready(), true, "the remaining member keeps the link");
    assert.equal(await last!.command(["PING"]), "PONG");
    await assert.rejects(links[1]!.command(["PING"]), StateUnavailable, "a closed member refuses");
    await last!.close();
    for (let i = 0; (await pilotfishConnections(raw)) > 0; i++) {
      assert.ok(i < 500, "the link's connections are closed");
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    await raw.close();
    await server.stop();
  }
});

Deno.test("pool: a member joining a ready link runs its hooks after its subscription, then turns ready", async () => {
  const server = await startRedisServer();
  const { logger } = captureLogger();
  const first = openRedisLink({ url: server.url, name: "first", logger });
  const firstStates: boolean[] = [];
  first.onStateChange((ready) => firstStates.push(ready));
  try {
    await waitFor("first ready", () => first.ready());

    const late = openRedisLink({ url: server.url, name: "late", logger });
    const states: boolean[] = [];
    const got: string[] = [];
    const seen: string[] = [];
    late.onStateChange((ready) => states.push(ready));
    late.onConnect(async (session: RedisCommands) => {
      // Subscribed before the hook: what is published now reaches the member.
      await first.publish("pool-test", "during-hook");
      seen.push(String(await session.command(["PING"])));
    });
    void late.subscribe("pool-test", (m) => got.push(m));
    assert.equal(late.ready(), false, "not ready before its hooks ran");
    await waitFor("late ready", () => late.ready());
    assert.deepEqual(seen, ["PONG"]);
    assert.deepEqual(states, [true]);
    await waitFor("the message", () => got.includes("during-hook"));
    assert.deepEqual(firstStates, [true], "the first member saw no transition");
    await late.close();
    assert.deepEqual(states, [true, false], "close reports the member unready");
    assert.equal(first.ready(), true);
  } finally {
    await first.close();
    await server.stop();
  }
});

Deno.test("pool: a member whose hook fails stays unready and retries; the others stay ready", async () => {
  const server = await startRedisServer();
  const { logger, lines } = captureLogger();
  const good = openRedisLink({ url: server.url, name: "good", logger });
  const flaky = openRedisLink({ url: server.url, name: "flaky", logger });
  let failures = 2;
  flaky.onConnect(() =>
    failures-- > 0 ? Promise.reject(new Error("resync refused")) : Promise.resolve()
  );
  try {
    await waitFor("good ready", () => good.ready());
    assert.equal(await good.command(["PING"]), "PONG");
    await waitFor("flaky ready after its retries", () => flaky.ready(), 10_000);
    assert.equal(failures, -1);
    assert.ok(lines.some((l) => /flaky: Redis resync failed; retrying/.test(l.msg)));
  } finally {
    await Promise.all([good.close(), flaky.close()]);
    await server.stop();
  }
});

Deno.test("pool: subscriptions are per member; Redis restarting turns every member unready, then ready again after its hooks", async () => {
  const server = await startRedisServer();
  const { logger, lines } = captureLogger();
  const a = openRedisLink({ url: server.url, name: "a", logger });
  const b = openRedisLink({ url: server.url, name: "b", logger });
  let bHooks = 0;
  b.onConnect(() => Promise.resolve(void bHooks++));
  const gotA: string[] = [];
  const gotB: string[] = [];
  const statesA: boolean[] = [];
  a.onStateChange((r) => statesA.push(r));
  try {
    await waitFor("both ready", () => a.ready() && b.ready());
    await a.subscribe("ch", (m) => gotA.push(m));
    const unsubscribeB = await b.subscribe("ch", (m) => gotB.push(m));
    await a.publish("ch", "one");
    await waitFor("both got one", () => gotA.includes("one") && gotB.includes("one"));
    await unsubscribeB();
    await a.publish("ch", "two");
    await waitFor("a got two", () => gotA.includes("two"));
    assert.equal(gotB.includes("two"), false);

    await server.stop();
    await waitFor("both unready", () => !a.ready() && !b.ready());
    await server.restart();
    await waitFor("both ready again", () => a.ready() && b.ready(), 10_000);
    assert.equal(bHooks, 2, "b's hook ran on the first connection and on the new one");
    assert.deepEqual(statesA, [true, false, true]);
    // The outage and the return, once each, naming the features on the link.
    const link = lines.filter((l) => l.level !== "debug" && l.msg.startsWith("redis "))
      .map((l) => l.msg);
    assert.deepEqual(link, [
      "redis (a, b): Redis unreachable; working without it until it returns",
      "redis (a, b): Redis reachable again; state resynchronised",
    ]);
    await b.publish("ch", "three");
    await waitFor("a resubscribed", () => gotA.includes("three"));
  } finally {
    await Promise.all([a.close(), b.close()]);
    await server.stop();
  }
});

Deno.test("pool: a sidecar with every Redis feature on holds 4 Redis connections (was 14)", async () => {
  const server = await startRedisServer();
  const raw = await rawClient(server);
  const daemon = await startDaemon(`
server: { port: {{PORT}}, socket: {{SOCKET}}, admin_token: "admin-token-for-pool-test" }
providers: { mock: {} }
state: { backend: redis, redis: { url: "${server.url}" } }
features:
  circuit_breaker: { enabled: true }
  rate_limiting:
    enabled: true
    limits: { requests_per_minute: 1000 }
cache: { enabled: true, backend: redis }
app_keys: { enabled: true }
`);
  try {
    const res = await fetch(daemon.url("/v1/chat/completions"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "mock/echo", messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    // breaker, keys, limits, usage, fleet and responses share one pair; the cache (its own
    // 250 ms deadline) has the other.
    let count = 0;
    for (let i = 0; i < 500 && (count = await pilotfishConnections(raw)) !== 4; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(count, 4);
    const names = (await raw.sendCommand(["CLIENT", "LIST"]) as string).match(/name=\S+/g) ?? [];
    assert.equal(names.filter((n) => n.startsWith("name=pilotfish-redis-")).length, 4);
  } finally {
    await daemon.stop();
    await raw.close();
    await server.stop();
  }
});

Deno.test("pool: a member's hung resync fails it alone, within its deadline; its commands wait for it", async () => {
  const server = await startRedisServer();
  const { logger, lines } = captureLogger();
  const good = openRedisLink({ url: server.url, name: "good", logger });
  try {
    await waitFor("good ready", () => good.ready());
    const slow = openRedisLink({ url: server.url, name: "slow", logger });
    let release = () => {};
    let runs = 0;
    slow.onConnect(() => {
      runs++;
      // The first resync hangs until released; the retry succeeds.
      return runs === 1 ? new Promise<void>((r) => (release = r)) : Promise.resolve();
    });
    await waitFor("the first resync started", () => runs === 1);
    await assert.rejects(slow.command(["PING"]), StateUnavailable, "refused until resynced");
    assert.equal(await good.command(["PING"]), "PONG", "the others carry on");
    await waitFor("slow ready after its retry", () => slow.ready(), 10_000);
    assert.equal(runs, 2);
    assert.ok(
      lines.some((l) => /slow: Redis resync took over 2000 ms/.test(String(l.fields?.error))),
    );
    release();
    assert.equal(await slow.command(["PING"]), "PONG");
    await slow.close();
  } finally {
    await good.close();
    await server.stop();
  }
});

Deno.test("pool: a member closed while its subscription is being made gets no message", async () => {
  const server = await startRedisServer();
  const { logger } = captureLogger();
  const stays = openRedisLink({ url: server.url, name: "stays", logger });
  const leaves = openRedisLink({ url: server.url, name: "leaves", logger });
  try {
    await waitFor("both ready", () => stays.ready() && leaves.ready());
    const got: string[] = [];
    const kept: string[] = [];
    await stays.subscribe("ch", (m) => kept.push(m));
    const subscribing = leaves.subscribe("ch", (m) => got.push(m));
    await leaves.close();
    await subscribing;
    await stays.publish("ch", "after-close");
    await waitFor("the remaining member got it", () => kept.includes("after-close"));
    assert.deepEqual(got, []);
  } finally {
    await stays.close();
    await server.stop();
  }
});
