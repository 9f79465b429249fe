import { startRedisServer } from "../helpers/redis_server.ts";
import { runLimitsFleet } from "./fleet.ts";

Deno.test("fleet: three sidecars share 300 req/min and 20,000 tok/min through one Redis", async (t) => {
  const redis = await startRedisServer();
  try {
    await runLimitsFleet(t, redis.url, redis);
  } finally {
    await redis.stop();
  }
});
