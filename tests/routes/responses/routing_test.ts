/**
 * `/v1/responses` and the counting routes inside the pipeline: failover across providers,
 * a conversation kept by the gateway continued on a native provider, the counting routes'
 * bad input in their own formats, and the config keys they add.
 */
import assert from "node:assert/strict";
import { ConfigError, parseConfigText } from "../../../src/config/mod.ts";
import { startFakeUpstream } from "../../fakes/fake_upstream.ts";
import { startFakeAnthropic } from "../../fakes/fake_anthropic.ts";
import { startGateway } from "../../helpers/in_process.ts";

const post = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: typeof body === "string" ? body : JSON.stringify(body),
});

Deno.test("/v1/responses fails over like chat completions", async () => {
  const down = startFakeUpstream();
  const up = startFakeUpstream();
  down.script({ kind: "json", status: 503, body: { error: { message: "overloaded" } } });
  const gw = startGateway(`
providers:
  down: { base_url: "${down.url}/v1", keys: [{ key: sk-down-0001 }] }
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-up-0001 }] }
routing:
  models:
    m: { providers: [down, up] }
  failover: { max_retries: 0, backoff: { initial: 1ms, max: 1ms } }
`);
  try {
    const res = await gw.request("/v1/responses", post({ model: "m", input: "hi" }));
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(res.headers.get("x-pilotfish-provider"), "up");
    assert.equal(res.headers.get("x-pilotfish-attempts"), "2");
    assert.equal(body.output[0].content[0].text, "Hello from upstream");
  } finally {
    await gw.close();
    await down.close();
    await up.close();
  }
});

Deno.test("a conversation the gateway kept continues on a native Responses provider", async () => {
  const compat = startFakeUpstream();
  const native = startFakeUpstream();
  const gw = startGateway(`
providers:
  compat: { base_url: "${compat.url}/v1", keys: [{ key: sk-compat-0001 }] }
  selfhosted:
    base_url: "${native.url}/v1"
    keys: [{ key: sk-native-0001 }]
    responses: native
`);
  try {
    const first = await (await gw.request(
      "/v1/responses",
      post({ model: "compat/gpt-4o-mini", instructions: "Be brief.", input: "Hi" }),
    )).json();
    native.script({
      kind: "json",
      body: {
        id: "resp_native",
        object: "response",
        previous_response_id: null,
        output: [],
        usage: null,
      },
    });
    const res = await gw.request(
      "/v1/responses",
      post({ model: "selfhosted/gpt-oss", input: "Again", previous_response_id: first.id }),
    );
    // The provider was given the earlier turns, not the id; the client reads back its id.
    assert.deepEqual(await res.json(), {
      id: "resp_native",
      object: "response",
      previous_response_id: first.id,
      output: [],
      usage: null,
    });
    const sent = native.requests.at(-1)!;
    assert.equal(sent.path, "/v1/responses");
    const body = JSON.parse(sent.body);
    assert.equal(body.previous_response_id, undefined, "the provider never saw that id");
    assert.equal(body.model, "gpt-oss");
    assert.deepEqual(body.input, [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello from upstream" },
      { role: "user", content: "Again" },
    ]);
    // An id the gateway never kept goes to a native provider as is (it keeps its own).
    await gw.request(
      "/v1/responses",
      post({ model: "selfhosted/gpt-oss", input: "x", previous_response_id: "resp_theirs" }),
    );
    assert.equal(JSON.parse(native.requests.at(-1)!.body).previous_response_id, "resp_theirs");
    // Output a translated answer carried (a Gemini thought signature), replayed by the client:
    // the native provider never issued extra_content and does not get it.
    const call = {
      type: "function_call",
      call_id: "call_1",
      name: "f",
      arguments: "{}",
      extra_content: { google: { thought_signature: "sig" } },
    };
    await gw.request(
      "/v1/responses",
      post({
        model: "selfhosted/gpt-oss",
        input: [call, { type: "function_call_output", call_id: "call_1", output: "ok" }],
      }),
    );
    const { extra_content: _extra, ...plain } = call;
    assert.deepEqual(JSON.parse(native.requests.at(-1)!.body).input[0], plain);
    // Streamed: every response object in the events says it, the key split across writes.
    const created = `{"type":"response.created","sequence_number":0,"response":` +
      `{"id":"resp_s","object":"response","status":"in_progress","previous_response_id":null,"output":[]}}`;
    const completed = `{"type":"response.completed","sequence_number":1,"response":` +
      `{"id":"resp_s","object":"response","status":"completed","previous_response_id":null,"output":[],` +
      `"usage":{"input_tokens":3,"output_tokens":0,"total_tokens":3}}}`;
    const sse =
      `event: response.created\ndata: ${created}\n\nevent: response.completed\ndata: ${completed}\n\n`;
    const cut = sse.indexOf("previous_response_id") + 5;
    native.script({ kind: "sse", events: [sse.slice(0, cut), sse.slice(cut)] });
    const streamed = await gw.request(
      "/v1/responses",
      post({
        model: "selfhosted/gpt-oss",
        input: "Once more",
        previous_response_id: first.id,
        stream: true,
      }),
    );
    const events = (await streamed.text()).trim().split("\n\n")
      .map((e) => JSON.parse(e.split("\ndata: ")[1]!));
    assert.deepEqual(events.map((e) => e.response.previous_response_id), [first.id, first.id]);
  } finally {
    await gw.close();
    await compat.close();
    await native.close();
  }
});

Deno.test("GET/DELETE /v1/responses/{id} the gateway did not keep go to the native providers, in order", async () => {
  const first = startFakeUpstream();
  const second = startFakeUpstream();
  const gw = startGateway(`
providers:
  compat: { base_url: "http://compat.invalid/v1", keys: [{ key: sk-compat-0001 }] }
  selfhosted:
    base_url: "${first.url}/v1"
    keys: [{ key: sk-self-0001 }]
    responses: native
  openai: { base_url: "${second.url}/v1", keys: [{ key: sk-openai-0001 }] }
`);
  try {
    // The first native provider does not know it (404): the next one is asked.
    first.script({ kind: "json", status: 404, body: { error: { message: "No response found" } } });
    second.script({ kind: "json", body: { id: "resp_up", object: "response", output: [] } });
    const got = await gw.request("/v1/responses/resp_up");
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("x-pilotfish-provider"), "openai");
    assert.deepEqual(await got.json(), { id: "resp_up", object: "response", output: [] });
    assert.equal(first.requests.at(-1)!.path, "/v1/responses/resp_up");
    const sent = second.requests.at(-1)!;
    assert.equal(sent.method, "GET");
    assert.equal(sent.path, "/v1/responses/resp_up");
    assert.equal(sent.headers.get("authorization"), "Bearer sk-openai-0001");

    second.script({ kind: "json", body: { id: "resp_up", object: "response", deleted: true } });
    const del = await gw.request("/v1/responses/resp_up", { method: "DELETE" });
    assert.equal(del.status, 200);
    assert.equal((await del.json()).deleted, true);
    assert.equal(second.requests.at(-1)!.method, "DELETE");

    // input_items (GET) and cancel (POST) go the same way, the path kept.
    first.script({ kind: "json", status: 404, body: { error: { message: "No response found" } } });
    second.script({ kind: "json", body: { object: "list", data: [], has_more: false } });
    const items = await gw.request("/v1/responses/resp_up/input_items?order=asc");
    assert.equal(items.status, 200);
    assert.equal((await items.json()).object, "list");
    assert.equal(second.requests.at(-1)!.path, "/v1/responses/resp_up/input_items");
    assert.equal(second.requests.at(-1)!.search, "?order=asc");
    first.script({ kind: "json", status: 404, body: { error: { message: "No response found" } } });
    second.script({
      kind: "json",
      body: { id: "resp_up", object: "response", status: "cancelled" },
    });
    const cancel = await gw.request("/v1/responses/resp_up/cancel", { method: "POST" });
    assert.equal(cancel.status, 200);
    assert.equal(second.requests.at(-1)!.method, "POST");
    assert.equal(second.requests.at(-1)!.path, "/v1/responses/resp_up/cancel");
    // Its 400 (not background) is the answer, not "not here".
    first.script({ kind: "json", status: 404, body: { error: { message: "No response found" } } });
    second.script({
      kind: "json",
      status: 400,
      body: {
        error: { message: "Cannot cancel a synchronous response.", type: "invalid_request_error" },
      },
    });
    const sync = await gw.request("/v1/responses/resp_up/cancel", { method: "POST" });
    assert.equal(sync.status, 400);
    assert.match((await sync.json()).error.message, /synchronous/);
    const wrong = await gw.request("/v1/responses/resp_up/cancel");
    assert.equal(wrong.status, 405);
    await wrong.body?.cancel();

    // Nobody knows it: a 404 in OpenAI's format.
    second.script({ kind: "json", status: 404, body: { error: { message: "No response found" } } });
    const none = await gw.request("/v1/responses/resp_gone");
    assert.equal(none.status, 404);
    assert.match((await none.json()).error.message, /Response with id 'resp_gone' not found\./);
    // An id is an opaque token: one that could name another path upstream (an encoded
    // slash, a dot-segment, a backslash, a query) is refused before any provider is asked.
    const calls = first.requests.length + second.requests.length;
    for (
      const odd of [
        "..%2Fmodels",
        "x%2F..%2F..%2Fmodels",
        "x%5Cy",
        "resp_1%3Fa%3Db",
      ]
    ) {
      for (const method of ["GET", "DELETE"]) {
        const res = await gw.request(`/v1/responses/${odd}`, { method });
        assert.equal(res.status, 400, `${method} ${odd}`);
        const body = await res.json();
        assert.equal(body.error.type, "invalid_request_error");
        assert.equal(body.error.param, "response_id");
      }
    }
    assert.equal(first.requests.length + second.requests.length, calls);
  } finally {
    await gw.close();
    await first.close();
    await second.close();
  }
});

Deno.test("the stored-response relay: other 4xx move on, the client's credential reaches one provider, app keys keep their providers", async (t) => {
  const a = startFakeUpstream();
  const b = startFakeUpstream();
  const c = startFakeUpstream();
  const dir = await Deno.makeTempDir({ prefix: "pf-relay-" });
  const gw = startGateway(`
state: { path: "${dir}/state.db" }
providers:
  a: { base_url: "${a.url}/v1", keys: [{ key: sk-a-0001 }], responses: native }
  b: { base_url: "${b.url}/v1", responses: native }
  c: { base_url: "${c.url}/v1", responses: native }
app_keys:
  keys:
    - { key: pf_only_provider_c_key_0001, allowed_providers: [c] }
`);
  try {
    await t.step("a 405 from one provider is 'not here': the next one is asked", async () => {
      a.script({ kind: "json", status: 405, body: { error: { message: "no such route" } } });
      b.script({ kind: "json", body: { id: "resp_b", object: "response" } });
      const res = await gw.request("/v1/responses/resp_b", {
        headers: { authorization: "Bearer sk-client-0001" },
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-pilotfish-provider"), "b");
      await res.body?.cancel();
      assert.equal(b.requests.at(-1)!.headers.get("authorization"), "Bearer sk-client-0001");
    });
    await t.step("the client's credential goes to one keyless provider only", async () => {
      const before = c.requests.length;
      a.script({ kind: "json", status: 404, body: { error: { message: "not found" } } });
      b.script({ kind: "json", status: 404, body: { error: { message: "not found" } } });
      const res = await gw.request("/v1/responses/resp_none", {
        headers: { authorization: "Bearer sk-client-0001" },
      });
      assert.equal(res.status, 404);
      await res.body?.cancel();
      assert.equal(c.requests.length, before, "c never saw the client's key");
    });
    await t.step("an app key limited to provider c asks only c", async () => {
      const [na, nb] = [a.requests.length, b.requests.length];
      c.script({ kind: "json", body: { id: "resp_c", object: "response" } });
      const res = await gw.request("/v1/responses/resp_c", {
        headers: {
          "x-pilotfish-app-key": "pf_only_provider_c_key_0001",
          authorization: "Bearer sk-client-0002",
        },
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-pilotfish-provider"), "c");
      await res.body?.cancel();
      assert.equal(a.requests.length, na);
      assert.equal(b.requests.length, nb);
    });
    await t.step("a 5xx is the answer when nobody else knows the id", async () => {
      a.script({ kind: "json", status: 503, body: { error: { message: "overloaded" } } });
      b.script({ kind: "json", status: 404, body: { error: { message: "not found" } } });
      const res = await gw.request("/v1/responses/resp_x", {
        headers: { authorization: "Bearer sk-client-0001" },
      });
      assert.equal(res.status, 503);
      await res.body?.cancel();
    });
  } finally {
    await gw.close();
    await a.close();
    await b.close();
    await c.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the counting routes answer bad input in their own formats", async (t) => {
  const anthropic = startFakeAnthropic();
  const gw = startGateway(`
providers:
  anthropic: { base_url: "${anthropic.url}/v1", keys: [{ key: sk-ant-0001 }] }
  mock: {}
`);
  try {
    await t.step("count_tokens: Anthropic's envelope", async () => {
      const cases: [unknown, number, RegExp][] = [
        ["{", 400, /JSON/],
        [{ messages: [{ role: "user", content: "x" }] }, 400, /"model"/],
        [{ model: "anthropic/claude-x" }, 400, /"messages"/],
        [{ model: "nope/x", messages: [{ role: "user", content: "x" }] }, 404, /nope/],
        [{ model: "mock/echo", messages: [{ role: "user", content: "x" }] }, 400, /count tokens/],
      ];
      for (const [body, status, message] of cases) {
        const res = await gw.request("/v1/messages/count_tokens", post(body));
        const json = await res.json();
        assert.equal(res.status, status, JSON.stringify(json));
        assert.equal(json.type, "error");
        assert.match(json.error.message, message);
      }
      assert.equal(anthropic.requests.length, 0);
    });
    await t.step(
      "count_tokens: the Anthropic body reaches Anthropic's endpoint as is",
      async () => {
        const res = await gw.request(
          "/v1/messages/count_tokens",
          post({
            model: "anthropic/claude-x",
            system: "Be brief.",
            messages: [{ role: "user", content: "Hello there" }],
            tools: [{ name: "t", input_schema: { type: "object" } }],
          }),
        );
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("x-pilotfish-token-count"), "provider");
        const sent = anthropic.requests.at(-1)!;
        assert.equal(sent.path, "/v1/messages/count_tokens");
        assert.equal(sent.headers.get("x-api-key"), "sk-ant-0001");
        assert.deepEqual(JSON.parse(sent.body), {
          model: "claude-x",
          messages: [{ role: "user", content: "Hello there" }],
          system: "Be brief.",
          tools: [{ name: "t", input_schema: { type: "object" } }],
        });
        assert.deepEqual(await res.json(), { input_tokens: Math.ceil(sent.body.length / 10) });
      },
    );
    await t.step("input_tokens: OpenAI's envelope", async () => {
      const cases: [unknown, number, RegExp][] = [
        [{ input: "x" }, 400, /"model"/],
        [
          { model: "anthropic/claude-x", input: "x", previous_response_id: "resp_x" },
          400,
          /resp_x/,
        ],
      ];
      for (const [body, status, message] of cases) {
        const res = await gw.request("/v1/responses/input_tokens", post(body));
        const json = await res.json();
        assert.equal(res.status, status, JSON.stringify(json));
        assert.equal(json.error.type, "invalid_request_error");
        assert.match(json.error.message, message);
      }
    });
    await t.step("wrong methods are 405 with Allow", async () => {
      const res = await gw.request("/v1/responses", { method: "GET" });
      assert.equal(res.status, 405);
      assert.equal(res.headers.get("allow"), "POST");
      await res.body?.cancel();
      const del = await gw.request("/v1/responses/resp_x", { method: "PUT" });
      assert.equal(del.status, 405);
      assert.equal(del.headers.get("allow"), "GET, DELETE");
      await del.body?.cancel();
      // "input_tokens" is a route, not a response id.
      for (const method of ["GET", "DELETE", "PUT"]) {
        const it = await gw.request("/v1/responses/input_tokens", { method });
        assert.equal(it.status, 405, method);
        assert.equal(it.headers.get("allow"), "POST");
        await it.body?.cancel();
      }
    });
  } finally {
    await gw.close();
    await anthropic.close();
  }
});

Deno.test("config: responses: native only on OpenAI-type providers; the gate timers load", () => {
  assert.throws(
    () =>
      parseConfigText(
        `
providers:
  anthropic: { keys: [{ key: k }], responses: native }
`,
        () => undefined,
        "x.yaml",
      ),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(
        String(err.message),
        /providers\.anthropic\.responses: "native" needs an OpenAI-type/,
      );
      return true;
    },
  );
  assert.throws(
    () =>
      parseConfigText(
        "providers:\n  x: { base_url: 'http://h', responses: maybe }\n",
        () => undefined,
        "x.yaml",
      ),
    ConfigError,
  );
  const { config } = parseConfigText(
    `
routing:
  models:
    m: { providers: [mock], first_chunk_timeout: 3s, stream_idle_timeout: 1m }
  failover: { first_chunk_timeout: 10s, stream_idle_timeout: 30s }
responses:
  store: { max_bytes: 1024, ttl: 1h }
providers:
  mock: {}
`,
    () => undefined,
    "x.yaml",
  );
  assert.equal(config.routing.failover.first_chunk_timeout, 10_000);
  assert.equal(config.routing.failover.stream_idle_timeout, 30_000);
  assert.equal(config.routing.models.m?.first_chunk_timeout, 3_000);
  assert.equal(config.routing.models.m?.stream_idle_timeout, 60_000);
  assert.deepEqual(config.responses.store, { max_bytes: 1024, ttl: 3_600_000 });
});

Deno.test("OpenAI-compatible providers count locally: an estimate, said so", async () => {
  const gw = startGateway(`
providers:
  compat: { base_url: "http://127.0.0.1:9/v1", keys: [{ key: sk-compat-0001 }] }
`);
  try {
    const count = async (path: string, body: unknown) => {
      const res = await gw.request(path, post(body));
      assert.equal(res.headers.get("x-pilotfish-token-count"), "estimate");
      return await res.json();
    };
    // o200k: 3 (reply priming) + 3 (message framing) + "user" (1) + the text (6).
    assert.deepEqual(
      await count("/v1/responses/input_tokens", {
        model: "compat/gpt-4o",
        input: "How many tokens is this?",
      }),
      { object: "response.input_tokens", input_tokens: 13 },
    );
    assert.deepEqual(
      await count("/v1/messages/count_tokens", {
        model: "compat/gpt-4o",
        messages: [{ role: "user", content: "How many tokens is this?" }],
      }),
      { input_tokens: 13 },
    );
    // cl100k for the GPT-4 generation: a different count for the same text.
    const old = await count("/v1/responses/input_tokens", {
      model: "compat/gpt-4-0613",
      input: "日本語のテキスト",
    });
    const current = await count("/v1/responses/input_tokens", {
      model: "compat/gpt-4o",
      input: "日本語のテキスト",
    });
    assert.notEqual(old.input_tokens, current.input_tokens);
  } finally {
    await gw.close();
  }
});

Deno.test("a native Responses provider counts /v1/responses/input_tokens itself", async () => {
  const native = startFakeUpstream();
  native.script({ kind: "json", body: { object: "response.input_tokens", input_tokens: 42 } });
  const gw = startGateway(`
providers:
  openai: { base_url: "${native.url}/v1", keys: [{ key: sk-openai-0001 }] }
`);
  try {
    const body = {
      model: "openai/gpt-4.1",
      input: "How many?",
      tools: [{ type: "web_search_preview" }],
      previous_response_id: "resp_kept_by_openai",
    };
    const res = await gw.request("/v1/responses/input_tokens", post(body));
    assert.deepEqual(await res.json(), { object: "response.input_tokens", input_tokens: 42 });
    assert.equal(res.headers.get("x-pilotfish-token-count"), "provider");
    const sent = native.requests.at(-1)!;
    assert.equal(sent.path, "/v1/responses/input_tokens");
    assert.equal(sent.headers.get("authorization"), "Bearer sk-openai-0001");
    assert.deepEqual(JSON.parse(sent.body), { ...body, model: "gpt-4.1" });
    // The Anthropic-format route has no such endpoint there: a local estimate.
    const messages = await gw.request(
      "/v1/messages/count_tokens",
      post({ model: "openai/gpt-4.1", messages: [{ role: "user", content: "How many?" }] }),
    );
    assert.equal(messages.headers.get("x-pilotfish-token-count"), "estimate");
    assert.equal(native.requests.length, 1);
    await messages.body?.cancel();
  } finally {
    await gw.close();
    await native.close();
  }
});

Deno.test("a conversation the gateway kept is counted by the native provider it continues on", async () => {
  const compat = startFakeUpstream();
  const native = startFakeUpstream();
  native.script({ kind: "json", body: { object: "response.input_tokens", input_tokens: 17 } });
  const gw = startGateway(`
providers:
  compat: { base_url: "${compat.url}/v1", keys: [{ key: sk-compat-0001 }] }
  openai: { base_url: "${native.url}/v1", keys: [{ key: sk-openai-0001 }] }
`);
  try {
    const first = await (await gw.request(
      "/v1/responses",
      post({ model: "compat/gpt-4o-mini", input: "Hi" }),
    )).json();
    const res = await gw.request(
      "/v1/responses/input_tokens",
      post({ model: "openai/gpt-4.1", input: "Again", previous_response_id: first.id }),
    );
    assert.equal(res.headers.get("x-pilotfish-token-count"), "provider");
    assert.deepEqual(await res.json(), { object: "response.input_tokens", input_tokens: 17 });
    // The provider never saw that id: it counts the turns themselves, as the answer's call sends them.
    const sent = JSON.parse(native.requests.at(-1)!.body);
    assert.equal(sent.previous_response_id, undefined);
    assert.deepEqual(sent.input, [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello from upstream" },
      { role: "user", content: "Again" },
    ]);
  } finally {
    await gw.close();
    await compat.close();
    await native.close();
  }
});

Deno.test("a kept response belongs to the app key that made it: another key cannot read, continue or delete it", async () => {
  const up = startFakeUpstream();
  const dir = await Deno.makeTempDir({ prefix: "pf-owner-" });
  const gw = startGateway(`
state: { path: "${dir}/state.db" }
providers:
  compat: { base_url: "${up.url}/v1", keys: [{ key: sk-compat-0001 }] }
app_keys:
  keys:
    - { key: pf_tenant_alpha_key_0001 }
    - { key: pf_tenant_beta_key_00002 }
`);
  const as = (key: string | null, init: RequestInit = {}): RequestInit => ({
    ...init,
    headers: {
      "content-type": "application/json",
      ...(key ? { authorization: `Bearer ${key}` } : {}),
    },
  });
  const ALPHA = "pf_tenant_alpha_key_0001";
  const BETA = "pf_tenant_beta_key_00002";
  try {
    const made = await gw.request(
      "/v1/responses",
      as(ALPHA, {
        method: "POST",
        body: JSON.stringify({ model: "compat/m", input: "secret 1234" }),
      }),
    );
    assert.equal(made.status, 200);
    const { id, output } = await made.json();
    const sent = up.requests.length;
    for (const key of [BETA, null]) {
      const read = await gw.request(`/v1/responses/${id}`, as(key));
      assert.equal(read.status, 404, `GET as ${key}`);
      assert.equal((await read.json()).error.type, "invalid_request_error");
      const next = await gw.request(
        "/v1/responses",
        as(key, {
          method: "POST",
          body: JSON.stringify({ model: "compat/m", input: "go on", previous_response_id: id }),
        }),
      );
      assert.equal(next.status, 400, `previous_response_id as ${key}`);
      assert.equal((await next.json()).error.code, "previous_response_not_found");
      const ref = await gw.request(
        "/v1/responses",
        as(key, {
          method: "POST",
          body: JSON.stringify({
            model: "compat/m",
            input: [{ type: "item_reference", id: output[0].id }, { role: "user", content: "x" }],
          }),
        }),
      );
      await ref.body?.cancel();
      assert.ok(
        !up.requests.slice(sent).some((r) => r.body.includes("Hello from upstream")),
        `item_reference as ${key} did not resolve alpha's item`,
      );
      const del = await gw.request(`/v1/responses/${id}`, as(key, { method: "DELETE" }));
      assert.equal(del.status, 404, `DELETE as ${key}`);
      await del.body?.cancel();
    }
    const mine = await gw.request(`/v1/responses/${id}`, as(ALPHA));
    assert.equal(mine.status, 200, "still there for its owner");
    assert.equal((await mine.json()).id, id);
    const gone = await gw.request(`/v1/responses/${id}`, as(ALPHA, { method: "DELETE" }));
    assert.equal((await gone.json()).deleted, true);
  } finally {
    await gw.close();
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a native Responses stream: cut short, it gets response.failed numbered on; the upstream's own failure is logged as error", async (t) => {
  const native = startFakeUpstream();
  const gw = startGateway(`
providers:
  selfhosted: { base_url: "${native.url}/v1", keys: [{ key: sk-native-0001 }], responses: native }
`);
  const ev = (type: string, seq: number, extra: Record<string, unknown> = {}) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq, ...extra })}\n\n`;
  const response = { id: "resp_up1", object: "response", status: "in_progress", output: [] };
  const started = [
    ev("response.created", 0, { response }),
    ev("response.output_text.delta", 1, { item_id: "msg_1", delta: "Hel" }),
  ];
  const stream = async () => {
    const res = await gw.request(
      "/v1/responses",
      post({ model: "selfhosted/m", input: "hi", stream: true }),
    );
    assert.equal(res.status, 200);
    return (await res.text()).trim().split("\n\n").map((e) => JSON.parse(e.split("data: ")[1]!));
  };
  try {
    await t.step("cut short", async () => {
      native.script({ kind: "sse", events: started });
      const events = await stream();
      assert.deepEqual(events.map((e) => e.sequence_number), [0, 1, 2, 3]);
      // An `error` event (the OpenAI SDKs throw on it), then the failed response.
      assert.equal(events.at(-2)!.type, "error");
      const last = events.at(-1)!;
      assert.equal(last.type, "response.failed");
      assert.equal(last.response.id, "resp_up1");
      assert.equal(last.response.status, "failed");
      assert.match(last.response.error.message, /ended before response.completed/);
      const line = gw.logs.map((l) => JSON.parse(l)).filter((l) => l.msg === "request").at(-1);
      assert.equal(line.outcome, "error");
    });
    await t.step(
      "the upstream's response.failed: relayed, nothing added, logged as error",
      async () => {
        const failed = ev("response.failed", 2, {
          response: {
            ...response,
            status: "failed",
            error: { code: "server_error", message: "x" },
          },
        });
        native.script({ kind: "sse", events: [...started, failed] });
        const events = await stream();
        assert.deepEqual(events.map((e) => e.sequence_number), [0, 1, 2]);
        const line = gw.logs.map((l) => JSON.parse(l)).filter((l) => l.msg === "request").at(-1);
        assert.equal(line.outcome, "error");
      },
    );
    await t.step("cut mid-event: response.failed starts on a line of its own", async () => {
      native.script({
        kind: "sse",
        events: [...started, 'event: response.output_text.delta\ndata: {"ty'],
      });
      const res = await gw.request(
        "/v1/responses",
        post({ model: "selfhosted/m", input: "hi", stream: true }),
      );
      const text = await res.text();
      assert.match(
        text,
        /data: \{"ty\n\nevent: error\ndata: \{"type":"error",.*"sequence_number":3\}\n\nevent: response\.failed\ndata: \{"type":"response\.failed","sequence_number":4,/,
      );
    });
    await t.step("cut inside response.completed: cut short, not complete", async () => {
      native.script({
        kind: "sse",
        events: [
          ...started,
          'event: response.completed\ndata: {"type":"response.completed","sequence_number":2,"response":{"out',
        ],
      });
      const res = await gw.request(
        "/v1/responses",
        post({ model: "selfhosted/m", input: "hi", stream: true }),
      );
      assert.match(await res.text(), /\n\nevent: response\.failed\n/);
      const line = gw.logs.map((l) => JSON.parse(l)).filter((l) => l.msg === "request").at(-1);
      assert.equal(line.outcome, "error");
      assert.ok(line.completion_tokens > 0, "estimated from the deltas that went out");
    });
    await t.step(
      "types nested in the echoed request (metadata, schemas) are not the event's",
      async () => {
        const echo = ev("response.created", 0, {
          response: {
            ...response,
            metadata: { type: "error", note: '"type":"response.completed"' },
          },
        });
        const completed = ev("response.completed", 2, {
          response: {
            ...response,
            status: "completed",
            usage: { input_tokens: 3, output_tokens: 1 },
          },
        });
        native.script({ kind: "sse", events: [echo, started[1]!, completed] });
        const events = await stream();
        assert.deepEqual(events.map((e) => e.type), [
          "response.created",
          "response.output_text.delta",
          "response.completed",
        ]);
        const line = gw.logs.map((l) => JSON.parse(l)).filter((l) => l.msg === "request").at(-1);
        assert.equal(line.outcome, "complete");
      },
    );
    await t.step("response.completed is complete", async () => {
      const completed = ev("response.completed", 2, {
        response: {
          ...response,
          status: "completed",
          usage: { input_tokens: 3, output_tokens: 1 },
        },
      });
      native.script({ kind: "sse", events: [...started, completed] });
      assert.equal((await stream()).length, 3);
      const line = gw.logs.map((l) => JSON.parse(l)).filter((l) => l.msg === "request").at(-1);
      assert.equal(line.outcome, "complete");
      assert.equal(line.prompt_tokens, 3);
    });
  } finally {
    await gw.close();
    await native.close();
  }
});

Deno.test("/v1/responses bounds what it echoes back: deep or odd metadata, tools and text are a 400, never a 500", async () => {
  const gw = startGateway("providers: { mock: {} }");
  const deep = '{"a":'.repeat(10_000) + "1" + "}".repeat(10_000);
  try {
    for (
      const [field, extra] of [
        ["metadata", `"metadata":${deep}`],
        ["metadata", `"metadata":{"n":1}`],
        ["tools", `"tools":[{"type":"function","name":"f","parameters":${deep}}]`],
        ["text", `"text":{"format":{"type":"json_schema","name":"x","schema":${deep}}}`],
      ] as const
    ) {
      for (const stream of [false, true]) {
        const res = await gw.request(
          "/v1/responses",
          post(`{"model":"mock/echo","input":"hi","stream":${stream},${extra}}`),
        );
        assert.equal(res.status, 400, `${extra.slice(0, 20)} stream ${stream}`);
        assert.equal((await res.json()).error.param, field);
      }
    }
  } finally {
    await gw.close();
  }
});

Deno.test("a responses store that throws at once does not fail the answer", async () => {
  const gw = startGateway("providers: { mock: {} }", {}, {
    responses: {
      backend: "memory",
      available: () => true,
      get: () => Promise.resolve(null),
      getItem: () => Promise.resolve(null),
      put: () => {
        throw new RangeError("Maximum call stack size exceeded");
      },
      delete: () => Promise.resolve(false),
      claim: () => Promise.resolve(),
      claimant: () => Promise.resolve(null),
      close: () => Promise.resolve(),
    },
  });
  try {
    const res = await gw.request("/v1/responses", post({ model: "mock/echo", input: "hi" }));
    assert.equal(res.status, 200);
    assert.equal((await res.json()).status, "completed");
    assert.match(gw.logText(), /responses store: could not keep a response/);
  } finally {
    await gw.close();
  }
});

Deno.test("GET /v1/responses/{id} relayed to a native provider keeps the query and names provider, model and attempts", async () => {
  const a = startFakeUpstream();
  const b = startFakeUpstream();
  const gw = startGateway(`
providers:
  a: { base_url: "${a.url}/v1", keys: [{ key: sk-a-0001 }], responses: native, credential_mode: gateway }
  b: { base_url: "${b.url}/v1", keys: [{ key: sk-b-0001 }], responses: native, credential_mode: gateway }
`);
  try {
    a.script({ kind: "json", status: 404, body: { error: { message: "not found" } } });
    b.script({ kind: "json", body: { id: "resp_b1", object: "response", model: "gpt-4.1" } });
    const res = await gw.request("/v1/responses/resp_b1?include[]=reasoning.encrypted_content");
    assert.equal(res.status, 200);
    assert.equal((await res.json()).id, "resp_b1");
    assert.equal(res.headers.get("x-pilotfish-provider"), "b");
    assert.equal(res.headers.get("x-pilotfish-model"), "gpt-4.1");
    assert.equal(res.headers.get("x-pilotfish-attempts"), "2");
    const sent = b.requests.at(-1)!;
    assert.equal(sent.path, "/v1/responses/resp_b1");
    assert.equal(decodeURIComponent(sent.search ?? ""), "?include[]=reasoning.encrypted_content");
  } finally {
    await gw.close();
    await a.close();
    await b.close();
  }
});

Deno.test("a native Responses stream that ends before any output never committed: an error answer, as for every format", async () => {
  const a = startFakeUpstream();
  const gw = startGateway(`
providers:
  a: { base_url: "${a.url}/v1", keys: [{ key: sk-a-0001 }], responses: native }
`);
  try {
    a.script({
      kind: "sse",
      events: [
        `event: response.created\ndata: ${
          JSON.stringify({ type: "response.created", sequence_number: 0, response: { id: "r1" } })
        }\n\n`,
      ],
    });
    const res = await gw.request(
      "/v1/responses",
      post({ model: "a/m", input: "hi", stream: true }),
    );
    assert.equal(res.status, 502);
    assert.match((await res.json()).error.message, /ended before response\.completed/);
    // An empty message item (and part) is no output yet, for the gate and the tap alike.
    a.script({
      kind: "sse",
      events: [
        `event: response.created\ndata: ${
          JSON.stringify({ type: "response.created", sequence_number: 0, response: { id: "r2" } })
        }\n\n`,
        `event: response.output_item.added\ndata: ${
          JSON.stringify({
            type: "response.output_item.added",
            sequence_number: 1,
            item: { type: "message", content: [] },
          })
        }\n\n`,
      ],
    });
    const empty = await gw.request(
      "/v1/responses",
      post({ model: "a/m", input: "hi", stream: true }),
    );
    assert.equal(empty.status, 502);
    await empty.body?.cancel();
  } finally {
    await gw.close();
    await a.close();
  }
});

Deno.test("GET /v1/responses/%E0 (a malformed escape) is a 404, never a 500", async () => {
  const gw = startGateway("providers: { mock: {} }");
  try {
    for (
      const [path, type] of [
        ["/v1/responses/%E0", "invalid_request_error"],
        ["/v1/models/%E0", "not_found_error"],
      ] as const
    ) {
      const res = await gw.request(path);
      assert.equal(res.status, 404, path);
      assert.equal((await res.json()).error.type, type, path);
    }
  } finally {
    await gw.close();
  }
});

Deno.test("a /v1/responses error names the field the client sent, not the chat form's", async () => {
  const anthropic = startFakeAnthropic();
  const gw = startGateway(`
providers:
  claude: { type: anthropic, base_url: "${anthropic.url}/v1", keys: [{ key: sk-ant-0001 }] }
`);
  try {
    const cases: [Record<string, unknown>, string][] = [
      [{ reasoning: { effort: "extreme" } }, "reasoning.effort"],
      [{ text: { format: { type: "json_schema", name: "x" } } }, "text.format"],
      [{ input: [{ type: "function_call_output", output: "x" }] }, "input[0].call_id"],
    ];
    for (const [extra, param] of cases) {
      const res = await gw.request(
        "/v1/responses",
        post({ model: "claude/claude-x", input: "hi", ...extra }),
      );
      assert.equal(res.status, 400, JSON.stringify(extra));
      const err = (await res.json()).error;
      assert.equal(err.param, param, JSON.stringify(err));
      assert.doesNotMatch(err.message, /reasoning_effort|response_format|messages\[/, err.message);
    }
  } finally {
    await gw.close();
    await anthropic.close();
  }
});

Deno.test("counting never refuses over thinking settings: reasoning.effort with a forced tool counts on Anthropic", async () => {
  const anthropic = startFakeAnthropic();
  const gw = startGateway(`
providers:
  claude: { type: anthropic, base_url: "${anthropic.url}/v1", keys: [{ key: sk-ant-0001 }] }
`);
  try {
    const res = await gw.request(
      "/v1/responses/input_tokens",
      post({
        model: "claude/claude-x",
        input: "weather?",
        reasoning: { effort: "high" },
        max_output_tokens: 100,
        tools: [{ type: "function", name: "w", parameters: { type: "object", properties: {} } }],
        tool_choice: "required",
      }),
    );
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-pilotfish-token-count"), "provider");
    assert.ok((await res.json()).input_tokens > 0);
  } finally {
    await gw.close();
    await anthropic.close();
  }
});

Deno.test("a previous_response_id only a native provider knows: failover leaves translated providers out", async () => {
  const native = startFakeUpstream();
  const compat = startFakeUpstream();
  native.script({
    kind: "json",
    status: 500,
    body: { error: { message: "boom", type: "server_error" } },
  });
  const gw = startGateway(`
providers:
  openai: { base_url: "${native.url}/v1", keys: [{ key: sk-native-0001 }] }
  compat: { base_url: "${compat.url}/v1", keys: [{ key: sk-compat-0001 }] }
routing:
  models:
    both: { providers: [openai, compat], strategy: priority }
  failover: { max_retries: 0 }
`);
  try {
    const res = await gw.request("/v1/responses", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "both",
        input: "go on",
        previous_response_id: "resp_kept_by_openai",
      }),
    });
    // The native provider's failure, not the translated one's "not found": the conversation
    // exists, and a 5xx is what an SDK retries.
    assert.equal(res.status, 500);
    assert.equal(res.headers.get("x-pilotfish-provider"), "openai");
    await res.body?.cancel();
    assert.equal(compat.requests.length, 0);
    // A model no native provider serves still gets the documented 400.
    const only = await gw.request("/v1/responses", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "compat/m", input: "x", previous_response_id: "resp_x" }),
    });
    assert.equal(only.status, 400);
    const refused = (await only.json()).error;
    assert.equal(refused.code, "previous_response_not_found");
    // OpenAI's wording first: clients match on it.
    assert.match(refused.message, /^Previous response with id 'resp_x' not found\./);
  } finally {
    await gw.close();
    await native.close();
    await compat.close();
  }
});

Deno.test("with pre_llm stages on (cache, limits), a native provider still gets what only it can honour", async () => {
  const native = startFakeUpstream();
  const gw = startGateway(`
providers:
  selfhosted:
    base_url: "${native.url}/v1"
    keys: [{ key: sk-native-0001 }]
    responses: native
cache: { enabled: true }
features:
  rate_limiting:
    enabled: true
    limits: { requests_per_minute: 1000, tokens_per_minute: 1000000 }
`);
  try {
    for (
      const extra of [
        { previous_response_id: "resp_theirs" },
        { tools: [{ type: "web_search" }] },
        { background: true },
        { truncation: "auto" },
      ]
    ) {
      const before = native.requests.length;
      const res = await gw.request(
        "/v1/responses",
        post({ model: "selfhosted/gpt-oss", input: "x", temperature: 0, ...extra }),
      );
      await res.body?.cancel();
      assert.equal(res.status, 200, JSON.stringify(extra));
      assert.equal(native.requests.length, before + 1, "relayed");
      const sent = JSON.parse(native.requests.at(-1)!.body);
      for (const [k, v] of Object.entries(extra)) assert.deepEqual(sent[k], v);
      // Counted by the limiter (an estimate from the input), never a cache key.
      assert.ok(Number(res.headers.get("x-ratelimit-remaining")) < 1000);
      assert.equal(res.headers.get("x-cache"), null);
    }
    // A translated provider still refuses what it cannot honour, with its 400.
    const gw2 = startGateway(`
providers:
  compat: { base_url: "${native.url}/v1", keys: [{ key: sk-compat-0001 }] }
cache: { enabled: true }
`);
    try {
      const res = await gw2.request(
        "/v1/responses",
        post({ model: "compat/m", input: "x", previous_response_id: "resp_theirs" }),
      );
      assert.equal(res.status, 400);
      assert.equal((await res.json()).error.param, "previous_response_id");
    } finally {
      await gw2.close();
    }
  } finally {
    await gw.close();
    await native.close();
  }
});

Deno.test("a native provider's response created for an app key is that key's alone (the gateway's key asks for it)", async (t) => {
  const native = startFakeUpstream();
  const dir = await Deno.makeTempDir({ prefix: "pf-owner-" });
  const gw = startGateway(`
state: { path: "${dir}/state.db" }
providers:
  up: { base_url: "${native.url}/v1", keys: [{ key: sk-up-0001 }], responses: native }
app_keys:
  keys:
    - { key: pf_owner_a_key_00000000000001 }
    - { key: pf_owner_b_key_00000000000002 }
`);
  const A = { "x-pilotfish-app-key": "pf_owner_a_key_00000000000001" };
  const B = { "x-pilotfish-app-key": "pf_owner_b_key_00000000000002" };
  const created = (id: string) => ({ id, object: "response", status: "completed", output: [] });
  /** The upstream's next answer: a stream creating response `id`. */
  const scriptStream = (id: string) => {
    const ev = `{"type":"response.created","sequence_number":0,"response":${
      JSON.stringify({ ...created(id), status: "in_progress" })
    }}`;
    const done = `{"type":"response.completed","sequence_number":1,"response":${
      JSON.stringify({ ...created(id), usage: { input_tokens: 1, output_tokens: 0 } })
    }}`;
    native.script({
      kind: "sse",
      events: [
        `event: response.created\ndata: ${ev}\n\n`,
        `event: response.completed\ndata: ${done}\n\n`,
      ],
    });
  };
  const call = async (path: string, init: RequestInit) => {
    const before = native.requests.length;
    const res = await gw.request(path, init);
    const body = await res.json();
    return { status: res.status, body, relayed: native.requests.length > before };
  };
  try {
    native.script({ kind: "json", body: created("resp_A") });
    let r = await call("/v1/responses", { ...post({ model: "up/m", input: "mine" }), headers: A });
    assert.equal(r.status, 200);
    await t.step("another key, or none, cannot read, continue or delete it", async () => {
      for (const who of [B, {}]) {
        r = await call("/v1/responses/resp_A", { headers: who });
        assert.equal(r.status, 404);
        assert.equal(r.relayed, false, "never asked with the gateway's key");
        r = await call("/v1/responses/resp_A", { method: "DELETE", headers: who });
        assert.equal(r.status, 404);
        assert.equal(r.relayed, false);
        r = await call("/v1/responses", {
          ...post({ model: "up/m", input: "theirs?", previous_response_id: "resp_A" }),
          headers: who,
        });
        assert.equal(r.status, 400);
        assert.equal(r.body.error.param, "previous_response_id");
        assert.equal(r.relayed, false);
      }
    });
    await t.step("the key that made it reads and continues it", async () => {
      native.script({ kind: "json", body: created("resp_A") });
      r = await call("/v1/responses/resp_A", { headers: A });
      assert.equal(r.status, 200);
      assert.equal(r.relayed, true);
      native.script({ kind: "json", body: created("resp_A2") });
      r = await call("/v1/responses", {
        ...post({ model: "up/m", input: "again", previous_response_id: "resp_A" }),
        headers: A,
      });
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(native.requests.at(-1)!.body).previous_response_id, "resp_A");
    });
    await t.step("nor through the native passthrough routes, with the gateway's key", async () => {
      for (const who of [B, {}]) {
        for (const method of ["GET", "DELETE"]) {
          r = await call("/native/up/responses/resp_A", { method, headers: who });
          assert.equal(r.status, 404, `${method} ${JSON.stringify(who)}`);
          assert.equal(r.relayed, false, "never asked with the gateway's key");
        }
        r = await call("/native/up/responses/resp_A/input_items", { headers: who });
        assert.equal(r.status, 404);
        r = await call("/native/up/responses", {
          ...post({ model: "m", input: "theirs?", previous_response_id: "resp_A" }),
          headers: who,
        });
        assert.equal(r.status, 400);
        assert.equal(r.relayed, false);
      }
      native.script({ kind: "json", body: created("resp_A") });
      r = await call("/native/up/responses/resp_A", { headers: A });
      assert.equal(r.status, 200);
      assert.equal(r.relayed, true);
      // Created through the passthrough: claimed for its key, JSON or streamed.
      native.script({ kind: "json", body: created("resp_N") });
      r = await call("/native/up/responses", { ...post({ model: "m", input: "n" }), headers: A });
      assert.equal(r.status, 200);
      scriptStream("resp_NS");
      const res = await gw.request("/native/up/responses", {
        ...post({ model: "m", input: "s", stream: true }),
        headers: A,
      });
      await res.text();
      for (const id of ["resp_N", "resp_NS"]) {
        r = await call(`/native/up/responses/${id}`, { headers: B });
        assert.equal(r.status, 404, id);
        assert.equal(r.relayed, false);
        native.script({ kind: "json", body: created(id) });
        r = await call(`/v1/responses/${id}`, { headers: A });
        assert.equal(r.status, 200, id);
      }
    });
    await t.step("streamed: the id of response.created is claimed too", async () => {
      scriptStream("resp_S");
      const res = await gw.request("/v1/responses", {
        ...post({ model: "up/m", input: "s", stream: true }),
        headers: A,
      });
      assert.equal(res.status, 200);
      await res.text();
      r = await call("/v1/responses/resp_S", { headers: B });
      assert.equal(r.status, 404);
      assert.equal(r.relayed, false);
    });
    await t.step(
      "with the client's own credential (a provider without keys) it is the provider's to check",
      async () => {
        const own = startFakeUpstream();
        const gw2 = startGateway(`
providers:
  free: { base_url: "${own.url}/v1", responses: native }
app_keys:
  keys:
    - { key: pf_owner_b_key_00000000000002 }
`);
        try {
          own.script({ kind: "json", body: created("resp_B2") });
          const res = await gw2.request("/v1/responses", {
            ...post({ model: "free/m", input: "go on", previous_response_id: "resp_A" }),
            headers: { ...B, authorization: "Bearer sk-client-own-0001" },
          });
          assert.equal(res.status, 200);
          await res.body?.cancel();
          const sent = own.requests.at(-1)!;
          assert.equal(JSON.parse(sent.body).previous_response_id, "resp_A");
          assert.equal(sent.headers.get("authorization"), "Bearer sk-client-own-0001");
        } finally {
          await gw2.close();
          await own.close();
        }
      },
    );
    await t.step("its output items too: another key's item_reference is not found", async () => {
      native.script({
        kind: "json",
        body: {
          ...created("resp_A3"),
          output: [{ id: "msg_A3", type: "message", role: "assistant", content: [] }],
        },
      });
      r = await call("/v1/responses", { ...post({ model: "up/m", input: "x" }), headers: A });
      assert.equal(r.status, 200);
      const ref = { model: "up/m", input: [{ type: "item_reference", id: "msg_A3" }] };
      r = await call("/v1/responses", { ...post(ref), headers: B });
      assert.equal(r.status, 400);
      assert.equal(r.body.error.param, "input");
      assert.equal(r.relayed, false);
      native.script({ kind: "json", body: created("resp_A4") });
      r = await call("/v1/responses", { ...post(ref), headers: A });
      assert.equal(r.status, 200);
      assert.equal(r.relayed, true);
    });
    await t.step("an id no key claimed is for callers without one", async () => {
      native.script({ kind: "json", body: created("resp_elsewhere") });
      r = await call("/v1/responses/resp_elsewhere", {});
      assert.equal(r.status, 200);
      r = await call("/v1/responses/resp_elsewhere", { headers: A });
      assert.equal(r.status, 404);
    });
  } finally {
    await gw.close();
    await native.close();
    await Deno.remove(dir, { recursive: true });
  }
});
