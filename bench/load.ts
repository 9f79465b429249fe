/** The load generator: open-loop latency, closed-loop throughput and stream first byte. */

export interface Target {
  readonly name: string;
  /** Full URL of the chat completions endpoint. */
  readonly url: string;
  /**
   * One client per target so each starts with its own pool and none inherits another's
   * warm keep-alive connections.
   */
  readonly client: Deno.HttpClient;
  /** The Unix socket `client` connects through, for the Go load generator (bench/rig.ts). */
  readonly socket?: string;
}

/** Keep-alive HTTP/1.1 clients for every target: Pilotfish and the bare proxy only speak it. */
export function tcpClient(): Deno.HttpClient {
  return Deno.createHttpClient({ http1: true, http2: false });
}

export function unixClient(path: string): Deno.HttpClient {
  return Deno.createHttpClient({ http1: true, http2: false, proxy: { transport: "unix", path } });
}

/**
 * BENCH_PROMPT_BYTES: the user message padded with ordinary prose to about that many bytes
 * (what a content-scanning plugin pays per request); the two-word prompt by default.
 */
export const PROMPT_BYTES = Math.max(
  0,
  Math.floor(Number(Deno.env.get("BENCH_PROMPT_BYTES") ?? 0)),
);
/**
 * BENCH_UNIQUE_PROMPTS=1: every chat request's prompt opens with its own ten-digit number
 * (`[0000000042] `, in place of the prompt's first bytes when it is padded), so a feature keyed
 * on the prompt (a cache, a plugin's memory of text it has scanned) never sees one twice.
 */
export const UNIQUE_PROMPTS = Deno.env.get("BENCH_UNIQUE_PROMPTS") === "1";
/**
 * BENCH_NEW_TURNS=1: a conversation as a chat client resends it. The (padded) prompt is the
 * history, the same every time, then an assistant reply and a short user turn that opens with
 * its own number: a feature keyed on whole parts sees the history again and the new turn once.
 */
export const NEW_TURNS = Deno.env.get("BENCH_NEW_TURNS") === "1";
if (UNIQUE_PROMPTS && NEW_TURNS) {
  throw new Error("BENCH_UNIQUE_PROMPTS and BENCH_NEW_TURNS: one or the other");
}
const UNIQUE_MARK = "[0000000000] ";
/** The new user turn of BENCH_NEW_TURNS (bench/loadgen's `newTurn`, byte for byte). */
const NEW_TURN = UNIQUE_MARK + "What changed since the last report?";
const PROSE = "The quarterly report covers revenue, hiring and the product roadmap for next year. ";
const PROMPT = PROMPT_BYTES > 0
  ? PROSE.repeat(Math.ceil(PROMPT_BYTES / PROSE.length)).slice(0, PROMPT_BYTES)
  : "Say hello.";
const MESSAGES = [
  { role: "system", content: "You are a helpful assistant." },
  {
    role: "user",
    content: !UNIQUE_PROMPTS ? PROMPT : (UNIQUE_MARK + PROMPT).slice(
      0,
      PROMPT_BYTES > 0
        ? Math.max(PROMPT.length, UNIQUE_MARK.length)
        : UNIQUE_MARK.length + PROMPT.length,
    ),
  },
  ...(NEW_TURNS
    ? [{ role: "assistant", content: "Noted." }, { role: "user", content: NEW_TURN }]
    : []),
];
const CHAT_TEMPLATE = JSON.stringify({
  model: "up/gpt-4o-mini",
  messages: MESSAGES,
  max_tokens: 32,
});
const STAMP_AT = CHAT_TEMPLATE.indexOf(UNIQUE_MARK) + 1;
let stamps = 0;
/** The next chat request's body (with its own number when prompts or turns are unique). */
function chatBody(): string {
  if (!UNIQUE_PROMPTS && !NEW_TURNS) return CHAT_TEMPLATE;
  const n = String(++stamps).padStart(10, "0");
  return CHAT_TEMPLATE.slice(0, STAMP_AT) + n + CHAT_TEMPLATE.slice(STAMP_AT + 10);
}
const STREAM_BODY = JSON.stringify({
  model: "up/gpt-4o-mini",
  messages: MESSAGES,
  max_tokens: 32,
  stream: true,
});
/** BENCH_AUTH: the bearer the load sends (an app key when the daemon requires one). */
export const BENCH_BEARER = Deno.env.get("BENCH_AUTH")?.trim() || "sk-bench";
const HEADERS = { "content-type": "application/json", authorization: `Bearer ${BENCH_BEARER}` };

/** One non-streaming request, body read to the end (so the connection goes back to the pool). */
async function chatOnce(target: Target): Promise<boolean> {
  try {
    const res = await fetch(target.url, {
      method: "POST",
      headers: HEADERS,
      body: chatBody(),
      client: target.client,
    });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

export interface LatencyResult {
  /** Milliseconds, successful requests only, sorted ascending. */
  readonly latencies: number[];
  readonly errors: number;
  /** Requests actually started per second: below the asked rate means we fell behind. */
  readonly sentRate: number;
}

/**
 * Open loop: requests start on a fixed schedule whether or not earlier ones finished, so a
 * slow target cannot slow the arrival rate (closed loops hide queueing that way). Latency
 * runs from the actual send, which on time is within a timer tick of the schedule.
 */
export async function openLoop(
  target: Target,
  rate: number,
  seconds: number,
): Promise<LatencyResult> {
  const total = Math.max(1, Math.round(rate * seconds));
  const interval = 1000 / rate;
  const latencies: number[] = [];
  let errors = 0;
  const inflight: Promise<void>[] = [];
  const start = performance.now();
  let lastSend = start;
  for (let i = 0; i < total; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    // Timers are ~1 ms coarse: when late, send at once and let the schedule catch up.
    if (wait >= 1) await sleep(wait);
    const sent = performance.now();
    lastSend = sent;
    inflight.push(
      chatOnce(target).then((ok) => {
        if (ok) latencies.push(performance.now() - sent);
        else errors++;
      }),
    );
  }
  await Promise.all(inflight);
  const span = (lastSend - start) / 1000;
  return {
    latencies: latencies.sort((a, b) => a - b),
    errors,
    sentRate: span > 0 ? (total - 1) / span : total,
  };
}

export interface ThroughputResult {
  readonly completed: number;
  readonly errors: number;
  readonly seconds: number;
  readonly rps: number;
}

/** Closed loop: `concurrency` workers each send the next request as soon as one finishes. */
export async function closedLoop(
  target: Target,
  concurrency: number,
  seconds: number,
): Promise<ThroughputResult> {
  let completed = 0;
  let errors = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      if (await chatOnce(target)) completed++;
      else errors++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - start) / 1000;
  return { completed, errors, seconds: elapsed, rps: completed / elapsed };
}

/**
 * A content delta with text in it: what a user sees as the first token. Streams start with a
 * role-only chunk, which a gateway's stream gate holds until content arrives (it could still
 * fail over), so the first body byte is not comparable between a gateway and a bare proxy.
 */
const CONTENT = /"content":"[^"]/;

export interface StreamResult {
  /** Milliseconds to the first content (see CONTENT), sorted ascending. */
  readonly ttfb: number[];
  /** Milliseconds to the end of the stream, sorted ascending. */
  readonly total: number[];
  readonly errors: number;
}

/**
 * Streaming requests one after another (no queueing in the way), timing the first content
 * and the end of the stream. Each stream is read to the end so its connection is
 * reused, as a real client would.
 */
export async function streamFirstByte(target: Target, seconds: number): Promise<StreamResult> {
  const ttfb: number[] = [];
  const total: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const sent = performance.now();
    try {
      const res = await fetch(target.url, {
        method: "POST",
        headers: HEADERS,
        body: STREAM_BODY,
        client: target.client,
      });
      if (res.status !== 200 || !res.body) {
        await res.body?.cancel();
        errors++;
        continue;
      }
      const reader = res.body.getReader();
      let first: number | null = null;
      let text = "";
      const decoder = new TextDecoder();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
        if (first === null && CONTENT.test(text)) first = performance.now() - sent;
      }
      if (first === null || !text.trimEnd().endsWith("data: [DONE]")) {
        errors++;
        continue;
      }
      ttfb.push(first);
      total.push(performance.now() - sent);
    } catch {
      errors++;
    }
  }
  return { ttfb: ttfb.sort((a, b) => a - b), total: total.sort((a, b) => a - b), errors };
}

export interface ManyStreamsResult {
  /** Milliseconds to each stream's first content, sorted ascending. */
  readonly ttfb: number[];
  /** The longest wait for a chunk beyond the upstream's spacing, over every stream, ms. */
  readonly maxStall: number;
  /** Streams with a stall over 50 ms. */
  readonly stalled: number;
  readonly completed: number;
  readonly errors: number;
}

/**
 * `count` streams open at once (started evenly over `rampSeconds`), each sending chunks
 * `gapMs` apart for a while (the model name tells the bench upstream how: see upstream.ts).
 * A stall is a chunk that arrived later than the spacing says, measured between consecutive
 * reads; a proxy that holds chunks back under load shows there.
 */
export async function manyStreams(
  target: Target,
  count: number,
  model: string,
  gapMs: number,
  rampSeconds: number,
): Promise<ManyStreamsResult> {
  const body = JSON.stringify({ model, messages: MESSAGES, max_tokens: 32, stream: true });
  const ttfb: number[] = [];
  let maxStall = 0;
  let stalled = 0;
  let completed = 0;
  let errors = 0;
  const one = async () => {
    const sent = performance.now();
    try {
      const res = await fetch(target.url, {
        method: "POST",
        headers: HEADERS,
        body,
        client: target.client,
      });
      if (res.status !== 200 || !res.body) {
        await res.body?.cancel();
        errors++;
        return;
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let last: number | null = null;
      let worst = 0;
      let text = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const now = performance.now();
        text += decoder.decode(value, { stream: true });
        // Spacing is measured from the first content on (the role chunk comes at once).
        if (last === null) {
          if (!CONTENT.test(text)) continue;
          ttfb.push(now - sent);
        } else {
          worst = Math.max(worst, now - last - gapMs);
        }
        last = now;
      }
      if (!text.trimEnd().endsWith("data: [DONE]")) {
        errors++;
        return;
      }
      completed++;
      maxStall = Math.max(maxStall, worst);
      if (worst > 50) stalled++;
    } catch {
      errors++;
    }
  };
  const started: Promise<void>[] = [];
  const step = (rampSeconds * 1000) / count;
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const wait = t0 + i * step - performance.now();
    if (wait >= 1) await sleep(wait);
    started.push(one());
  }
  await Promise.all(started);
  return { ttfb: ttfb.sort((a, b) => a - b), maxStall, stalled, completed, errors };
}

/** Warm JIT, connection pools and caches on both paths before anything is measured. */
export async function warmUp(
  target: Target,
  concurrency: number,
  seconds: number,
): Promise<number> {
  const r = await closedLoop(target, concurrency, seconds);
  const s = await streamFirstByte(target, Math.min(0.5, seconds));
  return r.errors + s.errors;
}

/** Nearest-rank percentile of an ascending array; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
