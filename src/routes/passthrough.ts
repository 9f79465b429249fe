import type { Context } from "hono";
import type { Config, ProviderConfig } from "../config/mod.ts";
import { GatewayError } from "../errors.ts";
import { classifyOutcome, FLAG_HEADERS, FLAG_PARAMS, readRequestFlags } from "../breaker/mod.ts";
import { executeUpstream, type RawOutcome } from "../providers/mod.ts";
import { executeWithFailover, FailoverExhausted, pickKey } from "../routing/mod.ts";
import { createUsageSniffer } from "../streaming/mod.ts";
import { readCounted } from "./body.ts";
import type { AppEnv } from "./context.ts";

/** Which provider a native route reaches, and how its clients send credentials. */
type NativeFamily = "openai" | "anthropic" | "gemini" | "bedrock";

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
const isInternal = (name: string) => name.startsWith("x-pilotfish-") || FLAG_HEADERS.includes(name);

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
      family === "anthropic" || family === "gemini" || family === "bedrock" ? family : "openai",
    );
    const rt = c.get("runtime");
    const url = new URL(c.req.url);
    // llm-proxy's switches never reach the provider, whether the breaker is on or not. The
    // query is only rewritten when one is present: a signed (SigV4) query must stay as sent.
    if (FLAG_PARAMS.some((name) => url.searchParams.has(name))) {
      for (const name of FLAG_PARAMS) url.searchParams.delete(name);
      if (url.search === "?") url.search = "";
    }
    let provider: ProviderConfig;
    let target: string;
    if (family === "native") {
      const name = c.req.param("provider") ?? "";
      provider = providerNamed(rt.config, name);
      const rest = url.pathname.slice(`/native/${name}`.length);
      target = `${provider.base_url}${rest.startsWith("/") ? rest : `/${rest}`}${url.search}`;
    } else if (family === "bedrock") {
      // llm-proxy's contract: strip only `/bedrock`, keeping the raw path (`%3A` in
      // inference-profile ids) exactly as the client signed it.
      provider = providerOfFamily(rt.config, family);
      target = `${provider.base_url}${url.pathname.slice("/bedrock".length)}${url.search}`;
    } else {
      provider = providerOfFamily(rt.config, family);
      // base_url ends in its API version (…/v1, …/v1beta); the client's path carries its own.
      target = `${apiRoot(provider.base_url)}${url.pathname.slice(family.length + 1)}${url.search}`;
    }
    if (new URL(target).origin !== new URL(provider.base_url).origin) {
      throw new GatewayError("invalid_request", "The path leaves the provider's host");
    }
    c.set("provider", provider.name);
    const model = /\/models?\/([^/:]+(?::\d+)?)/.exec(url.pathname)?.[1] ??
      /\/model\/([^/]+)/.exec(url.pathname)?.[1];
    if (model) c.set("model", decodeURIComponent(model));

    const max = rt.config.server.max_body_bytes;
    const declared = Number(c.req.header("content-length") ?? NaN);
    if (declared > max) throw tooLarge(max);
    const targetUrl = target;
    const headers = forwardHeaders(c.req.raw.headers, provider, url, rt.random);
    const hasBody = c.req.method !== "GET" && c.req.method !== "HEAD" && c.req.raw.body !== null;

    const breaker = rt.breaker;
    if (breaker.mode === "off") {
      // A declared length is enforced by HTTP framing and keeps the upstream request framed
      // the same way (with Content-Length); only chunked uploads need counting.
      const counted = hasBody && !Number.isFinite(declared)
        ? limitBytes(c.req.raw.body!, max)
        : null;
      const reply = await executeUpstream(rt.fetch, {
        url: targetUrl,
        method: c.req.method,
        headers,
        body: !hasBody ? null : counted ? counted.body : c.req.raw.body,
      }, { signal: c.req.raw.signal, timeoutMs: provider.timeout, provider: provider.name })
        .catch((err) => {
          throw counted?.exceeded() ? tooLarge(max) : err;
        });
      reply.settle();
      return relay(c, provider.name, reply.response);
    }

    // With the breaker on, the body is held so a transient failure can be retried (llm-proxy
    // does the same), and its `model` names the breaker key when the URL does not.
    const body = hasBody ? await readCounted(c.req.raw.body!, max) : null;
    const keyModel = model ? decodeURIComponent(model) : modelFromJson(body);
    const flags = readRequestFlags(
      (name) => c.req.header(name),
      new URL(c.req.url).searchParams,
      rt.config.features.circuit_breaker,
    );
    const result = await executeWithFailover<RawOutcome>(
      {
        config: rt.config,
        adapters: rt.adapters,
        state: rt.routing,
        random: rt.random,
        now: rt.now,
        redact: rt.redact,
        breaker,
      },
      {
        requested: `${provider.name}/${keyModel ?? ""}`,
        targets: [{ provider: provider.name, model: keyModel ?? "" }],
        route: undefined,
        signal: c.req.raw.signal,
        clientAuthorization: null,
        deadlineMs: rt.config.routing.failover.deadline,
        ...(flags.bypass ? { bypass: flags.bypass } : {}),
        ...(flags.testMode ? { testMode: flags.testMode } : {}),
        invoke: async (_adapter, attempt) => {
          const reply = await executeUpstream(rt.fetch, {
            url: targetUrl,
            method: c.req.method,
            headers,
            body: body === null ? null : body.slice(),
          }, { signal: attempt.signal, timeoutMs: attempt.timeoutMs, provider: provider.name });
          reply.settle();
          return raw(reply.response, provider.type);
        },
      },
    ).catch((err) => {
      if (!(err instanceof FailoverExhausted)) throw err;
      // A failure that is not the provider's fault (or a bypass) goes back exactly as it came.
      const response = err.last.info.response;
      if (response) return { outcome: { kind: "raw" as const, status: response.status, response } };
      throw err.last;
    });
    if (result.outcome.kind !== "raw") throw new GatewayError("internal", "Unexpected outcome");
    return relay(c, provider.name, result.outcome.response);
  };
}

/**
 * A passthrough reply as an attempt outcome: 2xx and the caller's own errors are answers;
 * what the breaker would count or retry (5xx, 429, 529, AWS throttling) is thrown, carrying
 * the untouched reply in case it ends up being the one the client gets.
 */
function raw(response: Response, providerType: string): RawOutcome {
  const cls = classifyOutcome({
    providerType,
    status: response.status,
    headers: response.headers,
  });
  if (cls === "success" || cls === "client_error") {
    return { kind: "raw", status: response.status, response };
  }
  const kept: Record<string, string> = {};
  for (
    const name of [
      "retry-after",
      "x-ratelimit-remaining-requests",
      "x-ratelimit-remaining-tokens",
      "x-amzn-errortype",
    ]
  ) {
    const v = response.headers.get(name);
    if (v !== null) kept[name] = v;
  }
  throw new GatewayError(
    response.status === 429 ? "rate_limited" : "upstream_error",
    `HTTP ${response.status}`,
    {
      status: response.status,
      upstreamStatus: response.status,
      upstreamHeaders: kept,
      ...(kept["retry-after"] ? { headers: { "retry-after": kept["retry-after"] } } : {}),
      response,
    },
  );
}

/** Hand an upstream reply to the client: headers filtered, body streamed, usage sniffed. */
function relay(c: Context<AppEnv>, provider: string, res: Response): Response {
  const contentType = res.headers.get("content-type") ?? "";
  c.set("stream", contentType.includes("text/event-stream") || contentType.includes("eventstream"));
  c.set("deferLog", true);
  const out = new Headers();
  res.headers.forEach((value, name) => {
    // content-length: the body is re-chunked on the way out; let the server frame it.
    if (!HOP_BY_HOP.has(name) && !isInternal(name) && name !== "content-length") {
      out.append(name, value);
    }
  });
  out.set("x-pilotfish-provider", provider);
  // Bedrock InvokeModel reports usage in headers: no need to look inside the body.
  const input = res.headers.get("x-amzn-bedrock-input-token-count");
  const output = res.headers.get("x-amzn-bedrock-output-token-count");
  if (input !== null || output !== null) {
    const p = Number(input ?? 0);
    const q = Number(output ?? 0);
    c.set("usage", { prompt_tokens: p, completion_tokens: q, total_tokens: p + q });
  }
  const body = res.body?.pipeThrough(
    createUsageSniffer(contentType, (usage) => c.set("usage", usage)),
  ) ?? null;
  return new Response(body, { status: res.status, statusText: res.statusText, headers: out });
}

/** The JSON body's `model`, when it has one (OpenAI and Anthropic bodies do). */
function modelFromJson(body: Uint8Array | null): string | undefined {
  if (body === null || body.byteLength === 0) return undefined;
  try {
    const model = (JSON.parse(new TextDecoder().decode(body)) as { model?: unknown }).model;
    return typeof model === "string" && model !== "" ? model : undefined;
  } catch {
    return undefined; // not JSON: the breaker keys on the bare provider
  }
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
  // Identity keeps bytes identical end to end (fetch would otherwise decompress) — unless
  // the client signed its own Accept-Encoding (SigV4), which must then travel untouched.
  const signed = /SignedHeaders=([^,\s]+)/.exec(incoming.get("authorization") ?? "")?.[1];
  if (!signed?.split(";").includes("accept-encoding")) out.set("accept-encoding", "identity");
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
