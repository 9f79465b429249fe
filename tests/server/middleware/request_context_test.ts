import assert from "node:assert/strict";
import { startFakeUpstream } from "../../fakes/fake_upstream.ts";
import { startGateway } from "../../helpers/in_process.ts";

const CHAT = { model: "up/gpt-4o-mini", messages: [{ role: "user", content: "hi" }] };

function config(url: string): string {
  return `
providers:
  up: { base_url: "${url}", keys: [{ key: sk-up }] }
routing:
  failover: { enabled: false }
`;
}

Deno.test("every response carries x-pilotfish-overhead-ms; chosen providers name themselves", async (t) => {
  const upstream = startFakeUpstream();
  const gw = startGateway(config(upstream.url));
  const overhead = (res: Response) => {
    const v = res.headers.get("x-pilotfish-overhead-ms");
    assert.ok(v !== null && /^\d+\.\d{2}$/.test(v), `overhead-ms "${v}"`);
    return Number(v);
  };
  try {
    await t.step("unified success, with a slow upstream not counted as overhead", async () => {
      upstream.script({ kind: "json", delayMs: 200 });
      const res = await fetch(gw.url("/v1/chat/completions"), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(CHAT),
      });
      await res.body?.cancel();
      assert.equal(res.status, 200);
      assert.ok(overhead(res) < 200, "the upstream's 200 ms wait is not overhead");
      assert.equal(res.headers.get("x-pilotfish-provider"), "up");
      assert.equal(res.headers.get("x-pilotfish-model"), "gpt-4o-mini");
      assert.equal(res.headers.get("x-pilotfish-attempts"), "1");
    });

    await t.step("a 429 from the upstream keeps provider, model and attempts", async () => {
      upstream.script({ kind: "json", status: 429, body: { error: { message: "slow down" } } });
      const res = await fetch(gw.url("/v1/chat/completions"), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(CHAT),
      });
      await res.body?.cancel();
      assert.equal(res.status, 429);
      overhead(res);
      assert.equal(res.headers.get("x-pilotfish-provider"), "up");
      assert.equal(res.headers.get("x-pilotfish-model"), "gpt-4o-mini");
      assert.equal(res.headers.get("x-pilotfish-attempts"), "1");
    });

    await t.step("native passthrough success names provider, model and attempts", async () => {
      upstream.script({ kind: "json" });
      const res = await fetch(gw.url("/native/up/chat/completions"), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...CHAT, model: "gpt-4o-mini" }),
      });
      await res.body?.cancel();
      assert.equal(res.status, 200);
      overhead(res);
      assert.equal(res.headers.get("x-pilotfish-provider"), "up");
      assert.equal(res.headers.get("x-pilotfish-attempts"), "1");
    });

    await t.step("a model name that is no ByteString is percent-encoded, never a 500", async () => {
      for (const status of [200, 503]) {
        upstream.script({ kind: "json", status, body: { error: { message: "x" } } });
        const res = await fetch(gw.url("/v1/chat/completions"), {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ ...CHAT, model: "up/🦈‥model" }),
        });
        await res.body?.cancel();
        assert.equal(res.status, status);
        assert.equal(res.headers.get("x-pilotfish-model"), encodeURIComponent("🦈‥model"));
      }
    });

    await t.step("a request refused before any provider: overhead only", async () => {
      const res = await fetch(gw.url("/v1/chat/completions"), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{not json",
      });
      await res.body?.cancel();
      assert.equal(res.status, 400);
      overhead(res);
      assert.equal(res.headers.get("x-pilotfish-provider"), null);
    });
  } finally {
    await gw.close();
    await upstream.close();
  }
});
