import { parseChatRequest } from "../schema/openai.ts";
import type { OpenAIChatRequest } from "../schema/openai.ts";
import { encodeOpenAI } from "../pipeline/encode/openai.ts";
import type { Exchange } from "../pipeline/exchange.ts";
import type { UnifiedRoute } from "../pipeline/run.ts";
import { unifiedHandler } from "./unified.ts";

function body(ex: Exchange): OpenAIChatRequest {
  return (ex.request as { body: OpenAIChatRequest }).body;
}

/** The OpenAI Chat Completions API as the pipeline sees it. */
export const CHAT_ROUTE: UnifiedRoute = {
  schema: "openai_chat",
  decode(ex, raw) {
    const { body, gateway } = parseChatRequest(raw);
    ex.request = { schema: "openai_chat", body };
    ex.stream = body.stream === true;
    return { model: body.model, gateway };
  },
  view: (ex) => ({ schema: "openai_chat", body: body(ex) }),
  rewrite(ex, raw) {
    // A stage's body is validated like a client's; `x-gateway` stays what the client sent.
    const { body } = parseChatRequest(raw);
    ex.request = { schema: "openai_chat", body };
    ex.stream = body.stream === true;
  },
  model: (ex) => body(ex).model,
  invoke(ex) {
    const request = body(ex);
    const stream = ex.stream;
    return (adapter, attempt, model) => adapter.chat({ ...attempt, body: request, stream }, model);
  },
  encode: encodeOpenAI,
};

/** `POST /v1/chat/completions`: the unified OpenAI-compatible entry point. */
export const chatCompletions = unifiedHandler(CHAT_ROUTE, "openai_json");
