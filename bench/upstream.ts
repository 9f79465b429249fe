/**
 * A fast mock OpenAI-compatible upstream for the benchmark, run as its own process so its
 * CPU is not counted against the load generator's isolate (nor vice versa).
 *
 *   deno run --allow-net=127.0.0.1 bench/upstream.ts [--chunks=N] [--chunk-delay-ms=MS]
 *
 * Listens on 127.0.0.1:0 and prints `{"port":N}` as its first stdout line. Answers
 * `POST /v1/chat/completions` with real OpenAI JSON, or with an SSE stream when the body
 * says `"stream": true`. The first stream event goes out at once and the rest are spaced by
 * the chunk delay, so a proxy that buffers shows up as a late first byte. A model name ending
 * in `-c<N>-d<MS>` (e.g. `gpt-4o-mini-c30-d100`) asks for N chunks MS apart instead: the
 * many-streams scenario's slow streams, through any proxy that keeps the model name.
 * `POST /v1/traces` answers `{}` (an OTLP/HTTP trace sink).
 */

interface Args {
  chunks: number;
  chunkDelayMs: number;
}

function parseArgs(args: string[]): Args {
  const out: Args = { chunks: 8, chunkDelayMs: 2 };
  for (const arg of args) {
    const [name, value] = arg.split("=", 2);
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0) throw new Error(`Bad argument "${arg}"`);
    if (name === "--chunks") out.chunks = Math.floor(n);
    else if (name === "--chunk-delay-ms") out.chunkDelayMs = n;
    else throw new Error(`Unknown argument "${arg}"`);
  }
  return out;
}

const encoder = new TextEncoder();
const REPLY = "Hello! How can I help you today?";
const USAGE = { prompt_tokens: 9, completion_tokens: 9, total_tokens: 18 };
const JSON_HEADERS = { "content-type": "application/json" };
const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
};

interface ChatBody {
  model?: unknown;
  stream?: unknown;
  stream_options?: { include_usage?: unknown };
}

function completion(id: string, created: number, model: string): string {
  return JSON.stringify({
    id,
    object: "chat.completion",
    created,
    model,
    choices: [{
      index: 0,
      message: { role: "assistant", content: REPLY, refusal: null, annotations: [] },
      logprobs: null,
      finish_reason: "stop",
    }],
    usage: USAGE,
    service_tier: "default",
    system_fingerprint: "fp_bench",
  });
}

function sse(value: unknown): Uint8Array {
  return encoder.encode(`data: ${JSON.stringify(value)}\n\n`);
}

/** Every event of one OpenAI stream, pre-encoded: the hot loop only enqueues bytes. */
function streamEvents(
  id: string,
  created: number,
  model: string,
  chunks: number,
  includeUsage: boolean,
): Uint8Array[] {
  const chunk = (delta: Record<string, unknown>, finish: string | null) =>
    sse({
      id,
      object: "chat.completion.chunk",
      created,
      model,
      system_fingerprint: "fp_bench",
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...(includeUsage ? { usage: null } : {}),
    });
  const events = [chunk({ role: "assistant", content: "", refusal: null }, null)];
  const size = Math.max(1, Math.ceil(REPLY.length / Math.max(1, chunks)));
  for (let i = 0; i < REPLY.length && chunks > 0; i += size) {
    events.push(chunk({ content: REPLY.slice(i, i + size) }, null));
  }
  events.push(chunk({}, "stop"));
  if (includeUsage) {
    events.push(sse({
      id,
      object: "chat.completion.chunk",
      created,
      model,
      system_fingerprint: "fp_bench",
      choices: [],
      usage: USAGE,
    }));
  }
  events.push(encoder.encode("data: [DONE]\n\n"));
  return events;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function createUpstreamHandler(args: Args): (req: Request) => Promise<Response> {
  let seq = 0;
  return async (req) => {
    // An OTLP/HTTP trace sink (observability fragments point their exporter here): a
    // collector's success reply, so the bench prices exports that succeed.
    if (req.method === "POST" && req.url.endsWith("/v1/traces")) {
      await req.body?.cancel();
      return new Response("{}", { headers: JSON_HEADERS });
    }
    if (req.method !== "POST" || !req.url.endsWith("/v1/chat/completions")) {
      return new Response(
        JSON.stringify({ error: { message: "not found", type: "invalid_request_error" } }),
        { status: 404, headers: JSON_HEADERS },
      );
    }
    // Parse like a real upstream would: the cost belongs in every target's numbers equally.
    const body = await req.json() as ChatBody;
    const model = typeof body.model === "string" ? body.model : "gpt-4o-mini";
    const id = `chatcmpl-bench${++seq}`;
    const created = Math.floor(Date.now() / 1000);
    if (body.stream !== true) {
      return new Response(completion(id, created, model), { headers: JSON_HEADERS });
    }
    const shape = /-c(\d+)-d(\d+)$/.exec(model);
    const chunks = shape ? Number(shape[1]) : args.chunks;
    const chunkDelayMs = shape ? Number(shape[2]) : args.chunkDelayMs;
    const events = streamEvents(
      id,
      created,
      model,
      chunks,
      body.stream_options?.include_usage === true,
    );
    let next = 0;
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (next > 0 && chunkDelayMs > 0) await delay(chunkDelayMs);
        if (cancelled) return;
        const event = events[next++];
        if (event === undefined) controller.close();
        else controller.enqueue(event);
      },
      cancel() {
        cancelled = true;
      },
    }, { highWaterMark: 0 });
    return new Response(stream, { headers: SSE_HEADERS });
  };
}

if (import.meta.main) {
  const args = parseArgs(Deno.args);
  Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => {
      // The parent reads this line to learn where we are; nothing else goes to stdout.
      Deno.stdout.writeSync(encoder.encode(JSON.stringify({ port }) + "\n"));
    },
  }, createUpstreamHandler(args));
}
