/**
 * Native passthrough with an injected key: whatever the upstream echoes of the credential it
 * got, in a header or as a key prefix in the body, reaches the client redacted.
 */
import assert from "node:assert/strict";
import { startGateway } from "../helpers/in_process.ts";

const KEY = "sk-OPENAI-SECRET-0123456789abcdef";

/** An upstream that answers 400, echoing the auth it received in a header and a key prefix. */
function echoUpstream() {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    const auth = req.headers.get("authorization") ?? "";
    const key = auth.replace(/^Bearer\s+/i, "");
    if (new URL(req.url).searchParams.has("escape")) {
      const spelled = [...key].map((ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);
      return new Response(
        `{"error":{"message":"Incorrect API key provided: ${spelled.join("")}"}}`,
        { status: 400, headers: { "content-type": "application/json" } },
      );
    }
    return new Response(
      JSON.stringify({
        error: {
          message: `Incorrect API key provided: ${key.slice(0, 12)}...${key.slice(-4)}.`,
          type: "invalid_request_error",
        },
      }),
      {
        status: 400,
        headers: { "content-type": "application/json", "x-echo-key": auth, "x-other": "plain" },
      },
    );
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

Deno.test("passthrough: an injected key echoed in a response header or as a prefix is redacted", async () => {
  const up = echoUpstream();
  const gw = startGateway(`
providers:
  openai: { base_url: "${up.url}/v1", keys: [{ key: ${KEY} }] }
`);
  try {
    for (const path of ["/openai/v1/chat/completions", "/native/openai/chat/completions"]) {
      const res = await fetch(gw.url(path), { method: "POST", body: "{}" });
      const text = await res.text();
      assert.equal(res.status, 400, path);
      assert.equal(res.headers.get("x-echo-key"), "[REDACTED]", path);
      assert.equal(res.headers.get("x-other"), "plain", path);
      assert.doesNotMatch(text, /sk-OPENAI-SE/, path);
      assert.match(text, /Incorrect API key provided: \[REDACTED\]/, path);
    }
    // Spelled with JSON escapes, as a JSON encoder may write it: still the key to a client.
    const escaped = await fetch(gw.url("/native/openai/chat/completions?escape=1"), {
      method: "POST",
      body: "{}",
    });
    const parsed = await escaped.json();
    assert.equal(escaped.status, 400);
    assert.equal(parsed.error.message, "Incorrect API key provided: [REDACTED]");
    // The client's own key, echoed back to the client that sent it, is its business.
    const own = await fetch(gw.url("/openai/v1/chat/completions"), {
      method: "POST",
      headers: { authorization: "Bearer sk-client-own-0001" },
      body: "{}",
    });
    assert.match(await own.text(), /sk-client-ow\.\.\./);
    assert.equal(own.headers.get("x-echo-key"), "Bearer sk-client-own-0001");
  } finally {
    await gw.close();
    await up.close();
  }
});

/**
 * An upstream that answers `status` echoing the key it got, past `pad` bytes of filler, in
 * `coding` (as sent, whatever the gateway asked for: a CDN may compress anyway).
 */
function paddedEcho(status: number, pad: number, coding: "identity" | "gzip" | "deflate" | "br") {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    const key = (req.headers.get("authorization") ?? "").replace(/^Bearer\s+/i, "");
    const text = `${"x".repeat(pad)} key=${key}`;
    const headers: Record<string, string> = { "content-type": "text/plain" };
    if (coding === "identity") return new Response(text, { status, headers });
    headers["content-encoding"] = coding;
    const packed = coding === "br"
      ? new TextEncoder().encode(text) // not really brotli: the gateway must not relay it
      : await new Response(
        new Blob([text]).stream().pipeThrough(new CompressionStream(coding)),
      ).arrayBuffer();
    return new Response(packed, { status, headers });
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

/** A gateway whose one provider's key is injected (the client sends none), no retries. */
const injecting = (url: string) =>
  startGateway(`
providers:
  openai: { base_url: "${url}/v1", keys: [{ key: ${KEY} }] }
routing:
  failover: { enabled: false }
`);

Deno.test("passthrough: an injected key in an error body over 1 MiB is still redacted", async () => {
  for (const pad of [1_100 * 1024, 3 * 1024 * 1024]) {
    const up = paddedEcho(500, pad, "identity");
    const gw = injecting(up.url);
    try {
      const res = await fetch(gw.url("/openai/v1/chat/completions"), {
        method: "POST",
        body: "{}",
      });
      assert.equal(res.status, 500);
      const text = await res.text();
      assert.equal(text.length, pad + " key=[REDACTED]".length, "the body is whole");
      assert.ok(text.endsWith(" key=[REDACTED]"), String(pad));
      assert.doesNotMatch(text, /sk-OPENAI-SE/);
    } finally {
      await gw.close();
      await up.close();
    }
  }
});

Deno.test("passthrough: a compressed error body is inflated and redacted; one the gateway cannot read is withheld", async () => {
  for (const coding of ["gzip", "deflate", "br"] as const) {
    // A 200 in a coding the gateway cannot read is relayed as sent (the client decodes it).
    for (const status of coding === "br" ? [401] : [401, 200]) {
      const up = paddedEcho(status, 100, coding);
      const gw = injecting(up.url);
      try {
        const res = await fetch(gw.url("/native/openai/chat/completions"), {
          method: "POST",
          body: "{}",
        });
        assert.equal(res.status, status, coding);
        const text = await res.text();
        assert.doesNotMatch(text, /sk-OPENAI-SE/, `${coding} ${status}`);
        if (coding !== "br") {
          assert.equal(res.headers.get("content-encoding"), null, "relayed inflated");
          assert.ok(text.endsWith(" key=[REDACTED]"), `${coding} ${status}`);
        } else {
          assert.match(text, /withheld: its Content-Encoding \(br\) cannot be checked/);
        }
      } finally {
        await gw.close();
        await up.close();
      }
    }
  }
});
