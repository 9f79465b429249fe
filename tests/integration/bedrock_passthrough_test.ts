import assert from "node:assert/strict";
import { ConverseCommand, ConverseStreamCommand } from "@aws-sdk/client-bedrock-runtime";
import { bedrockClientVia, signedBedrockHeaders } from "../fakes/bedrock_client.ts";
import {
  type BedrockEvent,
  eventFrame,
  startFakeBedrock,
  STREAM_TEXT,
  STREAM_THROTTLED_MIDWAY,
} from "../fakes/fake_bedrock.ts";
import { concatBytes } from "../helpers/chunk.ts";
import { startGateway } from "../helpers/in_process.ts";

const MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const hello = {
  modelId: MODEL,
  messages: [{ role: "user" as const, content: [{ text: "Hello" }] }],
};

Deno.test("Bedrock SigV4 passthrough: the AWS SDK's signature survives Pilotfish", async (t) => {
  const bedrock = startFakeBedrock("us-west-2");
  const gw = startGateway(`
providers:
  bedrock: { enabled: true, region: us-west-2, endpoint: "${bedrock.url}" }
routing:
  failover:
    backoff: { initial: 5ms, max: 10ms }
features:
  circuit_breaker:
    enabled: true
    failure_threshold: 2
    cooldown_seconds: 60
    max_transient_retries: 0
    max_rate_limit_retries: 0
`);
  const client = bedrockClientVia(gw.url(""), { prefix: "/bedrock" });
  try {
    await t.step(
      "Converse: signature verifies, %3A arrives as signed, answer intact, usage recorded",
      async () => {
        const r = await client.send(new ConverseCommand(hello));
        assert.equal(r.output?.message?.content?.[0]?.text, "Hello from Bedrock");
        const seen = bedrock.requests.at(-1)!;
        assert.equal(seen.signatureValid, true);
        assert.equal(
          seen.rawPath,
          "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse",
        );
        assert.ok(seen.headers.get("x-amz-security-token"), "the session token rode through");
        await gw.waitForLog(`"route":"/bedrock/*"`);
        await gw.waitForLog(`"prompt_tokens":11`);
        assert.match(gw.logText(), new RegExp(`"model":"${MODEL.replace(".", "\\.")}"`));
      },
    );

    await t.step(
      "ConverseStream: event-stream frames reach the SDK intact; usage from the metadata frame",
      async () => {
        const r = await client.send(new ConverseStreamCommand(hello));
        let text = "";
        let usage:
          | { inputTokens?: number | undefined; outputTokens?: number | undefined }
          | undefined;
        for await (const ev of r.stream!) {
          text += ev.contentBlockDelta?.delta?.text ?? "";
          if (ev.metadata?.usage) usage = ev.metadata.usage;
        }
        assert.equal(text, "Hello from Bedrock");
        assert.equal(usage?.inputTokens, 21);
        assert.equal(bedrock.requests.at(-1)!.signatureValid, true);
        await gw.waitForLog(`"prompt_tokens":21,"completion_tokens":9`);
      },
    );

    await t.step(
      "a request tampered with after signing is rejected by Bedrock (the check is real)",
      async () => {
        const tampered = bedrockClientVia(gw.url(""), { prefix: "/bedrock", tamper: true });
        await assert.rejects(tampered.send(new ConverseCommand(hello)), (err: Error) => {
          assert.equal(err.name, "InvalidSignatureException");
          return true;
        });
        tampered.destroy();
        assert.equal(bedrock.requests.at(-1)!.signatureValid, false);
      },
    );

    await t.step(
      "containment: an ARN's %2F stays in its signed segment; a traversal is an AWS-shaped 400",
      async () => {
        const arn = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.x-v1:0";
        const r = await client.send(new ConverseCommand({ ...hello, modelId: arn }));
        assert.equal(r.output?.message?.content?.[0]?.text, "Hello from Bedrock");
        const seen = bedrock.requests.at(-1)!;
        assert.equal(seen.signatureValid, true);
        assert.equal(
          seen.rawPath,
          "/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Ainference-profile%2Fus.x-v1%3A0/converse",
        );
        const before = bedrock.requests.length;
        for (
          const path of [
            "/bedrock/model/x%2F..%2F..%2Fy/converse",
            "/bedrock/model/..%5C..%5Cy/converse",
            "/bedrock//evil/model/x/converse",
          ]
        ) {
          const res = await gw.request(path, { method: "POST", body: JSON.stringify(hello) });
          assert.equal(res.status, 400, path);
          assert.equal(res.headers.get("x-amzn-errortype"), "ValidationException");
          assert.match((await res.json()).message, /segment|backslash/);
        }
        assert.equal(bedrock.requests.length, before, "refused before reaching Bedrock");
      },
    );

    await t.step(
      "throttling and 503 reach the client unchanged and count toward the breaker",
      async () => {
        bedrock.script({
          error: {
            status: 429,
            type: "ThrottlingException",
            message: "Too many requests, please wait before trying again.",
          },
        });
        await assert.rejects(
          client.send(new ConverseCommand(hello)),
          (err: Error & { $metadata?: { httpStatusCode?: number } }) => {
            assert.equal(err.name, "ThrottlingException");
            assert.equal(err.$metadata?.httpStatusCode, 429);
            return true;
          },
        );
        bedrock.script({
          error: {
            status: 503,
            type: "ServiceUnavailableException",
            message: "Service unavailable",
          },
        });
        for (let i = 0; i < 2; i++) {
          await assert.rejects(client.send(new ConverseCommand(hello)), (err: Error) => {
            // The terminal degraded failure becomes llm-proxy's signal, in AWS's error shape.
            assert.equal(err.name, "ServiceUnavailableException");
            assert.match(err.message, /\[LLM_PROXY_PROVIDER_DEGRADED\] Provider bedrock/);
            return true;
          });
        }
        const before = bedrock.requests.length;
        await assert.rejects(
          client.send(new ConverseCommand(hello)),
          /LLM_PROXY_PROVIDER_DEGRADED/,
        );
        assert.equal(bedrock.requests.length, before, "open: fast-failed without calling Bedrock");
        const h = await (await gw.request("/health")).json();
        assert.equal(modelKey(h.circuit_breaker.providers.bedrock).state, "open");
      },
    );

    await t.step(
      "a bypass header the client signed is honoured and reaches Bedrock as signed",
      async () => {
        bedrock.script({});
        const body = JSON.stringify(hello);
        const path = `/model/${encodeURIComponent(MODEL)}/converse`;
        const headers = await signedBedrockHeaders(path, body, {
          "x-llm-proxy-bypass-circuit": "1",
        });
        // The key is open (the step above): only the bypass lets this one through.
        const res = await gw.request(`/bedrock${path}`, { method: "POST", headers, body });
        assert.equal(res.status, 200);
        await res.body?.cancel();
        const seen = bedrock.requests.at(-1)!;
        assert.equal(seen.signatureValid, true);
        assert.equal(seen.headers.get("x-llm-proxy-bypass-circuit"), "1");
        // Unsigned, it is stripped as llm-proxy strips it.
        const plain = await signedBedrockHeaders(path, body);
        const again = await gw.request(`/bedrock${path}`, {
          method: "POST",
          headers: { ...plain, "x-llm-proxy-bypass-circuit": "1" },
          body,
        });
        await again.body?.cancel();
        assert.equal(bedrock.requests.at(-1)!.headers.get("x-llm-proxy-bypass-circuit"), null);
      },
    );

    await t.step(
      "over the Unix socket: a hand-signed request (awscurl-style) passes too",
      async () => {
        bedrock.script({});
        const body = JSON.stringify(hello);
        const path = `/model/${
          encodeURIComponent("anthropic.claude-3-haiku-20240307-v1:0")
        }/converse`;
        const headers = await signedBedrockHeaders(path, body);
        const res = await gw.request(`/bedrock${path}`, { method: "POST", headers, body });
        assert.equal(res.status, 200);
        assert.equal((await res.json()).output.message.content[0].text, "Hello from Bedrock");
        assert.equal(bedrock.requests.at(-1)!.signatureValid, true);
        assert.equal(
          bedrock.requests.at(-1)!.rawPath,
          "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        );
      },
    );
  } finally {
    client.destroy();
    await gw.close();
    await bedrock.close();
  }
});

Deno.test("/bedrock/* is opt-in: without a bedrock provider it is a 404 in AWS's shape", async () => {
  const gw = startGateway(
    "providers:\n  mock: {}\n",
  );
  try {
    const res = await gw.request("/bedrock/model/x/converse", { method: "POST", body: "{}" });
    assert.equal(res.status, 404);
    assert.equal(res.headers.get("x-amzn-errortype"), "ResourceNotFoundException");
    assert.match((await res.json()).message, /No bedrock provider is configured/);
  } finally {
    await gw.close();
  }
});

Deno.test("/gemini/* without a gemini provider: the 404 names the env var on the embedded default only", async () => {
  const { embeddedDefault } = await import("../../src/config/mod.ts");
  const fromFile = startGateway("providers:\n  mock: {}\n", { GEMINI_API_KEY: "g-1" });
  const embedded = startGateway(embeddedDefault(() => undefined).config);
  try {
    const message = async (gw: typeof fromFile) => {
      const res = await gw.request("/gemini/v1beta/models");
      assert.equal(res.status, 404);
      return (await res.json()).error.message as string;
    };
    // A config file is not changed by the env var: it names the key to configure.
    const file = await message(fromFile);
    assert.match(file, /No gemini provider is configured .*; configure providers\.gemini$/);
    assert.doesNotMatch(file, /GEMINI_API_KEY/);
    assert.match(await message(embedded), /set GEMINI_API_KEY or configure providers\.gemini/);
  } finally {
    await fromFile.close();
    await embedded.close();
  }
});

Deno.test("a method fetch cannot send is a 405 in AWS's shape on /bedrock/* and /native/{bedrock}/*", async () => {
  const bedrock = startFakeBedrock("us-west-2");
  const gw = startGateway(`
providers:
  bedrock: { enabled: true, region: us-west-2, endpoint: "${bedrock.url}" }
`);
  try {
    const { hostname, port } = new URL(gw.url("/"));
    for (const path of ["/bedrock/model/x/converse", "/native/bedrock/model/x/converse"]) {
      // fetch will not send TRACE: a raw request, as any other client may send it.
      const conn = await Deno.connect({ hostname, port: Number(port) });
      await conn.write(
        new TextEncoder().encode(
          `TRACE ${path} HTTP/1.1\r\nhost: ${hostname}\r\nconnection: close\r\n\r\n`,
        ),
      );
      const text = await new Response(conn.readable).text();
      assert.match(text, /^HTTP\/1\.1 405 /, path);
      assert.match(text, /\r\nx-amzn-errortype: UnknownOperationException\r\n/i, path);
      assert.match(text, /\{"message":"Method TRACE is not allowed/, path);
    }
  } finally {
    await gw.close();
    await bedrock.close();
  }
});

Deno.test("Bedrock errors reach the client exactly as Bedrock sent them, and are counted", async () => {
  const bedrock = startFakeBedrock("us-west-2");
  // mode log: the breaker observes (and counts) without ever replacing an answer.
  const gw = startGateway(`
providers:
  bedrock: { enabled: true, region: us-west-2, endpoint: "${bedrock.url}" }
features:
  circuit_breaker:
    enabled: true
    mode: log
    failure_threshold: 2
    max_transient_retries: 0
    max_rate_limit_retries: 0
`);
  const client = bedrockClientVia(gw.url(""), { prefix: "/bedrock" });
  try {
    for (
      const [status, type, message] of [
        [429, "ThrottlingException", "Too many requests, please wait before trying again."],
        [503, "ServiceUnavailableException", "Bedrock is unavailable."],
        [503, "ServiceUnavailableException", "Bedrock is unavailable."],
      ] as const
    ) {
      bedrock.script({ error: { status, type, message } });
      await assert.rejects(
        client.send(new ConverseCommand(hello)),
        (err: Error & { $metadata?: { httpStatusCode?: number } }) => {
          assert.equal(err.name, type);
          assert.equal(err.message, message);
          assert.equal(err.$metadata?.httpStatusCode, status);
          return true;
        },
      );
    }
    const h = await (await gw.request("/health")).json();
    const key = modelKey(h.circuit_breaker.providers.bedrock);
    assert.equal(key.state, "open", "two 503s counted: open");
    assert.equal(key.failures, 2, "the throttle is not a failure");
  } finally {
    client.destroy();
    await gw.close();
    await bedrock.close();
  }
});

Deno.test("an exception frame after 200 is relayed as sent, counted by the breaker and logged as an error", async (t) => {
  const bedrock = startFakeBedrock("us-west-2");
  const gw = startGateway(`
providers:
  bedrock: { enabled: true, region: us-west-2, endpoint: "${bedrock.url}" }
features:
  circuit_breaker:
    enabled: true
    failure_threshold: 2
    cooldown_seconds: 60
    max_transient_retries: 0
    max_rate_limit_retries: 0
`);
  const model = "anthropic.claude-3-haiku-20240307-v1:0";
  const path = `/model/${encodeURIComponent(model)}/converse-stream`;
  const body = JSON.stringify({ messages: [{ role: "user", content: [{ text: "Hello" }] }] });
  /** One ConverseStream through `prefix`, read whole: its bytes and its log line. */
  const stream = async (prefix: string) => {
    const id = crypto.randomUUID();
    const headers = { ...await signedBedrockHeaders(path, body), "x-request-id": id };
    const res = await gw.request(`${prefix}${path}`, { method: "POST", headers, body });
    assert.equal(res.status, 200);
    const bytes = new Uint8Array(await res.arrayBuffer());
    await gw.waitForLog(`"request_id":"${id}"`);
    return { bytes, log: JSON.parse(gw.logs.find((l) => l.includes(`"request_id":"${id}"`))!) };
  };
  const breakerOf = async () =>
    modelKey((await (await gw.request("/health")).json()).circuit_breaker.providers.bedrock);
  try {
    await t.step(
      "a throttle mid-answer: the client gets its frames, the log says error",
      async () => {
        bedrock.script({ events: STREAM_THROTTLED_MIDWAY });
        const { bytes, log } = await stream("/bedrock");
        assert.deepEqual(bytes, concatBytes(STREAM_THROTTLED_MIDWAY.map(eventFrame)));
        assert.equal(log.level, "error");
        assert.equal(log.status, 200);
        assert.equal(log.outcome, "error");
        assert.match(log.error.message, /Too many tokens/);
        // What was seen is billed: the answer's text, the prompt estimated from the request.
        assert.ok(log.completion_tokens > 0 && log.prompt_tokens > 0, JSON.stringify(log));
        // A rate limit is no sign of an unwell provider.
        assert.equal((await breakerOf()).failures, 0);
      },
    );

    await t.step("two unavailable streams open the model's breaker", async () => {
      const unavailable: BedrockEvent[] = [
        { type: "messageStart", payload: { role: "assistant" } },
        {
          type: "serviceUnavailableException",
          messageType: "exception",
          payload: { message: "Bedrock is unavailable." },
        },
      ];
      bedrock.script({ events: unavailable });
      for (const prefix of ["/bedrock", "/native/bedrock"]) {
        const { bytes, log } = await stream(prefix);
        assert.deepEqual(bytes, concatBytes(unavailable.map(eventFrame)));
        assert.equal(log.outcome, "error");
        assert.equal(log.level, "error");
      }
      const b = await breakerOf();
      assert.equal(b.state, "open");
      assert.equal(b.failures, 2);
      assert.match(
        gw.logText(),
        /"key":"bedrock:anthropic\.claude-3-haiku-20240307-v1:0","from":"closed","to":"open"/,
      );
      const calls = bedrock.requests.length;
      const headers = await signedBedrockHeaders(path, body);
      const res = await gw.request(`/bedrock${path}`, { method: "POST", headers, body });
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("x-amzn-errortype"), "ServiceUnavailableException");
      await res.body?.cancel();
      assert.equal(bedrock.requests.length, calls, "open: fast-failed without calling Bedrock");
    });

    await t.step(
      "a client that hangs up on reading the exception frame ended a failed stream: error, not client_abort",
      async () => {
        await gw.runtime.breaker.reset();
        const failing: BedrockEvent[] = [
          { type: "messageStart", payload: { role: "assistant" } },
          {
            type: "serviceUnavailableException",
            messageType: "exception",
            payload: { message: "mid-stream unavailable" },
          },
        ];
        // The upstream never ends the stream: only the client's hang-up does (the SDKs' way).
        bedrock.script({ events: failing, holdOpen: true });
        const id = crypto.randomUUID();
        const headers = { ...await signedBedrockHeaders(path, body), "x-request-id": id };
        const res = await gw.request(`/bedrock${path}`, { method: "POST", headers, body });
        const reader = res.body!.getReader();
        const want = concatBytes(failing.map(eventFrame)).byteLength;
        let got = 0;
        while (got < want) got += (await reader.read()).value!.byteLength;
        await reader.cancel();
        await gw.waitForLog(`"request_id":"${id}"`);
        const log = JSON.parse(gw.logs.find((l) => l.includes(`"request_id":"${id}"`))!);
        assert.equal(log.outcome, "error");
        assert.match(log.error.message, /mid-stream unavailable/);
      },
    );

    await t.step("a whole stream stays complete, at info", async () => {
      await gw.runtime.breaker.reset();
      bedrock.script({ events: STREAM_TEXT });
      const { log } = await stream("/bedrock");
      assert.equal(log.outcome, "complete");
      assert.equal(log.level, "info");
    });

    await t.step(
      "a ConverseStream that closes before messageStop is broken off, not passed off as whole",
      async () => {
        await gw.runtime.breaker.reset();
        const cut = STREAM_TEXT.filter((e) => e.type !== "messageStop" && e.type !== "metadata");
        assert.ok(cut.length < STREAM_TEXT.length && cut.length > 1);
        bedrock.script({ events: cut });
        const id = crypto.randomUUID();
        const headers = { ...await signedBedrockHeaders(path, body), "x-request-id": id };
        const res = await gw.request(`/bedrock${path}`, { method: "POST", headers, body });
        assert.equal(res.status, 200);
        await assert.rejects(res.arrayBuffer());
        await gw.waitForLog(`"request_id":"${id}"`);
        const log = JSON.parse(gw.logs.find((l) => l.includes(`"request_id":"${id}"`))!);
        assert.equal(log.outcome, "upstream_cut");
      },
    );
  } finally {
    await gw.close();
    await bedrock.close();
  }
});

/** The one model key's breaker health in a provider's /health block (closed when none). */
function modelKey(p: { keys?: Record<string, { state: string; failures: number }> }) {
  return Object.values(p.keys ?? {})[0] ?? { state: "closed", failures: 0 };
}
