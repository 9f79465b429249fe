import assert from "node:assert/strict";
import { goBinaries, goLoad, parseMany, parseOpen } from "../../bench/rig.ts";
import { type Target, tcpClient } from "../../bench/load.ts";
import { createUpstreamHandler } from "../../bench/upstream.ts";
import { readLines } from "../../bench/proc.ts";

const bins = await goBinaries();
const noGo = "reason" in bins;

Deno.test("parseOpen() and parseMany() turn the Go generator's µs answers into load.ts's ms results", () => {
  const open = parseOpen({
    latencies_us: [120, 250, 4000],
    errors: 1,
    sent_rate: 199.5,
    late_p50_us: 40,
    late_p99_us: 900,
  });
  assert.deepEqual(open.latencies, [0.12, 0.25, 4]);
  assert.equal(open.errors, 1);
  assert.equal(open.sentRate, 199.5);
  assert.equal(open.lateP99, 0.9);
  const many = parseMany({
    ttfb_us: [1500],
    max_stall_us: 2500,
    stalled: 0,
    completed: 1,
    errors: 0,
  });
  assert.deepEqual(many, { ttfb: [1.5], maxStall: 2.5, stalled: 0, completed: 1, errors: 0 });
  assert.throws(() => parseOpen({ errors: 0 }), /latencies_us/);
});

Deno.test({
  name: "goLoad() drives the Go generator against the Deno upstream and main.ts reads every answer",
  ignore: noGo,
  async fn() {
    if ("reason" in bins) return;
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      createUpstreamHandler({ chunks: 3, chunkDelayMs: 1 }),
    );
    const client = tcpClient();
    const load = goLoad(bins.loadgen, [], {
      bearer: "sk-bench",
      promptBytes: 0,
      uniquePrompts: false,
    });
    try {
      const target: Target = {
        name: "direct",
        url: `http://127.0.0.1:${server.addr.port}/v1/chat/completions`,
        client,
      };
      assert.equal(await load.warmUp(target, 2, 0.1), 0);
      const open = await load.openLoop(target, 100, 0.3);
      assert.equal(open.errors, 0);
      assert.equal(open.latencies.length, 30);
      assert.ok(open.latencies.every((ms, i) => ms > 0 && ms >= (open.latencies[i - 1] ?? 0)));
      const closed = await load.closedLoop(target, 4, 0.2);
      assert.equal(closed.errors, 0);
      assert.ok(closed.completed > 0 && closed.rps > 0);
      const streams = await load.streamFirstByte(target, 0.2);
      assert.equal(streams.errors, 0);
      assert.ok(streams.ttfb.length > 0);
      assert.ok(streams.ttfb.every((t, i) => t < (streams.total[i] ?? 0)));
      const many = await load.manyStreams(target, 10, "up/gpt-4o-mini-c4-d20", 20, 0.05);
      assert.equal(many.errors, 0);
      assert.equal(many.completed, 10);
      assert.equal(many.ttfb.length, 10);
      assert.ok(many.maxStall < 1_000);
      assert.equal(load.lateness?.length, 1);
    } finally {
      await load.close();
      client.close();
      await server.shutdown();
    }
  },
});

type Message = { role: string; content: string };

/**
 * The messages of every chat request the Go generator sends with `opts`, against a server
 * that answers each at once: an open loop, then (with `closed`) a closed one.
 */
async function sentMessages(
  binary: string,
  opts: { uniquePrompts: boolean; newTurns?: boolean },
  closed: boolean,
): Promise<Message[][]> {
  const bodies: Message[][] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      bodies.push((await req.json()).messages);
      return Response.json({ object: "chat.completion" });
    },
  );
  const client = tcpClient();
  const load = goLoad(binary, [], { bearer: "sk-bench", promptBytes: 1024, ...opts });
  try {
    const target: Target = {
      name: "direct",
      url: `http://127.0.0.1:${server.addr.port}/v1/chat/completions`,
      client,
    };
    await load.openLoop(target, 200, 0.2);
    if (closed) await load.closedLoop(target, 4, 0.2);
    return bodies;
  } finally {
    await load.close();
    client.close();
    await server.shutdown();
  }
}

Deno.test({
  name:
    "goLoad() with unique prompts: every chat request's prompt has its own number, padded ones keep their length",
  ignore: noGo,
  async fn() {
    if ("reason" in bins) return;
    const prompts = (await sentMessages(bins.loadgen, { uniquePrompts: true }, true))
      .map((m) => m[1]!.content);
    assert.ok(prompts.length > 40, `${prompts.length} requests`);
    assert.equal(new Set(prompts).size, prompts.length);
    for (const p of prompts) {
      assert.match(p, /^\[\d{10}\] The quarterly report/);
      assert.equal(p.length, 1024);
    }
  },
});

Deno.test({
  name:
    "goLoad() with new turns: the history the same every time, then a user turn with its own number",
  ignore: noGo,
  async fn() {
    if ("reason" in bins) return;
    const bodies = await sentMessages(
      bins.loadgen,
      { uniquePrompts: false, newTurns: true },
      false,
    );
    assert.ok(bodies.length > 20, `${bodies.length} requests`);
    const turns = bodies.map((m) => m[3]?.content);
    assert.equal(new Set(turns).size, bodies.length);
    for (const m of bodies) {
      assert.deepEqual(m.map((x) => x.role), ["system", "user", "assistant", "user"]);
      assert.equal(m[1]!.content.length, 1024);
      assert.match(m[1]!.content, /^The quarterly report/);
      assert.match(m[3]!.content, /^\[\d{10}\] What changed since the last report\?$/);
    }
  },
});

/**
 * A server that answers one request per connection and then drops it, without saying so (what a
 * server's idle keep-alive timeout looks like to a client).
 */
function oneShotServer(): { port: number; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const body = '{"object":"chat.completion"}';
  const conns = new Set<Deno.Conn>();
  // Whoever takes a connection out of the set closes it: the handler or close(), never both.
  const drop = (conn: Deno.Conn) => {
    if (conns.delete(conn)) conn.close();
  };
  const serving = (async () => {
    const handled: Promise<void>[] = [];
    for await (const conn of listener) {
      conns.add(conn);
      handled.push((async () => {
        try {
          const buf = new Uint8Array(64 << 10);
          let text = "";
          while (!/\r\n\r\n[\s\S]*\}$/.test(text)) {
            const n = await conn.read(buf);
            if (n === null) return;
            text += new TextDecoder().decode(buf.subarray(0, n));
          }
          await conn.write(new TextEncoder().encode(
            `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
          ));
          await new Promise((resolve) => setTimeout(resolve, 5));
        } catch {
          // The client went first.
        } finally {
          drop(conn);
        }
      })());
    }
    await Promise.all(handled);
  })();
  return {
    port: listener.addr.port,
    async close() {
      listener.close();
      for (const c of [...conns]) drop(c);
      await serving.catch(() => {});
    },
  };
}

Deno.test({
  name: "goLoad() open loop retries once on a keep-alive connection the server closed while idle",
  ignore: noGo,
  async fn() {
    if ("reason" in bins) return;
    const server = oneShotServer();
    const client = tcpClient();
    const load = goLoad(bins.loadgen, [], {
      bearer: "sk-bench",
      promptBytes: 0,
      uniquePrompts: false,
    });
    try {
      const target: Target = {
        name: "one-shot",
        url: `http://127.0.0.1:${server.port}/v1/chat/completions`,
        client,
      };
      // 20 ms apart: every connection has been dropped by the time the next request goes out.
      const open = await load.openLoop(target, 50, 0.4);
      assert.equal(open.errors, 0);
      assert.equal(open.latencies.length, 20);
      const closed = await load.closedLoop(target, 2, 0.1);
      assert.equal(closed.errors, 0);
    } finally {
      await load.close();
      client.close();
      await server.close();
    }
  },
});

Deno.test({
  name: "upstream_go answers as upstream.ts does, byte for byte apart from ids and dates",
  ignore: noGo,
  async fn() {
    if ("reason" in bins) return;
    const child = new Deno.Command(bins.upstream, {
      args: ["--chunks=3", "--chunk-delay-ms=0"],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const deno = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      createUpstreamHandler({ chunks: 3, chunkDelayMs: 0 }),
    );
    const client = tcpClient();
    try {
      const lines = readLines(child.stdout);
      const first = await lines.next();
      const port = (JSON.parse(first.value ?? "{}") as { port: number }).port;
      const same = (text: string) =>
        text.replace(/"created":\d+/g, '"created":0').replace(/chatcmpl-bench\d+/g, "chatcmpl-x");
      for (
        const body of [
          { model: "up/gpt-4o-mini", messages: [] },
          { model: "up/gpt-4o-mini", stream: true },
          { model: "m-c2-d0", stream: true, stream_options: { include_usage: true } },
          { stream: true },
        ]
      ) {
        const answers = await Promise.all([port, deno.addr.port].map(async (p) => {
          const res = await fetch(`http://127.0.0.1:${p}/v1/chat/completions`, {
            method: "POST",
            body: JSON.stringify(body),
            client,
          });
          return [res.status, res.headers.get("content-type"), same(await res.text())];
        }));
        assert.deepEqual(answers[0], answers[1]);
      }
      // The OTLP trace sink: both answer a collector's success, and 404 elsewhere.
      for (const [path, status] of [["/v1/traces", 200], ["/v1/other", 404]] as const) {
        const answers = await Promise.all([port, deno.addr.port].map(async (p) => {
          const res = await fetch(`http://127.0.0.1:${p}${path}`, {
            method: "POST",
            body: '{"resourceSpans":[]}',
            client,
          });
          return [res.status, res.headers.get("content-type"), await res.text()];
        }));
        assert.equal(answers[0]![0], status);
        assert.deepEqual(answers[0], answers[1]);
      }
      await lines.return(undefined);
    } finally {
      client.close();
      child.kill("SIGTERM");
      await child.status;
      await deno.shutdown();
    }
  },
});
