/**
 * Errors in the envelope of the route that failed: OpenAI JSON on the unified `/v1/*`
 * routes, Anthropic JSON on `/v1/messages` and `/anthropic/*`, google.rpc on `/gemini/*`,
 * AWS's shape on `/bedrock/*`; llm-proxy's degraded signal is one body everywhere.
 * @module
 */
import { GatewayError } from "../../errors.ts";
import { responsesParam, responsesText } from "../../translate/responses_fields.ts";
import { messagesParam, messagesText } from "../../translate/messages_fields.ts";
import { pilotfishHeaders } from "../../routing/failover.ts";
import { callsMade } from "../../routing/attempt.ts";
import { toAnthropicError } from "../../schema/anthropic.ts";
import { type OpenAIChatRequest, toOpenAIError } from "../../schema/openai.ts";
import type { ErrorFormat, Exchange } from "../exchange.ts";
import { wholeResponse } from "../../server/whole.ts";
import { createRedactor, redactJsonText, type Redactor } from "../../telemetry/redact.ts";

/** Key shapes, for an error answered before any config's redactor is at hand. */
const SHAPES_ONLY = createRedactor([], { encoded: false, bearer: false });

/** AWS exception names for our own errors on `/bedrock/*`, so SDKs raise the usual types. */
const AWS_EXCEPTION: Record<number, string> = {
  400: "ValidationException",
  401: "UnrecognizedClientException",
  403: "AccessDeniedException",
  404: "ResourceNotFoundException",
  // The client's fault, so SDKs raise a client error rather than a server fault.
  405: "UnknownOperationException",
  // Not a Bedrock model exception: the AWS name for a request that did not arrive in time,
  // which botocore and the JS SDK both retry as transient.
  408: "RequestTimeoutException",
  413: "ValidationException",
  415: "ValidationException",
  429: "ThrottlingException",
  500: "InternalServerException",
  502: "ServiceUnavailableException",
  503: "ServiceUnavailableException",
  504: "ModelTimeoutException",
};

/** google.rpc.Status names for the HTTP statuses we answer with (Gemini's error shape). */
const GOOGLE_STATUS: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  405: "UNIMPLEMENTED",
  408: "DEADLINE_EXCEEDED",
  409: "ABORTED",
  413: "INVALID_ARGUMENT",
  415: "INVALID_ARGUMENT",
  429: "RESOURCE_EXHAUSTED",
  499: "CANCELLED",
  500: "INTERNAL",
  501: "UNIMPLEMENTED",
  502: "UNAVAILABLE",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

/** The envelope a path speaks when its route did not say (unknown routes, early failures). */
export function formatForPath(path: string): ErrorFormat {
  if (path === "/v1/messages" || path.startsWith("/v1/messages/")) return "anthropic_json";
  if (path.startsWith("/anthropic/")) return "anthropic_json";
  if (path.startsWith("/gemini/")) return "google_rpc";
  if (path.startsWith("/bedrock/")) return "aws_json";
  return path.startsWith("/v1/") || path.startsWith("/openai/") ? "openai_json" : "plain";
}

/** The error body in `format`. */
export function errorEnvelope(err: GatewayError, format: ErrorFormat): unknown {
  // llm-proxy's degraded signal is one body on every route: clients match it (and the marker
  // in it) whatever SDK they use. AWS SDKs read the top-level `message`, so AWS's copy
  // carries it too.
  if (err.code === "provider_degraded") {
    const signal = {
      error: { message: err.message, type: "provider_degraded", code: "provider_degraded" },
    };
    return format === "aws_json" ? { ...signal, message: err.message } : signal;
  }
  if (format === "aws_json") return { message: err.message };
  if (format === "google_rpc") {
    return {
      error: {
        code: err.status,
        message: err.message,
        status: GOOGLE_STATUS[err.status] ?? "UNKNOWN",
      },
    };
  }
  if (format === "anthropic_json") return toAnthropicError(err);
  // Plain routes use the OpenAI shape too: one error shape for tools to parse.
  return toOpenAIError(err);
}

/**
 * What AWS puts on an error, for one of ours on `/bedrock/*`: the exception name its SDKs
 * raise, and a request id (AWS answers every request with one; the SDKs report it as
 * `$metadata.requestId`).
 */
export function awsErrorHeaders(status: number, requestId: string): Record<string, string> {
  return {
    "x-amzn-errortype": AWS_EXCEPTION[status] ?? "InternalServerException",
    "x-amzn-requestid": requestId,
  };
}

/**
 * The response for `err` on `ex`'s route: its envelope, the error's own headers, and once a
 * provider was chosen, `x-pilotfish-provider/-model/-attempts` (failover's exact values, on
 * the error, win; without a count, an upstream failure means one call, anything else none).
 * A message may quote the request (an unknown model, a path): a configured key or an app key
 * a client put there is redacted, as in a log line (`redact`, else the exchange's config's).
 */
export function errorResponse(
  err: GatewayError,
  ex: Exchange | undefined,
  path: string,
  redact?: Redactor,
): Response {
  const format = ex?.errorFormat ?? formatForPath(path);
  if (ex?.schema === "responses" && err.info.param !== undefined) {
    err = inResponsesTerms(err, ex.request?.schema === "responses" ? ex.request.canonical : null);
  }
  if (ex?.request?.schema === "anthropic_messages" && err.info.param !== undefined) {
    err = inMessagesTerms(err, ex.request.canonical);
  }
  const headers: Record<string, string> = {
    "content-type": "application/json",
    ...attemptHeaders(ex, err),
    ...err.info.headers,
    ...ex?.replyHeaders,
  };
  if (format === "aws_json") {
    const id = headers["x-amzn-requestid"] ?? ex?.id ?? crypto.randomUUID();
    Object.assign(headers, awsErrorHeaders(err.status, id));
  }
  if (err.code === "rate_limited" && !headers["retry-after"]) headers["retry-after"] = "1";
  const clean = redact ?? ex?.runtime.redactError ?? SHAPES_ONLY;
  const body = redactJsonText(JSON.stringify(errorEnvelope(err, format)), clean);
  return wholeResponse(ex, body, err.status, headers);
}

/**
 * Answered before failover (a limit, a key's allowlist, a plugin) with one target routed:
 * that provider was chosen, and no call was made.
 */
export function routedHeaders(ex: Exchange): Record<string, string> {
  const only = ex.targets.length === 1 ? ex.targets[0] : undefined;
  return only === undefined ? {} : pilotfishHeaders(only.provider, only.model, 0);
}

function attemptHeaders(ex: Exchange | undefined, err: GatewayError): Record<string, string> {
  if (ex === undefined) return {};
  if (ex.provider === undefined) return routedHeaders(ex);
  const upstream = err.info.upstreamStatus !== undefined || err.code.startsWith("upstream_");
  const count = ex.attempts.length > 0 ? callsMade(ex.attempts) : upstream ? 1 : 0;
  return pilotfishHeaders(ex.provider, ex.model, count);
}

/**
 * A Responses API request's error names the fields the client sent, not the chat form's, at
 * the client's own `input` indices (`canonical`'s record of where each message came from).
 */
function inResponsesTerms(err: GatewayError, canonical: OpenAIChatRequest | null): GatewayError {
  const param = err.info.param as string;
  const named = responsesParam(param, canonical);
  const message = responsesText(err.message, param, canonical);
  if (named === param && message === err.message) return err;
  return new GatewayError(err.code, message, { ...err.info, param: named });
}

/**
 * A Messages request's error (one the canonical form's translation or provider raised: it
 * carries a chat `param`) names the fields the client sent, at the client's own indices.
 */
function inMessagesTerms(err: GatewayError, canonical: OpenAIChatRequest | null): GatewayError {
  // The client's own body failed before any translation: its names are already the client's.
  if (canonical === null) return err;
  const param = err.info.param as string;
  const named = messagesParam(param, canonical);
  const message = messagesText(err.message, param, canonical);
  if (named === param && message === err.message) return err;
  return new GatewayError(err.code, message, { ...err.info, param: named });
}
