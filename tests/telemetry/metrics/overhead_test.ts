import assert from "node:assert/strict";
import { startGateway } from "../../helpers/in_process.ts";
import { parseConfigText } from "../../../src/config/mod.ts";
import { preloadTelemetry } from "../../../src/telemetry/hub.ts";

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
