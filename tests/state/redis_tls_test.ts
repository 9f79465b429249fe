/**
 * `rediss://`: the daemon reaches a TLS-only `redis-server` (a throwaway CA the daemon trusts
 * through DENO_CERT) and shares its rate limits through it; without trusting the CA it refuses
 * the server's certificate and runs on its share.
 */
import assert from "node:assert/strict";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { redisServerBinary } from "../helpers/redis_server.ts";
import { chatBody, type Daemon, freePort, startDaemon } from "../integration/daemon.ts";

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (!r.success) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(r.stderr)}`);
}

/** A CA and a certificate for 127.0.0.1 signed by it, in `dir`. */
async function certificates(dir: string): Promise<void> {
  await openssl(
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem"]
      .concat(["-days", "2", "-subj", "/CN=pilotfish-test-ca"]),
    dir,
  );
  await openssl(
    ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr"]
      .concat(["-subj", "/CN=127.0.0.1"]),
    dir,
  );
  await Deno.writeTextFile(`${dir}/ext.cnf`, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await openssl(
    ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key"]
      .concat(["-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"]),
    dir,
  );
}

async function mode(d: Daemon): Promise<string> {
  return (await (await fetch(d.url("/health"))).json()).rate_limiting.mode;
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
      for (let i = 0; i < 200 && (await mode(trusting)) !== "shared"; i++) {
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.equal(await mode(trusting), "shared");
      const statuses = [];
      for (let i = 0; i < 3; i++) {
        const res = await fetch(trusting.url("/v1/chat/completions"), {
          method: "POST",
          body: chatBody("up/gpt-4o"),
        });
        await res.body?.cancel();
        statuses.push(res.status);
      }
      assert.deepEqual(statuses, [200, 200, 429], "the whole limit, shared: not a share of 1");
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
