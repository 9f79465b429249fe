/**
 * The chaos suite's client: one chat completion with a hard deadline, classified by how it
 * ended. "ok" and "error" (a status with an OpenAI-format error body) and "stream_error" (an
 * in-stream `data: {"error":…}` event) are acceptable endings; "hang" (our deadline passed),
 * "silent" (a stream that stopped without [DONE] or an error event), "broken" (the
 * connection failed or the body is not in format) are the failures the suite hunts for.
 * @module
 */

export type Ending = "ok" | "error" | "stream_error" | "hang" | "silent" | "broken";

export interface Result {
  readonly ending: Ending;
  readonly status: number | null;
  readonly ms: number;
  readonly detail: string;
}

export interface ChatOptions {
  readonly stream?: boolean;
  /** Our own deadline: past it the request counts as a hang. */
  readonly deadlineMs: number;
  readonly client?: Deno.HttpClient;
}

const HEADERS = { "content-type": "application/json", authorization: "Bearer sk-client" };

export async function chat(url: string, model: string, opts: ChatOptions): Promise<Result> {
  const started = performance.now();
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), opts.deadlineMs);
  const done = (ending: Ending, status: number | null, detail: string): Result => ({
    ending,
    status,
    ms: Math.round(performance.now() - started),
    detail,
  });
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: HEADERS,
      body: JSON.stringify({
        model,
        messages: [{ role: "user", content: "hi" }],
        ...(opts.stream ? { stream: true, stream_options: { include_usage: true } } : {}),
      }),
      signal: abort.signal,
      ...(opts.client ? { client: opts.client } : {}),
    });
    const text = await res.text();
    if (res.status !== 200) {
      return isOpenAiError(text)
        ? done("error", res.status, text.slice(0, 200))
        : done("broken", res.status, `not an OpenAI error body: ${text.slice(0, 200)}`);
    }
    if (!opts.stream) {
      const ok = parses(text, (v) => Array.isArray((v as { choices?: unknown }).choices));
      return done(ok ? "ok" : "broken", 200, text.slice(0, 200));
    }
    const events = text.split("\n\n").map((e) => e.trim()).filter((e) => e.startsWith("data: "));
    const errorEvent = events.find((e) => isOpenAiError(e.slice(6)));
    if (errorEvent) return done("stream_error", 200, errorEvent.slice(0, 200));
    if (events.at(-1) === "data: [DONE]") return done("ok", 200, "");
    return done("silent", 200, text.slice(-200));
  } catch (err) {
    if (abort.signal.aborted) return done("hang", null, `no answer within ${opts.deadlineMs} ms`);
    return done("broken", null, err instanceof Error ? err.message : String(err));
  } finally {
    clearTimeout(timer);
  }
}

function parses(text: string, check: (v: unknown) => boolean): boolean {
  try {
    return check(JSON.parse(text));
  } catch {
    return false;
  }
}

/** `{"error":{"message":"…", …}}`: the OpenAI error envelope (the degraded signal included). */
export function isOpenAiError(text: string): boolean {
  return parses(text, (v) => {
    const e = (v as { error?: { message?: unknown } } | null)?.error;
    return typeof e === "object" && e !== null && typeof e.message === "string" &&
      e.message.length > 0;
  });
}

/** How many results ended each way, e.g. `{ok: 40, error: 8}`. */
export function tally(results: readonly Result[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) out[r.ending] = (out[r.ending] ?? 0) + 1;
  return out;
}

/** Run `count` calls of `fn`, at most `concurrency` at a time. */
export async function pool<T>(
  count: number,
  concurrency: number,
  fn: (i: number) => Promise<T>,
): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return out;
}

/** Request log lines (JSON) of a daemon's stdout. */
export function requestLines(logs: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of logs.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const obj = JSON.parse(line) as Record<string, unknown>;
      if (obj.msg === "request") out.push(obj);
    } catch { /* not a log line */ }
  }
  return out;
}

/** The chaos and soak suites scale with CHAOS_SCALE (1 in CI; `deno task chaos` sets more). */
export function chaosScale(): number {
  const n = Number(Deno.env.get("CHAOS_SCALE") ?? "1");
  return Number.isFinite(n) && n >= 1 ? Math.floor(n) : 1;
}
