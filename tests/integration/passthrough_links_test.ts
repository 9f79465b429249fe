/**
 * URLs a provider's answer hands the client to call next (Anthropic's batch `results_url`,
 * Gemini's resumable-upload session URL) point back at the sidecar: the next call comes
 * through it, with the configured key, and the app key never reaches the provider.
 */
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { startGateway } from "../helpers/in_process.ts";

interface Seen {
  path: string;
  headers: Headers;
}

function fakeProviders() {
  const seen: Seen[] = [];
  let origin = "";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    seen.push({ path: url.pathname + url.search, headers: req.headers });
    await req.body?.cancel();
    if (url.pathname === "/v1/messages/batches/msgbatch_01") {
      return Response.json({
        id: "msgbatch_01",
        type: "message_batch",
        processing_status: "ended",
        request_counts: { processing: 0, succeeded: 1, errored: 0, canceled: 0, expired: 0 },
        ended_at: "2026-12-03T00:00:00Z",
        created_at: "2026-12-03T00:00:00Z",
        expires_at: "2026-12-04T00:00:00Z",
        archived_at: null,
        cancel_initiated_at: null,
        results_url: `${origin}/v1/messages/batches/msgbatch_01/results`,
      });
    }
    if (url.pathname === "/v1/messages/batches/msgbatch_01/results") {
      const line = {
        custom_id: "a",
        result: {
          type: "succeeded",
          message: {
            id: "msg_1",
            type: "message",
            role: "assistant",
            model: "claude-sonnet-4-5",
            content: [{ type: "text", text: "Hi" }],
            stop_reason: "end_turn",
            stop_sequence: null,
            usage: { input_tokens: 3, output_tokens: 1 },
          },
        },
      };
      return new Response(JSON.stringify(line) + "\n", {
        headers: { "content-type": "application/binary" },
      });
    }
    if (url.pathname === "/upload/v1beta/files" && !url.searchParams.has("upload_id")) {
      return new Response("{}", {
        headers: {
          "content-type": "application/json",
          "x-goog-upload-status": "active",
          "x-goog-upload-url":
            `${origin}/upload/v1beta/files?upload_id=u1&upload_protocol=resumable`,
        },
      });
    }
    if (url.pathname === "/upload/v1beta/files") {
      return Response.json({ file: { name: "files/abc", uri: `${origin}/v1beta/files/abc` } });
    }
    return new Response("not found", { status: 404 });
  });
  origin = `http://127.0.0.1:${server.addr.port}`;
  return { origin, seen, close: () => server.shutdown() };
}

Deno.test("a batch's results_url and a Gemini upload URL lead back through the sidecar", async () => {
  const up = fakeProviders();
  const gw = startGateway(`
providers:
  anthropic: { base_url: "${up.origin}", keys: [{ key: sk-ant-configured-0001 }] }
  gemini: { base_url: "${up.origin}", keys: [{ key: gm-configured-key-0001 }] }
app_keys:
  persistence: { enabled: false }
  keys: [{ key: pf_links_app_key_0000000001, name: app }]
`);
  try {
    // The Anthropic SDK fetches results_url as given: it must be the sidecar's.
    const client = new Anthropic({
      apiKey: "pf_links_app_key_0000000001",
      baseURL: gw.url("/anthropic"),
    });
    const batch = await client.messages.batches.retrieve("msgbatch_01");
    assert.equal(batch.results_url, gw.url("/anthropic/v1/messages/batches/msgbatch_01/results"));
    const results = [];
    for await (const r of await client.messages.batches.results("msgbatch_01")) results.push(r);
    assert.equal(results.length, 1);
    const fetched = up.seen.filter((s) => s.path.endsWith("/results"));
    assert.equal(fetched.length, 1);
    assert.equal(fetched[0]!.headers.get("x-api-key"), "sk-ant-configured-0001");
    for (const s of up.seen) {
      for (const [, v] of s.headers) {
        assert.ok(!v.includes("pf_links"), `app key sent to ${s.path}`);
      }
    }

    // Gemini's resumable upload: the session URL is the sidecar's, and its route exists.
    const start = await fetch(gw.url("/gemini/upload/v1beta/files"), {
      method: "POST",
      headers: {
        "x-goog-api-key": "pf_links_app_key_0000000001",
        "x-goog-upload-protocol": "resumable",
        "x-goog-upload-command": "start",
        "content-type": "application/json",
      },
      body: JSON.stringify({ file: { display_name: "a.txt" } }),
    });
    assert.equal(start.status, 200);
    await start.body?.cancel();
    const session = start.headers.get("x-goog-upload-url")!;
    assert.equal(
      session,
      gw.url("/gemini/upload/v1beta/files?upload_id=u1&upload_protocol=resumable"),
    );
    const done = await fetch(session, {
      method: "POST",
      headers: { "x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "0" },
      body: "hello",
    });
    assert.equal(done.status, 200);
    await done.body?.cancel();
    const uploaded = up.seen.at(-1)!;
    assert.equal(uploaded.path, "/upload/v1beta/files?upload_id=u1&upload_protocol=resumable");
    assert.equal(uploaded.headers.get("x-goog-api-key"), "gm-configured-key-0001");

    // Over the Unix socket (Deno says http+unix://<Host>/…): the URLs name the Host the client
    // sent, over plain HTTP, so its socket-bound client sends the next call the same way.
    /** A resumable upload started over the socket (Host `host`): its session URL. */
    const sessionOverSocket = async (host?: string) => {
      const res = await gw.requestOverSocket("/gemini/upload/v1beta/files", {
        method: "POST",
        headers: {
          "x-goog-api-key": "pf_links_app_key_0000000001",
          "x-goog-upload-protocol": "resumable",
          "x-goog-upload-command": "start",
        },
        body: "{}",
      }, host);
      await res.body?.cancel();
      return res.headers.get("x-goog-upload-url") ?? "";
    };
    assert.equal(
      await sessionOverSocket(),
      "http://pilotfish/gemini/upload/v1beta/files?upload_id=u1&upload_protocol=resumable",
    );
    // Without a Host (HTTP/1.0) Deno names the socket's path: no URL to give, the
    // provider's is left as it was.
    assert.match(
      await sessionOverSocket("%2Ftmp%2Fpf.sock"),
      /^http:\/\/127\.0\.0\.1:\d+\/upload\//,
    );
    const batchViaSocket = await gw.requestOverSocket(
      "/anthropic/v1/messages/batches/msgbatch_01",
      {
        headers: { "x-api-key": "pf_links_app_key_0000000001", "anthropic-version": "2023-06-01" },
      },
    );
    assert.equal(
      (await batchViaSocket.json()).results_url,
      "http://pilotfish/anthropic/v1/messages/batches/msgbatch_01/results",
    );
  } finally {
    await gw.close();
    await up.close();
  }
});
