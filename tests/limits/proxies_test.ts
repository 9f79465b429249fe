/**
 * Butter's `trusted_proxies`: forwarded headers name the client for per-IP limits only when the
 * connection comes from a trusted proxy, and then the right-most untrusted entry counts.
 */
import assert from "node:assert/strict";
import { clientIp, inCidrs, parseCidr, parseIp } from "../../src/limits/proxies.ts";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway } from "../helpers/in_process.ts";

const cidrs = (...list: string[]) => list.map((c) => parseCidr(c)!);
const h = (init: Record<string, string>) => new Headers(init);

Deno.test("parseCidr/inCidrs: IPv4, IPv6, IPv4-mapped peers, bare addresses", () => {
  const ranges = cidrs("10.0.0.0/8", "192.168.1.7", "fd00::/8");
  const has = (ip: string) => inCidrs(parseIp(ip)!, ranges);
  assert.ok(has("10.1.2.3"));
  assert.ok(has("::ffff:10.1.2.3"));
  assert.ok(has("192.168.1.7"));
  assert.ok(!has("192.168.1.8"));
  assert.ok(has("fd12:3456::1"));
  assert.ok(!has("fe80::1"));
  assert.ok(!has("11.0.0.1"));
  for (const bad of ["10.0.0.0/33", "300.1.1.1", "10.0.0/8", "x", "::1/129", "1::2::3"]) {
    assert.equal(parseCidr(bad), null, bad);
  }
  assert.ok(inCidrs(parseIp("8.8.8.8")!, cidrs("0.0.0.0/0")));
});

Deno.test("clientIp: right-most untrusted X-Forwarded-For, then X-Real-IP, only from a trusted peer", () => {
  const trusted = cidrs("10.0.0.0/8");
  // A peer that is not a trusted proxy: its headers are ignored.
  assert.equal(
    clientIp("203.0.113.9", h({ "x-forwarded-for": "1.1.1.1" }), trusted),
    "203.0.113.9",
  );
  // No trusted_proxies at all: the same.
  assert.equal(clientIp("10.0.0.1", h({ "x-forwarded-for": "1.1.1.1" }), []), "10.0.0.1");
  // A client's own (spoofed) entries on the left do not count: the right-most untrusted does.
  assert.equal(
    clientIp("10.0.0.1", h({ "x-forwarded-for": "6.6.6.6, 203.0.113.5, 10.0.0.7" }), trusted),
    "203.0.113.5",
  );
  assert.equal(
    clientIp("10.0.0.1", h({ "x-forwarded-for": "203.0.113.5:4711" }), trusted),
    "203.0.113.5",
  );
  assert.equal(
    clientIp("10.0.0.1", h({ "x-forwarded-for": "[2001:db8::5]:443" }), trusted),
    "2001:db8::5",
  );
  // Every entry a trusted proxy: the left-most.
  assert.equal(
    clientIp("10.0.0.1", h({ "x-forwarded-for": "10.0.0.3, 10.0.0.2" }), trusted),
    "10.0.0.3",
  );
  assert.equal(clientIp("10.0.0.1", h({ "x-real-ip": "198.51.100.4" }), trusted), "198.51.100.4");
  assert.equal(clientIp("10.0.0.1", h({ "x-real-ip": "not-an-ip" }), trusted), "10.0.0.1");
  assert.equal(clientIp(undefined, h({ "x-real-ip": "198.51.100.4" }), trusted), undefined);
});

Deno.test("per_ip behind a trusted proxy counts the forwarded client; otherwise the peer", async () => {
  const up = startFakeUpstream();
  const config = (trusted: string) => `
providers:
  up: { base_url: "${up.url}/v1" }
plugins:
  ratelimit:
    requests_per_minute: 1
    per_ip: true
${trusted}
`;
  const send = (gw: ReturnType<typeof startGateway>, xff: string) =>
    fetch(gw.url("/v1/chat/completions"), {
      method: "POST",
      headers: { "content-type": "application/json", "x-forwarded-for": xff },
      body: JSON.stringify({ model: "up/gpt-4o", messages: [{ role: "user", content: "hi" }] }),
    }).then(async (r) => {
      await r.body?.cancel();
      return r;
    });
  const behind = startGateway(config("    trusted_proxies: [127.0.0.0/8, ::1]"));
  try {
    assert.equal((await send(behind, "203.0.113.5")).status, 200);
    const again = await send(behind, "198.51.100.1, 203.0.113.5");
    assert.equal(again.status, 429);
    assert.equal(again.headers.get("x-ratelimit-scope"), "ip:203.0.113.5");
    assert.equal((await send(behind, "203.0.113.6")).status, 200);
  } finally {
    await behind.close();
  }
  const direct = startGateway(config(""));
  try {
    assert.equal((await send(direct, "203.0.113.5")).status, 200);
    const again = await send(direct, "203.0.113.6");
    assert.equal(again.status, 429);
    assert.equal(again.headers.get("x-ratelimit-scope"), "ip:127.0.0.1");
  } finally {
    await direct.close();
    await up.close();
  }
});

Deno.test("plugins.ratelimit.trusted_proxies loads; a value that is no address or CIDR is refused", async () => {
  const { parseConfigText } = await import("../../src/config/mod.ts");
  const load = (list: string) =>
    parseConfigText(
      `plugins: { ratelimit: { requests_per_minute: 5, per_ip: true, trusted_proxies: ${list} } }`,
      () => undefined,
      "b.yaml",
    );
  const ok = load("[10.0.0.0/8, 172.16.0.0/12, fd00::/8, 127.0.0.1]");
  assert.deepEqual(ok.warnings, []);
  assert.throws(
    () => load("[10.0.0.0/40]"),
    /trusted_proxies\[0\]: Must be an IP address or a CIDR/,
  );
});
