import type { Context } from "hono";
import { GatewayError } from "../errors.ts";
import { resolveModel } from "../routing/mod.ts";
import { parseChatRequest, toOpenAIError } from "../schema/openai.ts";
import { encodeSseData, observeStream } from "../streaming/mod.ts";
import { readJsonBody } from "./body.ts";
import type { AppEnv } from "./context.ts";
import { runUnified, STREAM_HEADERS } from "./unified.ts";

/** `POST /v1/chat/completions`: the unified OpenAI-compatible entry point. */
export async function chatCompletions(c: Context<AppEnv>): Promise<Response> {
  c.set("errorFormat", "openai");
  const rt = c.get("runtime");
  const { body, gateway } = parseChatRequest(
    await readJsonBody(c.req.raw, rt.config.server.max_body_bytes),
  );
  const stream = body.stream === true;
  c.set("stream", stream);
  c.set("model", body.model);

  const { targets, route } = resolveModel(rt.config, body.model, gateway.provider);
  const { outcome, target, headers } = await runUnified(c, {
    requested: body.model,
    targets,
    route,
    gateway,
    invoke: (adapter, attempt, model) =>
      adapter.chat({ ...attempt, body, stream, onUsage: (usage) => c.set("usage", usage) }, model),
  });
  if (outcome.kind === "json") {
    return new Response(outcome.body, {
      status: outcome.status,
      headers: { ...headers, "content-type": "application/json" },
    });
  }
  const body$ = observeStream(outcome.body, {
    // After the first byte there is no retry: the stream ends with an error event instead.
    renderError: (err) => {
      const ge = err instanceof GatewayError ? err : new GatewayError(
        "upstream_error",
        `Stream from provider "${target.provider}" broke: ${
          rt.redact(String((err as Error)?.message ?? err))
        }`,
        { provider: target.provider },
      );
      return encodeSseData(toOpenAIError(ge));
    },
  });
  return new Response(body$, {
    status: outcome.status,
    headers: { ...headers, ...STREAM_HEADERS },
  });
}
