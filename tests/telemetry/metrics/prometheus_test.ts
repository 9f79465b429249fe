/**
 * A real Prometheus (Debian `prometheus`) scrapes an in-process gateway's `/metrics` on a
 * free port; PromQL over its HTTP API checks the token count, the cost and a breaker
 * transition after scripted traffic.
 */
import assert from "node:assert/strict";
import { startGateway } from "../../helpers/in_process.ts";
import { startFakeUpstream } from "../../fakes/fake_upstream.ts";
import { freePort } from "../../integration/daemon.ts";
import { parseConfigText } from "../../../src/config/mod.ts";
import { preloadTelemetry } from "../../../src/telemetry/hub.ts";

const PROMETHEUS = Deno.env.get("PROMETHEUS_PATH") ?? "/usr/bin/prometheus";

async function startPrometheus(target: string) {
  const dir = await Deno.makeTempDir({ prefix: "pf-prometheus-" });
  const port = freePort();
  await Deno.writeTextFile(
    `${dir}/prometheus.yml`,
    `global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: pilotfish
    static_configs: [{ targets: ["${target}"] }]
`,
  );
  const child = new Deno.Command(PROMETHEUS, {
    args: [
      `--config.file=${dir}/prometheus.yml`,
      `--storage.tsdb.path=${dir}/data`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const logs = (async () => {
    let text = "";
    for await (const part of child.stderr.pipeThrough(new TextDecoderStream())) text += part;
    return text;
  })();
  const api = `http://127.0.0.1:${port}`;
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
    await logs;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  return { api, stop, logs };
}

/** Poll `check` until it returns a value (Prometheus scrapes on its own schedule). */
async function eventually<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + 30_000;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    // Each round is one HTTP round trip to Prometheus; its scrape interval is 1 s.
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
}

async function query(api: string, promql: string): Promise<number | undefined> {
  const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = await res.json() as {
    status: string;
    data: { result: { value: [number, string] }[] };
  };
  assert.equal(body.status, "success");
  const v = body.data.result[0]?.value[1];
  return v === undefined ? undefined : Number(v);
}

Deno.test("Prometheus scrapes /metrics: tokens, cost and a breaker transition by PromQL", async () => {
  const up = startFakeUpstream();
  const yaml = `
providers:
  up:
    base_url: "${up.url}/v1"
    keys: [{ key: sk-prom-0001 }]
    models: [gpt-4o-mini]
features:
  circuit_breaker: { enabled: true, failure_threshold: 1, window_seconds: 60, cooldown_seconds: 30 }
pricing:
  # 7 input and 3 output tokens per answer (the fake's usage): $0.0125 each.
  models: { "up/gpt-4o-mini": { input: 500, output: 3000 } }
`;
  await preloadTelemetry(parseConfigText(yaml, () => undefined, "t.yaml").config);
  const gw = startGateway(yaml);
  const target = new URL(gw.url("/")).host;
  const prom = await startPrometheus(target);
  try {
    up.script({ kind: "json" });
    for (let i = 0; i < 3; i++) {
      const res = await fetch(gw.url("/v1/chat/completions"), {
        method: "POST",
        body: JSON.stringify({
          model: "up/gpt-4o-mini",
          messages: [{ role: "user", content: "hi" }],
        }),
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    up.script({ kind: "json", status: 500, body: { error: { message: "outage" } } });
    const res = await fetch(gw.url("/v1/chat/completions"), {
      method: "POST",
      body: JSON.stringify({ model: "up/gpt-4o-mini", messages: [{ role: "user", content: "x" }] }),
    });
    assert.equal(res.status, 503);
    await res.body?.cancel();

    // The target is healthy: scraped without a parse error.
    await eventually("a healthy target", async () => {
      const r = await (await fetch(`${prom.api}/api/v1/targets`)).json() as {
        data: { activeTargets: { health: string; lastError: string }[] };
      };
      const t = r.data.activeTargets[0];
      if (t?.health === "up") {
        assert.equal(t.lastError, "");
        return true;
      }
      return undefined;
    });
    const tokens = await eventually("tokens", async () => {
      const v = await query(prom.api, "llm_gateway_tokens_total");
      return v === 30 ? v : undefined;
    });
    assert.equal(tokens, 30);
    assert.equal(
      await query(prom.api, 'sum(gen_ai_client_token_usage_sum{gen_ai_token_type="output"})'),
      9,
    );
    // Three answers at $0.0125, summed exactly (in nano-dollars), not as float residue.
    assert.equal(await query(prom.api, "llm_gateway_cost_total"), 0.0375);
    assert.equal(
      await query(prom.api, 'llm_gateway_model_cost_total{model="gpt-4o-mini"}'),
      0.0375,
    );
    assert.equal(
      await query(prom.api, 'pilotfish_breaker_transitions_total{provider="up",to="open"}'),
      1,
    );
    assert.equal(await query(prom.api, 'pilotfish_breaker_state{key="up:gpt-4o-mini"}'), 2);
    assert.equal(await query(prom.api, 'llm_gateway_provider_requests_total{provider="up"}'), 4);
  } finally {
    await prom.stop();
    await gw.close();
    await up.close();
  }
});
