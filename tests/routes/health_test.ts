import assert from "node:assert/strict";
import { createAwsCredentialProvider } from "../../src/providers/bedrock/credentials.ts";
import { createBedrockAdapter } from "../../src/providers/bedrock/adapter.ts";
import { createRoutingState } from "../../src/routing/mod.ts";
import { fakeSources } from "../providers/bedrock/helpers.ts";
import { closedPort, type InProcessGateway, startGateway } from "../helpers/in_process.ts";
import { SANITIZE } from "../helpers/sanitize.ts";

interface HealthLine {
  status: string;
  reason?: string;
  unreachable_since?: number;
  last_failure_at?: number;
  consecutive_failures?: number;
  baseURL: string;
}

async function providersOf(gw: InProcessGateway): Promise<Record<string, HealthLine>> {
  const res = await fetch(gw.url("/health"));
  assert.equal(res.status, 200);
  const json = await res.json();
  // llm-proxy's shape stays: the daemon's own status on top, providers keyed by name.
  assert.equal(json.status, "healthy");
  assert.equal(typeof json.timestamp, "number");
  return json.providers;
}

function chat(gw: InProcessGateway, model: string, extra: Record<string, unknown> = {}) {
  return fetch(gw.url("/v1/chat/completions"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], ...extra }),
  });
}

/** An OpenAI-compatible upstream on `port` answering every request with `status`. */
function upstreamOn(port: number, status = 200): Deno.HttpServer {
  return Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    return Response.json(
      status === 200
        ? {
          id: "chatcmpl-1",
          object: "chat.completion",
          created: 1,
          model: "m",
          choices: [{
            index: 0,
            message: { role: "assistant", content: "ok" },
            finish_reason: "stop",
          }],
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        }
        : { error: { message: "boom", type: "server_error" } },
      { status },
    );
  });
}

Deno.test("/health reports providers without a usable key as unconfigured", async () => {
  const gw = startGateway(
    `
providers:
  mock: {}
  keyed: { type: openai, base_url: "http://127.0.0.1:9/v1", keys: [{ key: sk-1 }] }
  nokey: { type: openai, base_url: "http://127.0.0.1:9/v1" }
  blank: { type: openai, base_url: "http://127.0.0.1:9/v1", keys: [{ key: "\${UNSET_KEY}" }] }
  forwarding:
    type: openai
    base_url: "http://127.0.0.1:9/v1"
    credential_mode: passthrough
  anthropic: {}
  ollama: {}
  bedrock: { region: us-east-1 }
`,
  );
  try {
    const p = await providersOf(gw);
    assert.equal(p.mock?.status, "healthy");
    assert.equal(p.keyed?.status, "healthy");
    assert.equal(p.keyed?.reason, undefined);
    for (const name of ["nokey", "blank", "anthropic"]) {
      assert.equal(p[name]?.status, "unconfigured", name);
      assert.match(p[name]?.reason ?? "", new RegExp(`providers\\.${name}\\.keys`));
    }
    // The client's credential is what a passthrough provider uses: nothing to configure.
    assert.equal(p.forwarding?.status, "healthy");
    // A local server that takes no key.
    assert.equal(p.ollama?.status, "healthy");
    // Bedrock without `sign`: clients sign their own /bedrock/* calls.
    assert.equal(p.bedrock?.status, "healthy");
  } finally {
    await gw.close();
  }
});

Deno.test("/health reports Bedrock signing without AWS credentials as unconfigured", async () => {
  const gw = startGateway(`
providers:
  signer: { type: bedrock, sign: true, region: us-east-1, endpoint: "http://127.0.0.1:9" }
  signed: { type: bedrock, sign: true, region: us-east-1, endpoint: "http://127.0.0.1:9" }
`);
  try {
    // The adapters with fixed credential sources instead of the test process's own.
    const rt = gw.runtime;
    const adapters = rt.adapters as Map<string, unknown>;
    const deps = { fetch: rt.fetch, redact: rt.redact, random: rt.random };
    adapters.set(
      "signer",
      createBedrockAdapter(
        rt.config.providers.signer!,
        deps,
        createAwsCredentialProvider("signer", fakeSources({})),
      ),
    );
    adapters.set(
      "signed",
      createBedrockAdapter(
        rt.config.providers.signed!,
        deps,
        createAwsCredentialProvider(
          "signed",
          fakeSources({ AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "secret" }),
        ),
      ),
    );
    const p = await providersOf(gw);
    assert.equal(p.signer?.status, "unconfigured");
    assert.match(p.signer?.reason ?? "", /AWS_ACCESS_KEY_ID/);
    assert.equal(p.signed?.status, "healthy");
  } finally {
    await gw.close();
  }
});

Deno.test({
  name: "/health marks a provider unreachable after a refused connection, until one connects",
  ...SANITIZE,
  async fn(t) {
    const port = closedPort();
    const errPort = closedPort();
    const erroring = upstreamOn(errPort, 500);
    const gw = startGateway(`
providers:
  flaky: { type: openai, base_url: "http://127.0.0.1:${port}/v1", keys: [{ key: sk-1 }] }
  erroring: { type: openai, base_url: "http://127.0.0.1:${errPort}/v1", keys: [{ key: sk-2 }] }
routing:
  failover: { enabled: false }
`);
    let recovered: Deno.HttpServer | undefined;
    try {
      await t.step("healthy before any traffic", async () => {
        assert.equal((await providersOf(gw)).flaky?.status, "healthy");
      });

      await t.step("a refused connection makes it unreachable", async () => {
        const res = await chat(gw, "flaky/gpt-4o-mini");
        assert.equal(res.status, 502);
        await res.body?.cancel();
        const line = (await providersOf(gw)).flaky!;
        assert.equal(line.status, "unreachable");
        assert.equal(line.reason, "connection refused");
        assert.equal(line.consecutive_failures, 1);
        assert.equal(typeof line.unreachable_since, "number");
        assert.equal(line.baseURL, `http://127.0.0.1:${port}/v1`);
      });

      await t.step("native passthrough calls count too", async () => {
        const res = await fetch(gw.url("/native/flaky/models"));
        assert.equal(res.status, 502);
        await res.body?.cancel();
        const line = (await providersOf(gw)).flaky!;
        assert.equal(line.status, "unreachable");
        assert.equal(line.consecutive_failures, 2);
      });

      await t.step("an HTTP error status is a reachable upstream", async () => {
        const res = await chat(gw, "erroring/gpt-4o-mini");
        assert.equal(res.status, 500);
        await res.body?.cancel();
        assert.equal((await providersOf(gw)).erroring?.status, "healthy");
      });

      await t.step("a call that connects makes it healthy again", async () => {
        recovered = upstreamOn(port);
        const res = await chat(gw, "flaky/gpt-4o-mini");
        assert.equal(res.status, 200);
        assert.equal((await res.json()).choices[0].message.content, "ok");
        const line = (await providersOf(gw)).flaky!;
        assert.equal(line.status, "healthy");
        assert.equal(line.reason, undefined);
        assert.equal(line.consecutive_failures, undefined);
      });
    } finally {
      await gw.close();
      await erroring.shutdown();
      await recovered?.shutdown();
    }
  },
});

Deno.test({
  name: "/health: a timeout is not unreachable (a slow model is still a reachable host)",
  ...SANITIZE,
  async fn() {
    const port = closedPort();
    const { promise: released, resolve: release } = Promise.withResolvers<void>();
    const hanging = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async () => {
      await released;
      return new Response(null, { status: 204 });
    });
    const gw = startGateway(`
providers:
  slow: { type: openai, base_url: "http://127.0.0.1:${port}/v1", keys: [{ key: sk-1 }] }
`);
    try {
      const res = await chat(gw, "slow/gpt-4o-mini", { "x-gateway": { timeout: 0.2 } });
      assert.equal(res.status, 504);
      await res.body?.cancel();
      assert.equal((await providersOf(gw)).slow?.status, "healthy");
    } finally {
      release();
      await gw.close();
      await hanging.shutdown();
    }
  },
});

Deno.test("RoutingState keeps a connect-failure streak per origin and clears it on a reach", () => {
  let now = 1_000;
  const state = createRoutingState(() => now);
  assert.equal(state.unreachableSince("p"), null);
  state.reached("p"); // nothing recorded: a no-op
  state.unreachable("p", "http://a:1", "connection refused");
  now = 2_000;
  state.unreachable("p", "http://a:1", "connection refused");
  assert.deepEqual(state.unreachableSince("p"), {
    origin: "http://a:1",
    reason: "connection refused",
    since: 1_000,
    at: 2_000,
    failures: 2,
  });
  // Another host (the provider moved on reload) starts a new streak.
  now = 3_000;
  state.unreachable("p", "http://b:1", "DNS lookup failed");
  assert.equal(state.unreachableSince("p")?.since, 3_000);
  assert.equal(state.unreachableSince("p")?.failures, 1);
  state.reached("other");
  assert.notEqual(state.unreachableSince("p"), null);
  state.reached("p");
  assert.equal(state.unreachableSince("p"), null);
});

Deno.test("/health ignores a failure recorded against a host the provider no longer uses", async () => {
  const gw = startGateway(`
providers:
  moved: { type: openai, base_url: "http://127.0.0.1:9/v1", keys: [{ key: sk-1 }] }
`);
  try {
    gw.runtime.routing.unreachable("moved", "http://10.0.0.1:8080", "connection refused");
    assert.equal((await providersOf(gw)).moved?.status, "healthy");
    gw.runtime.routing.unreachable("moved", "http://127.0.0.1:9", "connection refused");
    assert.equal((await providersOf(gw)).moved?.status, "unreachable");
  } finally {
    await gw.close();
  }
});

Deno.test("/health provider lines carry llm-proxy's fields: body_parsing, and Bedrock's region and auth", async () => {
  const gw = startGateway(`
providers:
  mock: {}
  bedrock: { enabled: true, region: eu-central-1 }
`);
  try {
    const body = await (await gw.request("/health")).json() as {
      providers: Record<string, Record<string, unknown>>;
    };
    assert.equal(body.providers.mock?.body_parsing, true);
    assert.equal(body.providers.mock?.streaming_support, true);
    assert.equal(body.providers.bedrock?.region, "eu-central-1");
    assert.equal(body.providers.bedrock?.auth, "client_sigv4_passthrough");
  } finally {
    await gw.close();
  }
});

Deno.test("/health features follow llm-proxy's switches: rate_limiting enabled with every limit 0, cost_tracking off", async () => {
  const config = `
providers: { mock: {} }
pricing:
  models: { "mock/echo": { input: 1000, output: 1000 } }
features:
  cost_tracking: { enabled: false }
  rate_limiting:
    enabled: true
    backend: memory
    limits: { requests_per_minute: 0, tokens_per_minute: 0 }
`;
  const { parseConfigText } = await import("../../src/config/mod.ts");
  assert.deepEqual(parseConfigText(config, () => undefined, "x.yml").warnings, []);
  const gw = startGateway(config);
  try {
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "mock/echo", messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    // Cost tracking off: no per-request cost fields.
    assert.equal(res.headers.get("x-pilotfish-cost-usd"), null);
    assert.match(gw.logText(), /"request_id"/);
    assert.doesNotMatch(gw.logText(), /cost_usd/);
    const health = await (await gw.request("/health")).json();
    assert.equal(health.features.rate_limiting, true);
    assert.equal(health.features.cost_tracking, false);
  } finally {
    await gw.close();
  }
  // The default: cost tracked, its header sent.
  const on = startGateway(config.replace("cost_tracking: { enabled: false }", ""));
  try {
    const res = await on.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "mock/echo", messages: [{ role: "user", content: "hi" }] }),
    });
    await res.body?.cancel();
    assert.ok(res.headers.get("x-pilotfish-cost-usd"));
    assert.equal((await (await on.request("/health")).json()).features.cost_tracking, true);
  } finally {
    await on.close();
  }
});
