import type { Context } from "hono";
import { GatewayError } from "../errors.ts";
import type { ChatCall, ChatOutcome, ProviderAdapter } from "../providers/mod.ts";
import { type AttemptContext, resolveModel } from "../routing/mod.ts";
import { parseMessagesRequest, toAnthropicError } from "../schema/anthropic.ts";
import type { OpenAIChatRequest, OpenAIUsage } from "../schema/openai.ts";
import { encodeSseEvent } from "../streaming/mod.ts";
import { toMessagesResponse, toMessagesStream, toOpenAIChatRequest } from "../translate/mod.ts";
import type { AppEnv } from "./context.ts";
import { readUnifiedRequest, runUnified, unifiedResponse } from "./unified.ts";

/** Client headers an Anthropic-format provider receives as sent (versioning and betas). */
const FORWARDED_HEADERS = ["anthropic-version", "anthropic-beta"] as const;

/**
 * `POST /v1/messages`: the Anthropic Messages API as a unified entry point. The model is
 * resolved and failed over exactly as on `/v1/chat/completions`; per target, a provider that
 * speaks the Messages API gets the client's body as is (model patched), any other gets it
 * translated to an OpenAI chat request, and its answer translated back. Every error, from a
 * malformed body to an upstream failure, answers in Anthropic's error envelope.
 */
export async function messages(c: Context<AppEnv>): Promise<Response> {
  const { body, gateway, stream } = await readUnifiedRequest(c, "anthropic", parseMessagesRequest);
  const rt = c.get("runtime");

  const forwarded: Record<string, string> = {};
  for (const name of FORWARDED_HEADERS) {
    const value = c.req.header(name);
    if (value !== undefined) forwarded[name] = value;
  }
  const onUsage = (usage: OpenAIUsage) => c.set("usage", usage);
  // Translated once, on the first target that needs it; retries and hedges reuse it.
  let translated: OpenAIChatRequest | undefined;

  const invoke = async (
    adapter: ProviderAdapter,
    attempt: AttemptContext,
    model: string,
  ): Promise<ChatOutcome> => {
    if (adapter.messages) {
      return await adapter.messages(
        { ...attempt, body, stream, headers: forwarded, onUsage },
        model,
      );
    }
    // A translation error is the caller's 400, raised before any upstream call.
    translated ??= toOpenAIChatRequest(body, adapter.name);
    return await translatedCall(adapter, model, { ...attempt, body: translated, stream, onUsage }, {
      requested: body.model,
      redact: rt.redact,
    });
  };

  const { targets, route } = resolveModel(rt.config, body.model, gateway.provider);
  const result = await runUnified(c, {
    requested: body.model,
    targets,
    route,
    gateway,
    invoke,
  });
  return unifiedResponse(result, rt.redact, (ge) => encodeSseEvent("error", toAnthropicError(ge)));
}

/**
 * A provider that does not speak the Messages API: the OpenAI request goes out through its
 * `chat`, and the answer comes back translated. Translation runs inside the attempt, so a
 * body that is not a chat completion fails the attempt like any upstream failure.
 */
async function translatedCall(
  adapter: ProviderAdapter,
  model: string,
  call: ChatCall,
  ctx: { requested: string; redact: (text: string) => string },
): Promise<ChatOutcome> {
  const outcome = await adapter.chat(call, model);
  if (outcome.kind === "stream") {
    return {
      kind: "stream",
      status: outcome.status,
      body: toMessagesStream(outcome.body, {
        model: ctx.requested,
        provider: adapter.name,
        redact: ctx.redact,
      }),
    };
  }
  const text = typeof outcome.body === "string"
    ? outcome.body
    : new TextDecoder().decode(outcome.body);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new GatewayError(
      "upstream_error",
      `Provider "${adapter.name}" returned a body that is not JSON`,
      { provider: adapter.name },
    );
  }
  const message = toMessagesResponse(json, ctx.requested, adapter.name);
  return { kind: "json", status: outcome.status, body: JSON.stringify(message) };
}
