/**
 * Tracing in the real daemon, started as `deno task start` starts it: turned on by the
 * standard OTEL_EXPORTER_OTLP_ENDPOINT alone, the planner grants the OTel variables and the
 * collector's host, and spans arrive under the daemon's narrowed permissions.
 */
import assert from "node:assert/strict";
import { startFakeUpstream } from "../../fakes/fake_upstream.ts";
import { chatBody, startDaemon } from "../../integration/daemon.ts";
import { decodeTraceExport } from "./otlp_protobuf.ts";

Deno.test("daemon: OTEL_EXPORTER_OTLP_ENDPOINT alone exports spans, within the narrowed permissions", async () => {
  const { promise: exported, resolve } = Promise.withResolvers<unknown>();
  const receiver = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      resolve(await req.json());
      return Response.json({});
    },
  );
  const up = startFakeUpstream();
  const d = await startDaemon(
    `
server: { port: {{PORT}}, socket: {{SOCKET}} }
providers:
  up: { base_url: ${up.url}/v1, keys: [{ key: sk-daemon-trace-0001 }] }
`,
    {
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.addr.port}`,
        OTEL_SERVICE_NAME: "pf-daemon",
      },
    },
  );
  try {
    up.script({ kind: "json" });
    const res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
      body: chatBody("up/gpt-4o-mini"),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    // The batch processor exports within a second.
    const body = await exported as {
      resourceSpans: {
        resource: { attributes: { key: string; value: { stringValue?: string } }[] };
        scopeSpans: { spans: { traceId: string; kind: number }[] }[];
      }[];
    };
    const rs = body.resourceSpans[0]!;
    assert.equal(
      rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue,
      "pf-daemon",
    );
    const spans = rs.scopeSpans.flatMap((s) => s.spans);
    assert.ok(spans.some((s) => s.kind === 2 && s.traceId === "0af7651916cd43dd8448eb211c80319c"));
    assert.ok(spans.some((s) => s.kind === 3), "the attempt's client span");
    assert.match(
      up.requests[0]?.headers.get("traceparent") ?? "",
      /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/,
    );
    assert.doesNotMatch(d.logs(), /NotCapable|PermissionDenied/);
  } finally {
    await d.stop();
    await up.close();
    await receiver.shutdown();
  }
});

Deno.test("daemon: OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf exports protobuf, with OTEL_RESOURCE_ATTRIBUTES on the resource", async () => {
  const { promise: exported, resolve } = Promise.withResolvers<
    { type: string | null; body: Uint8Array }
  >();
  const receiver = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      resolve({ type: req.headers.get("content-type"), body: await req.bytes() });
      return new Response(new Uint8Array(), {
        headers: { "content-type": "application/x-protobuf" },
      });
    },
  );
  const up = startFakeUpstream();
  const d = await startDaemon(
    `
server: { port: {{PORT}}, socket: {{SOCKET}} }
providers:
  up: { base_url: ${up.url}/v1, keys: [{ key: sk-daemon-trace-0002 }] }
`,
    {
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.addr.port}`,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
        OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test,team=ml,service.name=attr",
        OTEL_SERVICE_NAME: "pf-proto",
      },
    },
  );
  try {
    up.script({ kind: "json" });
    const res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
      body: chatBody("up/gpt-4o-mini"),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    const { type, body } = await exported;
    assert.equal(type, "application/x-protobuf");
    const [rs] = decodeTraceExport(body);
    assert.equal(rs?.resource["service.name"], "pf-proto", "OTEL_SERVICE_NAME wins");
    assert.equal(rs?.resource["deployment.environment"], "test");
    assert.equal(rs?.resource["team"], "ml");
    const server = rs?.spans.find((s) => s.kind === 2);
    assert.equal(server?.traceId, "0af7651916cd43dd8448eb211c80319c");
    assert.equal(server?.attributes["http.response.status_code"], 200);
    assert.ok(rs?.spans.some((s) => s.kind === 3), "the attempt's client span");
    assert.doesNotMatch(d.logs(), /NotCapable|PermissionDenied/);
  } finally {
    await d.stop();
    await up.close();
    await receiver.shutdown();
  }
});

Deno.test("daemon: OTEL_EXPORTER_OTLP_PROTOCOL=grpc is warned about at start, traces go over http/protobuf", async () => {
  const { promise: exported, resolve } = Promise.withResolvers<string | null>();
  const receiver = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      await req.bytes();
      resolve(req.headers.get("content-type"));
      return new Response(new Uint8Array(), {
        headers: { "content-type": "application/x-protobuf" },
      });
    },
  );
  const up = startFakeUpstream();
  const d = await startDaemon(
    `
server: { port: {{PORT}}, socket: {{SOCKET}} }
providers:
  up: { base_url: ${up.url}/v1, keys: [{ key: sk-daemon-trace-0003 }] }
`,
    {
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.addr.port}`,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "grpc",
      },
    },
  );
  try {
    assert.match(d.logs(), /OTLP protocol \\"grpc\\" is not supported/);
    up.script({ kind: "json" });
    const res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("up/gpt-4o-mini"),
    });
    await res.body?.cancel();
    assert.equal(await exported, "application/x-protobuf");
    // Once: a reload changes nothing about the environment it warns of.
    d.signal("SIGHUP");
    await d.waitForLog("config reloaded");
    assert.equal(d.logs().split("is not supported").length - 1, 1, d.logs());
  } finally {
    await d.stop();
    await up.close();
    await receiver.shutdown();
  }
});

Deno.test("planGrants(): the collector's host is granted when tracing is on, nothing when off", async () => {
  const { planGrants } = await import("../../../src/permissions/plan.ts");
  const { parseConfigText } = await import("../../../src/config/mod.ts");
  const plan = (yaml: string, env: Record<string, string> = {}) =>
    planGrants(parseConfigText(yaml, () => undefined, "t.yaml").config, {
      configPath: null,
      configText: null,
      cwd: "/srv",
      env: (n) => env[n],
    }).net;
  assert.ok(
    plan('plugins:\n  tracing: { endpoint: "otel.internal:4318", insecure: true }\n')
      .includes("otel.internal:4318"),
  );
  assert.ok(
    plan("", { OTEL_EXPORTER_OTLP_ENDPOINT: "https://otlp.example" })
      .includes("otlp.example:443"),
  );
  assert.ok(!plan("").some((h) => h.includes("4318")));
});
