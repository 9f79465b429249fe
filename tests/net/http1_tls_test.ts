/**
 * The daemon's upstream client over TLS: a provider on HTTPS whose certificate a throwaway
 * CA signed, trusted through DENO_CERT as Deno's `fetch` trusts it, and refused without it.
 * @module
 */
import assert from "node:assert/strict";
import { certificates } from "../helpers/tls_certs.ts";
import { chatBody, startDaemon } from "../integration/daemon.ts";
import { chunkEvent, completionBody } from "../fakes/fake_upstream.ts";

/**
 * An OpenAI-shaped provider on HTTPS (offering h2 and http/1.1, as providers do); records the
 * connections it was called on and whether each request came over HTTP/1.1 (a `host` header:
 * HTTP/2 has `:authority` instead, and `fetch` would have negotiated h2).
 */
function httpsUpstream(dir: string) {
  const peers = new Set<number>();
  const http1: boolean[] = [];
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: Deno.readTextFileSync(`${dir}/server.pem`),
    key: Deno.readTextFileSync(`${dir}/server.key`),
    onListen: () => {},
  }, async (req, info) => {
    peers.add(info.remoteAddr.port);
    http1.push(req.headers.has("host"));
    const body = await req.json();
    if (!body.stream) return Response.json(completionBody("over tls"));
    const events = [
      chunkEvent({ role: "assistant", content: "" }),
      chunkEvent({ content: "over " }),
      chunkEvent({ content: "tls" }),
      chunkEvent({}, "stop"),
      "data: [DONE]\n\n",
    ];
    return new Response(
      new ReadableStream({
        start(c) {
          for (const e of events) c.enqueue(new TextEncoder().encode(e));
          c.close();
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    );
  });
  return { url: `https://127.0.0.1:${server.addr.port}`, peers, http1, server };
}

const config = (url: string) => `
server: { port: {{PORT}}, socket: "{{SOCKET}}" }
providers:
  up:
    type: openai
    base_url: "${url}/v1"
    keys: [{ key: sk-up }]
`;

Deno.test("http1 over TLS: answers and streams from an HTTPS provider on one kept-alive connection; an untrusted certificate is a 502", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pilotfish-h1tls-" });
  await certificates(dir);
  const up = httpsUpstream(dir);
  try {
    const trusting = await startDaemon(config(up.url), { env: { DENO_CERT: `${dir}/ca.pem` } });
    try {
      const res = await fetch(trusting.url("/v1/chat/completions"), {
        method: "POST",
        body: chatBody("up/gpt-4o"),
      });
      assert.equal(res.status, 200);
      assert.equal((await res.json()).choices[0].message.content, "over tls");
      const stream = await fetch(trusting.url("/v1/chat/completions"), {
        method: "POST",
        body: chatBody("up/gpt-4o", { stream: true }),
      });
      assert.equal(stream.status, 200);
      const text = await stream.text();
      const content = [...text.matchAll(/"content":"([^"]*)"/g)].map((m) => m[1]).join("");
      assert.equal(content, "over tls");
      assert.ok(text.trimEnd().endsWith("data: [DONE]"));
      // Both calls on one TLS connection: the first went back to the pool.
      assert.equal(up.peers.size, 1);
      assert.deepEqual(up.http1, [true, true]);
    } finally {
      assert.equal(await trusting.stop(), 0);
    }
    const untrusting = await startDaemon(config(up.url));
    try {
      const res = await fetch(untrusting.url("/v1/chat/completions"), {
        method: "POST",
        body: chatBody("up/gpt-4o"),
      });
      assert.equal(res.status, 502);
      const err = (await res.json()).error;
      assert.equal(err.code, "upstream_unreachable");
      assert.match(err.message, /certificate/i);
    } finally {
      assert.equal(await untrusting.stop(), 0);
    }
  } finally {
    await up.server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
