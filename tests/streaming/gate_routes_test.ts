/**
 * The stream gate through the real app: keep-alives then silence fail over within
 * `first_chunk_timeout`; content then silence ends the stream after `stream_idle_timeout`
 * with an error event in the route's format (OpenAI error chunk, Anthropic `event: error`,
 * Responses `response.failed`), usage recorded, log outcome `idle_timeout`. Timers run on
 * the injected schedule and clock: the tests fire them, nothing sleeps.
 */
import assert from "node:assert/strict";
import { startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startGateway, testClock } from "../helpers/in_process.ts";
import { manualSchedule } from "../helpers/manual_schedule.ts";

const chunk = (delta: Record<string, unknown>) =>
  `data: ${
    JSON.stringify({
      id: "chatcmpl-gate",
      object: "chat.completion.chunk",
      created: 1_700_000_000,
      model: "gpt-4o-mini",
      choices: [{ index: 0, delta, finish_reason: null }],
    })
  }\n\n`;

const post = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

Deno.test("keep-alive comments then silence: failover within first_chunk_timeout", async () => {
  const silent = startFakeUpstream();
  const healthy = startFakeUpstream();
  silent.script({
    kind: "sse",
    events: [": OPENROUTER PROCESSING\n\n", chunk({ role: "assistant", content: "" })],
    thenHang: true,
  });
  healthy.script({ kind: "stream" });
  const s = manualSchedule();
  const gw = startGateway(
    `
providers:
  silent: { base_url: "${silent.url}/v1", keys: [{ key: sk-silent-0001 }] }
  healthy: { base_url: "${healthy.url}/v1", keys: [{ key: sk-healthy-0001 }] }
routing:
  models:
    m: { providers: [silent, healthy] }
  failover: { first_chunk_timeout: 5s }
`,
    {},
    { schedule: s.schedule },
  );
  try {
    const pending = gw.request(
      "/v1/chat/completions",
      post({ model: "m", stream: true, messages: [{ role: "user", content: "hi" }] }),
    );
    const timer = await s.next((ms) => ms > 4_000 && ms <= 5_000);
    timer.fire();
    const res = await pending;
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-pilotfish-provider"), "healthy");
    assert.equal(res.headers.get("x-pilotfish-attempts"), "2");
    const text = await res.text();
    assert.match(text, /Hello/);
    assert.doesNotMatch(text, /OPENROUTER/, "nothing of the silent attempt reached the client");
    await silent.cancelled;
    await gw.waitForLog('"status":200');
    const line = JSON.parse(
      gw.logs.find((l) => l.includes('"request"') || l.includes("attempts"))!,
    );
    assert.equal(line.attempts[0].provider, "silent");
    assert.equal(line.attempts[0].outcome, "next");
  } finally {
    await gw.close();
    await silent.close();
    await healthy.close();
  }
});

Deno.test("an upstream that never sends its headers is cut by first_chunk_timeout too", async () => {
  const silent = startFakeUpstream();
  const healthy = startFakeUpstream();
  silent.script({ kind: "hang" });
  healthy.script({ kind: "stream" });
  // The provider's own timeout (60 s) is far off: only first_chunk_timeout can move it on.
  // Before the headers the upstream call's own (real) timer runs, so the budget is short.
  const gw = startGateway(`
providers:
  silent: { base_url: "${silent.url}/v1", keys: [{ key: sk-silent-0001 }] }
  healthy: { base_url: "${healthy.url}/v1", keys: [{ key: sk-healthy-0001 }] }
routing:
  models:
    m: { providers: [silent, healthy], first_chunk_timeout: 200ms }
`);
  try {
    const res = await gw.request(
      "/v1/chat/completions",
      post({ model: "m", stream: true, messages: [{ role: "user", content: "hi" }] }),
    );
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-pilotfish-provider"), "healthy");
    assert.match(await res.text(), /Hello/);
    await gw.waitForLog('"status":200');
    const line = JSON.parse(gw.logs.find((l) => l.includes("attempts"))!);
    assert.equal(line.attempts[0].provider, "silent");
    assert.equal(line.attempts[0].outcome, "next");
    assert.equal(line.attempts[0].reason, "upstream_timeout");
    assert.ok(line.attempts[0].duration_ms < 5_000, JSON.stringify(line.attempts[0]));
  } finally {
    await gw.close();
    await silent.close();
    await healthy.close();
  }
});

Deno.test("first content then silence: an in-format error event after stream_idle_timeout", async (t) => {
  const up = startFakeUpstream();
  const s = manualSchedule();
  const clock = testClock();
  const gw = startGateway(
    `
providers:
  compat: { base_url: "${up.url}/v1", keys: [{ key: sk-compat-0001 }] }
  claude: { type: anthropic, base_url: "${up.url}/v1", keys: [{ key: sk-ant-0001 }] }
  native: { base_url: "${up.url}/v1", keys: [{ key: sk-native-0001 }], responses: native }
routing:
  models:
    m: { providers: [compat], stream_idle_timeout: 30s }
    c: { providers: [claude], stream_idle_timeout: 30s }
    r: { providers: [native], stream_idle_timeout: 30s }
`,
    {},
    { schedule: s.schedule, now: clock.now },
  );
  /** What an OpenAI-compatible upstream sends before going silent (usage comes last). */
  const OPENAI_EVENTS = [
    chunk({ role: "assistant", content: "" }),
    chunk({ content: "Partial answer" }),
  ];
  /** An Anthropic upstream counts the input up front, in message_start. */
  const ANTHROPIC_EVENTS = [
    `event: message_start\ndata: ${
      JSON.stringify({
        type: "message_start",
        message: {
          id: "msg_gate",
          type: "message",
          role: "assistant",
          model: "claude-x",
          content: [],
          stop_reason: null,
          usage: { input_tokens: 25, output_tokens: 1 },
        },
      })
    }\n\n`,
    'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Partial answer"}}\n\n',
  ];
  const cases: {
    route: string;
    path: string;
    body: Record<string, unknown>;
    events?: string[];
    /** The input tokens the upstream reported before going silent (logged); none if absent. */
    prompt?: number;
    check(text: string): void;
  }[] = [
    {
      route: "chat completions (relayed bytes): an OpenAI error chunk",
      path: "/v1/chat/completions",
      body: { model: "m", stream: true, messages: [{ role: "user", content: "hi" }] },
      check(text) {
        const last = text.trim().split("\n\n").at(-1)!;
        const error = JSON.parse(last.slice("data: ".length)).error;
        assert.equal(error.type, "timeout_error");
        assert.match(error.message, /sent nothing for 30000 ms \(stream_idle_timeout\)/);
      },
    },
    {
      route: "messages (translated): Anthropic's event: error",
      path: "/v1/messages",
      body: {
        model: "m",
        stream: true,
        max_tokens: 10,
        messages: [{ role: "user", content: "hi" }],
      },
      check(text) {
        const last = text.trim().split("\n\n").at(-1)!;
        assert.match(last, /^event: error\n/);
        assert.match(JSON.parse(last.split("\ndata: ")[1]!).error.message, /sent nothing/);
      },
    },
    {
      route: "messages (Anthropic, relayed): event: error, the input usage it reported logged",
      path: "/v1/messages",
      body: {
        model: "c",
        stream: true,
        max_tokens: 10,
        messages: [{ role: "user", content: "hi" }],
      },
      events: ANTHROPIC_EVENTS,
      prompt: 25,
      check(text) {
        assert.match(text, /"text":"Partial answer"/);
        assert.match(text.trim().split("\n\n").at(-1)!, /^event: error\n/);
      },
    },
    {
      route: "responses (translated from Anthropic): response.failed, usage so far logged",
      path: "/v1/responses",
      body: { model: "c", stream: true, input: "hi" },
      events: ANTHROPIC_EVENTS,
      prompt: 25,
      check(text) {
        const last = text.trim().split("\n\n").at(-1)!;
        assert.match(last, /^event: response.failed\n/);
      },
    },
    {
      route: "responses (relayed natively): response.failed numbered after the upstream's",
      path: "/v1/responses",
      body: { model: "r", stream: true, input: "hi" },
      events: [
        'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","output":[]}}\n\n',
        'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Partial answer"}\n\n',
        // A comment is no event: the numbering goes on from the last one.
        ": keepalive\n\n",
      ],
      check(text) {
        const events = text.trim().split("\n\n").filter((e) => !e.startsWith(":"))
          .map((e) => JSON.parse(e.split("\ndata: ")[1]!));
        const last = events.at(-1);
        // As a translated stream ends: an `error` event (the OpenAI SDKs throw on it), then
        // `response.failed`, both numbered on.
        assert.deepEqual(events.at(-2), {
          type: "error",
          code: "server_error",
          message: last.response.error.message,
          param: null,
          sequence_number: 2,
        });
        assert.equal(last.type, "response.failed");
        assert.equal(last.sequence_number, 3);
        assert.equal(last.response.id, "resp_1");
        assert.equal(last.response.status, "failed");
        assert.match(last.response.error.message, /sent nothing/);
      },
    },
    {
      route: "responses (translated): response.failed, numbered after what was sent",
      path: "/v1/responses",
      body: { model: "m", stream: true, input: "hi" },
      check(text) {
        const events = text.trim().split("\n\n").map((e) => JSON.parse(e.split("\ndata: ")[1]!));
        const last = events.at(-1);
        assert.equal(events.at(-2).type, "error");
        assert.equal(last.type, "response.failed");
        assert.equal(last.sequence_number, events.length - 1);
        assert.equal(last.response.status, "failed");
        assert.match(last.response.error.message, /sent nothing/);
        assert.equal(
          events.filter((e) => e.type === "response.output_text.delta").map((e) => e.delta)
            .join(""),
          "Partial answer",
        );
      },
    },
  ];
  try {
    for (const c of cases) {
      await t.step(c.route, async () => {
        up.script({ kind: "sse", events: c.events ?? OPENAI_EVENTS, thenHang: true });
        const res = await gw.request(c.path, post(c.body));
        assert.equal(res.status, 200);
        const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
        let text = "";
        let done = false;
        const reading = (async () => {
          while (true) {
            const r = await reader.read();
            if (r.done) break;
            text += r.value;
          }
          done = true;
        })();
        // Fire the watchdog until it finds the upstream silent while the client waits.
        while (!done) {
          const timer = await Promise.race([
            s.next((ms) => ms <= 30_000),
            reading.then(() => null),
          ]);
          if (timer === null) break;
          clock.advance(30_000);
          timer.fire();
          await Promise.resolve();
        }
        await reading;
        c.check(text);
        await gw.waitForLog('"outcome":"idle_timeout"');
        const line = JSON.parse(gw.logs.findLast((l) => l.includes('"outcome":"idle_timeout"'))!);
        assert.equal(line.level, "error");
        // What the upstream reported before it went silent is kept; without a report the
        // stream is billed an estimate of what was sent, and the line says it is one.
        if (c.prompt !== undefined) assert.equal(line.prompt_tokens, c.prompt);
        else assert.equal(line.usage_estimated, true);
        gw.logs.length = 0;
      });
    }
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("a native passthrough stream silent past routing.failover.stream_idle_timeout is cut, not held open", async () => {
  const up = startFakeUpstream();
  const s = manualSchedule();
  const gw = startGateway(
    `
providers:
  up: { base_url: "${up.url}/v1", keys: [{ key: sk-up-0001 }] }
routing:
  failover: { stream_idle_timeout: 20s }
`,
    {},
    { schedule: s.schedule },
  );
  try {
    up.script({
      kind: "sse",
      events: [chunk({ role: "assistant", content: "" }), chunk({ content: "Partial" })],
      thenHang: true,
    });
    const res = await gw.request(
      "/native/up/chat/completions",
      post({ model: "gpt-4o-mini", stream: true, messages: [{ role: "user", content: "hi" }] }),
    );
    assert.equal(res.status, 200);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const partial = Promise.withResolvers<void>();
    const reading = (async () => {
      while (true) {
        const r = await reader.read();
        if (r.done) return "ended";
        text += r.value;
        if (text.includes("Partial")) partial.resolve();
      }
    })().catch(() => "cut");
    // Everything the upstream sent has arrived; the relay's watchdog now waits on silence.
    await partial.promise;
    (await s.next((ms) => ms === 20_000)).fire();
    // The bytes are the provider's: the body ends abruptly (the client sees an error), never
    // quietly as if the answer were whole.
    assert.equal(await reading, "cut");
    assert.match(text, /Partial/);
    await gw.waitForLog('"outcome":"idle_timeout"');
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("the gate's timers: x-gateway over the model's over routing.failover", async (t) => {
  const silent = startFakeUpstream();
  const s = manualSchedule();
  const gw = startGateway(
    `
providers:
  silent: { base_url: "${silent.url}/v1", keys: [{ key: sk-silent-0001 }] }
routing:
  models:
    m: { providers: [silent], first_chunk_timeout: 7s }
    n: { providers: [silent] }
  failover: { first_chunk_timeout: 5s }
`,
    {},
    { schedule: s.schedule },
  );
  const cases: [string, Record<string, unknown>, number][] = [
    ["routing.failover", { model: "n" }, 5_000],
    ["the model's", { model: "m" }, 7_000],
    ["x-gateway's", { model: "m", "x-gateway": { first_chunk_timeout: 2 } }, 2_000],
  ];
  try {
    for (const [name, body, ms] of cases) {
      await t.step(`${name}: ${ms} ms, then 504 with one candidate`, async () => {
        silent.script({ kind: "sse", events: [": ping\n\n"], thenHang: true });
        const pending = gw.request(
          "/v1/chat/completions",
          post({ ...body, stream: true, messages: [{ role: "user", content: "hi" }] }),
        );
        const timer = await s.next((t) => t > 1_000 && t <= ms && t > ms - 1_000);
        timer.fire();
        const res = await pending;
        const json = await res.json();
        assert.equal(res.status, 504, JSON.stringify(json));
        assert.equal(json.error.type, "timeout_error");
        // The setting, not what was left of it when the stream's headers came.
        assert.match(json.error.message, new RegExp(`sent no content within ${ms} ms \\(first`));
      });
    }
    await t.step("a bad x-gateway timer is a 400 naming it", async () => {
      const res = await gw.request(
        "/v1/chat/completions",
        post({
          model: "m",
          stream: true,
          messages: [{ role: "user", content: "hi" }],
          "x-gateway": { stream_idle_timeout: -1 },
        }),
      );
      const json = await res.json();
      assert.equal(res.status, 400);
      assert.equal(json.error.param, "x-gateway.stream_idle_timeout");
    });
  } finally {
    await gw.close();
    await silent.close();
  }
});

Deno.test("a stream with no content by the request's deadline is a 504, upstream released", async () => {
  const silent = startFakeUpstream();
  silent.script({
    kind: "sse",
    events: [": keep-alive\n\n", chunk({ role: "assistant", content: "" })],
    thenHang: true,
  });
  // No first_chunk_timeout: the request's deadline ends the wait, on the real coarse timer.
  const gw = startGateway(`
providers:
  silent: { base_url: "${silent.url}/v1", keys: [{ key: sk-silent-0001 }] }
routing:
  failover: { deadline: 300ms }
`);
  try {
    const started = performance.now();
    const res = await gw.request(
      "/v1/chat/completions",
      post({
        model: "silent/gpt-4o-mini",
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }),
    );
    assert.equal(res.status, 504);
    const body = await res.json();
    assert.equal(body.error.code, "upstream_timeout");
    assert.match(body.error.message, /sent no stream data within (2|3)\d\d ms/);
    assert.ok(performance.now() - started < 5_000, "the deadline, not a later one, ended it");
    await silent.cancelled;
  } finally {
    await gw.close();
    await silent.close();
  }
});

Deno.test("a stream whose first event is an error fails over, on every wire; the last one's error is the answer", async (t) => {
  const failing = startFakeUpstream();
  const healthy = startFakeUpstream();
  const gw = startGateway(`
providers:
  failing: { base_url: "${failing.url}/v1", keys: [{ key: sk-failing-0001 }], responses: native }
  claude: { type: anthropic, base_url: "${failing.url}/v1", keys: [{ key: sk-ant-0001 }] }
  healthy: { base_url: "${healthy.url}/v1", keys: [{ key: sk-healthy-0001 }] }
routing:
  models:
    m: { providers: [failing, healthy] }
    c: { providers: [claude, healthy] }
    solo: { providers: [failing] }
  failover: { max_retries: 0 }
`);
  const openAIError = `data: ${
    JSON.stringify({
      error: { message: "The server had an error processing your request.", type: "server_error" },
    })
  }\n\n`;
  const anthropicEvent = (type: string, data: Record<string, unknown>) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  const messagesBody = {
    max_tokens: 20,
    stream: true,
    messages: [{ role: "user", content: "hi" }],
  };
  try {
    const cases: [string, string, Record<string, unknown>, string[]][] = [
      ["chat, error first", "/v1/chat/completions", {
        model: "m",
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }, [openAIError]],
      ["chat, after a keep-alive and a role chunk", "/v1/chat/completions", {
        model: "m",
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }, [": keep-alive\n\n", chunk({ role: "assistant", content: "" }), openAIError]],
      ["messages translated", "/v1/messages", { model: "m", ...messagesBody }, [openAIError]],
      ["messages native, error after message_start", "/v1/messages", {
        model: "c",
        ...messagesBody,
      }, [
        anthropicEvent("message_start", {
          message: {
            id: "msg_1",
            type: "message",
            role: "assistant",
            model: "x",
            content: [],
            usage: { input_tokens: 1, output_tokens: 0 },
          },
        }),
        anthropicEvent("error", { error: { type: "overloaded_error", message: "Overloaded" } }),
      ]],
      ["responses native", "/v1/responses", { model: "m", stream: true, input: "hi" }, [
        `event: response.created\ndata: ${
          JSON.stringify({
            type: "response.created",
            sequence_number: 0,
            response: { id: "resp_1", status: "in_progress" },
          })
        }\n\n`,
        `event: error\ndata: ${
          JSON.stringify({
            type: "error",
            code: "server_error",
            message: "boom",
            param: null,
            sequence_number: 1,
          })
        }\n\n`,
      ]],
    ];
    for (const [name, path, body, events] of cases) {
      await t.step(name, async () => {
        failing.script({ kind: "sse", events });
        healthy.script({ kind: "stream", chunks: ["Fine"] });
        const res = await gw.request(path, post(body));
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("x-pilotfish-provider"), "healthy", name);
        assert.equal(res.headers.get("x-pilotfish-attempts"), "2", name);
        const text = await res.text();
        assert.ok(text.includes("Fine"), text);
        assert.ok(!text.includes("error processing"), text);
      });
    }
    await t.step("no provider left: the upstream's error, with its inferred status", async () => {
      failing.script({
        kind: "sse",
        events: [
          `data: ${
            JSON.stringify({ error: { message: "Slow down", type: "rate_limit_exceeded" } })
          }\n\n`,
        ],
      });
      const res = await gw.request(
        "/v1/chat/completions",
        post({ model: "solo", stream: true, messages: [{ role: "user", content: "hi" }] }),
      );
      assert.equal(res.status, 429);
      const err = (await res.json()).error;
      assert.equal(err.message, "Slow down");
      assert.equal(err.type, "rate_limit_exceeded");
    });
  } finally {
    await gw.close();
    await failing.close();
    await healthy.close();
  }
});
