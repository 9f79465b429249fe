/**
 * The access log, as the first built-in stage: one line per request, written when the
 * exchange ends (`request_end`: for a stream when the last byte went out, the client left,
 * or the upstream failed, with `outcome` saying which).
 * @module
 */
import type { Usage } from "../../providers/types.ts";
import { type AttemptRecord, MAX_MODEL_CHARS } from "../../routing/mod.ts";
import type { CapturedBody, Logger } from "../../telemetry/mod.ts";
import type { EventOf, TelemetryEvent } from "../events.ts";
import type { Stage } from "../stages.ts";
import { usageNow } from "../../streaming/usage.ts";
import { type Exchange, upstreamRequestId } from "../exchange.ts";

export interface RequestLogOptions {
  /** Log `cost_usd` (llm-proxy's `features.cost_tracking.enabled`); default true. */
  readonly cost?: boolean;
  /** Log the app key's id as `app_key` (Butter's `plugins.requestlog.log_app_key`); never the key. */
  readonly appKey?: boolean;
  /** The level of a line that is not an error (Butter's `plugins.requestlog.level`); info. */
  readonly level?: "debug" | "info" | "warn" | "error";
}

export function requestLogStage(logger: Logger, opts: RequestLogOptions = {}): Stage {
  const fields = {
    cost: opts.cost ?? true,
    appKey: opts.appKey ?? false,
    level: opts.level ?? "info",
  } as const;
  return {
    name: "request_log",
    fail_mode: "open",
    timeout_ms: 1_000,
    trace_events: ["request_end"],
    trace(event: TelemetryEvent) {
      if (event.type === "request_end") writeLine(logger, event, fields);
    },
  };
}

/** How many attempts used tokens (an answer, or part of one). */
function usedBy(attempts: readonly AttemptRecord[]): number {
  let n = 0;
  for (const a of attempts) if (usageNow(a.usage)) n++;
  return n;
}

function writeLine(
  logger: Logger,
  event: EventOf<"request_end">,
  fields: {
    readonly cost: boolean;
    readonly appKey: boolean;
    readonly level: "debug" | "info" | "warn" | "error";
  },
): void {
  const ex = event.exchange;
  const res = ex.response;
  if (res === null) return;
  const deferred = ex.deferEnd;
  const failed = res.outcome === "error" || res.outcome === "upstream_cut" ||
    res.outcome === "idle_timeout";
  // A stream that did not complete is an error line, whatever status it began with.
  const level = event.status >= 500 || (deferred && failed) ? "error" : fields.level;
  if (!logger.enabled(level)) return;
  // The winner's tokens; when it is the only attempt that used any (a failed attempt used
  // none, unless an embeddings fan-out had calls answered before one failed), as billed by
  // the meter (subscribed first), which fills in an estimated prompt. `cost_usd` covers every
  // attempt (a hedge loser's too).
  const usage = ex.billedUsage !== null && usedBy(ex.attempts) === 1 ? ex.billedUsage : event.usage;
  const line: Record<string, unknown> = {
    request_id: ex.id,
    method: ex.method,
    route: ex.route,
    path: ex.path,
    status: event.status,
    provider: ex.provider ?? null,
    // Client text: a name too long to serve (400) is cut here too.
    model: ex.model === undefined ? null : ex.model.slice(0, MAX_MODEL_CHARS),
    ...upstreamId(ex),
    stream: ex.stream,
    ...(usage ? tokenFields(usage) : {}),
    ...(fields.appKey && ex.principal.appKey !== undefined ? { app_key: ex.principal.appKey } : {}),
    ...(fields.cost && ex.cost !== null ? { cost_usd: ex.cost } : {}),
    ...(ex.costEstimated ? { usage_estimated: true } : {}),
    ...(ex.cacheStatus !== null ? { cache: ex.cacheStatus } : {}),
    // The common case (one clean attempt) adds nothing to the line.
    ...(ex.attempts.length > 1 || (ex.attempts[0] !== undefined && ex.attempts[0].outcome !== "ok")
      ? { attempts: ex.attempts.map(logged) }
      : {}),
    // server.read_timeout/write_timeout cut the request (see middleware/timeouts.ts).
    ...(ex.timedOut ? { reason: ex.timedOut } : {}),
    duration_ms: round(event.duration_ms),
    bytes: res.bytes,
    ...(hasKeys(ex.metadata) ? { metadata: ex.metadata } : {}),
    ...requestMetadata(ex.gateway.metadata),
  };
  if (deferred || res.outcome !== "complete") {
    line.outcome = res.outcome;
    if (res.error !== undefined && failed) line.error = describe(res.error);
  } else if (res.handlerError !== undefined) {
    line.error = res.handlerError;
  }
  const captured = ex.captured;
  if (captured === null) {
    logger[level]("request", line);
    return;
  }
  // Awaited only when the line is written; by then the route has read the body - unless a
  // timeout cut the request: the copy may then wait on a client that never finishes, so it
  // is taken only if it is already there.
  const body = ex.timedOut ? Promise.race([captured, Promise.resolve(null)]) : captured;
  void body.then((b) => logger[level]("request", b ? { ...line, ...bodyFields(b) } : line));
}

/** What a client may label a request with in `x-gateway.metadata` that the line carries. */
const MAX_METADATA_KEYS = 32;
const MAX_METADATA_CHARS = 256;
const MAX_METADATA_KEY_CHARS = 64;

/**
 * The client's `x-gateway.metadata` (PRODUCT: recorded with usage), as `request_metadata`:
 * its scalar values, strings cut to 256 characters, at most 32 keys of up to 64 characters
 * (it is client input: longer keys are left out).
 */
function requestMetadata(
  metadata: Readonly<Record<string, unknown>> | undefined,
): { request_metadata?: Record<string, string | number | boolean> } {
  if (metadata === undefined) return {};
  const out: Record<string, string | number | boolean> = {};
  let n = 0;
  for (const [key, value] of Object.entries(metadata)) {
    if (n === MAX_METADATA_KEYS) break;
    if (key.length > MAX_METADATA_KEY_CHARS) continue;
    if (typeof value === "string") out[key] = value.slice(0, MAX_METADATA_CHARS);
    else if (typeof value === "number" || typeof value === "boolean") out[key] = value;
    else continue;
    n++;
  }
  return n > 0 ? { request_metadata: out } : {};
}

/** Token counts; cache and reasoning details only when there were some. */
function tokenFields(usage: Usage): Record<string, number> {
  const out: Record<string, number> = {
    prompt_tokens: usage.prompt_tokens,
    completion_tokens: usage.completion_tokens,
  };
  const cached = usage.prompt_tokens_details?.cached_tokens;
  const writes = usage.prompt_tokens_details?.cache_write_tokens;
  const reasoning = usage.completion_tokens_details?.reasoning_tokens;
  if (cached) out.cached_tokens = cached;
  if (writes) out.cache_write_tokens = writes;
  if (reasoning) out.reasoning_tokens = reasoning;
  return out;
}

function hasKeys(o: Record<string, unknown>): boolean {
  for (const _ in o) return true;
  return false;
}

/** An attempt as the log shows it (its usage is the exchange's business). */
function logged(a: AttemptRecord): Record<string, unknown> {
  return {
    provider: a.provider,
    model: a.model,
    key_id: a.key_id,
    status: a.status,
    duration_ms: a.duration_ms,
    outcome: a.outcome,
    ...(a.reason !== undefined ? { reason: a.reason } : {}),
    ...(a.backoff_ms !== undefined ? { backoff_ms: a.backoff_ms } : {}),
    ...(a.no_call ? { no_call: true } : {}),
    ...(a.upstream_request_id !== undefined ? { upstream_request_id: a.upstream_request_id } : {}),
  };
}

/**
 * The provider's own id of the call whose answer the client got (else of the last call): a
 * native passthrough answer carries it as `x-request-id` when the client sent none.
 */
function upstreamId(ex: Exchange): { upstream_request_id?: string } {
  const id = upstreamRequestId(ex);
  return id !== undefined ? { upstream_request_id: id } : {};
}

function bodyFields(body: CapturedBody): Record<string, unknown> {
  return body.truncated
    ? { request_body: body.text, request_body_truncated: true }
    : { request_body: body.text };
}

/** An error as the log shows it: name and message (a GatewayError's message is redacted). */
function describe(error: unknown): { name: string; message: string } | string {
  return error instanceof Error ? { name: error.name, message: error.message } : String(error);
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
