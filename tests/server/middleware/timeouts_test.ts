/**
 * `server.read_timeout` and `server.write_timeout` end to end, in process: slow clients are
 * raw TCP connections that send the body in two parts, slow providers are local servers.
 */
import assert from "node:assert/strict";
import { GatewayError } from "../../../src/errors.ts";
import { endAt, explainTimeout, guardUpload } from "../../../src/server/middleware/timeouts.ts";
import { startFakeUpstream } from "../../fakes/fake_upstream.ts";
import { startGateway } from "../../helpers/in_process.ts";
import { manualSchedule } from "../../helpers/manual_schedule.ts";
import { DEFAULT_BODY_MS } from "../../../src/routes/body.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const CHAT = JSON.stringify({
  model: "up/gpt-4o-mini",
  messages: [{ role: "user", content: "hi" }],
});
const MESSAGES = JSON.stringify({
  model: "up/gpt-4o-mini",
  max_tokens: 16,
  messages: [{ role: "user", content: "hi" }],
});

interface RawResponse {
  status: number;
  headers: Headers;
  body: string;
}

/**
 * A request written by hand: headers and the first part of the body now, the rest (if ever)
 * by `finish`. `framing` is a declared Content-Length or chunked transfer.
 */
async function openRequest(
  port: number,
  path: string,
  framing: "length" | "chunked",
  body: string,
  firstBytes: number,
  headers: Record<string, string> = {},
) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const head = [
    `POST ${path} HTTP/1.1`,
    "host: 127.0.0.1",
    "content-type: application/json",
    framing === "length"
      ? `content-length: ${enc.encode(body).byteLength}`
      : "transfer-encoding: chunked",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ].join("\r\n");
  const part = (text: string) =>
    framing === "length" ? text : `${enc.encode(text).byteLength.toString(16)}\r\n${text}\r\n`;
  await conn.write(enc.encode(`${head}\r\n\r\n${part(body.slice(0, firstBytes))}`));
  return {
    async finish() {
      const rest = body.slice(firstBytes);
      await conn.write(enc.encode(part(rest) + (framing === "chunked" ? "0\r\n\r\n" : "")));
    },
    response: () => readResponse(conn),
    close: () => conn.close(),
  };
}

/** One HTTP/1.1 response off the connection (Content-Length or chunked body). */
async function readResponse(conn: Deno.Conn): Promise<RawResponse> {
  let text = "";
  const buf = new Uint8Array(16 * 1024);
  const more = async () => {
    const n = await conn.read(buf);
    if (n === null) throw new Error(`connection closed after: ${text}`);
    text += dec.decode(buf.subarray(0, n));
  };
  while (!text.includes("\r\n\r\n")) await more();
  const [head, ...restParts] = text.split("\r\n\r\n");
  const [statusLine, ...lines] = head!.split("\r\n");
  const headers = new Headers(lines.map((l) => {
    const i = l.indexOf(":");
    return [l.slice(0, i).trim(), l.slice(i + 1).trim()] as [string, string];
  }));
  const bodyStart = head!.length + 4;
  const length = headers.get("content-length");
  if (length !== null) {
    while (enc.encode(text).byteLength - bodyStart < Number(length)) await more();
    return { status: Number(statusLine!.split(" ")[1]), headers, body: text.slice(bodyStart) };
  }
  while (!text.endsWith("0\r\n\r\n")) await more();
  let body = "";
  let rest = restParts.join("\r\n\r\n");
  for (;;) {
    const i = rest.indexOf("\r\n");
    const size = parseInt(rest.slice(0, i), 16);
    if (size === 0) break;
    body += rest.slice(i + 2, i + 2 + size);
    rest = rest.slice(i + 2 + size + 2);
  }
  return { status: Number(statusLine!.split(" ")[1]), headers, body };
}

/**
 * An upstream that reads each request body as it arrives: `firstChunk` resolves when the
 * first bytes came, `bodyEnd` with how the body ended (`aborted`: the gateway gave up on it).
 */
function startSink() {
  const firstChunk = Promise.withResolvers<string>();
  const bodyEnd = Promise.withResolvers<"complete" | "aborted">();
  let requests = 0;
  let framing = "";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    requests++;
    framing = req.headers.get("content-length") ?? req.headers.get("transfer-encoding") ?? "";
    let seen = "";
    try {
      const reader = req.body!.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (seen === "") firstChunk.resolve(dec.decode(value));
        seen += dec.decode(value);
      }
    } catch {
      bodyEnd.resolve("aborted");
      return new Response(null, { status: 499 });
    }
    bodyEnd.resolve("complete");
    return Response.json({ ok: true, length: seen.length });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests: () => requests,
    /** The last request's Content-Length, or its Transfer-Encoding. */
    framing: () => framing,
    firstChunk: firstChunk.promise,
    bodyEnd: bodyEnd.promise,
    close: () => server.shutdown(),
  };
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** The request lines logged so far, parsed. */
function requestLines(logs: string[]): Record<string, unknown>[] {
  return logs.map((l) => JSON.parse(l)).filter((l) => l.msg === "request");
}

/** A real wait, for a client that is slow on purpose; the timer never outlives the test. */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const config = (url: string, server: string, extra = "") => `
server:
${server}
providers:
  up: { base_url: "${url}", keys: [{ key: sk-up }] }
  gem: { type: gemini, base_url: "${url}/v1beta", keys: [{ key: AIza-gem-key-0000000000 }] }
  bedrock: { region: us-west-2, endpoint: "${url}" }
routing:
  failover: { enabled: false }
${extra}`;

Deno.test("read_timeout: a body that does not arrive in time is a 408 in the route's format", async (t) => {
  const upstream = startFakeUpstream();
  const gw = startGateway(
    config(
      upstream.url,
      "  read_timeout: 150ms\n  admin_token: admin-token-0001",
      "app_keys: { enabled: true }",
    ),
  );
  const port = portOf(gw.url("/"));
  try {
    for (const framing of ["length", "chunked"] as const) {
      await t.step(`/v1/chat/completions (${framing}): OpenAI JSON, no upstream call`, async () => {
        const req = await openRequest(port, "/v1/chat/completions", framing, CHAT, 10);
        try {
          const res = await req.response();
          assert.equal(res.status, 408);
          assert.equal(res.headers.get("connection"), "close");
          const body = JSON.parse(res.body);
          assert.equal(body.error.code, "request_timeout");
          assert.equal(body.error.type, "invalid_request_error");
          assert.match(body.error.message, /server\.read_timeout \(150 ms\)/);
        } finally {
          req.close();
        }
        assert.equal(upstream.requests.length, 0, "nothing went upstream");
      });
    }

    await t.step("/v1/messages: Anthropic's error shape", async () => {
      const req = await openRequest(port, "/v1/messages", "chunked", MESSAGES, 10);
      try {
        const res = await req.response();
        assert.equal(res.status, 408);
        assert.deepEqual(JSON.parse(res.body), {
          type: "error",
          error: {
            type: "invalid_request_error",
            message: "The request body did not arrive within server.read_timeout (150 ms)",
          },
        });
      } finally {
        req.close();
      }
      assert.equal(upstream.requests.length, 0);
    });

    await t.step("/v1/embeddings: OpenAI JSON too", async () => {
      const body = JSON.stringify({ model: "up/text-embedding-3-small", input: "hi" });
      const req = await openRequest(port, "/v1/embeddings", "length", body, 5);
      try {
        assert.equal((await req.response()).status, 408);
      } finally {
        req.close();
      }
    });

    await t.step("admin routes that read a body: 408 too, not a connection held open", async () => {
      for (
        const path of ["/api/v1/keys", "/v1/app-keys", "/api/v1/breaker/reset"]
      ) {
        const req = await openRequest(port, path, "length", '{"name":"slow"}', 5, {
          authorization: "Bearer admin-token-0001",
        });
        try {
          const res = await req.response();
          assert.equal(res.status, 408, path);
          assert.equal(JSON.parse(res.body).error.code, "request_timeout", path);
        } finally {
          req.close();
        }
      }
    });

    await t.step("a client that finishes in time is served, whatever its pace", async () => {
      const req = await openRequest(port, "/v1/chat/completions", "chunked", CHAT, 10);
      try {
        await pause(30);
        await req.finish();
        const res = await req.response();
        assert.equal(res.status, 200);
        assert.equal(JSON.parse(res.body).choices[0].message.content, "Hello from upstream");
      } finally {
        req.close();
      }
    });

    await t.step("the log line says which timeout cut the request", () => {
      const lines = requestLines(gw.logs);
      assert.equal(lines[0]?.status, 408);
      assert.equal(lines[0]?.reason, "read_timeout");
      assert.equal(lines.at(-1)?.status, 200);
      assert.equal(lines.at(-1)?.reason, undefined);
    });
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("read_timeout on passthrough: a chunked body streaming upstream is aborted there, the client gets 408", async (t) => {
  const cases: [string, (res: RawResponse) => void][] = [
    ["/native/up/chat/completions", (res) => {
      assert.equal(JSON.parse(res.body).error.code, "request_timeout");
    }],
    ["/gemini/v1beta/models/gemini-2.5-flash:generateContent", (res) => {
      assert.deepEqual(JSON.parse(res.body), {
        error: {
          code: 408,
          message: "The request body did not arrive within server.read_timeout (200 ms)",
          status: "DEADLINE_EXCEEDED",
        },
      });
    }],
    ["/bedrock/model/m/invoke", (res) => {
      assert.equal(res.headers.get("x-amzn-errortype"), "RequestTimeoutException");
      assert.deepEqual(JSON.parse(res.body), {
        message: "The request body did not arrive within server.read_timeout (200 ms)",
      });
    }],
  ];
  for (const [path, check] of cases) {
    await t.step(path, async () => {
      const sink = startSink();
      const gw = startGateway(config(sink.url, "  read_timeout: 200ms"));
      try {
        const req = await openRequest(portOf(gw.url("/")), path, "chunked", CHAT, 12);
        try {
          assert.equal(await sink.firstChunk, CHAT.slice(0, 12), "the body was streaming upstream");
          const res = await req.response();
          assert.equal(res.status, 408);
          check(res);
          assert.equal(await sink.bodyEnd, "aborted");
        } finally {
          req.close();
        }
        assert.equal(requestLines(gw.logs)[0]?.reason, "read_timeout");
      } finally {
        await gw.close();
        await sink.close();
      }
    });
  }

  await t.step(
    "a declared Content-Length is held instead (its framing must stay): nothing goes upstream",
    async () => {
      const sink = startSink();
      const gw = startGateway(config(sink.url, "  read_timeout: 200ms"));
      try {
        const req = await openRequest(
          portOf(gw.url("/")),
          "/openai/v1/chat/completions",
          "length",
          CHAT,
          12,
        );
        try {
          const res = await req.response();
          assert.equal(res.status, 408);
          assert.equal(JSON.parse(res.body).error.code, "request_timeout");
        } finally {
          req.close();
        }
        assert.equal(sink.requests(), 0);
      } finally {
        await gw.close();
        await sink.close();
      }
    },
  );

  for (const framing of ["length", "chunked"] as const) {
    await t.step(
      `in time (${framing}): the body reaches the upstream whole, framed as sent`,
      async () => {
        const sink = startSink();
        const gw = startGateway(config(sink.url, "  read_timeout: 2s"));
        try {
          const req = await openRequest(
            portOf(gw.url("/")),
            "/openai/v1/chat/completions",
            framing,
            CHAT,
            12,
          );
          try {
            await pause(30);
            await req.finish();
            const res = await req.response();
            assert.equal(res.status, 200);
            assert.deepEqual(JSON.parse(res.body), { ok: true, length: CHAT.length });
            assert.equal(await sink.bodyEnd, "complete");
            assert.equal(sink.framing(), framing === "length" ? String(CHAT.length) : "chunked");
          } finally {
            req.close();
          }
        } finally {
          await gw.close();
          await sink.close();
        }
      },
    );
  }
});

Deno.test("read_timeout with request bodies logged: the 408 is not held for the log's copy", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(
    config(upstream.url, "  read_timeout: 100ms", "logging: { request_body: true }"),
  );
  try {
    const req = await openRequest(portOf(gw.url("/")), "/v1/chat/completions", "chunked", CHAT, 10);
    try {
      assert.equal((await req.response()).status, 408);
    } finally {
      req.close();
    }
    const line = requestLines(gw.logs)[0];
    assert.equal(line?.reason, "read_timeout");
    assert.equal(line?.request_body, undefined);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("unset timeouts: no limit on a slow body, nor on a long stream", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(config(upstream.url, "  port: 0"));
  try {
    const req = await openRequest(portOf(gw.url("/")), "/v1/chat/completions", "chunked", CHAT, 10);
    try {
      await pause(250);
      await req.finish();
      assert.equal((await req.response()).status, 200);
    } finally {
      req.close();
    }
    upstream.script({ kind: "stream", chunks: ["a", "b", "c", "d"], delayMs: 60 });
    const res = await fetch(gw.url("/v1/chat/completions"), {
      method: "POST",
      body: JSON.stringify({ ...JSON.parse(CHAT), stream: true }),
    });
    const text = await res.text();
    assert.ok(text.endsWith("data: [DONE]\n\n"));
    assert.equal(requestLines(gw.logs).at(-1)?.outcome, "complete");
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("a chunked passthrough upload the client drops mid-body is its 499: the provider is not marked unreachable", async () => {
  const sink = startSink();
  const gw = startGateway(config(sink.url, "  port: 0"));
  try {
    const req = await openRequest(
      portOf(gw.url("/")),
      "/native/up/chat/completions",
      "chunked",
      CHAT,
      12,
    );
    assert.equal(await sink.firstChunk, CHAT.slice(0, 12), "the body was streaming upstream");
    req.close();
    assert.equal(await sink.bodyEnd, "aborted");
    await gw.waitForLog('"msg":"request"');
    const line = requestLines(gw.logs)[0]!;
    assert.equal(line.status, 499);
    assert.deepEqual((line.attempts as { reason: string }[]).map((a) => a.reason), [
      "client_closed",
    ]);
    const health = await (await gw.request("/health")).json();
    assert.equal(health.providers.up.status, "healthy");
  } finally {
    await gw.close();
    await sink.close();
  }
});

Deno.test("a chunked passthrough upload still arriving when the provider's timeout runs out is a 408, not the provider's 504", async () => {
  const sink = startSink();
  const gw = startGateway(
    config(sink.url, "  port: 0").replace(
      "keys: [{ key: sk-up }] }",
      "keys: [{ key: sk-up }], timeout: 200ms }",
    ),
  );
  const req = await openRequest(
    portOf(gw.url("/")),
    "/native/up/chat/completions",
    "chunked",
    CHAT,
    12,
  );
  try {
    assert.equal(await sink.firstChunk, CHAT.slice(0, 12));
    const res = await req.response();
    assert.equal(res.status, 408);
    const error = JSON.parse(res.body).error;
    assert.equal(error.code, "request_timeout");
    assert.match(error.message, /request body was still arriving/);
    assert.equal(res.headers.get("connection"), "close");
    assert.equal(await sink.bodyEnd, "aborted");
  } finally {
    req.close();
    await gw.close();
    await sink.close();
  }
  assert.equal(requestLines(gw.logs)[0]?.status, 408);
});

Deno.test("unset read_timeout: a passthrough body held for the breaker that stops is a 408, not a hang", async () => {
  const upstream = startFakeUpstream();
  const s = manualSchedule();
  const gw = startGateway(
    config(upstream.url, "  port: 0", "features:\n  circuit_breaker: { enabled: true }\n"),
    {},
    { schedule: s.schedule },
  );
  const body = JSON.stringify({ model: "gemini-2.5-flash", contents: [] });
  const req = await openRequest(
    portOf(gw.url("/")),
    "/native/up/chat/completions",
    "length",
    body,
    10,
  );
  try {
    (await s.next((ms) => ms === DEFAULT_BODY_MS)).fire();
    const res = await req.response();
    assert.equal(res.status, 408);
    assert.match(JSON.parse(res.body).error.message, /did not arrive within 30 s/);
    assert.equal(upstream.requests.length, 0);
  } finally {
    req.close();
    await gw.close();
    await upstream.close();
  }
});

Deno.test("read_timeout alone never cuts a response that outlives it", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(config(upstream.url, "  read_timeout: 100ms"));
  try {
    upstream.script({ kind: "stream", chunks: ["a", "b", "c", "d"], delayMs: 60 });
    for (const path of ["/v1/chat/completions", "/openai/v1/chat/completions"]) {
      const res = await fetch(gw.url(path), {
        method: "POST",
        body: JSON.stringify({
          ...JSON.parse(CHAT),
          model: path.startsWith("/v1") ? "up/m" : "m",
          stream: true,
        }),
      });
      assert.equal(res.status, 200);
      assert.ok((await res.text()).endsWith("data: [DONE]\n\n"), path);
      assert.equal(requestLines(gw.logs).at(-1)?.outcome, "complete", path);
    }
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("write_timeout before the response started: 504 in the route's format", async (t) => {
  const upstream = startFakeUpstream();
  const gw = startGateway(config(upstream.url, "  write_timeout: 200ms"));
  try {
    await t.step("/v1/chat/completions: OpenAI JSON, the attempt headers kept", async () => {
      upstream.script({ kind: "json", delayMs: 5_000 });
      const res = await fetch(gw.url("/v1/chat/completions"), { method: "POST", body: CHAT });
      assert.equal(res.status, 504);
      assert.equal(res.headers.get("x-pilotfish-provider"), "up");
      const body = await res.json();
      assert.equal(body.error.code, "upstream_timeout");
      assert.equal(
        body.error.message,
        "The response could not be completed within server.write_timeout (200 ms)",
      );
      await upstream.aborted;
      const line = requestLines(gw.logs).at(-1);
      assert.equal(line?.status, 504);
      assert.equal(line?.reason, "write_timeout");
    });

    await t.step("/v1/messages: Anthropic's timeout_error", async () => {
      upstream.script({ kind: "json", delayMs: 5_000 });
      const res = await fetch(gw.url("/v1/messages"), { method: "POST", body: MESSAGES });
      assert.equal(res.status, 504);
      assert.equal((await res.json()).error.type, "timeout_error");
    });

    await t.step("native passthrough: 504 in OpenAI JSON", async () => {
      upstream.script({ kind: "hang" });
      const res = await fetch(gw.url("/native/up/chat/completions"), {
        method: "POST",
        body: CHAT,
      });
      assert.equal(res.status, 504);
      assert.match((await res.json()).error.message, /server\.write_timeout \(200 ms\)/);
      assert.equal(requestLines(gw.logs).at(-1)?.reason, "write_timeout");
    });

    await t.step("x-gateway.timeout smaller than what is left: it wins", async () => {
      upstream.script({ kind: "json", delayMs: 5_000 });
      const res = await fetch(gw.url("/v1/chat/completions"), {
        method: "POST",
        body: JSON.stringify({ ...JSON.parse(CHAT), "x-gateway": { timeout: 0.05 } }),
      });
      assert.equal(res.status, 504);
      // The attempt gets what is left of the 50 ms (49 once a millisecond went to routing;
      // less on a loaded machine), not the write_timeout's 200.
      const within = /did not answer within (\d+) ms/.exec((await res.json()).error.message);
      const ms = Number(within?.[1]);
      assert.ok(ms >= 1 && ms <= 50, `budget ${ms} ms`);
      assert.equal(requestLines(gw.logs).at(-1)?.reason, undefined);
    });

    await t.step("a slow body counts against it too", async () => {
      const req = await openRequest(
        portOf(gw.url("/")),
        "/v1/chat/completions",
        "chunked",
        CHAT,
        10,
      );
      try {
        const res = await req.response();
        assert.equal(res.status, 504);
        assert.equal(JSON.parse(res.body).error.code, "upstream_timeout");
      } finally {
        req.close();
      }
    });

    await t.step("a fast answer is untouched", async () => {
      upstream.script({ kind: "json" });
      const res = await fetch(gw.url("/v1/chat/completions"), { method: "POST", body: CHAT });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    });
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("write_timeout mid-stream ends the stream; the log says outcome error, reason write_timeout", async (t) => {
  const upstream = startFakeUpstream();
  const gw = startGateway(config(upstream.url, "  write_timeout: 300ms"));
  try {
    await t.step("/v1/chat/completions: an OpenAI error event, then a clean end", async () => {
      upstream.script({ kind: "stream", endless: true, delayMs: 20 });
      const res = await fetch(gw.url("/v1/chat/completions"), {
        method: "POST",
        body: JSON.stringify({ ...JSON.parse(CHAT), stream: true }),
      });
      assert.equal(res.status, 200);
      const text = await res.text();
      const events = text.trim().split("\n\n");
      assert.ok(events.length > 2, "chunks flowed before the cut");
      const last = JSON.parse(events.at(-1)!.replace(/^data: /, ""));
      assert.equal(last.error.code, "upstream_timeout");
      assert.match(last.error.message, /server\.write_timeout \(300 ms\)/);
      await upstream.cancelled;
      const line = requestLines(gw.logs).at(-1);
      assert.equal(line?.outcome, "error");
      assert.equal(line?.reason, "write_timeout");
      assert.equal(line?.level, "error");
    });

    await t.step("/v1/messages: an Anthropic error event", async () => {
      upstream.script({ kind: "stream", endless: true, delayMs: 20 });
      const res = await fetch(gw.url("/v1/messages"), {
        method: "POST",
        body: JSON.stringify({ ...JSON.parse(MESSAGES), stream: true }),
      });
      const text = await res.text();
      const last = text.trim().split("\n\n").at(-1)!;
      assert.match(last, /^event: error\n/);
      assert.equal(JSON.parse(last.split("data: ")[1]!).error.type, "timeout_error");
      assert.equal(requestLines(gw.logs).at(-1)?.reason, "write_timeout");
    });
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("write_timeout mid-stream on passthrough: the body is cut off, the upstream released", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(config(upstream.url, "  write_timeout: 300ms"));
  try {
    upstream.script({ kind: "stream", endless: true, delayMs: 20 });
    const res = await fetch(gw.url("/openai/v1/chat/completions"), {
      method: "POST",
      body: JSON.stringify({ ...JSON.parse(CHAT), model: "gpt-4o-mini", stream: true }),
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    let received = "";
    const ended = await (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return "clean end";
          received += dec.decode(value);
        }
      } catch {
        return "cut off";
      }
    })();
    assert.equal(ended, "cut off", "the client can tell the body was not complete");
    assert.ok(received.startsWith("data: "), "the provider's bytes flowed until the cut");
    assert.ok(!received.includes("[DONE]"));
    await upstream.cancelled;
    const line = requestLines(gw.logs).at(-1);
    assert.equal(line?.outcome, "error");
    assert.equal(line?.reason, "write_timeout");
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("write_timeout while a chunked passthrough body is still streaming upstream: 504, upstream aborted", async () => {
  const sink = startSink();
  const gw = startGateway(config(sink.url, "  write_timeout: 200ms"));
  try {
    const req = await openRequest(
      portOf(gw.url("/")),
      "/native/up/chat/completions",
      "chunked",
      CHAT,
      12,
    );
    try {
      await sink.firstChunk;
      const res = await req.response();
      assert.equal(res.status, 504);
      assert.match(JSON.parse(res.body).error.message, /server\.write_timeout \(200 ms\)/);
      assert.equal(await sink.bodyEnd, "aborted");
    } finally {
      req.close();
    }
    assert.equal(requestLines(gw.logs)[0]?.reason, "write_timeout");
  } finally {
    await gw.close();
    await sink.close();
  }
});

/** A source that yields `chunks` then waits forever, noting when it is cancelled and why. */
function pendingSource(chunks: string[]) {
  const cancelled = Promise.withResolvers<unknown>();
  const queue = [...chunks];
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      const next = queue.shift();
      if (next !== undefined) c.enqueue(enc.encode(next));
      // else: nothing more yet (a provider still thinking)
    },
    cancel(reason) {
      cancelled.resolve(reason);
    },
  }, { highWaterMark: 0 });
  return { stream, cancelled: cancelled.promise };
}

Deno.test("endAt() errors the stream at once when the signal aborts, and cancels its source", async () => {
  const src = pendingSource(["a"]);
  const deadline = new AbortController();
  const reader = endAt(src.stream, deadline.signal).getReader();
  assert.equal(dec.decode((await reader.read()).value), "a");
  const pending = reader.read(); // waits on the source
  const reason = new GatewayError("upstream_timeout", "write_timeout");
  deadline.abort(reason);
  await assert.rejects(pending, (err) => err === reason);
  assert.equal(await src.cancelled, reason);
});

Deno.test("endAt() passes a stream that ends in time through unchanged", async () => {
  const deadline = new AbortController();
  const source = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(enc.encode("a"));
      c.enqueue(enc.encode("b"));
      c.close();
    },
  });
  assert.equal(await new Response(endAt(source, deadline.signal)).text(), "ab");
  deadline.abort(new Error("late")); // after the end: nothing to cut
});

Deno.test("guardUpload() aborts the upload when the deadline passes before its end", async () => {
  const src = pendingSource(["part"]);
  const deadline = new AbortController();
  const upload = guardUpload(src.stream, deadline.signal);
  const reader = upload.body.getReader();
  assert.equal(dec.decode((await reader.read()).value), "part");
  assert.equal(upload.cut(), undefined);
  const reason = new GatewayError("request_timeout", "too slow");
  deadline.abort(reason);
  assert.equal(upload.signal.aborted, true);
  assert.equal(upload.cut(), reason);
  await assert.rejects(reader.read(), (err) => err === reason);
});

Deno.test("guardUpload() leaves an upload that finished in time alone", async () => {
  const deadline = new AbortController();
  const upload = guardUpload(new Blob(["whole"]).stream(), deadline.signal);
  assert.equal(await new Response(upload.body).text(), "whole");
  deadline.abort(new Error("late"));
  assert.equal(upload.signal.aborted, false);
  assert.equal(upload.cut(), undefined);
});

Deno.test("explainTimeout(): an attempt told before the write timer ran still names write_timeout", () => {
  const write = new AbortController(); // not aborted yet: its timer has not run in this turn
  const deadlines = { write: write.signal, writeBy: performance.now() - 1, writeMs: 200 };
  const attempt = new GatewayError(
    "upstream_timeout",
    'Provider "up" did not answer within 183 ms',
  );
  const explained = explainTimeout(deadlines, attempt) as GatewayError;
  assert.match(explained.message, /server\.write_timeout \(200 ms\)/);
  // Before the write deadline, an attempt's own timeout is its own.
  const early = { write: write.signal, writeBy: performance.now() + 5_000, writeMs: 200 };
  assert.equal(explainTimeout(early, attempt), attempt);
});
