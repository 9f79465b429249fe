import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { startGateway } from "../helpers/in_process.ts";

const CONFIG = `
providers:
  mock: {}
  claude: { type: anthropic, base_url: "http://127.0.0.1:9", keys: [{ key: sk-ant-x }], models: [claude-sonnet-4-5, claude-haiku-4-5] }
routing:
  aliases: { fast: mock/echo, smart: claude/claude-sonnet-4-5 }
`;

Deno.test("GET /v1/models for an Anthropic SDK: its page and model shapes, paged by limit and ids", async () => {
  const gw = startGateway(CONFIG);
  try {
    const anthropic = new Anthropic({ apiKey: "unused", baseURL: gw.url("") });
    const openai = new OpenAI({ apiKey: "unused", baseURL: gw.url("/v1") });
    const all: string[] = [];
    for await (const m of openai.models.list()) all.push(m.id);
    assert.ok(all.length >= 5);

    // Auto-pagination through has_more / last_id gets every model, in the same order.
    const paged: string[] = [];
    for await (const m of anthropic.models.list({ limit: 2 })) {
      assert.equal(m.type, "model");
      assert.equal(m.display_name, m.id);
      assert.equal(m.created_at, "1970-01-01T00:00:00Z");
      paged.push(m.id);
    }
    assert.deepEqual(paged, all);

    const first = await anthropic.models.list({ limit: 2 });
    assert.equal(first.has_more, true);
    assert.equal(first.first_id, all[0]);
    assert.equal(first.last_id, all[1]);
    const before = await gw.request(`/v1/models?before_id=${all[3]}&limit=2`, {
      headers: { "anthropic-version": "2023-06-01" },
    });
    const back = await before.json();
    assert.deepEqual(back.data.map((m: { id: string }) => m.id), [all[1], all[2]]);
    assert.equal(back.has_more, true);

    const one = await anthropic.models.retrieve("smart");
    assert.deepEqual(one, {
      type: "model",
      id: "smart",
      display_name: "smart",
      created_at: "1970-01-01T00:00:00Z",
    });
    // An OpenAI client still gets OpenAI's shape.
    assert.equal((await openai.models.retrieve("smart")).object, "model");
  } finally {
    await gw.close();
  }
});

Deno.test("GET /v1/models for an Anthropic SDK: errors in Anthropic's shape (unknown id, bad limit, no key)", async () => {
  const gw = startGateway(CONFIG);
  const keyed = startGateway(`${CONFIG}
app_keys:
  require_key: true
  persistence: { enabled: false }
`);
  try {
    const anthropic = new Anthropic({ apiKey: "unused", baseURL: gw.url(""), maxRetries: 0 });
    await assert.rejects(
      () => anthropic.models.retrieve("nope/nothing"),
      (err: unknown) =>
        err instanceof Anthropic.NotFoundError && /not served here/.test(err.message),
    );
    const bad = await gw.request("/v1/models?limit=0", {
      headers: { "anthropic-version": "2023-06-01" },
    });
    assert.equal(bad.status, 400);
    const body = await bad.json();
    assert.equal(body.type, "error");
    assert.equal(body.error.type, "invalid_request_error");
    const unknownAfter = await gw.request("/v1/models?after_id=nope", {
      headers: { "anthropic-version": "2023-06-01" },
    });
    assert.equal(unknownAfter.status, 400);
    await unknownAfter.body?.cancel();
    // A wrong method too; an OpenAI client's 405 stays OpenAI's.
    for (const path of ["/v1/models", "/v1/models/anthropic/claude-x"]) {
      const wrong = await gw.request(path, {
        method: "DELETE",
        headers: { "anthropic-version": "2023-06-01" },
      });
      assert.equal(wrong.status, 405);
      assert.equal(wrong.headers.get("allow"), "GET");
      const shape = await wrong.json();
      assert.equal(shape.type, "error", path);
      assert.equal(shape.error.type, "invalid_request_error");
    }
    const openaiWrong = await gw.request("/v1/models", { method: "POST" });
    assert.equal(openaiWrong.status, 405);
    assert.equal((await openaiWrong.json()).error.code, "method_not_allowed");

    const denied = new Anthropic({ apiKey: "sk-not-a-key", baseURL: keyed.url(""), maxRetries: 0 });
    await assert.rejects(
      () => denied.models.list(),
      (err: unknown) => err instanceof Anthropic.AuthenticationError,
    );
    const raw = await keyed.request("/v1/models", {
      headers: { "anthropic-version": "2023-06-01" },
    });
    assert.equal((await raw.json()).error.type, "authentication_error");
  } finally {
    await gw.close();
    await keyed.close();
  }
});
