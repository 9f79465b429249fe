/**
 * Native passthrough covers the paths PRODUCT lists (`/openai/v1/*`, `/anthropic/v1/*`,
 * `/gemini/v1/*`, `/gemini/v1beta/*`, `/native/{provider}/*`, `/bedrock/*`); anything else
 * under those prefixes is a 404 in the route's format, and no upstream is called (no key is
 * injected into a request to a path nobody meant to open).
 */
import assert from "node:assert/strict";
import { startGateway } from "../helpers/in_process.ts";

function countingUpstream() {
  const paths: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    paths.push(new URL(req.url).pathname);
    return new Response('{"ok":true}', { headers: { "content-type": "application/json" } });
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, paths, close: () => server.shutdown() };
}

interface ErrorBody {
  type?: string;
  message?: unknown;
  error?: { code?: unknown; status?: string; message?: unknown };
}

/** The 404's envelope, by the family the path is under. */
function assertFormat(path: string, body: ErrorBody, headers: Headers) {
  if (path.startsWith("/anthropic")) {
    assert.equal(body.type, "error", path);
    assert.equal(typeof body.error?.message, "string", path);
  } else if (path.startsWith("/gemini")) {
    assert.equal(body.error?.code, 404, path);
    assert.equal(body.error?.status, "NOT_FOUND", path);
  } else if (path.startsWith("/bedrock")) {
    assert.equal(typeof body.message, "string", path);
    assert.ok(headers.get("x-amzn-errortype"), path);
  } else {
    assert.equal(body.type, undefined, path);
    assert.equal(typeof body.error?.message, "string", path);
  }
}

Deno.test("passthrough: a path outside the listed prefixes is a 404 in the route's format, nothing sent", async () => {
  const up = countingUpstream();
  const gw = startGateway(`
providers:
  openai: { base_url: "${up.url}/v1", keys: [{ key: sk-conf-openai-0001 }] }
  anthropic: { base_url: "${up.url}/v1", keys: [{ key: sk-ant-conf-0001 }] }
  gemini: { base_url: "${up.url}", keys: [{ key: AIza-conf-gemini-0000000000000 }] }
  bedrock: { enabled: true, region: us-west-2, endpoint: "${up.url}" }
`);
  try {
    for (
      const path of [
        "/openai/v2/models",
        "/anthropic/v2/models",
        "/gemini/v2/models",
        "/gemini",
        "/gemini/",
        "/bedrock",
        "/bedrock/",
        "/native/openai",
        "/native/openai/",
        "/openai",
        "/openai/models",
        "/openai/v1",
        "/openai/v1/",
        "/anthropic/messages",
        "/gemini/v1alpha/models",
        "/gemini/v1betax/models",
      ]
    ) {
      const res = await fetch(gw.url(path), { method: "POST", body: "{}" });
      const text = await res.text();
      assert.equal(res.status, 404, `${path}: ${text}`);
      assertFormat(path, JSON.parse(text), res.headers);
    }
    assert.deepEqual(up.paths, []);

    // What PRODUCT lists still goes through.
    const listed: readonly [string, string][] = [
      ["/openai/v1/models", "/v1/models"],
      ["/anthropic/v1/models", "/v1/models"],
      ["/gemini/v1/models", "/v1/models"],
      ["/gemini/v1beta/models", "/v1beta/models"],
      ["/native/openai/models", "/v1/models"],
      ["/bedrock/model/m/converse", "/model/m/converse"],
    ];
    for (const [path, upstream] of listed) {
      const res = await fetch(gw.url(path), { method: "POST", body: "{}" });
      await res.body?.cancel();
      assert.equal(res.status, 200, path);
      assert.equal(up.paths.at(-1), upstream, path);
    }
  } finally {
    await gw.close();
    await up.close();
  }
});
