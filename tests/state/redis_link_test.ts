/**
 * The Redis link against a real `redis-server` each test starts on a free port: connect,
 * command deadline and heartbeat on a hung Redis, EVALSHA → EVAL after SCRIPT FLUSH,
 * resubscribe after a restart, `onConnect` hooks, and the backoff schedule (on hand-fired
 * timers, so no test waits for a backoff to elapse).
 */
import assert from "node:assert/strict";
import { createClient } from "redis";
import {
  createRedisLink,
  luaScript,
  type RedisLink,
  type RedisLinkOptions,
} from "../../src/state/redis_link.ts";
import { StateCommandError, StateUnavailable } from "../../src/state/store.ts";
import { type RedisServer, startRedisServer } from "../helpers/redis_server.ts";
import { captureLogger, manualTimers, waitFor, within } from "./support.ts";

async function connected(
  server: RedisServer,
  opts: Partial<RedisLinkOptions> = {},
): Promise<RedisLink> {
  const link = createRedisLink({
    url: server.url,
    name: "test",
    logger: captureLogger().logger,
    ...opts,
  });
  await waitFor("the link to connect", () => link.ready());
  return link;
}

async function rawClient(server: RedisServer) {
  const raw = createClient({ url: server.url, maintNotifications: "disabled" });
  raw.on("error", () => {});
  await raw.connect();
  return raw;
}

/** `calls` of one command in INFO commandstats (0 when never called). */
async function calls(raw: Awaited<ReturnType<typeof rawClient>>, command: string) {
  const info = await raw.info("commandstats");
  const m = info.match(new RegExp(`cmdstat_${command}:calls=(\\d+)`));
  return m ? Number(m[1]) : 0;
}

Deno.test("link: connects, runs commands, reports ready transitions", async () => {
  const server = await startRedisServer();
  const { logger, lines } = captureLogger();
  const link = createRedisLink({ url: server.url, name: "test", logger });
  const states: boolean[] = [];
  link.onStateChange((ready) => states.push(ready));
  try {
    assert.equal(link.ready(), false);
    // Not connected yet: refused at once, never queued.
    await assert.rejects(link.command(["PING"]), StateUnavailable);
    await waitFor("ready", () => link.ready());
    assert.deepEqual(states, [true]);
    assert.equal(await link.command(["PING"]), "PONG");
    assert.equal(await link.command(["SET", "k", "v"]), "OK");
    assert.equal(await link.command(["GET", "k"]), "v");
    assert.equal(await link.command(["GET", "missing"]), null);
    assert.deepEqual(await link.command(["MGET", "k", "missing"]), ["v", null]);
    // A command error is the caller's: the link stays up.
    await assert.rejects(link.command(["INCR", "k"]), StateCommandError);
    await assert.rejects(link.command(["NOSUCHCOMMAND"]), StateCommandError);
    assert.equal(link.ready(), true);
    assert.deepEqual(lines.filter((l) => l.level === "warn"), []);
  } finally {
    await link.close();
    await server.stop();
  }
  assert.deepEqual(states, [true, false]);
  await assert.rejects(link.command(["PING"]), StateUnavailable);
});

Deno.test("link: an invalid URL is refused at construction", () => {
  for (const url of ["http://127.0.0.1:6379", "127.0.0.1:6379", ""]) {
    assert.throws(
      () => createRedisLink({ url, name: "test", logger: captureLogger().logger }),
      TypeError,
      url,
    );
  }
});

Deno.test("link: a command on a hung Redis fails at its deadline, then the link recovers", async () => {
  const server = await startRedisServer();
  const link = await connected(server, { commandTimeoutMs: 100, heartbeatMs: 60_000 });
  try {
    server.pause();
    const started = performance.now();
    await assert.rejects(link.command(["GET", "k"]), StateUnavailable);
    const took = performance.now() - started;
    assert.ok(took >= 90 && took < 1_000, `took ${took} ms`);
    // The pair is dropped: later calls are refused at once instead of waiting again.
    assert.equal(link.ready(), false);
    const again = performance.now();
    await assert.rejects(link.command(["GET", "k"]), StateUnavailable);
    assert.ok(performance.now() - again < 50);
    server.resume();
    await waitFor("the link to reconnect", () => link.ready(), 10_000);
    assert.equal(await link.command(["PING"]), "PONG");
  } finally {
    server.resume();
    await link.close();
    await server.stop();
  }
});

Deno.test("link: an idle link notices a hung Redis by heartbeat", async () => {
  const server = await startRedisServer();
  const link = await connected(server, { commandTimeoutMs: 100, heartbeatMs: 50 });
  try {
    server.pause();
    const ms = await waitFor("the heartbeat to notice", () => !link.ready(), 2_000);
    assert.ok(ms < 1_000, `took ${ms} ms`);
    server.resume();
    await waitFor("the link to reconnect", () => link.ready(), 10_000);
  } finally {
    server.resume();
    await link.close();
    await server.stop();
  }
});

Deno.test("link: scripts go by EVALSHA, and by EVAL once after SCRIPT FLUSH", async () => {
  const server = await startRedisServer();
  const link = await connected(server);
  const raw = await rawClient(server);
  const script = luaScript("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}");
  try {
    assert.deepEqual(await link.eval(script, ["k"], ["a", 41]), ["k", "a", 42]);
    assert.equal(await calls(raw, "eval"), 1); // unknown at first: NOSCRIPT, then EVAL
    assert.deepEqual(await link.eval(script, ["k"], ["b", 1]), ["k", "b", 2]);
    assert.deepEqual(await link.eval(script, ["k"], ["c", 2]), ["k", "c", 3]);
    assert.equal(await calls(raw, "eval"), 1); // cached since: EVALSHA only
    assert.equal(await calls(raw, "evalsha"), 3);

    await raw.sendCommand(["SCRIPT", "FLUSH"]);
    assert.deepEqual(await link.eval(script, ["k"], ["d", 3]), ["k", "d", 4]);
    assert.equal(await calls(raw, "eval"), 2);
    assert.deepEqual(await link.eval(script, ["k"], ["e", 4]), ["k", "e", 5]);
    assert.equal(await calls(raw, "eval"), 2);

    // A script that fails at run time is a command error; the link stays up.
    const bad = luaScript("return redis.call('INCR', KEYS[1])");
    await raw.set("text", "abc");
    await assert.rejects(link.eval(bad, ["text"], []), StateCommandError);
    assert.equal(link.ready(), true);
  } finally {
    await raw.close();
    await link.close();
    await server.stop();
  }
});

Deno.test("link: subscriptions are restored after Redis restarts", async () => {
  const server = await startRedisServer();
  const { logger, lines } = captureLogger();
  const link = createRedisLink({ url: server.url, name: "test", logger });
  const got: string[] = [];
  let arrived = Promise.withResolvers<void>();
  const off = await link.subscribe("ch", (m) => {
    got.push(m);
    arrived.resolve();
  });
  try {
    // Subscribed while still connecting: in place by the time the link is ready.
    await waitFor("ready", () => link.ready());
    await link.publish("ch", "before");
    await within("the first message", arrived.promise);

    await server.stop();
    await waitFor("the link to notice", () => !link.ready());
    await assert.rejects(link.publish("ch", "lost"), StateUnavailable);
    await server.restart();
    await waitFor("the link to reconnect", () => link.ready(), 10_000);

    arrived = Promise.withResolvers<void>();
    const raw = await rawClient(server);
    try {
      await raw.publish("ch", "after"); // from another client: the server's subscription
      await within("the message after the restart", arrived.promise);
    } finally {
      await raw.close();
    }
    assert.deepEqual(got, ["before", "after"]);
    // The outage was logged once, the return once.
    assert.equal(lines.filter((l) => l.level === "warn").length, 1);
    assert.ok(lines.some((l) => l.level === "info" && l.msg.includes("reachable again")));

    // Unsubscribed: nothing more arrives (a second channel proves delivery still runs).
    await off();
    const other = Promise.withResolvers<string>();
    await link.subscribe("other", other.resolve);
    await link.publish("ch", "gone");
    await link.publish("other", "done");
    assert.equal(await within("the other channel", other.promise), "done");
    assert.deepEqual(got, ["before", "after"]);
  } finally {
    await link.close();
    await server.stop();
  }
});

Deno.test("link: onConnect hooks run on every pair before ready; a failing hook is retried", async () => {
  const server = await startRedisServer();
  const link = createRedisLink({
    url: server.url,
    name: "test",
    logger: captureLogger().logger,
    backoff: { minMs: 10, maxMs: 20 },
  });
  const seen: { ready: boolean; pong: unknown }[] = [];
  let failNext = true;
  link.onConnect(async (redis) => {
    seen.push({ ready: link.ready(), pong: await redis.command(["PING"]) });
    if (failNext) {
      failNext = false;
      throw new Error("not yet");
    }
    await redis.command(["SET", "synced", String(seen.length)]);
  });
  try {
    await waitFor("ready", () => link.ready());
    // Attempt 1 threw and was dropped; attempt 2 synced. Neither ran with the link ready.
    assert.deepEqual(seen, [{ ready: false, pong: "PONG" }, { ready: false, pong: "PONG" }]);
    assert.equal(await link.command(["GET", "synced"]), "2");

    await server.stop();
    await waitFor("the link to notice", () => !link.ready());
    await server.restart();
    await waitFor("the link to reconnect", () => link.ready(), 10_000);
    assert.equal(seen.length, 3);
    assert.equal(await link.command(["GET", "synced"]), "3");
  } finally {
    await link.close();
    await server.stop();
  }
});

Deno.test("link: reconnects with capped exponential backoff, reset once connected", async () => {
  // A port nobody listens on yet: every attempt is refused until the server starts there.
  const server = await startRedisServer();
  await server.stop();
  const timers = manualTimers();
  const { logger, lines } = captureLogger();
  const attemptMs = 60_000; // the attempt deadline: never fired here, told apart by its delay
  const link = createRedisLink({
    url: server.url,
    name: "test",
    logger,
    timers,
    random: () => 0, // the low end of the jitter: half of each step
    backoff: { minMs: 100, maxMs: 1_000 },
    attemptTimeoutMs: attemptMs,
    heartbeatMs: 30_000,
  });
  const retry = () => timers.next((ms) => ms !== attemptMs && ms !== 30_000);
  try {
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      const t = await within("a retry", retry());
      delays.push(t.ms);
      t.fire();
    }
    assert.deepEqual(delays, [50, 100, 200, 400, 500, 500, 500]);
    assert.equal(link.ready(), false);
    assert.equal(lines.filter((l) => l.level === "warn").length, 1); // logged once

    await server.restart();
    (await within("a retry", retry())).fire();
    await waitFor("the link to connect", () => link.ready());
    // The heartbeat is armed; no retry is pending. Awaited, not sampled: one loaded CI run
    // still had an attempt deadline (60 s) pending when ready() was first seen.
    await waitFor("only the heartbeat pending", () => timers.pending().join() === "30000");
    assert.deepEqual(timers.pending(), [30_000]);

    // Lost again: the schedule starts over from the first step.
    await server.stop();
    const t = await within("a retry", retry());
    assert.equal(t.ms, 50);
    assert.equal(link.ready(), false);
  } finally {
    await link.close();
    await server.stop();
  }
  // close() cancelled every timer it owned.
  assert.deepEqual(timers.pending(), []);
});

Deno.test("link: close() while connecting to nothing returns promptly", async () => {
  const server = await startRedisServer();
  await server.stop();
  const link = createRedisLink({ url: server.url, name: "test", logger: captureLogger().logger });
  const started = performance.now();
  await link.close();
  assert.ok(performance.now() - started < 1_500);
  assert.equal(link.ready(), false);
  await assert.rejects(link.subscribe("ch", () => {}), StateUnavailable);
});

Deno.test("a link that starts with Redis away says it is reachable once it is, not 'again'", async () => {
  const server = await startRedisServer();
  await server.stop();
  const { logger, lines } = captureLogger();
  const link = createRedisLink({
    url: server.url,
    name: "test",
    logger,
    backoff: { minMs: 20, maxMs: 50 },
  });
  try {
    await waitFor("the outage to be logged", () => lines.some((l) => l.level === "warn"));
    await server.restart();
    await waitFor("the link to connect", () => link.ready(), 10_000);
    const info = lines.filter((l) => l.level === "info").map((l) => l.msg);
    assert.ok(info.includes("test: Redis reachable"), info.join(" | "));
    assert.ok(!info.some((m) => m.includes("again")), info.join(" | "));
  } finally {
    await link.close();
    await server.stop();
  }
});
