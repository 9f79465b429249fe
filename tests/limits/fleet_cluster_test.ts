import { startRedisCluster } from "../helpers/redis_cluster.ts";
import { runLimitsFleet } from "./fleet.ts";

Deno.test("fleet: the same limits through a three-node Redis Cluster", async (t) => {
  const cluster = await startRedisCluster();
  try {
    await runLimitsFleet(t, cluster.url, cluster);
  } finally {
    await cluster.dispose();
  }
});
