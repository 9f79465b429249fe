/**
 * Native passthrough under `providers.<name>.timeout`: a body that is not a stream is covered
 * to its end (README, Errors: 504 `upstream_timeout`), in the route's own error format; a
 * stream keeps only its own timers.
 */
import assert from "node:assert/strict";
import { startGateway } from "../helpers/in_process.ts";

/** An upstream whose every answer is `contentType` headers, `head` of the body, then silence. */
function stallingUpstream(contentType: string, head: string) {
  const open = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    let ctl: ReadableStreamDefaultController<Uint8Array> | null = null;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        ctl = c;
        open.add(c);
        c.enqueue(new TextEncoder().encode(head));
      },
      cancel() {
        if (ctl) open.delete(ctl);
      },
    });
    return new Response(body, { headers: { "content-type": contentType } });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    async close() {
      for (const c of open) c.error(new Error("closing"));
      await server.shutdown();
    },
  };
}

/** The test's own bound: without the fix the answer never comes (a failure, not a hang). */
const GUARD_MS = 10_000;

const config = (url: string, breaker: boolean) => `
providers:
  openai: { base_url: "${url}/v1", timeout: 300ms, keys: [{ key: sk-conf-openai-0001 }] }
  anthropic: { base_url: "${url}/v1", timeout: 300ms, keys: [{ key: sk-ant-conf-0001 }] }
  gemini: { base_url: "${url}", timeout: 300ms, keys: [{ key: AIza-conf-gemini-0000000000000 }] }
  bedrock: { enabled: true, region: us-west-2, endpoint: "${url}", timeout: 300ms }
${breaker ? "features:\n  circuit_breaker: { enabled: true }\n" : ""}`;

/** The error envelopes' fields these checks read. */
interface ErrorBody {
  type?: string;
  message?: unknown;
  error: { code?: unknown; status?: string; message?: unknown };
}

/** Each route family, and how its 504 reads. */
const ROUTES: readonly [string, (body: ErrorBody, headers: Headers) => void][] = [
  ["/openai/v1/chat/completions", (b) => assert.equal(b.error.code, "upstream_timeout")],
  ["/native/openai/chat/completions", (b) => assert.equal(b.error.code, "upstream_timeout")],
  ["/anthropic/v1/messages", (b) => {
    assert.equal(b.type, "error");
    assert.equal(typeof b.error.message, "string");
  }],
  ["/gemini/v1beta/models/gemini-2.5-flash:generateContent", (b) => {
    assert.equal(b.error.code, 504);
    assert.equal(b.error.status, "DEADLINE_EXCEEDED");
  }],
  ["/bedrock/model/m/converse", (b, h) => {
    assert.equal(typeof b.message, "string");
    assert.ok(h.get("x-amzn-errortype"));
  }],
];

for (const breaker of [false, true]) {
  Deno.test(`passthrough (breaker ${breaker ? "on" : "off"}): a JSON body that stalls is a 504 in the route's format`, async () => {
    const up = stallingUpstream("application/json", '{"id":"x","choices":[');
    const gw = startGateway(config(up.url, breaker));
    try {
      for (const [path, check] of ROUTES) {
        const res = await fetch(gw.url(path), {
          method: "POST",
          body: '{"model":"m"}',
          signal: AbortSignal.timeout(GUARD_MS),
        });
        const text = await res.text();
        assert.equal(res.status, 504, `${path}: ${text}`);
        check(JSON.parse(text), res.headers);
      }
    } finally {
      await gw.close();
      await up.close();
    }
  });
}

Deno.test("passthrough: a body already relayed when the timeout runs out ends the connection", async () => {
  const up = stallingUpstream("application/octet-stream", "partial");
  const gw = startGateway(config(up.url, false));
  try {
    const res = await fetch(gw.url("/openai/v1/files/f/content"), {
      signal: AbortSignal.timeout(GUARD_MS),
    });
    assert.equal(res.status, 200);
    // Cut by the gateway, not by this test's own guard.
    await assert.rejects(
      res.text(),
      (e) => !(e instanceof DOMException && e.name === "TimeoutError"),
    );
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("passthrough: a stream outlasting the provider timeout is not cut by it", async (t) => {
  // Each answer sends a part every 150 ms, 4 in all: longer than the 300 ms timeout, never
  // silent that long. SSE, NDJSON (Ollama's native API) and Gemini's JSON-array stream.
  const cases: [string, string, string, string[]][] = [
    [
      "SSE",
      "/openai/v1/chat/completions",
      "text/event-stream",
      ["a", "b", "c", "[DONE]"].map((x) =>
        x === "[DONE]" ? "data: [DONE]\n\n" : `data: {"choices":[{"delta":{"content":"${x}"}}]}\n\n`
      ),
    ],
    [
      "NDJSON",
      "/native/openai/api/chat",
      "application/x-ndjson",
      ["1", "2", "3", "4"].map((x) => `{"n":${x}}\n`),
    ],
    [
      "Gemini JSON array",
      "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent",
      "application/json",
      ['[{"candidates":[]}', ',{"candidates":[]}', ',{"candidates":[]}', "]"],
    ],
  ];
  let parts: string[] = [];
  let contentType = "";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        let i = 0;
        const next = () => {
          if (i === parts.length) return c.close();
          c.enqueue(new TextEncoder().encode(parts[i++]));
          timer = setTimeout(next, 150);
        };
        next();
      },
      cancel: () => clearTimeout(timer),
    });
    return new Response(body, { headers: { "content-type": contentType } });
  });
  const gw = startGateway(config(`http://127.0.0.1:${server.addr.port}`, false));
  try {
    for (const [name, path, type, sent] of cases) {
      await t.step(name, async () => {
        parts = [...sent];
        contentType = type;
        const res = await fetch(gw.url(path), { method: "POST", body: "{}" });
        assert.equal(res.status, 200);
        assert.equal(await res.text(), sent.join(""));
      });
    }
  } finally {
    await gw.close();
    await server.shutdown();
  }
});
