// deno-lint-ignore-file no-console
/**
 * The breaker's cost on the closed path: the same load through Pilotfish with the breaker
 * off, on with the memory backend, and on with the Redis backend (a redis-server of its own
 * on a free loopback port). Target: Redis adds under 5% to p50 compared with memory.
 *
 *   deno task bench   (runs after the main table)
 */
import { openLoop, percentile, sleep, type Target, tcpClient, warmUp } from "./load.ts";
import { type Service, spawnRedis, spawnService } from "./proc.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const RATE = Number(Deno.env.get("BENCH_RATE") ?? 200);
const SECONDS = Number(Deno.env.get("BENCH_BREAKER_SECONDS") ?? 9);
const ROUNDS = 6;
const services: Service[] = [];
const clients: Deno.HttpClient[] = [];

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = l.addr;
  l.close();
  return port;
}

async function ready(url: string): Promise<void> {
  const client = tcpClient();
  try {
    for (let i = 0; i < 300; i++) {
      try {
        const res = await fetch(url, { client });
        await res.body?.cancel();
        if (res.ok) return;
      } catch {
        // not up yet
      }
      await sleep(100);
    }
    throw new Error(`${url} never became ready`);
  } finally {
    client.close();
  }
}

async function main() {
  const tmp = await Deno.makeTempDir({ prefix: "pilotfish-bench-breaker-" });
  const upstream = spawnService("upstream", Deno.execPath(), [
    "run",
    "--quiet",
    "--allow-net=127.0.0.1",
    `${ROOT}bench/upstream.ts`,
  ], { cwd: ROOT });
  services.push(upstream);
  const upstreamPort = (JSON.parse(await upstream.firstLine) as { port: number }).port;
  const redisPort = freePort();
  const redis = spawnRedis(redisPort, { cwd: tmp });
  services.push(redis);

  const variants = [
    { name: "breaker off", block: "" },
    { name: "breaker memory", block: "features:\n  circuit_breaker:\n    enabled: true\n" },
    {
      name: "breaker redis",
      block:
        `features:\n  circuit_breaker:\n    enabled: true\n    backend: redis\n    redis: { address: "127.0.0.1:${redisPort}" }\n`,
    },
  ];
  const targets: Target[] = [];
  for (const [i, v] of variants.entries()) {
    const port = freePort();
    const config = `${tmp}/config-${i}.yaml`;
    await Deno.writeTextFile(
      config,
      `server:\n  port: ${port}\n  socket: ""\n  reload_interval: 0\n  drain_timeout: 1s\nlogging:\n  level: warn\nproviders:\n  up:\n    base_url: http://127.0.0.1:${upstreamPort}/v1\n    keys: [{ key: sk-bench }]\n${v.block}`,
    );
    services.push(
      spawnService(v.name, "sh", ["scripts/start.sh", "--config", config], {
        cwd: ROOT,
        env: { DENO: Deno.execPath() },
      }),
    );
    await ready(`http://127.0.0.1:${port}/ready`);
    const client = tcpClient();
    clients.push(client);
    targets.push({ name: v.name, url: `http://127.0.0.1:${port}/v1/chat/completions`, client });
  }
  for (const t of targets) await warmUp(t, 16, 1);

  const latencies = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(i + round) % targets.length]!;
      const r = await openLoop(t, RATE, SECONDS / ROUNDS);
      latencies.get(t.name)!.push(...r.latencies);
    }
  }
  const p50 = new Map<string, number>();
  console.log(`\nBreaker overhead on the closed path (${RATE} req/s open loop, ${SECONDS}s each)`);
  console.log("variant           p50 ms  p99 ms");
  for (const t of targets) {
    const sorted = latencies.get(t.name)!.sort((a, b) => a - b);
    p50.set(t.name, percentile(sorted, 50));
    console.log(
      `${t.name.padEnd(16)} ${percentile(sorted, 50).toFixed(3).padStart(7)} ${
        percentile(sorted, 99).toFixed(3).padStart(7)
      }`,
    );
  }
  const off = p50.get("breaker off")!;
  const mem = p50.get("breaker memory")!;
  const red = p50.get("breaker redis")!;
  const pct = (a: number, b: number) => `${(((a - b) / b) * 100).toFixed(1)}%`;
  console.log(`  memory vs off: ${pct(mem, off)}; redis vs memory: ${pct(red, mem)}`);
  console.log(`  ${red <= mem * 1.05 ? "OK  " : "MISS"}  redis adds under 5% to p50 (vs memory)`);
  await Deno.remove(tmp, { recursive: true });
}

try {
  await main();
} finally {
  for (const c of clients) c.close();
  for (const s of services.reverse()) await s.stop();
}
