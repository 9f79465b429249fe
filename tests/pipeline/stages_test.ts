/**
 * The stage chain on every unified route and on passthrough, driven by test stages
 * registered through `RuntimeDeps.stages`: each hook, the order rules, rewrite,
 * short-circuit, reject (in each route's format), fail-open/closed and time budgets.
 */
import assert from "node:assert/strict";
import type { Stage } from "../../src/pipeline/stages.ts";
import { CONFIG, gateway, post, requestLines, ROUTES } from "./support.ts";

const SANITIZE = { sanitizeOps: true, sanitizeResources: true };

type Hooks = Partial<Omit<Stage, "name" | "fail_mode" | "timeout_ms">>;

/** A stage that records every hook it runs into `log` and then does what `hooks` say. */
function recorder(
  name: string,
  log: string[],
  hooks: Hooks = {},
  opts: { fail_mode?: "open" | "closed"; timeout_ms?: number } = {},
): Stage {
  return {
    name,
    fail_mode: opts.fail_mode ?? "closed",
    timeout_ms: opts.timeout_ms ?? 5_000,
    pre_http(ex, req) {
      log.push(`${name}:pre_http`);
      return hooks.pre_http?.(ex, req);
    },
    pre_llm(ex, req) {
      log.push(`${name}:pre_llm`);
      return hooks.pre_llm?.(ex, req);
    },
    post_llm(ex, res) {
      log.push(`${name}:post_llm`);
      return hooks.post_llm?.(ex, res);
    },
    post_http(ex, res) {
      log.push(`${name}:post_http`);
      return hooks.post_http?.(ex, res);
    },
  };
}

Deno.test("every hook runs on every route: pre in order, post in reverse", SANITIZE, async (t) => {
  for (const route of ROUTES) {
    await t.step(route.name, async () => {
      const log: string[] = [];
      const seen: Record<string, unknown> = {};
      const gw = gateway({
        stages: [
          recorder("a", log, {
            pre_http: (_ex, req) => {
              seen.httpBody = req.body;
              seen.method = req.method;
            },
            pre_llm: (ex, req) => {
              seen.llm = req;
              seen.schema = ex.schema;
            },
            post_llm: (_ex, res) => {
              seen.answer = res;
            },
            post_http: (_ex, res) => res.headers.set("x-stage", "a"),
          }),
          recorder("b", log),
        ],
      });
      const res = await gw.request(route.path, post(route.body));
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(res.headers.get("x-stage"), "a");
      await res.body?.cancel();
      assert.deepEqual(log, [
        "a:pre_http",
        "b:pre_http",
        "a:pre_llm",
        "b:pre_llm",
        "b:post_llm",
        "a:post_llm",
        "b:post_http",
        "a:post_http",
      ]);
      assert.equal(seen.method, "POST");
      const llm = seen.llm as { schema: string; body: unknown };
      if (route.path === "/native/up/chat/completions") {
        // Passthrough: bytes in, bytes out; the stages see bytes.
        assert.ok(seen.httpBody instanceof Uint8Array);
        assert.equal(llm.schema, "passthrough");
        assert.deepEqual(JSON.parse(new TextDecoder().decode(llm.body as Uint8Array)), route.body);
        assert.deepEqual(seen.answer, { stream: false, status: 200 });
      } else {
        assert.deepEqual(seen.httpBody, route.body);
        // Canonical (OpenAI) shape whatever came in: /v1/messages is seen translated.
        const body = llm.body as { model: string; messages?: unknown[] };
        assert.equal(body.model, route.body.model);
        if (route.path === "/v1/messages") {
          assert.equal(llm.schema, "anthropic_messages");
          assert.deepEqual(body.messages, [{ role: "user", content: "hi" }]);
        }
        const answer = seen.answer as { stream: boolean; status: number; body: { object: string } };
        assert.equal(answer.stream, false);
        assert.equal(answer.status, 200);
        assert.equal(
          answer.body.object,
          route.path === "/v1/embeddings" ? "list" : "chat.completion",
        );
      }
    });
  }
});

Deno.test("pre_llm rewrites the request; post_llm rewrites the answer", SANITIZE, async (t) => {
  await t.step(
    "chat: the upstream gets the rewritten body, the client the rewritten answer",
    async () => {
      const gw = gateway({
        stages: [{
          name: "rewrite",
          fail_mode: "closed",
          timeout_ms: 5_000,
          pre_llm: (_ex, req) => ({
            action: "rewrite",
            body: { ...(req.body as object), messages: [{ role: "user", content: "rewritten" }] },
          }),
          post_llm: (_ex, res) =>
            res.stream || !res.body ? undefined : {
              action: "rewrite",
              body: { ...res.body, rewritten_by: "stage" },
            },
        }],
      });
      const res = await gw.request("/v1/chat/completions", post(ROUTES[0]!.body));
      const body = await res.json();
      assert.equal(body.choices[0].message.content, "echo: rewritten");
      assert.equal(body.rewritten_by, "stage");
      const sent = JSON.parse(String(gw.upstream[0]?.init.body));
      assert.deepEqual(sent.messages, [{ role: "user", content: "rewritten" }]);
    },
  );

  await t.step(
    'post_llm_body: "text" sees the OpenAI JSON as sent, else (rewritten, translated) the object',
    async () => {
      const seen: { text: string | undefined; body: unknown }[] = [];
      const reader: Stage = {
        name: "reader",
        fail_mode: "closed",
        timeout_ms: 5_000,
        post_llm_body: "text",
        post_llm: (_ex, res) => {
          if (!res.stream) seen.push({ text: res.text, body: res.body });
        },
      };
      const rewriter: Stage = {
        name: "rewriter",
        fail_mode: "closed",
        timeout_ms: 5_000,
        post_llm: (_ex, res) =>
          res.stream || !res.body ? undefined : {
            action: "rewrite",
            body: { ...res.body, rewritten_by: "stage" },
          },
      };
      const alone = gateway({ stages: [reader] });
      const res = await alone.request("/v1/chat/completions", post(ROUTES[0]!.body));
      const sent = await res.text();
      assert.equal(seen[0]?.text, sent);
      assert.equal(seen[0]?.body, undefined);
      // Post hooks run in reverse: the rewriter (after the reader) rewrites first.
      const both = gateway({ stages: [reader, rewriter] });
      await (await both.request("/v1/chat/completions", post(ROUTES[0]!.body))).body?.cancel();
      assert.equal(seen[1]?.text, undefined);
      assert.equal((seen[1]?.body as Record<string, unknown>).rewritten_by, "stage");
      // An Anthropic answer is no OpenAI text: the reader gets the canonical object.
      await (await alone.request("/v1/messages", post(ROUTES[2]!.body))).body?.cancel();
      assert.equal(seen[2]?.text, undefined);
      assert.equal((seen[2]?.body as Record<string, unknown>).object, "chat.completion");
    },
  );

  await t.step(
    "messages: once rewritten, even an Anthropic provider gets the canonical form",
    async () => {
      const gw = gateway({
        stages: [{
          name: "rewrite",
          fail_mode: "closed",
          timeout_ms: 5_000,
          pre_llm: (_ex, req) => ({
            action: "rewrite",
            body: { ...(req.body as object), messages: [{ role: "user", content: "changed" }] },
          }),
        }],
      });
      const res = await gw.request("/v1/messages", post(ROUTES[2]!.body));
      const body = await res.json();
      assert.equal(body.type, "message");
      assert.equal(body.content[0].text, "Hi there");
      const sent = JSON.parse(String(gw.upstream[0]?.init.body));
      assert.deepEqual(sent.messages, [{ role: "user", content: "changed" }]);
    },
  );

  await t.step(
    "messages: a rewrite of a request whose canonical form leaves something out is a 400",
    async () => {
      const gw = gateway({
        stages: [{
          name: "rewrite",
          fail_mode: "closed",
          timeout_ms: 5_000,
          pre_llm: (_ex, req) => ({ action: "rewrite", body: req.body }),
        }],
      });
      const body = {
        ...(ROUTES[2]!.body as Record<string, unknown>),
        thinking: { type: "enabled", budget_tokens: 1024 },
      };
      const res = await gw.request("/v1/messages", post(body));
      assert.equal(res.status, 400);
      const err = await res.json();
      assert.equal(err.type, "error");
      assert.match(err.error.message, /cannot be sent as rewritten/);
      assert.equal(gw.upstream.length, 0);
    },
  );

  await t.step(
    "responses: a rewrite of a native request with no canonical form is a 400",
    async () => {
      const gw = gateway({
        config: CONFIG.replace(
          "keys: [{ key: sk-up-configured-0001 }] }",
          "keys: [{ key: sk-up-configured-0001 }], responses: native }",
        ),
        stages: [{
          name: "rewrite",
          fail_mode: "closed",
          timeout_ms: 5_000,
          pre_llm: (_ex, req) => ({ action: "rewrite", body: req.body }),
        }],
      });
      const res = await gw.request(
        "/v1/responses",
        post({ model: "up/gpt-up", input: "hi", previous_response_id: "resp_theirs" }),
      );
      assert.equal(res.status, 400);
      assert.match((await res.json()).error.message, /cannot be sent as rewritten/);
      assert.equal(gw.upstream.length, 0);
    },
  );

  await t.step(
    "a rewrite to the routed target's own model name keeps the route; another model is routed",
    async () => {
      const config = CONFIG.replace(
        "routing:\n",
        "routing:\n  default_provider: claude\n",
      );
      for (
        const [model, host] of [["gpt-up", "up.test"], ["claude/claude-x", "claude.test"]] as const
      ) {
        const gw = gateway({
          config,
          stages: [{
            name: "rewrite",
            fail_mode: "closed",
            timeout_ms: 5_000,
            pre_llm: (_ex, req) => ({
              action: "rewrite",
              body: { ...(req.body as object), model },
            }),
          }],
        });
        const res = await gw.request("/v1/chat/completions", post(ROUTES[0]!.body));
        await res.body?.cancel();
        assert.equal(res.status, 200, model);
        assert.equal(new URL(gw.upstream[0]!.url).host, host, model);
      }
    },
  );

  await t.step("a rewrite is validated like a client's body", async () => {
    const gw = gateway({
      stages: [{
        name: "broken",
        fail_mode: "closed",
        timeout_ms: 5_000,
        pre_llm: () => ({ action: "rewrite", body: { model: "up/gpt-up", messages: "no" } }),
      }],
    });
    const res = await gw.request("/v1/chat/completions", post(ROUTES[0]!.body));
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error.param, "messages");
    assert.equal(gw.upstream.length, 0);
  });

  await t.step("pre_http rewrites headers and the passthrough body", async () => {
    const gw = gateway({
      stages: [{
        name: "http",
        fail_mode: "closed",
        timeout_ms: 5_000,
        pre_http: (_ex, req) => {
          req.headers.set("x-team", "stage");
          return {
            action: "rewrite",
            headers: req.headers,
            body: '{"model":"gpt-up","messages":[]}',
          };
        },
      }],
    });
    const res = await gw.request("/native/up/chat/completions", post(ROUTES[4]!.body));
    await res.body?.cancel();
    const sent = gw.upstream[0]!;
    assert.equal(new Headers(sent.init.headers).get("x-team"), "stage");
    assert.equal(
      new TextDecoder().decode(sent.init.body as Uint8Array),
      '{"model":"gpt-up","messages":[]}',
    );
  });

  await t.step(
    "a gzip passthrough body: the stage reads it inflated; its rewrite goes plain",
    async () => {
      let seen = "";
      const gw = gateway({
        stages: [{
          name: "llm",
          fail_mode: "closed",
          timeout_ms: 5_000,
          pre_llm: (_ex, req) => {
            seen = new TextDecoder().decode(req.body as Uint8Array);
            return { action: "rewrite", body: '{"model":"gpt-up","messages":[]}' };
          },
        }],
      });
      const json = JSON.stringify(ROUTES[4]!.body);
      const gzipped = new Uint8Array(
        await new Response(new Blob([json]).stream().pipeThrough(new CompressionStream("gzip")))
          .arrayBuffer(),
      );
      const res = await gw.request("/native/up/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json", "content-encoding": "gzip" },
        body: gzipped,
      });
      await res.body?.cancel();
      assert.equal(seen, json);
      const sent = gw.upstream[0]!;
      assert.equal(new Headers(sent.init.headers).get("content-encoding"), null);
      assert.equal(
        new TextDecoder().decode(sent.init.body as Uint8Array),
        '{"model":"gpt-up","messages":[]}',
      );
    },
  );
});

Deno.test("a pre hook answers (short-circuit): nothing goes upstream", SANITIZE, async (t) => {
  for (const route of ROUTES) {
    await t.step(`${route.name}, at pre_llm`, async () => {
      const log: string[] = [];
      const gw = gateway({
        stages: [
          recorder("a", log),
          recorder("cache", log, {
            pre_llm: () => ({
              action: "respond",
              status: 200,
              body: { cached: true },
              headers: { "x-cache": "HIT" },
            }),
          }),
          recorder("c", log),
        ],
      });
      // A streaming request gets the non-stream body too.
      const res = await gw.request(route.path, post({ ...route.body, stream: true }));
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-cache"), "HIT");
      assert.deepEqual(await res.json(), { cached: true });
      assert.equal(gw.upstream.length, 0);
      // c's pre_llm never ran; no post_llm (no LLM answered); every pre_http ran, so every
      // post_http does, in reverse.
      assert.deepEqual(log, [
        "a:pre_http",
        "cache:pre_http",
        "c:pre_http",
        "a:pre_llm",
        "cache:pre_llm",
        "c:post_http",
        "cache:post_http",
        "a:post_http",
      ]);
      const kinds = gw.events.map((e) => e.type);
      assert.ok(kinds.includes("short_circuit"), kinds.join());
    });
  }

  await t.step(
    "at pre_http: later stages' hooks do not run, earlier ones' post_http do",
    async () => {
      const log: string[] = [];
      const gw = gateway({
        stages: [
          recorder("a", log),
          recorder("guard", log, {
            pre_http: () => ({ action: "respond", status: 202, body: { held: true } }),
          }),
          recorder("c", log),
        ],
      });
      const res = await gw.request("/v1/chat/completions", post(ROUTES[0]!.body));
      assert.equal(res.status, 202);
      await res.body?.cancel();
      assert.deepEqual(log, ["a:pre_http", "guard:pre_http", "guard:post_http", "a:post_http"]);
    },
  );
});

Deno.test("a pre hook rejects: the route's own error format", SANITIZE, async (t) => {
  const reject: Stage = {
    name: "guard",
    fail_mode: "closed",
    timeout_ms: 5_000,
    pre_llm: () => ({ action: "reject", status: 403, message: "Blocked by policy" }),
  };
  const cases: [string, string, Record<string, unknown>, (body: unknown) => void][] = [
    ["chat", "/v1/chat/completions", ROUTES[0]!.body, (b) =>
      assert.deepEqual(b, {
        error: {
          message: "Blocked by policy",
          type: "permission_error",
          param: null,
          code: "forbidden",
        },
      })],
    ["messages", "/v1/messages", ROUTES[2]!.body, (b) =>
      assert.deepEqual(b, {
        type: "error",
        error: { type: "permission_error", message: "Blocked by policy" },
      })],
    [
      "embeddings",
      "/v1/embeddings",
      ROUTES[3]!.body,
      (b) => assert.equal((b as { error: { code: string } }).error.code, "forbidden"),
    ],
    [
      "passthrough (openai)",
      "/native/up/chat/completions",
      ROUTES[4]!.body,
      (b) => assert.equal((b as { error: { code: string } }).error.code, "forbidden"),
    ],
    [
      "passthrough (anthropic)",
      "/anthropic/v1/messages",
      ROUTES[2]!.body,
      (b) =>
        assert.deepEqual(b, {
          type: "error",
          error: { type: "permission_error", message: "Blocked by policy" },
        }),
    ],
  ];
  for (const [name, path, body, check] of cases) {
    await t.step(name, async () => {
      const gw = gateway({ stages: [reject] });
      const res = await gw.request(path, post(body));
      assert.equal(res.status, 403);
      check(await res.json());
      assert.equal(gw.upstream.length, 0);
    });
  }

  await t.step("a 429 rejection keeps its status, with Retry-After", async () => {
    const gw = gateway({
      stages: [{
        name: "limit",
        fail_mode: "closed",
        timeout_ms: 5_000,
        pre_http: () => ({ action: "reject", status: 429, message: "Slow down" }),
      }],
    });
    const res = await gw.request("/v1/chat/completions", post(ROUTES[0]!.body));
    assert.equal(res.status, 429);
    assert.equal(res.headers.get("retry-after"), "1");
    assert.equal((await res.json()).error.type, "rate_limit_error");
  });
});

Deno.test("a failing stage follows its fail_mode", SANITIZE, async (t) => {
  const boom = (fail_mode: "open" | "closed"): Stage => ({
    name: "flaky",
    fail_mode,
    timeout_ms: 5_000,
    pre_llm: () => {
      throw new Error("plugin crashed");
    },
  });
  for (const route of ROUTES) {
    await t.step(`${route.name}: open skips it, with a warning`, async () => {
      const gw = gateway({ stages: [boom("open")] });
      const res = await gw.request(route.path, post(route.body));
      assert.equal(res.status, 200);
      await res.body?.cancel();
      const warning = gw.logs.map((l) => JSON.parse(l)).find((l) =>
        l.msg.startsWith("stage skipped")
      );
      assert.equal(warning?.stage, "flaky");
      assert.match(warning?.reason, /failed in pre_llm: plugin crashed/);
      assert.ok(gw.events.some((e) => e.type === "stage_error"));
    });
    await t.step(`${route.name}: closed fails the request with 500 stage_failed`, async () => {
      const gw = gateway({ stages: [boom("closed")] });
      const res = await gw.request(route.path, post(route.body));
      assert.equal(res.status, 500);
      const text = await res.text();
      assert.match(text, /Stage \\"flaky\\" failed in pre_llm: plugin crashed/);
      if (route.path === "/v1/messages") assert.equal(JSON.parse(text).type, "error");
      else assert.equal(JSON.parse(text).error.code, "stage_failed");
      assert.equal(gw.upstream.length, 0);
      assert.equal(requestLines(gw.logs)[0]?.status, 500);
    });
  }
});

Deno.test(
  "a stage that overruns its budget follows its fail_mode (injected timer)",
  SANITIZE,
  async (t) => {
    /** A timer the test fires by hand: no sleeping. */
    const manual = () => {
      const pending: (() => void)[] = [];
      return {
        schedule: (_ms: number, fire: () => void) => {
          pending.push(fire);
          return () => {
            const i = pending.indexOf(fire);
            if (i >= 0) pending.splice(i, 1);
          };
        },
        fireAll: () => pending.splice(0).forEach((f) => f()),
      };
    };
    for (const fail_mode of ["open", "closed"] as const) {
      await t.step(`async hook, ${fail_mode}`, async () => {
        const timer = manual();
        const entered = Promise.withResolvers<void>();
        const never = Promise.withResolvers<void>();
        const gw = gateway({
          schedule: timer.schedule,
          stages: [{
            name: "slow",
            fail_mode,
            timeout_ms: 50,
            pre_http: async () => {
              entered.resolve();
              await never.promise;
            },
          }],
        });
        const pending = gw.request("/v1/chat/completions", post(ROUTES[0]!.body));
        await entered.promise;
        timer.fireAll();
        const res = await pending;
        never.resolve();
        if (fail_mode === "open") {
          assert.equal(res.status, 200);
          await res.body?.cancel();
        } else {
          assert.equal(res.status, 500);
          assert.match((await res.json()).error.message, /did not finish pre_http within 50 ms/);
        }
        const err = gw.events.find((e) => e.type === "stage_error");
        assert.ok(err && err.type === "stage_error" && err.timed_out);
      });
    }

    await t.step("a synchronous hook that overran (by the injected clock) counts too", async () => {
      let now = 0;
      const gw = gateway({
        clock: { now: () => now },
        stages: [{
          name: "hog",
          fail_mode: "closed",
          timeout_ms: 10,
          pre_llm: () => {
            now += 25;
          },
        }],
      });
      const res = await gw.request("/native/up/chat/completions", post(ROUTES[4]!.body));
      assert.equal(res.status, 500);
      assert.match(
        (await res.json()).error.message,
        /Stage "hog" did not finish pre_llm within 10 ms/,
      );
      assert.equal(gw.upstream.length, 0);
    });
  },
);

Deno.test(
  "stream_chunk sees typed chunks: rewrite and drop, framed per route",
  SANITIZE,
  async (t) => {
    const shout: Stage = {
      name: "shout",
      fail_mode: "closed",
      timeout_ms: 5_000,
      stream_chunk: (_ex, chunk) => {
        const content = chunk.choices[0]?.delta.content;
        if (content === " world") return null; // dropped
        if (typeof content !== "string") return undefined; // unchanged
        return {
          ...chunk,
          choices: [{ ...chunk.choices[0]!, delta: { content: content.toUpperCase() } }],
        };
      },
    };
    await t.step(
      "chat: OpenAI SSE with [DONE], from a same-schema upstream decoded on demand",
      async () => {
        const gw = gateway({ stages: [shout] });
        const res = await gw.request(
          "/v1/chat/completions",
          post({ ...ROUTES[0]!.body, stream: true }),
        );
        const text = await res.text();
        const contents = text.split("\n\n").filter((e) => e.startsWith("data: {")).map((e) =>
          JSON.parse(e.slice(6)).choices[0]?.delta?.content
        ).filter((c) => c);
        assert.deepEqual(contents, ["HELLO"]);
        assert.ok(text.endsWith("data: [DONE]\n\n"));
        const line = requestLines(gw.logs)[0]!;
        assert.equal(line.outcome, "complete");
        assert.equal(line.prompt_tokens, 7, "usage still metered on the relay");
      },
    );
    await t.step("messages: Anthropic events from the rewritten chunks", async () => {
      const gw = gateway({ stages: [shout] });
      const res = await gw.request("/v1/messages", post({ ...ROUTES[2]!.body, stream: true }));
      const text = await res.text();
      assert.match(text, /"text":"HI THERE"/);
      assert.match(text, /event: message_stop/);
      // The upstream's counts (9 in, 3 out) reach the client in message_delta.
      const delta = text.split("\n").find((l) => l.includes('"type":"message_delta"'));
      const usage = JSON.parse(delta!.slice("data: ".length)).usage;
      assert.deepEqual([usage.input_tokens, usage.output_tokens], [9, 3]);
    });
    await t.step("a stage that does not want this exchange's chunks leaves its bytes", async () => {
      const seen: string[] = [];
      const gw = gateway({
        stages: [{
          ...shout,
          stream_chunk: (ex) => void seen.push(ex.id),
          wants_chunks: (ex) => ex.schema !== "anthropic_messages",
        }],
      });
      const res = await gw.request("/v1/messages", post({ ...ROUTES[2]!.body, stream: true }));
      const text = await res.text();
      assert.match(text, /"usage":\{"input_tokens":9,"output_tokens":1\}/, "the upstream's bytes");
      assert.deepEqual(seen, []);
      const chat = await gw.request(
        "/v1/chat/completions",
        post({ ...ROUTES[0]!.body, stream: true }),
      );
      await chat.text();
      assert.ok(seen.length > 0);
    });
    await t.step("a stream without stream_chunk stages stays the upstream's bytes", async () => {
      const gw = gateway({ stages: [] });
      const res = await gw.request(
        "/v1/chat/completions",
        post({ ...ROUTES[0]!.body, stream: true }),
      );
      const text = await res.text();
      assert.match(text, /"content":"Hello"/);
      assert.match(text, /"created":1/, "relayed as the upstream sent it");
    });
  },
);

Deno.test("stage hooks see only the schemas they are for", SANITIZE, async () => {
  const log: string[] = [];
  const gw = gateway({
    stages: [{ ...recorder("chat-only", log), schemas: ["openai_chat"] }],
  });
  (await gw.request("/v1/embeddings", post(ROUTES[3]!.body))).body?.cancel();
  assert.deepEqual(log, []);
  (await gw.request("/v1/chat/completions", post(ROUTES[0]!.body))).body?.cancel();
  assert.equal(log.length, 4);
});
