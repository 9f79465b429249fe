import type { Context } from "hono";
import { GatewayError } from "../errors.ts";
import { resolveModel } from "../routing/mod.ts";
import { parseEmbeddingsRequest } from "../schema/embeddings.ts";
import { readJsonBody } from "./body.ts";
import type { AppEnv } from "./context.ts";
import { runUnified } from "./unified.ts";

/** `POST /v1/embeddings`: OpenAI-shape embeddings from any provider that has them. */
export async function embeddings(c: Context<AppEnv>): Promise<Response> {
  c.set("errorFormat", "openai");
  const rt = c.get("runtime");
  const { body, gateway } = parseEmbeddingsRequest(
    await readJsonBody(c.req.raw, rt.config.server.max_body_bytes, c.get("deadlines")?.body),
  );
  c.set("model", body.model);
  const resolved = resolveModel(rt.config, body.model, gateway.provider);
  // Only providers with an embeddings API are candidates (chat-only ones are not failures).
  const targets = resolved.targets.filter((t) => rt.adapters.get(t.provider)?.embeddings);
  if (targets.length === 0) {
    throw new GatewayError(
      "invalid_request",
      `Provider "${resolved.targets[0].provider}" has no embeddings API`,
      { param: "model" },
    );
  }
  const { outcome, target, headers } = await runUnified(c, {
    requested: body.model,
    targets,
    route: resolved.route,
    gateway,
    invoke: (adapter, attempt, model) =>
      adapter.embeddings!({ ...attempt, body, onUsage: (u) => c.set("usage", u) }, model),
  });
  if (outcome.kind !== "json") {
    throw new GatewayError("upstream_error", `Provider "${target.provider}" streamed embeddings`);
  }
  return new Response(outcome.body, {
    status: outcome.status,
    headers: { ...headers, "content-type": "application/json" },
  });
}
