/**
 * The status page in headless Chromium (Debian `chromium`, driven by playwright-core):
 * three real daemons (started as `deno task start` starts them: narrowed permissions) on
 * one `redis-server`, a scripted outage on one of them, and the page of another showing
 * its providers, the open breaker and the whole fleet. Screenshots go to tests/.output/.
 */
import assert from "node:assert/strict";
import { startFakeUpstream } from "../../fakes/fake_upstream.ts";
import { chatBody, type Daemon, startDaemon } from "../../integration/daemon.ts";
import { startRedisServer } from "../../helpers/redis_server.ts";
import { runBrowser } from "../../helpers/browser.ts";

const OUTPUT = new URL("../../.output/status/", import.meta.url).pathname;

const config = (upstream: string, redis: string, name: string) => `
server:
  port: {{PORT}}
  socket: {{SOCKET}}
providers:
  up:
    base_url: ${upstream}/v1
    keys: [{ key: sk-fleet-secret-0001, id: fleet-key }]
    models: [gpt-4o-mini]
state:
  backend: redis
  redis: { url: "${redis}" }
features:
  circuit_breaker:
    enabled: true
    failure_threshold: 1
    window_seconds: 60
    cooldown_seconds: 300
telemetry:
  fleet: { name: ${name}, interval: 1s }
`;

Deno.test("/status in Chromium: providers, an open breaker after an outage, three sidecars", async () => {
  await Deno.mkdir(OUTPUT, { recursive: true });
  const redis = await startRedisServer();
  const upstream = startFakeUpstream();
  const daemons: Daemon[] = [];
  try {
    for (const name of ["sidecar-a", "sidecar-b", "sidecar-c"]) {
      daemons.push(await startDaemon(config(upstream.url, redis.url, name)));
    }
    const [a, b] = daemons as [Daemon, Daemon, Daemon];
    upstream.script({ kind: "json" });
    const ok = await fetch(a.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("up/gpt-4o-mini"),
    });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    // Then the outage, seen by sidecar-b: the breaker opens.
    upstream.script({ kind: "json", status: 500, body: { error: { message: "outage" } } });
    const failed = await fetch(b.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("up/gpt-4o-mini"),
    });
    assert.equal(failed.status, 503);
    await failed.body?.cancel();

    const seen = await runBrowser([
      // sidecar-b's own page: its providers and its open breaker.
      { goto: b.url("/status") },
      { waitFor: 'document.body.dataset.loaded === "true"' },
      { texts: "#providers tbody tr", as: "providers" },
      { evaluate: "document.documentElement.outerHTML", as: "html" },
      // sidecar-a's page shows the whole fleet, sidecar-b's open breaker included. The page
      // polls every 5 s; each sidecar heartbeats every second.
      { goto: a.url("/status") },
      { waitFor: 'document.querySelectorAll("#fleet tbody tr").length === 3' },
      { texts: "#fleet tbody tr", as: "fleet" },
      { screenshot: `${OUTPUT}fleet-desktop.png` },
      // Readable on a phone: the page itself does not scroll sideways (tables do, inside).
      { viewport: { width: 390, height: 844 } },
      {
        evaluate: "document.documentElement.scrollWidth - document.documentElement.clientWidth",
        as: "overflow",
      },
      { screenshot: `${OUTPUT}fleet-phone.png` },
    ]);
    const providers = seen.providers as string[];
    assert.match(providers[0]!, /^up\topenai\tfleet-key/);
    // The provider's state (every key folded), then its model key that opened.
    assert.match(providers[0]!, /\topen, up:gpt-4o-mini open\t/);
    assert.doesNotMatch(seen.html as string, /sk-fleet-secret/);
    const fleet = seen.fleet as string[];
    assert.deepEqual(fleet.map((r) => r.split("\t")[0]), [
      "sidecar-a (this)",
      "sidecar-b",
      "sidecar-c",
    ]);
    // sidecar-b saw the outage; the others learn of it through Redis in their own time.
    assert.match(fleet[1]!, /\tup:gpt-4o-mini open\t/);
    // Each sidecar's own numbers: a served one request, b failed one, c none.
    assert.deepEqual(fleet.map((r) => r.split("\t").slice(4, 6)), [["1", "0"], ["1", "1"], [
      "0",
      "0",
    ]]);
    assert.ok((seen.overflow as number) <= 0, `the page scrolls sideways by ${seen.overflow}px`);
    // The fleet's Redis link is a gauge too.
    const metrics = await (await fetch(a.url("/metrics"))).text();
    assert.match(metrics, /pilotfish_redis_link_up\{link="fleet"\} 1/);
    for (const shot of ["fleet-desktop.png", "fleet-phone.png"]) {
      assert.ok((await Deno.stat(`${OUTPUT}${shot}`)).size > 10_000, shot);
    }
  } finally {
    for (const d of daemons) await d.stop();
    await upstream.close();
    await redis.stop();
  }
});
