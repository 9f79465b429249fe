import type { Context } from "hono";
import { GatewayError } from "../errors.ts";
import type { ModelRouteConfig } from "../config/mod.ts";
import {
  executeWithFailover,
  FailoverExhausted,
  type FailoverResult,
  type Invoke,
  type Target,
  upstreamTime,
} from "../routing/mod.ts";
import { attemptHeaders } from "../routing/failover.ts";
import type { GatewayOptions } from "../schema/gateway.ts";
import type { ChatOutcome } from "../providers/mod.ts";
import { observeStream } from "../streaming/mod.ts";
import type { Redactor } from "../telemetry/mod.ts";
import { readRequestFlags } from "../breaker/mod.ts";
import { endAt, explainTimeout, withinWrite } from "../server/middleware/timeouts.ts";
import { readJsonBody } from "./body.ts";
import type { AppEnv, RequestVars } from "./context.ts";

/** Response headers of every SSE answer we send. */
export const STREAM_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
};

/**
 * What every unified route (`/v1/chat/completions`, `/v1/embeddings`, `/v1/messages`)
 * shares: the failover run with the caller's budget, the attempt bookkeeping for the log,
 * and the `x-pilotfish-*` headers on success and failure alike.
 */
export async function runUnified(
  c: Context<AppEnv>,
  req: {
    requested: string;
    targets: readonly Target[];
    route: ModelRouteConfig | undefined;
    gateway: GatewayOptions;
    invoke: Invoke;
  },
): Promise<FailoverResult & { headers: Record<string, string>; cut?: AbortSignal }> {
  const rt = c.get("runtime");
  const deadlines = c.get("deadlines");
  const timeout = req.gateway.timeout;
  // The switches only mean something with the breaker on: skip the URL parse otherwise.
  const flags = rt.config.features.circuit_breaker.enabled
    ? readRequestFlags(
      (name) => c.req.header(name),
      new URL(c.req.url).searchParams,
      rt.config.features.circuit_breaker,
    )
    : {};
  let result: FailoverResult;
  try {
    result = await executeWithFailover(
      {
        config: rt.config,
        adapters: rt.adapters,
        state: rt.routing,
        random: rt.random,
        now: rt.now,
        redact: rt.redact,
        breaker: rt.breaker,
      },
      {
        requested: req.requested,
        targets: req.targets,
        route: req.route,
        invoke: req.invoke,
        signal: c.req.raw.signal,
        // Configured keys first: the client's credential only reaches providers that take it.
        clientAuthorization: null,
        fallbackAuthorization: clientCredential(c),
        // x-gateway.timeout is the caller's whole budget: it bounds every attempt too. What is
        // left of server.write_timeout bounds both as well; the smallest wins.
        deadlineMs: withinWrite(
          deadlines,
          timeout !== undefined ? timeout * 1000 : rt.config.routing.failover.deadline,
        ),
        ...(timeout !== undefined ? { attemptTimeoutMs: timeout * 1000 } : {}),
        ...(flags.bypass ? { bypass: flags.bypass } : {}),
        ...(flags.testMode ? { testMode: flags.testMode } : {}),
      },
    );
  } catch (err) {
    if (!(err instanceof FailoverExhausted)) throw err;
    note(c, err.attempts, err.target?.provider, err.target?.model);
    // err.last carries x-pilotfish-provider/-model/-attempts of the provider tried last.
    throw explainTimeout(deadlines, err.last);
  }
  note(c, result.attempts, result.target.provider, result.target.model);
  return {
    ...result,
    headers: attemptHeaders(result.target, result.attempts.length),
    // write_timeout still runs once the response started: it ends the stream.
    ...(deadlines?.write ? { cut: deadlines.write } : {}),
  };
}

/**
 * The request of a chat-like unified route (`/v1/chat/completions`, `/v1/messages`): the
 * error envelope is chosen first, so a malformed body is answered in it too; then the body
 * is read and parsed, and the model and stream flag noted for the log.
 */
export async function readUnifiedRequest<B extends { model: string; stream?: unknown }>(
  c: Context<AppEnv>,
  errorFormat: NonNullable<RequestVars["errorFormat"]>,
  parse: (raw: unknown) => { body: B; gateway: GatewayOptions },
): Promise<{ body: B; gateway: GatewayOptions; stream: boolean }> {
  c.set("errorFormat", errorFormat);
  const rt = c.get("runtime");
  const { body, gateway } = parse(
    await readJsonBody(c.req.raw, rt.config.server.max_body_bytes, c.get("deadlines")?.body),
  );
  const stream = body.stream === true;
  c.set("stream", stream);
  c.set("model", body.model);
  return { body, gateway, stream };
}

/**
 * The answer of a chat-like unified route (`/v1/chat/completions`, `/v1/messages`): a JSON
 * outcome as is, a stream with the SSE headers. After the first byte there is no retry, so
 * a stream that breaks ends with an error event in the route's own format (`renderError`)
 * instead; a failure that is not a GatewayError is reported as the provider's, redacted.
 * When `cut` (server.write_timeout) aborts mid-stream, the stream ends the same way.
 */
export function unifiedResponse(
  result: {
    outcome: ChatOutcome;
    target: Target;
    headers: Record<string, string>;
    cut?: AbortSignal;
  },
  redact: Redactor,
  renderError: (error: GatewayError) => Uint8Array,
): Response {
  const { outcome, target, headers } = result;
  if (outcome.kind === "json") {
    return new Response(outcome.body, {
      status: outcome.status,
      headers: { ...headers, "content-type": "application/json" },
    });
  }
  const source = result.cut ? endAt(outcome.body, result.cut) : outcome.body;
  const body = observeStream(source, {
    renderError: (err) => {
      const ge = err instanceof GatewayError ? err : new GatewayError(
        "upstream_error",
        `Stream from provider "${target.provider}" broke: ${
          redact(String((err as Error)?.message ?? err))
        }`,
        { provider: target.provider },
      );
      return renderError(ge);
    },
  });
  return new Response(body, {
    status: outcome.status,
    headers: { ...headers, ...STREAM_HEADERS },
  });
}

function note(
  c: Context<AppEnv>,
  attempts: FailoverResult["attempts"],
  provider: string | undefined,
  model: string | undefined,
): void {
  if (provider !== undefined) c.set("provider", provider);
  if (model !== undefined) c.set("model", model);
  c.set("upstreamMs", upstreamTime(attempts));
  // The common case (one clean attempt) adds nothing to the log line.
  if (attempts.length > 1 || attempts[0]?.outcome !== "ok") c.set("attempts", attempts);
}

/**
 * The client's own credential (`Authorization`, or Anthropic SDKs' `x-api-key`), for
 * providers that forward it. A Pilotfish application key (`pf_…`) is never forwarded.
 */
export function clientCredential(c: Context<AppEnv>): string | null {
  const auth = c.req.header("authorization");
  if (auth) return /^Bearer\s+pf_/i.test(auth) ? null : auth;
  const apiKey = c.req.header("x-api-key");
  return apiKey && !apiKey.startsWith("pf_") ? `Bearer ${apiKey}` : null;
}
