// deno-lint-ignore-file no-console -- the fuzz prints its counts.
/**
 * Abuse fuzz, body level: 10,000 generated hostile requests (malformed, truncated, deeply
 * nested and huge JSON, invalid UTF-8, wrong types and content types, wrong methods) against
 * the real app in process, every route. The upstreams answer 200, so any 5xx is Pilotfish's
 * own. Each must answer within its deadline with a status below 500, an error in its route's
 * format; and the app must still answer /healthz afterwards. The wire-level abuse (raw
 * sockets, idle connections) is in wire_test.ts.
 */
import assert from "node:assert/strict";
import { startGateway } from "../helpers/in_process.ts";
import { type Format, generate, type Generated } from "./generate.ts";

const COUNT = 10_000;
const SEED = 17;
const MAX_BODY = 64 * 1024;
const DEADLINE_MS = 5_000;

/** An upstream that answers every request 200 (so a 5xx can only be Pilotfish's). */
function startOkUpstream() {
  const ok = JSON.stringify({
    id: "x",
    object: "chat.completion",
    created: 1,
    model: "m",
    choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    return new Response(ok, { headers: { "content-type": "application/json" } });
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

/** Is `text` an error body in `format`? */
export function inFormat(format: Format, text: string): boolean {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return false;
  }
  const o = v as Record<string, Record<string, unknown> | undefined> | null;
  if (o === null || typeof o !== "object") return false;
  switch (format) {
    case "openai":
      return typeof o.error?.message === "string";
    case "anthropic":
      return (o as Record<string, unknown>).type === "error" &&
        typeof o.error?.message === "string";
    case "google":
      return typeof o.error?.message === "string" && typeof o.error?.code === "number";
    case "aws":
      return typeof (o as Record<string, unknown>).message === "string";
  }
}

Deno.test("abuse: 10,000 generated hostile requests, no 5xx, no hang, errors in format", async () => {
  const upstream = startOkUpstream();
  const gw = startGateway(`
server: { max_body_bytes: ${MAX_BODY}, read_timeout: 2s }
providers:
  mock: {}
  openai: { base_url: "${upstream.url}/v1", keys: [{ key: sk-up }] }
  anthropic: { base_url: "${upstream.url}", keys: [{ key: sk-ant-up }] }
  gemini: { base_url: "${upstream.url}", keys: [{ key: gm-up }] }
  up: { type: openai, base_url: "${upstream.url}/v1", keys: [{ key: sk-up2 }] }
routing: { default_provider: mock }
`);
  const statuses = new Map<number, number>();
  const byKind = new Map<string, Map<number, number>>();
  const failures: string[] = [];
  let hangs = 0;
  const one = async (g: Generated, i: number) => {
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<"hang">((resolve) => {
      timer = setTimeout(() => {
        abort.abort();
        resolve("hang");
      }, DEADLINE_MS);
    });
    try {
      const answer = (async () => {
        const res = await gw.request(g.route.path, {
          method: g.method,
          headers: g.headers,
          ...(g.body ? { body: g.body } : {}),
          signal: abort.signal,
        });
        return { status: res.status, text: await res.text() };
      })();
      const r = await Promise.race([answer, deadline]);
      if (r === "hang") {
        hangs++;
        answer.catch(() => {});
        failures.push(
          `#${i} ${g.kind} ${g.method} ${g.route.path}: no answer in ${DEADLINE_MS} ms`,
        );
        return;
      }
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      const k = byKind.get(g.kind) ?? new Map<number, number>();
      k.set(r.status, (k.get(r.status) ?? 0) + 1);
      byKind.set(g.kind, k);
      if (r.status >= 500) {
        failures.push(
          `#${i} ${g.kind} ${g.method} ${g.route.path}: ${r.status} ${r.text.slice(0, 200)}`,
        );
      } else if (r.status >= 400 && g.method !== "HEAD" && !inFormat(g.route.format, r.text)) {
        failures.push(
          `#${i} ${g.kind} ${g.route.path}: ${r.status} not ${g.route.format}: ${
            r.text.slice(0, 200)
          }`,
        );
      }
    } catch (err) {
      failures.push(`#${i} ${g.kind} ${g.route.path}: threw ${String(err)}`);
    } finally {
      clearTimeout(timer);
    }
  };
  try {
    // 32 at a time: enough overlap to mix routes and states without queueing for seconds.
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < COUNT) {
        const i = next++;
        await one(generate(SEED, i, MAX_BODY), i);
      }
    }));
    const health = await gw.request("/healthz");
    assert.equal(await health.text(), "ok");
  } finally {
    await gw.close();
    await upstream.close();
  }
  const fmt = (m: Map<number, number>) =>
    [...m].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(" ");
  console.log(
    `abuse fuzz: ${COUNT} requests (seed ${SEED}), statuses ${fmt(statuses)}, hangs ${hangs}`,
  );
  for (const [kind, m] of [...byKind].sort()) console.log(`  ${kind.padEnd(18)} ${fmt(m)}`);
  assert.deepEqual(failures.slice(0, 30), [], `${failures.length} failures`);
});

// Found by this fuzz (seed 17, #699): a model name with a lone UTF-16 surrogate made the app
// throw URIError (encodeURIComponent in the x-pilotfish-model header) instead of answering.
Deno.test({
  name: "abuse: a model name with a lone surrogate gets an answer, not an exception",
  async fn() {
    const gw = startGateway("providers: { mock: {} }\nrouting: { default_provider: mock }\n");
    try {
      const res = await gw.request("/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"model":"\\ud800","messages":[{"role":"user","content":"hi"}]}',
      });
      assert.ok(res.status < 500, `status ${res.status}`);
      await res.body?.cancel();
    } finally {
      await gw.close();
    }
  },
});
