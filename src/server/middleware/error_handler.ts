import type { Context } from "hono";
import { GatewayError, toGatewayError } from "../../errors.ts";
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
  const headers: Record<string, string> = { ...ge.info.headers };
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
  // llm-proxy's degraded signal: clients match this exact body (and the marker in it).
  if (err.code === "provider_degraded" && (format === "openai" || format === "plain")) {
    return {
      error: { message: err.message, type: "provider_degraded", code: "provider_degraded" },
    };
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
  if (format === "anthropic") {
    // The degraded signal keeps its marker and type so one client check fits every route.
    return err.code === "provider_degraded"
      ? { type: "error", error: { type: "provider_degraded", message: err.message } }
      : toAnthropicError(err);
  }
  // Plain routes use the OpenAI shape too: one error shape for tools to parse.
  return toOpenAIError(err);
}
