import type { Context } from "hono";
import type { Config, ProviderConfig } from "../config/mod.ts";
import { GatewayError } from "../errors.ts";
import { executeUpstream } from "../providers/mod.ts";
import { pickKey } from "../routing/mod.ts";
import { createUsageSniffer } from "../streaming/mod.ts";
import type { AppEnv } from "./context.ts";

/** Which provider a native route reaches, and how its clients send credentials. */
type NativeFamily = "openai" | "anthropic" | "gemini";

/** Hop-by-hop headers (RFC 9110 §7.6.1) and ours: never forwarded either way. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
]);
const isInternal = (name: string) => name.startsWith("x-pilotfish-");

/**
 * Native passthrough (llm-proxy's `/openai/v1/…`, `/anthropic/v1/…`, `/gemini/v1…`, and
 * Butter's `/native/{provider}/…`): method, path, query, body and streaming go through
 * untouched; only hop-by-hop and Pilotfish headers are dropped. The client's own credential
 * is used; a configured key is added only when it sent none (never a `pf_` app key).
 * Usage is read off the response as it streams, for accounting.
 */
export function nativePassthrough(family: NativeFamily | "native") {
  return async function passthrough(c: Context<AppEnv>): Promise<Response> {
    c.set(
      "errorFormat",
      family === "anthropic" ? "anthropic" : family === "gemini" ? "gemini" : "openai",
    );
    const rt = c.get("runtime");
    const url = new URL(c.req.url);
    let provider: ProviderConfig;
    let target: string;
    if (family === "native") {
      const name = c.req.param("provider") ?? "";
      provider = providerNamed(rt.config, name);
      const rest = url.pathname.slice(`/native/${name}`.length);
      target = `${provider.base_url}${rest.startsWith("/") ? rest : `/${rest}`}${url.search}`;
    } else {
      provider = providerOfFamily(rt.config, family);
      // base_url ends in its API version (…/v1, …/v1beta); the client's path carries its own.
      target = `${apiRoot(provider.base_url)}${url.pathname.slice(family.length + 1)}${url.search}`;
    }
    if (new URL(target).origin !== new URL(provider.base_url).origin) {
      throw new GatewayError("invalid_request", "The path leaves the provider's host");
    }
    c.set("provider", provider.name);
    const model = /\/models\/([^/:]+)/.exec(url.pathname)?.[1];
    if (model) c.set("model", decodeURIComponent(model));

    const max = rt.config.server.max_body_bytes;
    const declared = Number(c.req.header("content-length") ?? NaN);
    if (declared > max) throw tooLarge(max);
    const headers = forwardHeaders(c.req.raw.headers, provider, url, rt.random);
    const hasBody = c.req.method !== "GET" && c.req.method !== "HEAD" && c.req.raw.body !== null;
    // A declared length is enforced by HTTP framing and keeps the upstream request framed the
    // same way (with Content-Length); only chunked uploads need counting.
    const counted = hasBody && !Number.isFinite(declared) ? limitBytes(c.req.raw.body!, max) : null;
    const reply = await executeUpstream(rt.fetch, {
      url: target,
      method: c.req.method,
      headers,
      body: !hasBody ? null : counted ? counted.body : c.req.raw.body,
    }, { signal: c.req.raw.signal, timeoutMs: provider.timeout, provider: provider.name })
      .catch((err) => {
        throw counted?.exceeded() ? tooLarge(max) : err;
      });
    reply.settle();
    const res = reply.response;
    const contentType = res.headers.get("content-type") ?? "";
    const stream = contentType.includes("text/event-stream");
    c.set("stream", stream);
    const out = new Headers();
    res.headers.forEach((value, name) => {
      // content-length: the body is re-chunked on the way out; let the server frame it.
      if (!HOP_BY_HOP.has(name) && !isInternal(name) && name !== "content-length") {
        out.append(name, value);
      }
    });
    out.set("x-pilotfish-provider", provider.name);
    const body = res.body?.pipeThrough(
      createUsageSniffer(contentType, (usage) => c.set("usage", usage)),
    ) ?? null;
    return new Response(body, { status: res.status, statusText: res.statusText, headers: out });
  };
}

function providerNamed(config: Config, name: string): ProviderConfig {
  const p = config.providers[name];
  if (!p || p.type === "mock") {
    throw new GatewayError(
      "not_found",
      `Unknown provider "${name}" (configured: ${listNative(config)})`,
    );
  }
  return p;
}

/** The provider named like the family, else the only provider of that type. */
function providerOfFamily(config: Config, family: NativeFamily): ProviderConfig {
  const named = config.providers[family];
  if (named && named.type === family) return named;
  const ofType = Object.values(config.providers).filter((p) => p.type === family);
  if (ofType.length === 1) return ofType[0] as ProviderConfig;
  throw new GatewayError(
    "not_found",
    ofType.length === 0
      ? `No ${family} provider is configured for /${family}/* (configured: ${listNative(config)})`
      : `Several ${family} providers are configured; use /native/{provider}/… (${
        ofType.map((p) => p.name).join(", ")
      })`,
  );
}

function listNative(config: Config): string {
  return Object.values(config.providers).filter((p) => p.type !== "mock").map((p) => p.name)
    .join(", ") || "none";
}

/** `https://host/api/v1` → `https://host/api`; the native path brings its own version. */
function apiRoot(baseUrl: string): string {
  return baseUrl.replace(/\/v\d+(?:alpha|beta)?\d*$/, "");
}

function forwardHeaders(
  incoming: Headers,
  provider: ProviderConfig,
  url: URL,
  random: () => number,
): Headers {
  const out = new Headers();
  incoming.forEach((value, name) => {
    if (!HOP_BY_HOP.has(name) && !isInternal(name)) out.append(name, value);
  });
  // Identity keeps bytes identical end to end (fetch would otherwise decompress).
  out.set("accept-encoding", "identity");
  for (const name of ["authorization", "x-api-key", "x-goog-api-key"]) {
    if (/^(?:Bearer\s+)?pf_/i.test(out.get(name) ?? "")) out.delete(name);
  }
  const hasCredential = out.has("authorization") || out.has("x-api-key") ||
    out.has("x-goog-api-key") || url.searchParams.has("key");
  if (!hasCredential && provider.keys.length > 0) {
    const key = pickKey(provider.keys, "", random) ??
      pickKey(provider.keys.map((k) => ({ ...k, models: [] })), "", random);
    if (key) {
      if (provider.type === "anthropic") out.set("x-api-key", key.key);
      else if (provider.type === "gemini") out.set("x-goog-api-key", key.key);
      else out.set("authorization", `Bearer ${key.key}`);
    }
  }
  for (const [name, value] of Object.entries(provider.headers)) {
    if (!out.has(name)) out.set(name, value);
  }
  return out;
}

function tooLarge(max: number): GatewayError {
  return new GatewayError("payload_too_large", `Request body exceeds the limit of ${max} bytes`);
}

/** Count request bytes on their way upstream and fail the upload past the limit. */
function limitBytes(body: ReadableStream<Uint8Array>, max: number) {
  let seen = 0;
  return {
    exceeded: () => seen > max,
    body: body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          seen += chunk.byteLength;
          if (seen > max) controller.error(tooLarge(max));
          else controller.enqueue(chunk);
        },
      }),
    ),
  };
}
