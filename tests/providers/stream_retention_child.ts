/**
 * Run by `stream_retention_test.ts` with `--v8-flags=--expose-gc`: holds streams open through
 * the app and prints, as JSON, the heap each in-flight stream keeps after a full collection.
 * @module
 */
import { startGateway } from "../helpers/in_process.ts";

const PROMPT_BYTES = Number(Deno.args[0] ?? 100_000);
const STREAMS = Number(Deno.args[1] ?? 40);
const gc = (globalThis as unknown as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");

const encoder = new TextEncoder();
const chunk = encoder.encode('data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n');
const open: ReadableStreamDefaultController<Uint8Array>[] = [];
// The upstream: takes the request body as a real fetch does (and keeps nothing of it), then
// answers with a stream that stays open until the end.
const upstream: typeof fetch = (_input, init) => {
  if (typeof init?.body !== "string") throw new Error("expected a string body");
  return Promise.resolve(
    new Response(
      new ReadableStream<Uint8Array>({
        start(c) {
          open.push(c);
          c.enqueue(chunk);
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    ),
  );
};

const gateway = startGateway(
  `
providers:
  up:
    type: openai
    base_url: http://upstream.invalid/v1
    keys:
      - key: sk-upstream
`,
  {},
  { fetch: upstream },
);
const body = JSON.stringify({
  model: "up/gpt-4o-mini",
  stream: true,
  messages: [{ role: "user", content: "x".repeat(PROMPT_BYTES) }],
});

async function openStream(): Promise<ReadableStreamDefaultReader<Uint8Array>> {
  const res = await gateway.request("/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer sk-client" },
    body,
  });
  if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
  const reader = res.body!.getReader();
  await reader.read(); // committed: the first content went out
  return reader;
}

async function closeAll(readers: ReadableStreamDefaultReader<Uint8Array>[]): Promise<void> {
  for (const c of open.splice(0)) c.close();
  for (const r of readers) while (!(await r.read()).done);
}

function heapAfterGc(): number {
  gc!();
  gc!();
  return Deno.memoryUsage().heapUsed;
}

// Warm up: lazily built state (JIT, caches, pools) is not per-stream.
await closeAll(await Promise.all(Array.from({ length: 5 }, openStream)));
const before = heapAfterGc();
const readers: ReadableStreamDefaultReader<Uint8Array>[] = [];
for (let i = 0; i < STREAMS; i++) readers.push(await openStream());
const during = heapAfterGc();
Deno.stdout.writeSync(
  encoder.encode(
    JSON.stringify({ perStream: (during - before) / STREAMS, promptBytes: PROMPT_BYTES }),
  ),
);
await closeAll(readers);
await gateway.close();
// Deadline slots stay armed until they fire (see src/providers/deadline.ts): do not wait.
Deno.exit(0);
