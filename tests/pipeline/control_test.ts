/**
 * The admin control object, in-process (no daemon): reload, breaker reset, state; and a
 * config generation's stages disposed once it is retired and its last request has ended.
 */
import assert from "node:assert/strict";
import { createControl } from "../../src/pipeline/control.ts";
import type { Stage } from "../../src/pipeline/stages.ts";
import { gateway, post } from "./support.ts";

const SANITIZE = { sanitizeOps: true, sanitizeResources: true };

const BREAKER = `
providers:
  a: { base_url: "http://a.test/v1", keys: [{ key: sk-a-configured-0001 }] }
routing:
  failover: { enabled: false }
features:
  circuit_breaker: { enabled: true, failure_threshold: 1, max_transient_retries: 0 }
`;

Deno.test(
  "control.breakerReset() closes an open key; state() reads the store",
  SANITIZE,
  async () => {
    let calls = 0;
    const gw = gateway({
      config: BREAKER,
      handler: () => {
        calls++;
        return new Response("{}", { status: 500 });
      },
    });
    const control = createControl({ current: () => gw.runtime });
    const ask = () =>
      gw.request(
        "/v1/chat/completions",
        post({ model: "a/x", messages: [{ role: "user", content: "hi" }] }),
      );
    (await ask()).body?.cancel();
    const store = control.state().breaker;
    for (let i = 0; i < 100 && store.openUntil("a:x") === null; i++) await Promise.resolve();
    assert.notEqual(store.openUntil("a:x"), null, "one failure opens it (threshold 1)");
    const degraded = await ask();
    assert.equal(degraded.status, 503, "open: fast-fail with the degraded signal");
    await degraded.body?.cancel();
    assert.equal(calls, 1);

    const { reset } = await control.breakerReset("a:x");
    assert.deepEqual(reset, ["a:x"]);
    assert.equal(store.openUntil("a:x"), null);
    (await ask()).body?.cancel();
    assert.equal(calls, 2, "closed again: the request goes upstream");
    assert.equal(control.state().runtime, gw.runtime);
    assert.equal(control.state().routing, gw.runtime.routing);

    const all = await control.breakerReset();
    assert.ok(all.reset.includes("a:x"), "no key: every key seen");
  },
);

Deno.test("control.reload() without a config file says so; with one, reports its result", async () => {
  const gw = gateway();
  const none = await createControl({ current: () => gw.runtime }).reload();
  assert.equal(none.ok, false);
  assert.match(none.problems?.[0] ?? "", /nothing to reload/);
  const refused = await createControl({
    current: () => gw.runtime,
    reload: () => Promise.resolve({ ok: false, problems: ["routing.x: bad"], generation: 1 }),
  }).reload();
  assert.deepEqual(refused, { ok: false, problems: ["routing.x: bad"], generation: 1 });
});

Deno.test("a retired generation disposes its stages after its last request", SANITIZE, async () => {
  const disposed: string[] = [];
  const entered = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  const stage: Stage = {
    name: "holder",
    fail_mode: "closed",
    timeout_ms: 60_000,
    async pre_http() {
      entered.resolve();
      await release.promise;
    },
    dispose() {
      disposed.push("holder");
    },
  };
  const gw = gateway({ stages: [stage] });
  const inFlight = gw.request(
    "/v1/chat/completions",
    post({
      model: "up/gpt-up",
      messages: [{ role: "user", content: "hi" }],
    }),
  );
  await entered.promise;
  gw.runtime.retire();
  await Promise.resolve();
  assert.deepEqual(disposed, [], "a request is still in flight on it");
  release.resolve();
  const res = await inFlight;
  await res.body?.cancel();
  await gw.runtime.dispose(); // the same disposal, awaited: it ran exactly once
  assert.deepEqual(disposed, ["holder"]);
});
