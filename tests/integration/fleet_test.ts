import { startRedisServer } from "../helpers/redis_server.ts";
import { runBreakerFleet } from "./fleet_breaker.ts";

Deno.test("fleet: three sidecars share breaker state through one Redis, and survive losing it", async (t) => {
  const redis = await startRedisServer();
  try {
    await runBreakerFleet(t, redis);
  } finally {
    await redis.stop();
  }
});
