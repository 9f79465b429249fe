/**
 * A WASM plugin as a stage: each hook the guest exports (and `hooks` allows) becomes the
 * stage's hook, called through the plugin's pool with Butter's JSON; the answer maps onto
 * the stage chain's outcomes. A call that fails (trap, non-zero status, timeout, output that
 * breaks the ABI) is thrown, so the chain applies the plugin's `fail_mode`.
 * @module
 */
import type { WasmPluginConfig } from "../config/schema.ts";
import type { ChatChunk } from "../providers/types.ts";
import type { Exchange } from "../pipeline/exchange.ts";
import {
  type HttpRequestView,
  type HttpResponseView,
  type LlmRequestView,
  type LlmResponseView,
  type PostLlmResult,
  type PreHttpResult,
  type PreLlmResult,
  type Reject,
  requestTimeLeft,
  type Respond,
  type Stage,
  StageRefusal,
} from "../pipeline/stages.ts";
import {
  AbiError,
  ALL_INPUT,
  answerProblem,
  chunkProblem,
  decodeOutput,
  encodeInput,
  errorMessage,
  headerMap,
  type HookInput,
  type HookOutput,
  type InputFields,
  type ShortCircuitBody,
  shortCircuitBody,
} from "./abi.ts";
import { redactJsonText, type Redactor } from "../telemetry/mod.ts";
import type { HookName } from "./binary.ts";
import { type CallResult, PluginBusy, type PluginPool, PluginTimeout } from "./pool.ts";
import { HeldSlot } from "../slot.ts";
import { isObject } from "../schema/openai.ts";

export function wasmStage(
  cfg: WasmPluginConfig,
  hooks: ReadonlySet<HookName>,
  pool: PluginPool,
  maxInput: number = Infinity,
  configPath?: string,
  /** Resolves once it can serve (default: the pool's `ready`). */
  ready: Promise<void> = pool.ready,
  /** The configured provider keys: an answer that echoes one shows the guest none. */
  providerKeys: readonly string[] = [],
  /** The optional input fields the guest reads (`INPUT_FIELDS`), once it has said. */
  fields: Promise<InputFields> = Promise.resolve(ALL_INPUT),
): Stage {
  // Every field until the guest has said (it says before the generation serves).
  let wants = ALL_INPUT;
  fields.then((f) => wants = f, () => {});
  // The top-level key, or (issue 12's wording, "unless the plugin's config opts in") the
  // same key in its `config` map.
  const expose = cfg.expose_credentials || cfg.config.expose_credentials === "true";
  // Per exchange, the response headers this plugin asked for (added at its `post_http`, so a
  // refused one is this plugin's error, under its own fail_mode).
  const added = new HeldSlot<Record<string, string>>("pluginHeaders");
  const addHeaders = (ex: Exchange, res: HttpResponseView) => addResponseHeaders(added, ex, res);

  // A provider's answer (post_llm, stream_chunk) may echo the key it was called with.
  const keys = expose ? [] : providerKeys.filter((k) => k.length >= 8);
  const scrub = keys.length === 0 ? undefined : (json: string) => {
    let out = json;
    for (const k of keys) if (out.includes(k)) out = out.replaceAll(k, "[REDACTED]");
    return out;
  };
  const call = async (ex: Exchange, input: HookInput): Promise<HookOutput> => {
    const answer = input.hook === "post_llm" || input.hook === "stream_chunk";
    const bytes = encodeInput(input, answer ? scrub : undefined);
    if (bytes.length > maxInput) throw tooLarge(cfg.name, input.hook, bytes.length, maxInput);
    // Waiting for a free instance is bounded by the request's own deadline, not by the
    // plugin's timeout (which bounds the guest's run): a busy plugin is not a broken one. Only
    // before the upstream call: that deadline does not bound an answer already coming (a
    // stream may outlive it), and post hooks' waits are finite (calls queue in order, each
    // within its timeout).
    const pre = input.hook === "pre_http" || input.hook === "pre_llm";
    const left = pre ? requestTimeLeft(ex) : Infinity;
    if (left <= 0) throw deadlinePassed(cfg.name, "before it started");
    let result: CallResult;
    const until = performance.now() + left;
    try {
      result = await pool.call(input.hook, bytes, {
        timeoutMs: callTimeout(cfg.timeout, bytes.length),
        // The run is cut at the request's deadline too: past it no upstream call can start,
        // so the answer is the request's 504, not this guest's timeout under fail_mode.
        ...(pre ? { waitUntil: until, runUntil: until } : {}),
      });
    } catch (err) {
      if (err instanceof PluginBusy) throw deadlinePassed(cfg.name, "every instance busy");
      if (err instanceof PluginTimeout && performance.now() >= until) {
        throw deadlinePassed(cfg.name, "it was running");
      }
      throw err;
    }
    for (const log of result.logs) {
      const level = log.level === "error" ? "error" : log.level === "warn" ? "warn" : "info";
      ex.runtime.logger[level]("plugin log", {
        request_id: ex.id,
        plugin: cfg.name,
        hook: input.hook,
        message: ex.runtime.redact(log.message),
      });
    }
    if (result.kind === "error") throw new Error(result.message);
    if (result.kind === "none") return {};
    const out = decodeOutput(result.bytes, input.hook);
    if (out.metadata) Object.assign(ex.metadata, out.metadata);
    if (out.response_headers) {
      // A header another plugin asked for first keeps its value: this one's is dropped with
      // a warning, and the rest of the output (a block, a rewrite) stands.
      const taken = claim(ex, cfg.name, out.response_headers);
      if (taken !== null) {
        ex.runtime.logger.warn("plugin response header not set", {
          request_id: ex.id,
          plugin: cfg.name,
          hook: input.hook,
          reason: taken,
        });
      }
      added.set(ex, { ...added.get(ex), ...out.response_headers });
    }
    return out;
  };

  // The provider once routing chose one: in pre_llm, the first target (Butter calls pre_llm
  // right before the provider call); after the call, the one that answered.
  const common = (ex: Exchange) => ({
    ...providerOf(ex),
    ...(ex.model !== undefined ? { model: ex.model } : {}),
    ...(wants.headers ? { headers: requestHeaders(ex, expose) } : {}),
    ...(wants.metadata ? { metadata: ex.metadata } : {}),
  });

  const stage: {
    -readonly [K in keyof Stage]: Stage[K];
  } = {
    name: cfg.name,
    fail_mode: cfg.fail_mode,
    timeout_ms: cfg.timeout,
    // The pool stops a guest at `timeout` of its own run (pool.ts, runner.ts).
    self_timed: true,
    post_llm_body: hooks.has("post_llm"),
    dispose: () => pool.close(),
    ready,
    ...(configPath !== undefined ? { configPath } : {}),
    // Always present: headers a guest added on any hook go out here.
    post_http: hooks.has("post_http")
      ? async (ex: Exchange, res: HttpResponseView) => {
        await call(ex, {
          hook: "post_http",
          ...common(ex),
          status: res.status,
          ...(wants.headers ? { headers: headerMap(res.headers, expose, ex.runtime.redact) } : {}),
        });
        addHeaders(ex, res);
      }
      : addHeaders,
  };

  if (hooks.has("pre_http")) {
    stage.pre_http = async (ex: Exchange, req: HttpRequestView): Promise<PreHttpResult> => {
      const body = wants.body ? jsonOf(req.body) : undefined;
      if (body === UNREADABLE) return unreadable(cfg.name);
      const out = await call(ex, {
        hook: "pre_http",
        ...common(ex),
        ...(body !== undefined ? { body } : {}),
      });
      if (out.short_circuit) return shortCircuit(ex, cfg.name, out);
      if (out.body === undefined) return;
      // Passthrough routes carry bytes: a rewrite goes back as bytes.
      return {
        action: "rewrite",
        body: req.body instanceof Uint8Array
          ? new TextEncoder().encode(JSON.stringify(out.body))
          : out.body,
      };
    };
  }

  if (hooks.has("pre_llm")) {
    stage.pre_llm = async (ex: Exchange, req: LlmRequestView): Promise<PreLlmResult> => {
      let body = wants.body ? jsonOf(req.body) : undefined;
      if (body === UNREADABLE) return unreadable(cfg.name);
      // The model resolved: the first target's (an alias, `provider/model` or a routed name
      // become the model the provider is asked for), in `model` and the canonical body's
      // `model`; a guest that writes it back keeps the route.
      const target = ex.targets[0];
      if (
        target !== undefined && target.model !== "" && req.schema !== "passthrough" &&
        isObject(body)
      ) {
        body = { ...body, model: target.model };
      }
      const out = await call(ex, {
        hook: "pre_llm",
        ...common(ex),
        ...(target !== undefined && target.model !== "" ? { model: target.model } : {}),
        ...(body !== undefined ? { body } : {}),
      });
      if (out.short_circuit) return shortCircuit(ex, cfg.name, out);
      if (out.body === undefined) return;
      if (req.schema === "passthrough") {
        return { action: "rewrite", body: new TextEncoder().encode(JSON.stringify(out.body)) };
      }
      if (typeof out.body !== "object" || out.body === null || Array.isArray(out.body)) {
        throw new AbiError("pre_llm body is not a JSON object");
      }
      return { action: "rewrite", body: out.body };
    };
  }

  if (hooks.has("post_llm")) {
    stage.post_llm = async (ex: Exchange, res: LlmResponseView): Promise<PostLlmResult> => {
      const out = await call(ex, {
        hook: "post_llm",
        ...common(ex),
        status: res.status,
        ...(wants.body && !res.stream && res.body !== undefined ? { body: res.body } : {}),
      });
      if (out.body === undefined) return;
      if (res.stream || res.body === undefined) {
        throw new AbiError("post_llm body cannot replace a streamed or passthrough answer");
      }
      if (typeof out.body !== "object" || out.body === null || Array.isArray(out.body)) {
        throw new AbiError("post_llm body is not a JSON object");
      }
      const body = out.body as Record<string, unknown>;
      // The route encodes it like a provider's answer: a bad one is this plugin's error.
      const problem = answerProblem(body, ex.schema);
      if (problem !== null) throw new AbiError(`post_llm ${problem}`);
      return { action: "rewrite", body };
    };
  }

  if (hooks.has("stream_chunk")) {
    stage.stream_chunk = async (
      ex: Exchange,
      chunk: ChatChunk,
    ): Promise<ChatChunk | null | void> => {
      const out = await call(ex, {
        hook: "stream_chunk",
        ...providerOf(ex),
        ...(ex.model !== undefined ? { model: ex.model } : {}),
        ...(wants.metadata ? { metadata: ex.metadata } : {}),
        chunk,
      });
      if (out.drop || out.chunk === null) return null;
      if (out.chunk === undefined) return;
      // The route encodes it like the provider's chunk: a bad one is this plugin's error.
      const problem = chunkProblem(out.chunk);
      if (problem !== null) throw new AbiError(`stream_chunk ${problem}`);
      // What the guest left out of the chunk's identity is the original's.
      const { id, object, created, model } = chunk;
      return { id, object, created, model, ...out.chunk } as ChatChunk;
    };
  }
  return stage;
}

const MIB = 1024 * 1024;

/** The request's headers as plugins see them: one map per request for every hook and plugin. */
interface SeenHeaders {
  /** What they were built from: a `pre_http` rewrite replaces `ex.headers`. */
  readonly of: Headers;
  redacted?: Record<string, string>;
  exposed?: Record<string, string>;
}
const SEEN_HEADERS = new HeldSlot<SeenHeaders>("pluginRequestHeaders");

/** Shared between guests: the input is serialised, so no guest can change another's copy. */
function requestHeaders(ex: Exchange, expose: boolean): Record<string, string> {
  let seen = SEEN_HEADERS.get(ex);
  if (seen === undefined || seen.of !== ex.headers) {
    seen = { of: ex.headers };
    SEEN_HEADERS.set(ex, seen);
  }
  return expose
    ? seen.exposed ??= headerMap(ex.headers, true)
    : seen.redacted ??= headerMap(ex.headers, false, ex.runtime.redact);
}

/**
 * A call's timeout: `timeout` for an input up to 1 MiB, and as much again for every further
 * MiB. A plugin given any body the gateway accepts must have the time to read it: a 10 MB
 * prompt takes the injection guard 150-250 ms on an idle machine, so a flat 500 ms would skip
 * it under load (`fail_mode: open`). A runaway is still stopped, later on a larger input.
 */
export function callTimeout(timeoutMs: number, inputBytes: number): number {
  return inputBytes <= MIB ? timeoutMs : Math.ceil(timeoutMs * inputBytes / MIB);
}

/**
 * An input larger than the plugin may be given (`maxInputOf`). A request is refused (413)
 * whatever `fail_mode` says: skipping would let anyone get past a guard by padding the
 * prompt. An answer too large for a post hook (answers have no body limit: a big embeddings
 * list) is the plugin's failure, under its `fail_mode`.
 */
function tooLarge(name: string, hook: HookName, bytes: number, max: number): Error {
  const pre = hook === "pre_http" || hook === "pre_llm";
  const message = `${
    pre ? "The request" : "The answer"
  } is too large for plugin "${name}" (${bytes} bytes in ${hook}; its max_memory takes inputs up to ${max} bytes)`;
  return pre ? new StageRefusal("payload_too_large", message) : new AbiError(message);
}

function deadlinePassed(name: string, why = "every instance busy"): StageRefusal {
  return new StageRefusal(
    "upstream_timeout",
    `The request's deadline passed while it waited for plugin "${name}" (${why})`,
  );
}

/**
 * Which plugin asked first for each response header of an exchange, and its value (by
 * lowercase name): plugins' headers go on at each one's `post_http`, in reverse order, so
 * without this a later plugin's value would be on first and the earlier one blamed for it.
 */
const claims = new HeldSlot<Map<string, { plugin: string; value: string }>>("pluginHeaderClaims");

/**
 * Claim `headers` for `plugin`. One another plugin claimed before with another value is taken
 * out of `headers` (that plugin's value stands) and named in the text returned; null when
 * none was. The same value another plugin asked for stays that plugin's.
 */
function claim(ex: Exchange, plugin: string, headers: Record<string, string>): string | null {
  let held = claims.get(ex);
  if (held === undefined) claims.set(ex, held = new Map());
  const refused: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    const key = name.toLowerCase();
    const had = held.get(key);
    if (had === undefined || had.plugin === plugin) held.set(key, { plugin, value });
    else if (had.value !== value) {
      refused.push(`${name} (plugin "${had.plugin}" set it first)`);
      delete headers[name];
    }
  }
  return refused.length > 0
    ? `response_headers may not replace another plugin's ${refused.join(", ")}`
    : null;
}

/**
 * Plugins' headers onto the response. One the gateway already set (with another value) is
 * not overwritten: the others go on, and the refusal is the stage's error (per fail_mode).
 */
function addResponseHeaders(
  slot: HeldSlot<Record<string, string>>,
  ex: Exchange,
  res: HttpResponseView,
): void {
  const headers = slot.get(ex);
  if (headers === undefined) return;
  const refused: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    const there = res.headers.get(name);
    if (there !== null && there !== value) refused.push(name);
    else res.headers.set(name, value);
  }
  if (refused.length > 0) {
    throw new AbiError(`response_headers may not replace the gateway's ${refused.join(", ")}`);
  }
}

/** A passthrough body that opens as JSON but is not: see `jsonOf`. */
const UNREADABLE = Symbol("unreadable body");

/**
 * Bodies as JSON for the guest: passthrough bytes when they hold JSON, else nothing (an
 * upload, a form). Bytes that open as JSON (`{`, `[`) and are not (a byte after the
 * document, `NaN`, two documents) are `UNREADABLE`: an upstream may still read them (Python's
 * `json` takes NaN, Go's decoder stops after the first value), and a guest handed nothing
 * would let through what it could not see.
 */
function jsonOf(body: unknown): unknown {
  if (!(body instanceof Uint8Array)) return body ?? undefined;
  if (body.length === 0) return undefined;
  const text = new TextDecoder().decode(body);
  try {
    return JSON.parse(text);
  } catch {
    return /^[\s\uFEFF]*[[{]/.test(text) ? UNREADABLE : undefined;
  }
}

/** The 400 for an `UNREADABLE` body: refused, not passed unread. */
function unreadable(name: string): Reject {
  return {
    action: "reject",
    status: 400,
    message: `The request body is not valid JSON, and plugin "${name}" reads it`,
  };
}

/**
 * A guest's short-circuit as the route renders it. Status 0 or absent is Butter's 400. An
 * error status with a JSON body is sent as is on OpenAI-format routes (what Butter does),
 * and in the route's own error format elsewhere (the guest's message kept); with no body, or
 * plain text, every route answers its own error format, the text (or a message naming the
 * plugin) as its message. A success status sends the body: JSON as JSON, text as text/plain.
 */
function shortCircuit(ex: Exchange, name: string, out: HookOutput): Respond | Reject {
  const status = out.short_circuit_status ? out.short_circuit_status : 400;
  const given = shortCircuitBody(out.short_circuit_body);
  // An error body is redacted as every error body is; a success body is the guest's answer.
  const body = status >= 400 ? redactedBody(given, ex.runtime.redact) : given;
  const refused = `Request refused by plugin "${name}"`;
  if (status >= 400) {
    if (body.kind === "none") return { action: "reject", status, message: refused };
    if (body.kind === "text") return { action: "reject", status, message: body.value };
    const openaiShaped = ex.errorFormat === null || ex.errorFormat === "openai_json" ||
      ex.errorFormat === "plain";
    if (!openaiShaped) {
      return { action: "reject", status, message: errorMessage(body.value) ?? refused };
    }
    return { action: "respond", status, body: body.value };
  }
  if (body.kind === "text") {
    return {
      action: "respond",
      status,
      body: body.value,
      headers: { "content-type": "text/plain; charset=utf-8" },
    };
  }
  // A JSON string is sent as JSON (the route sends a string body as is).
  const value = body.kind === "json" ? body.value : {};
  return {
    action: "respond",
    status,
    body: typeof value === "string" ? JSON.stringify(value) : value,
  };
}

/**
 * A guest's error body: a configured key in it (from the plugin's config, or a credential it
 * was shown) is redacted, as in any error body.
 */
function redactedBody(body: ShortCircuitBody, redact: Redactor): ShortCircuitBody {
  if (body.kind === "text") return { kind: "text", value: redact(body.value) };
  if (body.kind !== "json") return body;
  const text = JSON.stringify(body.value);
  const clean = redactJsonText(text, redact);
  return clean === text ? body : { kind: "json", value: JSON.parse(clean) };
}

/** `{provider}` as plugins see it: the answering provider, else the routed first target. */
function providerOf(ex: Exchange): { provider?: string } {
  const provider = ex.provider ?? ex.targets[0]?.provider;
  return provider !== undefined ? { provider } : {};
}
