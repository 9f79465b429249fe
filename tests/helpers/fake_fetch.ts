/**
 * A fake `fetch` that records every request and answers from a scripted handler, and the
 * configured provider adapters built on it.
 * @module
 */
import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { createAdapters, type ProviderAdapter } from "../../src/providers/mod.ts";
import { createRedactor } from "../../src/telemetry/mod.ts";
import { rechunk, streamOf } from "./chunk.ts";

/** One request the fake `fetch` saw. */
export interface Recorded {
  url: string;
  init: RequestInit;
}

/** Answers a request; a throw becomes a rejected fetch. */
export type Handler = (url: string, init: RequestInit) => Response | Promise<Response>;

/** A `fetch` that records every request into `requests` and answers with `handler`. */
export function recordingFetch(handler: Handler): { fetch: typeof fetch; requests: Recorded[] } {
  const requests: Recorded[] = [];
  const fakeFetch: typeof fetch = (input, init = {}) => {
    const url = input instanceof Request ? input.url : String(input);
    requests.push({ url, init });
    try {
      return Promise.resolve(handler(url, init));
    } catch (err) {
      return Promise.reject(err);
    }
  };
  return { fetch: fakeFetch, requests };
}

/** The headers of a recorded request (empty when there is none). */
export function headersOf(r: Recorded | undefined): Headers {
  return new Headers(r?.init.headers);
}

/** A JSON answer: a string body goes out as is, anything else is JSON-encoded. */
export function jsonResponse(
  body: unknown,
  status = 200,
  headers: Record<string, string> = {},
): Response {
  return new Response(typeof body === "string" ? body : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** An event-stream answer carrying `bytes` in `n`-byte pieces. */
export function sseResponse(
  bytes: Uint8Array,
  n: number,
  contentType = "text/event-stream",
): Response {
  return new Response(streamOf(rechunk(bytes, n)), { headers: { "content-type": contentType } });
}

/** How to build a provider's adapters: its config text, the name it is parsed under, its type. */
export interface AdapterSetup {
  configText: string;
  configName: string;
  /** When set, the adapter must be of this type. */
  type?: string;
}

/**
 * The adapter `provider` of the configuration in `setup`, whose `fetch` is `handler`,
 * recording every request; the configured keys are redacted.
 */
export function adapterWithFetch(
  setup: AdapterSetup,
  handler: Handler,
  provider: string,
): { adapter: ProviderAdapter; requests: Recorded[] } {
  const { config } = parseConfigText(setup.configText, () => undefined, setup.configName);
  const { fetch, requests } = recordingFetch(handler);
  const secrets = Object.values(config.providers).flatMap((p) => p.keys.map((k) => k.key));
  const adapter: ProviderAdapter | undefined = createAdapters(config, {
    fetch,
    redact: createRedactor(secrets),
    random: () => 0,
  }).get(provider);
  assert.ok(adapter);
  if (setup.type !== undefined) assert.equal(adapter.type, setup.type);
  return { adapter, requests };
}
