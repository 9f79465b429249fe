/**
 * Token counting for every provider: `POST /v1/messages/count_tokens` (Anthropic's shape in
 * and out) and `POST /v1/responses/input_tokens` (OpenAI's). The model is resolved and failed
 * over as on the generation routes; each provider counts with its own endpoint (Anthropic
 * count_tokens, Gemini countTokens, Bedrock CountTokens, a native Responses provider's
 * input_tokens) or, with none (chat on OpenAI-compatible APIs), a local tokenizer. `x-pilotfish-token-count` says which: `provider` or `estimate`.
 * Counting is no generation, so only the HTTP hooks run (`pre_http` and `post_http`: app
 * keys and the like), never `pre_llm`/`post_llm` (a response cache must not answer it).
 * @module
 */
import { pilotfishHeaders } from "../routing/mod.ts";
import type { Context } from "hono";
import { GatewayError } from "../errors.ts";
import type { ChatOutcome } from "../providers/mod.ts";
import type { CountTokensCall } from "../providers/types.ts";
import { type MessagesRequest, parseMessagesRequest } from "../schema/anthropic.ts";
import type { OpenAIChatRequest } from "../schema/openai.ts";
import { isObject } from "../schema/openai.ts";
import { parseResponsesRequest } from "../schema/responses.ts";
import type { GatewayOptions } from "../schema/gateway.ts";
import { toChatRequestFromResponses, toOpenAIChatRequest } from "../translate/mod.ts";
import { noUsage } from "../streaming/mod.ts";
import type { Exchange } from "../pipeline/exchange.ts";
import { noteAttempts } from "../pipeline/exchange.ts";
import { failover, postHttp, preHttp, reachedAll, renderHere } from "../pipeline/run.ts";
import { attemptHeaders, callsMade, resolveModel } from "../routing/mod.ts";
import { explainTimeout } from "../server/middleware/timeouts.ts";
import { readJsonBody } from "./body.ts";
import type { AppEnv } from "./context.ts";
import { loadHistory, loadReferences, nativeResponsesBody } from "./responses.ts";
import { anthropicClientHeaders } from "./messages.ts";
import { wholeResponse } from "../server/whole.ts";
import { allowedTargets, dropUserAppKeys } from "../keys/mod.ts";

/** What one counting request asks: its model, options, and its prompt per provider. */
interface CountRequest {
  readonly model: string;
  readonly gateway: GatewayOptions;
  /** The prompt as a chat request for `provider` (translated once, on first need). */
  chat(provider: string): OpenAIChatRequest;
  /** The Anthropic body, for providers that speak the Messages API; null otherwise. */
  readonly messages: MessagesRequest | null;
  /** The Responses body a provider that speaks it natively is sent (kept history spelled out). */
  readonly responses: Record<string, unknown> | null;
  /** The answer's JSON for `count`. */
  answer(count: number): Record<string, unknown>;
}

/** `POST /v1/messages/count_tokens`: Anthropic's request (no `max_tokens`), `{input_tokens}`. */
function decodeMessages(raw: unknown): CountRequest {
  // count_tokens takes no max_tokens; the rest is validated as on /v1/messages.
  const withLimit = isObject(raw) && raw.max_tokens === undefined ? { ...raw, max_tokens: 1 } : raw;
  const { body, gateway } = parseMessagesRequest(withLimit);
  let chat: OpenAIChatRequest | null = null;
  return {
    model: body.model,
    gateway,
    chat: (provider) => chat ??= toOpenAIChatRequest({ ...body, stream: false }, provider),
    messages: body,
    responses: null,
    answer: (count) => ({ input_tokens: count }),
  };
}

/** `POST /v1/responses/input_tokens`: a Responses request, `{object, input_tokens}`. */
async function decodeResponses(ex: Exchange, raw: unknown): Promise<CountRequest> {
  const { body, gateway } = parseResponsesRequest(raw);
  const previous = body.previous_response_id;
  const history = typeof previous === "string" ? await loadHistory(ex, previous) : null;
  const referenced = await loadReferences(ex, body);
  let chat: OpenAIChatRequest | null = null;
  return {
    model: body.model,
    gateway,
    chat(provider) {
      // An id the gateway did not keep: only a native provider (its own) can resolve it.
      if (typeof previous === "string" && history === null) {
        throw new GatewayError(
          "invalid_request",
          `Previous response with id '${previous}' not found.`,
          { param: "previous_response_id", upstreamCode: "previous_response_not_found" },
        );
      }
      return chat ??= toChatRequestFromResponses(
        { ...body, stream: false },
        history ?? [],
        provider,
        referenced ?? undefined,
      );
    },
    messages: null,
    // A conversation the gateway kept is unknown to the provider: it is sent its items, as
    // the answer's request would be.
    responses: nativeResponsesBody(body, history, referenced),
    answer: (count) => ({ object: "response.input_tokens", input_tokens: count }),
  };
}

export function countTokens(kind: "messages" | "responses") {
  return async function countTokensRoute(c: Context<AppEnv>): Promise<Response> {
    const ex: Exchange = c.get("exchange");
    ex.errorFormat = kind === "messages" ? "anthropic_json" : "openai_json";
    ex.schema = kind === "messages" ? "anthropic_messages" : "responses";
    // Served inside the `/v1/responses/:id` pattern (see server/app.ts): named as itself.
    if (kind === "responses") ex.route = "/v1/responses/input_tokens";
    const raw = await readJsonBody(
      c.req.raw,
      ex.runtime.config.server.max_body_bytes,
      ex.deadlines?.body,
      ex.runtime.schedule,
    );
    const reached = reachedAll(ex);
    if (ex.runtime.stages.post_http.length === 0) {
      return await count(ex, kind, raw, c.req.raw.signal, reached);
    }
    let response: Response;
    try {
      response = await count(ex, kind, raw, c.req.raw.signal, reached);
    } catch (err) {
      response = renderHere(ex, err);
    }
    return await postHttp(ex, response, reached.http);
  };
}

async function count(
  ex: Exchange,
  kind: "messages" | "responses",
  raw: unknown,
  signal: AbortSignal,
  reached: ReturnType<typeof reachedAll>,
): Promise<Response> {
  const rt = ex.runtime;
  dropUserAppKeys(raw);
  if (rt.stages.pre_http.length > 0) {
    const pre = await preHttp(ex, raw, reached);
    if (pre.response) return pre.response;
    raw = pre.body;
  }
  const req = kind === "messages" ? decodeMessages(raw) : await decodeResponses(ex, raw);
  ex.gateway = req.gateway;
  ex.model = req.model;
  const resolved = resolveModel(rt.config, req.model, req.gateway.provider);
  const allowed = await allowedTargets(ex, req.model, resolved.targets);
  ex.targets = allowed.filter((t) => rt.adapters.get(t.provider)?.countTokens);
  if (ex.targets.length === 0) {
    const first = allowed[0];
    throw new GatewayError(
      "invalid_request",
      `No provider serving model "${req.model}" can count tokens`,
      // The provider routing chose, though nothing was asked of it.
      {
        param: "model",
        ...(first ? { headers: pilotfishHeaders(first.provider, first.model, 0) } : {}),
      },
    );
  }
  let estimate = false;
  const run = await failover(ex, req.model, resolved.route, async (adapter, attempt, model) => {
    const call: CountTokensCall = {
      ...attempt,
      // Translated on first read: a provider counting the client's own body never needs it.
      get chat() {
        return req.chat(adapter.name);
      },
      messages: adapter.messages !== undefined && req.messages !== null
        ? req.messages as unknown as Record<string, unknown>
        : null,
      headers: kind === "messages" ? anthropicClientHeaders(ex.headers) : {},
      responses: adapter.responses !== undefined ? req.responses : null,
    };
    const counted = await adapter.countTokens!(call, model);
    estimate = counted.estimate;
    const outcome: ChatOutcome = {
      kind: "json",
      status: 200,
      format: "object",
      body: req.answer(counted.input_tokens),
      usage: noUsage(),
    };
    return outcome;
  }, signal);
  // A local estimate answered without calling the provider: not an upstream call.
  const attempts = run.ok && estimate
    ? run.attempts.map((a) => a.outcome === "ok" ? { ...a, no_call: true as const } : a)
    : run.attempts;
  noteAttempts(ex, attempts, run.target);
  if (!run.ok) throw explainTimeout(ex.deadlines, run.error);
  const outcome = run.outcome as Extract<ChatOutcome, { format: "object" }>;
  return wholeResponse(ex, JSON.stringify(outcome.body), 200, {
    ...attemptHeaders(run.target, callsMade(attempts)),
    "content-type": "application/json",
    "x-pilotfish-token-count": estimate ? "estimate" : "provider",
    ...ex.replyHeaders,
  });
}
