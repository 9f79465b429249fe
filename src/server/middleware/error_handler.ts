import type { Context } from "hono";
import { GatewayError, toGatewayError } from "../../errors.ts";
import { pilotfishHeaders } from "../../routing/failover.ts";
import type { AppEnv } from "../../routes/mod.ts";
import { toAnthropicError } from "../../schema/anthropic.ts";
import { toOpenAIError } from "../../schema/openai.ts";

/**
 * Render any thrown error in the envelope of the route that failed: OpenAI JSON on the
 * unified `/v1/*` routes, Anthropic JSON on `/v1/messages`, plain JSON elsewhere. Internal
 * errors are logged with their cause and answered without details.
 */
export function renderError(err: unknown, c: Context<AppEnv>): Response {
  const ge = toGatewayError(err);
  const rt = c.get("runtime");
  if (ge.code === "internal") {
    rt?.logger.error("unhandled error", {
      request_id: c.get("requestId"),
      error: ge.info.cause ?? err,
    });
  }
  const headers: Record<string, string> = { ...attemptHeaders(c, ge), ...ge.info.headers };
  const format = c.get("errorFormat") ?? formatForPath(c.req.path);
  if (format === "bedrock") {
    headers["x-amzn-errortype"] = AWS_EXCEPTION[ge.status] ?? "InternalServerException";
  }
  if (ge.code === "rate_limited" && !headers["retry-after"]) headers["retry-after"] = "1";
  return c.json(
    envelope(ge, format),
    ge.status as 400,
    headers,
  );
}

/**
 * `x-pilotfish-provider/-model/-attempts` for an error once a provider was chosen (the route
 * notes it in the context; failover puts the exact values on its error, which win). Without
 * a count, an upstream failure means one call was made, anything else none.
 */
function attemptHeaders(c: Context<AppEnv>, ge: GatewayError): Record<string, string> {
  const provider = c.get("provider");
  if (provider === undefined) return {};
  const model = c.get("model");
  const upstream = ge.info.upstreamStatus !== undefined || ge.code.startsWith("upstream_");
  return pilotfishHeaders(provider, model, c.get("attempts")?.length ?? (upstream ? 1 : 0));
}

/** 404 for routes that do not exist, in the path's envelope. */
export function renderNotFound(c: Context<AppEnv>): Response {
  return renderError(
    new GatewayError("not_found", `Unknown route ${c.req.method} ${c.req.path}`),
    c,
  );
}

type ErrorFormat = "openai" | "anthropic" | "gemini" | "bedrock" | "plain";

/** AWS exception names for our own errors on `/bedrock/*`, so SDKs raise the usual types. */
const AWS_EXCEPTION: Record<number, string> = {
  400: "ValidationException",
  401: "UnrecognizedClientException",
  403: "AccessDeniedException",
  404: "ResourceNotFoundException",
  // Not a Bedrock model exception: the AWS name for a request that did not arrive in time,
  // which botocore and the JS SDK both retry as transient.
  408: "RequestTimeoutException",
  413: "ValidationException",
  429: "ThrottlingException",
  500: "InternalServerException",
  502: "ServiceUnavailableException",
  503: "ServiceUnavailableException",
  504: "ModelTimeoutException",
};

function formatForPath(path: string): ErrorFormat {
  if (path === "/v1/messages" || path.startsWith("/v1/messages/")) return "anthropic";
  if (path.startsWith("/anthropic/")) return "anthropic";
  if (path.startsWith("/gemini/")) return "gemini";
  if (path.startsWith("/bedrock/")) return "bedrock";
  return path.startsWith("/v1/") || path.startsWith("/openai/") ? "openai" : "plain";
}

/** google.rpc.Status names for the HTTP statuses we answer with (Gemini's error shape). */
const GOOGLE_STATUS: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  408: "DEADLINE_EXCEEDED",
  413: "INVALID_ARGUMENT",
  429: "RESOURCE_EXHAUSTED",
  499: "CANCELLED",
  500: "INTERNAL",
  501: "UNIMPLEMENTED",
  502: "UNAVAILABLE",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

function envelope(err: GatewayError, format: ErrorFormat): unknown {
  // llm-proxy's degraded signal is one body on every route: clients match it (and the marker
  // in it) whatever SDK they use. AWS SDKs read the top-level `message`, so Bedrock's copy
  // carries it too.
  if (err.code === "provider_degraded") {
    const signal = {
      error: { message: err.message, type: "provider_degraded", code: "provider_degraded" },
    };
    return format === "bedrock" ? { ...signal, message: err.message } : signal;
  }
  if (format === "bedrock") return { message: err.message };
  if (format === "gemini") {
    return {
      error: {
        code: err.status,
        message: err.message,
        status: GOOGLE_STATUS[err.status] ?? "UNKNOWN",
      },
    };
  }
  if (format === "anthropic") return toAnthropicError(err);
  // Plain routes use the OpenAI shape too: one error shape for tools to parse.
  return toOpenAIError(err);
}
