import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { completionBody, startFakeUpstream } from "../fakes/fake_upstream.ts";
import { startFakeAnthropic } from "../fakes/fake_anthropic.ts";
import { startFakeGemini } from "../fakes/fake_gemini.ts";
import { startGateway, testClock } from "../helpers/in_process.ts";
import { realSchedule } from "../../src/pipeline/stages.ts";
import { startRedisServer } from "../helpers/redis_server.ts";
import { json, lineOf } from "../usage/support.ts";

const HI = [{ role: "user", content: "Hi" }];
const ADMIN = "admin-secret-0001";

function gatewayYaml(upstream: string, cache: string): string {
  return `
server: { admin_token: ${ADMIN} }
providers:
  up: { type: openai, base_url: ${upstream}, keys: [{ key: sk-up }] }
routing:
  failover: { enabled: false }
pricing:
  models:
    "up/gpt-4o-mini": { input: 1, output: 2 }
cache:
${cache}
`;
}

Deno.test("response cache (memory): hit, miss, skip rules, key sensitivity, errors, TTL, clear", async (t) => {
  const up = startFakeUpstream();
  const clock = testClock();
  const gw = startGateway(
    gatewayYaml(up.url, "  enabled: true\n  backend: memory\n  ttl: 10m\n  maxSize: 1"),
    {},
    { now: clock.now },
  );
  const chat = (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
    gw.request(
      "/v1/chat/completions",
      json({ model: "up/gpt-4o-mini", messages: HI, ...body }, headers),
    );
  const upstreamCalls = () => up.requests.length;
  try {
    await t.step("the first request misses and goes upstream; the same one then hits", async () => {
      const first = await chat({});
      assert.equal(first.status, 200);
      assert.equal(first.headers.get("x-cache"), "MISS");
      const a = await first.json();
      assert.equal((await lineOf(gw, first)).cache, "miss");
      const second = await chat({});
      assert.equal(second.headers.get("x-cache"), "HIT");
      assert.equal(second.headers.get("x-butter-cache"), "hit");
      assert.equal(second.headers.get("x-pilotfish-provider"), "up");
      assert.equal(second.headers.get("x-pilotfish-cost-usd"), "0", "a hit costs nothing");
      assert.deepEqual(await second.json(), a);
      const line = await lineOf(gw, second);
      assert.equal(line.cache, "hit");
      assert.equal(line.cost_usd, 0);
      assert.equal(upstreamCalls(), 1);
    });

    await t.step("field order and delivery fields do not change the key", async () => {
      const res = await gw.request(
        "/v1/chat/completions",
        json({ messages: HI, user: "someone", model: "up/gpt-4o-mini", metadata: { a: "b" } }),
      );
      assert.equal(res.headers.get("x-cache"), "HIT");
      await res.body?.cancel();
    });

    await t.step("every answer-changing field is in the key", async (t) => {
      const variants: [string, Record<string, unknown>][] = [
        ["messages", { messages: [{ role: "user", content: "Hello" }] }],
        ["seed", { seed: 7 }],
        ["response_format", { response_format: { type: "json_object" } }],
        ["tools", {
          tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }],
        }],
        ["tool_choice", { tool_choice: "none" }],
        ["stop", { stop: ["x"] }],
        ["n", { n: 2 }],
        ["top_p", { top_p: 0.5 }],
        ["max_tokens", { max_tokens: 5 }],
        ["model", { model: "up/gpt-4o" }],
        // Absent means the vendor's default (1 for OpenAI): not the same answer as 0.
        ["temperature", { temperature: 0 }],
      ];
      for (const [name, change] of variants) {
        await t.step(name, async () => {
          const before = upstreamCalls();
          const res = await chat(change);
          assert.equal(res.headers.get("x-cache"), "MISS", name);
          await res.body?.cancel();
          assert.equal(upstreamCalls(), before + 1);
        });
      }
    });

    await t.step(
      "skip rules: x-gateway.cache false, Cache-Control no-cache, temperature > 0",
      async () => {
        for (
          const [body, headers] of [
            [{ "x-gateway": { cache: false } }, {}],
            [{}, { "cache-control": "no-cache" }],
            [{ temperature: 0.7 }, {}],
          ] as [Record<string, unknown>, Record<string, string>][]
        ) {
          const before = upstreamCalls();
          const res = await chat(body, headers);
          assert.equal(res.status, 200);
          assert.equal(res.headers.get("x-cache"), null, JSON.stringify([body, headers]));
          await res.body?.cancel();
          assert.equal(upstreamCalls(), before + 1);
        }
      },
    );

    await t.step("x-gateway.cache: true opts a sampled request (temperature > 0) in", async () => {
      const body = { temperature: 0.7, seed: 77, "x-gateway": { cache: true } };
      const before = upstreamCalls();
      const miss = await chat(body);
      assert.equal(miss.headers.get("x-cache"), "MISS");
      await miss.body?.cancel();
      const hit = await chat(body);
      assert.equal(hit.headers.get("x-cache"), "HIT");
      await hit.body?.cancel();
      assert.equal(upstreamCalls(), before + 1);
    });

    await t.step("streaming requests are not cached by default", async () => {
      up.script({ kind: "stream" });
      const res = await chat({ stream: true });
      assert.equal(res.headers.get("x-cache"), null);
      await res.text();
      up.script({ kind: "json" });
    });

    await t.step("errors are never cached", async () => {
      up.script({
        kind: "json",
        status: 500,
        body: { error: { message: "boom", type: "server_error" } },
      });
      const bad = await chat({ seed: 500 });
      assert.equal(bad.status, 500);
      // It was looked up: the error says so too.
      assert.equal(bad.headers.get("x-cache"), "MISS");
      await bad.body?.cancel();
      up.script({ kind: "json" });
      const again = await chat({ seed: 500 });
      assert.equal(again.status, 200);
      assert.equal(again.headers.get("x-cache"), "MISS");
      await again.body?.cancel();
    });

    await t.step("a 200 that is an error or holds no answer is never cached", async (t) => {
      const bodies: [string, string][] = [
        ["an error object", JSON.stringify({ error: { message: "quota", type: "server_error" } })],
        [
          "an error beside choices",
          JSON.stringify({ ...completionBody("x"), error: { message: "e" } }),
        ],
        ["no choices", JSON.stringify({ ...completionBody("x"), choices: [] })],
        ["not JSON inside", '{"choices":[{"index":0,}'],
      ];
      for (const [name, body] of bodies) {
        await t.step(name, async () => {
          const before = upstreamCalls();
          for (let i = 0; i < 2; i++) {
            up.script({ kind: "json", body });
            const res = await chat({ seed: 700 });
            assert.equal(res.headers.get("x-cache"), "MISS", `${name}, request ${i + 1}`);
            await res.body?.cancel();
          }
          assert.equal(upstreamCalls(), before + 2);
        });
      }
      up.script({ kind: "json" });
    });

    await t.step(
      "an answer as its provider wrote it (indented, quoted words) is kept as written",
      async () => {
        const answer = completionBody('He said "error" twice.');
        const text = JSON.stringify(answer, null, 2) + "\n";
        up.script({ kind: "json", body: text });
        const miss = await chat({ seed: 701 });
        assert.equal(miss.headers.get("x-cache"), "MISS");
        assert.equal(await miss.text(), text);
        up.script({ kind: "json" });
        const hit = await chat({ seed: 701 });
        assert.equal(hit.headers.get("x-cache"), "HIT");
        assert.equal(await hit.text(), text);
      },
    );

    await t.step("an entry expires after cache.ttl", async () => {
      clock.advance(11 * 60_000);
      const res = await chat({});
      assert.equal(res.headers.get("x-cache"), "MISS");
      await res.body?.cancel();
    });

    await t.step("a prompt past 16,383 characters (keyed by its digest) hits too", async () => {
      const long = (c: string) => [{ role: "user", content: "x".repeat(20_000) + c }];
      const before = upstreamCalls();
      const miss = await chat({ messages: long("a") });
      assert.equal(miss.headers.get("x-cache"), "MISS");
      const text = await miss.text();
      const hit = await chat({ messages: long("a") });
      assert.equal(hit.headers.get("x-cache"), "HIT");
      assert.equal(await hit.text(), text);
      const other = await chat({ messages: long("b") });
      assert.equal(other.headers.get("x-cache"), "MISS");
      await other.body?.cancel();
      assert.equal(upstreamCalls(), before + 2);
    });

    await t.step("usage counts hits and misses", async () => {
      const usage = await gw.request("/api/v1/usage", {
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      const report = await usage.json();
      assert.equal(report.cache_hits, 5);
      // Everything not answered from the cache is a miss (the uncached stream and the error
      // too): the two add up to the requests, as in llm-gateway's README.
      assert.equal(report.cache_hits + report.cache_misses, report.total_requests);
      assert.ok(report.cache_misses >= 13, `misses: ${report.cache_misses}`);
    });

    await t.step("a hit's body is the miss's, byte for byte, with the same headers", async () => {
      const first = await chat({ seed: 4242 });
      assert.equal(first.headers.get("x-cache"), "MISS");
      const text = await first.text();
      const second = await chat({ seed: 4242 });
      assert.equal(second.headers.get("x-cache"), "HIT");
      assert.equal(await second.text(), text);
      for (const h of ["content-type", "x-pilotfish-provider", "x-pilotfish-model"]) {
        assert.equal(second.headers.get(h), first.headers.get(h), h);
      }
    });

    await t.step("POST /api/v1/cache/clear empties it (admin token required)", async () => {
      const denied = await gw.request("/api/v1/cache/clear", { method: "POST" });
      assert.equal(denied.status, 401);
      await denied.body?.cancel();
      const cleared = await gw.request("/api/v1/cache/clear", {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      assert.equal(cleared.status, 200);
      const out = await cleared.json();
      assert.equal(out.status, "ok");
      assert.ok(out.cleared > 0);
      const res = await chat({});
      assert.equal(res.headers.get("x-cache"), "MISS");
      await res.body?.cancel();
    });
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("cache.streaming: a cached answer replays as a stream through the official SDKs", async (t) => {
  const up = startFakeUpstream();
  const gw = startGateway(
    gatewayYaml(up.url, "  enabled: true\n  streaming: true"),
  );
  const openai = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "sk-x", maxRetries: 0 });
  const anthropic = new Anthropic({ baseURL: gw.url(""), apiKey: "sk-x", maxRetries: 0 });
  try {
    await t.step("a non-stream answer, then the same request streamed by openai", async () => {
      up.script({ kind: "json", body: completionBody("Cached answer") });
      const first = await openai.chat.completions.create({
        model: "up/gpt-4o-mini",
        messages: [{ role: "user", content: "Hi" }],
      });
      assert.equal(first.choices[0]?.message.content, "Cached answer");
      const { data: stream, response } = await openai.chat.completions.create({
        model: "up/gpt-4o-mini",
        messages: [{ role: "user", content: "Hi" }],
        stream: true,
        stream_options: { include_usage: true },
      }).withResponse();
      assert.equal(response.headers.get("x-cache"), "HIT");
      let text = "";
      let usage: OpenAI.CompletionUsage | null | undefined;
      let finish: string | null | undefined;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? "";
        finish ??= chunk.choices[0]?.finish_reason;
        if (chunk.usage) usage = chunk.usage;
      }
      assert.equal(text, "Cached answer");
      assert.equal(finish, "stop");
      assert.equal(usage?.total_tokens, 10);
      assert.equal(up.requests.length, 1);
    });

    await t.step("the same answer in Anthropic's stream format on /v1/messages", async () => {
      // A Messages request with the same canonical content is its own key (max_tokens).
      up.script({ kind: "json", body: completionBody("Hello Claude user") });
      const req = {
        model: "up/gpt-4o-mini",
        max_tokens: 100,
        messages: [{ role: "user" as const, content: "Hi" }],
      };
      await anthropic.messages.create(req);
      const stream = anthropic.messages.stream(req);
      let text = "";
      let startInput: number | undefined;
      for await (const ev of stream) {
        if (ev.type === "content_block_delta" && ev.delta.type === "text_delta") {
          text += ev.delta.text;
        }
        if (ev.type === "message_start") startInput = ev.message.usage.input_tokens;
      }
      assert.equal(text, "Hello Claude user");
      // message_start reports the stored count, as the closing message_delta does (not an
      // estimate that the end then contradicts).
      assert.equal(startInput, 7);
      assert.equal((await stream.finalMessage()).usage.input_tokens, 7);
      assert.equal(up.requests.length, 2);
    });

    await t.step("a non-stream Messages hit is the Messages answer of its miss", async () => {
      up.script({ kind: "json", body: completionBody("Hello again") });
      const req = {
        model: "up/gpt-4o-mini",
        max_tokens: 50,
        messages: [{ role: "user" as const, content: "Again" }],
      };
      const miss = await anthropic.messages.create(req).withResponse();
      const hit = await anthropic.messages.create(req).withResponse();
      assert.equal(miss.response.headers.get("x-cache"), "MISS");
      assert.equal(hit.response.headers.get("x-cache"), "HIT");
      assert.deepEqual(hit.data, miss.data);
      assert.equal(up.requests.length, 3);
    });

    await t.step("a completed stream is stored; the non-stream request then hits", async () => {
      up.script({ kind: "stream", chunks: ["Str", "eamed"], includeUsage: true });
      const body = { model: "up/gpt-4o-mini", messages: [{ role: "user" as const, content: "S" }] };
      const stream = await openai.chat.completions.create({ ...body, stream: true });
      for await (const _ of stream) { /* drain */ }
      const { data, response } = await openai.chat.completions.create(body).withResponse();
      assert.equal(response.headers.get("x-cache"), "HIT");
      assert.equal(data.choices[0]?.message.content, "Streamed");
      // The usage the stream reported: a hit answers with all its miss had.
      assert.deepEqual(data.usage, { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 });
      assert.equal(up.requests.length, 4);
    });

    await t.step("a stream without usage, or with what assembly drops, is not stored", async () => {
      const cases: [string, Parameters<typeof up.script>[0]][] = [
        ["no usage", { kind: "stream", chunks: ["No", "usage"] }],
        ["logprobs", {
          kind: "sse",
          events: [
            `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"logprobs":{"content":[{"token":"Hi","logprob":-0.1,"bytes":null,"top_logprobs":[]}]},"finish_reason":null}]}\n\n`,
            `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}\n\n`,
            "data: [DONE]\n\n",
          ],
        }],
      ];
      for (const [name, script] of cases) {
        up.script(script);
        const body = {
          model: "up/gpt-4o-mini",
          messages: [{ role: "user" as const, content: name }],
        };
        const stream = await openai.chat.completions.create({ ...body, stream: true });
        for await (const _ of stream) { /* drain */ }
        up.script({ kind: "json" });
        const { response } = await openai.chat.completions.create(body).withResponse();
        assert.equal(response.headers.get("x-cache"), "MISS", name);
      }
    });
  } finally {
    await gw.close();
    await up.close();
  }
});

/**
 * An upstream that answers each request only when the test says so (`release(i)`), with
 * its status: concurrent misses stay in flight as long as the test needs.
 */
function heldUpstream() {
  type Answer = { status: number; body?: unknown };
  const held: { resolve: (a: Answer) => void }[] = [];
  const arrived: (() => void)[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.text();
    const { promise, resolve } = Promise.withResolvers<Answer>();
    held.push({ resolve });
    arrived.splice(0).forEach((f) => f());
    const { status, body } = await promise;
    if (body !== undefined) return Response.json(body, { status });
    return status === 200
      ? Response.json(completionBody(`answer ${held.length}`))
      : Response.json({ error: { message: "boom", type: "server_error" } }, { status });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/v1`,
    calls: () => held.length,
    /** Resolves once `n` requests arrived. */
    async arrivals(n: number) {
      while (held.length < n) await new Promise<void>((r) => arrived.push(r));
    },
    /** Answer request `i` with `status` (and `body`, else a completion or an error). */
    release: (i: number, status = 200, body?: unknown) => held[i]!.resolve({ status, body }),
    close: () => {
      for (const h of held) h.resolve({ status: 200 });
      return server.shutdown();
    },
  };
}

/** A wait bound no other timer uses: a request's own deadline bounds its wait for a twin. */
const WAIT_MS = 17_000;

/** The real timers, and a way to see (and fire) the waits for an identical request's answer. */
function watchedSchedule() {
  const waits: (() => void)[] = [];
  const seen: (() => void)[] = [];
  return {
    schedule: (ms: number, fn: () => void) => {
      // The wait runs to the request's arrival + WAIT_MS: a little under it by now.
      if (ms > WAIT_MS || ms < WAIT_MS - 1_000) return realSchedule(ms, fn);
      waits.push(fn);
      seen.splice(0).forEach((f) => f());
      return () => {};
    },
    /** Resolves once `n` requests are waiting. */
    async waiting(n: number) {
      while (waits.length < n) await new Promise<void>((r) => seen.push(r));
    },
    fire: () => waits.forEach((f) => f()),
  };
}

Deno.test("response cache: identical concurrent misses make one upstream call", async (t) => {
  const body = () => json({ model: "up/gpt-4o-mini", messages: HI });
  const setUp = () => {
    const up = heldUpstream();
    const timers = watchedSchedule();
    const gw = startGateway(
      gatewayYaml(up.url, "  enabled: true\n  backend: memory\n  ttl: 10m").replace(
        "failover: { enabled: false }",
        `failover: { enabled: false, deadline: ${WAIT_MS}ms }`,
      ),
      {},
      { schedule: timers.schedule },
    );
    return { up, timers, gw };
  };

  await t.step("followers wait for the first request's answer and are served it", async () => {
    const { up, timers, gw } = setUp();
    try {
      const first = gw.request("/v1/chat/completions", body());
      await up.arrivals(1);
      const rest = [1, 2, 3].map(() => gw.request("/v1/chat/completions", body()));
      await Promise.race([
        timers.waiting(3),
        up.arrivals(2).then(() => assert.fail("a follower went upstream")),
      ]);
      assert.equal(up.calls(), 1);
      up.release(0);
      const leader = await first;
      assert.equal(leader.headers.get("x-cache"), "MISS");
      const answer = await leader.json();
      for (const res of await Promise.all(rest)) {
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("x-cache"), "HIT");
        assert.equal(res.headers.get("x-pilotfish-cost-usd"), "0");
        assert.deepEqual(await res.json(), answer);
      }
      assert.equal(up.calls(), 1);
    } finally {
      await up.close();
      await gw.close();
    }
  });

  await t.step(
    "when the first fails, every follower asks upstream at once: none waits a second time",
    async () => {
      const { up, timers, gw } = setUp();
      try {
        const first = gw.request("/v1/chat/completions", body());
        await up.arrivals(1);
        const rest = [1, 2, 3].map(() => gw.request("/v1/chat/completions", body()));
        await timers.waiting(3);
        up.release(0, 400);
        assert.equal((await first).status, 400);
        // Together, not one after another behind a new leader (no wait re-armed).
        await up.arrivals(4);
        up.release(1);
        up.release(2);
        up.release(3);
        const results = await Promise.all(rest);
        assert.deepEqual(results.map((r) => r.status), [200, 200, 200]);
        assert.deepEqual(results.map((r) => r.headers.get("x-cache")), ["MISS", "MISS", "MISS"]);
        for (const res of results) await res.body?.cancel();
        assert.equal(up.calls(), 4);
        await (await first).body?.cancel();
      } finally {
        await gw.close();
        await up.close();
      }
    },
  );

  await t.step(
    "when the first is a 200 that holds no answer, the followers ask upstream themselves",
    async () => {
      const { up, timers, gw } = setUp();
      try {
        const first = gw.request("/v1/chat/completions", body());
        await up.arrivals(1);
        const rest = [1, 2].map(() => gw.request("/v1/chat/completions", body()));
        await timers.waiting(2);
        up.release(0, 200, { error: { message: "overloaded", type: "server_error" } });
        assert.equal((await first).status, 200);
        await (await first).body?.cancel();
        await up.arrivals(3);
        up.release(1);
        up.release(2);
        const results = await Promise.all(rest);
        assert.deepEqual(results.map((r) => r.headers.get("x-cache")), ["MISS", "MISS"]);
        for (const res of results) assert.equal((await res.json()).object, "chat.completion");
        assert.equal(up.calls(), 3);
        // An answer stored since is served.
        const again = await gw.request("/v1/chat/completions", body());
        assert.equal(again.headers.get("x-cache"), "HIT");
        assert.equal((await again.json()).object, "chat.completion");
      } finally {
        await gw.close();
        await up.close();
      }
    },
  );

  await t.step("a follower waits no longer than the wait cap", async () => {
    const { up, timers, gw } = setUp();
    try {
      const first = gw.request("/v1/chat/completions", body());
      await up.arrivals(1);
      const follower = gw.request("/v1/chat/completions", body());
      await timers.waiting(1);
      timers.fire();
      await up.arrivals(2);
      up.release(1);
      const res = await follower;
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-cache"), "MISS");
      await res.body?.cancel();
      up.release(0);
      await (await first).body?.cancel();
    } finally {
      await gw.close();
      await up.close();
    }
  });

  await t.step("a follower's own timeout bounds its wait and what follows it", async () => {
    const { up, gw } = setUp();
    try {
      const first = gw.request("/v1/chat/completions", body());
      await up.arrivals(1);
      // x-gateway.timeout: 1 s for the whole request, the wait included: spent waiting, it is
      // a 504 with no upstream call of its own.
      const follower = await gw.request(
        "/v1/chat/completions",
        json({ model: "up/gpt-4o-mini", messages: HI, "x-gateway": { timeout: 1 } }),
      );
      assert.equal(follower.status, 504);
      await follower.body?.cancel();
      assert.equal(up.calls(), 1);
      up.release(0);
      await (await first).body?.cancel();
    } finally {
      await up.close();
      await gw.close();
    }
  });

  await t.step("a stream that will not be stored is not waited for", async () => {
    const { up, gw } = setUp();
    try {
      // Without cache.streaming a stream's answer is never stored: a JSON twin goes upstream.
      const first = gw.request(
        "/v1/chat/completions",
        json({ model: "up/gpt-4o-mini", messages: HI, stream: true }),
      );
      await up.arrivals(1);
      const twin = gw.request("/v1/chat/completions", body());
      await up.arrivals(2);
      up.release(1);
      assert.equal((await twin).headers.get("x-cache"), "MISS");
      await (await twin).body?.cancel();
      up.release(0);
      await (await first).body?.cancel();
    } finally {
      await gw.close();
      await up.close();
    }
  });
});

Deno.test("cache backend redis: shared by two gateways; an outage is a miss, never an error", async (t) => {
  const redis = await startRedisServer();
  const up = startFakeUpstream();
  // Butter's block: address and key_prefix.
  const yaml = gatewayYaml(
    up.url,
    `  enabled: true\n  backend: redis\n  redis: { address: "127.0.0.1:${redis.port}", key_prefix: "t:" }`,
  );
  const a = startGateway(yaml);
  const b = startGateway(yaml);
  const chat = (gw: typeof a) =>
    gw.request("/v1/chat/completions", json({ model: "up/gpt-4o-mini", messages: HI }));
  try {
    await t.step("an answer stored by one gateway is a hit on the other", async () => {
      // A Redis slower than the cache's 250 ms deadline counts as a miss (and the link
      // reconnects): on a loaded machine a round may miss, so try a few distinct requests.
      let shared = false;
      for (let round = 0; round < 5 && !shared; round++) {
        const body = json({
          model: "up/gpt-4o-mini",
          messages: [{ role: "user", content: `r${round}` }],
        });
        await a.runtime.cache!.ready!();
        await b.runtime.cache!.ready!();
        const calls = up.requests.length;
        const first = await a.request("/v1/chat/completions", body);
        await first.body?.cancel();
        // The store is fire-and-forget after the answer: wait until Redis has it.
        await a.runtime.cache!.ready!();
        const second = await b.request(
          "/v1/chat/completions",
          json({
            model: "up/gpt-4o-mini",
            messages: [{ role: "user", content: `r${round}` }],
          }),
        );
        await second.body?.cancel();
        shared = second.headers.get("x-cache") === "HIT" && up.requests.length === calls + 1;
      }
      assert.ok(shared, "gateway b answered from what gateway a stored");
    });

    await t.step("Redis down: answers still come (as misses)", async () => {
      await redis.stop();
      for (let i = 0; i < 3; i++) {
        const res = await chat(a);
        assert.equal(res.status, 200);
        assert.notEqual(res.headers.get("x-cache"), "HIT");
        await res.body?.cancel();
      }
    });
  } finally {
    await a.close();
    await b.close();
    await up.close();
    await redis.stop();
  }
});

Deno.test("a Messages hit from an Anthropic provider is byte-for-byte its miss: id and cache writes kept", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  claude: { type: anthropic, base_url: ${up.url}, keys: [{ key: sk-ant }] }
routing:
  failover: { enabled: false }
cache: { enabled: true }
`);
  const anthropic = new Anthropic({ baseURL: gw.url(""), apiKey: "sk-x", maxRetries: 0 });
  try {
    up.script({
      kind: "json",
      body: {
        id: "msg_01XyzCached",
        type: "message",
        role: "assistant",
        model: "claude-sonnet-4-5",
        content: [{ type: "text", text: "From Claude" }],
        stop_reason: "end_turn",
        stop_sequence: null,
        usage: {
          input_tokens: 12,
          output_tokens: 5,
          cache_creation_input_tokens: 300,
          cache_read_input_tokens: 40,
        },
      },
    });
    const req = {
      model: "claude/claude-sonnet-4-5",
      max_tokens: 64,
      messages: [{ role: "user" as const, content: "Cache me" }],
    };
    const miss = await anthropic.messages.create(req).withResponse();
    const hit = await anthropic.messages.create(req).withResponse();
    assert.equal(miss.response.headers.get("x-cache"), "MISS");
    assert.equal(hit.response.headers.get("x-cache"), "HIT");
    assert.equal(hit.data.id, "msg_01XyzCached");
    assert.deepEqual(hit.data.usage, miss.data.usage);
    assert.equal(hit.data.usage.cache_creation_input_tokens, 300);
    assert.equal(hit.data.usage.input_tokens, 12);
    assert.deepEqual(hit.data.content, miss.data.content);
    assert.equal(up.requests.length, 1);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("with the cache on, /v1/messages to an Anthropic provider keeps what only Anthropic honours, and what the key cannot cover is not cached", async (t) => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  claude: { type: anthropic, base_url: ${up.url}, keys: [{ key: sk-ant }] }
routing:
  failover: { enabled: false }
cache: { enabled: true, streaming: true }
`);
  const message = (content: unknown[], extra: Record<string, unknown> = {}) => ({
    id: "msg_01",
    type: "message",
    role: "assistant",
    model: "claude-sonnet-4-5",
    content,
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: { input_tokens: 3, output_tokens: 2 },
    ...extra,
  });
  const post = (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
    gw.request("/v1/messages", {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ model: "claude/claude-sonnet-4-5", max_tokens: 64, ...body }),
    });
  const hi = [{ role: "user", content: "Hi" }];
  try {
    await t.step("server tools, documents and MCP servers are relayed, cache or not", async () => {
      const bodies = [
        { messages: hi, tools: [{ type: "web_search_20250305", name: "web_search" }] },
        {
          messages: [{
            role: "user",
            content: [{
              type: "document",
              source: { type: "text", media_type: "text/plain", data: "d" },
            }],
          }],
        },
        { messages: hi, mcp_servers: [{ type: "url", url: "https://mcp.example", name: "m" }] },
      ];
      for (const body of bodies) {
        for (const headers of [{}, { "cache-control": "no-cache" }]) {
          up.script({ kind: "json", body: message([{ type: "text", text: "ok" }]) });
          const before = up.requests.length;
          const res = await post(body, headers);
          assert.equal(res.status, 200, await res.clone().text());
          assert.equal(res.headers.get("x-cache"), null);
          await res.body?.cancel();
          assert.equal(up.requests.length, before + 1);
          const sent = JSON.parse(up.requests.at(-1)?.body ?? "{}") as Record<string, unknown>;
          for (const k of Object.keys(body)) {
            assert.deepEqual(sent[k], (body as Record<string, unknown>)[k]);
          }
        }
      }
    });

    await t.step(
      "thinking and effort: asked twice, answered twice, whole",
      async () => {
        const thinking = [
          { type: "thinking", thinking: "I think", signature: "SIG123" },
          { type: "text", text: "Done" },
        ];
        const cases: [Record<string, unknown>, Record<string, unknown>][] = [
          [{ thinking: { type: "enabled", budget_tokens: 1024 } }, message(thinking)],
          [{ output_config: { effort: "low" } }, message([{ type: "text", text: "e" }])],
        ];
        for (const [extra, answer] of cases) {
          for (let i = 0; i < 2; i++) {
            up.script({ kind: "json", body: answer });
            const before = up.requests.length;
            const res = await post({ messages: hi, ...extra });
            assert.equal(res.status, 200);
            assert.equal(res.headers.get("x-cache"), null, JSON.stringify(extra));
            assert.deepEqual(await res.json(), answer);
            assert.equal(up.requests.length, before + 1);
          }
        }
      },
    );

    await t.step(
      "stop sequences: cached, and a hit (JSON or stream) names the one that matched",
      async () => {
        const answer = message([{ type: "text", text: "1, 2, 3" }], {
          stop_reason: "stop_sequence",
          stop_sequence: "END",
        });
        const body = { messages: hi, stop_sequences: ["STOP", "END"] };
        up.script({ kind: "json", body: answer });
        const miss = await post(body);
        assert.equal(miss.headers.get("x-cache"), "MISS");
        assert.deepEqual(await miss.json(), answer);
        const before = up.requests.length;
        const hit = await post(body);
        assert.equal(hit.headers.get("x-cache"), "HIT");
        const replayed = await hit.json();
        assert.equal(replayed.stop_reason, "stop_sequence");
        assert.equal(replayed.stop_sequence, "END");
        assert.deepEqual(replayed.content, answer.content);
        const anthropic = new Anthropic({ baseURL: gw.url(""), apiKey: "sk-x", maxRetries: 0 });
        const streamed = await anthropic.messages.stream({
          model: "claude/claude-sonnet-4-5",
          max_tokens: 64,
          messages: [{ role: "user", content: "Hi" }],
          stop_sequences: ["STOP", "END"],
        }).finalMessage();
        assert.equal(streamed.stop_reason, "stop_sequence");
        assert.equal(streamed.stop_sequence, "END");
        assert.equal(up.requests.length, before, "both hits");
        // The bad case's neighbour: a natural end under the same stop sequences stays end_turn.
        up.script({ kind: "json", body: message([{ type: "text", text: "no" }]) });
        const other = { messages: [{ role: "user", content: "Other" }], stop_sequences: ["END"] };
        await (await post(other)).body?.cancel();
        const natural = await (await post(other)).json();
        assert.equal(natural.stop_reason, "end_turn");
        assert.equal(natural.stop_sequence, null);
      },
    );
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("cache.streaming: an Anthropic stream on /v1/messages keeps its usage; one the cache skips keeps its bytes", async (t) => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  claude: { type: anthropic, base_url: ${up.url}, keys: [{ key: sk-ant }] }
routing:
  failover: { enabled: false }
cache: { enabled: true, streaming: true }
`);
  const ev = (type: string, data: Record<string, unknown>) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  const events = [
    ev("message_start", {
      message: {
        id: "msg_01Streamed",
        type: "message",
        role: "assistant",
        model: "claude-sonnet-4-5",
        content: [],
        stop_reason: null,
        usage: { input_tokens: 10, output_tokens: 1, cache_read_input_tokens: 4 },
      },
    }),
    ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
    ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: "Streamed" } }),
    ev("content_block_stop", { index: 0 }),
    ev("message_delta", { delta: { stop_reason: "end_turn" }, usage: { output_tokens: 5 } }),
    ev("message_stop", {}),
  ];
  const anthropic = new Anthropic({ baseURL: gw.url(""), apiKey: "sk-x", maxRetries: 0 });
  const req = {
    model: "claude/claude-sonnet-4-5",
    max_tokens: 64,
    messages: [{ role: "user" as const, content: "Stream me" }],
  };
  try {
    await t.step(
      "a miss is assembled for the cache, and the client still reads the usage",
      async () => {
        up.script({ kind: "sse", events });
        const stream = anthropic.messages.stream(req);
        // message_start already counts the input, as the upstream's did.
        const started = new Promise<Record<string, unknown>>((resolve) =>
          stream.on("streamEvent", (e) => {
            if (e.type === "message_start") resolve({ ...e.message.usage });
          })
        );
        const final = await stream.finalMessage();
        const start = await started;
        assert.equal(start.input_tokens, 10);
        assert.equal(start.cache_read_input_tokens, 4);
        assert.equal(final.content[0]?.type === "text" && final.content[0].text, "Streamed");
        assert.equal(final.usage.output_tokens, 5);
        // Canonical input counts cache reads; Anthropic's input_tokens does not.
        assert.equal(final.usage.input_tokens, 10);
        assert.equal(final.usage.cache_read_input_tokens, 4);
        assert.equal(final.stop_reason, "end_turn");
      },
    );

    await t.step(
      "a stream ended by a stop sequence says which, missed, replayed, and as JSON",
      async () => {
        const stopped = events.map((e) =>
          e.startsWith("event: message_delta")
            ? ev("message_delta", {
              delta: { stop_reason: "stop_sequence", stop_sequence: "END" },
              usage: { output_tokens: 5 },
            })
            : e
        );
        up.script({ kind: "sse", events: stopped });
        const stopReq = { ...req, stop_sequences: ["END"] };
        const before = up.requests.length;
        for (const label of ["miss", "hit"]) {
          const final = await anthropic.messages.stream(stopReq).finalMessage();
          assert.equal(final.stop_reason, "stop_sequence", label);
          assert.equal(final.stop_sequence, "END", label);
        }
        const json = await anthropic.messages.create(stopReq);
        assert.equal(json.stop_reason, "stop_sequence");
        assert.equal(json.stop_sequence, "END");
        assert.equal(up.requests.length, before + 1, "one upstream call");
      },
    );

    await t.step("a request the cache skips is relayed byte for byte", async () => {
      up.script({ kind: "sse", events });
      const res = await fetch(gw.url("/v1/messages"), {
        method: "POST",
        headers: { "content-type": "application/json", "cache-control": "no-cache" },
        body: JSON.stringify({ ...req, stream: true }),
      });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), events.join(""));
    });
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("cache.streaming: a stream whose usage chunk the client did not ask for is stored with that usage", async () => {
  const up = startFakeUpstream();
  // The openai preset asks upstream for include_usage and strips the chunk for the client.
  const gw = startGateway(`
providers:
  openai: { base_url: ${up.url}/v1, keys: [{ key: sk-up }] }
routing:
  failover: { enabled: false }
cache: { enabled: true, streaming: true }
`);
  try {
    up.script({ kind: "stream", chunks: ["Str", "eamed"], includeUsage: true });
    const body = { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "S" }] };
    const streamed = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...body, stream: true }),
    });
    const text = await streamed.text();
    assert.doesNotMatch(text, /"usage":\{/, "the client did not ask for it");
    const hit = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    assert.equal(hit.headers.get("x-cache"), "HIT");
    const answer = await hit.json();
    assert.equal(answer.choices[0].message.content, "Streamed");
    assert.equal(answer.usage.total_tokens, 10);
  } finally {
    await gw.close();
    await up.close();
  }
});

const ANSWER_WITH_USAGE = [
  { choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] },
  { choices: [{ index: 0, delta: { content: "Hello" }, finish_reason: null }] },
  { choices: [{ index: 0, delta: { content: " world" }, finish_reason: null }] },
  { choices: [{ index: 0, delta: {}, finish_reason: "stop" }] },
  { choices: [], usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 } },
].map((c) =>
  `data: ${
    JSON.stringify({
      id: "chatcmpl-f",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      ...c,
    })
  }\n\n`
).join("") + "data: [DONE]\n\n";

Deno.test("cache.streaming: a streamed miss is billed by the upstream's usage and stored, whether the client asked for usage or not", async (t) => {
  const up = startFakeUpstream();
  // Named openai: Pilotfish asks it for include_usage when the client did not, and strips it.
  const gw = startGateway(`
providers:
  openai: { base_url: "${up.url}/v1", keys: [{ key: sk-up }] }
routing:
  failover: { enabled: false }
cache: { enabled: true, streaming: true }
`);
  const stream = (content: string, includeUsage: boolean) =>
    gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "openai/gpt-4o-mini",
        stream: true,
        ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
        messages: [{ role: "user", content }],
      }),
    });
  try {
    for (const asked of [true, false]) {
      await t.step(`include_usage ${asked ? "asked" : "not asked"}`, async () => {
        // One write, as an upstream that has the whole answer sends it.
        up.script({ kind: "sse", events: [ANSWER_WITH_USAGE] });
        const before = up.requests.length;
        const miss = await stream(`usage ${asked}`, asked);
        assert.equal(miss.headers.get("x-cache"), "MISS");
        const text = await miss.text();
        assert.equal(text.includes('"usage":{'), asked, text);
        const line = await lineOf(gw, miss) as unknown as Record<string, unknown>;
        // The upstream's usage chunk: 10 in, 2 out.
        assert.equal(line.completion_tokens, 2, JSON.stringify(line));
        assert.equal(line.usage_estimated, undefined);
        const hit = await stream(`usage ${asked}`, asked);
        assert.equal(hit.headers.get("x-cache"), "HIT");
        await hit.body?.cancel();
        assert.equal(up.requests.length, before + 1);
      });
    }
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("cache.streaming: an Anthropic stream sent in one write is billed by its message_delta count", async () => {
  const up = startFakeUpstream();
  const gw = startGateway(`
providers:
  claude: { type: anthropic, base_url: "${up.url}/v1", keys: [{ key: sk-ant-up }] }
routing:
  failover: { enabled: false }
cache: { enabled: true, streaming: true }
`);
  const ev = (type: string, data: Record<string, unknown>) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  try {
    up.script({
      kind: "sse",
      events: [[
        ev("message_start", {
          message: {
            id: "msg_1",
            model: "claude-x",
            usage: { input_tokens: 10, output_tokens: 1 },
          },
        }),
        ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
        ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: "Hello world" } }),
        ev("content_block_stop", { index: 0 }),
        ev("message_delta", { delta: { stop_reason: "end_turn" }, usage: { output_tokens: 2 } }),
        ev("message_stop", {}),
      ].join("")],
    });
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "claude/claude-x",
        stream: true,
        messages: [{ role: "user", content: "one write" }],
      }),
    });
    assert.equal(res.headers.get("x-cache"), "MISS");
    await res.text();
    const line = await lineOf(gw, res);
    assert.equal(line.completion_tokens, 2, JSON.stringify(line));
    assert.equal(line.usage_estimated, undefined);
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("embeddings are cached: the same input is answered from the cache, in either encoding, through the SDK", async (t) => {
  const up = startFakeUpstream();
  const gw = startGateway(gatewayYaml(up.url, "  enabled: true"));
  const openai = new OpenAI({ baseURL: gw.url("/v1"), apiKey: "sk-x", maxRetries: 0 });
  const vectors = {
    object: "list",
    data: [{ object: "embedding", index: 0, embedding: [0.25, -0.5, 1] }],
    model: "text-embedding-3-small",
    usage: { prompt_tokens: 3, total_tokens: 3 },
  };
  try {
    for (const encoding of ["float", "base64"] as const) {
      await t.step(`encoding_format ${encoding}`, async () => {
        const before = up.requests.length;
        up.script({
          kind: "json",
          body: encoding === "float" ? vectors : {
            ...vectors,
            data: [{
              object: "embedding",
              index: 0,
              embedding: btoa(String.fromCharCode(
                ...new Uint8Array(new Float32Array([0.25, -0.5, 1]).buffer),
              )),
            }],
          },
        });
        const ask = () =>
          openai.embeddings.create({
            model: "up/text-embedding-3-small",
            input: "cache me",
            encoding_format: encoding,
          }).withResponse();
        const miss = await ask();
        const hit = await ask();
        assert.equal(miss.response.headers.get("x-cache"), "MISS");
        assert.equal(hit.response.headers.get("x-cache"), "HIT");
        assert.deepEqual(hit.data, miss.data);
        assert.equal(up.requests.length, before + 1, "one upstream call");
      });
    }
    await t.step("another input, or x-gateway.cache: false, goes upstream", async () => {
      up.script({ kind: "json", body: vectors });
      const before = up.requests.length;
      const other = await gw.request("/v1/embeddings", {
        method: "POST",
        body: JSON.stringify({ model: "up/text-embedding-3-small", input: "something else" }),
      });
      assert.equal(other.headers.get("x-cache"), "MISS");
      await other.body?.cancel();
      const skipped = await gw.request("/v1/embeddings", {
        method: "POST",
        body: JSON.stringify({
          model: "up/text-embedding-3-small",
          input: "something else",
          "x-gateway": { cache: false },
        }),
      });
      assert.equal(skipped.headers.get("x-cache"), null);
      await skipped.body?.cancel();
      assert.equal(up.requests.length, before + 2);
    });
  } finally {
    await gw.close();
    await up.close();
  }
});

Deno.test("cache clear on Redis deletes cache entries only, whatever key_prefix says (even empty)", async () => {
  const redis = await startRedisServer();
  const cli = async (...args: string[]) => {
    const out = await new Deno.Command("redis-cli", {
      args: ["-p", String(redis.port), ...args],
      stdin: "null",
    }).output();
    return new TextDecoder().decode(out.stdout).trim();
  };
  const up = startFakeUpstream();
  // Butter's block with an empty prefix: the cache's keys sit beside every other key.
  const gw = startGateway(gatewayYaml(
    up.url,
    `  enabled: true\n  backend: redis\n  redis: { address: "127.0.0.1:${redis.port}", key_prefix: "" }`,
  ));
  try {
    await cli("SET", "pilotfish:keys:ids", "kept");
    await cli("SET", "someone-else", "kept");
    await gw.runtime.cache!.ready!();
    const res = await gw.request(
      "/v1/chat/completions",
      json({ model: "up/gpt-4o-mini", messages: HI }),
    );
    await res.body?.cancel();
    await gw.runtime.cache!.ready!();
    assert.equal(await cli("DBSIZE"), "3");
    const cleared = await gw.request("/api/v1/cache/clear", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    assert.equal((await cleared.json()).cleared, 1);
    assert.equal(await cli("GET", "pilotfish:keys:ids"), "kept");
    assert.equal(await cli("GET", "someone-else"), "kept");
    assert.equal(await cli("DBSIZE"), "2");
  } finally {
    await gw.close();
    await up.close();
    await redis.stop();
  }
});

Deno.test("an answer made with the client's own credential is cached for that credential only", async (t) => {
  const up = startFakeUpstream();
  const yaml = (mode: string) => `
providers:
  up: { type: openai, base_url: ${up.url}/v1, ${mode} }
cache: { enabled: true, backend: memory, ttl: 10m }
`;
  const ask = (gw: ReturnType<typeof startGateway>, credential: Record<string, string>) =>
    gw.request(
      "/v1/chat/completions",
      json({ model: "up/gpt-4o-mini", messages: HI }, credential),
    );
  for (
    const [label, mode] of [
      [
        "credential_mode: passthrough",
        "keys: [{ key: sk-gateway-0001 }], credential_mode: passthrough",
      ],
      ["a provider with no keys", "keys: []"],
    ] as const
  ) {
    await t.step(label, async () => {
      const gw = startGateway(yaml(mode));
      const before = up.requests.length;
      try {
        const a = await ask(gw, { authorization: "Bearer sk-tenant-a" });
        assert.equal(a.headers.get("x-cache"), "MISS");
        await a.body?.cancel();
        // Another tenant's key, a bogus one, none, or Anthropic's header: none reads A's answer.
        for (
          const other of [
            { authorization: "Bearer sk-tenant-b" },
            { "x-api-key": "sk-tenant-c" },
            {} as Record<string, string>,
          ]
        ) {
          const b = await ask(gw, other);
          assert.equal(b.headers.get("x-cache"), "MISS", JSON.stringify(other));
          await b.body?.cancel();
        }
        const again = await ask(gw, { authorization: "Bearer sk-tenant-a" });
        assert.equal(again.headers.get("x-cache"), "HIT", "the same credential hits");
        await again.body?.cancel();
        assert.equal(up.requests.length - before, 4);
      } finally {
        await gw.close();
      }
    });
  }
  await t.step("the gateway's own keys: one answer for every client, as before", async () => {
    const gw = startGateway(yaml("keys: [{ key: sk-gateway-0001 }]"));
    try {
      const a = await ask(gw, { authorization: "Bearer sk-tenant-a" });
      assert.equal(a.headers.get("x-cache"), "MISS");
      await a.body?.cancel();
      const b = await ask(gw, { authorization: "Bearer sk-tenant-b" });
      assert.equal(b.headers.get("x-cache"), "HIT");
      await b.body?.cancel();
    } finally {
      await gw.close();
    }
  });
  await up.close();
});

Deno.test("cache: a Gemini tool call's thought signature survives a stored stream; a stop sequence stays off the chat route", async (t) => {
  const gemini = startFakeGemini();
  const anthropic = startFakeAnthropic();
  const gw = startGateway(`
providers:
  gemini: { base_url: "${gemini.url}", keys: [{ key: AIza-test-key-0000000000 }] }
  claude: { type: anthropic, base_url: "${anthropic.url}/v1", keys: [{ key: sk-ant-0001 }] }
cache:
  enabled: true
  streaming: true
`);
  const post = async (body: Record<string, unknown>) => {
    const res = await gw.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { cache: res.headers.get("x-cache"), text: await res.text() };
  };
  try {
    await t.step("stored from a stream, replayed as a stream and as JSON", async () => {
      const ask = {
        model: "gemini/gemini-2.5-flash",
        messages: [{ role: "user", content: "Weather in Paris?" }],
      };
      const miss = await post({ ...ask, stream: true });
      assert.equal(miss.cache, "MISS");
      const signed = /"extra_content":\{"google":\{"thought_signature":"[^"]+"\}\}/;
      assert.match(miss.text, signed);
      const hit = await post({ ...ask, stream: true });
      assert.equal(hit.cache, "HIT");
      assert.match(hit.text, signed, hit.text);
      assert.match(hit.text, /"delta":\{"role":"assistant","content":"","refusal":null\}/);
      const json = await post(ask);
      assert.equal(json.cache, "HIT");
      const call = JSON.parse(json.text).choices[0].message.tool_calls[0];
      assert.equal(typeof call.extra_content.google.thought_signature, "string");
      assert.equal(gemini.requests.length, 1);
    });
    await t.step(
      "an answer that ended on a stop sequence: no stop_sequence field on a hit",
      async () => {
        anthropic.script({ json: "response_stop_sequence" });
        const ask = {
          model: "claude/claude-sonnet-4-5",
          max_tokens: 50,
          stop: ["END"],
          messages: [{ role: "user", content: "Count" }],
        };
        for (const cache of ["MISS", "HIT"]) {
          const r = await post(ask);
          assert.equal(r.cache, cache);
          const choice = JSON.parse(r.text).choices[0];
          assert.equal(choice.finish_reason, "stop");
          assert.equal("stop_sequence" in choice, false, r.text);
        }
      },
    );
  } finally {
    await gw.close();
    await gemini.close();
    await anthropic.close();
  }
});
