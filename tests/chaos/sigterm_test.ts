// deno-lint-ignore-file no-console -- the suite prints its counts.
/**
 * SIGTERM under load: requests and streams in flight finish (drain), a stream still stalled
 * when `drain_timeout` runs out ends with an in-format error event and its log line, requests after the signal
 * are refused at once (no listener) rather than hung, and the daemon exits 0 within its drain
 * budget.
 */
import assert from "node:assert/strict";
import { startDaemon } from "../integration/daemon.ts";
import { startChaosUpstream } from "../helpers/chaos_upstream.ts";
import { chaosScale, chat, requestLines, type Result, tally } from "./client.ts";

const SCALE = chaosScale();

Deno.test("chaos: SIGTERM under load drains in-flight requests and exits 0", async () => {
  const upstream = startChaosUpstream({ dripMs: 30 });
  const daemon = await startDaemon(`
server:
  host: 127.0.0.1
  port: {{PORT}}
  socket: {{SOCKET}}
  drain_timeout: 2s
providers:
  chaos:
    type: openai
    base_url: ${upstream.url}
    keys: [{ key: sk-chaos-upstream }]
    timeout: 5s
`);
  try {
    const url = daemon.url("/v1/chat/completions");
    const n = 8 * SCALE;
    const inflight: Promise<Result>[] = [];
    for (let i = 0; i < n; i++) {
      inflight.push(chat(url, "chaos/drip_stream", { stream: true, deadlineMs: 10_000 }));
      inflight.push(chat(url, "chaos/drip", { deadlineMs: 10_000 }));
    }
    // One stream that will still be stalled when the drain budget runs out.
    const stalled = chat(url, "chaos/stall_mid_stream", { stream: true, deadlineMs: 10_000 });
    await upstream.arrived(2 * n + 1);
    const signalled = performance.now();
    daemon.signal("SIGTERM");
    await daemon.waitForLog("shutting down");
    // After the signal: refused (the listener is gone) or an in-format 503, never a hang.
    const late = await chat(url, "chaos/ok", { deadlineMs: 5_000 });
    const results = await Promise.all(inflight);
    const stall = await stalled;
    const status = await daemon.exited;
    const lines = requestLines(daemon.logs());
    const drained = lines.filter((l) => l.status === 200 && l.outcome !== "error").length;
    const stalledLines = lines.filter((l) => l.model === "stall_mid_stream").length;
    const exitMs = Math.round(performance.now() - signalled);
    console.log(
      `chaos sigterm: in flight ${JSON.stringify(tally(results))}, stalled stream ${stall.ending}` +
        ` after ${stall.ms} ms (its log lines: ${stalledLines}), late request ${late.ending},` +
        ` exit ${status.code} after ${exitMs} ms`,
    );
    assert.deepEqual(
      results.filter((r) => r.ending !== "ok").map((r) => `${r.ending} ${r.detail}`),
      [],
    );
    // Every drained request has its access-log line (and its usage with it).
    assert.ok(drained >= 2 * n, `${drained} log lines for ${2 * n} drained requests`);
    assert.ok(["broken", "error"].includes(late.ending), `late request: ${late.ending}`);
    assert.notEqual(stall.ending, "hang");
    assert.equal(status.code, 0);
    assert.ok(exitMs < 2_000 + 3_000, `exit took ${exitMs} ms`);
    // The stalled stream cannot finish: it ends with an in-format error event naming the
    // shutdown, and its log line records the real outcome.
    assert.equal(stall.ending, "stream_error", `stalled stream: ${stall.ending} ${stall.detail}`);
    assert.match(stall.detail, /shutting down/);
    const stalledLine = lines.find((l) => l.model === "stall_mid_stream");
    assert.ok(stalledLine, "the stalled stream has its log line");
    assert.equal(stalledLine.outcome, "error");
    assert.equal(stalledLine.reason, "shutdown");
  } finally {
    // After an exit, stop() only releases the helper's client and directory.
    await daemon.stop();
    await upstream.close();
  }
});
