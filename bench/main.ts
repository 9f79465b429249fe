// deno-lint-ignore-file no-console -- a CLI: progress goes to stderr, the report to stdout.
/**
 * `deno task bench`: the same load against (a) the mock upstream directly, (b) a bare
 * Deno reverse proxy, (c) Pilotfish over TCP and (d) Pilotfish over its Unix socket, then
 * one table and the roadmap's targets. Informational: the exit code is 0 whatever the
 * numbers; it is non-zero only when the benchmark itself could not run.
 *
 * Overrides (env, defaults in `settings` below): BENCH_SECONDS (per target, for latency
 * and again for throughput), BENCH_ROUNDS (interleaved segments those seconds are split
 * into), BENCH_RATE, BENCH_CONCURRENCY, BENCH_TTFB_SECONDS, BENCH_WARMUP_SECONDS,
 * BENCH_SETTLE_SECONDS, BENCH_STREAM_CHUNKS, BENCH_CHUNK_DELAY_MS, BENCH_STAGES (no-op pipeline
 * stages on every hook of the daemon, to measure the stage chain's own cost; 0 by default),
 * BENCH_CONFIG (a YAML file whose top-level keys are appended to the daemon's config, to bench
 * a feature on vs off: e.g. bench/configs/*.yaml; `{{UPSTREAM}}` in it becomes the mock
 * upstream's origin, `{{TMP}}` the bench's temporary directory), BENCH_PROMPT_BYTES (pad the
 * user prompt of every request to that many bytes, e.g. 1024 or 32768 for content scanners).
 */
import { fileURLToPath } from "node:url";
import {
  closedLoop,
  openLoop,
  percentile,
  sleep,
  streamFirstByte,
  type Target,
  tcpClient,
  unixClient,
  warmUp,
} from "./load.ts";
import {
  CLOCK_TICKS_PER_SECOND,
  findProcess,
  sampleRss,
  type Service,
  spawnService,
  startUsageReader,
  type UsageReader,
} from "./proc.ts";
import {
  checks,
  machineInfo,
  printChecks,
  printHeader,
  printTable,
  type Row,
  type Settings,
} from "./report.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const BENCH = fileURLToPath(new URL("./", import.meta.url));
const CHAT_PATH = "/v1/chat/completions";

function envNumber(name: string, fallback: number): number {
  const text = Deno.env.get(name);
  if (text === undefined || text.trim() === "") return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number`);
  return n;
}

const settings: Settings = {
  rate: envNumber("BENCH_RATE", 200),
  seconds: envNumber("BENCH_SECONDS", 6),
  concurrency: Math.max(1, Math.floor(envNumber("BENCH_CONCURRENCY", 32))),
  ttfbSeconds: envNumber("BENCH_TTFB_SECONDS", 3),
  warmupSeconds: envNumber("BENCH_WARMUP_SECONDS", 1),
  rounds: Math.max(1, Math.floor(envNumber("BENCH_ROUNDS", 3))),
  settleSeconds: envNumber("BENCH_SETTLE_SECONDS", 1),
  chunks: Math.floor(envNumber("BENCH_STREAM_CHUNKS", 6)),
  chunkDelayMs: envNumber("BENCH_CHUNK_DELAY_MS", 1),
};

/**
 * BENCH_STAGES=3: the daemon runs with that many no-op stages on every hook. It reads
 * PILOTFISH_BENCH_NOOP_STAGES only when granted, and the permission planner grants the
 * variables a config refers to: the bench's config names it in a comment.
 */
const stages = Math.floor(envNumber("BENCH_STAGES", 0));
const extraConfigPath = Deno.env.get("BENCH_CONFIG")?.trim() || undefined;

const progress = (msg: string) => console.error(`[bench] ${msg}`);

/** Everything to undo, newest first; run once whether we finish, fail or are interrupted. */
const undo: (() => Promise<void> | void)[] = [];
let cleaning: Promise<void> | null = null;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const step of undo.reverse()) {
      try {
        await step();
      } catch (err) {
        progress(`cleanup: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  })();
  return cleaning;
}

function track(service: Service): Service {
  undo.push(() => service.stop());
  return service;
}

function trackClient(client: Deno.HttpClient): Deno.HttpClient {
  // Clients close before services stop, so no idle keep-alive connection holds up a drain.
  undo.push(() => {
    try {
      client.close();
    } catch {
      // Already closed: nothing left to release.
    }
  });
  return client;
}

/** A helper script of ours, run with loopback-only network access. */
function spawnDenoScript(name: string, script: string, args: string[]): Service {
  return track(spawnService(name, Deno.execPath(), [
    "run",
    "--quiet",
    "--no-prompt",
    "--allow-net=127.0.0.1",
    `${BENCH}${script}`,
    ...args,
  ], { cwd: ROOT }));
}

async function announcedPort(service: Service): Promise<number> {
  const line = await service.firstLine;
  const port = (JSON.parse(line) as { port?: unknown }).port;
  if (typeof port !== "number") throw new Error(`${service.name} announced "${line}"`);
  return port;
}

/**
 * A free loopback port for Pilotfish. Asking it for port 0 would work too, but at log
 * level warn it never says which port it got; the bind race this leaves is harmless here.
 */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

async function waitReady(url: string, service: Service, timeoutMs: number): Promise<void> {
  let exited = false;
  service.exited.then(() => exited = true);
  const client = tcpClient();
  try {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      if (exited) throw new Error(`${service.name} exited before it was ready:\n${service.tail()}`);
      try {
        const res = await fetch(url, { client, signal: AbortSignal.timeout(1_000) });
        await res.body?.cancel();
        if (res.status === 200) return;
      } catch {
        // Not listening yet.
      }
      await sleep(100);
    }
    throw new Error(`${service.name} not ready after ${timeoutMs} ms:\n${service.tail()}`);
  } finally {
    client.close();
  }
}

/** One request through the whole path, so a misconfiguration fails loudly, not as a slow row. */
async function probe(target: Target, service: Service | null): Promise<void> {
  const res = await fetch(target.url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer sk-bench" },
    body: JSON.stringify({ model: "up/gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
    client: target.client,
  });
  const text = await res.text();
  let ok = res.status === 200;
  try {
    ok &&= (JSON.parse(text) as { object?: unknown }).object === "chat.completion";
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new Error(
      `${target.name}: probe got ${res.status} ${text.slice(0, 500)}` +
        (service ? `\n${service.name} output:\n${service.tail()}` : ""),
    );
  }
}

interface Measured {
  readonly target: Target;
  /** The proxy process in front of the upstream; null for the direct target. */
  readonly pid: number | null;
  rssReady: number | null;
  rssIdle: number | null;
  rssPeak: number | null;
  latencies: number[];
  sentRates: number[];
  rps: number[];
  completed: number;
  /** CPU ticks of proxy, load generator, upstream during the throughput segments. */
  ticks: [number | null, number | null, number | null];
  ttfb: number[];
  streamTotal: number[];
  errors: number;
}

function measured(target: Target, pid: number | null): Measured {
  return {
    target,
    pid,
    rssReady: null,
    rssIdle: null,
    rssPeak: null,
    latencies: [],
    sentRates: [],
    rps: [],
    completed: 0,
    ticks: [0, 0, 0],
    ttfb: [],
    streamTotal: [],
    errors: 0,
  };
}

let procs: UsageReader;
let upstreamPid = 0;

/** CPU ticks used so far by each pid (null where unknown). */
function cpuTicks(pids: readonly (number | null)[]): Promise<(number | null)[]> {
  return Promise.all(
    pids.map(async (pid) => pid === null ? null : (await procs.usage(pid))?.cpuTicks ?? null),
  );
}

/**
 * One segment of every measurement for one target. Segments of different targets are
 * interleaved by the caller: this VM's speed drifts by tens of percent over a minute, and
 * interleaving spreads that drift over all targets instead of charging it to one.
 */
async function segment(m: Measured, seconds: number, ttfbSeconds: number): Promise<void> {
  const t = m.target;
  await warmUp(t, settings.concurrency, settings.warmupSeconds / 2);

  const lat = await openLoop(t, settings.rate, seconds);
  m.latencies.push(...lat.latencies);
  m.sentRates.push(lat.sentRate);
  m.errors += lat.errors;

  // Proxy, load generator (us) and upstream: where the two cores went, per request.
  const watched = [m.pid, Deno.pid, upstreamPid];
  const before = await cpuTicks(watched);
  const sampler = m.pid === null ? null : sampleRss(procs, m.pid, 50);
  const tput = await closedLoop(t, settings.concurrency, seconds);
  const peak = sampler ? await sampler.stop() : null;
  const after = await cpuTicks(watched);
  if (peak !== null) m.rssPeak = Math.max(m.rssPeak ?? 0, peak);
  m.ticks = m.ticks.map((sum, i) => {
    const a = before[i];
    const b = after[i];
    return sum === null || a == null || b == null ? null : sum + (b - a);
  }) as Measured["ticks"];
  m.rps.push(tput.rps);
  m.completed += tput.completed;
  m.errors += tput.errors;

  const stream = await streamFirstByte(t, ttfbSeconds);
  m.ttfb.push(...stream.ttfb);
  m.streamTotal.push(...stream.total);
  m.errors += stream.errors;
}

function toRow(m: Measured, directP50: number | null): Row {
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
  const lat = sorted(m.latencies);
  const rps = sorted(m.rps);
  const p50 = percentile(lat, 50);
  const perReq = (ticks: number | null) =>
    ticks === null || m.completed === 0
      ? null
      : (ticks / CLOCK_TICKS_PER_SECOND) * 1e6 / m.completed;
  return {
    name: m.target.name,
    p50,
    p99: percentile(lat, 99),
    sentRate: Math.min(...m.sentRates),
    addedP50: directP50 === null ? null : p50 - directP50,
    rps: percentile(rps, 50),
    rpsMin: rps[0] ?? NaN,
    rpsMax: rps[rps.length - 1] ?? NaN,
    ttfbP50: percentile(sorted(m.ttfb), 50),
    streamP50: percentile(sorted(m.streamTotal), 50),
    rssReady: m.rssReady,
    rssIdle: m.rssIdle,
    rssPeak: m.rssPeak,
    cpuPerReq: {
      proxy: m.pid === null ? null : perReq(m.ticks[0]),
      client: perReq(m.ticks[1]),
      upstream: perReq(m.ticks[2]),
    },
    errors: m.errors,
  };
}

async function main(): Promise<void> {
  const started = performance.now();
  const machine = await machineInfo();
  const tmp = await Deno.makeTempDir({ dir: "/tmp", prefix: "pilotfish-bench-" });
  undo.push(() => Deno.remove(tmp, { recursive: true }));
  procs = startUsageReader();
  undo.push(() => procs.close());

  const upstream = spawnDenoScript("upstream", "upstream.ts", [
    `--chunks=${settings.chunks}`,
    `--chunk-delay-ms=${settings.chunkDelayMs}`,
  ]);
  const upstreamOrigin = `http://127.0.0.1:${await announcedPort(upstream)}`;
  upstreamPid = upstream.child.pid;
  progress(`upstream on ${upstreamOrigin} (pid ${upstreamPid})`);

  const direct: Target = {
    name: "direct",
    url: upstreamOrigin + CHAT_PATH,
    client: trackClient(tcpClient()),
  };
  await probe(direct, upstream);

  // Every process stays up to the end so segments can interleave; an idle one costs no CPU.
  const bare = spawnDenoScript("bare proxy", "bare_proxy.ts", [upstreamOrigin]);
  const bareTarget: Target = {
    name: "bare proxy",
    url: `http://127.0.0.1:${await announcedPort(bare)}${CHAT_PATH}`,
    client: trackClient(tcpClient()),
  };
  await probe(bareTarget, bare);
  const barePid = await findProcess(bare.child.pid, "bare_proxy.ts") ?? bare.child.pid;

  // Pilotfish, started the way operators start it
  const port = freePort();
  const socket = `${tmp}/pf.sock`;
  const config = `${tmp}/config.yaml`;
  await Deno.writeTextFile(
    config,
    `# Written by bench/main.ts; removed when the benchmark ends.
${stages > 0 ? "# no-op stages: ${PILOTFISH_BENCH_NOOP_STAGES}\n" : ""}server:
  host: 127.0.0.1
  port: ${port}
  socket: ${socket}
  reload_interval: 0
  drain_timeout: 2s
logging:
  level: warn
providers:
  up:
    type: openai
    base_url: ${upstreamOrigin}/v1
    keys:
      - key: sk-bench
${
      extraConfigPath === undefined ? "" : (await Deno.readTextFile(extraConfigPath))
        .replaceAll("{{UPSTREAM}}", upstreamOrigin).replaceAll("{{TMP}}", tmp)
    }`,
  );
  if (extraConfigPath !== undefined) progress(`config extended with ${extraConfigPath}`);
  const pilotfish = track(
    spawnService("pilotfish", "sh", ["scripts/start.sh", "--config", config], {
      cwd: ROOT,
      env: {
        DENO: Deno.execPath(),
        ...(stages > 0 ? { PILOTFISH_BENCH_NOOP_STAGES: String(stages) } : {}),
      },
    }),
  );
  await waitReady(`http://127.0.0.1:${port}/ready`, pilotfish, 60_000);
  // start.sh execs deno, so the pid should already be the daemon; check rather than trust.
  const pfPid = await findProcess(pilotfish.child.pid, "src/main.ts");
  if (pfPid === null) throw new Error("Could not find the Pilotfish deno process under start.sh");
  progress(
    `pilotfish on 127.0.0.1:${port} and ${socket} (pid ${pfPid}${
      pfPid === pilotfish.child.pid ? ", exec'd by start.sh" : `, child of ${pilotfish.child.pid}`
    })`,
  );
  const tcp: Target = {
    name: "pilotfish tcp",
    url: `http://127.0.0.1:${port}${CHAT_PATH}`,
    client: trackClient(tcpClient()),
  };
  // The host part is ignored on a Unix socket; the path is what Pilotfish routes on.
  const sock: Target = {
    name: "pilotfish socket",
    url: `http://localhost${CHAT_PATH}`,
    client: trackClient(unixClient(socket)),
  };
  await probe(tcp, pilotfish);
  await probe(sock, pilotfish);

  const all = [
    measured(direct, null),
    measured(bareTarget, barePid),
    measured(tcp, pfPid),
    measured(sock, pfPid),
  ];
  const bareM = all[1] as Measured;
  const tcpM = all[2] as Measured;
  const sockM = all[3] as Measured;

  // RSS before any traffic, then after every path is warm and the proxies sit idle.
  bareM.rssReady = (await procs.usage(barePid))?.rss ?? null;
  tcpM.rssReady = sockM.rssReady = (await procs.usage(pfPid))?.rss ?? null;
  progress(`warm-up ${settings.warmupSeconds}s per target`);
  for (const m of all) {
    const errors = await warmUp(m.target, settings.concurrency, settings.warmupSeconds);
    if (errors > 0) progress(`${m.target.name}: ${errors} failed requests during warm-up`);
  }
  await sleep(settings.settleSeconds * 1000);
  bareM.rssIdle = (await procs.usage(barePid))?.rss ?? null;
  tcpM.rssIdle = sockM.rssIdle = (await procs.usage(pfPid))?.rss ?? null;

  const seconds = settings.seconds / settings.rounds;
  const ttfbSeconds = settings.ttfbSeconds / settings.rounds;
  for (let round = 0; round < settings.rounds; round++) {
    // Rotate the order too, so no target always runs right after the heaviest one.
    for (let i = 0; i < all.length; i++) {
      const m = all[(i + round) % all.length] as Measured;
      progress(`round ${round + 1}/${settings.rounds}: ${m.target.name}`);
      await segment(m, seconds, ttfbSeconds);
    }
  }

  const directRow = toRow(all[0] as Measured, null);
  const rows = [directRow, ...all.slice(1).map((m) => toRow(m, directRow.p50))];
  printHeader(machine, settings);
  printTable(rows);
  printChecks(checks(rows));
  console.log(
    "Columns: p50/p99 = non-streaming latency under the open-loop rate, all rounds pooled " +
      "(sent/s = lowest rate achieved; below the target rate means the generator fell " +
      "behind); added p50 = p50 - direct p50; max req/s = closed loop at " +
      `${settings.concurrency} in flight, median of the rounds, range = slowest-fastest ` +
      "round; TTFB/stream p50 = first body chunk / end of a streaming request, sent one at " +
      "a time; RSS = VmRSS of the proxy process (start = before any traffic, after load = " +
      "after warm-up and settle, peak = sampled every 50 ms during the throughput runs); CPU " +
      "us/req = user+sys CPU per request in the throughput runs of the proxy, of the load " +
      "generator (client) and of the upstream; errors = failed requests in measured runs.",
  );
  console.log(`Total bench time ${((performance.now() - started) / 1000).toFixed(0)}s.`);
}

Deno.addSignalListener("SIGINT", () => {
  progress("interrupted; stopping subprocesses");
  cleanup().finally(() => Deno.exit(130));
});

try {
  await main();
} catch (err) {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  await cleanup();
  Deno.exit(1);
}
await cleanup();
// The signal listener would otherwise keep the event loop alive.
Deno.exit(0);
