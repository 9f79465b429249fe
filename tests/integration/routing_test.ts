import assert from "node:assert/strict";
import OpenAI from "openai";
import { startFakeAnthropic } from "../fakes/fake_anthropic.ts";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { closedPort, startGateway } from "../helpers/in_process.ts";
import { chatBody } from "./daemon.ts";

Deno.test("failover end to end: headers, attempt log, key cooldown in /health", async () => {
  const broken = startFakeUpstream();
  const healthy = startFakeUpstream();
  const closed = closedPort();
  broken.script({
    kind: "json",
    status: 500,
    body: { error: { message: "boom", type: "server_error" } },
  });
  const gw = startGateway(`
providers:
  broken:
    base_url: ${broken.url}/v1
    keys: [{ key: sk-broken-secret-1111, id: broken-main }]
  down:
    base_url: http://127.0.0.1:${closed}/v1
  healthy:
    base_url: ${healthy.url}/v1
    keys: [{ key: sk-healthy-secret-2222, id: healthy-main }]
routing:
  models:
    gpt-4o: { providers: [broken, healthy] }
    gpt-4o-down: { providers: [down/gpt-4o, healthy/gpt-4o] }
  failover:
    backoff: { initial: 10ms, max: 50ms }
`);
  try {
    let res = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: chatBody("gpt-4o"),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-pilotfish-provider"), "healthy");
    assert.equal(res.headers.get("x-pilotfish-model"), "gpt-4o");
    assert.equal(res.headers.get("x-pilotfish-attempts"), "4");
    await res.body?.cancel();
    assert.equal(
      broken.requests.length,
      3,
      "max_retries (default 2) retries on the broken provider, then the next",
    );

    res = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: chatBody("gpt-4o-down"),
    });
    assert.equal(res.status, 200, "connection refused → next provider");
    assert.equal(res.headers.get("x-pilotfish-attempts"), "2");
    await res.body?.cancel();

    // A 401 cools the key; /health shows it (never the key itself).
    healthy.script({
      kind: "json",
      status: 401,
      body: { error: { message: "Incorrect API key provided: sk-healthy-secret-2222" } },
    });
    res = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: chatBody("healthy/gpt-4o"),
    });
    assert.equal(res.status, 401);
    assert.doesNotMatch(await res.text(), /sk-healthy-secret/);
    const health = await (await gw.request("/health")).json();
    const key = health.providers.healthy.keys[0];
    assert.equal(key.id, "healthy-main");
    assert.equal(key.status, "cooldown");
    assert.equal(key.reason, "auth");
    assert.ok(key.cooldown_until > Date.now() / 1000 + 200);

    await gw.waitForLog(`"outcome":"next"`);
    const logs = gw.logText();
    assert.match(
      logs,
      /"attempts":\[\{"provider":"broken","model":"gpt-4o","key_id":"broken-main","status":500/,
    );
    assert.match(logs, /"reason":"HTTP 500"/);
    assert.match(logs, /"provider":"down".*"reason":"upstream_unreachable"/);
    for (const secret of ["sk-broken-secret-1111", "sk-healthy-secret-2222"]) {
      assert.ok(!logs.includes(secret), `${secret} in the logs`);
    }
  } finally {
    await gw.close();
    await broken.close();
    await healthy.close();
  }
});

Deno.test("hedging end to end: the fast provider answers, the slow request is aborted", async () => {
  const slow = startFakeUpstream();
  const fast = startFakeUpstream();
  // Slow and fast on purpose: the scenario is a hedge racing a slow primary.
  slow.script({ kind: "json", delayMs: 3_000 });
  fast.script({ kind: "json", delayMs: 50 });
  const gw = startGateway(`
providers:
  slow: { base_url: "${slow.url}/v1" }
  fast: { base_url: "${fast.url}/v1" }
routing:
  models:
    gpt-4o: { providers: [slow, fast], hedge_after: 200ms }
`);
  try {
    const started = performance.now();
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: chatBody("gpt-4o"),
    });
    const took = performance.now() - started;
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-pilotfish-provider"), "fast");
    await res.body?.cancel();
    assert.ok(took < 1_500, `answered after ${took} ms (hedge_after 200 + ~50)`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      slow.aborted,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("the slow request was not aborted")), 3_000);
      }),
    ]);
    clearTimeout(timer);
  } finally {
    await gw.close();
    await slow.close();
    await fast.close();
  }
});

Deno.test("a 429 with Retry-After: 1 is retried after about a second", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-only-one }] }
`);
  try {
    up.script({
      kind: "json",
      status: 429,
      headers: { "retry-after": "1" },
      body: { error: { message: "slow down" } },
    });
    const started = performance.now();
    const pending = gw.request("/v1/chat/completions", {
      method: "POST",
      body: chatBody("up/gpt-4o"),
    });
    // The first attempt has its 429; only the retry sees the success.
    await up.received(1);
    up.script({ kind: "json" });
    const res = await pending;
    const took = performance.now() - started;
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-pilotfish-attempts"), "2");
    await res.body?.cancel();
    assert.ok(took >= 950 && took < 3_000, `took ${took} ms`);
    // The backoff is the upstream's doing: logged on the attempt, not Pilotfish's overhead.
    const overhead = Number(res.headers.get("x-pilotfish-overhead-ms"));
    assert.ok(overhead < 500, `overhead ${overhead} ms`);
    const id = res.headers.get("x-request-id")!;
    await gw.waitForLog(`"request_id":"${id}"`);
    const line = JSON.parse(gw.logs.find((l) => l.includes(`"request_id":"${id}"`))!);
    assert.ok(line.attempts[0].backoff_ms >= 1_000, JSON.stringify(line.attempts[0]));
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("an OpenAI request fails over to an Anthropic provider with its tool call intact", async () => {
  const openai = startFakeUpstream();
  const anthropic = startFakeAnthropic();
  openai.script({
    kind: "json",
    status: 503,
    body: { error: { message: "overloaded", type: "server_error" } },
  });
  const gw = startGateway(`
providers:
  openai: { base_url: "${openai.url}/v1", keys: [{ key: sk-openai-0001 }] }
  anthropic: { base_url: "${anthropic.url}/v1", keys: [{ key: sk-ant-0002 }] }
routing:
  models:
    smart: { providers: [openai/gpt-4o, anthropic/claude-sonnet-4-5] }
  failover:
    backoff: { initial: 10ms, max: 20ms }
`);
  const tools = [{
    type: "function",
    function: {
      name: "get_weather",
      description: "Current weather",
      parameters: {
        type: "object",
        properties: { location: { type: "string" } },
        required: ["location"],
      },
    },
  }];
  const messages = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Weather in SF and Paris?" },
    {
      role: "assistant",
      content: null,
      tool_calls: [{
        id: "call_1",
        type: "function",
        function: { name: "get_weather", arguments: '{"location":"SF"}' },
      }],
    },
    { role: "tool", tool_call_id: "call_1", content: "18C, fog" },
  ];
  try {
    const client = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "unused", maxRetries: 0 });
    const { data: completion, response } = await client.chat.completions.create({
      model: "smart",
      messages: messages as OpenAI.Chat.ChatCompletionMessageParam[],
      tools: tools as OpenAI.Chat.ChatCompletionTool[],
    }).withResponse();
    assert.equal(response.headers.get("x-pilotfish-provider"), "anthropic");
    assert.equal(response.headers.get("x-pilotfish-attempts"), "4", "openai ×3, then anthropic");
    const call = completion.choices[0]?.message.tool_calls?.[0];
    assert.equal(completion.choices[0]?.finish_reason, "tool_calls");
    assert.ok(call && call.type === "function");
    assert.equal(call.function.name, "get_weather");
    assert.deepEqual(JSON.parse(call.function.arguments), {
      location: "San Francisco, CA",
      unit: "celsius",
    });

    // What Anthropic received: the same conversation, translated.
    const sent = JSON.parse(anthropic.requests[0]!.body);
    assert.equal(anthropic.requests[0]!.path, "/v1/messages");
    assert.equal(anthropic.requests[0]!.headers.get("x-api-key"), "sk-ant-0002");
    assert.equal(anthropic.requests[0]!.headers.get("authorization"), null);
    assert.equal(sent.model, "claude-sonnet-4-5");
    assert.equal(sent.system, "Be brief.");
    assert.deepEqual(sent.tools[0], {
      name: "get_weather",
      description: "Current weather",
      input_schema: tools[0]!.function.parameters,
    });
    assert.deepEqual(sent.messages[1].content[0], {
      type: "tool_use",
      id: "call_1",
      name: "get_weather",
      input: { location: "SF" },
    });
    assert.equal(sent.messages[2].content[0].type, "tool_result");
    assert.equal(sent.messages[2].content[0].tool_use_id, "call_1");

    // Streamed: tool arguments split across input_json_delta events arrive whole.
    const stream = await client.chat.completions.create({
      model: "smart",
      messages: messages as OpenAI.Chat.ChatCompletionMessageParam[],
      tools: tools as OpenAI.Chat.ChatCompletionTool[],
      stream: true,
    });
    const args = new Map<number, string>();
    const names = new Map<number, string>();
    let finish: string | null = null;
    for await (const chunk of stream) {
      for (const tc of chunk.choices[0]?.delta.tool_calls ?? []) {
        if (tc.function?.name) names.set(tc.index, tc.function.name);
        args.set(tc.index, (args.get(tc.index) ?? "") + (tc.function?.arguments ?? ""));
      }
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(names.get(0), "get_weather");
    assert.equal(JSON.parse(args.get(0)!).location, "San Francisco, CA");
    assert.equal(finish, "tool_calls");
  } finally {
    await gw.close();
    await openai.close();
    await anthropic.close();
  }
});

Deno.test("failover exhausted: the error names the last provider, its model and the attempts", async () => {
  const first = startFakeUpstream();
  const second = startFakeUpstream();
  for (const up of [first, second]) {
    up.script({ kind: "json", status: 503, body: { error: { message: "overloaded" } } });
  }
  const gw = startGateway(`
providers:
  first: { base_url: "${first.url}/v1" }
  second: { base_url: "${second.url}/v1" }
routing:
  models:
    smart: { providers: [first/gpt-4o, second/gpt-4o-mini] }
  failover:
    max_retries: 1
    max_attempts: 3
    backoff: { initial: 1ms, max: 2ms }
`);
  try {
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: chatBody("smart"),
    });
    assert.equal(res.status, 503, "the upstream's own status, not a synthetic one");
    assert.equal(res.headers.get("x-pilotfish-provider"), "second");
    assert.equal(res.headers.get("x-pilotfish-model"), "gpt-4o-mini");
    assert.equal(res.headers.get("x-pilotfish-attempts"), "3", "max_attempts caps the total");
    assert.equal(res.headers.get("x-llm-proxy-error-class"), null, "no breaker, no signal");
    await res.body?.cancel();
    assert.equal(first.requests.length, 2, "max_retries: 1 → two tries on the first");
    assert.equal(second.requests.length, 1, "then the cap");
  } finally {
    await gw.close();
    await first.close();
    await second.close();
  }
});

Deno.test("a 5xx outside retry_on is not retried there but fails over (Butter); a 4xx is passed back", async () => {
  const anthropic = startFakeAnthropic();
  const backup = startFakeUpstream();
  const gw = startGateway(`
providers:
  anthropic: { base_url: "${anthropic.url}", keys: [{ key: sk-ant-configured }] }
  openrouter: { type: openai, base_url: "${backup.url}/v1", keys: [{ key: sk-or-configured }] }
routing:
  failover:
    enabled: true
    max_retries: 3
    retry_on: [429, 500, 502, 503, 504]
    backoff: { initial: 5ms, max: 10ms }
  models:
    "claude-sonnet-4-20250514": { providers: [anthropic, openrouter] }
`);
  const ask = () =>
    gw.request("/v1/chat/completions", {
      method: "POST",
      body: chatBody("claude-sonnet-4-20250514"),
    });
  try {
    anthropic.script({ errorStatus: 529 });
    const res = await ask();
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-pilotfish-provider"), "openrouter");
    assert.equal(res.headers.get("x-pilotfish-attempts"), "2", "529 is not in retry_on: no retry");
    await res.body?.cancel();
    assert.equal(anthropic.requests.length, 1);
    anthropic.script({ errorStatus: 400, errorFixture: "error_400" });
    const bad = await ask();
    assert.equal(bad.status, 400);
    assert.equal(bad.headers.get("x-pilotfish-provider"), "anthropic");
    await bad.body?.cancel();
    assert.equal(backup.requests.length, 1, "a client's error never reaches the next provider");
  } finally {
    await gw.close();
    await anthropic.close();
    await backup.close();
  }
});

Deno.test("llm-gateway fallbackChain: a chained provider's 404 for a model it does not list is not the answer to an outage", async () => {
  const main = startFakeUpstream();
  const other = startFakeUpstream();
  // llm-gateway's quick start: each provider lists its models; the chain goes on under the
  // same model name.
  const gw = startGateway(`
providers:
  - { name: openai, baseUrl: "${main.url}/v1", apiKey: sk-main-0001, models: [gpt-4], maxRetries: 0 }
  - { name: other, baseUrl: "${other.url}/v1", apiKey: sk-other-0001, models: [other-1], maxRetries: 0 }
routing:
  defaultProvider: openai
  fallbackChain: [openai, other]
`);
  const ask = () => gw.request("/v1/chat/completions", { method: "POST", body: chatBody("gpt-4") });
  const notFound = { error: { message: "model: gpt-4", type: "not_found_error" } };
  try {
    // The chained provider does not know gpt-4: the client gets the outage, not its 404.
    main.script({ kind: "json", status: 503, body: { error: { message: "down" } } });
    other.script({ kind: "json", status: 404, body: notFound });
    const res = await ask();
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("x-pilotfish-provider"), "openai");
    await res.body?.cancel();
    assert.equal(other.requests.length, 1, "it was still tried");
    // One that answers it anyway is the answer, as before.
    main.script({ kind: "json", status: 503, body: { error: { message: "down" } } });
    other.script({ kind: "json" });
    const ok = await ask();
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("x-pilotfish-provider"), "other");
    await ok.body?.cancel();
    // A 404 from the provider that lists the model is its own answer.
    main.script({ kind: "json", status: 404, body: notFound });
    const own = await ask();
    assert.equal(own.status, 404);
    await own.body?.cancel();
  } finally {
    await gw.close();
    await main.close();
    await other.close();
  }
});

Deno.test("llm-gateway fallbackChain: a 404 mid-chain for a model that provider does not list goes on down the chain", async () => {
  const first = startFakeUpstream();
  const middle = startFakeUpstream();
  const last = startFakeUpstream();
  const gw = startGateway(`
providers:
  - { name: openai, baseUrl: "${first.url}/v1", apiKey: sk-first-0001, models: [gpt-4], maxRetries: 0 }
  - { name: anthropic, type: openai, baseUrl: "${middle.url}/v1", apiKey: sk-mid-0001, models: [claude-3-haiku], maxRetries: 0 }
  - { name: azure, type: openai, baseUrl: "${last.url}/v1", apiKey: sk-last-0001, maxRetries: 0 }
routing:
  defaultProvider: openai
  fallbackChain: [openai, anthropic, azure]
`);
  try {
    first.script({ kind: "json", status: 503, body: { error: { message: "down" } } });
    middle.script({ kind: "json", status: 404, body: { error: { message: "no gpt-4 here" } } });
    last.script({ kind: "json" });
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: chatBody("gpt-4"),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-pilotfish-provider"), "azure");
    assert.equal(res.headers.get("x-pilotfish-attempts"), "3");
    await res.body?.cancel();
    // A 404 from a mid-chain provider that lists the model is the answer: the chain stops.
    first.script({ kind: "json", status: 503, body: { error: { message: "down" } } });
    middle.script({ kind: "json", status: 404, body: { error: { message: "gone" } } });
    const own = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: chatBody("claude-3-haiku"),
    });
    assert.equal(own.status, 404);
    await own.body?.cancel();
    assert.equal(last.requests.length, 1, "not tried after a listing provider's 404");
    // A model no provider lists starts at the default provider: with no outage before it,
    // its 400 is the request's answer (not sent on to more vendors).
    first.script({ kind: "json", status: 400, body: { error: { message: "context too long" } } });
    const first400 = await gw.request("/v1/chat/completions", {
      method: "POST",
      body: chatBody("unlisted-model"),
    });
    assert.equal(first400.status, 400);
    await first400.body?.cancel();
    assert.equal(middle.requests.length, 2, "the chain did not go on");
  } finally {
    await gw.close();
    await first.close();
    await middle.close();
    await last.close();
  }
});
