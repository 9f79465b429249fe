import assert from "node:assert/strict";
import { startFakeUpstream } from "../../fakes/fake_upstream.ts";
import { startGateway } from "../../helpers/in_process.ts";
import { rawRequest } from "../../helpers/raw_http.ts";
import { crossSite, rebound } from "../../../src/server/middleware/browser_guard.ts";
import type { CorsConfig } from "../../../src/config/mod.ts";

const corsOff = { enabled: false, allowed_origins: [] } as unknown as CorsConfig;
const corsFor = (...origins: string[]) =>
  ({ enabled: true, allowed_origins: origins }) as unknown as CorsConfig;

Deno.test("crossSite(): a browser's request from another site is refused unless server.cors lets its origin in", () => {
  const h = (init: Record<string, string>) => new Headers(init);
  // SDKs, curl, servers: no browser headers.
  assert.equal(crossSite(h({}), corsOff), null);
  assert.equal(crossSite(h({ host: "127.0.0.1:9002" }), corsOff), null);
  // Fetch Metadata.
  assert.equal(crossSite(h({ "sec-fetch-site": "same-origin" }), corsOff), null);
  assert.equal(crossSite(h({ "sec-fetch-site": "none" }), corsOff), null);
  const evil = { origin: "https://evil.example", "sec-fetch-site": "cross-site" };
  assert.match(crossSite(h(evil), corsOff) ?? "", /"https:\/\/evil\.example".*server\.cors/);
  assert.notEqual(
    crossSite(h({ origin: "http://localhost:3000", "sec-fetch-site": "same-site" }), corsOff),
    null,
  );
  assert.equal(crossSite(h(evil), corsFor("https://evil.example")), null);
  assert.equal(crossSite(h(evil), corsFor("*")), null);
  assert.notEqual(crossSite(h(evil), corsFor("https://app.example")), null);
  // CORS listed but not enabled lets nothing in.
  assert.notEqual(
    crossSite(h(evil), { enabled: false, allowed_origins: ["*"] } as unknown as CorsConfig),
    null,
  );
  // No Fetch Metadata (an older browser): Origin against the Host it was sent to.
  assert.equal(
    crossSite(h({ origin: "http://127.0.0.1:9002", host: "127.0.0.1:9002" }), corsOff),
    null,
  );
  assert.notEqual(
    crossSite(h({ origin: "https://evil.example", host: "127.0.0.1:9002" }), corsOff),
    null,
  );
  assert.match(
    crossSite(h({ origin: "null", "sec-fetch-site": "cross-site" }), corsOff) ?? "",
    /from another site/,
  );
});

Deno.test("rebound(): on loopback only loopback names are answered; a wildcard listen checks nothing", () => {
  for (
    const host of ["localhost:9002", "LOCALHOST", "app.localhost", "127.0.0.1", "127.8.9.10:1"]
  ) {
    assert.equal(rebound(host, "127.0.0.1"), null, host);
  }
  assert.equal(rebound("[::1]:9002", "::1"), null);
  assert.equal(rebound("[::1]", "127.0.0.1"), null);
  assert.equal(rebound("sidecar.internal", "sidecar.internal"), null);
  for (const host of ["attacker.example:9002", "pilotfish", "10.0.0.5", "[fe80::1]"]) {
    assert.match(rebound(host, "127.0.0.1") ?? "", /listens on loopback/, host);
    assert.notEqual(rebound(host, "localhost"), null, host);
  }
  for (const listen of ["0.0.0.0", "::", "10.0.0.5"]) {
    assert.equal(rebound("attacker.example", listen), null, listen);
  }
  assert.equal(rebound(null, "127.0.0.1"), null);
  // A CONNECT target's authority (`host:port:port`) is read up to its first colon.
  assert.equal(rebound("127.0.0.1:44747:80", "127.0.0.1"), null);
  assert.notEqual(rebound("evil.example:1:2", "127.0.0.1"), null);
});

Deno.test("through the daemon: a cross-site simple POST and a rebound Host are 403s in the route's format, with no upstream call; SDK-like requests pass", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(`
providers:
  up: { type: openai, base_url: "${upstream.url}", keys: [{ key: sk-up-key-123456 }] }
`);
  const body = JSON.stringify({
    model: "up/gpt-4o-mini",
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 5,
  });
  const browser = {
    "content-type": "text/plain;charset=UTF-8",
    origin: "https://evil.example",
    "sec-fetch-site": "cross-site",
    "sec-fetch-mode": "no-cors",
  };
  try {
    const chat = await fetch(gw.url("/v1/chat/completions"), {
      method: "POST",
      headers: browser,
      body,
    });
    assert.equal(chat.status, 403);
    const err = await chat.json();
    assert.equal(err.error.type, "permission_error");
    assert.match(err.error.message, /Cross-site request refused/);
    const messages = await fetch(gw.url("/v1/messages"), {
      method: "POST",
      headers: { ...browser, "anthropic-version": "2023-06-01" },
      body,
    });
    assert.equal(messages.status, 403);
    assert.equal((await messages.json()).type, "error");
    const native = await fetch(gw.url("/openai/v1/chat/completions"), {
      method: "POST",
      headers: browser,
      body,
    });
    assert.equal(native.status, 403);
    await native.body?.cancel();
    assert.equal(upstream.requests.length, 0);

    // DNS rebinding: the page's own name, same-origin to the browser.
    const port = new URL(gw.url("/")).port;
    const rebind = await rawRequest(Number(port), "GET", "/v1/models", "attacker.example:" + port);
    assert.match(rebind, /^HTTP\/1\.1 403/);
    assert.match(rebind, /listens on loopback/);
    assert.equal(upstream.requests.length, 0);

    // What SDKs and curl send: no browser headers.
    const sdk = await fetch(gw.url("/v1/chat/completions"), {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer x" },
      body,
    });
    assert.equal(sdk.status, 200);
    await sdk.body?.cancel();
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("through the daemon: a cross-site read of a passthrough path (the key injected) is refused; the operator's pages stay open; a provider's CORS headers are never relayed", async () => {
  const upstream = startFakeUpstream();
  upstream.script({
    kind: "json",
    body: { object: "list", data: [] },
    headers: { "access-control-allow-origin": "*", "access-control-expose-headers": "*" },
  });
  const gw = startGateway(`
providers:
  openai: { type: openai, base_url: "${upstream.url}/v1", keys: [{ key: sk-up-key-123456 }] }
`);
  const crossSite = { origin: "https://evil.example", "sec-fetch-site": "cross-site" };
  try {
    for (const method of ["GET", "HEAD", "OPTIONS"]) {
      const res = await fetch(gw.url("/openai/v1/files"), { method, headers: crossSite });
      await res.body?.cancel();
      assert.equal(res.status, 403, method);
    }
    // A link followed from another site (no Origin on a GET navigation).
    const nav = await fetch(gw.url("/v1/models"), {
      headers: { "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate" },
    });
    await nav.body?.cancel();
    assert.equal(nav.status, 403);
    assert.equal(upstream.requests.length, 0);
    for (const path of ["/status", "/health", "/healthz"]) {
      const res = await fetch(gw.url(path), { headers: { "sec-fetch-site": "cross-site" } });
      await res.body?.cancel();
      assert.equal(res.status, 200, path);
    }
    // An SDK's read: answered, without the provider's CORS headers.
    const sdk = await fetch(gw.url("/openai/v1/files"));
    assert.equal(sdk.status, 200);
    await sdk.body?.cancel();
    assert.equal(upstream.requests.length, 1);
    assert.equal(sdk.headers.get("access-control-allow-origin"), null);
    assert.equal(sdk.headers.get("access-control-expose-headers"), null);
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("through the daemon: an origin server.cors allows is let in, with its CORS headers", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(`
server:
  cors: { enabled: true, allowed_origins: ["https://app.example"] }
providers:
  up: { type: openai, base_url: "${upstream.url}", keys: [{ key: sk-up-key-123456 }] }
`);
  try {
    const res = await fetch(gw.url("/v1/chat/completions"), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        origin: "https://app.example",
        "sec-fetch-site": "cross-site",
      },
      body: JSON.stringify({
        model: "up/gpt-4o-mini",
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("access-control-allow-origin"), "https://app.example");
    await res.body?.cancel();
  } finally {
    await gw.close();
    await upstream.close();
  }
});
