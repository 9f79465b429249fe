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
