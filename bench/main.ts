// deno-lint-ignore-file no-console -- a CLI: progress goes to stderr, the report to stdout.
/**
 * `deno task bench`: the same load against (a) the mock upstream directly, (b) a bare
 * Deno reverse proxy, (c) Pilotfish over TCP and (d) Pilotfish over its Unix socket, then
 * one table (figures as rows, targets as columns) and the roadmap's targets. With two cores
 * or more, the proxies run pinned to core 0 and the load generator and upstream to core 1, so
 * a proxy's CPU is its own. Informational: the exit code is 0 whatever the numbers; it is
 * non-zero only when the benchmark itself could not run.
 *
 * Per target and round (rounds interleave targets): latency at BENCH_RATE (200) and at
 * BENCH_HIGH_RATE (1,000) req/s open loop, proxy CPU per request at the high rate, throughput
 * at BENCH_CONCURRENCY (64) in flight, streams one at a time (BENCH_STREAM_CHUNKS, 50 chunks
 * BENCH_CHUNK_DELAY_MS apart). Twice per target (in opposite target orders, the worse run
 * kept): BENCH_STREAMS (1,000) concurrent streams of
 * BENCH_MANY_CHUNKS (30) chunks 100 ms apart (10 chunks/s), for stalls and time to first content under load. "First content" is the first delta with
 * text (streams open with a role-only chunk, which a stream gate holds until content comes).
 *
 * Overrides (env, defaults in `settings` below): BENCH_SECONDS (per target per measurement,
 * split over BENCH_ROUNDS), BENCH_RATE, BENCH_HIGH_RATE, BENCH_CONCURRENCY, BENCH_TTFB_SECONDS,
 * BENCH_WARMUP_SECONDS, BENCH_SETTLE_SECONDS, BENCH_STREAM_CHUNKS, BENCH_CHUNK_DELAY_MS,
 * BENCH_STREAMS (0 skips that scenario), BENCH_MANY_CHUNKS, BENCH_PIN=0 (no pinning),
 * BENCH_STAGES (a variant daemon with that many no-op stages on every hook),
 * BENCH_CONFIG (a variant daemon whose config has that YAML file's top-level keys appended:
 * e.g. bench/configs/*.yaml; `{{UPSTREAM}}` in it becomes the mock upstream's origin, `{{TMP}}`
 * the bench's temporary directory), BENCH_BASELINE_ROOT (another checkout, e.g.
 * `git worktree add /tmp/before <commit>`, whose daemon runs in the same rounds), BENCH_AUTH
 * (the bearer every request sends, default `sk-bench`: e.g. the app key of
 * bench/configs/keys.yaml), BENCH_BASE_CONFIG (a fragment for the baseline daemon, the control and
 * the BENCH_BASELINE_ROOT one, e.g. a feature that is on by default turned off, or a plugin whose
 * cost before and after a change is the question), BENCH_REDIS=1 (a `redis-server` on a free port for the run, its URL
 * in place of `{{REDIS}}` in a BENCH_CONFIG fragment), BENCH_PROMPT_BYTES (pad the user prompt of
 * every request to that many bytes, e.g. 1024 or 32768 for content scanners), BENCH_UNIQUE_PROMPTS=1
 * (each chat request's prompt opens with its own number: nothing keyed on the prompt, such as
 * the injection guard's memory of parts it found clean, sees one twice), BENCH_NEW_TURNS=1 (the
 * padded prompt is a conversation's history, the same every time, followed by an assistant
 * reply and a short user turn with its own number: what a chat client sends), BENCH_CONTROL=1 (a
 * second daemon identical to the first, in the same rounds: the run's own noise floor),
 * BENCH_GO (the go command; see rig.ts: without Go the Deno generator and upstream run, with a
 * warning in the report), BENCH_INTERLEAVED_SECONDS (30; 0 skips) and BENCH_INTERLEAVED_BLOCKS
 * (5): after the rounds, one open loop at BENCH_RATE in all whose requests go to the targets in
 * turn (Go rig only), so feature-on vs feature-off p50 is measured at the same moments;
 * BENCH_V8_FLAGS (a variant daemon run with DENO_V8_FLAGS set to that, comma-separated, e.g.
 * `--no-memory-reducer`; with BENCH_CONFIG, the same variant has both), BENCH_ABBA=1 (with a
 * variant: the variant twice and the base twice, started base, variant, variant, base, and
 * their pairs compared, with each pair's own difference as the noise; see README),
 * BENCH_TOGGLE=1 (with BENCH_CONFIG: one more daemon, its config switched by hot reload between
 * the base and the variant, BENCH_TOGGLE_PAIRS (12) pairs of BENCH_TOGGLE_SECONDS (3) blocks at
 * BENCH_TOGGLE_RATE (BENCH_HIGH_RATE), each followed by BENCH_TOGGLE_CLOSED_SECONDS (0: none)
 * of a closed loop for the pair's max req/s; BENCH_TOGGLE_CONFIGS, comma-separated fragments,
 * makes those the variants, each compared with the base in every round: BENCH_TOGGLE_PAIRS
 * then counts rounds of one block per config, rounded up to whole periods of the rotation
 * (13 with two variants); see bench/toggle.ts).
 */
import { fileURLToPath } from "node:url";
import {
  BENCH_BEARER,
  type ManyStreamsResult,
  NEW_TURNS,
  percentile,
  PROMPT_BYTES,
  sleep,
  type Target,
  tcpClient,
  UNIQUE_PROMPTS,
  unixClient,
} from "./load.ts";
import { denoLoad, goBinaries, goLoad, type Lateness, type Load } from "./rig.ts";
import {
  printToggle,
  runToggle,
  summarizeToggle,
  type ToggleSummary,
  wholeRounds,
} from "./toggle.ts";
import {
  CLOCK_TICKS_PER_SECOND,
  cpuNs,
  findProcess,
  sampleRss,
  type Service,
  spawnRedis,
  spawnService,
  startUsageReader,
  type UsageReader,
} from "./proc.ts";
import {
  checks,
  machineInfo,
  printAbba,
  printChecks,
  printHeader,
  printInterleaved,
  printTable,
  printVariant,
  type RoundFigures,
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

/** An on/off switch: `1`, `true` or `yes` is on. */
function envFlag(name: string): boolean {
  return ["1", "true", "yes"].includes(Deno.env.get(name)?.trim() ?? "");
}

const settings: Settings = {
  rate: envNumber("BENCH_RATE", 200),
  highRate: envNumber("BENCH_HIGH_RATE", 1000),
  seconds: envNumber("BENCH_SECONDS", 6),
  concurrency: Math.max(1, Math.floor(envNumber("BENCH_CONCURRENCY", 64))),
  ttfbSeconds: envNumber("BENCH_TTFB_SECONDS", 3),
  warmupSeconds: envNumber("BENCH_WARMUP_SECONDS", 1),
  rounds: Math.max(1, Math.floor(envNumber("BENCH_ROUNDS", 3))),
  settleSeconds: envNumber("BENCH_SETTLE_SECONDS", 1),
  chunks: Math.floor(envNumber("BENCH_STREAM_CHUNKS", 50)),
  chunkDelayMs: envNumber("BENCH_CHUNK_DELAY_MS", 1),
  streams: Math.floor(envNumber("BENCH_STREAMS", 1000)),
  manyChunks: Math.max(2, Math.floor(envNumber("BENCH_MANY_CHUNKS", 30))),
  pinned: Deno.env.get("BENCH_PIN") !== "0" && navigator.hardwareConcurrency >= 2,
  interleavedSeconds: envNumber("BENCH_INTERLEAVED_SECONDS", 30),
  interleavedBlocks: Math.max(1, Math.floor(envNumber("BENCH_INTERLEAVED_BLOCKS", 5))),
};

/** The many-streams scenario: 10 chunks a second per stream. */
const MANY_GAP_MS = 100;

/**
 * BENCH_STAGES=3: the daemon runs with that many no-op stages on every hook. It reads
 * PILOTFISH_BENCH_NOOP_STAGES only when granted, and the permission planner grants the
 * variables a config refers to: the bench's config names it in a comment.
 */
const stages = Math.floor(envNumber("BENCH_STAGES", 0));
const extraConfigPath = Deno.env.get("BENCH_CONFIG")?.trim() || undefined;
const baseConfigPath = Deno.env.get("BENCH_BASE_CONFIG")?.trim() || undefined;
const baselineRoot = Deno.env.get("BENCH_BASELINE_ROOT")?.trim() || undefined;
const withRedis = envFlag("BENCH_REDIS");
const withAbba = envFlag("BENCH_ABBA");
// ABBA's second base is the control daemon: the same config, started last.
const withControl = withAbba || envFlag("BENCH_CONTROL");
const v8Flags = Deno.env.get("BENCH_V8_FLAGS")?.trim() || undefined;
const withToggle = envFlag("BENCH_TOGGLE");
const togglePairs = Math.max(2, Math.floor(envNumber("BENCH_TOGGLE_PAIRS", 12)));
const toggleSeconds = envNumber("BENCH_TOGGLE_SECONDS", 3);
const toggleClosedSeconds = envNumber("BENCH_TOGGLE_CLOSED_SECONDS", 0);
/** The toggle's variants: BENCH_TOGGLE_CONFIGS (comma-separated fragments), else BENCH_CONFIG. */
const toggleConfigs = (Deno.env.get("BENCH_TOGGLE_CONFIGS") ?? "").split(",").map((p) => p.trim())
  .filter((p) => p !== "");
if (toggleConfigs.length === 0 && extraConfigPath !== undefined) {
  toggleConfigs.push(extraConfigPath);
}
// 1,000 req/s by default: an A/A run of 10 pairs there had p50 quartiles of -9 to +3 µs, one
// of 20 pairs at 200 req/s -41 to +26 µs (a daemon idle between requests reads less evenly).
const toggleRate = envNumber("BENCH_TOGGLE_RATE", settings.highRate);
/** The run's redis-server (BENCH_REDIS), once started. */
let redisUrl = "";

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
function spawnDenoScript(
  name: string,
  script: string,
  args: string[],
  core: number,
): Service {
  const [command, argv] = onCore(core, Deno.execPath(), [
    "run",
    "--quiet",
    "--no-prompt",
    "--allow-net=127.0.0.1",
    `${BENCH}${script}`,
    ...args,
  ]);
  return track(spawnService(name, command, argv, { cwd: ROOT }));
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

/** `command args` run on `core` when pinning (see the module doc), as is otherwise. */
function onCore(core: number, command: string, args: string[]): [string, string[]] {
  return settings.pinned ? ["taskset", ["-c", String(core), command, ...args]] : [command, args];
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
    headers: { "content-type": "application/json", authorization: `Bearer ${BENCH_BEARER}` },
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
  latenciesHigh: number[];
  sentRates: number[];
  sentRatesHigh: number[];
  rps: number[];
  /** Requests completed at the high rate, and CPU ticks of proxy, load generator, upstream. */
  completedHigh: number;
  ticks: [number | null, number | null, number | null];
  ttfb: number[];
  streamTotal: number[];
  many: ManyStreamsResult | null;
  errors: number;
  /** Each round's own figures, to show how much a pooled difference moves between rounds. */
  rounds: RoundFigures[];
}

function measured(target: Target, pid: number | null): Measured {
  return {
    target,
    pid,
    rssReady: null,
    rssIdle: null,
    rssPeak: null,
    latencies: [],
    latenciesHigh: [],
    sentRates: [],
    sentRatesHigh: [],
    rps: [],
    completedHigh: 0,
    ticks: [0, 0, 0],
    ttfb: [],
    streamTotal: [],
    many: null,
    errors: 0,
    rounds: [],
  };
}

let procs: UsageReader;
let upstreamPid = 0;
/** The load generator (rig.ts): the Go one, or load.ts when Go is missing. */
let load: Load = denoLoad();

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
  await load.warmUp(t, settings.concurrency, settings.warmupSeconds / 2);

  const lat = await load.openLoop(t, settings.rate, seconds);
  m.latencies.push(...lat.latencies);
  m.sentRates.push(lat.sentRate);
  m.errors += lat.errors;

  // Proxy, load generator (us) and upstream at the high rate: where the CPU went, per request.
  const watched = [m.pid, load.pid, upstreamPid];
  const before = await cpuTicks(watched);
  const high = await load.openLoop(t, settings.highRate, seconds);
  const after = await cpuTicks(watched);
  m.ticks = m.ticks.map((sum, i) => {
    const a = before[i];
    const b = after[i];
    return sum === null || a == null || b == null ? null : sum + (b - a);
  }) as Measured["ticks"];
  m.latenciesHigh.push(...high.latencies);
  m.sentRatesHigh.push(high.sentRate);
  m.completedHigh += high.latencies.length;
  m.errors += high.errors;

  const sampler = m.pid === null ? null : sampleRss(procs, m.pid, 50);
  const tput = await load.closedLoop(t, settings.concurrency, seconds);
  const peak = sampler ? await sampler.stop() : null;
  if (peak !== null) m.rssPeak = Math.max(m.rssPeak ?? 0, peak);
  m.rps.push(tput.rps);
  m.errors += tput.errors;

  const stream = await load.streamFirstByte(t, ttfbSeconds);
  m.ttfb.push(...stream.ttfb);
  m.streamTotal.push(...stream.total);
  m.errors += stream.errors;

  const proxyTicks = m.pid === null ? null : after[0];
  const startTicks = before[0];
  m.rounds.push({
    p50: percentile(lat.latencies, 50),
    p99: percentile(lat.latencies, 99),
    p50High: percentile(high.latencies, 50),
    p99High: percentile(high.latencies, 99),
    cpuPerReq: proxyTicks == null || startTicks == null || high.latencies.length === 0
      ? null
      : ((proxyTicks - startTicks) / CLOCK_TICKS_PER_SECOND) * 1e6 / high.latencies.length,
    rps: tput.rps,
    ttfbP50: percentile(stream.ttfb, 50),
  });
}

function toRow(m: Measured): Row {
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
  const lat = sorted(m.latencies);
  const latHigh = sorted(m.latenciesHigh);
  const rps = sorted(m.rps);
  const perReq = (ticks: number | null) =>
    ticks === null || m.completedHigh === 0
      ? null
      : (ticks / CLOCK_TICKS_PER_SECOND) * 1e6 / m.completedHigh;
  const ttfb = sorted(m.ttfb);
  return {
    name: m.target.name,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    sentRate: Math.min(...m.sentRates),
    p50High: percentile(latHigh, 50),
    p99High: percentile(latHigh, 99),
    sentRateHigh: Math.min(...m.sentRatesHigh),
    rps: percentile(rps, 50),
    rpsMin: rps[0] ?? NaN,
    rpsMax: rps[rps.length - 1] ?? NaN,
    ttfbP50: percentile(ttfb, 50),
    ttfbP99: percentile(ttfb, 99),
    streamP50: percentile(sorted(m.streamTotal), 50),
    many: m.many === null ? null : {
      ttfbP99: percentile(m.many.ttfb, 99),
      maxStall: m.many.maxStall,
      stalled: m.many.stalled,
      completed: m.many.completed,
      errors: m.many.errors,
    },
    rssReady: m.rssReady,
    rssIdle: m.rssIdle,
    rssPeak: m.rssPeak,
    cpuPerReq: {
      proxy: m.pid === null ? null : perReq(m.ticks[0]),
      client: perReq(m.ticks[1]),
      upstream: perReq(m.ticks[2]),
    },
    errors: m.errors,
    rounds: m.rounds,
  };
}

interface Pilotfish {
  readonly tcp: Target;
  readonly sock: Target;
  readonly pid: number;
  readonly config: string;
  readonly port: number;
  /** The config text with `extra` (a fragment's path) appended instead of the daemon's own. */
  configFor(extra: string | undefined): Promise<string>;
}

/**
 * One Pilotfish daemon over `scripts/start.sh` (the operator's way: planned permissions),
 * on a free port and a socket, probed once through each.
 */
async function startPilotfish(
  name: string,
  tmp: string,
  upstreamOrigin: string,
  opts: {
    stages: number;
    extra?: string;
    root?: string;
    tag?: string;
    v8Flags?: string;
    adminToken?: string;
  },
): Promise<Pilotfish> {
  const tag = opts.tag ?? (name === "pilotfish" ? "pf" : opts.root !== undefined ? "pfb" : "pfv");
  const port = freePort();
  const socket = `${tmp}/${tag}.sock`;
  const config = `${tmp}/${tag}.yaml`;
  // The config with a fragment appended: BENCH_TOGGLE rewrites it between blocks.
  const configFor = async (extraPath: string | undefined) => {
    const extra = extraPath === undefined ? "" : (await Deno.readTextFile(extraPath))
      .replaceAll("{{UPSTREAM}}", upstreamOrigin).replaceAll("{{TMP}}", tmp)
      .replaceAll("{{REDIS}}", redisUrl);
    return `# Written by bench/main.ts; removed when the benchmark ends.
${opts.stages > 0 ? "# no-op stages: ${PILOTFISH_BENCH_NOOP_STAGES}\n" : ""}server:
  host: 127.0.0.1
  port: ${port}
  socket: ${socket}
  reload_interval: 0
  drain_timeout: 2s
${opts.adminToken === undefined ? "" : `  admin_token: ${opts.adminToken}\n`}logging:
  level: warn
providers:
  up:
    type: openai
    base_url: ${upstreamOrigin}/v1
    keys:
      - key: sk-bench
${extra}`;
  };
  await Deno.writeTextFile(config, await configFor(opts.extra));
  if (opts.extra !== undefined) progress(`${name}: config extended with ${opts.extra}`);
  const [command, argv] = onCore(0, "sh", ["scripts/start.sh", "--config", config]);
  const service = track(
    spawnService(name, command, argv, {
      cwd: opts.root ?? ROOT,
      env: {
        DENO: Deno.execPath(),
        ...(opts.v8Flags ? { DENO_V8_FLAGS: opts.v8Flags } : {}),
        ...(opts.stages > 0 ? { PILOTFISH_BENCH_NOOP_STAGES: String(opts.stages) } : {}),
      },
    }),
  );
  await waitReady(`http://127.0.0.1:${port}/ready`, service, 60_000);
  // start.sh execs deno, so the pid should already be the daemon; check rather than trust.
  const pid = await findProcess(service.child.pid, "src/main.ts");
  if (pid === null) throw new Error(`Could not find the ${name} deno process under start.sh`);
  progress(
    `${name} on 127.0.0.1:${port} and ${socket} (pid ${pid}${
      pid === service.child.pid ? ", exec'd by start.sh" : `, child of ${service.child.pid}`
    })`,
  );
  const tcp: Target = {
    name: tag === "pf" ? "pilotfish tcp" : `${name} tcp`,
    url: `http://127.0.0.1:${port}${CHAT_PATH}`,
    client: trackClient(tcpClient()),
  };
  // The host part is ignored on a Unix socket; the path is what Pilotfish routes on.
  const sock: Target = {
    name: tag === "pf" ? "pilotfish socket" : `${name} socket`,
    url: `http://localhost${CHAT_PATH}`,
    client: trackClient(unixClient(socket)),
    socket,
  };
  await probe(tcp, service);
  await probe(sock, service);
  return { tcp, sock, pid, config, port, configFor };
}

/**
 * BENCH_TOGGLE=1 (bench/toggle.ts): a daemon of its own, started on the last variant's config
 * (permissions are planned at start: list the variant that needs the most last), reloaded
 * between the base's and each variant's.
 */
async function toggle(tmp: string, upstreamOrigin: string): Promise<ToggleSummary> {
  const token = `bench-${crypto.randomUUID()}`;
  const daemon = await startPilotfish("pf toggle", tmp, upstreamOrigin, {
    stages: 0,
    tag: "pft",
    adminToken: token,
    extra: toggleConfigs.at(-1) as string,
  });
  const texts = [
    await daemon.configFor(baseConfigPath),
    ...await Promise.all(toggleConfigs.map((path) => daemon.configFor(path))),
  ];
  const rounds = wholeRounds(togglePairs, toggleConfigs.length);
  if (rounds !== togglePairs) {
    progress(`toggle: ${rounds} rounds (whole periods of the rotation over the configs)`);
  }
  const names = ["the base", ...toggleConfigs];
  const blocks = await runToggle(
    rounds,
    {
      async switchTo(config) {
        await Deno.writeTextFile(daemon.config, texts[config] as string);
        const res = await fetch(`http://127.0.0.1:${daemon.port}/api/v1/reload`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}` },
        });
        const answer = await res.json() as { ok?: boolean; restart_required?: string[] };
        if (answer.ok !== true || (answer.restart_required?.length ?? 0) > 0) {
          throw new Error(
            `BENCH_TOGGLE: reloading ${names[config]}: ${JSON.stringify(answer)}`,
          );
        }
      },
      warmUp: async () => {
        await load.warmUp(daemon.tcp, settings.concurrency, 1);
      },
      measure: () => load.openLoop(daemon.tcp, toggleRate, toggleSeconds),
      cpuNs: () => cpuNs(daemon.pid),
      ...(toggleClosedSeconds > 0
        ? { saturate: () => load.closedLoop(daemon.tcp, settings.concurrency, toggleClosedSeconds) }
        : {}),
    },
    progress,
    toggleConfigs.length,
  );
  return summarizeToggle(blocks, toggleConfigs.length);
}

/** The header's line on the Go rig, with how late its schedule ran (over the open-loop runs). */
function rigLine(): string {
  const late = load.lateness ?? [];
  const median = (f: (l: Lateness) => number) =>
    percentile(late.map(f).sort((x, y) => x - y), 50).toFixed(3);
  const worst = late.length === 0 ? NaN : Math.max(...late.map((l) => l.p99));
  return "Go load generator and upstream (bench/loadgen, bench/upstream_go), HTTP/1.1 " +
    "keep-alive; open-loop latency runs from each request's intended send time (wrk2); the " +
    `generator's own lateness, median of runs: p50 ${median((l) => l.p50)} / p99 ` +
    `${median((l) => l.p99)} ms (worst p99 ${worst.toFixed(3)} ms)`;
}

async function main(): Promise<void> {
  const started = performance.now();
  const machine = await machineInfo();
  const tmp = await Deno.makeTempDir({ dir: "/tmp", prefix: "pilotfish-bench-" });
  undo.push(() => Deno.remove(tmp, { recursive: true }));
  procs = startUsageReader();
  undo.push(() => procs.close());

  if (settings.pinned) {
    // The load generator (this process, every thread) shares core 1 with the upstream.
    await new Deno.Command("taskset", {
      args: ["-a", "-cp", "1", String(Deno.pid)],
      stdout: "null",
    })
      .output();
  }
  // The Go generator and upstream when Go is here; else the Deno ones, and the report says so.
  const upstreamArgs = [`--chunks=${settings.chunks}`, `--chunk-delay-ms=${settings.chunkDelayMs}`];
  const bins = await goBinaries();
  let rigWarning: string | null = null;
  let upstream: Service;
  if ("reason" in bins) {
    rigWarning = `${bins.reason}: Deno load generator and upstream instead (bench/load.ts, ` +
      "upstream.ts), several times the CPU per request on core 1; figures not comparable with " +
      "the Go rig's";
    progress(`WARNING: ${rigWarning}`);
    upstream = spawnDenoScript("upstream", "upstream.ts", upstreamArgs, 1);
  } else {
    const [command, argv] = onCore(1, bins.upstream, upstreamArgs);
    upstream = track(spawnService("upstream", command, argv, { cwd: ROOT }));
    const [lgCommand, lgArgv] = onCore(1, bins.loadgen, []);
    const go = goLoad(lgCommand, lgArgv, {
      bearer: BENCH_BEARER,
      promptBytes: PROMPT_BYTES,
      uniquePrompts: UNIQUE_PROMPTS,
      newTurns: NEW_TURNS,
    });
    undo.push(() => go.close());
    load = go;
  }
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
  const bare = spawnDenoScript("bare proxy", "bare_proxy.ts", [upstreamOrigin], 0);
  const bareTarget: Target = {
    name: "bare proxy",
    url: `http://127.0.0.1:${await announcedPort(bare)}${CHAT_PATH}`,
    client: trackClient(tcpClient()),
  };
  await probe(bareTarget, bare);
  const barePid = await findProcess(bare.child.pid, "bare_proxy.ts") ?? bare.child.pid;

  // A Redis for features that share state (BENCH_REDIS): no persistence, stopped at the end.
  if (withRedis) {
    const redisPort = freePort();
    const redis = spawnRedis(redisPort);
    undo.push(() => redis.stop());
    redisUrl = `redis://127.0.0.1:${redisPort}`;
    for (let i = 0; i < 100; i++) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: redisPort })).close();
        break;
      } catch {
        await sleep(50);
      }
    }
    progress(`redis-server on ${redisUrl}`);
  }

  // Pilotfish, started the way operators start it: the baseline (features off), and with
  // BENCH_STAGES / BENCH_CONFIG a variant beside it, measured in the same interleaved rounds
  // so "feature on vs off" is one run's difference, not two runs' noise.
  const base = await startPilotfish("pilotfish", tmp, upstreamOrigin, {
    stages: 0,
    ...(baseConfigPath !== undefined ? { extra: baseConfigPath } : {}),
  });
  const tcp = base.tcp;
  const sock = base.sock;
  const variantName = `pf ${
    [stages > 0 ? `+${stages} no-op stages` : "", extraConfigPath ?? "", v8Flags ?? ""]
      .join(" ").trim()
  }`;
  const variantOpts = {
    stages,
    ...(extraConfigPath !== undefined ? { extra: extraConfigPath } : {}),
    ...(v8Flags !== undefined ? { v8Flags } : {}),
  };
  const hasVariant = stages > 0 || extraConfigPath !== undefined || v8Flags !== undefined;
  if (withAbba && !hasVariant) {
    throw new Error(
      "BENCH_ABBA=1 compares a variant: set BENCH_CONFIG, BENCH_STAGES or BENCH_V8_FLAGS",
    );
  }
  if (withToggle && toggleConfigs.length === 0) {
    throw new Error(
      "BENCH_TOGGLE=1 switches a daemon's config: set BENCH_CONFIG or BENCH_TOGGLE_CONFIGS",
    );
  }
  const variant = hasVariant
    ? await startPilotfish(variantName, tmp, upstreamOrigin, variantOpts)
    : null;
  // ABBA: the variant's twin starts right after it, the base's twin (the control) last.
  const variant2 = withAbba
    ? await startPilotfish(`${variantName} #2`, tmp, upstreamOrigin, {
      ...variantOpts,
      tag: "pfv2",
    })
    : null;
  const pfPid = base.pid;
  // BENCH_BASELINE_ROOT=<checkout>: that tree's daemon too (e.g. the commit before a change),
  // so before/after is one run's difference.
  const before = baselineRoot === undefined ? null : await startPilotfish(
    `pf @${baselineRoot}`,
    tmp,
    upstreamOrigin,
    {
      stages: 0,
      root: baselineRoot,
      ...(baseConfigPath !== undefined ? { extra: baseConfigPath } : {}),
    },
  );
  // BENCH_CONTROL=1: a daemon identical to the first, so the run states its own noise floor.
  const control = !withControl ? null : await startPilotfish("pf control", tmp, upstreamOrigin, {
    stages: 0,
    tag: "pfc",
    ...(baseConfigPath !== undefined ? { extra: baseConfigPath } : {}),
  });

  // When daemons are compared, each serves the same load (TCP only): a daemon that also served
  // the socket rounds would be warmer, with a bigger heap and fewer collections per request.
  const compare = variant !== null || before !== null || control !== null;
  const bareM = measured(bareTarget, barePid);
  const tcpM = measured(tcp, pfPid);
  const sockM = compare ? null : measured(sock, pfPid);
  const variantM = variant ? measured(variant.tcp, variant.pid) : null;
  const variant2M = variant2 ? measured(variant2.tcp, variant2.pid) : null;
  const beforeM = before ? measured(before.tcp, before.pid) : null;
  const controlM = control ? measured(control.tcp, control.pid) : null;
  const all = [
    measured(direct, null),
    bareM,
    tcpM,
    ...(sockM ? [sockM] : []),
    ...(variantM ? [variantM] : []),
    ...(variant2M ? [variant2M] : []),
    ...(beforeM ? [beforeM] : []),
    ...(controlM ? [controlM] : []),
  ];

  // RSS before any traffic, then after every path is warm and the proxies sit idle.
  bareM.rssReady = (await procs.usage(barePid))?.rss ?? null;
  tcpM.rssReady = (await procs.usage(pfPid))?.rss ?? null;
  if (sockM) sockM.rssReady = tcpM.rssReady;
  if (variant && variantM) variantM.rssReady = (await procs.usage(variant.pid))?.rss ?? null;
  if (variant2 && variant2M) variant2M.rssReady = (await procs.usage(variant2.pid))?.rss ?? null;
  if (before && beforeM) beforeM.rssReady = (await procs.usage(before.pid))?.rss ?? null;
  if (control && controlM) controlM.rssReady = (await procs.usage(control.pid))?.rss ?? null;
  progress(`warm-up ${settings.warmupSeconds}s per target`);
  for (const m of all) {
    const errors = await load.warmUp(m.target, settings.concurrency, settings.warmupSeconds);
    if (errors > 0) progress(`${m.target.name}: ${errors} failed requests during warm-up`);
  }
  await sleep(settings.settleSeconds * 1000);
  bareM.rssIdle = (await procs.usage(barePid))?.rss ?? null;
  tcpM.rssIdle = (await procs.usage(pfPid))?.rss ?? null;
  if (sockM) sockM.rssIdle = tcpM.rssIdle;
  if (variant && variantM) variantM.rssIdle = (await procs.usage(variant.pid))?.rss ?? null;
  if (variant2 && variant2M) variant2M.rssIdle = (await procs.usage(variant2.pid))?.rss ?? null;
  if (before && beforeM) beforeM.rssIdle = (await procs.usage(before.pid))?.rss ?? null;
  if (control && controlM) controlM.rssIdle = (await procs.usage(control.pid))?.rss ?? null;

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

  // Request-by-request interleaving: the p50 differences the rounds cannot resolve.
  const interleaved = load.interleaved && settings.interleavedSeconds > 0
    ? all.map((m) => ({ name: m.target.name, blocks: [] as number[][] }))
    : null;
  if (interleaved && load.interleaved) {
    // Every target busy just before: a daemon idle for seconds has had its heap shrunk by
    // V8's memory reducer and is slower for a while after, which would be charged to
    // whichever target happened to run first in the rounds.
    for (const m of all) await load.warmUp(m.target, settings.concurrency, 0.5);
    const block = settings.interleavedSeconds / settings.interleavedBlocks;
    for (let b = 0; b < settings.interleavedBlocks; b++) {
      progress(`interleaved open loop, block ${b + 1}/${settings.interleavedBlocks}`);
      // Each block rotates the order, so no target always follows the same neighbour.
      const order = all.map((_, i) => (i + b) % all.length);
      const results = await load.interleaved(
        order.map((i) => (all[i] as Measured).target),
        settings.rate,
        block,
      );
      results.forEach((r, k) => {
        const i = order[k] as number;
        interleaved[i]?.blocks.push(r.latencies);
        (all[i] as Measured).errors += r.errors;
      });
    }
  }

  if (settings.streams > 0) {
    // Two rounds in opposite orders, a settle before each run: the target after another
    // ran while that one's 1,000 closing connections were still being cleaned up on the same
    // core (the second target lost 300-500 ms of max stall to the first in single runs).
    // Each target keeps its worse round (by max stall): the goal is "no stall".
    for (const order of [all, [...all].reverse()]) {
      for (const m of order) {
        await sleep(settings.settleSeconds * 1000);
        progress(`${settings.streams} concurrent streams: ${m.target.name}`);
        const many = await load.manyStreams(
          m.target,
          settings.streams,
          `up/gpt-4o-mini-c${settings.manyChunks}-d${MANY_GAP_MS}`,
          MANY_GAP_MS,
          1,
        );
        m.errors += many.errors;
        if (m.many === null || many.maxStall > m.many.maxStall) m.many = many;
      }
    }
  }

  const toggled = withToggle ? await toggle(tmp, upstreamOrigin) : null;

  const rows = all.map(toRow);
  printHeader(machine, settings, rigWarning ?? rigLine());
  printTable(rows, settings);
  printChecks(checks(rows));
  const rowOf = (m: Measured) => rows[all.indexOf(m)] as Row;
  if (controlM) printVariant(rows[0] as Row, rowOf(tcpM), rowOf(controlM), "the noise floor");
  if (variantM) printVariant(rows[0] as Row, rowOf(tcpM), rowOf(variantM));
  if (beforeM) printVariant(rows[0] as Row, rowOf(beforeM), rowOf(tcpM));
  if (interleaved) printInterleaved(interleaved, tcp.name, settings);
  if (variantM && variant2M && controlM) {
    printAbba(
      {
        base: rowOf(tcpM),
        variant: rowOf(variantM),
        variant2: rowOf(variant2M),
        base2: rowOf(controlM),
      },
      interleaved,
      rows[0] as Row,
    );
  }
  if (toggled !== null) {
    printToggle(toggled, toggleConfigs, {
      rate: toggleRate,
      seconds: toggleSeconds,
      closedSeconds: toggleClosedSeconds,
    });
  }
  console.log(
    "Figures: added = the target's figure minus the direct call's (the proxy's cost); " +
      "latency = non-streaming requests under an open-loop rate, all rounds pooled (sent/s " +
      "below the rate means the generator fell behind); CPU us/req = user+sys CPU per " +
      "request of the proxy process at the high rate (load generator and upstream in the " +
      "direct column's line below); max req/s = closed loop, median of the rounds (range " +
      "slowest-fastest); SSE = streaming requests one at a time; concurrent streams = all " +
      "open at once, stall = a chunk later than the upstream's spacing; RSS = VmRSS of the " +
      "proxy (start = before traffic, after load = after warm-up and settle, peak = sampled " +
      "every 50 ms during the throughput runs).",
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
