import assert from "node:assert/strict";
import { guardedFetch, hostNames, isAllowed } from "../../src/plugins/net.ts";

Deno.test("allowed_hosts: a host allows any port, host:port only that one", () => {
  const allowed = ["api.example.com", "127.0.0.1:8080", "Secure.Example.com:443"];
  assert.ok(isAllowed(new URL("https://api.example.com:9999/x"), allowed));
  assert.ok(isAllowed(new URL("http://127.0.0.1:8080/"), allowed));
  assert.ok(!isAllowed(new URL("http://127.0.0.1:8081/"), allowed));
  assert.ok(!isAllowed(new URL("http://127.0.0.1/"), allowed), "port 80 is not 8080");
  assert.ok(isAllowed(new URL("https://secure.example.com/"), allowed), "https's port is 443");
  assert.ok(!isAllowed(new URL("http://secure.example.com/"), allowed), "http's is 80");
  assert.ok(!isAllowed(new URL("https://evil.example.com/"), allowed));
  assert.deepEqual(hostNames(allowed), ["api.example.com", "127.0.0.1", "secure.example.com"]);
});

Deno.test("guardedFetch follows redirects only within allowed_hosts", async () => {
  const seen: string[] = [];
  const base = (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input);
    seen.push(`${init?.method ?? "GET"} ${url} ${init?.body ?? ""}`.trim());
    const to: Record<string, [number, string]> = {
      "http://a.test:1/start": [303, "/next"],
      "http://a.test:1/next": [307, "http://a.test:1/last"],
      "http://a.test:1/away": [302, "http://a.test:2/x"],
    };
    const hop = to[url];
    return Promise.resolve(
      hop
        ? new Response(null, { status: hop[0], headers: { location: hop[1] } })
        : new Response("done"),
    );
  };
  const get = guardedFetch(["a.test:1"], base as typeof fetch);
  const res = await get("http://a.test:1/start", { method: "POST", body: "b" });
  assert.equal(await res.text(), "done");
  assert.deepEqual(seen, [
    "POST http://a.test:1/start b",
    "GET http://a.test:1/next", // 303: a GET without the body
    "GET http://a.test:1/last",
  ]);
  await assert.rejects(() => get("http://a.test:1/away"), /not allowed.*"a\.test:2"/);
  await assert.rejects(() => get("http://a.test:3/"), /not allowed/);
});

Deno.test("guardedFetch drops credentials when a redirect leaves the origin; stops at 20", async () => {
  const seen: [string, string | null, string | null][] = [];
  const base = (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input);
    const h = new Headers(init?.headers);
    seen.push([url, h.get("authorization"), h.get("content-type")]);
    const to: Record<string, [number, string]> = {
      "http://a.test:1/x": [307, "/y"],
      "http://a.test:1/y": [302, "http://a.test:2/z"],
    };
    const hop = to[url];
    return Promise.resolve(
      hop
        ? new Response(null, { status: hop[0], headers: { location: hop[1] } })
        : new Response("done"),
    );
  };
  const get = guardedFetch(["a.test"], base as typeof fetch);
  await get("http://a.test:1/x", {
    method: "POST",
    body: "b",
    headers: { authorization: "Bearer plugin-secret", "content-type": "application/json" },
  });
  assert.deepEqual(seen, [
    ["http://a.test:1/x", "Bearer plugin-secret", "application/json"],
    ["http://a.test:1/y", "Bearer plugin-secret", "application/json"], // 307: same origin, body kept
    ["http://a.test:2/z", null, null], // 302 after a POST to another origin: a bare GET
  ]);
  const loop = guardedFetch(
    ["a.test"],
    (() =>
      Promise.resolve(
        new Response(null, { status: 302, headers: { location: "/again" } }),
      )) as typeof fetch,
  );
  await assert.rejects(() => loop("http://a.test/"), /too many redirects/);
});
