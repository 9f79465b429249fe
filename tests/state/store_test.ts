/**
 * The `StateStore` contract on both backends: memory (on an injected clock) and Redis (a real
 * `redis-server`, one link per case, each case under its own prefix).
 */
import { createMemoryStateStore } from "../../src/state/memory_store.ts";
import { createRedisLink } from "../../src/state/redis_link.ts";
import { createRedisStateStore } from "../../src/state/redis_store.ts";
import { runStateStoreContract } from "../contract/state_store.ts";
import { type RedisServer, startRedisServer } from "../helpers/redis_server.ts";
import { captureLogger, waitFor } from "./support.ts";

runStateStoreContract("memory", () => {
  let clock = Date.now();
  return {
    store: createMemoryStateStore({ now: () => clock }),
    advance: (ms) => {
      clock += ms;
      return Promise.resolve();
    },
  };
});

let server: RedisServer | null = null;
runStateStoreContract("redis", async () => {
  if (!server) throw new Error("redis-server not started");
  const link = createRedisLink({ url: server.url, name: "test", logger: captureLogger().logger });
  await waitFor("the link to connect", () => link.ready());
  return {
    store: createRedisStateStore({ link, prefix: `pftest:${crypto.randomUUID()}:` }),
    // Redis expires keys on its own clock: the only way to age a TTL is to let time pass.
    advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    dispose: () => link.close(),
  };
}, {
  before: async () => {
    server = await startRedisServer();
  },
  after: async () => {
    await server?.stop();
    server = null;
  },
});
