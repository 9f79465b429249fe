/**
 * The three seed projects' configs, committed verbatim under tests/fixtures/seeds/: each
 * passes `--check --strict`, starts, and serves a request through a local fake upstream
 * (a copy with the provider URLs and listen address replaced) with the meaning its README
 * gives.
 */
import assert from "node:assert/strict";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { chatBody, runCli, startDaemon } from "../integration/daemon.ts";

const FIXTURES = new URL("../fixtures/seeds/", import.meta.url).pathname;
const read = (name: string) => Deno.readTextFile(`${FIXTURES}${name}`);
const KEYS = {
  OPENAI_API_KEY: "sk-seed-openai-000001",
  ANTHROPIC_API_KEY: "sk-ant-seed-000002",
  OPENROUTER_API_KEY: "sk-or-seed-000003",
};

Deno.test("the seed configs pass --check --strict unchanged", async (t) => {
  await t.step("Butter's config.example.yaml: no warnings", async () => {
    const r = await runCli(["--check", "--strict", "--config", `${FIXTURES}butter.yaml`], KEYS);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
  });
  await t.step("llm-proxy's features blocks: no warnings, a note on its providers", async () => {
    const r = await runCli(["--check", "--strict", "--config", `${FIXTURES}llm-proxy.yaml`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /llm-proxy dialect/);
    assert.equal(
      r.stderr,
      "note: Read as an llm-proxy file: openai, anthropic and gemini are served at their public " +
        "hosts on the client's own credential (not in the file: openai, anthropic, gemini); give " +
        "a provider base_url or keys to serve only what the file names\n",
    );
  });
  await t.step(
    "llm-gateway's reference: one warning, its chain names a provider it lacks",
    async () => {
      const r = await runCli(
        ["--check", "--strict", "--config", `${FIXTURES}llm-gateway.yaml`],
        KEYS,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /llm-gateway dialect/);
      assert.equal(
        r.stderr,
        'warning: routing.fallbackChain[1]: Provider "anthropic" is not configured; skipped (configured: openai)\n',
      );
    },
  );
});

Deno.test("Butter's config serves gpt-4o through openai and bare models through the default provider", async () => {
  const upstream = startFakeUpstream();
  const yaml = (await read("butter.yaml"))
    .replace('address: ":8080"', 'address: "127.0.0.1:{{PORT}}"\n  socket: {{SOCKET}}')
    .replaceAll(/https:\/\/[a-z.]+\/(api\/)?v1/g, `${upstream.url}/v1`);
  const d = await startDaemon(yaml, { env: KEYS });
  try {
    let res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("gpt-4o"),
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(res.headers.get("x-pilotfish-provider"), "openai");
    await res.body?.cancel();
    assert.equal(
      upstream.requests.at(-1)?.headers.get("authorization"),
      `Bearer ${KEYS.OPENAI_API_KEY}`,
    );

    res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("some-model"),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-pilotfish-provider"), "openrouter");
    await res.body?.cancel();
  } finally {
    await d.stop();
    await upstream.close();
  }
});

Deno.test("llm-gateway's reference config: listed models, modelMappings aliases and CORS work", async () => {
  const upstream = startFakeUpstream();
  const yaml = (await read("llm-gateway.yaml"))
    .replace("port: 8080", "port: {{PORT}}\n  socket: {{SOCKET}}")
    .replace("host: 0.0.0.0", "host: 127.0.0.1")
    .replace("https://api.openai.com/v1", `${upstream.url}/v1`);
  const d = await startDaemon(yaml, { env: KEYS });
  try {
    let res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("gpt-4"),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-pilotfish-provider"), "openai");
    await res.body?.cancel();
    assert.equal(
      upstream.requests.at(-1)?.headers.get("authorization"),
      `Bearer ${KEYS.OPENAI_API_KEY}`,
    );

    res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      headers: { origin: "https://app.example" },
      body: chatBody("fast"),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("access-control-allow-origin"), "*", "cors.allowedOrigins: [*]");
    await res.body?.cancel();
    assert.equal(JSON.parse(upstream.requests.at(-1)?.body ?? "{}").model, "gpt-3.5-turbo");

    const before = upstream.requests.length;
    const pre = await fetch(d.url("/v1/chat/completions"), {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST" },
    });
    await pre.body?.cancel();
    assert.equal(pre.status, 204);
    assert.equal(upstream.requests.length, before);
  } finally {
    await d.stop();
    await upstream.close();
  }
});

Deno.test("llm-proxy's features blocks: passthrough with the client's key, breaker on in /health", async () => {
  const upstream = startFakeUpstream();
  const yaml = `${await read("llm-proxy.yaml")}
server:
  port: {{PORT}}
  socket: {{SOCKET}}
providers:
  openai:
    base_url: ${upstream.url}/v1
`;
  const d = await startDaemon(yaml);
  try {
    const res = await fetch(d.url("/openai/v1/chat/completions"), {
      method: "POST",
      headers: { authorization: "Bearer sk-client-own-key-0001" },
      body: chatBody("gpt-4o-mini"),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.equal(
      upstream.requests.at(-1)?.headers.get("authorization"),
      "Bearer sk-client-own-key-0001",
    );
    const health = await (await fetch(d.url("/health"))).json();
    assert.equal(health.circuit_breaker?.enabled, true);
  } finally {
    await d.stop();
    await upstream.close();
  }
});
