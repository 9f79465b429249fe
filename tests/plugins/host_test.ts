/**
 * The WASM host with guest fixtures (tests/fixtures/wasm/*.wat): each misbehaviour follows
 * the plugin's configuration (fail_mode, timeout, max_memory, allowed_hosts, no files), and
 * a stuck guest does not stop the gateway serving other requests.
 */
import assert from "node:assert/strict";
import { ConfigError } from "../../src/config/mod.ts";
import { gateway, post, requestLines, type TestGateway } from "../pipeline/support.ts";
import { fixtureWasm, watToWasm } from "./wat.ts";

const TMP = await Deno.makeTempDir({ prefix: "pf-wasm-host-" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const CHAT = { model: "up/gpt-up", messages: [{ role: "user", content: "hi" }] };

function config(plugin: string, extra = ""): string {
  return `
providers:
  up: { base_url: "http://up.test/v1", keys: [{ key: sk-up-configured-0001 }] }
  claude:
    type: anthropic
    base_url: "http://claude.test/v1"
    keys: [{ key: sk-ant-configured-0002 }]
routing:
  failover: { enabled: false }
wasm_plugins:
  - name: fixture
    path: ${plugin}
${extra.split("\n").map((l) => (l ? `    ${l}` : l)).join("\n")}
`;
}

async function withPlugin(
  fixture: string,
  extra: string,
  fn: (gw: TestGateway) => Promise<void>,
): Promise<void> {
  const gw = gateway({ config: config(await fixtureWasm(TMP, fixture), extra) });
  try {
    await gw.runtime.ready();
    await fn(gw);
  } finally {
    await gw.runtime.dispose();
  }
}

const chat = (gw: TestGateway, body: unknown = CHAT, headers: Record<string, string> = {}) =>
  gw.request("/v1/chat/completions", post(body, headers));

Deno.test("a guest that does nothing changes nothing", async () => {
  await withPlugin("noop", "fail_mode: closed", async (gw) => {
    const res = await chat(gw);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).choices[0].message.content, "echo: hi");
  });
});

Deno.test("a pre_llm rewrite replaces the body sent upstream; metadata reaches the log", async () => {
  await withPlugin("rewrite", "", async (gw) => {
    const res = await chat(gw);
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.equal(JSON.parse(text).choices[0].message.content, "echo: rewritten by the plugin");
    const raw = gw.upstream[0]!.init.body;
    const sent = JSON.parse(
      raw instanceof Uint8Array ? new TextDecoder().decode(raw) : String(raw),
    );
    assert.equal(sent.messages[0].content, "rewritten by the plugin");
    const line = gw.logs.map((l) => JSON.parse(l)).find((l) => l.msg === "request");
    assert.deepEqual(line.metadata, { rewritten: "yes" });
  });
});

Deno.test("pre_llm input: the routed provider and the model, as Butter gives them", async () => {
  await withPlugin("echo_input", "", async (gw) => {
    const res = await chat(gw);
    const seen = await res.json();
    assert.equal(res.status, 200);
    assert.equal(seen.hook, "pre_llm");
    assert.equal(seen.provider, "up");
    // Resolved: the model the provider is asked for (`up/gpt-up` as sent), in the body too.
    assert.equal(seen.model, "gpt-up");
    assert.equal(seen.body.model, "gpt-up");
    assert.equal(seen.body.messages[0].content, "hi");
    assert.equal(gw.upstream.length, 0);
  });
});

Deno.test("pre_llm input: an alias is resolved to the model the provider is asked for", async () => {
  const echo = await fixtureWasm(TMP, "echo_input");
  const gw = gateway({
    config: `
providers:
  up: { base_url: "http://up.test/v1", keys: [{ key: sk-up-configured-0001 }] }
routing:
  aliases: { fast: up/gpt-up }
wasm_plugins:
  - name: fixture
    path: ${echo}
`,
  });
  try {
    await gw.runtime.ready();
    const res = await chat(gw, { ...CHAT, model: "fast" });
    const seen = await res.json();
    assert.equal(seen.provider, "up");
    assert.equal(seen.model, "gpt-up");
    assert.equal(seen.body.model, "gpt-up");
  } finally {
    await gw.runtime.dispose();
  }
});

Deno.test("a short-circuit answers in the route's own format; status 0 is 400", async (t) => {
  await withPlugin("short_circuit", "", async (gw) => {
    await t.step("OpenAI route: the guest's body as is", async () => {
      const res = await chat(gw);
      assert.equal(res.status, 400);
      assert.deepEqual(await res.json(), {
        error: {
          message: "Blocked by fixture",
          type: "invalid_request_error",
          code: "fixture_block",
        },
      });
    });
    await t.step("a stream request gets the same JSON error", async () => {
      const res = await chat(gw, { ...CHAT, stream: true });
      assert.equal(res.status, 400);
      assert.equal((await res.json()).error.code, "fixture_block");
    });
    await t.step("Anthropic route: Anthropic's error envelope, the message kept", async () => {
      const res = await gw.request(
        "/v1/messages",
        post({
          model: "claude/claude-x",
          max_tokens: 8,
          messages: [{ role: "user", content: "hi" }],
        }),
      );
      assert.equal(res.status, 400);
      const body = await res.json();
      assert.equal(body.type, "error");
      assert.equal(body.error.type, "invalid_request_error");
      assert.equal(body.error.message, "Blocked by fixture");
    });
    assert.equal(gw.upstream.length, 0, "nothing went upstream");
  });
});

Deno.test("a pre_llm answer (status 200) is the response; nothing goes upstream", async () => {
  await withPlugin("answer", "", async (gw) => {
    const res = await chat(gw);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).choices[0].message.content, "answered by the plugin");
    assert.equal(gw.upstream.length, 0);
  });
});

Deno.test("metadata and response_headers: the header is on the response", async () => {
  await withPlugin("tag_headers", "", async (gw) => {
    const res = await chat(gw);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-fixture"), "tagged");
    await res.body?.cancel();
  });
});

for (
  const [fixture, what] of [
    ["reject", "a non-zero status"],
    ["garbage", "output that is not JSON"],
    ["trap", "a trap"],
  ] as const
) {
  Deno.test(`${what}: fail_mode open skips the plugin, closed answers 500`, async (t) => {
    await t.step("open", async () => {
      await withPlugin(fixture, "fail_mode: open", async (gw) => {
        const res = await chat(gw);
        assert.equal(res.status, 200);
        await res.body?.cancel();
        assert.ok(gw.logs.some((l) => l.includes("stage skipped (fail_mode open)")));
      });
    });
    await t.step("closed", async () => {
      await withPlugin(fixture, "fail_mode: closed", async (gw) => {
        const res = await chat(gw);
        assert.equal(res.status, 500);
        const body = await res.json();
        assert.equal(body.error.code, "stage_failed");
        assert.match(body.error.message, /Stage "fixture" failed in pre_http/);
        assert.equal(gw.upstream.length, 0);
      });
    });
  });
}

Deno.test("a spinning guest is stopped at its timeout while other requests are served", async () => {
  await withPlugin("spin", "timeout: 300ms\nfail_mode: closed\ninstances: 3", async (gw) => {
    const big = { ...CHAT, messages: [{ role: "user", content: "x".repeat(3000) }] };
    const started = performance.now();
    const stuck = chat(gw, big);
    // While one instance spins, small requests keep being answered by the others.
    for (let i = 0; i < 5; i++) {
      const res = await chat(gw);
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    const res = await stuck;
    const elapsed = performance.now() - started;
    assert.equal(res.status, 500);
    // The stage's budget or the plugin's own watchdog (the same 300 ms), whichever fires first.
    assert.match(
      (await res.json()).error.message,
      /(did not finish pre_http|pre_http: did not answer) within 300 ms/,
    );
    assert.ok(elapsed < 5_000, `stopped in ${elapsed} ms`);
    // The instance was replaced: the plugin still serves.
    const after = await chat(gw);
    assert.equal(after.status, 200);
    await after.body?.cancel();
  });
});

Deno.test("a guest still running at the request's deadline: the request's 504 then, not at the plugin's timeout", async () => {
  // The deadline before pre_http has read the body: routing.failover.deadline.
  const yaml = config(await fixtureWasm(TMP, "spin"), "timeout: 3s\nfail_mode: open")
    .replace("failover: { enabled: false }", "failover: { enabled: false, deadline: 400ms }");
  const gw = gateway({ config: yaml });
  try {
    await gw.runtime.ready();
    const big = { ...CHAT, messages: [{ role: "user", content: "x".repeat(3000) }] };
    const started = performance.now();
    const res = await chat(gw, big);
    const elapsed = performance.now() - started;
    assert.equal(res.status, 504);
    assert.match(
      (await res.json()).error.message,
      /deadline passed .*plugin "fixture" \(it was running\)/,
    );
    assert.ok(elapsed < 2_500, `answered after ${elapsed} ms, the plugin's timeout is 3 s`);
    // fail_mode open did not let it through to the upstream.
    assert.equal(gw.upstream.length, 0);
  } finally {
    await gw.runtime.dispose();
  }
});

Deno.test("a guest that fails as it starts is named by its config key path", async () => {
  const path = `${TMP}/start_trap.wasm`;
  await Deno.writeFile(
    path,
    await watToWasm(
      `(module (func $s unreachable) (start $s) (func (export "pre_http") (result i32) i32.const 0))`,
    ),
  );
  const gw = gateway({ config: config(path, "") });
  try {
    await assert.rejects(gw.runtime.ready(), (err: Error) => {
      assert.match(err.message, /wasm_plugins\[0\]\.path \("fixture"\): /);
      return true;
    });
  } finally {
    await gw.runtime.dispose();
  }
});

Deno.test("a call's timeout grows with its input past 1 MiB, so a guest has time to read any body", async () => {
  const { callTimeout } = await import("../../src/plugins/stage.ts");
  assert.equal(callTimeout(500, 1_000), 500);
  assert.equal(callTimeout(500, 1024 * 1024), 500);
  assert.equal(callTimeout(500, 10 * 1024 * 1024), 5_000);
});

Deno.test("a guest that grows memory without bound hits max_memory and fails", async () => {
  await withPlugin("grow", "max_memory: 5MiB\nfail_mode: closed", async (gw) => {
    const res = await chat(gw);
    assert.equal(res.status, 500);
    assert.match((await res.json()).error.message, /failed in pre_http/);
  });
});

Deno.test("max_memory too small for any input, or above a 32-bit guest's, and a timeout of 0 are config errors", async () => {
  const path = await fixtureWasm(TMP, "noop");
  for (
    const [setting, message] of [
      ["max_memory: 1KB", /at least 5MiB/],
      ["max_memory: 4MiB", /at least 5MiB/],
      ["max_memory: 5GiB", /at most 4GiB/],
      ["timeout: 0s", /timeout is above 0/],
    ] as const
  ) {
    assert.throws(() => gateway({ config: config(path, setting) }), message, setting);
  }
  // The edges are fine.
  const gw = gateway({ config: config(path, "max_memory: 4GiB\ntimeout: 1ms") });
  await gw.runtime.dispose();
});

Deno.test("network: denied without allowed_hosts, allowed for a listed host", async (t) => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => Response.json({ metadata: { fetched: "yes" }, response_headers: { "x-fetched": "yes" } }),
  );
  const request = JSON.stringify({ method: "GET", url: `http://127.0.0.1:${server.addr.port}/` });
  try {
    // Named by the config key, not Extism's option; the host named when the list is not empty.
    for (
      const [allowed, reason] of [
        ["", /allowed_hosts is empty/],
        ['allowed_hosts: ["localhost"]\n', /allowed_hosts has no entry for "127\.0\.0\.1/],
      ] as const
    ) {
      await t.step(
        `${allowed.trim() || "no allowed_hosts"}: the call fails (closed → 500)`,
        async () => {
          await withPlugin(
            "net",
            `fail_mode: closed\n${allowed}config: { request: '${request}' }`,
            async (gw) => {
              const res = await chat(gw);
              assert.equal(res.status, 500);
              const { message } = (await res.json()).error;
              assert.match(message, /not allowed/);
              assert.match(message, reason);
              assert.doesNotMatch(message, /allowedHosts/);
            },
          );
        },
      );
    }
    await t.step("allowed_hosts [127.0.0.1]: the guest gets the answer", async () => {
      await withPlugin(
        "net",
        `fail_mode: closed\nallowed_hosts: ["127.0.0.1"]\nconfig: { request: '${request}' }`,
        async (gw) => {
          const res = await chat(gw);
          assert.equal(res.status, 200);
          assert.equal(res.headers.get("x-fetched"), "yes");
          await res.body?.cancel();
        },
      );
    });
    await t.step("allowed_hosts host:port: that port is reached, another is not", async () => {
      const port = server.addr.port;
      for (const [entry, status] of [[`127.0.0.1:${port}`, 200], [`127.0.0.1:${port + 1}`, 500]]) {
        await withPlugin(
          "net",
          `fail_mode: closed\nallowed_hosts: ["${entry}"]\nconfig: { request: '${request}' }`,
          async (gw) => {
            const res = await chat(gw);
            assert.equal(res.status, status, String(entry));
            if (status === 500) assert.match((await res.json()).error.message, /not allowed/);
            else await res.body?.cancel();
          },
        );
      }
    });
    await t.step(
      "http_status_code: the last answer's status, whatever the import order",
      async () => {
        const failing = Deno.serve(
          { hostname: "127.0.0.1", port: 0, onListen: () => {} },
          () => new Response("no", { status: 503 }),
        );
        try {
          for (const [port, status] of [[server.addr.port, 200], [failing.addr.port, 500]]) {
            const req = JSON.stringify({ method: "GET", url: `http://127.0.0.1:${port}/` });
            await withPlugin(
              "net_status",
              `fail_mode: closed\nallowed_hosts: ["127.0.0.1"]\nconfig: { request: '${req}' }`,
              async (gw) => {
                const res = await chat(gw);
                assert.equal(res.status, status, `upstream on ${port}`);
                await res.body?.cancel();
              },
            );
          }
        } finally {
          await failing.shutdown();
        }
      },
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("files: a WASI guest has no preopened directory, so it cannot open one", async () => {
  await withPlugin("file", "fail_mode: closed", async (gw) => {
    const res = await chat(gw);
    assert.equal(res.status, 200);
    await res.body?.cancel();
    const line = gw.logs.map((l) => JSON.parse(l)).find((l) => l.msg === "request");
    assert.deepEqual(line.metadata, { file: "denied" });
  });
});

Deno.test("stream_chunk: a guest can drop chunks", async () => {
  await withPlugin("chunk", "fail_mode: closed", async (gw) => {
    const res = await chat(gw, { ...CHAT, stream: true });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.ok(!text.includes("Hello"), text);
    assert.ok(text.includes("[DONE]"));
  });
});

Deno.test("credentials are redacted from what a guest sees unless expose_credentials", async () => {
  const { headerMap } = await import("../../src/plugins/abi.ts");
  const h = new Headers({ authorization: "Bearer sk-secret", "x-api-key": "k", "x-trace": "t" });
  // Named as Go's http.Header names them: a Butter guest reads headers["Authorization"].
  assert.deepEqual(headerMap(h, false), {
    Authorization: "[REDACTED]",
    "X-Api-Key": "[REDACTED]",
    "X-Trace": "t",
  });
  assert.equal(headerMap(h, true).Authorization, "Bearer sk-secret");
  // Names that say credential, and any pf_ value; ordinary headers are kept.
  const more = new Headers({
    "x-pilotfish-app-key": "pf_abc",
    "x-access-key": "a",
    "x-auth": "b",
    "x-aws-credentials": "c",
    "x-custom": "pf_hidden_app_key",
    "content-type": "application/json",
    "x-request-id": "r1",
    "anthropic-version": "2023-06-01",
  });
  assert.deepEqual(headerMap(more, false), {
    "Anthropic-Version": "2023-06-01",
    "Content-Type": "application/json",
    "X-Access-Key": "[REDACTED]",
    "X-Auth": "[REDACTED]",
    "X-Aws-Credentials": "[REDACTED]",
    "X-Custom": "[REDACTED]",
    "X-Pilotfish-App-Key": "[REDACTED]",
    "X-Request-Id": "r1",
  });
});

Deno.test("canonicalName() is Go's CanonicalMIMEHeaderKey for the names Headers gives", async () => {
  const { canonicalName } = await import("../../src/plugins/abi.ts");
  const cases: [string, string][] = [
    ["content-type", "Content-Type"],
    ["x-tenant-id", "X-Tenant-Id"],
    ["x-b3-traceid", "X-B3-Traceid"],
    ["authorization", "Authorization"],
    ["x_under_score", "X_under_score"],
    ["1abc", "1abc"],
    ["a--b", "A--B"],
  ];
  for (const [name, want] of cases) assert.equal(canonicalName(name), want, name);
  // Cached: the same answer a second time.
  assert.equal(canonicalName("x-tenant-id"), "X-Tenant-Id");
});

Deno.test("config errors: missing file, unknown hook, duplicate names", async () => {
  assert.throws(() => gateway({ config: config(`${TMP}/missing.wasm`) }), /cannot read/);
  const noop = await fixtureWasm(TMP, "noop");
  assert.throws(
    () => gateway({ config: config(noop, "hooks: [stream_chunk]") }),
    /hooks \("[^"]*"\): lists "stream_chunk", which it does not export/,
  );
  assert.throws(
    () => gateway({ config: config(noop, "hooks: []") }),
    /hooks \("[^"]*"\): empty; list the hooks to run \(it exports pre_http/,
  );
});

Deno.test("a hook of another type than () -> i32 is a config error, at start and with --check", async () => {
  const path = await fixtureWasm(TMP, "bad_signature");
  const want =
    /wasm_plugins\[0\] \("fixture"\): exports pre_http as \(i32\) -> i32; the host calls it as \(\) -> i32/;
  assert.throws(() => gateway({ config: config(path) }), want);
  const { parseConfigText } = await import("../../src/config/mod.ts");
  const { pluginConfigProblems } = await import("../../src/plugins/mod.ts");
  const problems = await pluginConfigProblems(
    parseConfigText(config(path), () => undefined, "c.yaml").config,
    "/",
  );
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, want);
});

Deno.test("a helper exported under a hook's name that hooks leaves out may have any type", async () => {
  const path = `${TMP}/helper_hook.wasm`;
  await Deno.writeFile(
    path,
    await watToWasm(`(module (memory (export "memory") 1)
      (func (export "pre_http") (result i32) (i32.const 0))
      (func (export "stream_chunk") (param i32 i32) (result i32) (local.get 0)))`),
  );
  const gw = gateway({ config: config(path, "hooks: [pre_http]") });
  await gw.runtime.dispose();
  assert.throws(
    () => gateway({ config: config(path) }),
    /exports stream_chunk as \(i32, i32\) -> i32; the host calls it as \(\) -> i32/,
  );
});

for (const fixture of ["host_loop", "host_indirect"]) {
  Deno.test(`a guest looping on host calls (${fixture}) is stopped at its timeout; the daemon's thread stays free`, async () => {
    await withPlugin(fixture, "timeout: 300ms\nfail_mode: closed", async (gw) => {
      const started = performance.now();
      const stuck = chat(gw);
      // The metered run spends its fuel on host calls within milliseconds; the rest runs in a
      // worker, stopped at the timeout, while the daemon answers.
      const health = await gw.request("/healthz");
      assert.equal(health.status, 200);
      await health.body?.cancel();
      assert.ok(
        performance.now() - started < 1_000,
        `healthz after ${performance.now() - started} ms`,
      );
      const res = await stuck;
      assert.equal(res.status, 500);
      await res.body?.cancel();
      assert.ok(performance.now() - started < 5_000);
    });
  });
}

Deno.test("max_memory caps the host buffers a guest asks for, even one that ignores a refusal", async () => {
  await withPlugin("alloc_hoard", "max_memory: 8MiB\nfail_mode: closed", async (gw) => {
    const before = Deno.memoryUsage().rss;
    for (let i = 0; i < 3; i++) {
      const res = await chat(gw);
      assert.equal(res.status, 500);
      assert.match(
        (await res.json()).error.message,
        /failed in pre_http: max_memory exceeded: the guest asked the host for 1048576 bytes more, past the 8 MiB one call may take/,
      );
    }
    // Stopped at 8 MiB each time (Extism's own check kept every buffer it refused: 1 GiB a
    // call before the guest's fuel ran out).
    const grown = (Deno.memoryUsage().rss - before) / 1_048_576;
    assert.ok(grown < 200, `RSS grew ${grown.toFixed(0)} MiB`);
  });
  // A guest that asks for what max_memory allows is served.
  await withPlugin("noop", "max_memory: 8MiB\nfail_mode: closed", async (gw) => {
    const res = await chat(gw);
    assert.equal(res.status, 200);
    await res.body?.cancel();
  });
});

Deno.test("a negative size does not lower the count max_memory holds a guest to", async () => {
  await withPlugin(
    "alloc_negative",
    "max_memory: 8MiB\nfail_mode: closed\ntimeout: 20s",
    async (gw) => {
      const res = await chat(gw);
      assert.equal(res.status, 500);
      assert.match((await res.json()).error.message, /max_memory exceeded/);
    },
  );
});

Deno.test("var names are capped: empty vars under 4 MiB names do not grow the daemon", async () => {
  await withPlugin("var_names", "max_memory: 8MiB\nfail_mode: closed\ntimeout: 20s", async (gw) => {
    const res = await chat(gw);
    assert.equal(res.status, 500);
    assert.match((await res.json()).error.message, /var_set: a var's name is at most 1024 bytes/);
  });
});

Deno.test("max_memory caps the HTTP answers one call keeps", async () => {
  const body = new Uint8Array(4 * 1024 * 1024 - 4096).fill(65);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(body),
  );
  const request = JSON.stringify({ method: "GET", url: `http://127.0.0.1:${server.addr.port}/` });
  try {
    await withPlugin(
      "http_hoard",
      `max_memory: 8MiB\nfail_mode: closed\ntimeout: 20s\nallowed_hosts: ["127.0.0.1"]\nconfig: { request: '${request}' }`,
      async (gw) => {
        // Cut at the cap (each answer past it is dropped, not kept); the process's RSS is no
        // measure here: the HTTP guest's worker starts within this call.
        const res = await chat(gw);
        assert.equal(res.status, 500);
        assert.match(
          (await res.json()).error.message,
          /max_memory exceeded: HTTP answers past 8 MiB/,
        );
      },
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("max_memory caps the vars a guest keeps across calls", async () => {
  await withPlugin("var_hoard", "max_memory: 8MiB\nfail_mode: closed", async (gw) => {
    const res = await chat(gw);
    assert.equal(res.status, 500);
    assert.match((await res.json()).error.message, /failed in pre_http/);
  });
});

/** `config_out` answering `hook` with `output` (and nothing on the other hooks). */
const answering = (hook: string, output: unknown, failMode: string) =>
  `fail_mode: ${failMode}\nconfig:\n  ${hook}: '${JSON.stringify(output)}'`;

Deno.test("a stream_chunk replacement that is not a chunk is the plugin's error, not the provider's", async (t) => {
  const stream = { ...CHAT, stream: true };
  await t.step("open: every chunk passes unchanged, one warning each", async () => {
    await withPlugin(
      "config_out",
      answering("stream_chunk", { chunk: { foo: 1 } }, "open"),
      async (gw) => {
        const res = await chat(gw, stream);
        assert.equal(res.status, 200);
        const text = await res.text();
        assert.ok(text.includes('"content":"Hello"') && text.includes("[DONE]"), text);
        assert.ok(!text.includes('"error"'), text);
        const warned = gw.logs.filter((l) => l.includes("stage skipped"));
        assert.ok(warned.length > 0 && warned[0]!.includes("chunk.choices is not an array"));
        assert.equal(requestLines(gw.logs)[0]!.outcome, "complete");
      },
    );
  });
  await t.step("closed: the stream ends with a stage_failed error event", async () => {
    await withPlugin(
      "config_out",
      answering("stream_chunk", { chunk: { foo: 1 } }, "closed"),
      async (gw) => {
        const res = await chat(gw, stream);
        const text = await res.text();
        assert.match(text, /"code":"stage_failed"/);
        assert.match(
          text,
          /Stage \\"fixture\\" failed in stream_chunk: stream_chunk chunk\.choices/,
        );
        assert.ok(!text.includes("broke"), text);
      },
    );
  });
  await t.step(
    "a valid replacement keeps the chunk's identity where the guest left it out",
    async () => {
      const chunk = { choices: [{ index: 0, delta: { content: "swapped" }, finish_reason: null }] };
      await withPlugin("config_out", answering("stream_chunk", { chunk }, "closed"), async (gw) => {
        const text = await (await chat(gw, stream)).text();
        assert.match(
          text,
          /"id":"chatcmpl-1","object":"chat.completion.chunk".*"content":"swapped"/,
        );
      });
    },
  );
});

Deno.test("a post_llm body that is not the route's answer is the plugin's error, per fail_mode", async (t) => {
  const messages = (gw: TestGateway) =>
    gw.request("/v1/messages", post({ ...CHAT, max_tokens: 8 }));
  await t.step("open: the provider's answer, unchanged", async () => {
    await withPlugin(
      "config_out",
      answering("post_llm", { body: { foo: 1 } }, "open"),
      async (gw) => {
        const res = await messages(gw);
        assert.equal(res.status, 200);
        assert.equal((await res.json()).content[0].text, "echo: hi");
        const chatRes = await chat(gw);
        assert.equal((await chatRes.json()).choices[0].message.content, "echo: hi");
      },
    );
  });
  await t.step("closed: 500 stage_failed in the route's format", async () => {
    await withPlugin(
      "config_out",
      answering("post_llm", { body: { foo: 1 } }, "closed"),
      async (gw) => {
        const res = await messages(gw);
        assert.equal(res.status, 500);
        const body = await res.json();
        assert.equal(body.type, "error");
        assert.match(
          body.error.message,
          /Stage "fixture" failed in post_llm: post_llm body\.choices/,
        );
      },
    );
  });
});

Deno.test("a guest that drops every chunk: each streamed route ends cleanly, with no content", async (t) => {
  await withPlugin(
    "config_out",
    answering("stream_chunk", { drop: true }, "closed"),
    async (gw) => {
      await t.step("chat completions", async () => {
        const text = await (await chat(gw, { ...CHAT, stream: true })).text();
        assert.equal(text.trim(), "data: [DONE]");
      });
      await t.step("responses", async () => {
        const res = await gw.request(
          "/v1/responses",
          post({ model: "up/gpt-up", input: "hi", stream: true }),
        );
        const text = await res.text();
        assert.match(text, /response\.completed/);
        assert.ok(!/"type":"(error|response\.failed)"/.test(text), text);
      });
      for (const model of ["up/gpt-up", "claude/claude-x"]) {
        await t.step(`messages (${model})`, async () => {
          const res = await gw.request(
            "/v1/messages",
            post({ model, max_tokens: 8, stream: true, messages: CHAT.messages }),
          );
          const text = await res.text();
          assert.match(text, /^event: message_start/);
          assert.match(text, /event: message_stop\n/);
          assert.ok(!text.includes("event: error") && !text.includes("text_delta"), text);
        });
      }
    },
  );
});

Deno.test("credential headers are redacted by any credential word in the name, or a credential value", async () => {
  const { headerMap } = await import("../../src/plugins/abi.ts");
  const secret = {
    "x-apitoken": "a1",
    "x-authtoken": "a2",
    "x-secretkey": "a3",
    "x-sessiontoken": "a4",
    "x-bearer": "a5",
    "x-jwt": "a6",
    "x-db-password": "a7",
    "x-upstream": "Bearer sk-abc",
    "x-basic": "Basic dXNlcjpwYXNz",
    "x-plain-key-value": "sk-live-123",
    "x-app": "pf_abc",
    "x-configured": "the key is sk-up-configured-0001",
  };
  const ordinary = {
    accept: "application/json",
    "anthropic-version": "2023-06-01",
    "content-type": "application/json",
    "user-agent": "OpenAI/Python 1.0",
    "x-request-id": "r1",
    "x-trace": "t",
  };
  const redact = (text: string) => text.replaceAll("sk-up-configured-0001", "[REDACTED]");
  const { canonicalName } = await import("../../src/plugins/abi.ts");
  const seen = headerMap(new Headers({ ...secret, ...ordinary }), false, redact);
  for (const name of Object.keys(secret)) {
    assert.equal(seen[canonicalName(name)], "[REDACTED]", name);
  }
  for (const [name, value] of Object.entries(ordinary)) {
    assert.equal(seen[canonicalName(name)], value, name);
  }
  assert.equal(headerMap(new Headers(secret), true, redact)["X-Upstream"], "Bearer sk-abc");
});

Deno.test("headerMap() with the daemon's redactor: a configured key is hidden, as written or encoded", async () => {
  const { headerMap } = await import("../../src/plugins/abi.ts");
  const { createRedactor } = await import("../../src/telemetry/mod.ts");
  const key = "upstream-key-0123456789";
  const redact = createRedactor([key]);
  const seen = headerMap(
    new Headers({ "x-forwarded": `k=${key}`, "x-b64": btoa(`u:${key}`), "x-trace": "t-1" }),
    false,
    redact,
  );
  assert.deepEqual(seen, { "X-B64": "[REDACTED]", "X-Forwarded": "[REDACTED]", "X-Trace": "t-1" });
});

Deno.test("expose_credentials in the plugin's config map opts in, as the top-level key does", async (t) => {
  const headers = { "x-apitoken": "tok-123", authorization: "Bearer sk-client-0001" };
  const seen = async (extra: string) => {
    let input: { headers: Record<string, string> } | undefined;
    await withPlugin("echo_input", extra, async (gw) => {
      const res = await chat(gw, CHAT, headers);
      assert.equal(res.status, 200);
      input = await res.json();
    });
    return input!.headers;
  };
  await t.step("not set: redacted", async () => {
    const h = await seen("");
    assert.equal(h["X-Apitoken"], "[REDACTED]");
    assert.equal(h.Authorization, "[REDACTED]");
  });
  for (const extra of ["expose_credentials: true", "config: { expose_credentials: 'true' }"]) {
    await t.step(extra, async () => {
      const h = await seen(extra);
      assert.equal(h["X-Apitoken"], "tok-123");
      assert.equal(h.Authorization, "Bearer sk-client-0001");
    });
  }
});

Deno.test("each plugin sees its own view of the headers, built again after a stage rewrites them", async () => {
  // Two plugins (one exposed) read the headers on every hook before the echo does; a native
  // stage (after the plugins) replaces them in pre_http. The echo (not exposed) must see the
  // new ones, redacted.
  const exposed = await fixtureWasm(TMP, "noop");
  const echo = await fixtureWasm(TMP, "echo_input");
  const gw = gateway({
    config: `
providers:
  up: { base_url: "http://up.test/v1", keys: [{ key: sk-up-configured-0001 }] }
wasm_plugins:
  - { name: exposed, path: ${exposed}, expose_credentials: true }
  - { name: plain, path: ${exposed} }
  - { name: echo, path: ${echo} }
`,
    stages: [{
      name: "rewriter",
      fail_mode: "closed",
      timeout_ms: 5_000,
      pre_http: (_ex, req) => {
        req.headers.set("x-rewritten", "yes");
        return { action: "rewrite", headers: req.headers };
      },
    }],
  });
  try {
    await gw.runtime.ready();
    const res = await chat(gw, CHAT, { authorization: "Bearer sk-client-0001", "x-trace": "t" });
    assert.equal(res.status, 200);
    const { headers } = await res.json();
    assert.equal(headers.Authorization, "[REDACTED]");
    assert.equal(headers["X-Rewritten"], "yes");
    assert.equal(headers["X-Trace"], "t");
  } finally {
    await gw.runtime.dispose();
  }
});

Deno.test("response_headers cannot replace the gateway's own headers", async (t) => {
  const evil = {
    response_headers: { "x-pilotfish-provider": "evil", "x-request-id": "fake" },
  };
  await t.step(
    "open: the gateway's values stay; the plugin is skipped with a warning",
    async () => {
      await withPlugin("config_out", answering("post_http", evil, "open"), async (gw) => {
        const res = await chat(gw);
        assert.equal(res.status, 200);
        await res.body?.cancel();
        assert.equal(res.headers.get("x-pilotfish-provider"), "up");
        assert.notEqual(res.headers.get("x-request-id"), "fake");
        assert.ok(gw.logs.some((l) => l.includes("may not set the gateway's own")));
      });
    },
  );
  await t.step("closed: 500 stage_failed", async () => {
    await withPlugin("config_out", answering("post_http", evil, "closed"), async (gw) => {
      const res = await chat(gw);
      assert.equal(res.status, 500);
      assert.match((await res.json()).error.message, /x-pilotfish-provider/);
    });
  });
  await t.step(
    "a header a stage already set keeps its value; the plugin's others go on",
    async () => {
      const path = await fixtureWasm(TMP, "config_out");
      const output = { response_headers: { "x-set-by-gateway": "plugin", "x-plugin": "yes" } };
      const gw = gateway({
        config: config(path, answering("pre_http", output, "open")),
        stages: [{
          name: "sets-a-header",
          fail_mode: "closed",
          timeout_ms: 1_000,
          post_http: (_ex, res) => res.headers.set("x-set-by-gateway", "gateway"),
        }],
      });
      try {
        await gw.runtime.ready();
        const res = await chat(gw);
        await res.body?.cancel();
        assert.equal(res.headers.get("x-set-by-gateway"), "gateway");
        assert.equal(res.headers.get("x-plugin"), "yes");
        assert.ok(
          gw.logs.some((l) => l.includes("may not replace the gateway's x-set-by-gateway")),
        );
      } finally {
        await gw.runtime.dispose();
      }
    },
  );
  await t.step("the plugin that asked answers for a refused header, not another one", async () => {
    const path = await fixtureWasm(TMP, "config_out");
    const noop = await fixtureWasm(TMP, "noop");
    const tagger = { response_headers: { "x-set-by-gateway": "plugin" } };
    const gw = gateway({
      config: `
providers:
  up: { base_url: "http://up.test/v1", keys: [{ key: sk-up-configured-0001 }] }
routing:
  failover: { enabled: false }
wasm_plugins:
  - name: strict
    path: ${noop}
    fail_mode: closed
  - name: tagger
    path: ${path}
    fail_mode: open
    config:
      pre_http: '${JSON.stringify(tagger)}'
`,
      stages: [{
        name: "sets-a-header",
        fail_mode: "closed",
        timeout_ms: 1_000,
        post_http: (_ex, res) => res.headers.set("x-set-by-gateway", "gateway"),
      }],
    });
    try {
      await gw.runtime.ready();
      const res = await chat(gw);
      await res.body?.cancel();
      assert.equal(res.status, 200, "the closed plugin set nothing: no 500 of its own");
      assert.equal(res.headers.get("x-set-by-gateway"), "gateway");
      assert.ok(gw.logs.some((l) => l.includes('"tagger"') && l.includes("may not replace")));
    } finally {
      await gw.runtime.dispose();
    }
  });
  await t.step("x-pilotfish-injection stays the guard's to set", async () => {
    const tag = { response_headers: { "x-pilotfish-injection": "jailbreak" } };
    await withPlugin("config_out", answering("pre_http", tag, "closed"), async (gw) => {
      const res = await chat(gw);
      await res.body?.cancel();
      assert.equal(res.headers.get("x-pilotfish-injection"), "jailbreak");
    });
  });
});

Deno.test("a short-circuit with no body or a plain-text body: every route's own error, the plugin named", async (t) => {
  const routes = [
    { path: "/v1/chat/completions", body: CHAT, anthropic: false },
    { path: "/v1/responses", body: { model: "up/gpt-up", input: "hi" }, anthropic: false },
    { path: "/v1/messages", body: { ...CHAT, max_tokens: 8 }, anthropic: true },
  ];
  const cases = [
    { output: { short_circuit: true }, message: 'Request refused by plugin "fixture"' },
    {
      output: { short_circuit: true, short_circuit_status: 403, short_circuit_body: "hello plain" },
      message: "hello plain",
      status: 403,
    },
  ];
  for (const { output, message, status = 400 } of cases) {
    await withPlugin("config_out", answering("pre_http", output, "closed"), async (gw) => {
      for (const route of routes) {
        await t.step(`${JSON.stringify(output)} on ${route.path}`, async () => {
          const res = await gw.request(route.path, post(route.body));
          assert.equal(res.status, status);
          assert.match(res.headers.get("content-type") ?? "", /application\/json/);
          const body = await res.json();
          if (route.anthropic) assert.equal(body.type, "error");
          assert.equal(body.error.message, message);
        });
      }
    });
  }
  await t.step("a configured key in the body is redacted, text or JSON", async () => {
    for (
      const body of [
        "bad sk-up-configured-0001",
        JSON.stringify({ error: { message: "bad sk-up-configured-0001", type: "x" } }),
      ]
    ) {
      const output = { short_circuit: true, short_circuit_status: 403, short_circuit_body: body };
      await withPlugin("config_out", answering("pre_http", output, "closed"), async (gw) => {
        for (const route of routes) {
          const res = await gw.request(route.path, post(route.body));
          assert.equal(res.status, 403);
          const text = await res.text();
          assert.ok(!text.includes("sk-up-configured-0001"), `${route.path}: ${text}`);
          assert.match(text, /bad \[REDACTED\]/);
        }
      });
    }
  });
  await t.step("a success status with plain text is sent as text/plain", async () => {
    const output = { short_circuit: true, short_circuit_status: 200, short_circuit_body: "hi" };
    await withPlugin("config_out", answering("pre_http", output, "closed"), async (gw) => {
      const res = await chat(gw);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
      assert.equal(await res.text(), "hi");
    });
  });
  await t.step("204, 205 and 304 are answered without a body (not a 500)", async () => {
    for (const [hook, status] of [["pre_http", 204], ["pre_llm", 304], ["pre_llm", 205]] as const) {
      const output = {
        short_circuit: true,
        short_circuit_status: status,
        short_circuit_body: { a: 1 },
      };
      await withPlugin("config_out", answering(hook, output, "closed"), async (gw) => {
        const res = await chat(gw);
        assert.equal(res.status, status, `${hook} ${status}`);
        assert.equal(await res.text(), "");
      });
    }
  });
  await t.step(
    "a success on pre_llm names the provider routed to, as a refusal there does",
    async () => {
      const output = {
        short_circuit: true,
        short_circuit_status: 200,
        short_circuit_body: { a: 1 },
      };
      await withPlugin("config_out", answering("pre_llm", output, "closed"), async (gw) => {
        const res = await chat(gw);
        assert.equal(res.status, 200);
        assert.ok(res.headers.get("x-pilotfish-provider"), "x-pilotfish-provider");
        assert.ok(res.headers.get("x-pilotfish-model"), "x-pilotfish-model");
        assert.equal(res.headers.get("x-pilotfish-attempts"), "0");
        await res.body?.cancel();
      });
    },
  );
});

Deno.test("a field that does not apply to the hook is an error of the output, per fail_mode", async (t) => {
  const cases: { hook: string; output: unknown; field: string; stream?: boolean }[] = [
    { hook: "post_llm", output: { short_circuit: true }, field: "short_circuit" },
    {
      hook: "post_http",
      output: { short_circuit: true, short_circuit_status: 403 },
      field: "short_circuit",
    },
    { hook: "post_http", output: { body: { x: 1 } }, field: "body" },
    { hook: "stream_chunk", output: { short_circuit: true }, field: "short_circuit", stream: true },
    { hook: "stream_chunk", output: { body: { x: 1 } }, field: "body", stream: true },
  ];
  for (const { hook, output, field, stream } of cases) {
    await t.step(`${field} on ${hook}, closed: a stage_failed error`, async () => {
      await withPlugin("config_out", answering(hook, output, "closed"), async (gw) => {
        const res = await chat(gw, stream ? { ...CHAT, stream: true } : CHAT);
        const text = await res.text();
        assert.match(text, /stage_failed/, text);
        assert.ok(text.includes(`${field} does not apply to ${hook}`), text);
      });
    });
    await t.step(`${field} on ${hook}, open: skipped with a warning`, async () => {
      await withPlugin("config_out", answering(hook, output, "open"), async (gw) => {
        const res = await chat(gw, stream ? { ...CHAT, stream: true } : CHAT);
        assert.equal(res.status, 200);
        assert.ok((await res.text()).includes("Hello") || !stream);
        assert.ok(gw.logs.some((l) => l.includes(`${field} does not apply to ${hook}`)));
      });
    });
  }
  await t.step("zero values (a Go struct's) are absent, not fields", async () => {
    const output = {
      body: "",
      short_circuit: false,
      short_circuit_status: 0,
      short_circuit_body: "",
      chunk: null,
      response_headers: {},
      metadata: {},
    };
    await withPlugin("config_out", answering("post_http", output, "closed"), async (gw) => {
      const res = await chat(gw);
      assert.equal(res.status, 200);
      await res.body?.cancel();
    });
  });
});

Deno.test("a stream that outlives the request's deadline still runs its stream_chunk plugin", async () => {
  const path = await fixtureWasm(TMP, "config_out");
  let skew = 0;
  const gw = gateway({
    config: config(path, answering("stream_chunk", { metadata: { seen: "yes" } }, "closed")),
    clock: { now: () => performance.now() + skew },
    // After the plugin, on each chunk: the stream has now run past the 120 s deadline.
    stages: [{
      name: "clock",
      fail_mode: "closed",
      timeout_ms: 1e9, // its own jump of the clock is not its time
      stream_chunk: () => void (skew += 200_000),
    }],
  });
  try {
    await gw.runtime.ready();
    const text = await (await chat(gw, { ...CHAT, stream: true })).text();
    assert.ok(text.includes('"content":" world"') && text.includes("[DONE]"), text);
    assert.ok(!text.includes("error"), text);
  } finally {
    await gw.runtime.dispose();
  }
});

Deno.test("an answer too large for a post_llm plugin follows its fail_mode (answers have no body limit)", async (t) => {
  // 5 MiB of memory takes inputs up to (5 - 4) / 8 MiB = 128 KiB; the upstream echoes 200 KB.
  const big = { ...CHAT, messages: [{ role: "user", content: "x".repeat(200_000) }] };
  await t.step("open: skipped with a warning, the answer goes out", async () => {
    await withPlugin("config_out", "max_memory: 5MiB\nhooks: [post_llm]", async (gw) => {
      const res = await chat(gw, big);
      assert.equal(res.status, 200);
      await res.body?.cancel();
      assert.ok(gw.logs.some((l) => l.includes("too large for plugin")));
    });
  });
  await t.step("closed: a 500 stage_failed", async () => {
    await withPlugin(
      "config_out",
      "max_memory: 5MiB\nhooks: [post_llm]\nfail_mode: closed",
      async (gw) => {
        const res = await chat(gw, big);
        assert.equal(res.status, 500);
        assert.match((await res.json()).error.message, /too large for plugin/);
      },
    );
  });
});

Deno.test("metadata keeps its JSON types from guest to guest and into the log (Butter's map[string]any)", async () => {
  const tagger = await fixtureWasm(TMP, "config_out");
  const echo = await fixtureWasm(TMP, "echo_input");
  const meta = { tagged: true, n: 3, who: { team: "a" }, none: null };
  const gw = gateway({
    config: `
providers:
  up: { base_url: "http://up.test/v1", keys: [{ key: sk-up-configured-0001 }] }
wasm_plugins:
  - name: tagger
    path: ${tagger}
    config: { pre_http: '${JSON.stringify({ metadata: meta })}' }
  - name: echo
    path: ${echo}
`,
  });
  try {
    await gw.runtime.ready();
    const res = await chat(gw, CHAT, { "x-tenant-id": "t1" });
    assert.equal(res.status, 200);
    const seen = await res.json();
    assert.deepEqual(seen.metadata, meta);
    assert.equal(seen.headers["X-Tenant-Id"], "t1", "Go's header names");
    const line = requestLines(gw.logs).at(-1)!;
    assert.deepEqual(line.metadata, meta);
  } finally {
    await gw.runtime.dispose();
  }
});

Deno.test("metadata that is not a JSON object is an error of the output", async () => {
  for (const bad of ["[1]", '"text"', "3"]) {
    await withPlugin(
      "config_out",
      `fail_mode: closed\nconfig: { pre_http: '{"metadata":${bad}}' }`,
      async (gw) => {
        const res = await chat(gw);
        assert.equal(res.status, 500, bad);
        assert.match((await res.json()).error.message, /metadata is not a JSON object/);
      },
    );
  }
});

Deno.test("pilotfish_config_check: a guest that refuses its config refuses the generation", async (t) => {
  const path = await fixtureWasm(TMP, "config_check");
  const ready = async (extra: string) => {
    const gw = gateway({ config: config(path, extra) });
    try {
      return await gw.runtime.ready().then(() => null, (e) => e);
    } finally {
      await gw.runtime.dispose();
    }
  };
  await t.step("refused: its message, at the plugin's config key", async () => {
    const err = await ready('fail_mode: open\nconfig: { bad: "level must be 1 to 3" }');
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(err.problems, ['wasm_plugins[0].config ("fixture"): level must be 1 to 3']);
  });
  await t.step("accepted: it serves", async () => {
    assert.equal(await ready("config: { good: yes }"), null);
  });
  await t.step("a check that never answers refuses it too, at the plugin's timeout", async () => {
    const err = await ready('timeout: 200ms\nconfig: { spin: "1" }');
    assert.ok(err instanceof ConfigError);
    assert.match(err.problems[0]!, /^wasm_plugins\[0\]\.config \("fixture"\): /);
  });
});

Deno.test("pilotfish_input_fields: a guest is given only the input fields it lists", async (t) => {
  const path = await fixtureWasm(TMP, "input_fields");
  const seen = async (fields: string) => {
    const gw = gateway({ config: config(path, `config: { fields: '${fields}' }`) });
    try {
      await gw.runtime.ready();
      const res = await chat(gw, CHAT, { "x-tenant": "t1" });
      assert.equal(res.status, 200);
      return await res.json();
    } finally {
      await gw.runtime.dispose();
    }
  };
  await t.step("the body alone: no headers, no metadata", async () => {
    const input = await seen('["body"]');
    assert.deepEqual(Object.keys(input).sort(), ["body", "hook", "model", "provider"]);
    assert.equal(input.body.messages[0].content, "hi");
  });
  await t.step("headers and metadata, no body", async () => {
    const input = await seen('["headers","metadata"]');
    assert.equal(input.body, undefined);
    assert.equal(input.headers["X-Tenant"], "t1");
    assert.deepEqual(input.metadata, {});
  });
  await t.step("none of them: what every hook is always given", async () => {
    assert.deepEqual(Object.keys(await seen("[]")).sort(), ["hook", "model", "provider"]);
  });
  await t.step("a guest that does not say is given every field", async () => {
    const gw = gateway({ config: config(await fixtureWasm(TMP, "echo_input")) });
    try {
      await gw.runtime.ready();
      const input = await (await chat(gw)).json();
      assert.ok("body" in input && "headers" in input && "metadata" in input);
    } finally {
      await gw.runtime.dispose();
    }
  });
  await t.step("--check asks too", async () => {
    const { parseConfigText } = await import("../../src/config/mod.ts");
    const { pluginConfigProblems } = await import("../../src/plugins/mod.ts");
    const check = (fields: string) =>
      pluginConfigProblems(
        parseConfigText(config(path, `config: { fields: '${fields}' }`), () => undefined, "c.yaml")
          .config,
        "/",
      );
    assert.deepEqual(await check('["body"]'), []);
    const problems = await check('["bodies"]');
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /pilotfish_input_fields lists "bodies"/);
  });
  for (
    const [fields, problem] of [
      [
        '["body","cookies"]',
        /lists "cookies"; the fields a guest may list are body, headers, metadata/,
      ],
      ['{"body":true}', /answered "\{\\"body\\":true\}", not a JSON list/],
      ["", /answered "", not a JSON list/],
    ] as const
  ) {
    await t.step(`an answer it cannot mean refuses the config: ${fields || "(none)"}`, async () => {
      const gw = gateway({ config: config(path, `config: { fields: '${fields}' }`) });
      try {
        const err = await gw.runtime.ready().then(() => null, (e) => e);
        assert.ok(err instanceof ConfigError, String(err));
        assert.equal(err.problems.length, 1);
        assert.match(
          err.problems[0]!,
          /^wasm_plugins\[0\]\.path \("fixture"\): pilotfish_input_fields /,
        );
        assert.match(err.problems[0]!, problem);
      } finally {
        await gw.runtime.dispose();
      }
    });
  }
});

Deno.test("two plugins asking for one response header: the first to ask keeps it; the second's is dropped with a warning, the rest of its output stands", async (t) => {
  const out = await fixtureWasm(TMP, "config_out");
  const two = (bHook: string, bOutput: unknown, bMode = "closed") => `
providers:
  up: { base_url: "http://up.test/v1", keys: [{ key: sk-up-configured-0001 }] }
routing:
  failover: { enabled: false }
wasm_plugins:
  - name: first
    path: ${out}
    fail_mode: closed
    config: { pre_http: '{"response_headers":{"x-dup":"a"}}' }
  - name: second
    path: ${out}
    fail_mode: ${bMode}
    config: { ${bHook}: '${JSON.stringify(bOutput)}' }
`;
  const headers = { response_headers: { "X-Dup": "b", "x-other": "1" } };
  for (const hook of ["pre_llm", "post_llm", "post_http"]) {
    await t.step(`the second asks in ${hook}`, async () => {
      const gw = gateway({ config: two(hook, headers) });
      try {
        await gw.runtime.ready();
        const res = await chat(gw);
        assert.equal(res.status, 200);
        await res.body?.cancel();
        assert.equal(res.headers.get("x-dup"), "a");
        assert.equal(res.headers.get("x-other"), "1", "its other headers still go on");
        const warned = gw.logs.filter((l) => l.includes("plugin response header not set"));
        assert.equal(warned.length, 1, gw.logs.join(""));
        assert.match(warned[0]!, /"plugin":"second"/);
        assert.match(warned[0]!, /X-Dup \(plugin \\"first\\" set it first\)/);
        assert.ok(!gw.logs.some((l) => l.includes("stage skipped")), gw.logs.join(""));
      } finally {
        await gw.runtime.dispose();
      }
    });
  }
  await t.step(
    "a block that also asks for a taken header still blocks (fail_mode open)",
    async () => {
      const block = {
        short_circuit: true,
        short_circuit_status: 403,
        short_circuit_body: { error: { message: "blocked" } },
        response_headers: { "x-dup": "block" },
      };
      const gw = gateway({ config: two("pre_llm", block, "open") });
      try {
        await gw.runtime.ready();
        const res = await chat(gw);
        assert.equal(res.status, 403);
        await res.body?.cancel();
        assert.equal(gw.upstream.length, 0, "the block stands");
      } finally {
        await gw.runtime.dispose();
      }
    },
  );
});

Deno.test("a short-circuit on a native route names the route's provider, as on the unified routes", async () => {
  await withPlugin("echo_input", "", async (gw) => {
    const res = await gw.request(
      "/anthropic/v1/messages",
      post({ model: "claude-x", max_tokens: 5, messages: [{ role: "user", content: "hi" }] }, {
        "anthropic-version": "2023-06-01",
      }),
    );
    assert.equal(res.status, 200);
    const seen = await res.json();
    assert.equal(seen.hook, "pre_llm");
    assert.equal(res.headers.get("x-pilotfish-provider"), seen.provider);
    assert.equal(res.headers.get("x-pilotfish-attempts"), "0");
    assert.equal(gw.upstream.length, 0);
  });
});

Deno.test("post_llm: an answer that echoes a configured provider key shows the guest none, even one that opts in", async (t) => {
  const ask = { ...CHAT, messages: [{ role: "user", content: "say sk-up-configured-0001" }] };
  await t.step("redacted", async () => {
    await withPlugin("echo_post", "", async (gw) => {
      const res = await chat(gw, ask);
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.ok(!text.includes("sk-up-configured-0001"), text);
      assert.ok(text.includes("[REDACTED]"), text);
    });
  });
  // The opt-in shows the request's credentials; an answer is scrubbed as it arrives, before
  // any stage reads it (as a stream is), so no stage can hand the key on.
  await t.step("expose_credentials: still redacted", async () => {
    await withPlugin("echo_post", "expose_credentials: true", async (gw) => {
      const text = await (await chat(gw, ask)).text();
      assert.ok(!text.includes("sk-up-configured-0001"), text);
      assert.ok(text.includes("[REDACTED]"), text);
    });
  });
});
