/**
 * A scriptable OpenAI-compatible upstream on 127.0.0.1:0 speaking the real wire format:
 * JSON completions, SSE streams (optionally slow or endless), and OpenAI error bodies.
 * Each request is recorded so tests can assert what the gateway forwarded.
 */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: Headers;
  body: string;
  /** The query string as received ("" when none). */
  search?: string;
}

export type Script =
  | {
    kind: "json";
    status?: number;
    /** A string is the body as written; any other value is sent as its JSON. */
    body?: unknown;
    delayMs?: number;
    headers?: Record<string, string>;
  }
  | {
    kind: "stream";
    chunks?: string[];
    delayMs?: number;
    endless?: boolean;
    includeUsage?: boolean;
    /**
     * The stream sends its role chunk and its first content chunk (what commits a stream
     * at the gateway), then holds the rest until `gate` resolves: a stream that is provably
     * still running while the test does something else.
     */
    gate?: Promise<void>;
  }
  | {
    /**
     * Scripted SSE: each string is written verbatim as one write (e.g. a recorded
     * transcript's events, tool-call fragments and all); `thenBreak` then cuts the
     * connection mid-stream instead of ending it cleanly.
     */
    kind: "sse";
    events: string[];
    thenBreak?: boolean;
    /** After the events, send nothing more until the gateway cancels (a silent upstream). */
    thenHang?: boolean;
  }
  | { kind: "hang" };

export interface FakeUpstream {
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Resolves when a streaming response was cancelled by the gateway. */
  readonly cancelled: Promise<void>;
  /** Resolves when the gateway aborted a request that was still waiting for its answer. */
  readonly aborted: Promise<void>;
  /**
   * Resolves once `count` requests were recorded in all. The request's script is already
   * fixed by then, so a `script()` call after it answers only the requests that follow.
   */
  received(count: number): Promise<void>;
  script(next: Script): void;
  close(): Promise<void>;
}

export function completionBody(content: string, model = "gpt-4o-mini") {
  return {
    id: "chatcmpl-fake",
    object: "chat.completion",
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
    usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 },
  };
}

/** One OpenAI chat completion chunk as an SSE event. */
export function chunkEvent(delta: Record<string, unknown>, finish: string | null = null) {
  return `data: ${
    JSON.stringify({
      id: "chatcmpl-fake",
      object: "chat.completion.chunk",
      created: 1_700_000_000,
      model: "gpt-4o-mini",
      choices: [{ index: 0, delta, finish_reason: finish }],
    })
  }\n\n`;
}

export function startFakeUpstream(): FakeUpstream {
  let current: Script = { kind: "json" };
  const requests: RecordedRequest[] = [];
  const { promise: cancelled, resolve: onCancel } = Promise.withResolvers<void>();
  const { promise: aborted, resolve: onAbort } = Promise.withResolvers<void>();
  const arrivals = new Set<{ count: number; resolve: () => void }>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const wait = (ms: number, signal?: AbortSignal) =>
    new Promise<void>((resolve) => {
      // Aborted before this handler ran (a loaded machine): the listener would never fire.
      if (signal?.aborted) return resolve();
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
      signal?.addEventListener("abort", () => {
        clearTimeout(t);
        timers.delete(t);
        resolve();
      }, { once: true });
    });

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    let body: string;
    try {
      body = await req.text();
    } catch (err) {
      // The gateway gave up while its body was still arriving: that is an abort too.
      onAbort();
      throw err;
    }
    requests.push({
      method: req.method,
      path: new URL(req.url).pathname,
      search: new URL(req.url).search,
      headers: req.headers,
      body,
    });
    const s = current;
    for (const a of arrivals) {
      if (requests.length >= a.count) {
        arrivals.delete(a);
        a.resolve();
      }
    }
    if (s.kind === "hang") {
      await wait(30_000, req.signal);
      return new Response(null, { status: 204 });
    }
    if (s.kind === "json") {
      if (s.delayMs) await wait(s.delayMs, req.signal);
      if (req.signal.aborted) {
        onAbort();
        return new Response(null, { status: 499 });
      }
      // A string body is sent as written (a provider's own formatting); anything else as JSON.
      const text = typeof s.body === "string"
        ? s.body
        : JSON.stringify(s.body ?? completionBody("Hello from upstream"));
      return new Response(text, {
        status: s.status ?? 200,
        headers: { "content-type": "application/json", ...s.headers },
      });
    }
    const enc = new TextEncoder();
    if (s.kind === "sse") {
      const events = [...s.events];
      const silence = new AbortController();
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(controller) {
            const next = events.shift();
            if (next !== undefined) controller.enqueue(enc.encode(next));
            else if (s.thenHang) await wait(30_000, silence.signal);
            // Erroring the body is how Deno.serve cuts a response off (it logs the error too).
            else if (s.thenBreak) controller.error(new Error("fake upstream broke mid-stream"));
            else controller.close();
          },
          cancel() {
            silence.abort();
            onCancel();
          },
        }, { highWaterMark: 0 }),
        { headers: { "content-type": "text/event-stream" } },
      );
    }
    const pieces = s.chunks ?? ["Hello", " from", " upstream"];
    let i = 0;
    const abort = new AbortController();
    return new Response(
      new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (i === 2 && s.gate) {
            await Promise.race([
              s.gate,
              new Promise((resolve) => abort.signal.addEventListener("abort", resolve)),
            ]);
          }
          if (i > 0 && s.delayMs) await wait(s.delayMs, abort.signal);
          if (abort.signal.aborted) return;
          if (i === 0) {
            controller.enqueue(enc.encode(chunkEvent({ role: "assistant", content: "" })));
          } else if (s.endless || i <= pieces.length) {
            controller.enqueue(
              enc.encode(chunkEvent({ content: pieces[(i - 1) % pieces.length] })),
            );
          } else {
            controller.enqueue(enc.encode(chunkEvent({}, "stop")));
            if (s.includeUsage) {
              controller.enqueue(enc.encode(`data: ${
                JSON.stringify({
                  id: "chatcmpl-fake",
                  object: "chat.completion.chunk",
                  created: 1_700_000_000,
                  model: "gpt-4o-mini",
                  choices: [],
                  usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 },
                })
              }\n\n`));
            }
            controller.enqueue(enc.encode("data: [DONE]\n\n"));
            controller.close();
          }
          i++;
        },
        cancel() {
          abort.abort();
          onCancel();
        },
      }, { highWaterMark: 0 }),
      { headers: { "content-type": "text/event-stream" } },
    );
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    cancelled,
    aborted,
    received(count) {
      if (requests.length >= count) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      arrivals.add({ count, resolve });
      return promise;
    },
    script(next) {
      current = next;
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      await server.shutdown();
    },
  };
}
