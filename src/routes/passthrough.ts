import type { Context } from "hono";
import type { Config, ProviderConfig } from "../config/mod.ts";
import { GatewayError } from "../errors.ts";
import { classifyOutcome, FLAG_HEADERS, FLAG_PARAMS, readRequestFlags } from "../breaker/mod.ts";
import { executeUpstream, type RawOutcome } from "../providers/mod.ts";
import {
  CREDENTIAL_HEADERS,
  type NativeAuth,
  nativeAuthFor,
} from "../providers/shared/native_auth.ts";
import { executeWithFailover, FailoverExhausted, pickKey, upstreamTime } from "../routing/mod.ts";
import { pilotfishHeaders } from "../routing/failover.ts";
import { createUsageSniffer } from "../streaming/mod.ts";
import { endAt, explainTimeout, guardUpload, withinWrite } from "../server/middleware/timeouts.ts";
import { readCounted } from "./body.ts";
import type { AppEnv } from "./context.ts";
import {
  containmentProblem,
  percentDecode,
  queryParam,
  type RawTarget,
  rawTarget,
  restAfter,
  withoutParams,
} from "./passthrough_path.ts";

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
 * untouched; only hop-by-hop and Pilotfish headers are dropped. The upstream path is the
 * provider's base path + the rest of the raw path, never a resolved one (passthrough_path.ts).
 * Credentials: the client's own passes through; a configured key is injected when it sent
 * none (or `credential_mode: gateway` is set explicitly); a `pf_` app key is never forwarded.
 * Usage is read off the response as it streams, for accounting.
 */
export function nativePassthrough(family: NativeFamily | "native") {
  return async function passthrough(c: Context<AppEnv>): Promise<Response> {
    c.set(
      "errorFormat",
      family === "anthropic" || family === "gemini" || family === "bedrock" ? family : "openai",
    );
    const rt = c.get("runtime");
    const sent = rawTarget(c.req.url);
    const { provider, base, rest } = locate(rt.config, family, sent);
    c.set("provider", provider.name);
    const urlModel = modelInPath(rest);

    const auth = nativeAuthFor(provider.type);
    const clientCredential = credentialOf(c.req.raw.headers, sent.query, auth);
    // A configured key replaces the client's credential only when the provider has one and
    // the client sent none, or the operator asked for it (`credential_mode: gateway`).
    const inject = provider.keys.length > 0 &&
      (clientCredential === null || provider.native_credential_mode === "gateway");
    // llm-proxy's switches never reach the provider, nor does a pf_ key; with an injected key
    // neither does the client's own `?key=`. Every other byte of the query stays as sent: a
    // signed (SigV4) query must reach AWS unchanged.
    const query = withoutParams(
      sent.query,
      (name, value) =>
        FLAG_PARAMS.includes(name) || isAppKey(value) ||
        (inject && name === auth.queryParam),
    );
    const targetUrl = contained(`${base}${rest}${query}`, base);
    const headers = forwardHeaders(c.req.raw.headers, provider, inject);

    const max = rt.config.server.max_body_bytes;
    const declared = Number(c.req.header("content-length") ?? NaN);
    if (declared > max) throw tooLarge(max);
    const hasBody = c.req.method !== "GET" && c.req.method !== "HEAD" && c.req.raw.body !== null;
    // The body is held with the breaker on (a transient failure is retried, as llm-proxy
    // does), or when its `model` (OpenAI, Anthropic bodies) picks among allowlisted keys;
    // otherwise it streams through. With read_timeout, one of declared length is held too
    // (read under the deadline): only the runtime's own stream keeps its Content-Length
    // upstream (SigV4 signs it), and that stream cannot tell us when it was read to its end.
    const breaker = rt.breaker;
    const deadlines = c.get("deadlines");
    const hold = breaker.mode !== "off" ||
      (urlModel === undefined && inject && provider.keys.some((k) => k.models.length > 0)) ||
      (deadlines?.read !== undefined && Number.isFinite(declared));
    const held = hasBody && hold ? await readCounted(c.req.raw.body!, max, deadlines?.body) : null;
    const model = urlModel ?? modelFromJson(held);
    if (model !== undefined) c.set("model", model);
    /** The configured key to inject, respecting per-key model allowlists when the model is known. */
    const configuredKey = (): string => {
      const key = model !== undefined
        ? pickKey(provider.keys, model, rt.random, rt.routing, rt.now())
        : pickKey(provider.keys, "", rt.random, rt.routing, rt.now()) ??
          pickKey(provider.keys.map((k) => ({ ...k, models: [] })), "", rt.random);
      if (key === null) {
        throw new GatewayError(
          "not_found",
          `No key of provider "${provider.name}" is allowed to use model "${model}"`,
          { param: "model", provider: provider.name },
        );
      }
      return key.key;
    };

    if (breaker.mode === "off") {
      if (inject) headers.set(...auth.header(configuredKey()));
      // A declared length is enforced by HTTP framing and keeps the upstream request framed
      // the same way (with Content-Length); only chunked uploads need counting.
      const counted = hasBody && held === null && !Number.isFinite(declared)
        ? limitBytes(c.req.raw.body!, max)
        : null;
      const streamed = hasBody && held === null ? counted?.body ?? c.req.raw.body : null;
      // A chunked body streams upstream while it arrives: read_timeout aborts the upstream
      // request. (write_timeout needs no guard: it already bounds the whole upstream call.)
      const upload = streamed && deadlines?.read ? guardUpload(streamed, deadlines.read) : null;
      const sentAt = performance.now();
      const reply = await executeUpstream(rt.fetch, {
        url: targetUrl,
        method: c.req.method,
        headers,
        body: !hasBody ? null : held ?? upload?.body ?? streamed,
      }, {
        signal: upload ? AbortSignal.any([c.req.raw.signal, upload.signal]) : c.req.raw.signal,
        timeoutMs: withinWrite(deadlines, provider.timeout),
        provider: provider.name,
      })
        .catch((err) => {
          throw counted?.exceeded()
            ? tooLarge(max)
            : upload?.cut() ?? explainTimeout(deadlines, err);
        });
      reply.settle();
      c.set("upstreamMs", performance.now() - sentAt);
      return relay(c, provider.name, reply.response, 1);
    }

    // With the breaker on, the body's `model` names the breaker key when the URL does not.
    const body = held;
    const flags = readRequestFlags(
      (name) => c.req.header(name),
      new URLSearchParams(sent.query),
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
        requested: `${provider.name}/${model ?? ""}`,
        targets: [{ provider: provider.name, model: model ?? "" }],
        route: undefined,
        signal: c.req.raw.signal,
        // Forwarded as the client sent it: failover must neither pick nor cool a configured key.
        clientAuthorization: inject ? null : clientCredential,
        deadlineMs: withinWrite(deadlines, rt.config.routing.failover.deadline),
        ...(flags.bypass ? { bypass: flags.bypass } : {}),
        ...(flags.testMode ? { testMode: flags.testMode } : {}),
        invoke: async (_adapter, attempt) => {
          const attemptHeaders = new Headers(headers);
          // The key failover chose for this attempt (it cools it down on 401/429), else ours.
          if (inject) attemptHeaders.set(...auth.header(attempt.apiKey ?? configuredKey()));
          const reply = await executeUpstream(rt.fetch, {
            url: targetUrl,
            method: c.req.method,
            headers: attemptHeaders,
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
      if (response) {
        const outcome = { kind: "raw" as const, status: response.status, response };
        return { outcome, attempts: err.attempts };
      }
      throw explainTimeout(deadlines, err.last);
    });
    if (result.outcome.kind !== "raw") throw new GatewayError("internal", "Unexpected outcome");
    c.set("upstreamMs", upstreamTime(result.attempts));
    return relay(c, provider.name, result.outcome.response, result.attempts.length);
  };
}

/**
 * The provider a native route reaches, the base its path is appended to, and the rest of the
 * raw path after the route prefix. Refuses (400, before any upstream call) a path that is not
 * contained (passthrough_path.ts) or whose prefix is not written as is.
 */
function locate(
  config: Config,
  family: NativeFamily | "native",
  target: RawTarget,
): { provider: ProviderConfig; base: string; rest: string } {
  if (target.fragment) throw invalid("A request-target cannot carry a #fragment");
  const problem = containmentProblem(target.path);
  if (problem !== null) throw invalid(`${problem}; passthrough paths must stay under the API`);
  if (family === "native") {
    const m = /^\/native\/([^/]*)(\/.*)?$/.exec(target.path);
    if (m === null) throw invalid("The /native prefix must not be percent-encoded");
    // Hono routes on the decoded path: `/native/%6fpenai` names no provider as written.
    const provider = providerNamed(config, m[1] as string);
    return { provider, base: provider.base_url, rest: m[2] ?? "" };
  }
  const provider = providerOfFamily(config, family);
  const rest = restAfter(target.path, `/${family}`);
  if (rest === null) throw invalid(`The /${family} prefix must not be percent-encoded`);
  // llm-proxy's contract for Bedrock: strip only `/bedrock`, keeping the raw path (`%3A` in
  // inference-profile ids) exactly as the client signed it. The other families' base_url may
  // end in its API version (…/v1, …/v1beta); the client's path carries its own.
  return {
    provider,
    base: family === "bedrock" ? provider.base_url : apiRoot(provider.base_url),
    rest,
  };
}

/**
 * `url` when it parses and stays on `base`'s origin and under its path (what `fetch` will
 * send, dot-segments resolved), else a 400. The path checks make this unreachable; it is
 * the last line should a spelling slip through them.
 */
function contained(url: string, base: string): string {
  const target = URL.parse(url);
  const root = URL.parse(base);
  const under = (path: string, prefix: string) =>
    prefix === "/" || path === prefix ||
    path.startsWith(prefix.endsWith("/") ? prefix : `${prefix}/`);
  if (
    target === null || root === null || target.origin !== root.origin ||
    !under(target.pathname, root.pathname)
  ) {
    throw invalid("The path leaves the provider's base path");
  }
  return url;
}

/** The model named in a native path (`/models/{id}:…`, Bedrock's `/model/{id}/…`), decoded. */
function modelInPath(rest: string): string | undefined {
  const m = /\/models?\/([^/:]+(?::\d+)?)/.exec(rest)?.[1] ?? /\/model\/([^/]+)/.exec(rest)?.[1];
  return m === undefined ? undefined : percentDecode(m);
}

/**
 * The client's own provider credential, or null when it sent none. An empty value
 * (`x-goog-api-key: ""`, `Authorization: Bearer `) and a `pf_` app key count as none.
 */
function credentialOf(headers: Headers, query: string, auth: NativeAuth): string | null {
  for (const name of auth.headers) {
    const value = headers.get(name);
    if (value !== null && !isEmptyCredential(value) && !isAppKey(value)) return value;
  }
  if (auth.queryParam === null) return null;
  const key = queryParam(query, auth.queryParam);
  return key !== null && !isEmptyCredential(key) && !isAppKey(key) ? key : null;
}

const isEmptyCredential = (value: string) => /^\s*(?:Bearer\s*)?$/i.test(value);
/** A `pf_` app key, also as one of the values a repeated header was joined from. */
const isAppKey = (value: string) => /(?:^|,)\s*(?:Bearer\s+)?pf_/i.test(value);

const invalid = (message: string) => new GatewayError("invalid_request", message);

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
function relay(c: Context<AppEnv>, provider: string, res: Response, attempts: number): Response {
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
  for (
    const [name, value] of Object.entries(pilotfishHeaders(provider, c.get("model"), attempts))
  ) {
    out.set(name, value);
  }
  // Bedrock InvokeModel reports usage in headers: no need to look inside the body.
  const input = res.headers.get("x-amzn-bedrock-input-token-count");
  const output = res.headers.get("x-amzn-bedrock-output-token-count");
  if (input !== null || output !== null) {
    const p = Number(input ?? 0);
    const q = Number(output ?? 0);
    c.set("usage", { prompt_tokens: p, completion_tokens: q, total_tokens: p + q });
  }
  const sniffed = res.body?.pipeThrough(
    createUsageSniffer(contentType, (usage) => c.set("usage", usage)),
  ) ?? null;
  // server.write_timeout ends the body (abruptly, so the client can tell): the bytes are the
  // provider's, there is no event of ours to put in them.
  const cut = c.get("deadlines")?.write;
  const body = sniffed && cut ? endAt(sniffed, cut) : sniffed;
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
  // Own keys only: `/native/constructor/…` must not find Object.prototype's members.
  const p = Object.hasOwn(config.providers, name) ? config.providers[name] : undefined;
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

/**
 * The client's headers minus hop-by-hop and Pilotfish ones, any `pf_` app key (whatever
 * header carries it) and empty credentials; with `inject`, minus every credential header too
 * (the caller sets the configured key). Configured `headers` fill in what the client left out.
 */
function forwardHeaders(incoming: Headers, provider: ProviderConfig, inject: boolean): Headers {
  const out = new Headers();
  incoming.forEach((value, name) => {
    if (HOP_BY_HOP.has(name) || isInternal(name) || isAppKey(value)) return;
    if (CREDENTIAL_HEADERS.includes(name) && (inject || isEmptyCredential(value))) return;
    out.append(name, value);
  });
  // Identity keeps bytes identical end to end (fetch would otherwise decompress) — unless
  // the client signed its own Accept-Encoding (SigV4), which must then travel untouched.
  const signed = /SignedHeaders=([^,\s]+)/.exec(incoming.get("authorization") ?? "")?.[1];
  if (!signed?.split(";").includes("accept-encoding")) out.set("accept-encoding", "identity");
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
