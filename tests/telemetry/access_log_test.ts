/**
 * The access log written by the request-context middleware: a stream's real outcome,
 * request bodies (off by default; redacted and truncated when on), and the console format.
 */
import assert from "node:assert/strict";
import { type Script, startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway } from "../helpers/in_process.ts";
import { waitFor } from "../state/support.ts";

const providers = (url: string) => `
providers:
  up:
    base_url: ${url}/v1
    keys: [{ key: sk-up-configured-0001 }]
  claude:
    type: anthropic
    base_url: ${url}/v1
    keys: [{ key: sk-ant-configured-0002 }]
`;

const openaiChunk = (content: string) =>
  `data: ${
    JSON.stringify({
      id: "c1",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      choices: [{ index: 0, delta: { content }, finish_reason: null }],
    })
  }\n\n`;

const anthropicEvent = (type: string, data: Record<string, unknown>) =>
  `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

/** The request lines logged so far, parsed. */
function requestLines(logs: string[]): Record<string, unknown>[] {
  return logs.map((l) => JSON.parse(l)).filter((l) => l.msg === "request");
}

/**
 * Request line #`count`. Lines are written before the response ends (a stream's when its
 * last byte or error is handed to the server), so they are there once the client saw the end.
 */
function nextRequestLine(logs: string[], count: number): Record<string, unknown> {
  const lines = requestLines(logs);
  if (lines.length >= count) return lines[count - 1]!;
  throw new Error(`no request line #${count} in:\n${logs.join("")}`);
}

const streamBody = (model: string) =>
  JSON.stringify({ model, stream: true, messages: [{ role: "user", content: "hi" }] });

Deno.test("a stream whose upstream connection breaks is logged as upstream_cut", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(providers(upstream.url));
  try {
    for (const path of ["/v1/chat/completions", "/openai/v1/chat/completions"]) {
      upstream.script({
        kind: "sse",
        events: [openaiChunk("Hel"), openaiChunk("lo")],
        thenBreak: true,
      });
      const url = gw.url(
        path === "/openai/v1/chat/completions" ? "/native/up/chat/completions" : path,
      );
      const res = await fetch(url, { method: "POST", body: streamBody("up/gpt-4o-mini") });
      assert.equal(res.status, 200);
      await res.text().catch(() => "");
    }
    const unified = nextRequestLine(gw.logs, 1);
    assert.equal(unified.outcome, "upstream_cut", JSON.stringify(unified));
    assert.equal(unified.level, "error");
    const passthrough = nextRequestLine(gw.logs, 2);
    assert.equal(passthrough.outcome, "upstream_cut", JSON.stringify(passthrough));
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("a stream that carries the provider's in-stream error is logged as error, not complete", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(providers(upstream.url));
  try {
    upstream.script({
      kind: "sse",
      events: [
        anthropicEvent("message_start", { message: { id: "m1", model: "claude", usage: {} } }),
        anthropicEvent("content_block_start", {
          index: 0,
          content_block: { type: "text", text: "" },
        }),
        anthropicEvent("content_block_delta", {
          index: 0,
          delta: { type: "text_delta", text: "Hi" },
        }),
        anthropicEvent("error", { error: { type: "overloaded_error", message: "Overloaded" } }),
      ],
    });
    const res = await fetch(gw.url("/v1/chat/completions"), {
      method: "POST",
      body: streamBody("claude/claude-sonnet-4-5"),
    });
    const text = await res.text();
    assert.match(text, /"error"/, "the client gets an in-stream error event");
    const line = nextRequestLine(gw.logs, 1);
    assert.equal(line.outcome, "error", JSON.stringify(line));
    assert.match(JSON.stringify(line.error), /Overloaded|overloaded/);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("a client that leaves mid-stream is logged as client_abort; a full stream as complete", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(providers(upstream.url));
  try {
    upstream.script({ kind: "stream", chunks: ["a", "b"] });
    const done = await fetch(gw.url("/v1/chat/completions"), {
      method: "POST",
      body: streamBody("up/gpt-4o-mini"),
    });
    await done.text();
    assert.equal((nextRequestLine(gw.logs, 1)).outcome, "complete");

    upstream.script({ kind: "stream", endless: true, delayMs: 5 });
    const res = await fetch(gw.url("/v1/chat/completions"), {
      method: "POST",
      body: streamBody("up/gpt-4o-mini"),
    });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
    await upstream.cancelled;
    assert.equal((nextRequestLine(gw.logs, 2)).outcome, "client_abort");
  } finally {
    await gw.close();
    await upstream.close();
  }
});

/**
 * Read `res` until its text contains `terminal`, then cancel it: what the OpenAI SDKs do at
 * `[DONE]`, while the upstream's connection is still open.
 */
async function readUntilThenCancel(res: Response, terminal: string): Promise<string> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes(terminal)) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`the stream ended before ${terminal}:\n${text}`);
    text += value;
  }
  await reader.cancel();
  return text;
}

Deno.test("a client that cancels after the terminal event got the whole answer: complete, no error; before it, client_abort", async (t) => {
  const upstream = startFakeUpstream();
  const gw = startGateway(`${providers(upstream.url)}  resp:
    base_url: ${upstream.url}/v1
    keys: [{ key: sk-resp-configured-0003 }]
    responses: native
`);
  const openaiEnd = [
    openaiChunk("Hi"),
    openaiChunk("!"),
    `data: ${
      JSON.stringify({
        id: "c1",
        object: "chat.completion.chunk",
        created: 1,
        model: "m",
        choices: [],
        usage: { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 },
      })
    }\n\n`,
    "data: [DONE]\n\n",
  ];
  const anthropicEnd = [
    anthropicEvent("message_start", {
      message: { id: "m1", model: "claude", usage: { input_tokens: 4, output_tokens: 1 } },
    }),
    anthropicEvent("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
    anthropicEvent("content_block_delta", { index: 0, delta: { type: "text_delta", text: "Hi" } }),
    anthropicEvent("content_block_stop", { index: 0 }),
    anthropicEvent("message_delta", {
      delta: { stop_reason: "end_turn" },
      usage: { output_tokens: 2 },
    }),
    anthropicEvent("message_stop", {}),
  ];
  const response = { id: "resp_1", object: "response", model: "m", output: [] };
  const responsesEnd = [
    `event: response.created\ndata: ${
      JSON.stringify({ type: "response.created", response: { ...response, status: "in_progress" } })
    }\n\n`,
    `event: response.output_text.delta\ndata: ${
      JSON.stringify({ type: "response.output_text.delta", output_index: 0, delta: "Hi" })
    }\n\n`,
    `event: response.completed\ndata: ${
      JSON.stringify({
        type: "response.completed",
        response: {
          ...response,
          status: "completed",
          usage: { input_tokens: 4, output_tokens: 2, total_tokens: 6 },
        },
      })
    }\n\n`,
  ];
  const cases: { name: string; path: string; body: string; events: string[]; end: string }[] = [
    {
      name: "unified chat",
      path: "/v1/chat/completions",
      body: streamBody("up/gpt-4o-mini"),
      events: openaiEnd,
      end: "[DONE]",
    },
    {
      name: "native passthrough",
      path: "/native/up/chat/completions",
      body: streamBody("gpt-4o-mini"),
      events: openaiEnd,
      end: "[DONE]",
    },
    {
      name: "messages",
      path: "/v1/messages",
      body: JSON.stringify({
        model: "claude/claude-sonnet-4-5",
        max_tokens: 10,
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }),
      events: anthropicEnd,
      end: "message_stop",
    },
    {
      name: "responses",
      path: "/v1/responses",
      body: JSON.stringify({ model: "resp/gpt-4o-mini", stream: true, input: "hi" }),
      events: responsesEnd,
      end: "response.completed",
    },
  ];
  try {
    let n = 0;
    for (const c of cases) {
      await t.step(c.name, async () => {
        // The upstream sends its last event, then keeps its connection open.
        upstream.script({ kind: "sse", events: c.events, thenHang: true });
        const res = await fetch(gw.url(c.path), {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: c.body,
        });
        assert.equal(res.status, 200);
        await readUntilThenCancel(res, c.end);
        n++;
        await waitFor("the log line", () => requestLines(gw.logs).length >= n);
        const line = nextRequestLine(gw.logs, n);
        assert.equal(line.outcome, "complete", JSON.stringify(line));
        assert.equal(line.level, "info");
        assert.equal(line.error, undefined);
        assert.equal(line.completion_tokens, 2, "billed as the upstream counted it");

        // The same stream left before its terminal event: cut short.
        upstream.script({ kind: "sse", events: c.events.slice(0, -1), thenHang: true });
        const cut = await fetch(gw.url(c.path), {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: c.body,
        });
        await readUntilThenCancel(cut, "Hi");
        n++;
        await waitFor("the log line", () => requestLines(gw.logs).length >= n);
        assert.equal(nextRequestLine(gw.logs, n).outcome, "client_abort");
      });
    }
    const status = await (await gw.request("/api/v1/status")).json() as {
      stats: { requests: number; errors: Record<string, number> };
    };
    assert.deepEqual(status.stats.errors, { stream_client_abort: cases.length });
    // The request-duration histogram's counts: one client_abort per route, the rest errorless.
    const metrics = await (await gw.request("/metrics")).text();
    const counts = metrics.split("\n").filter((l) =>
      l.startsWith("gen_ai_client_operation_duration_count")
    );
    const total = (lines: string[]) => lines.reduce((n, l) => n + Number(l.split(" ").at(-1)), 0);
    assert.equal(
      total(counts.filter((l) => l.includes('error_type="client_abort"'))),
      cases.length,
    );
    assert.equal(total(counts.filter((l) => !l.includes("error_type"))), cases.length);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("a client that leaves a stream before its first byte is logged as client_abort with 499 at info, on every route", async (t) => {
  const upstream = startFakeUpstream();
  const gw = startGateway(providers(upstream.url));
  try {
    const bodies: [string, string][] = [
      ["/v1/chat/completions", streamBody("up/gpt-4o-mini")],
      [
        "/v1/messages",
        JSON.stringify({
          model: "up/gpt-4o-mini",
          max_tokens: 10,
          stream: true,
          messages: [{ role: "user", content: "hi" }],
        }),
      ],
      ["/v1/responses", JSON.stringify({ model: "up/gpt-4o-mini", stream: true, input: "hi" })],
    ];
    // The upstream says nothing; or it answered 200 and holds its first event (the gate waits).
    const upstreams: [string, Script][] = [
      ["no answer", { kind: "hang" }],
      ["no first event", { kind: "sse", events: [], thenHang: true }],
    ];
    let n = 0;
    for (const [path, body] of bodies) {
      for (const [what, script] of upstreams) {
        await t.step(`${path}, ${what}`, async () => {
          upstream.script(script);
          const before = upstream.requests.length;
          const ac = new AbortController();
          // Over TCP: the client's connection closes, as a real client's does.
          const pending = fetch(gw.url(path), {
            method: "POST",
            headers: { "content-type": "application/json" },
            body,
            signal: ac.signal,
          }).then((r) => r.body?.cancel(), () => {});
          await waitFor("the upstream call", () => upstream.requests.length > before);
          ac.abort();
          await pending;
          n++;
          await waitFor("the log line", () => requestLines(gw.logs).length >= n);
          const line = nextRequestLine(gw.logs, n);
          assert.equal(line.outcome, "client_abort");
          // Not the gate's 502 nobody received, at error level.
          assert.equal(line.status, 499);
          assert.equal(line.level, "info");
        });
      }
    }
    const metrics = await (await gw.request("/metrics")).text();
    assert.doesNotMatch(metrics, /"50\d"/);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("the provider's request id is logged as upstream_request_id; the client's x-request-id is the log's request_id or the provider's", async (t) => {
  const upstream = startFakeUpstream();
  const breakerOff = startGateway(providers(upstream.url));
  const breakerOn = startGateway(
    `${providers(upstream.url)}features:\n  circuit_breaker: { enabled: true }\n`,
  );
  const body = JSON.stringify({
    model: "up/gpt-4o-mini",
    messages: [{ role: "user", content: "hi" }],
  });
  try {
    for (const [name, gw] of [["breaker off", breakerOff], ["breaker on", breakerOn]] as const) {
      await t.step(name, async () => {
        let n = requestLines(gw.logs).length;
        const call = async (path: string, sent?: string) => {
          upstream.script({ kind: "json", headers: { "x-request-id": "req_provider123" } });
          const res = await gw.request(path, {
            method: "POST",
            headers: sent === undefined ? {} : { "x-request-id": sent },
            body,
          });
          await res.body?.cancel();
          n++;
          return { header: res.headers.get("x-request-id"), line: nextRequestLine(gw.logs, n) };
        };

        // Unified: ours, the one the log line has; the provider's beside it.
        const unified = await call("/v1/chat/completions");
        assert.equal(unified.header, unified.line.request_id);
        assert.notEqual(unified.header, "req_provider123");
        assert.equal(unified.line.upstream_request_id, "req_provider123");

        // Native passthrough: the client gets the provider's id (its SDK reports it), and a
        // search of the log for it finds the line.
        const native = await call("/native/up/chat/completions");
        assert.equal(native.header, "req_provider123");
        assert.equal(native.line.upstream_request_id, "req_provider123");
        assert.notEqual(native.line.request_id, "req_provider123");

        // The client's own id is echoed and logged, on both.
        for (const path of ["/v1/chat/completions", "/native/up/chat/completions"]) {
          const sent = await call(path, "client-id-1");
          assert.equal(sent.header, "client-id-1");
          assert.equal(sent.line.request_id, "client-id-1");
          assert.equal(sent.line.upstream_request_id, "req_provider123");
        }

        // Anthropic's id comes in `request-id`.
        upstream.script({
          kind: "json",
          headers: { "request-id": "req_anthropic456" },
          body: {
            id: "msg_1",
            type: "message",
            role: "assistant",
            model: "claude-sonnet-4-5",
            content: [{ type: "text", text: "Hi" }],
            stop_reason: "end_turn",
            usage: { input_tokens: 3, output_tokens: 1 },
          },
        });
        const messages = await gw.request("/v1/messages", {
          method: "POST",
          body: JSON.stringify({
            model: "claude/claude-sonnet-4-5",
            max_tokens: 10,
            messages: [{ role: "user", content: "hi" }],
          }),
        });
        await messages.body?.cancel();
        n++;
        const line = nextRequestLine(gw.logs, n);
        assert.equal(messages.headers.get("x-request-id"), line.request_id);
        assert.equal(line.upstream_request_id, "req_anthropic456");

        // A provider that sent none: no field.
        upstream.script({ kind: "json" });
        await (await gw.request("/v1/chat/completions", { method: "POST", body })).body?.cancel();
        n++;
        assert.equal("upstream_request_id" in nextRequestLine(gw.logs, n), false);
      });
    }
  } finally {
    await breakerOff.close();
    await breakerOn.close();
    await upstream.close();
  }
});

Deno.test("request bodies are not logged by default", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(providers(upstream.url));
  try {
    const res = await fetch(gw.url("/v1/chat/completions"), {
      method: "POST",
      body: JSON.stringify({
        model: "up/gpt-4o-mini",
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    await res.body?.cancel();
    const line = nextRequestLine(gw.logs, 1);
    assert.equal("request_body" in line, false);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("x-gateway.metadata is on the line as request_metadata: scalars, bounded; none without it", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(providers(upstream.url));
  try {
    const ask = async (gateway?: Record<string, unknown>) => {
      const res = await gw.request("/v1/chat/completions", {
        method: "POST",
        body: JSON.stringify({
          model: "up/gpt-4o-mini",
          messages: [{ role: "user", content: "hi" }],
          ...(gateway ? { "x-gateway": gateway } : {}),
        }),
      });
      await res.body?.cancel();
    };
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i]));
    await ask({ metadata: { feature: "chat", team: "zebra", n: 3, ok: true, nested: { a: 1 } } });
    await ask({ metadata: { long: "x".repeat(1000), ["k".repeat(200_000)]: "huge key", ...many } });
    await ask();
    assert.deepEqual(nextRequestLine(gw.logs, 1).request_metadata, {
      feature: "chat",
      team: "zebra",
      n: 3,
      ok: true,
    });
    const bounded = nextRequestLine(gw.logs, 2).request_metadata as Record<string, unknown>;
    assert.equal(Object.keys(bounded).length, 32);
    assert.equal((bounded.long as string).length, 256);
    assert.ok(Object.keys(bounded).every((k) => k.length <= 64));
    assert.equal("request_metadata" in nextRequestLine(gw.logs, 3), false);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("logging.request_body logs the body with secrets redacted, truncated at the limit", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(
    `${providers(upstream.url)}logging:\n  request_body: true\n  request_body_max_bytes: 200\n`,
  );
  try {
    const small = JSON.stringify({
      model: "up/gpt-4o-mini",
      messages: [{ role: "user", content: "my key is sk-proj-abcdefghijkl" }],
      api_key: "plain-secret-value",
    });
    let res = await fetch(gw.url("/v1/chat/completions"), { method: "POST", body: small });
    await res.body?.cancel();
    const first = nextRequestLine(gw.logs, 1);
    assert.equal(typeof first.request_body, "string");
    assert.match(first.request_body as string, /"model":"up\/gpt-4o-mini"/);
    assert.equal("request_body_truncated" in first, false);
    const raw = gw.logs.join("");
    assert.ok(!raw.includes("plain-secret-value"), raw);
    assert.ok(!raw.includes("sk-proj-abcdefghijkl"), raw);

    const big = JSON.stringify({
      model: "up/gpt-4o-mini",
      password: "hunter2-secret",
      messages: [{ role: "user", content: "x".repeat(5_000) }],
    });
    res = await fetch(gw.url("/v1/chat/completions"), { method: "POST", body: big });
    assert.equal(res.status, 200, "logging the body does not take it from the route");
    await res.body?.cancel();
    const second = nextRequestLine(gw.logs, 2);
    assert.equal(second.request_body_truncated, true);
    assert.ok(new TextEncoder().encode(second.request_body as string).byteLength <= 220);
    assert.ok(!gw.logs.join("").includes("hunter2-secret"));
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("logging.format: console writes one readable line per request", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(`${providers(upstream.url)}logging:\n  format: console\n`);
  try {
    const res = await fetch(gw.url("/v1/chat/completions"), {
      method: "POST",
      body: JSON.stringify({
        model: "up/gpt-4o-mini",
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    await res.body?.cancel();
    const line = gw.logs.find((l) => l.includes(" POST ")) ?? "";
    assert.match(
      line,
      /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}POST \/v1\/chat\/completions 200 up\/gpt-4o-mini [\d.]+ms .*request_id=\S+/,
    );
    assert.equal(line.indexOf("\n"), line.length - 1, "exactly one line");
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("a whole answer logs its bytes: JSON, errors, count_tokens, health, admin", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(`${providers(upstream.url)}server: { admin_token: admin-0001 }\n`);
  try {
    const calls: [string, RequestInit][] = [
      ["/v1/chat/completions", {
        method: "POST",
        body: JSON.stringify({
          model: "up/gpt-4o-mini",
          messages: [{ role: "user", content: "é" }],
        }),
      }],
      ["/v1/chat/completions", { method: "POST", body: "{not json" }],
      ["/v1/messages/count_tokens", {
        method: "POST",
        body: JSON.stringify({
          model: "up/gpt-4o-mini",
          messages: [{ role: "user", content: "hi" }],
        }),
      }],
      ["/healthz", {}],
      ["/api/v1/usage", { headers: { authorization: "Bearer admin-0001" } }],
    ];
    for (const [i, [path, init]] of calls.entries()) {
      const res = await fetch(gw.url(path), {
        ...init,
        headers: { "content-type": "application/json", ...init.headers },
      });
      const body = new Uint8Array(await res.arrayBuffer());
      const line = nextRequestLine(gw.logs, i + 1);
      assert.equal(line.path, path);
      assert.ok(body.byteLength > 0);
      assert.equal(line.bytes, body.byteLength, `${path}: ${JSON.stringify(line)}`);
      assert.equal(res.headers.get("content-length"), String(body.byteLength));
    }
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("a relayed OpenAI stream that ends early or carries the upstream's error event is not a complete answer", async (t) => {
  const upstream = startFakeUpstream();
  const gw = startGateway(providers(upstream.url));
  const read = async () => {
    const res = await fetch(gw.url("/v1/chat/completions"), {
      method: "POST",
      body: streamBody("up/gpt-4o-mini"),
    });
    assert.equal(res.status, 200);
    return await res.text();
  };
  try {
    await t.step("no [DONE] and no finish reason: an error event is added", async () => {
      upstream.script({ kind: "sse", events: [openaiChunk("Hel"), openaiChunk("lo")] });
      const text = await read();
      assert.ok(text.startsWith(openaiChunk("Hel") + openaiChunk("lo")), text);
      assert.match(
        text,
        /data: \{"error":\{"message":"Stream from provider \\"up\\" ended before it was complete"/,
      );
      const line = nextRequestLine(gw.logs, 1);
      assert.equal(line.outcome, "error");
      assert.equal(line.level, "error");
    });
    await t.step(
      "the upstream's error event: relayed as it came, nothing added, logged as error",
      async () => {
        const error = `data: ${
          JSON.stringify({ error: { message: "The server is overloaded", type: "server_error" } })
        }\n\n`;
        upstream.script({ kind: "sse", events: [openaiChunk("Hel"), error] });
        assert.equal(await read(), openaiChunk("Hel") + error);
        const line = nextRequestLine(gw.logs, 2);
        assert.equal(line.outcome, "error");
        assert.equal(line.level, "error");
        assert.match(JSON.stringify(line.error), /sent an error event/);
      },
    );
    await t.step("cut mid-event: the error event starts on a line of its own", async () => {
      upstream.script({ kind: "sse", events: [openaiChunk("Hel"), 'data: {"id":"c1","obj'] });
      const text = await read();
      assert.match(text, /data: \{"id":"c1","obj\n\ndata: \{"error":/);
      nextRequestLine(gw.logs, 3);
    });
    await t.step("a finish reason without [DONE] is complete", async () => {
      const finish = `data: ${
        JSON.stringify({
          id: "c1",
          object: "chat.completion.chunk",
          created: 1,
          model: "m",
          choices: [{ index: 0, delta: {}, finish_reason: "stop" }],
        })
      }\n\n`;
      upstream.script({ kind: "sse", events: [openaiChunk("Hi"), finish] });
      assert.equal(await read(), openaiChunk("Hi") + finish);
      assert.equal(nextRequestLine(gw.logs, 4).outcome, "complete");
    });
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("an Anthropic stream relayed to /v1/messages that carries the upstream's error: as it came, logged as error", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(providers(upstream.url));
  try {
    const events = [
      anthropicEvent("message_start", { message: { id: "m1", model: "claude", usage: {} } }),
      anthropicEvent("content_block_start", {
        index: 0,
        content_block: { type: "text", text: "" },
      }),
      anthropicEvent("content_block_delta", {
        index: 0,
        delta: { type: "text_delta", text: "Hi" },
      }),
      anthropicEvent("error", { error: { type: "overloaded_error", message: "Overloaded" } }),
    ];
    upstream.script({ kind: "sse", events });
    const res = await fetch(gw.url("/v1/messages"), {
      method: "POST",
      headers: { "anthropic-version": "2023-06-01" },
      body: JSON.stringify({
        model: "claude/claude-sonnet-4-5",
        max_tokens: 16,
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    assert.equal(await res.text(), events.join(""), "the upstream's events, nothing added");
    const line = nextRequestLine(gw.logs, 1);
    assert.equal(line.outcome, "error", JSON.stringify(line));
    assert.equal(line.level, "error");
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("a Gemini stream on native /gemini that carries the upstream's error: logged as error, counted by the breaker", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(`
providers:
  gem:
    type: gemini
    base_url: ${upstream.url}
    keys: [{ key: AIza-gem-configured-0003 }]
features:
  circuit_breaker: { enabled: true, failure_threshold: 2, max_transient_retries: 0 }
`);
  try {
    const events = [
      `data: ${JSON.stringify({ candidates: [{ content: { parts: [{ text: "Hi" }] } }] })}\r\n\r\n`,
      `data: ${
        JSON.stringify({ error: { code: 503, message: "overloaded", status: "UNAVAILABLE" } })
      }\r\n\r\n`,
    ];
    const path = "/gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse";
    const send = () =>
      fetch(gw.url(path), {
        method: "POST",
        body: JSON.stringify({ contents: [{ role: "user", parts: [{ text: "hi" }] }] }),
      });
    for (let i = 1; i <= 2; i++) {
      upstream.script({ kind: "sse", events });
      const res = await send();
      assert.equal(await res.text(), events.join(""), "the upstream's events, nothing added");
      const line = nextRequestLine(gw.logs, i);
      assert.equal(line.outcome, "error", JSON.stringify(line));
    }
    const third = await send();
    assert.equal(third.status, 503);
    await third.body?.cancel();
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("an Anthropic stream on native /anthropic that carries the upstream's error: as it came, logged as error, counted by the breaker", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(`${providers(upstream.url)}
features:
  circuit_breaker: { enabled: true, failure_threshold: 2, max_transient_retries: 0 }
`);
  try {
    const events = [
      anthropicEvent("message_start", { message: { id: "m1", model: "claude", usage: {} } }),
      anthropicEvent("content_block_start", {
        index: 0,
        content_block: { type: "text", text: "" },
      }),
      anthropicEvent("content_block_delta", {
        index: 0,
        delta: { type: "text_delta", text: "Hi" },
      }),
      anthropicEvent("error", { error: { type: "overloaded_error", message: "Overloaded" } }),
    ];
    const send = () =>
      fetch(gw.url("/anthropic/v1/messages"), {
        method: "POST",
        headers: { "anthropic-version": "2023-06-01" },
        body: JSON.stringify({
          model: "claude-sonnet-4-5",
          max_tokens: 16,
          stream: true,
          messages: [{ role: "user", content: "hi" }],
        }),
      });
    for (let i = 1; i <= 2; i++) {
      upstream.script({ kind: "sse", events });
      const res = await send();
      assert.equal(await res.text(), events.join(""), "the upstream's events, nothing added");
      const line = nextRequestLine(gw.logs, i);
      assert.equal(line.outcome, "error", JSON.stringify(line));
      assert.equal(line.level, "error");
    }
    // overloaded_error is the provider's: two of them open its breaker, the third fast-fails.
    const third = await send();
    assert.equal(third.status, 503);
    assert.equal(third.headers.get("x-llm-proxy-error-class"), "provider_degraded");
    await third.body?.cancel();
    assert.equal(upstream.requests.length, 2);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("Butter's plugins.requestlog.level: request lines at that level, a 5xx at error still", async () => {
  const up = startFakeUpstream();
  const config = (level: string) =>
    `${
      providers(up.url)
    }  down: { base_url: "http://127.0.0.1:1/v1" }\nlogging: { level: debug }\nplugins: { requestlog: { level: ${level} } }\n`;
  const ask = (gw: ReturnType<typeof startGateway>, model: string) =>
    gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
    });
  try {
    for (const level of ["warn", "DEBUG"]) {
      const gw = startGateway(config(level));
      try {
        await (await ask(gw, "up/gpt-4o")).body?.cancel();
        const bad = await ask(gw, "down/gpt-4o");
        await bad.body?.cancel();
        assert.equal(bad.status, 502);
        assert.deepEqual(requestLines(gw.logs).map((l) => `${l.status} ${l.level}`), [
          `200 ${level.toLowerCase()}`,
          "502 error",
        ]);
      } finally {
        await gw.close();
      }
    }
    // A level Butter does not know is its info (with a config warning), not a refusal.
    const lenient = startGateway(config("verbose"));
    try {
      await (await ask(lenient, "up/gpt-4o")).body?.cancel();
      assert.deepEqual(requestLines(lenient.logs).map((l) => `${l.status} ${l.level}`), [
        "200 info",
      ]);
    } finally {
      await lenient.close();
    }
  } finally {
    await up.close();
  }
});
