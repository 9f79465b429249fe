import assert from "node:assert/strict";
import { GatewayError } from "../../src/errors.ts";
import {
  connectFailure,
  executeUpstream,
  type ReachabilityRecorder,
  trackReachability,
} from "../../src/providers/execute.ts";
import { closedPort } from "../helpers/in_process.ts";

/** Deno's fetch rejects with TypeError("fetch failed") whose cause names the phase. */
function denoFetchError(cause: string): TypeError {
  return new TypeError("fetch failed", { cause: new Error(cause) });
}

Deno.test("connectFailure() tells connect failures from failures after connecting", () => {
  const url = "error sending request for url (https://api.example.com/v1/x?key=secret)";
  assert.equal(
    connectFailure(
      denoFetchError(`${url}: client error (Connect): tcp connect error: Connection refused`),
    ),
    "connection refused",
  );
  assert.equal(
    connectFailure(denoFetchError(`${url}: client error (Connect): dns error: failed to lookup`)),
    "DNS lookup failed",
  );
  assert.equal(
    connectFailure(denoFetchError(`${url}: client error (Connect): tls handshake eof`)),
    "TLS handshake failed",
  );
  assert.equal(
    connectFailure(denoFetchError(`${url}: client error (Connect): operation timed out`)),
    "connect failed",
  );
  // Connected, then the upstream hung up: reachable, just misbehaving.
  assert.equal(
    connectFailure(
      denoFetchError(`${url}: client error (SendRequest): connection closed before message`),
    ),
    null,
  );
  assert.equal(connectFailure(new Error("request body stream errored")), null);
  assert.equal(connectFailure("not an error"), null);
});

function recorder(): ReachabilityRecorder & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    reached: (p) => events.push(`reached ${p}`),
    unreachable: (p, origin, reason) => events.push(`unreachable ${p} ${origin} ${reason}`),
  };
}

const call = (fetchFn: typeof fetch, url: string) =>
  executeUpstream(fetchFn, { url, method: "POST", headers: {}, body: "{}" }, {
    signal: new AbortController().signal,
    timeoutMs: 5_000,
    provider: "p",
    toError: (status) => new GatewayError("upstream_error", `HTTP ${status}`, { status }),
  });

Deno.test("executeUpstream() reports reachability through a tracked fetch", async () => {
  const rec = recorder();
  const port = closedPort();
  const tracked = trackReachability(globalThis.fetch, rec);
  await assert.rejects(call(tracked, `http://127.0.0.1:${port}/v1/chat`), (err: unknown) => {
    assert.ok(err instanceof GatewayError);
    assert.equal(err.code, "upstream_unreachable");
    assert.match(err.message, /connection refused/);
    return true;
  });
  assert.deepEqual(rec.events, [`unreachable p http://127.0.0.1:${port} connection refused`]);

  // An HTTP error status came from a reachable upstream.
  const erroring = trackReachability(
    () => Promise.resolve(new Response("no", { status: 500 })),
    rec,
  );
  await assert.rejects(call(erroring, "http://127.0.0.1:9/v1/chat"));
  assert.equal(rec.events.at(-1), "reached p");

  // An untracked fetch records nothing.
  const before = rec.events.length;
  await assert.rejects(call(globalThis.fetch, `http://127.0.0.1:${port}/v1/chat`));
  assert.equal(rec.events.length, before);
});

Deno.test("executeUpstream(): only a failure before the request left is marked unsent", async () => {
  const url = "error sending request for url (https://api.example.com/v1/x)";
  const cases: [string, boolean][] = [
    [`${url}: client error (Connect): tcp connect error: Connection refused`, true],
    [`${url}: client error (Connect): dns error: failed to lookup address`, true],
    [`${url}: client error (Connect): invalid peer certificate: UnknownIssuer`, true],
    [`${url}: client error (Connect): tls handshake eof`, true],
    // The request went, then the peer dropped TLS: it may have been read, and billed.
    [`${url}: peer closed connection without sending TLS close_notify`, false],
    [`${url}: client error (SendRequest): connection closed before message completed`, false],
    [`${url}: client error (Connect): operation timed out`, false],
  ];
  for (const [message, unsent] of cases) {
    const failing = (() => Promise.reject(denoFetchError(message))) as typeof fetch;
    await assert.rejects(call(failing, "https://api.example.com/v1/x"), (err: unknown) => {
      assert.ok(err instanceof GatewayError);
      assert.equal(err.code, "upstream_unreachable");
      assert.equal(err.info.unsent === true, unsent, message);
      return true;
    });
  }
});

Deno.test("executeUpstream() never quotes a header fetch refused: it may hold a key", async () => {
  // The real thing: Deno's own error for a header value with a line break quotes the value.
  const real = (url: string | URL | Request, init?: RequestInit) =>
    fetch(url, { ...init, headers: { authorization: "Bearer sk-live-SECRET-1\nsk-live-2" } });
  await assert.rejects(call(real as typeof fetch, "http://127.0.0.1:9/v1/chat"), (err: unknown) => {
    assert.ok(err instanceof GatewayError);
    // The request's fault, not the provider's: a 400 no breaker counts.
    assert.equal(err.code, "invalid_request");
    assert.equal(err.status, 400);
    assert.doesNotMatch(err.message, /SECRET/);
    assert.match(err.message, /not a valid HTTP header value/);
    return true;
  });
});

Deno.test("executeUpstream(): a method fetch will not send is the request's 400, not an unreachable provider", async () => {
  const err = await executeUpstream(
    fetch,
    { url: "http://127.0.0.1:9/v1/x", method: "TRACE", headers: {}, body: null },
    { signal: new AbortController().signal, timeoutMs: 5_000, provider: "p" },
  ).catch((e: unknown) => e);
  assert.ok(err instanceof GatewayError);
  assert.equal(err.code, "invalid_request");
  assert.match(err.message, /the method TRACE cannot be sent/);
});

/** A client signal that counts the abort listeners on it (Deno has no public count). */
function countedSignal(): { client: AbortController; listening: () => number } {
  const client = new AbortController();
  const signal = client.signal;
  const live = new Set<unknown>();
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = (...args: Parameters<AbortSignal["addEventListener"]>) => {
    live.add(args[1]);
    add(...args);
  };
  signal.removeEventListener = (...args: Parameters<AbortSignal["removeEventListener"]>) => {
    live.delete(args[1]);
    remove(...args);
  };
  return { client, listening: () => live.size };
}

Deno.test("executeUpstream() listens to the client until the call settles, then lets go", async () => {
  // Left on the client's signal, the listener kept the whole attempt alive through every
  // young-generation GC (the signal lives until the response is written).
  const req = { url: "http://127.0.0.1:9/v1/chat", method: "POST", headers: {}, body: "{}" };
  const json = () => Promise.resolve(new Response('{"ok":true}', { status: 200 }));
  const toError = (status: number) => new GatewayError("upstream_error", `HTTP ${status}`);

  // An answer read whole.
  const a = countedSignal();
  const reply = await executeUpstream(json, req, {
    signal: a.client.signal,
    timeoutMs: 5_000,
    provider: "p",
  });
  assert.equal(a.listening(), 1, "still listening while the answer is unread");
  assert.equal(await reply.text(), '{"ok":true}');
  assert.equal(a.listening(), 0);

  // A stream handed on (its consumer cancels it from then on): the adapter settles it.
  const b = countedSignal();
  (await executeUpstream(json, req, { signal: b.client.signal, timeoutMs: 5_000, provider: "p" }))
    .settle();
  assert.equal(b.listening(), 0);

  // An error answer, thrown once read; a refused connection.
  const c = countedSignal();
  const failing = () => Promise.resolve(new Response("no", { status: 500 }));
  await assert.rejects(
    executeUpstream(failing, req, {
      signal: c.client.signal,
      timeoutMs: 5_000,
      provider: "p",
      toError,
    }),
  );
  await assert.rejects(
    executeUpstream(fetch, { ...req, url: `http://127.0.0.1:${closedPort()}/v1/chat` }, {
      signal: c.client.signal,
      timeoutMs: 5_000,
      provider: "p",
    }),
  );
  assert.equal(c.listening(), 0);

  // Unsettled, the client leaving still aborts the upstream call.
  const d = countedSignal();
  let upstream: AbortSignal | undefined;
  const hanging = (_url: string | URL | Request, init?: RequestInit) => {
    upstream = init?.signal ?? undefined;
    return Promise.resolve(new Response("{}", { status: 200 }));
  };
  await executeUpstream(hanging, req, { signal: d.client.signal, timeoutMs: 5_000, provider: "p" });
  d.client.abort(new Error("client left"));
  assert.equal(upstream?.aborted, true);
});
