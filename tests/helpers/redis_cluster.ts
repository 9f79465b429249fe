/**
 * A throwaway three-node Redis Cluster for tests: `redis-server --cluster-enabled yes` ×3 on
 * free ports, joined by `redis-cli --cluster create … --cluster-replicas 0 --cluster-yes`.
 * Persistence is off, so `restart()` brings the cluster back (its nodes.conf keeps the slot
 * map) with no data, like the single server of redis_server.ts. With `tls`, TLS only.
 * @module
 */
import { freePort } from "../integration/daemon.ts";
import { redisServerBinary } from "./redis_server.ts";

export interface RedisCluster {
  readonly ports: readonly number[];
  /** The first node's port. */
  readonly port: number;
  /** `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`. */
  readonly url: string;
  /** SIGKILL every node (an outage) and wait for them to exit. */
  stop(): Promise<void>;
  /** Start every node again on its port and wait for `cluster_state:ok`. */
  restart(): Promise<void>;
  /** Stop for good and remove the nodes' files. */
  dispose(): Promise<void>;
}

const SIZE = 3;

async function cli(args: string[]): Promise<{ ok: boolean; out: string }> {
  const r = await new Deno.Command("redis-cli", { args, stdin: "null" }).output();
  return {
    ok: r.success,
    out: new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr),
  };
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Redis Cluster: ${what} not within ${timeoutMs} ms`);
}

/** TLS: the nodes speak only TLS (also between themselves) with these PEM files. */
export interface ClusterTls {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

/**
 * Ports come from freePort(), which frees them again before the nodes bind: under
 * `deno test --parallel` another test can take one first. A node that exits while starting
 * (its log then says why), or a start that times out, makes the whole cluster start again on
 * fresh ports.
 */
export async function startRedisCluster(tls?: ClusterTls): Promise<RedisCluster> {
  const failures: string[] = [];
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      return await startOnce(tls);
    } catch (err) {
      // Not an Error: redis-server is missing, and another attempt will not find it.
      if (!(err instanceof Error)) throw err;
      failures.push(err.message);
    }
  }
  throw new Error(`Redis Cluster did not start in 3 attempts:\n${failures.join("\n")}`);
}

async function startOnce(tls?: ClusterTls): Promise<RedisCluster> {
  const binary = redisServerBinary();
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-cluster-" });
  const ports = Array.from({ length: SIZE }, () => freePort());
  // Each node's cluster bus port, given explicitly: the default (port + 10000) overflows for
  // the high ephemeral ports freePort() hands out.
  const busPorts = ports.map(() => freePort());
  const tlsArgs = tls
    ? ["--tls-cert-file", tls.cert, "--tls-key-file", tls.key, "--tls-ca-cert-file", tls.ca]
      .concat(["--tls-cluster", "yes", "--tls-auth-clients", "no"])
    : [];
  const cliTls = tls ? ["--tls", "--cacert", tls.ca] : [];
  let children: Deno.ChildProcess[] = [];
  let exited: number | null = null;
  const spawn = () => {
    exited = null;
    children = ports.map((port, i) => {
      const child = new Deno.Command(binary, {
        args: [
          ...(tls
            ? ["--port", "0", "--tls-port", String(port), ...tlsArgs]
            : ["--port", String(port)]),
          "--cluster-port",
          String(busPorts[i]),
          "--bind",
          "127.0.0.1",
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          `${dir}/nodes-${port}.conf`,
          "--cluster-node-timeout",
          "2000",
          "--save",
          "",
          "--appendonly",
          "no",
          "--dir",
          dir,
          "--loglevel",
          "warning",
          "--logfile",
          `${dir}/node-${port}.log`,
        ],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      child.status.then(() => {
        if (children.includes(child)) exited ??= port;
      });
      return child;
    });
  };
  /** Fails fast, with the node's log, once a node has exited on its own. */
  const alive = async () => {
    if (exited === null) return;
    const log = await Deno.readTextFile(`${dir}/node-${exited}.log`).catch(() => "(no log)");
    throw new Error(
      `node on port ${exited} exited: ${log.trim().split("\n").slice(-3).join(" | ")}`,
    );
  };
  const allOk = () =>
    waitFor("cluster_state:ok on every node", async () => {
      for (const port of ports) {
        const r = await cli([...cliTls, "-p", String(port), "cluster", "info"]);
        if (!r.out.includes("cluster_state:ok")) return false;
      }
      return true;
    });
  const stop = async () => {
    const cs = children;
    children = [];
    for (const c of cs) {
      try {
        c.kill("SIGKILL");
      } catch { /* already exited */ }
    }
    await Promise.all(cs.map((c) => c.status));
  };
  spawn();
  try {
    await waitFor("nodes answer PING", async () => {
      await alive();
      for (const port of ports) {
        if (!(await cli([...cliTls, "-p", String(port), "ping"])).out.includes("PONG")) {
          return false;
        }
      }
      return true;
    });
    const created = await cli([
      ...cliTls,
      "--cluster",
      "create",
      ...ports.map((p) => `127.0.0.1:${p}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    ]);
    if (!created.ok) throw new Error(`redis-cli --cluster create failed:\n${created.out}`);
    await allOk();
  } catch (err) {
    await stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
  return {
    ports,
    port: ports[0] as number,
    url: `${tls ? "rediss" : "redis"}+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(",")}`,
    async stop() {
      await stop();
    },
    async restart() {
      spawn();
      await allOk();
    },
    async dispose() {
      await stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
