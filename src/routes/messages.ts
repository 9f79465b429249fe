import type { Context } from "hono";
import { GatewayError } from "../errors.ts";
import type { ChatCall, ChatOutcome, ProviderAdapter } from "../providers/mod.ts";
import { type AttemptContext, resolveModel } from "../routing/mod.ts";
import { parseMessagesRequest, toAnthropicError } from "../schema/anthropic.ts";
import type { OpenAIChatRequest, OpenAIUsage } from "../schema/openai.ts";
import { encodeSseEvent, observeStream } from "../streaming/mod.ts";
import { toMessagesResponse, toMessagesStream, toOpenAIChatRequest } from "../translate/mod.ts";
import { readJsonBody } from "./body.ts";
import type { AppEnv } from "./context.ts";
import { runUnified, STREAM_HEADERS } from "./unified.ts";

// The same as the chat completions route's: what keeps proxies from buffering a stream.
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
  c.set("errorFormat", "anthropic");
  const rt = c.get("runtime");
  const { body, gateway } = parseMessagesRequest(
    await readJsonBody(c.req.raw, rt.config.server.max_body_bytes),
  );
  const stream = body.stream === true;
  c.set("stream", stream);
  c.set("model", body.model);

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
  const { outcome, target, headers } = await runUnified(c, {
    requested: body.model,
    targets,
    route,
    gateway,
    invoke,
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
      return encodeSseEvent("error", toAnthropicError(ge));
    },
  });
  return new Response(body$, {
    status: outcome.status,
    headers: { ...headers, ...STREAM_HEADERS },
  });
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
