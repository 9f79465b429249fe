/**
 * A throwaway Sentinel deployment for tests: a master and a replica (`redis-server
 * --replicaof`) and three Sentinels (`redis-server <conf> --sentinel`, quorum 2) on free
 * ports, each Sentinel's config file in a scratch directory (Sentinel rewrites it). Persistence
 * is off. `failover()` runs `SENTINEL FAILOVER` and waits until every Sentinel still running
 * names the new master and it is one; `stopSentinel()` shuts one down for good.
 * @module
 */
import { freePort } from "../integration/daemon.ts";
import { redisServerBinary } from "./redis_server.ts";

export const SENTINEL_MASTER = "mymaster";

export interface RedisSentinels {
  /** The master's and the replica's ports (the data nodes). */
  readonly dataPorts: readonly number[];
  readonly sentinelPorts: readonly number[];
  /** `redis+sentinel://127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3/mymaster`. */
  readonly url: string;
  /** The master's port as the Sentinels name it. */
  masterPort(): Promise<number>;
  /** `SENTINEL FAILOVER`; resolves with the new master's port once every node agrees. */
  failover(): Promise<number>;
  /** SHUTDOWN one Sentinel; resolves once its process has exited. */
  stopSentinel(port: number): Promise<void>;
  /** Stop every process and remove the scratch directory. */
  dispose(): Promise<void>;
}

/** `redis-cli` against 127.0.0.1:`port`; its output, trimmed. */
export async function cli(port: number, args: string[]): Promise<string> {
  const r = await new Deno.Command("redis-cli", {
    args: ["-h", "127.0.0.1", "-p", String(port), ...args],
    stdin: "null",
  }).output();
  return new TextDecoder().decode(r.stdout).trim();
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Redis Sentinel: ${what} not within ${timeoutMs} ms`);
}

const COMMON = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"];

export async function startRedisSentinels(): Promise<RedisSentinels> {
  const binary = redisServerBinary();
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-sentinel-" });
  const [master, replica] = [freePort(), freePort()] as [number, number];
  const sentinelPorts = [freePort(), freePort(), freePort()];
  const children: Deno.ChildProcess[] = [];
  const sentinelChildren = new Map<number, Deno.ChildProcess>();
  const stopped = new Set<number>();
  const live = () => sentinelPorts.filter((p) => !stopped.has(p));
  const spawn = (args: string[]) => {
    const child = new Deno.Command(binary, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    children.push(child);
    return child;
  };
  const role = async (port: number) => (await cli(port, ["ROLE"])).split("\n")[0];
  const named = async (port: number) =>
    (await cli(port, ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER])).split("\n");
  try {
    // `--dir`: a full resync writes an RDB file there (and a start would load one).
    spawn(["--port", String(master), "--dir", dir, ...COMMON]);
    spawn([
      "--port",
      String(replica),
      "--dir",
      dir,
      ...COMMON,
      "--replicaof",
      "127.0.0.1",
      String(master),
    ]);
    await waitFor(
      "the replica in sync",
      async () => (await cli(replica, ["INFO", "replication"])).includes("master_link_status:up"),
    );
    for (const port of sentinelPorts) {
      const conf = `${dir}/sentinel-${port}.conf`;
      await Deno.writeTextFile(
        conf,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          `dir ${dir}`,
          `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${master} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
          `sentinel failover-timeout ${SENTINEL_MASTER} 5000`,
          `logfile ${dir}/sentinel-${port}.log`,
          "loglevel notice",
          "",
        ].join("\n"),
      );
      sentinelChildren.set(port, spawn([conf, "--sentinel"]));
    }
    // Every Sentinel knows the replica and the other Sentinels: a failover can pick it.
    for (const port of sentinelPorts) {
      await waitFor(`Sentinel ${port} to see the replica and its peers`, async () => {
        const replicas = await cli(port, ["SENTINEL", "REPLICAS", SENTINEL_MASTER]);
        const peers = await cli(port, ["SENTINEL", "SENTINELS", SENTINEL_MASTER]);
        return replicas.includes(String(replica)) &&
          (peers.match(/^name$/gm) ?? []).length === sentinelPorts.length - 1;
      });
    }
  } catch (err) {
    for (const c of children) c.kill("SIGKILL");
    await Promise.all(children.map((c) => c.status));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
  // The Sentinels' event logs (notice level), for a failure's message.
  const logTail = async () => {
    const parts = [];
    for (const port of sentinelPorts) {
      const text = await Deno.readTextFile(`${dir}/sentinel-${port}.log`).catch(() => "");
      parts.push(`--- ${port}\n${text.split("\n").slice(-25).join("\n")}`);
    }
    return parts.join("\n");
  };
  const masterPort = async () => Number((await named(live()[0]!))[1]);
  return {
    dataPorts: [master, replica],
    sentinelPorts,
    url: `redis+sentinel://${
      sentinelPorts.map((p) => `127.0.0.1:${p}`).join(",")
    }/${SENTINEL_MASTER}`,
    masterPort,
    async failover() {
      const old = await masterPort();
      const next = old === master ? replica : master;
      // A master demoted by an earlier failover is reconfigured by the Sentinels' next INFO
      // round (up to 10 s): only a replica in sync can be promoted.
      await waitFor("the replica in sync", async () =>
        await role(next) === "slave" &&
        (await cli(next, ["INFO", "replication"])).includes("master_link_status:up") &&
        !(await cli(live()[0]!, ["SENTINEL", "REPLICAS", SENTINEL_MASTER])).includes("s_down"));
      const done = async () => {
        for (const port of live()) {
          if (Number((await named(port))[1]) !== next) return false;
        }
        return await role(next) === "master";
      };
      // A forced failover the Sentinel aborts (its cached INFO of the replica still stale,
      // "-failover-abort-no-good-slave") is not retried by Sentinel itself: ask again.
      for (let attempt = 1;; attempt++) {
        // Once promoted (the other Sentinels merely slow to hear), asking again would fail back.
        if (attempt === 1 || Number((await named(live()[0]!))[1]) !== next) {
          const reply = await cli(live()[0]!, ["SENTINEL", "FAILOVER", SENTINEL_MASTER]);
          if (reply !== "OK" && !reply.startsWith("INPROG")) {
            throw new Error(`SENTINEL FAILOVER: ${reply}`);
          }
        }
        try {
          await waitFor("the failover", done, 12_000);
          break;
        } catch (err) {
          if (attempt === 3) throw new Error(`${err}; Sentinel logs:\n${await logTail()}`);
        }
      }
      return next;
    },
    async stopSentinel(port) {
      stopped.add(port);
      await cli(port, ["SHUTDOWN"]);
      await sentinelChildren.get(port)?.status;
    },
    async dispose() {
      for (const c of children) {
        try {
          c.kill("SIGKILL");
        } catch { /* already exited */ }
      }
      await Promise.all(children.map((c) => c.status));
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
