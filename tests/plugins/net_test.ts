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
