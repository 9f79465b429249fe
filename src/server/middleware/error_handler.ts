import type { Context } from "hono";
import { GatewayError, toGatewayError } from "../../errors.ts";
import type { AppEnv } from "../../routes/mod.ts";
import { errorResponse } from "../../pipeline/encode/error.ts";

export { errorEnvelope, formatForPath } from "../../pipeline/encode/error.ts";

/**
 * Render any thrown error in the envelope of the route that failed (the exchange's
 * `errorFormat`, else the path's): OpenAI JSON on the unified `/v1/*` routes, Anthropic JSON
 * on `/v1/messages`, plain JSON elsewhere. Internal errors are logged with their cause and
 * answered without details.
 */
export function renderError(err: unknown, c: Context<AppEnv>): Response {
  const ge = toGatewayError(err);
  const ex = c.get("exchange");
  if (ge.code === "internal") {
    c.get("runtime")?.logger.error("unhandled error", {
      request_id: ex?.id,
      error: ge.info.cause ?? err,
    });
  }
  return errorResponse(ge, ex, c.req.path, c.get("runtime")?.redactError);
}

/** 404 for routes that do not exist, in the path's envelope. */
export function renderNotFound(c: Context<AppEnv>): Response {
  const path = c.req.path;
  // An API the unified routes do not translate (OpenAI's audio, images, files, batches, the
  // legacy completions; Anthropic's batches, files, models): the provider's passthrough does.
  const messagesApi = path.startsWith("/v1/messages/");
  const hint = path.startsWith("/v1/")
    ? `; the unified API serves chat completions, responses, embeddings, models and messages: call other ${
      messagesApi ? "Anthropic" : "OpenAI"
    } APIs through the provider's passthrough, ${
      messagesApi ? "/anthropic" : "/openai"
    }${path} or /native/{provider}${path.slice(3)}`
    : "";
  return renderError(
    new GatewayError("not_found", `Unknown route ${c.req.method} ${path}${hint}`),
    c,
  );
}

/** A 405 naming the methods the path takes (`Allow`), in the route's error format. */
export function allow(methods: string) {
  return (c: Context<AppEnv>): Response =>
    renderError(
      new GatewayError(
        "method_not_allowed",
        `Method ${c.req.method} is not allowed on ${c.req.path}`,
        {
          headers: { allow: methods },
        },
      ),
      c,
    );
}
