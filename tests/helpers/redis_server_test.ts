import assert from "node:assert/strict";
import { REDIS_SERVER_MISSING, redisServerBinary, startRedisServer } from "./redis_server.ts";

Deno.test("redis-server helper: a missing binary is one line saying what to install", async () => {
  const empty = await Deno.makeTempDir({ prefix: "pilotfish-nopath-" });
  try {
    assert.throws(() => redisServerBinary(`${empty}:`), (e: unknown) => e === REDIS_SERVER_MISSING);
    assert.equal(REDIS_SERVER_MISSING, "redis-server not found: apt-get install redis-server");
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});

Deno.test("redis-server helper: finds the installed binary and serves PING", async () => {
  assert.match(redisServerBinary(), /\/redis-server$/);
  const server = await startRedisServer();
  try {
    assert.match(server.url, /^redis:\/\/127\.0\.0\.1:\d+$/);
  } finally {
    await server.stop();
  }
});
