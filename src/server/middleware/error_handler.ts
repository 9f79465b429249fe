import type { Context } from "hono";
import { GatewayError, toGatewayError } from "../../errors.ts";
import type { AppEnv } from "../../routes/mod.ts";
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
  if (ge.code === "rate_limited" && !headers["retry-after"]) headers["retry-after"] = "1";
  return c.json(
    envelope(ge, c.get("errorFormat") ?? formatForPath(c.req.path)),
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

function formatForPath(path: string): "openai" | "anthropic" | "plain" {
  if (path === "/v1/messages" || path.startsWith("/v1/messages/")) return "anthropic";
  return path.startsWith("/v1/") ? "openai" : "plain";
}

const ANTHROPIC_TYPE: Partial<Record<GatewayError["code"], string>> = {
  invalid_request: "invalid_request_error",
  unauthenticated: "authentication_error",
  forbidden: "permission_error",
  not_found: "not_found_error",
  payload_too_large: "request_too_large",
  rate_limited: "rate_limit_error",
  upstream_timeout: "api_error",
  unavailable: "overloaded_error",
};

function envelope(err: GatewayError, format: "openai" | "anthropic" | "plain"): unknown {
  if (format === "anthropic") {
    return {
      type: "error",
      error: { type: ANTHROPIC_TYPE[err.code] ?? "api_error", message: err.message },
    };
  }
  // Plain routes use the OpenAI shape too: one error shape for tools to parse.
  return toOpenAIError(err);
}
