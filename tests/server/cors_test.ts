import assert from "node:assert/strict";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway } from "../helpers/in_process.ts";

const APP = "https://app.example";

const config = (upstream: string, cors: string) => `
providers:
  up:
    base_url: ${upstream}/v1
    keys: [{ key: sk-up-configured-0001 }]
  openai:
    base_url: ${upstream}/v1
    keys: [{ key: sk-openai-configured-0002 }]
server:
  cors:
${cors}
`;

const chat = JSON.stringify({
  model: "up/gpt-4o-mini",
  messages: [{ role: "user", content: "hi" }],
});

function preflight(url: string, origin: string): Promise<Response> {
  return fetch(url, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type, authorization",
    },
  });
}

Deno.test("CORS preflight is answered locally for allowed and disallowed origins, on unified and passthrough routes", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(
    config(upstream.url, `    enabled: true\n    allowed_origins: ["${APP}"]\n    max_age: 1h`),
  );
  try {
    for (const path of ["/v1/chat/completions", "/openai/v1/chat/completions"]) {
      const ok = await preflight(gw.url(path), APP);
      await ok.body?.cancel();
      assert.equal(ok.status, 204, path);
      assert.equal(ok.headers.get("access-control-allow-origin"), APP);
      assert.match(ok.headers.get("access-control-allow-methods") ?? "", /POST/);
      assert.equal(ok.headers.get("access-control-allow-headers"), "content-type,authorization");
      assert.equal(ok.headers.get("access-control-max-age"), "3600");
      assert.match(ok.headers.get("vary") ?? "", /Origin/);

      const other = await preflight(gw.url(path), "https://evil.example");
      await other.body?.cancel();
      assert.equal(other.status, 204);
      assert.equal(other.headers.get("access-control-allow-origin"), null, "not a listed origin");
    }
    assert.equal(upstream.requests.length, 0, "OPTIONS never reaches an upstream");
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("CORS on actual requests: only a listed origin gets Access-Control-Allow-Origin", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(
    config(upstream.url, `    enabled: true\n    allowed_origins: ["${APP}"]`),
  );
  try {
    for (const path of ["/v1/chat/completions", "/openai/v1/chat/completions"]) {
      const body = path.startsWith("/openai") ? chat.replace("up/", "") : chat;
      const ok = await fetch(gw.url(path), { method: "POST", headers: { origin: APP }, body });
      await ok.body?.cancel();
      assert.equal(ok.status, 200, path);
      assert.equal(ok.headers.get("access-control-allow-origin"), APP);
      assert.match(ok.headers.get("access-control-expose-headers") ?? "", /x-request-id/);
      // llm-proxy's 429 headers and Butter's cache header are readable by a browser too.
      for (const h of ["x-ratelimit-reason", "x-ratelimit-scope", "x-butter-cache"]) {
        assert.match(ok.headers.get("access-control-expose-headers") ?? "", new RegExp(h));
      }
      assert.match(ok.headers.get("vary") ?? "", /Origin/);

      const other = await fetch(gw.url(path), {
        method: "POST",
        headers: { origin: "https://evil.example" },
        body,
      });
      await other.body?.cancel();
      // Refused, not served with its answer hidden: a page must not spend the keys.
      assert.equal(other.status, 403, "an origin not listed is not served");
      assert.equal(other.headers.get("access-control-allow-origin"), null);
    }
    // Errors carry the header too, or a browser app could not read them.
    const bad = await fetch(gw.url("/v1/chat/completions"), {
      method: "POST",
      headers: { origin: APP },
      body: "{",
    });
    await bad.body?.cancel();
    assert.equal(bad.status, 400);
    assert.equal(bad.headers.get("access-control-allow-origin"), APP);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("CORS with an explicit * answers any origin; with credentials it echoes the origin", async () => {
  const upstream = startFakeUpstream();
  const star = startGateway(config(upstream.url, `    enabled: true\n    allowed_origins: ["*"]`));
  const creds = startGateway(
    config(
      upstream.url,
      `    enabled: true\n    allowed_origins: ["*"]\n    allow_credentials: true`,
    ),
  );
  try {
    const a = await preflight(star.url("/v1/chat/completions"), "https://any.example");
    await a.body?.cancel();
    assert.equal(a.headers.get("access-control-allow-origin"), "*");
    const b = await preflight(creds.url("/v1/chat/completions"), "https://any.example");
    await b.body?.cancel();
    assert.equal(b.headers.get("access-control-allow-origin"), "https://any.example");
    assert.equal(b.headers.get("access-control-allow-credentials"), "true");
  } finally {
    await star.close();
    await creds.close();
    await upstream.close();
  }
});

Deno.test("CORS is off by default: no CORS headers, even with an empty origin list", async () => {
  const upstream = startFakeUpstream();
  const off = startGateway(config(upstream.url, `    allowed_origins: ["${APP}"]`));
  const empty = startGateway(config(upstream.url, `    enabled: true`));
  try {
    for (const gw of [off, empty]) {
      const res = await fetch(gw.url("/v1/chat/completions"), {
        method: "POST",
        headers: { origin: APP },
        body: chat,
      });
      await res.body?.cancel();
      // A browser's request from another origin is refused when CORS does not let it in.
      assert.equal(res.status, 403);
      assert.equal(res.headers.get("access-control-allow-origin"), null);
    }
    const pre = await preflight(empty.url("/v1/chat/completions"), APP);
    await pre.body?.cancel();
    assert.equal(pre.headers.get("access-control-allow-origin"), null);
  } finally {
    await off.close();
    await empty.close();
    await upstream.close();
  }
});

Deno.test("server.cors refuses a bad value with its key path", () => {
  assert.throws(
    () => startGateway("server:\n  cors:\n    enabled: maybe\n    allowed_origins: https://a\n"),
    (err: unknown) => {
      const problems = (err as { problems: string[] }).problems.join("\n");
      assert.match(problems, /server\.cors\.enabled:/);
      assert.match(problems, /server\.cors\.allowed_origins:/);
      return true;
    },
  );
});
