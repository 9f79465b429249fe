import type { ChatOutcome, ProviderAdapter } from "../providers/mod.ts";
import { decodeJson } from "../providers/wire.ts";
import { type MessagesRequest, parseMessagesRequest } from "../schema/anthropic.ts";
import type { OpenAIChatRequest } from "../schema/openai.ts";
import { toMessagesResponse, toOpenAIChatRequest, toOpenAIChatView } from "../translate/mod.ts";
import { encodeMessages } from "../pipeline/encode/anthropic.ts";
import type { Exchange, ExchangeRequest } from "../pipeline/exchange.ts";
import type { UnifiedRoute } from "../pipeline/run.ts";
import type { AttemptContext } from "../routing/mod.ts";
import { requestedModel, rewriteCanonical } from "./translated.ts";
import { unifiedHandler } from "./unified.ts";

/** Client headers an Anthropic-format provider receives as sent (versioning and betas). */
const FORWARDED_HEADERS = ["anthropic-version", "anthropic-beta"] as const;

/** The client's `anthropic-version` / `anthropic-beta`, for a provider that relays its body. */
export function anthropicClientHeaders(headers: Headers): Record<string, string> {
  const forwarded: Record<string, string> = {};
  for (const name of FORWARDED_HEADERS) {
    const value = headers.get(name);
    if (value !== null) forwarded[name] = value;
  }
  return forwarded;
}

type MessagesExchange = Extract<ExchangeRequest, { schema: "anthropic_messages" }>;

function request(ex: Exchange): MessagesExchange {
  return ex.request as MessagesExchange;
}

/** The canonical (OpenAI) form, translated once; a translation error is the caller's 400. */
function canonical(ex: Exchange, provider: string): OpenAIChatRequest {
  const r = request(ex);
  r.canonical ??= toOpenAIChatRequest(r.body, provider);
  return r.canonical;
}

/**
 * The Anthropic Messages API as the pipeline sees it. The model is resolved and failed over
 * exactly as on `/v1/chat/completions`; per target, a provider that speaks the Messages API
 * gets the client's body as is (model patched; the fast path), any other gets it translated
 * to an OpenAI chat request, and its answer is translated back at the edge. A `pre_llm`
 * stage sees (and may rewrite) the canonical form; once rewritten, every provider gets that.
 */
export const MESSAGES_ROUTE: UnifiedRoute = {
  schema: "anthropic_messages",
  decode(ex, raw) {
    const { body, gateway } = parseMessagesRequest(raw);
    ex.request = { schema: "anthropic_messages", body, canonical: null, rewritten: false };
    ex.stream = body.stream === true;
    return { model: body.model, gateway };
  },
  // Stages see the canonical form, never refused for what only an Anthropic-format provider
  // honours (the request may be relayed as is); `exact` says whether it tells all.
  view(ex) {
    const r = request(ex);
    if (r.canonical !== null) return { schema: "anthropic_messages", body: r.canonical };
    const view = toOpenAIChatView(r.body, ex.targets[0]?.provider ?? "unknown");
    if (!view.refused) r.canonical = view.body;
    r.lossy = !view.complete;
    return { schema: "anthropic_messages", body: view.body, exact: view.exact };
  },
  rewrite: (ex, raw) =>
    rewriteCanonical(
      ex,
      request(ex),
      raw,
      "an Anthropic-format provider honours (thinking, documents, server tools, MCP servers or fields unknown to Pilotfish)",
    ),
  model: (ex) => requestedModel(request(ex)),
  invoke(ex) {
    const forwarded = anthropicClientHeaders(ex.headers);
    const r = request(ex);
    const stream = ex.stream;
    return async (adapter, attempt, model): Promise<ChatOutcome> => {
      if (adapter.messages && !r.rewritten) {
        return await adapter.messages(
          {
            ...attempt,
            body: r.body as unknown as Record<string, unknown>,
            stream,
            headers: forwarded,
          },
          model,
        );
      }
      return await translatedCall(ex, adapter, attempt, model, r.body);
    };
  },
  encode: (ex, outcome, headers) => encodeMessages(ex, outcome, headers, request(ex).body.model),
};

/**
 * A provider that does not speak the Messages API (or a rewritten request): the canonical
 * request goes out through its `chat`. A buffered answer is checked inside the attempt, so a
 * body that is not a chat completion fails the attempt like any upstream failure (and can
 * fail over); the edge translates it.
 */
async function translatedCall(
  ex: Exchange,
  adapter: ProviderAdapter,
  attempt: AttemptContext,
  model: string,
  original: MessagesRequest,
): Promise<ChatOutcome> {
  const body = canonical(ex, adapter.name);
  const outcome = await adapter.chat({ ...attempt, body, stream: ex.stream }, model);
  if (outcome.kind === "stream") return outcome;
  const ctx = { provider: adapter.name, model, redact: ex.runtime.redact };
  const json = decodeJson(outcome, ctx);
  toMessagesResponse(json, original.model, adapter.name);
  return {
    kind: "json",
    status: outcome.status,
    format: "object",
    body: json,
    usage: outcome.usage,
  };
}

/** `POST /v1/messages`: the Anthropic Messages API as a unified entry point. */
export const messages = unifiedHandler(MESSAGES_ROUTE, "anthropic_json");
