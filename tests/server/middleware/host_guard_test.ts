import assert from "node:assert/strict";
import { startFakeUpstream } from "../../fakes/fake_upstream.ts";
import { startGateway } from "../../helpers/in_process.ts";
import { rawRequest } from "../../helpers/raw_http.ts";

/** A raw GET (fetch would refuse these Host headers). */
const rawGet = (port: number, path: string, host: string) => rawRequest(port, "GET", path, host);

Deno.test("a Host header that would rewrite request.url is a 400, never a 500 or a re-route", async () => {
  const upstream = startFakeUpstream();
  const gw = startGateway(`
providers:
  up: { base_url: "${upstream.url}", keys: [{ key: sk-up }] }
features:
  circuit_breaker: { enabled: true }
`);
  const port = Number(new URL(gw.url("/")).port);
  try {
    for (const host of ["a:b:c", "a/b", "a/openai/v1", "[::1", "x y", "a?b", "a#b", "%zz", "a@b"]) {
      for (const path of ["/v1/models", "/native/up/models", "/healthz"]) {
        const reply = await rawGet(port, path, host);
        const status = reply.split(" ")[1];
        assert.equal(status, "400", `Host ${JSON.stringify(host)} ${path}: ${reply.slice(0, 200)}`);
        assert.match(reply, /Invalid Host header/);
      }
    }
    for (const host of ["localhost:9002", "127.0.0.1", "[::1]:80", "app.localhost"]) {
      const reply = await rawGet(port, "/native/up/models", host);
      assert.equal(reply.split(" ")[1], "200", `Host ${host}: ${reply.slice(0, 200)}`);
    }
    // Well formed but not a loopback name, on a daemon listening on loopback: DNS rebinding
    // (browser_guard_test.ts), a 403 rather than this guard's 400.
    for (const host of ["pilotfish", "my_sidecar"]) {
      const reply = await rawGet(port, "/native/up/models", host);
      assert.equal(reply.split(" ")[1], "403", `Host ${host}: ${reply.slice(0, 200)}`);
    }
    assert.ok(upstream.requests.every((r) => r.path.endsWith("/models")));
  } finally {
    await gw.close();
    await upstream.close();
  }
});

Deno.test("a bad Host header is refused in the format of the route asked for", async () => {
  const gw = startGateway(`
providers:
  mock: {}
  bedrock: { enabled: true, region: us-east-1 }
`);
  const port = Number(new URL(gw.url("/")).port);
  try {
    for (const host of ["evil.com/x", "a:b:c", "ev il"]) {
      const bedrock = await rawGet(port, "/bedrock/model/m/converse", host);
      assert.match(bedrock, /^HTTP\/1\.1 400/);
      assert.match(bedrock, /x-amzn-errortype: ValidationException/i, host);
      assert.match(bedrock, /\{"message":"Invalid Host header"\}/, host);
      const messages = await rawGet(port, "/v1/messages?beta=true", host);
      assert.match(messages, /"type":"error","error":\{"type":"invalid_request_error"/, host);
    }
  } finally {
    await gw.close();
  }
});
