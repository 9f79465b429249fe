/**
 * `rediss://`: the daemon reaches a TLS-only `redis-server` (a throwaway CA the daemon trusts
 * through DENO_CERT) and shares its rate limits through it; without trusting the CA it refuses
 * the server's certificate and runs on its share. `rediss+cluster://`: the same through a
 * TLS-only three-node cluster.
 */
import assert from "node:assert/strict";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { redisServerBinary } from "../helpers/redis_server.ts";
import { chatBody, type Daemon, freePort, startDaemon } from "../integration/daemon.ts";
import { certificates } from "../helpers/tls_certs.ts";
import { startRedisCluster } from "../helpers/redis_cluster.ts";

async function mode(d: Daemon): Promise<string> {
  return (await (await fetch(d.url("/health"))).json()).rate_limiting.mode;
}

async function whenShared(d: Daemon): Promise<void> {
  for (let i = 0; i < 400 && (await mode(d)) !== "shared"; i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.equal(await mode(d), "shared");
}

/** N + 1 requests: the last is refused (the whole limit is shared, not a share of it). */
async function limitedAfter(d: Daemon, n: number): Promise<void> {
  const statuses = [];
  for (let i = 0; i <= n; i++) {
    const res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("up/gpt-4o"),
    });
    await res.body?.cancel();
    statuses.push(res.status);
  }
  assert.deepEqual(statuses, [...Array(n).fill(200), 429]);
}

Deno.test("rediss://: limits shared through a TLS-only Redis", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-tls-" });
  await certificates(dir);
  const port = freePort();
  const redis = new Deno.Command(redisServerBinary(), {
    args: ["--port", "0", "--tls-port", String(port), "--bind", "127.0.0.1"]
      .concat(["--tls-cert-file", `${dir}/server.pem`, "--tls-key-file", `${dir}/server.key`])
      .concat(["--tls-ca-cert-file", `${dir}/ca.pem`, "--tls-auth-clients", "no"])
      .concat(["--save", "", "--appendonly", "no", "--loglevel", "warning"]),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const up = startFakeUpstream();
  const config = `
server: { port: {{PORT}}, socket: "{{SOCKET}}" }
providers:
  up: { base_url: "${up.url}/v1" }
state:
  backend: redis
  redis: { url: "rediss://127.0.0.1:${port}" }
features:
  rate_limiting:
    enabled: true
    fleet_size: 2
    limits: { requests_per_minute: 2 }
`;
  try {
    const trusting = await startDaemon(config, { env: { DENO_CERT: `${dir}/ca.pem` } });
    try {
      await whenShared(trusting);
      await limitedAfter(trusting, 2);
    } finally {
      assert.equal(await trusting.stop(), 0);
    }
    const untrusting = await startDaemon(config);
    try {
      await untrusting.waitForLog("certificate", 10_000);
      assert.equal(await mode(untrusting), "fallback");
    } finally {
      assert.equal(await untrusting.stop(), 0);
    }
  } finally {
    await up.close();
    redis.kill("SIGKILL");
    await redis.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rediss+cluster://: limits shared through a TLS-only three-node Redis Cluster", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-tls-cluster-" });
  await certificates(dir);
  const cluster = await startRedisCluster({
    cert: `${dir}/server.pem`,
    key: `${dir}/server.key`,
    ca: `${dir}/ca.pem`,
  });
  const up = startFakeUpstream();
  try {
    const d = await startDaemon(
      `
server: { port: {{PORT}}, socket: "{{SOCKET}}" }
providers:
  up: { base_url: "${up.url}/v1" }
state:
  backend: redis
  redis: { cluster: [${cluster.ports.map((p) => `"rediss://127.0.0.1:${p}"`).join(", ")}] }
features:
  rate_limiting:
    enabled: true
    fleet_size: 2
    limits: { requests_per_minute: 3 }
`,
      { env: { DENO_CERT: `${dir}/ca.pem` } },
    );
    try {
      await whenShared(d);
      await limitedAfter(d, 3);
    } finally {
      assert.equal(await d.stop(), 0);
    }
  } finally {
    await up.close();
    await cluster.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
