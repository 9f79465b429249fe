import type { Context } from "hono";
import { resolveModel } from "../routing/mod.ts";
import { parseChatRequest, toOpenAIError } from "../schema/openai.ts";
import { encodeSseData } from "../streaming/mod.ts";
import type { AppEnv } from "./context.ts";
import { readUnifiedRequest, runUnified, unifiedResponse } from "./unified.ts";

/** `POST /v1/chat/completions`: the unified OpenAI-compatible entry point. */
export async function chatCompletions(c: Context<AppEnv>): Promise<Response> {
  const { body, gateway, stream } = await readUnifiedRequest(c, "openai", parseChatRequest);
  const rt = c.get("runtime");

  const { targets, route } = resolveModel(rt.config, body.model, gateway.provider);
  const result = await runUnified(c, {
    requested: body.model,
    targets,
    route,
    gateway,
    invoke: (adapter, attempt, model) =>
      adapter.chat({ ...attempt, body, stream, onUsage: (usage) => c.set("usage", usage) }, model),
  });
  return unifiedResponse(result, rt.redact, (ge) => encodeSseData(toOpenAIError(ge)));
}
