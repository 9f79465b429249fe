import assert from "node:assert/strict";
import { startGateway } from "../../helpers/in_process.ts";
import { parseConfigText } from "../../../src/config/mod.ts";
import { preloadTelemetry } from "../../../src/telemetry/hub.ts";
import { type Exchange, upstreamMs } from "../../../src/pipeline/exchange.ts";
import { startFakeUpstream } from "../../fakes/fake_upstream.ts";

const enc = new TextEncoder();
const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
  enc.encode(`data: ${
    JSON.stringify({
      id: "chatcmpl-overhead",
      object: "chat.completion.chunk",
      created: 1_700_000_000,
      model: "gpt-4o-mini",
      choices: [{ index: 0, delta, finish_reason: finish }],
    })
  }\n\n`);

/** An upstream that thinks for `ms` before its response, then streams a chunk every `ms`. */
function slowStreamingUpstream(ms: number) {
  const wait = () => new Promise((r) => setTimeout(r, ms));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async () => {
    await wait();
    let step = 0;
    return new Response(
      new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (step === 0) controller.enqueue(chunk({ role: "assistant", content: "a" }));
          else if (step === 1) {
            await wait();
            controller.enqueue(chunk({ content: "b" }));
          } else {
            await wait();
            controller.enqueue(chunk({}, "stop"));
            controller.enqueue(enc.encode("data: [DONE]\n\n"));
            controller.close();
          }
          step++;
        },
      }, { highWaterMark: 0 }),
      { headers: { "content-type": "text/event-stream" } },
    );
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

Deno.test("x-pilotfish-overhead-ms on a stream: sent at commit, the upstream's wait excluded", async () => {
  const up = slowStreamingUpstream(250);
  const yaml = `
providers:
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-overhead-0001 }], models: [gpt-4o-mini] }
`;
  await preloadTelemetry(parseConfigText(yaml, () => undefined, "t.yaml").config);
  const gw = startGateway(yaml);
  let res: Response | undefined;
  try {
    const started = performance.now();
    res = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: JSON.stringify({
        model: "up/gpt-4o-mini",
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    const headersAt = performance.now() - started;
    assert.equal(res.status, 200);
    const header = res.headers.get("x-pilotfish-overhead-ms");
    assert.match(header ?? "", /^\d+\.\d{2}$/);
    const overhead = Number(header);
    assert.ok(headersAt >= 250, "the response starts once the upstream's does");
    assert.ok(overhead < 100, `overhead ${overhead} ms counts none of the 250 ms upstream wait`);
    await res.text();
    assert.ok(performance.now() - started >= 750, "the stream ran on after the header was sent");

    // The same figure feeds the histogram and the status page.
    const metrics = await (await gw.request("/metrics")).text();
    const sum = Number(
      /pilotfish_overhead_seconds_sum\{route="\/v1\/chat\/completions"\} (\S+)/.exec(metrics)?.[1],
    );
    assert.ok(Math.abs(sum * 1000 - overhead) < 0.01, `${sum * 1000} vs ${overhead}`);
    const status = await (await gw.request("/api/v1/status")).json();
    assert.equal(status.stats.overhead_ms.p50, Math.round(overhead * 100) / 100);
  } finally {
    await res?.body?.cancel().catch(() => {});
    await gw.close();
    await up.close();
  }
});

Deno.test("upstreamMs(): attempts' in-flight times as a union (hedges overlap), backoffs added", () => {
  const record = (started: number | undefined, duration: number, extra: object = {}) => ({
    provider: "p",
    model: "m",
    key_id: null,
    status: 200,
    duration_ms: duration,
    ...(started === undefined ? {} : { started_ms: started }),
    first_chunk_ms: null,
    usage: Promise.resolve(null),
    outcome: "ok" as const,
    ...extra,
  });
  const of = (...attempts: ReturnType<typeof record>[]) =>
    upstreamMs({ attempts } as unknown as Exchange);
  // A hedge: the primary from 1000 until it lost at 1260, the winner from 1200 to 1250.
  assert.equal(of(record(1000, 260, { outcome: "cancelled" }), record(1200, 50)), 260);
  // A retry: 30 ms, a 20 ms backoff, then 40 ms; gaps between them are the gateway's.
  assert.equal(of(record(0, 30, { outcome: "retry", backoff_ms: 20 }), record(55, 40)), 90);
  // Nothing overlaps the one without a start (a native call): its duration.
  assert.equal(of(record(undefined, 70)), 70);
  assert.equal(of(), 0);
});

Deno.test("x-pilotfish-overhead-ms on a hedged request: the wait before the hedge is upstream time", async () => {
  const a = startFakeUpstream();
  const b = startFakeUpstream();
  const yaml = `
providers:
  a: { base_url: "${a.url}/v1", keys: [{ key: sk-overhead-a }], models: [gpt-4o-mini] }
  b: { base_url: "${b.url}/v1", keys: [{ key: sk-overhead-b }], models: [gpt-4o-mini] }
routing:
  models:
    gpt-4o-mini: { providers: [a, b], hedge_after: 300ms }
`;
  const gw = startGateway(yaml);
  try {
    a.script({ kind: "json", delayMs: 5_000 });
    b.script({ kind: "json" });
    const started = performance.now();
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.equal(res.headers.get("x-pilotfish-provider"), "b");
    assert.ok(performance.now() - started >= 300, "the hedge started after hedge_after");
    const overhead = Number(res.headers.get("x-pilotfish-overhead-ms"));
    assert.ok(overhead < 150, `overhead ${overhead} ms counts none of the 300 ms hedge wait`);
  } finally {
    await gw.close();
    await a.close();
    await b.close();
  }
});
