import assert from "node:assert/strict";
import { startGateway } from "../../helpers/in_process.ts";
import { completionBody, startFakeUpstream } from "../../fakes/fake_upstream.ts";
import { parseConfigText } from "../../../src/config/mod.ts";
import { preloadTelemetry } from "../../../src/telemetry/hub.ts";

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: Record<string, unknown> }[];
  status?: { code?: number };
  events?: { name: string }[];
}

/** An OTLP/HTTP receiver: decodes each JSON export request into its spans. */
function startReceiver() {
  const spans: OtlpSpan[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    assert.equal(new URL(req.url).pathname, "/v1/traces");
    assert.match(req.headers.get("content-type") ?? "", /application\/json/);
    const body = await req.json() as {
      resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[];
    };
    for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
    return Response.json({});
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, spans, close: () => server.shutdown() };
}

/** The gateway with tracing on, its exporter loaded first as the daemon loads it. */
async function tracedGateway(yaml: string): Promise<ReturnType<typeof startGateway>> {
  await preloadTelemetry(parseConfigText(yaml, () => undefined, "t.yaml").config);
  return startGateway(yaml);
}

/** One JSON chat request to `path`; its status, the body drained. */
async function chatOnce(
  gw: ReturnType<typeof startGateway>,
  path: string,
  model: string,
  headers: Record<string, string> = {},
): Promise<number> {
  const res = await gw.request(path, {
    method: "POST",
    headers,
    body: JSON.stringify({ model, messages: [{ role: "user", content: "x" }] }),
  });
  await res.body?.cancel();
  return res.status;
}

/** An OpenAI embeddings answer: input tokens only. */
const EMBEDDINGS_ANSWER = {
  object: "list",
  data: [{ object: "embedding", index: 0, embedding: [0.1, 0.2] }],
  model: "text-embedding-3-small",
  usage: { prompt_tokens: 5, total_tokens: 5 },
};

const attr = (s: OtlpSpan, key: string): unknown => {
  const v = s.attributes.find((a) => a.key === key)?.value;
  return v === undefined ? undefined : Object.values(v)[0];
};

Deno.test("traces: a streamed request that retried and failed over, exported over OTLP/HTTP", async () => {
  const receiver = startReceiver();
  const a = startFakeUpstream();
  const b = startFakeUpstream();
  const yaml = `
providers:
  a: { base_url: "${a.url}/v1", keys: [{ key: sk-trace-a }], models: [gpt-4o-mini] }
  b: { base_url: "${b.url}/v1", keys: [{ key: sk-trace-b }], models: [gpt-4o-mini] }
routing:
  models:
    gpt-4o-mini: { providers: [a, b] }
  failover:
    max_retries: 1
    backoff: { initial: 1ms, max: 2ms }
plugins:
  tracing: { endpoint: "${
    receiver.url.slice("http://".length)
  }", service_name: pf-test, insecure: true }
`;
  const gw = await tracedGateway(yaml);
  try {
    a.script({ kind: "json", status: 503, body: { error: { message: "down" } } });
    b.script({ kind: "stream", chunks: ["Hel", "lo"], includeUsage: true });
    const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: {
        traceparent: `00-${clientTrace}-00f067aa0ba902b7-01`,
        tracestate: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
      },
      body: JSON.stringify({
        model: "gpt-4o-mini",
        stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    assert.equal(res.status, 200);
    const overhead = Number(res.headers.get("x-pilotfish-overhead-ms"));
    assert.ok(Number.isFinite(overhead) && overhead >= 0);
    const text = await res.text();
    const streamEnded = Date.now();
    assert.match(text, /\[DONE\]/);
    await gw.runtime.observability.flushTraces();

    const server = receiver.spans.find((s) => s.kind === 2);
    assert.ok(server, "a server span");
    assert.equal(server.traceId, clientTrace, "the client's trace continued");
    assert.equal(server.parentSpanId, "00f067aa0ba902b7");
    assert.equal(server.name, "POST /v1/chat/completions");
    assert.equal(attr(server, "gen_ai.request.model"), "gpt-4o-mini");
    assert.equal(attr(server, "gen_ai.provider.name"), "b");
    assert.equal(attr(server, "gen_ai.usage.input_tokens"), 7);
    assert.equal(attr(server, "gen_ai.usage.output_tokens"), 3);

    const clients = receiver.spans.filter((s) => s.kind === 3)
      .sort((x, y) => Number(BigInt(x.startTimeUnixNano) - BigInt(y.startTimeUnixNano)));
    assert.deepEqual(clients.map((s) => attr(s, "gen_ai.provider.name")), ["a", "a", "b"]);
    for (const c of clients) {
      assert.equal(c.traceId, clientTrace);
      assert.equal(c.parentSpanId, server.spanId, "attempts are siblings under the server span");
      assert.equal(c.name, "chat gpt-4o-mini");
    }
    assert.equal(attr(clients[0]!, "http.response.status_code"), 503);
    assert.equal(clients[0]!.status?.code, 2, "a failed attempt is an error");
    assert.equal(attr(clients[2]!, "gen_ai.usage.output_tokens"), 3);

    // Each upstream got its own attempt's span as parent.
    const sent = [...a.requests, ...b.requests].map((r) => r.headers.get("traceparent"));
    assert.deepEqual(sent, clients.map((c) => `00-${clientTrace}-${c.spanId}-01`));
    // The continued trace's vendor state goes with it (W3C Trace Context).
    for (const r of [...a.requests, ...b.requests]) {
      assert.equal(r.headers.get("tracestate"), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    }

    // The winner's span and the server span end with the stream, not at its first chunk.
    const endMs = (s: OtlpSpan) => Number(BigInt(s.endTimeUnixNano) / 1_000_000n);
    assert.ok(endMs(clients[2]!) <= streamEnded + 5);
    assert.ok(endMs(server) >= endMs(clients[2]!));
    assert.ok(endMs(clients[2]!) > endMs(clients[1]!));
  } finally {
    await gw.close();
    await a.close();
    await b.close();
    await receiver.close();
  }
});

Deno.test("traces: a stream retried on the same provider has its first chunk on the attempt that streamed", async () => {
  const receiver = startReceiver();
  const a = startFakeUpstream();
  const yaml = `
providers:
  a: { base_url: "${a.url}/v1", keys: [{ key: sk-trace-r }], models: [gpt-4o-mini] }
routing:
  models:
    gpt-4o-mini: { providers: [a] }
  failover:
    retry_on: [503]
    max_retries: 1
    backoff: { initial: 1ms, max: 2ms }
telemetry:
  tracing: { enabled: true, endpoint: "${receiver.url}/v1/traces" }
`;
  const gw = await tracedGateway(yaml);
  try {
    a.script({ kind: "json", status: 503, body: { error: { message: "down" } } });
    const pending = gw.request("/v1/chat/completions", {
      method: "POST",
      body: JSON.stringify({
        model: "gpt-4o-mini",
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    await a.received(1);
    a.script({ kind: "stream", chunks: ["Hel", "lo"] });
    const res = await pending;
    assert.equal(res.status, 200);
    assert.match(await res.text(), /\[DONE\]/);
    await gw.runtime.observability.flushTraces();
    const clients = receiver.spans.filter((s) => s.kind === 3)
      .sort((x, y) => Number(BigInt(x.startTimeUnixNano) - BigInt(y.startTimeUnixNano)));
    assert.equal(clients.length, 2);
    const [failed, streamed] = clients as [OtlpSpan, OtlpSpan];
    assert.equal(attr(failed, "http.response.status_code"), 503);
    const names = (s: OtlpSpan) => (s.events ?? []).map((e) => e.name);
    assert.deepEqual(names(failed), [], "the failed attempt streamed nothing");
    assert.deepEqual(names(streamed), ["gen_ai.first_chunk"]);
  } finally {
    await gw.close();
    await a.close();
    await receiver.close();
  }
});

Deno.test("traces: a 4xx answer leaves the server span's status unset, a 5xx is an error; client spans fail on both", async () => {
  const receiver = startReceiver();
  const up = startFakeUpstream();
  const yaml = `
providers:
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-trace-s }], models: [gpt-4o-mini] }
routing:
  failover: { enabled: false }
telemetry:
  tracing: { enabled: true, endpoint: "${receiver.url}/v1/traces" }
`;
  const gw = await tracedGateway(yaml);
  try {
    for (const status of [429, 400, 500]) {
      receiver.spans.length = 0;
      up.script({ kind: "json", status, body: { error: { message: "no" } } });
      assert.equal(await chatOnce(gw, "/v1/chat/completions", "up/gpt-4o-mini"), status);
      await gw.runtime.observability.flushTraces();
      const server = receiver.spans.find((s) => s.kind === 2)!;
      const client = receiver.spans.find((s) => s.kind === 3)!;
      assert.equal(attr(server, "http.response.status_code"), status);
      assert.equal(attr(server, "error.type"), String(status), "error.type is still set");
      if (status >= 500) assert.equal(server.status?.code, 2, `${status}: the server failed`);
      else assert.notEqual(server.status?.code, 2, `${status}: the client's error, not ours`);
      assert.equal(client.status?.code, 2, `${status}: a failed upstream call`);
    }
    // A native route relays the upstream's error as its answer: the client span fails too.
    for (const status of [400, 401]) {
      receiver.spans.length = 0;
      up.script({ kind: "json", status, body: { error: { message: "no" } } });
      assert.equal(await chatOnce(gw, "/openai/v1/chat/completions", "gpt-4o-mini"), status);
      await gw.runtime.observability.flushTraces();
      const client = receiver.spans.find((s) => s.kind === 3)!;
      assert.equal(client.status?.code, 2, `passthrough ${status}: a failed upstream call`);
      assert.equal(attr(client, "error.type"), String(status));
    }
  } finally {
    await gw.close();
    await up.close();
    await receiver.close();
  }
});

Deno.test("traces and the access log: a hedge's streaming loser is `cancelled` with the 200 it got; a 503 attempt's error.type is 503", async () => {
  const receiver = startReceiver();
  const a = startFakeUpstream();
  const b = startFakeUpstream();
  const c = startFakeUpstream();
  const yaml = `
providers:
  a: { base_url: "${a.url}/v1", keys: [{ key: sk-loser-a }], models: [gpt-4o-mini] }
  b: { base_url: "${b.url}/v1", keys: [{ key: sk-loser-b }], models: [gpt-4o-mini] }
  c: { base_url: "${c.url}/v1", keys: [{ key: sk-loser-c }], models: [gpt-4o] }
routing:
  models:
    gpt-4o-mini: { providers: [a, b], hedge_after: 100ms }
  failover: { retry_on: [503], max_retries: 0 }
telemetry:
  tracing: { enabled: true, endpoint: "${receiver.url}/v1/traces" }
`;
  const gw = await tracedGateway(yaml);
  try {
    // The primary answers 200 and its role chunk, then no content: still streaming when b wins.
    a.script({ kind: "stream", delayMs: 5_000 });
    b.script({ kind: "stream", chunks: ["Hi"] });
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: JSON.stringify({
        model: "gpt-4o-mini",
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    assert.equal(res.status, 200);
    await res.text();
    const line = gw.logs.map((l) => JSON.parse(l)).find((l) => l.msg === "request");
    const loser = line.attempts.find((x: { provider: string }) => x.provider === "a");
    assert.equal(loser.outcome, "cancelled");
    assert.equal(loser.status, 200, "the status the loser got, not a made-up 502");

    c.script({ kind: "json", status: 503, body: { error: { message: "down" } } });
    assert.equal(await chatOnce(gw, "/v1/chat/completions", "c/gpt-4o"), 503);
    await gw.runtime.observability.flushTraces();
    const clients = receiver.spans.filter((s) => s.kind === 3);
    const lost = clients.find((s) => attr(s, "gen_ai.provider.name") === "a")!;
    assert.equal(attr(lost, "error.type"), "cancelled");
    assert.equal(attr(lost, "http.response.status_code"), 200);
    const failed = clients.find((s) => attr(s, "gen_ai.provider.name") === "c")!;
    assert.equal(attr(failed, "error.type"), "503", "as on the server span and the metrics");
    const server = receiver.spans.find((s) =>
      s.kind === 2 && attr(s, "gen_ai.provider.name") === "c"
    )!;
    assert.equal(attr(server, "error.type"), "503");
  } finally {
    await gw.close();
    await a.close();
    await b.close();
    await c.close();
    await receiver.close();
  }
});

Deno.test("traces: embeddings carry input tokens only (no gen_ai.usage.output_tokens)", async () => {
  const receiver = startReceiver();
  const up = startFakeUpstream();
  const yaml = `
providers:
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-embed-t }], models: [text-embedding-3-small] }
telemetry:
  tracing: { enabled: true, endpoint: "${receiver.url}/v1/traces" }
`;
  const gw = await tracedGateway(yaml);
  try {
    up.script({ kind: "json", body: EMBEDDINGS_ANSWER });
    const res = await gw.request("/v1/embeddings", {
      method: "POST",
      body: JSON.stringify({ model: "up/text-embedding-3-small", input: "hi" }),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    await gw.runtime.observability.flushTraces();
    assert.equal(receiver.spans.length, 2);
    for (const s of receiver.spans) {
      assert.equal(attr(s, "gen_ai.operation.name"), "embeddings");
      assert.equal(attr(s, "gen_ai.usage.input_tokens"), 5);
      assert.equal(attr(s, "gen_ai.usage.output_tokens"), undefined, s.name);
    }
  } finally {
    await gw.close();
    await up.close();
    await receiver.close();
  }
});

Deno.test("traces: a stream the upstream cuts fails its client span; the server span has the billed (estimated) tokens", async () => {
  const receiver = startReceiver();
  const up = startFakeUpstream();
  const yaml = `
providers:
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-cut-t }], models: [gpt-4o-mini] }
telemetry:
  tracing: { enabled: true, endpoint: "${receiver.url}/v1/traces" }
`;
  const gw = await tracedGateway(yaml);
  try {
    const chunk = (content: string) =>
      `data: ${
        JSON.stringify({
          id: "c1",
          object: "chat.completion.chunk",
          created: 1,
          model: "gpt-4o-mini",
          choices: [{ index: 0, delta: { content }, finish_reason: null }],
        })
      }\n\n`;
    up.script({ kind: "sse", events: [chunk("Hello there, "), chunk("how are")], thenBreak: true });
    const res = await fetch(gw.url("/v1/chat/completions"), {
      method: "POST",
      body: JSON.stringify({
        model: "up/gpt-4o-mini",
        stream: true,
        messages: [{ role: "user", content: "a prompt of some forty characters or so" }],
      }),
    });
    assert.equal(res.status, 200);
    await res.text().catch(() => "");
    await gw.runtime.observability.flushTraces();
    const server = receiver.spans.find((s) => s.kind === 2);
    const client = receiver.spans.find((s) => s.kind === 3);
    assert.ok(server && client, JSON.stringify(receiver.spans.map((s) => s.name)));
    assert.equal(attr(client, "error.type"), "upstream_cut");
    assert.equal(client.status?.code, 2);
    assert.equal(attr(server, "error.type"), "upstream_cut");
    // The upstream counted nothing: the log's estimate, not 0.
    assert.ok(Number(attr(server, "gen_ai.usage.input_tokens")) > 0, JSON.stringify(server));
    assert.ok(Number(attr(server, "gen_ai.usage.output_tokens")) > 0, JSON.stringify(server));
    assert.ok(BigInt(client.endTimeUnixNano) <= BigInt(server.endTimeUnixNano));
  } finally {
    await gw.close();
    await up.close();
    await receiver.close();
  }
});

Deno.test("traces: a stream that completes leaves its client span's status unset", async () => {
  const receiver = startReceiver();
  const up = startFakeUpstream();
  const yaml = `
providers:
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-ok-t }], models: [gpt-4o-mini] }
telemetry:
  tracing: { enabled: true, endpoint: "${receiver.url}/v1/traces" }
`;
  const gw = await tracedGateway(yaml);
  try {
    up.script({ kind: "stream", chunks: ["Hi", " there"], includeUsage: true });
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: JSON.stringify({
        model: "up/gpt-4o-mini",
        stream: true,
        messages: [{ role: "user", content: "x" }],
      }),
    });
    assert.equal(res.status, 200);
    await res.text();
    await gw.runtime.observability.flushTraces();
    const client = receiver.spans.find((s) => s.kind === 3);
    assert.ok(client);
    assert.equal(attr(client, "error.type"), undefined);
    assert.notEqual(client.status?.code, 2);
    assert.ok(Number(attr(client, "gen_ai.usage.output_tokens")) > 0);
  } finally {
    await gw.close();
    await up.close();
    await receiver.close();
  }
});

Deno.test("traces: gen_ai.response.model is the model the upstream says answered, on server and client spans", async () => {
  const receiver = startReceiver();
  const up = startFakeUpstream();
  const yaml = `
providers:
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-trace-m }], models: [gpt-4o-dated] }
telemetry:
  tracing: { enabled: true, endpoint: "${receiver.url}/v1/traces" }
`;
  const gw = await tracedGateway(yaml);
  const dated = "gpt-4o-dated-2024-08-06";
  try {
    up.script({ kind: "json", body: completionBody("hi", dated) });
    assert.equal(await chatOnce(gw, "/v1/chat/completions", "up/gpt-4o-dated"), 200);
    const event = (delta: Record<string, unknown>, finish: string | null = null) =>
      `data: ${
        JSON.stringify({
          id: "c",
          object: "chat.completion.chunk",
          created: 1,
          model: dated,
          choices: [{ index: 0, delta, finish_reason: finish }],
        })
      }\n\n`;
    up.script({
      kind: "sse",
      events: [
        event({ role: "assistant", content: "" }),
        event({ content: "Hi" }),
        event({}, "stop"),
        "data: [DONE]\n\n",
      ],
    });
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: JSON.stringify({
        model: "up/gpt-4o-dated",
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    assert.match(await res.text(), /\[DONE\]/);
    await gw.runtime.observability.flushTraces();
    assert.equal(receiver.spans.length, 4);
    for (const s of receiver.spans) {
      assert.equal(attr(s, "gen_ai.response.model"), dated, `${s.kind} ${s.name}`);
      if (s.kind === 3) assert.equal(attr(s, "gen_ai.request.model"), "gpt-4o-dated");
    }
  } finally {
    await gw.close();
    await up.close();
    await receiver.close();
  }
});

Deno.test("traces: an unreachable collector never fails or blocks a request", async () => {
  const up = startFakeUpstream();
  const yaml = `
providers:
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-trace-c }] }
telemetry:
  tracing: { enabled: true, endpoint: "http://127.0.0.1:9/v1/traces" }
`;
  const gw = await tracedGateway(yaml);
  try {
    up.script({ kind: "json" });
    assert.equal(await chatOnce(gw, "/v1/chat/completions", "up/gpt-4o-mini"), 200);
    await gw.runtime.observability.flushTraces();
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("traces: a hedged request's two attempts are sibling client spans, the loser cancelled", async () => {
  const receiver = startReceiver();
  const a = startFakeUpstream();
  const b = startFakeUpstream();
  const yaml = `
providers:
  a: { base_url: "${a.url}/v1", keys: [{ key: sk-hedge-a }], models: [gpt-4o-mini] }
  b: { base_url: "${b.url}/v1", keys: [{ key: sk-hedge-b }], models: [gpt-4o-mini] }
routing:
  models:
    gpt-4o-mini: { providers: [a, b], hedge_after: 50ms }
telemetry:
  tracing: { enabled: true, endpoint: "${receiver.url}/v1/traces" }
`;
  const gw = await tracedGateway(yaml);
  try {
    a.script({ kind: "json", delayMs: 2_000 });
    b.script({ kind: "json" });
    // A tracestate without a (valid) traceparent belongs to no trace we continue.
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { traceparent: "00-not-a-trace", tracestate: "congo=t61rcWkgMzE" },
      body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    await gw.runtime.observability.flushTraces();
    const server = receiver.spans.find((s) => s.kind === 2)!;
    const clients = receiver.spans.filter((s) => s.kind === 3);
    assert.deepEqual(clients.map((c) => attr(c, "gen_ai.provider.name")).sort(), ["a", "b"]);
    for (const c of clients) assert.equal(c.parentSpanId, server.spanId);
    const loser = clients.find((c) => attr(c, "gen_ai.provider.name") === "a")!;
    assert.equal(attr(loser, "pilotfish.attempt.outcome"), "cancelled");
    assert.notEqual(loser.status?.code, 2, "losing a hedge race is not an error");
    const winner = clients.find((c) => attr(c, "gen_ai.provider.name") === "b")!;
    assert.equal(attr(winner, "pilotfish.attempt.outcome"), "ok");
    assert.equal(
      a.requests[0]?.headers.get("traceparent"),
      `00-${loser.traceId}-${loser.spanId}-01`,
    );
    assert.equal(
      b.requests[0]?.headers.get("traceparent"),
      `00-${winner.traceId}-${winner.spanId}-01`,
    );
    assert.equal(a.requests[0]?.headers.get("tracestate"), null);
  } finally {
    await gw.close();
    await a.close();
    await b.close();
    await receiver.close();
  }
});

Deno.test("traces: passthrough sends its attempt's trace context; a tracestate goes only with the trace it came with", async () => {
  const receiver = startReceiver();
  const up = startFakeUpstream();
  const yaml = `
providers:
  openai: { base_url: "${up.url}/v1", keys: [{ key: sk-trace-p }] }
telemetry:
  tracing: { enabled: true, endpoint: "${receiver.url}/v1/traces" }
`;
  const gw = await tracedGateway(yaml);
  const clientTrace = "0af7651916cd43dd8448eb211c80319c";
  try {
    for (
      const [traceparent, expected] of [
        [`00-${clientTrace}-b7ad6b7169203331-01`, "rojo=00f067aa0ba902b7"],
        ["00-not-a-trace", null],
      ] as const
    ) {
      up.script({ kind: "json" });
      const res = await gw.request("/openai/v1/chat/completions", {
        method: "POST",
        headers: { traceparent, tracestate: "rojo=00f067aa0ba902b7" },
        body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "x" }] }),
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      const sent = up.requests.at(-1)!.headers;
      assert.notEqual(sent.get("traceparent"), traceparent, "the attempt's own span is the parent");
      assert.equal(sent.get("tracestate"), expected);
    }
    assert.match(up.requests[0]!.headers.get("traceparent")!, new RegExp(`^00-${clientTrace}-`));
    // A request the client signed goes as signed: its traceparent may be in the signature.
    const signed = {
      authorization:
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/bedrock/aws4_request, SignedHeaders=host;traceparent;x-amz-date, Signature=abc",
      traceparent: `00-${clientTrace}-b7ad6b7169203331-01`,
      tracestate: "rojo=1",
    };
    up.script({ kind: "json" });
    const res = await gw.request("/openai/v1/chat/completions", {
      method: "POST",
      headers: signed,
      body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "x" }] }),
    });
    await res.body?.cancel();
    const sent = up.requests.at(-1)!.headers;
    assert.equal(sent.get("traceparent"), signed.traceparent);
    assert.equal(sent.get("tracestate"), "rojo=1");
  } finally {
    await gw.close();
    await up.close();
    await receiver.close();
  }
});

Deno.test("traces: an attempt that got no response (connection refused) has no HTTP status", async () => {
  const receiver = startReceiver();
  const up = startFakeUpstream();
  // A port nobody listens on: taken, then let go.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const refused = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const yaml = `
providers:
  down: { base_url: "http://127.0.0.1:${refused}/v1", keys: [{ key: sk-trace-d }], models: [gpt-4o-mini] }
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-trace-u }], models: [gpt-4o-mini] }
routing:
  models:
    gpt-4o-mini: { providers: [down, up] }
telemetry:
  tracing: { enabled: true, endpoint: "${receiver.url}/v1/traces" }
`;
  const gw = await tracedGateway(yaml);
  try {
    up.script({ kind: "json" });
    assert.equal(await chatOnce(gw, "/v1/chat/completions", "gpt-4o-mini"), 200);
    await gw.runtime.observability.flushTraces();
    const clients = receiver.spans.filter((s) => s.kind === 3);
    const down = clients.find((c) => attr(c, "gen_ai.provider.name") === "down")!;
    assert.equal(attr(down, "http.response.status_code"), undefined);
    assert.equal(attr(down, "error.type"), "upstream_unreachable");
    const ok = clients.find((c) => attr(c, "gen_ai.provider.name") === "up")!;
    assert.equal(attr(ok, "http.response.status_code"), 200);

    // The same on a native route (one call, no failover): its span ends failed, not unset.
    receiver.spans.length = 0;
    assert.equal(await chatOnce(gw, "/native/down/chat/completions", "gpt-4o-mini"), 502);
    await gw.runtime.observability.flushTraces();
    // An in-process request has no framing headers, so its body was read (see passthrough's
    // `unframed`): the span names the model it asked for.
    const span = receiver.spans.find((s) => s.kind === 3 && s.name === "chat gpt-4o-mini")!;
    assert.equal(span.status?.code, 2);
    assert.equal(attr(span, "error.type"), "upstream_unreachable");
    assert.equal(attr(span, "http.response.status_code"), undefined);
  } finally {
    await gw.close();
    await up.close();
    await receiver.close();
  }
});

Deno.test("tracing off: the client's traceparent and tracestate reach the upstream as sent", async () => {
  const up = startFakeUpstream();
  // Metrics on (they watch attempts) and no tracer: nobody replaces the client's context.
  const gw = startGateway(`
providers:
  a: { base_url: "${up.url}/v1", keys: [{ key: sk-a-0001 }] }
metrics: { enabled: true }
`);
  const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  try {
    for (const path of ["/v1/chat/completions", "/v1/messages"]) {
      const res = await gw.request(path, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          traceparent,
          tracestate: "congo=t61rcWkgMzE",
        },
        body: JSON.stringify({
          model: "a/gpt-4o-mini",
          max_tokens: 8,
          messages: [{ role: "user", content: "hi" }],
        }),
      });
      assert.equal(res.status, 200, path);
      await res.body?.cancel();
      const sent = up.requests.at(-1)!.headers;
      assert.equal(sent.get("traceparent"), traceparent, path);
      assert.equal(sent.get("tracestate"), "congo=t61rcWkgMzE", path);
    }
    // Without one, none is made up.
    const plain = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "a/gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
    });
    await plain.body?.cancel();
    assert.equal(up.requests.at(-1)!.headers.get("traceparent"), null);
  } finally {
    await gw.close();
    await up.close();
  }
});
