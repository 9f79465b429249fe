// deno-lint-ignore-file no-console -- a CLI: the report goes to stdout.
/**
 * `deno task bench:pipeline`: Pilotfish's own CPU per request, in-process and without a
 * network, so a difference of a few microseconds is visible (the network bench's run-to-run
 * noise on a shared 2-core VM is ±50 µs). The app answers requests one after another from an
 * upstream `fetch` that returns a canned answer at once; the figure is the process's CPU time
 * (user + system) per request, which is what the gateway spends and, unlike wall time, is not
 * inflated while other processes hold the cores. Variants run interleaved in
 * rounds and each round's figure is kept, so drift shows as a range instead of a bias.
 *
 *   deno task bench:pipeline                       # empty chain vs 3 no-op stages
 *   BENCH_CONFIG=bench/configs/x.yaml deno task bench:pipeline   # also: that fragment on
 *
 * Env: BENCH_REQUESTS (per variant per round, default 4000), BENCH_ROUNDS (default 7),
 * BENCH_STAGES (no-op stages of the second variant, default 3), BENCH_STREAM=1 (streamed;
 * BENCH_CHUNKS content chunks, default 6),
 * BENCH_AUTH (the bearer sent; e.g. the app key of bench/configs/keys.yaml), BENCH_REDIS_URL
 * (a running Redis for a fragment's `{{REDIS}}`; limits on it are measured once their lease is
 * taken), BENCH_PROMPT_BYTES (the user message is that many bytes of prose, as `deno task
 * bench` pads it; default `"x"` x 900, kept so figures compare across sessions),
 * BENCH_UNIQUE_PROMPTS=1 (each request's prompt opens with its own number, as in `deno task
 * bench`: nothing keyed on the prompt sees it twice), BENCH_NEW_TURNS=1 (the prompt is the
 * history, then an assistant reply and a short user turn with its own number, as in `deno task
 * bench`).
 * `{{TMP}}` in a fragment becomes a temporary directory.
 */
import process from "node:process";
import { parseConfigText } from "../src/config/mod.ts";
import { breakerTiming, createMemoryBreakerStore } from "../src/breaker/mod.ts";
import { createRoutingState } from "../src/routing/mod.ts";
import { buildRuntime } from "../src/runtime.ts";
import { createApp } from "../src/server/app.ts";
import { preloadTelemetry } from "../src/telemetry/hub.ts";

/** CPU time of this process (user + system), µs: unlike wall time, not inflated while other
 * processes hold the cores. */
function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

const n = Number(Deno.env.get("BENCH_REQUESTS") ?? 4000);
const rounds = Number(Deno.env.get("BENCH_ROUNDS") ?? 7);
const noop = Number(Deno.env.get("BENCH_STAGES") ?? 3);
const stream = Deno.env.get("BENCH_STREAM") === "1";
const extraPath = Deno.env.get("BENCH_CONFIG")?.trim() || undefined;
const redisUrl = Deno.env.get("BENCH_REDIS_URL")?.trim() || undefined;

const REPLY = JSON.stringify({
  id: "chatcmpl-bench",
  object: "chat.completion",
  created: 1_700_000_000,
  model: "gpt-4o-mini",
  choices: [{
    index: 0,
    message: { role: "assistant", content: "Hello! How can I help you today?" },
    finish_reason: "stop",
  }],
  usage: { prompt_tokens: 9, completion_tokens: 9, total_tokens: 18 },
});
const enc = new TextEncoder();
// BENCH_CHUNKS: content chunks per streamed answer (default 6), to weigh the per-chunk cost.
const chunks = Math.max(1, Math.floor(Number(Deno.env.get("BENCH_CHUNKS") ?? 6)));
const WORDS = ["Hello", "!", " How", " can", " I", " help?"];
const SSE = [
  ...Array.from({ length: chunks }, (_, i) => WORDS[i % WORDS.length] as string).map((t, i) =>
    `data: ${
      JSON.stringify({
        id: "chatcmpl-bench",
        object: "chat.completion.chunk",
        created: 1_700_000_000,
        model: "gpt-4o-mini",
        choices: [{
          index: 0,
          delta: i === 0 ? { role: "assistant", content: t } : { content: t },
        }],
      })
    }\n\n`
  ),
  "data: [DONE]\n\n",
].map((s) => enc.encode(s));

/** The upstream: a canned answer, no I/O. */
const upstream: typeof fetch = (_input, init) => {
  const body = typeof init?.body === "string" ? init.body : "";
  if (body.includes('"stream":true')) {
    let i = 0;
    return Promise.resolve(
      new Response(
        new ReadableStream<Uint8Array>({
          pull(c) {
            if (i < SSE.length) c.enqueue(SSE[i++] as Uint8Array);
            else c.close();
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      ),
    );
  }
  return Promise.resolve(
    new Response(REPLY, { headers: { "content-type": "application/json" } }),
  );
};

const BASE = `
logging:
  level: warn
providers:
  up:
    type: openai
    base_url: http://upstream.invalid/v1
    keys:
      - key: sk-bench
`;

async function gateway(extra: string, stages: number) {
  const { config } = parseConfigText(BASE + extra, () => undefined, "bench-pipeline.yaml");
  await preloadTelemetry(config); // as main.ts does: the OTel packages load before the generation
  const runtime = buildRuntime(config, 1, {
    fetch: upstream,
    random: Math.random,
    routing: createRoutingState(),
    breakerStore: createMemoryBreakerStore(breakerTiming(config.features.circuit_breaker)),
    write: () => {},
    noopStages: stages,
  });
  await runtime.ready(); // WASM plugins start their workers first
  // Limits on Redis (BENCH_REDIS_URL): measured with the lease taken, as a sidecar runs.
  if (config.features.rate_limiting.enabled && redisUrl !== undefined) {
    await runtime.limits?.shared();
  }
  return createApp({ runtime: () => runtime, isReady: () => true });
}

const promptBytes = Math.floor(Number(Deno.env.get("BENCH_PROMPT_BYTES") ?? 0));
const PROSE = "The quarterly report covers revenue, hiring and the product roadmap for next year. ";
const turns = Deno.env.get("BENCH_NEW_TURNS") === "1";
if (turns && Deno.env.get("BENCH_UNIQUE_PROMPTS") === "1") {
  throw new Error("BENCH_UNIQUE_PROMPTS and BENCH_NEW_TURNS: one or the other");
}
const unique = turns || Deno.env.get("BENCH_UNIQUE_PROMPTS") === "1";
const MARK = "[0000000000] ";
const prompt = promptBytes > 0
  ? PROSE.repeat(Math.ceil(promptBytes / PROSE.length)).slice(0, promptBytes)
  : "x".repeat(900);
const template = JSON.stringify({
  model: "up/gpt-4o-mini",
  messages: [
    { role: "user", content: unique && !turns ? MARK + prompt.slice(MARK.length) : prompt },
    ...(turns
      ? [
        { role: "assistant", content: "Noted." },
        { role: "user", content: MARK + "What changed since the last report?" },
      ]
      : []),
  ],
  max_tokens: 32,
  ...(stream ? { stream: true } : {}),
});
const stampAt = template.indexOf(MARK) + 1;
let stamps = 0;
/** The next request's body: with its own number when prompts are unique. */
const nextBody = () =>
  unique
    ? template.slice(0, stampAt) + String(++stamps).padStart(10, "0") + template.slice(stampAt + 10)
    : template;
// BENCH_AUTH: the bearer sent (an app key when the fragment requires one).
const headers = {
  "content-type": "application/json",
  authorization: `Bearer ${Deno.env.get("BENCH_AUTH")?.trim() || "sk-client"}`,
};

type App = Awaited<ReturnType<typeof gateway>>;

async function one(app: App): Promise<void> {
  const res = await app.fetch(
    new Request("http://localhost/v1/chat/completions", {
      method: "POST",
      headers,
      body: nextBody(),
    }),
    { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 50000 } },
  );
  if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
  await res.arrayBuffer();
}

const variants: { name: string; app: App; us: number[] }[] = [
  { name: "empty chain", app: await gateway("", 0), us: [] },
  { name: `+${noop} no-op stages`, app: await gateway("", noop), us: [] },
];
/** The fragment's `{{TMP}}` (a state file, say): removed before the process exits. */
let tmp: string | null = null;
if (extraPath !== undefined) {
  tmp = await Deno.makeTempDir({ prefix: "pilotfish-bench-pipeline-" });
  // No upstream process here: a fragment's {{UPSTREAM}} (a trace sink) gets a closed port.
  const extra = (await Deno.readTextFile(extraPath)).replaceAll("{{TMP}}", tmp)
    .replaceAll("{{UPSTREAM}}", "http://127.0.0.1:9")
    .replaceAll("{{REDIS}}", redisUrl ?? "redis://127.0.0.1:9");
  variants.push({ name: extraPath, app: await gateway(extra, 0), us: [] });
}

for (const v of variants) for (let i = 0; i < n; i++) await one(v.app); // warm-up (JIT)
for (let r = 0; r < rounds; r++) {
  for (const v of variants) {
    const t0 = cpuUs();
    for (let i = 0; i < n; i++) await one(v.app);
    v.us.push((cpuUs() - t0) / n);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const base = median(variants[0]!.us);
console.log(
  `In-process pipeline, ${stream ? "streamed" : "JSON"} chat completion${
    promptBytes > 0 ? ` (${promptBytes}-byte prompt)` : ""
  }${
    turns ? ", a new turn each" : unique ? ", unique prompts" : ""
  }, ${n} requests x ${rounds} rounds per variant`,
);
// The fastest round is the least disturbed by other processes on a shared machine: both it
// and the median are shown, each against the empty chain's.
const best = Math.min(...variants[0]!.us);
const signed = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(1)}`;
console.log(
  "variant                        median us/req  fastest round   range          vs empty (median / fastest)",
);
for (const v of variants) {
  const m = median(v.us);
  const sorted = [...v.us].sort((a, b) => a - b);
  const lo = sorted[0]!;
  console.log(
    `${v.name.padEnd(30)} ${m.toFixed(1).padStart(13)}  ${lo.toFixed(1).padStart(13)}   ${
      `${lo.toFixed(1)}-${sorted[sorted.length - 1]!.toFixed(1)}`.padEnd(13)
    }  ${signed(m - base)} / ${signed(lo - best)} us`,
  );
}

// The state file may still be open: unlinking it is fine here (Linux, the bench's platform).
if (tmp !== null) await Deno.remove(tmp, { recursive: true });
// Plugin workers, metrics readers and flush timers would keep the process alive.
Deno.exit(0);
