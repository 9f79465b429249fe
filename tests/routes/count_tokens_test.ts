import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { startFakeAnthropic } from "../fakes/fake_anthropic.ts";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway } from "../helpers/in_process.ts";
import { ADMIN, bearer, createKey } from "../keys/support.ts";

const PROMPT = [{ role: "user" as const, content: "How many tokens is this?" }];

function gateway(anthropicUrl: string, openaiUrl: string, more = "") {
  return startGateway(`
server: { admin_token: ${ADMIN} }
providers:
  anthropic: { base_url: "${anthropicUrl}", keys: [{ key: sk-ant-configured }] }
  openai: { base_url: "${openaiUrl}/v1", keys: [{ key: sk-configured }] }
  compat: { type: openai, base_url: "${openaiUrl}/v1", keys: [{ key: sk-compat }] }
${more}`);
}

Deno.test("count_tokens to Anthropic: the client's body, anthropic-version and anthropic-beta reach it", async () => {
  const anthropic = startFakeAnthropic();
  const openai = startFakeUpstream();
  const gw = gateway(anthropic.url, openai.url);
  try {
    const res = await gw.request("/v1/messages/count_tokens", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "anthropic-version": "2023-01-01",
        "anthropic-beta": "context-management-2025-06-27",
      },
      body: JSON.stringify({
        model: "anthropic/claude-sonnet-4-5",
        messages: PROMPT,
        system: "Be brief.",
        context_management: { edits: [{ type: "clear_tool_uses_20250919" }] },
        output_format: { type: "json_schema", schema: { type: "object" } },
        // A Messages body reused for a count: its generation settings are left out.
        max_tokens: 100,
        temperature: 0.2,
        "x-gateway": { cache: false },
      }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-pilotfish-token-count"), "provider");
    assert.equal(res.headers.get("x-pilotfish-attempts"), "1");
    assert.equal(typeof (await res.json()).input_tokens, "number");
    const sent = anthropic.requests.at(-1)!;
    assert.equal(sent.path, "/v1/messages/count_tokens");
    assert.equal(sent.headers.get("anthropic-version"), "2023-01-01");
    assert.equal(sent.headers.get("anthropic-beta"), "context-management-2025-06-27");
    assert.equal(sent.headers.get("x-api-key"), "sk-ant-configured");
    assert.deepEqual(JSON.parse(sent.body), {
      model: "claude-sonnet-4-5",
      messages: PROMPT,
      system: "Be brief.",
      context_management: { edits: [{ type: "clear_tool_uses_20250919" }] },
      output_format: { type: "json_schema", schema: { type: "object" } },
    });

    // Through the SDK's beta helper, as a client asks for it.
    const client = new Anthropic({ apiKey: "unused", baseURL: gw.url("") });
    const counted = await client.beta.messages.countTokens({
      model: "anthropic/claude-sonnet-4-5",
      betas: ["context-management-2025-06-27"],
      messages: PROMPT,
      context_management: { edits: [{ type: "clear_tool_uses_20250919" }] },
    });
    assert.equal(typeof counted.input_tokens, "number");
    const viaSdk = anthropic.requests.at(-1)!;
    assert.match(viaSdk.headers.get("anthropic-beta") ?? "", /context-management-2025-06-27/);
    assert.ok("context_management" in JSON.parse(viaSdk.body));
  } finally {
    await gw.close();
    await anthropic.close();
    await openai.close();
  }
});

Deno.test("the counting routes' log lines: their own route, and Anthropic's request-id as upstream_request_id", async () => {
  const anthropic = startFakeAnthropic();
  const openai = startFakeUpstream();
  const gw = gateway(anthropic.url, openai.url);
  try {
    for (
      const [path, body] of [
        ["/v1/messages/count_tokens", { model: "anthropic/claude-sonnet-4-5", messages: PROMPT }],
        ["/v1/responses/input_tokens", { model: "compat/gpt-4o", input: "How many?" }],
      ] as const
    ) {
      const res = await gw.request(path, { method: "POST", body: JSON.stringify(body) });
      assert.equal(res.status, 200, path);
      await res.body?.cancel();
    }
    await gw.waitForLog('"route":"/v1/responses/input_tokens"');
    const lines = gw.logs.filter((l) => l.includes('"msg":"request"')).map((l) => JSON.parse(l));
    const count = lines.find((l) => l.route === "/v1/messages/count_tokens");
    assert.equal(count?.upstream_request_id, "req_count_0001", JSON.stringify(count));
    assert.ok(lines.some((l) => l.route === "/v1/responses/input_tokens"));
    assert.ok(!lines.some((l) => l.route === "/v1/responses/:id"));
  } finally {
    await gw.close();
    await anthropic.close();
    await openai.close();
  }
});

Deno.test("count_tokens translated from chat: only the prompt's fields, no client headers", async () => {
  const anthropic = startFakeAnthropic();
  const openai = startFakeUpstream();
  const gw = gateway(anthropic.url, openai.url);
  try {
    const res = await gw.request("/v1/responses/input_tokens", {
      method: "POST",
      headers: { "content-type": "application/json", "anthropic-beta": "not-for-this-route" },
      body: JSON.stringify({
        model: "anthropic/claude-sonnet-4-5",
        input: "How many tokens is this?",
        temperature: 0.5,
      }),
    });
    assert.equal(res.status, 200);
    const sent = anthropic.requests.at(-1)!;
    assert.equal(sent.headers.get("anthropic-beta"), null);
    assert.deepEqual(Object.keys(JSON.parse(sent.body)).sort(), ["messages", "model"]);
  } finally {
    await gw.close();
    await anthropic.close();
    await openai.close();
  }
});

Deno.test("a local estimate counts no upstream call: x-pilotfish-attempts 0", async () => {
  const anthropic = startFakeAnthropic();
  const openai = startFakeUpstream();
  const gw = gateway(anthropic.url, openai.url);
  try {
    for (
      const [path, body] of [
        ["/v1/messages/count_tokens", { model: "compat/gpt-4o", messages: PROMPT }],
        ["/v1/responses/input_tokens", { model: "compat/gpt-4o", input: "How many?" }],
      ] as const
    ) {
      const res = await gw.request(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 200, path);
      await res.body?.cancel();
      assert.equal(res.headers.get("x-pilotfish-token-count"), "estimate", path);
      assert.equal(res.headers.get("x-pilotfish-provider"), "compat", path);
      assert.equal(res.headers.get("x-pilotfish-attempts"), "0", path);
    }
    assert.equal(openai.requests.length, 0);
  } finally {
    await gw.close();
    await anthropic.close();
    await openai.close();
  }
});

Deno.test("the counting routes keep an app key to its allowed models and providers (403, no call)", async () => {
  const anthropic = startFakeAnthropic();
  const openai = startFakeUpstream();
  const gw = gateway(
    anthropic.url,
    openai.url,
    `routing:
  aliases: { fast: openai/gpt-4o }
app_keys:
  require_key: true
  persistence: { enabled: false }
`,
  );
  try {
    const narrow = await createKey(gw, { allowed_models: ["openai/gpt-4o", "fast"] });
    const byProvider = await createKey(gw, { allowed_providers: ["openai"] });
    const ask = async (path: string, body: Record<string, unknown>, key: string) => {
      const res = await gw.request(path, {
        method: "POST",
        headers: { "content-type": "application/json", ...bearer(key) },
        body: JSON.stringify(body),
      });
      return { status: res.status, json: await res.json() };
    };
    const claude = "anthropic/claude-sonnet-4-5";
    for (const key of [narrow.key, byProvider.key]) {
      const m = await ask("/v1/messages/count_tokens", { model: claude, messages: PROMPT }, key);
      assert.equal(m.status, 403);
      assert.equal(m.json.type, "error");
      assert.equal(m.json.error.type, "permission_error");
      assert.match(m.json.error.message, /not allowed/);
      const r = await ask("/v1/responses/input_tokens", { model: claude, input: "hi" }, key);
      assert.equal(r.status, 403);
      assert.equal(r.json.error.type, "permission_error");
    }
    assert.equal(anthropic.requests.length, 0);
    // What the key may use is counted, under its own name or an alias.
    for (const model of ["openai/gpt-4o", "fast"]) {
      const ok = await ask("/v1/messages/count_tokens", { model, messages: PROMPT }, narrow.key);
      assert.equal(ok.status, 200, model);
    }
  } finally {
    await gw.close();
    await anthropic.close();
    await openai.close();
  }
});

Deno.test("a body nested too deeply to forward is a 400, not a provider failure the breaker counts", async () => {
  const anthropic = startFakeAnthropic();
  const openai = startFakeUpstream();
  const gw = gateway(
    anthropic.url,
    openai.url,
    "features: { circuit_breaker: { enabled: true, failure_threshold: 1 } }",
  );
  try {
    // JSON.parse takes any depth; the re-serialization for the upstream does not.
    const depth = 50_000;
    const schema = '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
    const res = await gw.request("/v1/messages/count_tokens", {
      method: "POST",
      headers: { "content-type": "application/json", "anthropic-version": "2023-06-01" },
      body: `{"model":"anthropic/claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}],` +
        `"tools":[{"name":"f","input_schema":${schema}}]}`,
    });
    assert.equal(res.status, 400);
    const body = await res.json();
    assert.equal(body.type, "error");
    assert.equal(body.error.type, "invalid_request_error");
    assert.match(body.error.message, /nested too deeply/);
    assert.equal(res.headers.get("x-pilotfish-attempts"), "0");
    assert.equal(anthropic.requests.length, 0);
    // Not retried, not counted: the next client's count still reaches Anthropic.
    const client = new Anthropic({ baseURL: gw.url(""), apiKey: "unused", maxRetries: 0 });
    const count = await client.messages.countTokens({
      model: "anthropic/claude-sonnet-4-5",
      messages: PROMPT,
    });
    assert.equal(typeof count.input_tokens, "number");
    assert.equal(anthropic.requests.length, 1);
  } finally {
    await gw.close();
    await anthropic.close();
    await openai.close();
  }
});
