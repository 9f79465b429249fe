/**
 * The stage chain: Butter's plugin hooks, the public face of the pipeline. Ordered stages
 * with `pre_http`, `pre_llm`, `post_llm`, `post_http`, `stream_chunk` and an observe-only
 * `trace` (an event subscriber). A pre hook may continue, rewrite, answer (short-circuit)
 * or reject; post hooks run in reverse order and only for stages whose pre hook ran. A hook
 * that throws or overruns its time budget follows the stage's `fail_mode`: `open` skips it
 * (a warning in the log), `closed` fails the request with a 500 `stage_failed` in the
 * route's own format. Built per config generation (see `buildRuntime`).
 * @module
 */
import { GatewayError } from "../errors.ts";
import { scheduleDeadline } from "../providers/deadline.ts";
import { withinWrite } from "../server/middleware/timeouts.ts";
import type { ChatChunk, ChatOutcome } from "../providers/types.ts";
import type { OpenAIChatRequest, OpenAIEmbeddingsRequest } from "../schema/openai.ts";
import type { EventType, TelemetryEvent } from "./events.ts";
import type { Exchange, InboundSchema } from "./exchange.ts";

export type FailMode = "open" | "closed";

/** What `pre_http` sees: the request as it arrived (unified routes: the JSON body parsed). */
export interface HttpRequestView {
  readonly method: string;
  readonly path: string;
  /** A copy: change it and return `{ action: "rewrite", headers }`. */
  readonly headers: Headers;
  /** The JSON body (unified routes) or the raw bytes (passthrough; null without a body). */
  readonly body: unknown;
}

/** What `pre_llm` sees: the request about to go to providers, in canonical form. */
export type LlmRequestView =
  | {
    readonly schema: "openai_chat" | "anthropic_messages" | "responses";
    readonly body: OpenAIChatRequest;
    /**
     * False when the body leaves out something of the client's request that can change the
     * answer (an Anthropic-only feature relayed as is): fine for counting, not for a key.
     */
    readonly exact?: boolean;
  }
  | { readonly schema: "embeddings"; readonly body: OpenAIEmbeddingsRequest }
  | { readonly schema: "passthrough"; readonly body: Uint8Array | null };

/** What `post_llm` sees: the provider's answer (a stream's body goes to `stream_chunk`). */
export type LlmResponseView =
  | {
    readonly stream: false;
    readonly status: number;
    /** Canonical (OpenAI-shaped); absent on passthrough, whose bytes are the provider's. */
    readonly body?: Record<string, unknown>;
    /**
     * For a stage with `post_llm_body: "text"`, instead of `body`: the answer's OpenAI JSON
     * text as the provider sent it (and as the route sends it on), when it came as such
     * and no later stage rewrote it. Not checked beyond its outer braces.
     */
    readonly text?: string;
  }
  | { readonly stream: true; readonly status: number };

/** What `post_http` sees: the response about to be sent; its headers may be changed. */
export interface HttpResponseView {
  readonly status: number;
  readonly headers: Headers;
}

/** Answer the request here: nothing goes upstream. A streaming request gets this body too. */
export interface Respond {
  readonly action: "respond";
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * `pre_llm` on a unified route: an answer shaped like a provider's (a canonical
   * `chat.completion`, or typed chunks for a streaming client), encoded by the route like an
   * upstream answer (the client's format, SSE when it streams). `body` is then unused.
   */
  readonly outcome?: ChatOutcome;
}

/** Refuse the request: rendered in the route's own error format. */
export interface Reject {
  readonly action: "reject";
  readonly status: number;
  readonly message: string;
}

export type Continue = void | undefined | { readonly action: "continue" };

export type PreHttpResult =
  | Continue
  | Respond
  | Reject
  | { readonly action: "rewrite"; readonly headers?: Headers; readonly body?: unknown };

export type PreLlmResult =
  | Continue
  | Respond
  | Reject
  | { readonly action: "rewrite"; readonly body: unknown };

export type PostLlmResult = void | undefined | {
  readonly action: "rewrite";
  readonly body: Record<string, unknown>;
};

export type MaybePromise<T> = T | Promise<T>;

export interface Stage {
  readonly name: string;
  readonly fail_mode: FailMode;
  /** Budget of one hook call, ms. */
  readonly timeout_ms: number;
  /**
   * The hook keeps `timeout_ms` itself, over its own run only (a WASM plugin: the guest's
   * time, not its wait for a free instance, which the request's deadline bounds). The
   * chain then does not time it.
   */
  readonly self_timed?: boolean;
  /** Inbound schemas this stage applies to; every one when absent. */
  readonly schemas?: readonly InboundSchema[];
  pre_http?(ex: Exchange, req: HttpRequestView): MaybePromise<PreHttpResult>;
  pre_llm?(ex: Exchange, req: LlmRequestView): MaybePromise<PreLlmResult>;
  post_llm?(ex: Exchange, res: LlmResponseView): MaybePromise<PostLlmResult>;
  /**
   * `false`: `post_llm` needs no body (a buffered answer is then not decoded for it, and the
   * same-schema fast path stays byte for byte). `"text"`: the OpenAI JSON text when the
   * answer is that (`text`, not decoded for it), else the canonical `body`. Default true.
   */
  readonly post_llm_body?: boolean | "text";
  post_http?(ex: Exchange, res: HttpResponseView): MaybePromise<void>;
  /** A typed chunk on its way out: return a replacement, null to drop it, nothing to keep it. */
  stream_chunk?(ex: Exchange, chunk: ChatChunk): MaybePromise<ChatChunk | null | void>;
  /**
   * Whether `stream_chunk` wants this exchange's chunks (every one's when absent). A stream
   * no stage wants is not decoded: a same-schema answer stays the upstream's bytes.
   */
  wants_chunks?(ex: Exchange): boolean;
  /** Observe-only: telemetry events (of `trace_events`, or all). */
  trace?(event: TelemetryEvent): void;
  readonly trace_events?: readonly EventType[];
  /** Release what the stage holds when its config generation retires. */
  dispose?(): void | Promise<void>;
  /** Settles once the stage can serve (e.g. plugin instances started); a rejection refuses the generation. */
  readonly ready?: Promise<void>;
  /** Where the config declares it (`wasm_plugins[0].path ("guard")`), for a `ready` failure. */
  readonly configPath?: string;
}

type HookName = "pre_http" | "pre_llm" | "post_llm" | "post_http" | "stream_chunk";

/** The stages that have each hook, in order: an empty list costs nothing per request. */
export interface StageChain {
  readonly all: readonly Stage[];
  readonly pre_http: readonly Stage[];
  readonly pre_llm: readonly Stage[];
  readonly post_llm: readonly Stage[];
  readonly post_http: readonly Stage[];
  readonly stream_chunk: readonly Stage[];
}

export function createStageChain(stages: readonly Stage[]): StageChain {
  const having = (hook: HookName) => stages.filter((s) => typeof s[hook] === "function");
  return {
    all: stages,
    pre_http: having("pre_http"),
    pre_llm: having("pre_llm"),
    post_llm: having("post_llm"),
    post_http: having("post_http"),
    stream_chunk: having("stream_chunk"),
  };
}

/** The stages of `list` that apply to this exchange's schema. */
export function applicable(list: readonly Stage[], ex: Exchange): readonly Stage[] {
  if (list.length === 0) return list;
  const schema = ex.schema;
  // Filtered once per list and schema (a chain's lists live as long as its generation).
  let bySchema = APPLICABLE.get(list);
  if (bySchema === undefined) APPLICABLE.set(list, bySchema = new Map());
  let mine = bySchema.get(schema);
  if (mine === undefined) {
    const kept = list.filter((s) => !s.schemas || (schema !== null && s.schemas.includes(schema)));
    bySchema.set(schema, mine = kept.length === list.length ? list : kept);
  }
  return mine;
}

const APPLICABLE = new WeakMap<readonly Stage[], Map<InboundSchema | null, readonly Stage[]>>();

/** The `stream_chunk` stages that apply to this exchange and want its chunks. */
export function chunkStagesFor(ex: Exchange): readonly Stage[] {
  const list = applicable(ex.runtime.stages.stream_chunk, ex);
  return list.some((s) => s.wants_chunks !== undefined)
    ? list.filter((s) => s.wants_chunks === undefined || s.wants_chunks(ex))
    : list;
}

/** Schedules `fire` after `ms`; returns the cancel. Injectable (tests drive it by hand). */
export type Schedule = (ms: number, fire: () => void) => () => void;

/**
 * Real timers on the shared coarse slots (src/providers/deadline.ts): every asynchronous hook
 * call and stream gate arms one, and a `setTimeout` each was a measurable share of the CPU;
 * budgets are hundreds of ms or more, so firing up to 25 ms late is fine.
 */
export const realSchedule: Schedule = scheduleDeadline;

/** A stage that failed in `fail_mode: open`: its hook is skipped. */
export const SKIPPED: unique symbol = Symbol("skipped");

/** Each hook's argument and answer. */
interface HookTypes {
  pre_http: [HttpRequestView, PreHttpResult];
  pre_llm: [LlmRequestView, PreLlmResult];
  post_llm: [LlmResponseView, PostLlmResult];
  post_http: [HttpResponseView, void];
  stream_chunk: [ChatChunk, ChatChunk | null | void];
}

/**
 * Run one hook of one stage under its budget. A synchronous hook is timed by the clock
 * (it cannot be interrupted, but overrunning still counts) and answered synchronously, so a
 * chain of synchronous stages adds no promise per hook; an asynchronous one races the
 * stage's timer. Failure: `open` -> `SKIPPED` (and a warning), `closed` -> a thrown 500.
 * The hook is called as a method (no closure per call: this runs per stage per request).
 */
export function callHook<H extends HookName>(
  ex: Exchange,
  stage: Stage,
  hook: H,
  arg: HookTypes[H][0],
): HookTypes[H][1] | typeof SKIPPED | Promise<HookTypes[H][1] | typeof SKIPPED> {
  const fn = stage[hook] as unknown as (
    this: Stage,
    ex: Exchange,
    arg: HookTypes[H][0],
  ) => MaybePromise<HookTypes[H][1]>;
  // A self-timed stage (a WASM plugin) bounds its own run: no clock read for it.
  const started = stage.self_timed ? 0 : ex.clock.now();
  let value: MaybePromise<HookTypes[H][1]>;
  try {
    value = fn.call(stage, ex, arg);
    if (!(value instanceof Promise)) {
      if (!stage.self_timed && ex.clock.now() - started > stage.timeout_ms) {
        throw new StageTimeout();
      }
      return value;
    }
  } catch (err) {
    return stageFailed(ex, stage, hook, err);
  }
  return stage.self_timed ? settle(ex, stage, hook, value) : raceBudget(ex, stage, hook, value);
}

async function settle<T>(
  ex: Exchange,
  stage: Stage,
  hook: HookName,
  value: Promise<T>,
): Promise<T | typeof SKIPPED> {
  try {
    return await value;
  } catch (err) {
    return stageFailed(ex, stage, hook, err);
  }
}

async function raceBudget<T>(
  ex: Exchange,
  stage: Stage,
  hook: HookName,
  value: Promise<T>,
): Promise<T | typeof SKIPPED> {
  let cancel = () => {};
  const timeout = new Promise<never>((_, reject) => {
    cancel = ex.runtime.schedule(stage.timeout_ms, () => reject(new StageTimeout()));
  });
  try {
    return await Promise.race([value, timeout]);
  } catch (err) {
    return stageFailed(ex, stage, hook, err);
  } finally {
    cancel();
    timeout.catch(() => {});
    value.catch(() => {});
  }
}

class StageTimeout extends Error {
  override readonly name = "StageTimeout";
}

/**
 * An answer a hook throws that is the request's, not the stage's failure (a body too large
 * for a plugin to see, a deadline that passed while it waited its turn): `fail_mode` does
 * not apply, since skipping the stage would let anyone get past it by making it happen.
 */
export class StageRefusal extends GatewayError {}

/**
 * What is left of the request's own deadline, ms (`x-gateway.timeout`, else
 * `routing.failover.deadline`, counted from its arrival; `server.write_timeout` when sooner).
 */
export function requestTimeLeft(ex: Exchange): number {
  const timeout = ex.gateway.timeout;
  const left =
    (timeout !== undefined ? timeout * 1000 : ex.runtime.config.routing.failover.deadline) -
    (ex.clock.now() - ex.started);
  return left <= 0 ? left : withinWrite(ex.deadlines, left);
}

function stageFailed(ex: Exchange, stage: Stage, hook: string, err: unknown): typeof SKIPPED {
  if (err instanceof StageRefusal) throw err;
  const rt = ex.runtime;
  const timedOut = err instanceof StageTimeout;
  if (rt.events.on.stage_error) {
    rt.events.emit({
      type: "stage_error",
      exchange: ex,
      stage: stage.name,
      hook,
      fail_mode: stage.fail_mode,
      timed_out: timedOut,
      error: err,
    });
  }
  const why = timedOut
    ? `did not finish ${hook} within ${stage.timeout_ms} ms`
    : `failed in ${hook}: ${rt.redact(err instanceof Error ? err.message : String(err))}`;
  if (stage.fail_mode === "open") {
    rt.logger.warn("stage skipped (fail_mode open)", {
      request_id: ex.id,
      stage: stage.name,
      hook,
      reason: why,
    });
    return SKIPPED;
  }
  throw new GatewayError("stage_failed", `Stage "${stage.name}" ${why}`, { cause: err });
}

/** A stage's refusal as the error the route renders (status kept, code by status). */
export function rejection(stage: Stage, r: Reject): GatewayError {
  const status = Number.isInteger(r.status) && r.status >= 400 && r.status <= 599 ? r.status : 400;
  const code = status === 401
    ? "unauthenticated"
    : status === 403
    ? "forbidden"
    : status === 404
    ? "not_found"
    : status === 429
    ? "rate_limited"
    : status >= 500
    ? "unavailable"
    : "invalid_request";
  return new GatewayError(code, r.message || `Rejected by stage "${stage.name}"`, { status });
}

/** Run `stream_chunk` of `stages` over typed chunks (in order; null drops a chunk). */
export function chunkStages(
  ex: Exchange,
  stages: readonly Stage[],
): TransformStream<ChatChunk, ChatChunk> {
  return new TransformStream<ChatChunk, ChatChunk>({
    async transform(chunk, controller) {
      let current: ChatChunk | null = chunk;
      for (const stage of stages) {
        if (current === null) return;
        const input: ChatChunk = current;
        const pending = callHook(ex, stage, "stream_chunk", input);
        const out = pending instanceof Promise ? await pending : pending;
        if (out === SKIPPED || out === undefined) continue;
        current = out;
      }
      if (current !== null) controller.enqueue(current);
    },
  });
}
