import type { Context } from "hono";
import { type Config, isEmbeddedDefault, type ProviderConfig } from "../config/mod.ts";
import { PROVIDER_PRESETS } from "../config/presets.ts";
import { GatewayError } from "../errors.ts";
import { isObject as isRecord } from "../schema/openai.ts";
import { claimNative, mayRelay, notFound } from "./responses.ts";
import { classifyOutcome, FLAG_HEADERS, FLAG_PARAMS } from "../breaker/mod.ts";
import {
  executeUpstream,
  type NativeApi,
  type ProviderAdapter,
  type RawOutcome,
  type UpstreamTrace,
} from "../providers/mod.ts";
import { CREDENTIAL_HEADERS, type NativeAuth } from "../providers/shared/native_auth.ts";
import {
  NATIVE_BY_NAME_FORMAT,
  NATIVE_BY_NAME_PATHS,
  nativeErrorFormat,
  type NativeFamily,
} from "../providers/native_routes.ts";
import {
  type AttemptRecord,
  callsMade,
  feedRelayedFailure,
  pickKey,
  pilotfishHeaders,
  type Target,
} from "../routing/mod.ts";
import {
  createUsageMeter,
  createUsageSniffer,
  knownUsage,
  promptBytes,
  RelayedFailure,
  relayStream,
  type StreamFailures,
  StreamIdleTimeout,
  type UsageMeter,
} from "../streaming/mod.ts";
import { scrubStream, type SecretScrub } from "../streaming/scrub.ts";
import {
  endAt,
  explainTimeout,
  guardUpload,
  streamCut,
  withinWrite,
} from "../server/middleware/timeouts.ts";
import type { Exchange } from "../pipeline/exchange.ts";
import { noteAttempts } from "../pipeline/exchange.ts";
import {
  failover,
  postHttp,
  postLlmObserved,
  preHttp,
  preLlm,
  reachedAll,
  renderHere,
  trailOf,
} from "../pipeline/run.ts";
import { applicable, type Schedule } from "../pipeline/stages.ts";
import { USER_ID_PARAM } from "../limits/mod.ts";
import { redactJsonText, type Redactor } from "../telemetry/mod.ts";
import { bodyCoding, inflate, readHeldBody, tooLarge, watchUpload } from "./body.ts";
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

/**
 * A body of declared length up to this size whose model is not in the path (and that is not
 * compressed) is read before it
 * goes upstream (as the same bytes, so its Content-Length and any signature are kept): its
 * `model` is then known for `x-pilotfish-model` on every answer, a stream or an error too,
 * and its user for the usage rollups. A larger one streams through unread.
 */
const NAMED_BODY_BYTES = 1024 * 1024;

/** Hop-by-hop headers (RFC 9110 section 7.6.1) and ours: never forwarded either way. */
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
 * Hop-by-hop for this message: the fixed set, and the fields its `Connection` header names
 * (RFC 9110 section 7.6.1). The set itself when `Connection` names nothing else (the usual case).
 */
function hopByHop(headers: Headers): ReadonlySet<string> {
  const connection = headers.get("connection");
  if (connection === null) return HOP_BY_HOP;
  const named = connection.split(",").map((t) => t.trim().toLowerCase())
    .filter((t) => t !== "" && !HOP_BY_HOP.has(t) && t !== "close");
  return named.length === 0 ? HOP_BY_HOP : new Set([...HOP_BY_HOP, ...named]);
}

/** A provider and what it knows about its own native API. */
interface Located {
  readonly provider: ProviderConfig;
  readonly adapter: ProviderAdapter;
  readonly native: NativeApi;
  readonly base: string;
  readonly rest: string;
}

/**
 * Native passthrough (llm-proxy's `/openai/v1/...`, `/anthropic/v1/...`, `/gemini/v1...`,
 * `/bedrock/...`, and Butter's `/native/{provider}/...`): method, path, query, body and
 * streaming go through untouched; only hop-by-hop and Pilotfish headers are dropped. The
 * upstream path is the provider's base path + the rest of the raw path, never a resolved one
 * (passthrough_path.ts). Credentials: the client's own passes through; a configured key is
 * injected when it sent none (or `credential_mode: gateway` is set explicitly); a `pf_` app
 * key is never forwarded. Usage is read off the response as it streams, by the provider's
 * own shapes. Stages see the request as bytes (`pre_http`, `pre_llm`: the body is then held)
 * and the answer as it started (`post_llm`, `post_http`); there are no typed chunks here.
 * `family` is null for `/native/{provider}/*`.
 */
/** What the Fetch standard forbids a request to carry as its method. */
const UNSENDABLE: ReadonlySet<string> = new Set(["CONNECT", "TRACE", "TRACK"]);
const RELAYED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

export function nativePassthrough(family: NativeFamily | null) {
  return async function passthrough(c: Context<AppEnv>): Promise<Response> {
    const ex = c.get("exchange");
    ex.errorFormat = family?.errorFormat ?? NATIVE_BY_NAME_FORMAT;
    ex.schema = "passthrough";
    const stages = ex.runtime.stages;
    if (stages.post_http.length === 0) return await run(c, ex, family, reachedAll(ex));
    const reached = reachedAll(ex);
    let response: Response;
    try {
      response = await run(c, ex, family, reached);
    } catch (err) {
      response = renderHere(ex, err);
    }
    return await postHttp(ex, response, reached.http);
  };
}

async function run(
  c: Context<AppEnv>,
  ex: Exchange,
  family: NativeFamily | null,
  reached: ReturnType<typeof reachedAll>,
): Promise<Response> {
  const rt = ex.runtime;
  const sent = rawTarget(c.req.url);
  const { provider, adapter, native, base, rest } = locate(ex, family, sent);
  ex.provider = provider.name;
  // Methods `fetch` refuses to send: the client's 405 (in the provider's format, known now),
  // never a provider "unreachable" that a breaker would count against it.
  if (UNSENDABLE.has(c.req.method.toUpperCase())) {
    throw new GatewayError(
      "method_not_allowed",
      `Method ${c.req.method} is not allowed on ${c.req.path}`,
      { headers: { allow: RELAYED_METHODS } },
    );
  }
  // The model as configured: an API that names it its own way (Azure's deployments) says.
  const modelOf = (named: string | undefined) =>
    native.modelOf ? native.modelOf(rest, named, provider) : named;
  const urlModel = modelOf(modelInPath(rest));

  const auth = native.auth;
  // An app key is never the client's provider credential: a `pf_` one, or one of the
  // configured keys (Butter's static keys may be any string).
  const keys = rt.keys;
  const appKey = keys === null
    ? isPfKey
    : (value: string) =>
      isPfKey(value) || keys.isAppKey(value.replace(/^\s*Bearer\s+/i, "").trim());
  const clientCredential = credentialOf(ex.headers, sent.query, auth, appKey);
  // A configured key replaces the client's credential only when the provider has one and
  // the client sent none, or the operator asked for it (`credential_mode: gateway`).
  const inject = provider.keys.length > 0 &&
    (clientCredential === null || provider.native_credential_mode === "gateway");
  // llm-proxy's switches and user id never reach the provider (Google's APIs refuse a query
  // parameter they do not know), nor does a pf_ key; with an injected key neither does a
  // credential of the client's in the query (`?key=`, `access_token`, any case). Every other
  // byte of the query stays as sent: a signed (SigV4) query must reach AWS unchanged, its
  // switches too (read, and still sent).
  const signedQuery = /(?:^|[?&])X-Amz-Signature=/i.test(sent.query);
  const query = withoutParams(
    sent.query,
    (name, value) =>
      ((FLAG_PARAMS.includes(name) || name === USER_ID_PARAM) && !signedQuery) ||
      appKey(value) ||
      (inject && (name === auth.queryParam || CREDENTIAL_PARAM.test(name))),
  );
  const targetUrl = contained(`${base}${rest}${query}`, base);

  const max = rt.config.server.max_body_bytes;
  const declared = Number(c.req.header("content-length") ?? NaN);
  if (declared > max) throw tooLarge(max);
  let hasBody = c.req.method !== "GET" && c.req.method !== "HEAD" && c.req.raw.body !== null;
  // HTTP/1.1 frames a body by Content-Length or Transfer-Encoding: with neither there is
  // none, yet Deno hands over an empty stream, which `fetch` would send chunked (a DELETE
  // from the OpenAI SDK). HTTP/2 frames a body itself, so such a one is read to see.
  const unframed = !Number.isFinite(declared) && !ex.headers.has("transfer-encoding");
  // The body is held with the breaker on (a transient failure is retried, as llm-proxy
  // does), when its `model` (OpenAI, Anthropic bodies) picks among allowlisted keys, or for a
  // stage that reads it; otherwise it streams through. With read_timeout, one of declared
  // length is held too (read under the deadline): only the runtime's own stream keeps its
  // Content-Length upstream (SigV4 signs it), and that stream cannot tell us when it was
  // read to its end.
  const breaker = rt.breaker;
  const deadlines = ex.deadlines;
  const staged = applicable(rt.stages.pre_http, ex).length > 0 ||
    applicable(rt.stages.pre_llm, ex).length > 0;
  // Continuing a native response with the gateway's key: its `previous_response_id` is read
  // (see `ownResponses`).
  const keepsResponses = inject && adapter.storedResponse !== undefined;
  const creates = keepsResponses && c.req.method === "POST" && RESPONSES_CREATE.test(rest);
  const hold = breaker.mode !== "off" || staged || creates ||
    (urlModel === undefined && inject && provider.keys.some((k) => k.models.length > 0)) ||
    (deadlines?.read !== undefined && Number.isFinite(declared)) ||
    // Read only to name it: a compressed one is relayed unread, as any body nothing reads.
    (urlModel === undefined && declared <= NAMED_BODY_BYTES && !ex.headers.has("content-encoding"));
  let held = hasBody && (hold || unframed)
    ? await readHeldBody(c.req.raw.body!, max, deadlines?.body, rt.schedule)
    : null;
  if (unframed && held?.byteLength === 0) [held, hasBody] = [null, false];
  // A compressed body is read for what it holds (a plugin scanning it must not be handed
  // bytes it cannot read: that would be a way past a guard); it still goes upstream as sent
  // unless a stage rewrites it. An encoding we cannot read is refused only where a stage
  // reads the body; otherwise it is relayed untouched.
  let coding: CompressionFormat | null = null;
  if (held !== null && ex.headers.has("content-encoding")) {
    try {
      coding = bodyCoding(ex.headers);
    } catch (err) {
      if (staged) throw err;
    }
  }
  const original = coding === null || held === null ? held : await inflate(held, coding, max);
  let view = original;
  // What the body names itself, read once (again only after a rewrite).
  let named = await namesOf(view, ex.headers);
  ex.request = held === null && hasBody && Number.isFinite(declared)
    ? { schema: "passthrough", body: null, bytes: declared }
    : { schema: "passthrough", body: view, ...userOf(named) };
  // What the stages see as asked for (an app key's allowlist); a rewrite may change it.
  const asked = urlModel ?? modelOf(named.model);
  if (asked !== undefined) ex.model = asked;
  if (staged) {
    const http = await preHttp(ex, view, reached);
    if (http.response) return http.response;
    view = asBytes(http.body, view);
    const llm = await preLlm(ex, { schema: "passthrough", body: view }, reached, (body) => {
      view = asBytes(body, view);
    });
    if (llm.response) return llm.response;
    if (view !== original) named = await namesOf(view, ex.headers);
    ex.request = { schema: "passthrough", body: view, ...userOf(named) };
  }
  // With the gateway's key a provider cannot tell app keys apart: a native response is
  // reached only by the key that created it (as on /v1/responses).
  if (keepsResponses) await ownResponses(ex, c.req.method, rest, view);
  const headers = forwardHeaders(ex.headers, provider, inject);
  if (view !== original) {
    // A stage's rewrite goes upstream as written: plain, its length fetch's own.
    held = view;
    headers.delete("content-length");
    if (coding !== null) headers.delete("content-encoding");
  }
  // A request the client signed (SigV4, in its headers or query) reaches the provider exactly
  // as signed: no trace context of ours replaces what it may have signed.
  const verbatim = !inject && (
    /SignedHeaders=/.test(ex.headers.get("authorization") ?? "") ||
    /(?:^|[?&])X-Amz-Signature=/i.test(query)
  );
  const model = urlModel ?? modelOf(named.model);
  if (model !== undefined) ex.model = model;
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

  let response: Response;
  let attempts: readonly AttemptRecord[];
  let settle = noop;
  /** Time since the answering attempt started, and its trace: for a stream's first content. */
  let sinceStart = () => 0;
  let attemptTrace: UpstreamTrace | undefined;
  if (breaker.mode === "off") {
    if (inject) headers.set(...auth.header(configuredKey()));
    // A declared length is enforced by HTTP framing and keeps the upstream request framed
    // the same way (with Content-Length); only chunked uploads need counting and watching.
    const watched = hasBody && held === null && !Number.isFinite(declared)
      ? watchUpload(c.req.raw.body!, max)
      : null;
    const streamed = hasBody && held === null ? watched?.body ?? c.req.raw.body : null;
    // A chunked body streams upstream while it arrives: read_timeout aborts the upstream
    // request. (write_timeout needs no guard: it already bounds the whole upstream call.)
    const upload = streamed && deadlines?.read ? guardUpload(streamed, deadlines.read) : null;
    const sentAt = rt.clock.now();
    sinceStart = () => rt.clock.now() - sentAt;
    // One attempt, traced like failover's: its span, and its trace context sent upstream.
    const trace = trailOf(ex)?.attemptStart({ provider: provider.name, model: model ?? "" });
    attemptTrace = trace;
    const reply = await executeUpstream(rt.fetch, {
      url: targetUrl,
      method: c.req.method,
      headers,
      body: !hasBody ? null : held ?? upload?.body ?? streamed,
    }, {
      signal: upload || watched
        ? AbortSignal.any([
          c.req.raw.signal,
          ...[upload, watched].flatMap((u) => u?.signal ?? []),
        ])
        : c.req.raw.signal,
      // The unified routes' bounds: the provider's timeout within the failover deadline.
      timeoutMs: withinWrite(
        deadlines,
        Math.min(provider.timeout, rt.config.routing.failover.deadline),
      ),
      provider: provider.name,
      verbatim,
      trace,
    })
      .catch((err) => {
        const explained = explainTimeout(deadlines, err);
        const e = watched?.blame(err, explained !== err) ?? upload?.cut() ?? explained;
        // The failed call, recorded like failover's: the log lists it, its span ends with it.
        const ge = e instanceof GatewayError ? e : null;
        noteAttempts(ex, [{
          provider: provider.name,
          model: model ?? "",
          key_id: null,
          status: ge ? ge.info.upstreamStatus ?? ge.status : null,
          duration_ms: rt.clock.now() - sentAt,
          first_chunk_ms: null,
          usage: knownUsage(null),
          outcome: "final",
          reason: ge ? ge.code : "error",
        }], model !== undefined ? { provider: provider.name, model } : undefined);
        throw e;
      });
    // The timer keeps running: it also covers a body that is not a stream (relay settles it).
    settle = reply.settle;
    response = reply.response;
    const idHeader = adapter.requestIdHeader;
    const upstreamId = idHeader === undefined ? null : response.headers.get(idHeader);
    // One call, recorded like failover's: the overhead header and the log read it.
    attempts = [{
      provider: provider.name,
      model: model ?? "",
      key_id: null,
      status: response.status,
      duration_ms: rt.clock.now() - sentAt,
      first_chunk_ms: null,
      usage: knownUsage(null),
      outcome: "ok",
      ...(upstreamId !== null ? { upstream_request_id: upstreamId } : {}),
    }];
  } else {
    // With the breaker on, the body's `model` names the breaker key when the URL does not.
    const body = held;
    ex.targets = [{ provider: provider.name, model: model ?? "" }];
    const result = await failover<RawOutcome>(
      ex,
      `${provider.name}/${model ?? ""}`,
      undefined,
      async (adapter, attempt) => {
        const attemptHeaders = new Headers(headers);
        // The key failover chose for this attempt (it cools it down on 401/429), else ours.
        if (inject) attemptHeaders.set(...auth.header(attempt.apiKey ?? configuredKey()));
        const reply = await executeUpstream(rt.fetch, {
          url: targetUrl,
          method: c.req.method,
          headers: attemptHeaders,
          body: body === null ? null : body.slice(),
        }, {
          signal: attempt.signal,
          timeoutMs: attempt.timeoutMs,
          provider: provider.name,
          verbatim,
          onReply: attempt.onReply,
          trace: attempt.trace,
        });
        // Unsettled: the relay stops the timer once the body is read. A reply that is thrown
        // (retried, or kept for the client) keeps it: it ends that body if nobody does.
        return raw(reply.response, adapter, reply.settle);
      },
      c.req.raw.signal,
      {
        // Forwarded as the client sent it: failover must neither pick nor cool a configured key.
        clientAuthorization: inject ? null : clientCredential,
        deadlineMs: rt.config.routing.failover.deadline,
      },
    );
    if (result.ok) {
      response = result.outcome.response;
      settle = result.outcome.settle ?? settle;
    } else {
      // A failure that is not the provider's fault (or a bypass) goes back exactly as it came.
      const kept = result.error.info.response;
      if (!kept) {
        noteAttempts(ex, result.attempts, result.target);
        throw explainTimeout(deadlines, result.error);
      }
      response = kept;
    }
    attempts = result.attempts;
    const started = attempts.findLast((a) => a.outcome === "ok")?.started_ms;
    if (started !== undefined) sinceStart = () => rt.now() - started;
  }
  // An upstream that echoes the credential it got (some do, in a 401's body or a header) must
  // not hand the gateway's own key to a client that never had it: the runtime's redactor (the
  // unified routes' too) takes the keys and their shapes, a 12-character prefix echo included.
  let out: Awaited<ReturnType<typeof relay>>;
  try {
    const trail = trailOf(ex);
    out = await relay(ex, native, response, attempts, inject ? rt.redact : null, {
      settle,
      claim: creates ? claimer(ex) : undefined,
      idleMs: provider.timeout,
      rebase: native.links === undefined ? NO_REBASE : rebaser(c.req.url, sent.path, rest, base),
      // A stream's first content: the active-stream gauge, time to first chunk, its span event.
      firstContent: trail && ((target) => trail.firstChunk(target, sinceStart(), attemptTrace)),
    });
  } catch (err) {
    // The body failed before the answer started (the upstream timeout ran out while it was
    // read whole, or the upstream cut it): an error in the route's format, never a hang.
    noteAttempts(ex, attempts, { provider: provider.name, model: ex.model ?? "" });
    throw explainTimeout(
      deadlines,
      err instanceof GatewayError ? err : new GatewayError(
        "upstream_error",
        `Provider "${provider.name}" cut its answer short: ${
          rt.redact(String((err as Error)?.message ?? err))
        }`,
        { provider: provider.name, upstreamStatus: 502 },
      ),
    );
  }
  noteAttempts(ex, out.attempts, { provider: provider.name, model: ex.model ?? "" });
  if (rt.stages.post_llm.length > 0) {
    await postLlmObserved(ex, { stream: false, status: response.status }, reached.llm);
  }
  return out.response;
}
/**
 * The provider a native route reaches, the base its path is appended to, and the rest of the
 * raw path after the route prefix. Refuses (400, before any upstream call) a path that is not
 * contained (passthrough_path.ts) or whose prefix is not written as is.
 */
function locate(ex: Exchange, family: NativeFamily | null, target: RawTarget): Located {
  const { config, adapters } = ex.runtime;
  // The provider first (its API may name segments that carry an encoded slash), but a path
  // that is not contained is refused before any lookup error is reported.
  let located: Located | null = null;
  let lookupError: unknown = null;
  try {
    located = lookup(config, adapters, family, target);
  } catch (err) {
    lookupError = err;
  }
  // `/native/{provider}/*` answers in its provider's format from here on.
  if (family === null && located !== null) {
    ex.errorFormat = nativeErrorFormat(located.provider.type);
  }
  if (target.fragment) throw invalid("A request-target cannot carry a #fragment");
  const problem = containmentProblem(target.path, located?.native.opaqueSegment);
  if (problem !== null) throw invalid(`${problem}; passthrough paths must stay under the API`);
  if (located === null) throw lookupError;
  // Only the paths PRODUCT lists go upstream (with a key injected): `/openai/v2/...`, a bare
  // `/gemini` or `/bedrock` are not part of any API we pass through.
  if (!(family?.paths ?? NATIVE_BY_NAME_PATHS).test(located.rest)) {
    const covered = family?.covers ?? "/native/{provider}/*";
    throw new GatewayError(
      "not_found",
      `No passthrough route for ${target.path} (covered: ${covered})`,
    );
  }
  return located;
}

function lookup(
  config: Config,
  adapters: ReadonlyMap<string, ProviderAdapter>,
  family: NativeFamily | null,
  target: RawTarget,
): Located {
  if (family === null) {
    const m = /^\/native\/([^/]*)(\/.*)?$/.exec(target.path);
    if (m === null) throw invalid("The /native prefix must not be percent-encoded");
    // Hono routes on the decoded path: `/native/%6fpenai` names no provider as written.
    if (m[1]!.includes("%")) {
      throw invalid("The provider segment of /native/{provider} must not be percent-encoded");
    }
    const { provider, adapter, native } = providerNamed(config, adapters, m[1] as string);
    return { provider, adapter, native, base: provider.base_url, rest: m[2] ?? "" };
  }
  const { provider, adapter, native } = providerOfFamily(config, adapters, family);
  const rest = restAfter(target.path, family.prefix);
  if (rest === null) throw invalid(`The ${family.prefix} prefix must not be percent-encoded`);
  // The segment after it is a literal of the provider's API (`v1`, `v1beta`, `model`).
  if (/^\/[^/]*%/.test(rest)) {
    throw invalid(`The segment after ${family.prefix} must not be percent-encoded`);
  }
  return { provider, adapter, native, base: family.base(provider), rest };
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

/** The model named in a native path (`/models/{id}:...`, Bedrock's `/model/{id}/...`), decoded. */
function modelInPath(rest: string): string | undefined {
  const m = /\/models?\/([^/:]+(?::\d+)?)/.exec(rest)?.[1] ?? /\/model\/([^/]+)/.exec(rest)?.[1];
  return m === undefined ? undefined : percentDecode(m);
}

/** For an API whose answers hand out no URLs of its own (`NativeApi.links`). */
const NO_REBASE = (_url: string): string | null => null;

/**
 * Maps an upstream URL under `base` to the same resource through this route: the origin the
 * client reached (its Host) + the route's prefix (`/anthropic`, `/native/{provider}`) + the
 * rest. Null for a URL elsewhere (left as the upstream wrote it).
 */
function rebaser(
  requestUrl: string,
  path: string,
  rest: string,
  base: string,
): (url: string) => string | null {
  const prefix = path.endsWith(rest) ? path.slice(0, path.length - rest.length) : null;
  let origin: string | null = null;
  try {
    const url = new URL(requestUrl);
    // Over the socket Deno says `http+unix://<Host>/...`: the client spoke plain HTTP there, and
    // its next call (`http://<Host>/...`) goes through the same socket-bound client.
    // No Host (HTTP/1.0): Deno names the socket's path there, no host a client could call.
    origin = url.protocol !== "http+unix:"
      ? url.origin
      : url.host === "" || url.host.includes("%")
      ? null
      : `http://${url.host}`;
  } catch {
    // no usable origin: nothing is rebased
  }
  return (url) =>
    prefix === null || origin === null || origin === "null" || !url.startsWith(`${base}/`)
      ? null
      : `${origin}${prefix}${url.slice(base.length)}`;
}

/** `fields`' string values in a JSON answer, rebased (`rebaser`); other bytes as they were. */
function rebaseJson(
  bytes: Uint8Array<ArrayBuffer>,
  fields: readonly string[],
  rebase: (url: string) => string | null,
): Uint8Array<ArrayBuffer> {
  const text = new TextDecoder().decode(bytes);
  if (!fields.some((f) => text.includes(`"${f}"`))) return bytes;
  let changed = false;
  const out = text.replace(
    /"([A-Za-z0-9_]+)"(\s*:\s*)"((?:[^"\\]|\\.)*)"/g,
    (all, name, sep, value) => {
      if (!fields.includes(name)) return all;
      let url: string;
      try {
        url = JSON.parse(`"${value}"`);
      } catch {
        return all;
      }
      const moved = rebase(url);
      if (moved === null) return all;
      changed = true;
      return `"${name}"${sep}${JSON.stringify(moved)}`;
    },
  );
  return changed ? new TextEncoder().encode(out) : bytes;
}

/**
 * The client's own provider credential, or null when it sent none. An empty value
 * (`x-goog-api-key: ""`, `Authorization: Bearer `) and an app key (`isAppKey`) count as none.
 */
function credentialOf(
  headers: Headers,
  query: string,
  auth: NativeAuth,
  isAppKey: (value: string) => boolean,
): string | null {
  for (const name of auth.headers) {
    const value = headers.get(name);
    if (value !== null && !isEmptyCredential(value) && !isAppKey(value)) return value;
  }
  if (auth.queryParam === null) return null;
  const key = queryParam(query, auth.queryParam);
  return key !== null && !isEmptyCredential(key) && !isAppKey(key) ? key : null;
}

/**
 * Query parameters APIs take a credential in (Google's `key` and OAuth `access_token`, Azure's
 * `api-key`), in any case: with a key injected, the client's never travels beside it.
 */
const CREDENTIAL_PARAM = /^(?:key|api[-_]key|access_token)$/i;

const isEmptyCredential = (value: string) => /^\s*(?:Bearer\s*)?$/i.test(value);
/** A `pf_` app key, also as one of the values a repeated header was joined from. */
const isPfKey = (value: string) => /(?:^|,)\s*(?:Bearer\s+)?pf_/i.test(value);

/** A `pf_` key anywhere in a header value (`cookie: k=pf_...`): the header is not forwarded. */
const holdsPfKey = (value: string) => /(?:^|[^A-Za-z0-9_-])pf_[A-Za-z0-9_-]{16,}/.test(value);

const invalid = (message: string) => new GatewayError("invalid_request", message);

/**
 * A passthrough reply as an attempt outcome: 2xx and the caller's own errors are answers;
 * what the breaker would count or retry (5xx, 429, 529, AWS throttling, by the provider's
 * own rules) is thrown, carrying the untouched reply in case it ends up being the one the
 * client gets.
 */
function raw(response: Response, adapter: ProviderAdapter, settle: () => void): RawOutcome {
  const cls = (adapter.classify ?? classifyOutcome)({
    status: response.status,
    headers: response.headers,
  });
  if (cls === "success" || cls === "client_error") {
    return { kind: "raw", status: response.status, response, settle };
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

/**
 * A successful JSON answer up to this size is read whole before it is sent, so its usage (and
 * so its cost header) is known first; a larger one streams like any other body.
 */
const WHOLE_JSON_BYTES = 8 * 1024 * 1024;

/**
 * Hand an upstream reply to the client: headers filtered, body streamed, usage read off it
 * by the provider's own shapes into the winning attempt's usage. A successful JSON answer
 * (up to `WHOLE_JSON_BYTES`) is read whole first: the same bytes, with usage settled before
 * the headers go out (`x-pilotfish-cost-usd`).
 */
async function relay(
  ex: Exchange,
  native: NativeApi,
  res: Response,
  attempts: readonly AttemptRecord[],
  /** Set when a configured key was injected: applied to header values and an error body. */
  redact: Redactor | null,
  /**
   * `settle` stops the upstream timer. It covers what is read here before the answer starts
   * (a JSON body read whole, an error body): one that stalls fails here (504). A body relayed
   * as it comes (a stream, NDJSON, a download) is the client's to pace: the timer stops, and
   * it is cut once the upstream sends nothing for `idleMs` while the client waits (a stream:
   * for `routing.failover.stream_idle_timeout`, when set). `firstContent` is told a stream's
   * first content.
   */
  timer: {
    settle: () => void;
    idleMs: number;
    firstContent?: ((target: Target) => void) | undefined;
    /** An upstream URL under the provider's base as the client reaches it here, else null. */
    rebase: (url: string) => string | null;
    /** Told each parsed answer or event of a native response created with the gateway's key. */
    claim?: ((value: unknown) => void) | undefined;
  },
): Promise<{ response: Response; attempts: readonly AttemptRecord[] }> {
  const { settle } = timer;
  const contentType = res.headers.get("content-type") ?? "";
  ex.stream = contentType.includes("text/event-stream") || contentType.includes("eventstream") ||
    native.streams?.(ex.path) === true;
  if (ex.stream) settle();
  ex.deferEnd = true;
  const out = new Headers();
  const hop = hopByHop(res.headers);
  const linkHeaders = native.links?.headers;
  res.headers.forEach((value, name) => {
    // content-length: the body is re-chunked on the way out; let the server frame it.
    // access-control-*: which pages may read an answer is `server.cors`'s call, not the
    // provider's (its `*` would let any page read what the configured key fetched).
    if (
      !hop.has(name) && !isInternal(name) && name !== "content-length" &&
      !name.startsWith("access-control-")
    ) {
      const shown = linkHeaders?.includes(name) ? timer.rebase(value) ?? value : value;
      out.append(name, redact === null ? shown : redact(shown));
    }
  });
  const provider = ex.provider as string;
  for (
    const [name, value] of Object.entries(pilotfishHeaders(provider, ex.model, callsMade(attempts)))
  ) {
    out.set(name, value);
  }
  // The stages' own (a limit's `x-ratelimit-*`) over the provider's.
  for (const [name, value] of Object.entries(ex.replyHeaders ?? {})) out.set(name, value);
  const counted = createUsageMeter();
  const winner = attempts.findLast((a) => a.outcome === "ok");
  const onFirst = ex.stream && winner !== undefined ? timer.firstContent : undefined;
  // The first content of a stream is told once, as the unified routes' stream gate tells it.
  let untold = onFirst !== undefined;
  const meter: UsageMeter = !untold ? counted : {
    ...counted,
    content(chars) {
      if (untold && chars > 0) {
        untold = false;
        onFirst!({ provider: winner!.provider, model: winner!.model });
      }
      counted.content(chars);
    },
  };
  // A stream cut before the upstream counted the input is billed for the request's size
  // (~4 bytes a token, as the unified routes estimate a prompt), marked estimated.
  const req = ex.request?.schema === "passthrough" ? ex.request : null;
  if (req !== null) {
    meter.promptEstimate(() => Math.ceil((promptBytes(req.body) ?? req.bytes ?? 0) / 4));
    if (res.ok && native.uncountedInput?.(ex.path) === true) meter.inputUncounted();
  }
  // Some APIs report usage in headers (Bedrock InvokeModel): no need to look inside the body.
  const fromHeaders = native.headerUsage?.(res.headers) ?? null;
  if (fromHeaders !== null) meter.report(fromHeaders);
  // A body streamed upstream unread leaves the model unknown: the answer names it (billing).
  const onModel = (model: string) => {
    if (!ex.model) ex.model = model;
  };
  // The key Pilotfish injected, echoed back: out of an error body, and out of an answer
  // relayed as it streams (an SSE error event inside a 200).
  const scrub = redact === null ? null : ex.runtime.scrubs.get(provider) ?? null;
  const upstreamBody = redact === null ? res.body : scannable(res, out);
  const source = !res.ok && redact !== null && upstreamBody
    ? await withoutSecrets(upstreamBody, redact, scrub)
    : upstreamBody && scrubStream(scrub, upstreamBody);
  const read = !ex.stream && res.ok && source && /\bjson\b/i.test(contentType)
    ? await wholeUpTo(source, WHOLE_JSON_BYTES)
    : { body: source, whole: false };
  // A failure the upstream reported in its own framing (an AWS exception frame after 200):
  // the client gets it as sent, the breaker counts it, and the log's outcome is `error`.
  let reported: GatewayError | null = null;
  const failures: StreamFailures = {
    provider,
    report(error) {
      if (reported !== null) return;
      reported = error;
      const rt = ex.runtime;
      if (rt.breaker.mode !== "off" && winner !== undefined) {
        feedRelayedFailure(rt.breaker, rt.adapters, winner, error, rt.now());
      }
    },
  };
  const claim = res.ok ? timer.claim : undefined;
  let sniffed = read.body?.pipeThrough(
    createUsageSniffer(contentType, native, meter, onModel, failures, claim),
  ) ?? null;
  if (sniffed === null) meter.settle("complete");
  else if (read.whole) {
    // Read through the sniffer now: usage settles before the response (and its headers) exist.
    let bytes: Uint8Array<ArrayBuffer> = new Uint8Array(await new Response(sniffed).arrayBuffer());
    if (claim !== undefined) {
      try {
        claim(JSON.parse(new TextDecoder().decode(bytes)));
      } catch { /* not JSON: nothing to claim */ }
    }
    const fields = native.links?.jsonFields;
    if (fields !== undefined) bytes = rebaseJson(bytes, fields, timer.rebase);
    sniffed = new Blob([bytes]).stream();
    // A body that streamed upstream unread named no model; the answer just read does.
    if (ex.model && !out.has("x-pilotfish-model")) {
      out.set("x-pilotfish-model", pilotfishHeaders(provider, ex.model, 0)["x-pilotfish-model"]!);
    }
  }
  settle();
  if (sniffed !== null && !read.whole) {
    // A stream's silence is bounded by routing.failover.stream_idle_timeout, as on the unified
    // routes (unset: no limit); it ends abruptly, as below: the bytes are the provider's.
    const streamIdleMs = ex.runtime.config.routing.failover.stream_idle_timeout;
    if (!ex.stream) {
      sniffed = idleCut(sniffed, timer.idleMs, ex.runtime.schedule, () =>
        new GatewayError(
          "upstream_timeout",
          `Provider "${provider}" sent nothing for ${timer.idleMs} ms`,
          { provider },
        ));
    } else if (streamIdleMs !== undefined) {
      sniffed = idleCut(
        sniffed,
        streamIdleMs,
        ex.runtime.schedule,
        () => new StreamIdleTimeout(provider, streamIdleMs),
      );
    }
  }
  // Outermost, so the exchange's end sees the relayed failure (inside the idle cut, a plain
  // stream, it was lost: logged `complete`).
  if (
    sniffed !== null && ex.stream &&
    (native.frames !== undefined || native.streamFailure !== undefined)
  ) {
    sniffed = failingAtEnd(sniffed, () => reported);
  }
  // server.write_timeout, or the drain running out, ends the body (abruptly, so the client can
  // tell): the bytes are the provider's, there is no event of ours to put in them.
  const cut = streamCut(ex, ex.stream);
  const body = sniffed && cut ? endAt(sniffed, cut.signal, cut.onCut) : sniffed;
  // The usage read here is the answering attempt's.
  let last = -1;
  for (let i = attempts.length - 1; i >= 0 && last < 0; i--) {
    if ((attempts[i] as AttemptRecord).outcome === "ok") last = i;
  }
  // llm-proxy's reconciliation header: the upstream's own count of the prompt.
  const inputHeader = res.headers.get("x-llm-input-tokens");
  const reportedInput = inputHeader !== null && /^\d+$/.test(inputHeader)
    ? { reported_input_tokens: Number(inputHeader) }
    : {};
  const withUsage = last < 0
    ? attempts
    : attempts.map((a, i) => (i === last ? { ...a, ...reportedInput, usage: meter.usage } : a));
  return {
    response: new Response(body, { status: res.status, statusText: res.statusText, headers: out }),
    attempts: withUsage,
  };
}

/**
 * `body` as it is, ending as a relayed failure (outcome `error`, nothing added) when
 * `failure()` has one once the body is through.
 */
function failingAtEnd(
  body: ReadableStream<Uint8Array>,
  failure: () => GatewayError | null,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return relayStream(
    async () => {
      const next = await reader.read();
      const failed = next.done ? failure() : null;
      if (failed !== null) throw new RelayedFailure(failed);
      return next;
    },
    (reason) => reader.cancel(reason),
    body,
    [],
    failure,
  );
}

/**
 * `body`, errored (and its source cancelled) once a read waits `ms` for the upstream. The
 * timer runs only while the client is asking for more: a slow reader is not the upstream's
 * silence.
 */
function idleCut(
  body: ReadableStream<Uint8Array>,
  ms: number,
  schedule: Schedule,
  silence: () => GatewayError,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let disarm = noop;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      const silent = new Promise<never>((_, reject) => {
        disarm = schedule(ms, () => reject(silence()));
      });
      try {
        const next = await Promise.race([reader.read(), silent]);
        if (next.done) c.close();
        else c.enqueue(next.value);
      } catch (err) {
        reader.cancel(err).catch(() => {});
        c.error(err);
      } finally {
        disarm();
      }
    },
    cancel(reason) {
      disarm();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * An answer's body as bytes the key scrubbers can read, when a configured key was injected:
 * an upstream may compress although it was asked for identity (a CDN in front of it). gzip and
 * deflate are inflated (and `out` loses its Content-Encoding); an error body in a coding the
 * gateway cannot read is withheld rather than relayed unscanned.
 */
function scannable(res: Response, out: Headers): ReadableStream<Uint8Array> | null {
  const coding = res.headers.get("content-encoding")?.trim().toLowerCase() ?? "identity";
  if (res.body === null || coding === "identity" || coding === "") return res.body;
  if (coding === "gzip" || coding === "x-gzip" || coding === "deflate") {
    out.delete("content-encoding");
    return res.body.pipeThrough(new DecompressionStream(coding === "deflate" ? "deflate" : "gzip"));
  }
  if (res.ok) return res.body;
  res.body.cancel().catch(() => {});
  out.delete("content-encoding");
  out.set("content-type", "text/plain; charset=utf-8");
  return ReadableStream.from([
    new TextEncoder().encode(
      `The upstream's error body was withheld: its Content-Encoding (${coding}) cannot be checked for the gateway's key.`,
    ),
  ]);
}

/**
 * An error body read (up to `ERROR_BYTES`) for the gateway's keys, each replaced; a longer one
 * is relayed through the byte scrubber (`scrub`) as it comes.
 */
const ERROR_BYTES = 1024 * 1024;

async function withoutSecrets(
  body: ReadableStream<Uint8Array>,
  redact: Redactor,
  scrub: SecretScrub | null,
): Promise<ReadableStream<Uint8Array>> {
  const read = await wholeUpTo(body, ERROR_BYTES);
  if (!read.whole) return scrubStream(scrub, read.body);
  const bytes = new Uint8Array(await new Response(read.body).arrayBuffer());
  const text = new TextDecoder().decode(bytes);
  const out = redactJsonText(text, redact);
  // Untouched bytes stay the upstream's own (a body that is not UTF-8 is not re-encoded).
  return ReadableStream.from([out === text ? bytes : new TextEncoder().encode(out)]);
}

/**
 * `body` read to its end when that is within `max` bytes (`whole`); else a stream of what was
 * read so far followed by the rest, unchanged.
 */
async function wholeUpTo(
  body: ReadableStream<Uint8Array>,
  max: number,
): Promise<{ body: ReadableStream<Uint8Array>; whole: boolean }> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { body: ReadableStream.from(chunks), whole: true };
    chunks.push(value);
    size += value.byteLength;
    if (size > max) break;
  }
  let i = 0;
  const rest = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (i < chunks.length) return c.enqueue(chunks[i++] as Uint8Array);
      const { done, value } = await reader.read();
      if (done) c.close();
      else c.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return { body: rest, whole: false };
}

/** Bytes for the upstream from what a stage put in place of the body. */
function asBytes(
  body: unknown,
  previous: Uint8Array<ArrayBuffer> | null,
): Uint8Array<ArrayBuffer> | null {
  if (body === previous) return previous;
  if (body === null || body === undefined) return null;
  if (body instanceof Uint8Array) return new Uint8Array(body);
  return new TextEncoder().encode(typeof body === "string" ? body : JSON.stringify(body));
}

/**
 * What a body names itself: a JSON body's fields (`namesIn`), or a multipart form's `model`
 * field (OpenAI's audio, image and file uploads), so an app key's allowlist, the breaker key
 * and `x-pilotfish-model` see the model an upload asks for.
 */
async function namesOf(
  body: Uint8Array | null,
  headers: Headers,
): Promise<{ model?: string; user?: string }> {
  const type = headers.get("content-type") ?? "";
  if (body === null || !/^\s*multipart\/form-data\s*;/i.test(type)) return namesIn(body);
  let form: FormData;
  try {
    form = await new Response(body as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": type },
    })
      .formData();
  } catch {
    return {}; // not a form the runtime can read: nothing named (the upstream judges it)
  }
  const field = (name: string) => {
    const values = form.getAll(name);
    // Parsers differ on how a part may spell its name (`NAME="model"`, `name*=UTF-8''model`,
    // spaces around `=`): the runtime skips parts the provider's parser may read. Every part
    // header that could name it counts, so the gateway never decides on one value while the
    // provider reads another.
    if (Math.max(values.length, partsNaming(body, name)) > 1) {
      throw new GatewayError(
        "invalid_request",
        `The request body names "${name}" more than once; send it once`,
        { param: name },
      );
    }
    const v = values[0];
    return typeof v === "string" && v !== "" ? v : undefined;
  };
  const model = field("model");
  const user = field("user");
  return { ...(model ? { model } : {}), ...(user ? { user } : {}) };
}

/**
 * Part headers in a multipart body that may name the field `name`, however spelled (any
 * case, `name*=` with a charset, quoted or not, spaces around `=`). Read as Latin-1 so the
 * bytes of a file part cannot fail the decoding.
 */
function partsNaming(body: Uint8Array, name: string): number {
  const text = LATIN1.decode(body);
  const re = new RegExp(
    `^content-disposition[ \\t]*:[^\\r\\n]*;[ \\t]*name\\*?[ \\t]*=[ \\t]*` +
      `(?:"${name}"|${name}(?=[ \\t;\\r]|$)|[^'\\r\\n;]*'[^'\\r\\n;]*'${name}(?=[ \\t;\\r]|$))`,
    "gim",
  );
  let n = 0;
  while (re.exec(text) !== null) n++;
  return n;
}

const LATIN1 = new TextDecoder("latin1");

/**
 * What a JSON body names itself, in one parse: its `model` (OpenAI and Anthropic bodies have
 * one) and its user (OpenAI's `user`, Anthropic's `metadata.user_id`, for the usage rollups).
 * A body naming one of them twice is refused (400): the gateway would decide on the last value
 * (allowlist, price, breaker key) and an upstream may read the first.
 */
function namesIn(body: Uint8Array | null): { model?: string; user?: string } {
  if (body === null || body.byteLength === 0) return {};
  let json: { model?: unknown; user?: unknown; metadata?: { user_id?: unknown } | null };
  let raw: string;
  try {
    raw = new TextDecoder().decode(body);
    json = JSON.parse(raw);
  } catch {
    return {}; // not JSON: the breaker keys on the bare provider
  }
  if (json === null || typeof json !== "object") return {};
  const twice = duplicateKey(raw, NAMED_KEYS);
  if (twice !== null) {
    throw new GatewayError(
      "invalid_request",
      `The request body names "${twice}" more than once; send it once`,
      { param: twice },
    );
  }
  const text = (v: unknown) => typeof v === "string" && v !== "" ? v : undefined;
  const model = text(json.model);
  const user = text(json.user) ??
    (json.metadata !== null && typeof json.metadata === "object"
      ? text(json.metadata.user_id)
      : undefined);
  return { ...(model ? { model } : {}), ...(user ? { user } : {}) };
}

/** The top-level keys the gateway decides on, in a relayed body it reads. */
const NAMED_KEYS: ReadonlySet<string> = new Set(["model", "user", "metadata", "stream"]);

/**
 * The first of `names` that `text` (a JSON object that parsed) has twice at its top level, or
 * null. Names compare case-insensitively: Go's encoding/json (Ollama) matches `MODEL` to
 * `model`. Most bodies are settled by a count of the quoted names; one with `\u` escapes (a key
 * can be spelt `"mod\u0065l"`) or a name seen twice is walked string by string.
 */
export function duplicateKey(text: string, names: ReadonlySet<string>): string | null {
  let suspect = text.includes("\\u");
  for (const name of names) {
    if (suspect) break;
    suspect = (text.match(quotedName(name))?.length ?? 0) > 1;
  }
  if (!suspect) return null;
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x22) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      if (depth === 1) {
        let k = j + 1;
        while (/\s/.test(text[k] ?? "")) k++;
        if (text[k] === ":") {
          const name = (JSON.parse(text.slice(i, j + 1)) as string).toLowerCase();
          if (names.has(name)) {
            if (seen.has(name)) return name;
            seen.add(name);
          }
        }
      }
      i = j;
    }
  }
  return null;
}

const QUOTED_NAMES = new Map<string, RegExp>();
/** `"name"` in any case, as a global regex (one per name, made once). */
function quotedName(name: string): RegExp {
  let re = QUOTED_NAMES.get(name);
  if (re === undefined) QUOTED_NAMES.set(name, re = new RegExp(`"${name}"`, "gi"));
  return re;
}

const userOf = (named: { user?: string }) => named.user ? { user: named.user } : {};
const noop = () => {};

function providerNamed(
  config: Config,
  adapters: ReadonlyMap<string, ProviderAdapter>,
  name: string,
): { provider: ProviderConfig; adapter: ProviderAdapter; native: NativeApi } {
  // Own keys only: `/native/constructor/...` must not find Object.prototype's members.
  const p = Object.hasOwn(config.providers, name) ? config.providers[name] : undefined;
  const adapter = p ? adapters.get(p.name) : undefined;
  if (!p || !adapter?.native) {
    throw new GatewayError(
      "not_found",
      `Unknown provider "${name}" (configured: ${listNative(config, adapters)})`,
    );
  }
  return { provider: p, adapter, native: adapter.native };
}

/** The provider named like the family, else the only provider of that type. */
function providerOfFamily(
  config: Config,
  adapters: ReadonlyMap<string, ProviderAdapter>,
  family: NativeFamily,
): { provider: ProviderConfig; adapter: ProviderAdapter; native: NativeApi } {
  const name = family.prefix.slice(1);
  const named = config.providers[name];
  const ofType = named && named.type === family.type
    ? [named]
    : Object.values(config.providers).filter((p) => p.type === family.type);
  const only = ofType.length === 1 ? ofType[0] as ProviderConfig : undefined;
  const adapter = only ? adapters.get(only.name) : undefined;
  if (only && adapter?.native) return { provider: only, adapter, native: adapter.native };
  const envKey = PROVIDER_PRESETS[name]?.env_key;
  throw new GatewayError(
    "not_found",
    ofType.length <= 1
      ? `No ${name} provider is configured for ${family.prefix}/* (providers with a native API: ${
        listNative(config, adapters)
      })${
        // The env var enables a provider on the embedded default only; a file names it.
        envKey && isEmbeddedDefault(config)
          ? `; set ${envKey} or configure providers.${name}`
          : `; configure providers.${name}`}`
      : `Several ${name} providers are configured; use /native/{provider}/\u2026 (${
        ofType.map((p) => p.name).join(", ")
      })`,
  );
}

/** The providers that have a native API. */
function listNative(config: Config, adapters: ReadonlyMap<string, ProviderAdapter>): string {
  return Object.values(config.providers).filter((p) => adapters.get(p.name)?.native)
    .map((p) => p.name).join(", ") || "none";
}

/**
 * The client's headers minus hop-by-hop and Pilotfish ones, any `pf_` app key (whatever
 * header carries it) and empty credentials; with `inject`, minus every credential header and
 * the cookies too (the caller sets the configured key). Configured `headers` fill in what the client left out.
 */
function forwardHeaders(incoming: Headers, provider: ProviderConfig, inject: boolean): Headers {
  // The exchange's headers (a pre_http stage may have replaced them).
  const out = new Headers();
  const hop = hopByHop(incoming);
  // Headers the client signed (SigV4) travel untouched, llm-proxy's switches among them (read
  // all the same): dropping one would break the signature. Not when a key replaces it.
  const signed = inject
    ? []
    : /SignedHeaders=([^,\s]+)/.exec(incoming.get("authorization") ?? "")?.[1]?.split(";") ?? [];
  incoming.forEach((value, name) => {
    if (hop.has(name) || isPfKey(value) || holdsPfKey(value)) return;
    if (isInternal(name) && !signed.includes(name)) return;
    if (CREDENTIAL_HEADERS.includes(name) && (inject || isEmptyCredential(value))) return;
    // A cookie is the client's session, a credential too: not beside the gateway's key.
    if (inject && name === "cookie") return;
    out.append(name, value);
  });
  // Identity keeps bytes identical end to end (fetch would otherwise decompress) - unless
  // the client signed its own Accept-Encoding (SigV4), which must then travel untouched.
  if (!signed.includes("accept-encoding")) out.set("accept-encoding", "identity");
  for (const [name, value] of Object.entries(provider.headers)) {
    if (!out.has(name)) out.set(name, value);
  }
  return out;
}

/** `POST .../responses`: a native response created (or continued) upstream. */
const RESPONSES_CREATE = /^\/(?:v1\/)?responses\/?$/;
/** `.../responses/{id}` and what hangs under it (`/input_items`, `/cancel`). */
const RESPONSES_ID = /^\/(?:v1\/)?responses\/([^/?#]+)/;

/**
 * The native responses a request names (in its path, or a creation's `previous_response_id`
 * and `item_reference`s) must be this caller's: the app key that created each through the
 * gateway, or (an id no key claimed) a caller without one. Another's reads as unknown.
 */
async function ownResponses(
  ex: Exchange,
  method: string,
  rest: string,
  body: Uint8Array | null,
): Promise<void> {
  const inPath = RESPONSES_ID.exec(rest)?.[1];
  if (inPath !== undefined) {
    let id = inPath;
    try {
      id = decodeURIComponent(inPath);
    } catch { /* as sent */ }
    if (!await mayRelay(ex, id)) throw notFound(id);
    return;
  }
  if (method !== "POST" || !RESPONSES_CREATE.test(rest) || body === null) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(body));
  } catch {
    return; // not JSON: the provider refuses it
  }
  if (!isRecord(parsed)) return;
  const previous = parsed.previous_response_id;
  if (typeof previous === "string" && !await mayRelay(ex, previous)) {
    throw new GatewayError(
      "invalid_request",
      `Previous response with id '${previous}' not found.`,
      { param: "previous_response_id", upstreamCode: "previous_response_not_found" },
    );
  }
  if (!Array.isArray(parsed.input)) return;
  for (const item of parsed.input) {
    if (isRecord(item) && item.type === "item_reference" && typeof item.id === "string") {
      if (!await mayRelay(ex, item.id)) {
        throw new GatewayError(
          "invalid_request",
          "An item_reference names an item that is not found.",
          { param: "input" },
        );
      }
    }
  }
}

/**
 * Claims for the caller's app key the ids of a native response it creates with the gateway's
 * key: the response's and its output items' (a JSON answer, or a stream's `response.created`
 * and `response.output_item.added` events). Without an app key there is nothing to claim.
 */
function claimer(ex: Exchange): ((value: unknown) => void) | undefined {
  if (ex.principal.appKey === undefined) return undefined;
  const claim = (id: unknown) => {
    if (typeof id === "string" && id !== "") claimNative(ex, id);
  };
  return (value) => {
    if (!isRecord(value)) return;
    if (value.object === "response") {
      claim(value.id);
      if (Array.isArray(value.output)) {
        for (const o of value.output) if (isRecord(o)) claim(o.id);
      }
    } else if (value.type === "response.created" && isRecord(value.response)) {
      claim(value.response.id);
    } else if (value.type === "response.output_item.added" && isRecord(value.item)) {
      claim(value.item.id);
    }
  };
}
