import type { Context } from "hono";
import { GatewayError } from "../errors.ts";
import type { ProviderConfig } from "../config/mod.ts";
import type { ChatOutcome, ProviderAdapter } from "../providers/mod.ts";
import type { StoredAction } from "../providers/types.ts";
import type { OpenAIChatRequest } from "../schema/openai.ts";
import {
  parseResponsesRequest,
  type ResponsesItem,
  type ResponsesRequest,
} from "../schema/responses.ts";
import { resolvedInput, toChatRequestFromResponses } from "../translate/mod.ts";
import { encodeResponses } from "../pipeline/encode/responses.ts";
import type { Exchange, ExchangeRequest } from "../pipeline/exchange.ts";
import { applicable, chunkStagesFor } from "../pipeline/stages.ts";
import type { Decoded, UnifiedRoute } from "../pipeline/run.ts";
import { clientCredential } from "../pipeline/exchange.ts";
import { pickKey } from "../routing/keys.ts";
import type { AttemptContext, Target } from "../routing/mod.ts";
import type { AppEnv } from "./context.ts";
import { requestedModel, rewriteCanonical } from "./translated.ts";
import { unifiedHandler } from "./unified.ts";
import { send } from "../server/whole.ts";
import { isObject } from "../schema/openai.ts";

type ResponsesExchange = Extract<ExchangeRequest, { schema: "responses" }>;

function request(ex: Exchange): ResponsesExchange {
  return ex.request as ResponsesExchange;
}

/** The canonical (OpenAI chat) form, translated once; a translation error is the caller's 400. */
function canonical(ex: Exchange, provider: string): OpenAIChatRequest {
  const r = request(ex);
  if (r.canonical === null) {
    refuseUnknownPrevious(r, provider);
    r.canonical = toChatRequestFromResponses(
      r.body,
      r.history ?? [],
      provider,
      r.referenced ?? undefined,
    );
  }
  return r.canonical;
}

/**
 * A `previous_response_id` the gateway did not keep can only be continued by a provider
 * that keeps its own (a native one); translated, the conversation would be lost silently.
 */
function refuseUnknownPrevious(r: ResponsesExchange, provider: string): void {
  const id = r.body.previous_response_id;
  if (typeof id === "string" && r.history === null) {
    throw new GatewayError(
      "invalid_request",
      // OpenAI's wording first: clients match on it (Codex starts a new chain).
      `Previous response with id '${id}' not found. Provider "${provider}" is served through translation, which continues only responses this gateway kept.`,
      { param: "previous_response_id", upstreamCode: "previous_response_not_found" },
    );
  }
}

/** A store lookup; a store that cannot answer is a 503, logged. */
function lookup<T>(ex: Exchange, pending: Promise<T>, what: string): Promise<T> {
  return pending.catch((error: unknown) => {
    ex.runtime.logger.warn("responses store: lookup failed", { request_id: ex.id, error });
    throw new GatewayError(
      "unavailable",
      `The responses store is unavailable: ${what} cannot be resolved now`,
    );
  });
}

/**
 * A native provider's response created for an app key belongs to that key, as a kept one
 * does: the id is remembered with its key (the provider is asked with the gateway's key, so it
 * cannot tell callers apart). A lost record fails closed: the id reads as unknown.
 */
export function claimNative(ex: Exchange, id: string): void {
  const owner = ex.principal.appKey;
  if (owner === undefined) return;
  ex.runtime.responses.claim(id, owner).catch((error: unknown) => {
    ex.runtime.logger.warn("responses store: a native response id was not recorded", {
      request_id: ex.id,
      error,
    });
  });
}

/**
 * May this caller reach native response `id` with the gateway's key: the app key that created
 * it through the gateway, or (an id no key claimed) a caller without one.
 */
export async function mayRelay(ex: Exchange, id: string): Promise<boolean> {
  const owner = await lookup(ex, ex.runtime.responses.claimant(id), id);
  return owner === (ex.principal.appKey ?? null);
}

/** Load the stored conversation of `previous_response_id`, if the gateway kept it. */
export async function loadHistory(ex: Exchange, id: string): Promise<ResponsesItem[] | null> {
  const stored = await lookup(
    ex,
    ex.runtime.responses.get(id, ex.principal.appKey ?? null),
    "previous_response_id",
  );
  return stored === null ? null : [...stored.items];
}

/**
 * The kept items this input's `item_reference`s point at (null when it has none). An id
 * the gateway did not keep stays unresolved: a native provider may know it.
 */
export async function loadReferences(
  ex: Exchange,
  body: ResponsesRequest,
): Promise<Map<string, ResponsesItem> | null> {
  if (!Array.isArray(body.input)) return null;
  const ids = new Set<string>();
  for (const item of body.input) {
    if (item.type === "item_reference" && typeof item.id === "string") ids.add(item.id);
  }
  if (ids.size === 0) return null;
  const found = new Map<string, ResponsesItem>();
  for (const id of ids) {
    const item = await lookup(
      ex,
      ex.runtime.responses.getItem(id, ex.principal.appKey ?? null),
      "item_reference",
    );
    if (item !== null) found.set(id, item);
  }
  return found;
}

/**
 * Can this exchange take a native provider's bytes? Not when a stage must read the answer
 * as canonical chat (a `stream_chunk` stage on a stream, a body-reading `post_llm` on JSON),
 * nor after a `pre_llm` rewrite (what every provider gets is then the canonical form).
 */
function relayable(ex: Exchange, r: ResponsesExchange): boolean {
  if (r.rewritten) return false;
  const stages = ex.runtime.stages;
  if (ex.stream) return chunkStagesFor(ex).length === 0;
  return applicable(stages.post_llm, ex).every((s) => s.post_llm_body === false);
}

/**
 * Items of a conversation the gateway kept, in the plain input form a native provider
 * accepts (without the gateway's item ids, which it never issued); reasoning items of
 * another provider are dropped.
 */
function plainItems(items: readonly ResponsesItem[]): ResponsesItem[] {
  const out: ResponsesItem[] = [];
  for (const item of items) {
    const type = item.type ?? (typeof item.role === "string" ? "message" : undefined);
    if (type === "message") {
      out.push({ role: item.role, content: plainContent(item) });
    } else if (type === "function_call") {
      out.push({
        type,
        call_id: item.call_id,
        name: item.name,
        arguments: item.arguments,
      });
    } else if (type === "function_call_output") {
      out.push({ type, call_id: item.call_id, output: item.output });
    } else if (type !== "reasoning") out.push(item);
  }
  return out;
}

/**
 * A message's content as input: an assistant turn as its text (the easy input form takes a
 * string for it), other roles' parts with `output_text` read as `input_text`.
 */
function plainContent(item: ResponsesItem): unknown {
  if (!Array.isArray(item.content)) return item.content;
  const parts = item.content as Record<string, unknown>[];
  if (item.role === "assistant") {
    return parts.map((p) => typeof p.text === "string" ? p.text : "").join("");
  }
  return parts.map((p) => p.type === "output_text" ? { type: "input_text", text: p.text } : p);
}

/**
 * The OpenAI Responses API as the pipeline sees it. Routing, failover, the breaker and
 * stages run as on `/v1/chat/completions`; per target, a provider that speaks the Responses
 * API natively gets the client's body (model patched; the fast path), any other gets it
 * translated to a chat request, answered back in the Responses format at the edge.
 */
export const RESPONSES_ROUTE: UnifiedRoute = {
  schema: "responses",
  decode(ex, raw): Decoded | Promise<Decoded> {
    const { body, gateway } = parseResponsesRequest(raw);
    const r: ResponsesExchange = {
      schema: "responses",
      body,
      history: null,
      referenced: null,
      canonical: null,
      rewritten: false,
    };
    ex.request = r;
    ex.stream = body.stream === true;
    const decoded = { model: body.model, gateway };
    const previous = body.previous_response_id;
    const references = Array.isArray(body.input) &&
      body.input.some((item) => item.type === "item_reference");
    if (typeof previous !== "string" && !references) return decoded;
    return (async () => {
      if (typeof previous === "string") {
        r.history = await loadHistory(ex, previous);
        if (r.history === null) r.previousOwned = await mayRelay(ex, previous);
      }
      if (references) {
        r.referenced = await loadReferences(ex, body);
        // Items no kept response holds go to a native provider: only the caller's own.
        for (const item of body.input as ResponsesItem[]) {
          if (item.type !== "item_reference" || typeof item.id !== "string") continue;
          if (r.referenced?.has(item.id) || await mayRelay(ex, item.id)) continue;
          r.previousOwned = false;
        }
      }
      return decoded;
    })();
  },
  // Stages see the canonical form. For a native first target it is never refused for what only
  // the native API honours (a conversation the gateway did not keep, built-in tools,
  // `background`...): the body is relayed as the client sent it, and `exact` says the view
  // does not tell all (counted, never a cache key).
  view(ex) {
    const r = request(ex);
    const provider = ex.targets[0]?.provider ?? "unknown";
    try {
      return { schema: "responses", body: canonical(ex, provider) };
    } catch (err) {
      const native = err instanceof GatewayError && err.code === "invalid_request" &&
        nativeFirst(ex, r, provider);
      if (!native) throw err;
      r.lossy = true;
      return { schema: "responses", body: roughChat(r), exact: false };
    }
  },
  rewrite: (ex, raw) =>
    rewriteCanonical(
      ex,
      request(ex),
      raw,
      "a provider speaking the Responses API natively honours (a conversation this gateway did not keep, built-in tools or fields it cannot translate)",
    ),
  model: (ex) => requestedModel(request(ex)),
  /**
   * A `previous_response_id` the gateway did not keep only a native provider can continue:
   * the others are left out of failover, so a native provider's 5xx is what the client
   * gets, not a translated one's 400 saying the conversation is unknown. With no native
   * candidate, that 400 is the answer. An id another app key created (see `claim`) reaches
   * only a provider asked with the client's own credential: with no such candidate it is
   * unknown.
   */
  candidates(ex, resolved) {
    const r = request(ex);
    const previous = r.body.previous_response_id;
    const unkept = typeof previous === "string" && r.history === null;
    if (!relayable(ex, r)) return resolved.targets;
    const rt = ex.runtime;
    const native = (t: Target) => rt.adapters.get(t.provider)?.responses !== undefined;
    // Another key's native ids: no target that the gateway's own keys would carry them to.
    const targets = r.previousOwned === false
      ? resolved.targets.filter((t) => !native(t) || !ownKeys(rt.config.providers[t.provider]))
      : resolved.targets;
    if (!unkept) {
      if (targets.length > 0) return targets;
      throw new GatewayError(
        "invalid_request",
        "An item_reference names an item that is not found.",
        { param: "input" },
      );
    }
    const natives = targets.filter(native);
    if (natives.length > 0) return natives;
    if (r.previousOwned === false) {
      throw new GatewayError(
        "invalid_request",
        `Previous response with id '${previous}' not found.`,
        { param: "previous_response_id", upstreamCode: "previous_response_not_found" },
      );
    }
    return resolved.targets;
  },
  invoke(ex) {
    const r = request(ex);
    const stream = ex.stream;
    const relay = relayable(ex, r);
    return async (adapter, attempt, model): Promise<ChatOutcome> => {
      if (adapter.responses && relay) {
        return await adapter.responses(
          { ...attempt, body: nativeBody(r), stream, onId: (id) => claimNative(ex, id) },
          model,
        );
      }
      return await translatedCall(ex, adapter, attempt, model);
    };
  },
  encode: (ex, outcome, headers) => {
    const r = request(ex);
    return encodeResponses(ex, outcome, headers, r.body, r.history, r.referenced);
  },
};

/** A unified route reaches `provider` with the gateway's configured keys (not the client's). */
function ownKeys(provider: ProviderConfig | undefined): boolean {
  return provider !== undefined && provider.credential_mode === "gateway" &&
    provider.keys.length > 0;
}

/** The first target speaks the Responses API and gets the client's body (see `relayable`). */
function nativeFirst(ex: Exchange, r: ResponsesExchange, provider: string): boolean {
  return ex.runtime.adapters.get(provider)?.responses !== undefined && relayable(ex, r);
}

/**
 * What the stages count when the request has no canonical form (it is relayed natively):
 * `instructions` as the system message, and the text of the input's messages, by role.
 */
function roughChat(r: ResponsesExchange): OpenAIChatRequest {
  const { body } = r;
  const messages: { role: string; content: string }[] = [];
  if (typeof body.instructions === "string") {
    messages.push({ role: "system", content: body.instructions });
  }
  if (typeof body.input === "string") messages.push({ role: "user", content: body.input });
  else if (Array.isArray(body.input)) {
    for (const item of body.input) {
      if (typeof item.role !== "string") continue;
      const content = typeof item.content === "string"
        ? item.content
        : Array.isArray(item.content)
        ? (item.content as Record<string, unknown>[])
          .flatMap((p) => typeof p.text === "string" ? [p.text] : []).join("\n")
        : "";
      messages.push({ role: item.role === "developer" ? "system" : item.role, content });
    }
  }
  return { model: body.model, messages } as unknown as OpenAIChatRequest;
}

/**
 * The body a native provider gets: the client's own, or, continuing a conversation this
 * gateway kept, the same with that conversation spelled out as input (the provider never
 * saw it).
 */
function nativeBody(r: ResponsesExchange): Record<string, unknown> {
  return nativeResponsesBody(r.body, r.history, r.referenced);
}

/** `nativeBody` of a body and what the gateway kept for it (its token count sends the same). */
export function nativeResponsesBody(
  body: ResponsesRequest,
  history: readonly ResponsesItem[] | null,
  referenced: ReadonlyMap<string, ResponsesItem> | null,
): Record<string, unknown> {
  if (history === null && (referenced === null || referenced.size === 0)) {
    return withoutOurFields(body as Record<string, unknown>);
  }
  const { previous_response_id: _id, ...rest } = body;
  const input = resolvedInput(body, referenced);
  return { ...rest, input: plainItems([...(history ?? []), ...input]) };
}

/**
 * The body without what only our translated answers put on items (`extra_content`, a Gemini
 * thought signature on a `function_call`): a client replaying such output to a native
 * provider would otherwise send a field that API never issued, and may refuse.
 */
function withoutOurFields(body: Record<string, unknown>): Record<string, unknown> {
  const input = body.input;
  if (!Array.isArray(input) || !input.some((i) => isObject(i) && "extra_content" in i)) return body;
  return {
    ...body,
    input: input.map((i) => {
      if (!isObject(i) || !("extra_content" in i)) return i;
      const { extra_content: _extra, ...rest } = i;
      return rest;
    }),
  };
}

async function translatedCall(
  ex: Exchange,
  adapter: ProviderAdapter,
  attempt: AttemptContext,
  model: string,
): Promise<ChatOutcome> {
  const body = canonical(ex, adapter.name);
  return await adapter.chat({ ...attempt, body, stream: ex.stream }, model);
}

/** `POST /v1/responses`: the OpenAI Responses API as a unified entry point. */
export const responses = unifiedHandler(RESPONSES_ROUTE, "openai_json");

function responseId(c: Context<AppEnv>): string {
  const raw = c.req.param("id") ?? "";
  let id: string;
  try {
    id = decodeURIComponent(raw);
  } catch {
    // A malformed escape (`%E0`) names no response: a 404, not an error of ours.
    throw notFound(raw);
  }
  // An id is an opaque token (`resp_...`). One with a slash, dot-segment, backslash, `?` or `%`
  // would be relayed to a provider with the gateway's key, where an upstream that decodes
  // `%2F` would read another path: refused before any upstream call, like passthrough paths.
  if (!RESPONSE_ID.test(id) || /^\.+$/.test(id)) {
    throw new GatewayError(
      "invalid_request",
      `"${raw}" is not a response id (letters, digits, "_", "-", ".", ":" only)`,
      { param: "response_id" },
    );
  }
  return id;
}

const RESPONSE_ID = /^[A-Za-z0-9_.:-]{1,256}$/;

/** OpenAI's own 404 for an unknown response: an invalid request, with null param and code. */
export function notFound(id: string): GatewayError {
  return new GatewayError("not_found", `Response with id '${id}' not found.`, {
    upstreamType: "invalid_request_error",
    upstreamCode: null,
  });
}

/**
 * `GET /v1/responses/{id}`: a response the gateway kept (translated answers), else the one a
 * provider that speaks the Responses API keeps (relayed as bytes).
 */
export async function getResponse(c: Context<AppEnv>): Promise<Response> {
  const ex: Exchange = c.get("exchange");
  ex.errorFormat = "openai_json";
  const id = responseId(c);
  const stored = await lookup(ex, ex.runtime.responses.get(id, ex.principal.appKey ?? null), id);
  if (stored !== null) return send(c, "json", stored.response);
  return await relayStored(ex, "GET", id, c.req.raw.signal, queryOf(c.req.url));
}

/**
 * `GET /v1/responses/{id}/input_items`: OpenAI's list of what a kept response was given (its
 * context, earlier turns included: every item before its own output), newest first unless
 * `order=asc`, `limit` 1-100 (20), `after` an item id; else relayed.
 */
export async function responseInputItems(c: Context<AppEnv>): Promise<Response> {
  const ex: Exchange = c.get("exchange");
  ex.errorFormat = "openai_json";
  const id = responseId(c);
  const stored = await lookup(ex, ex.runtime.responses.get(id, ex.principal.appKey ?? null), id);
  if (stored === null) {
    return await relayStored(ex, "GET", id, c.req.raw.signal, queryOf(c.req.url), "/input_items");
  }
  const output = stored.response.output.length;
  const input = stored.items.slice(0, Math.max(0, stored.items.length - output));
  const order = c.req.query("order") ?? "desc";
  if (order !== "asc" && order !== "desc") {
    throw new GatewayError("invalid_request", `order: expected "asc" or "desc"`, {
      param: "order",
    });
  }
  const limitText = c.req.query("limit") ?? "20";
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
    throw new GatewayError("invalid_request", `limit: expected an integer from 1 to 100`, {
      param: "limit",
    });
  }
  // An item the client sent without an id gets one from its place: `after` needs a cursor.
  const listed = input.map((item, i) => asInputItem(item, `${id}_item_${i}`));
  let items = order === "desc" ? listed.toReversed() : listed;
  const after = c.req.query("after");
  if (after !== undefined) {
    const at = items.findIndex((item) => (item as { id?: unknown }).id === after);
    items = at < 0 ? [] : items.slice(at + 1);
  }
  const page = items.slice(0, limit);
  const idOf = (item: unknown) => {
    const v = (item as { id?: unknown } | undefined)?.id;
    return typeof v === "string" ? v : null;
  };
  return send(c, "json", {
    object: "list",
    data: page,
    first_id: idOf(page[0]),
    last_id: idOf(page.at(-1)),
    has_more: items.length > page.length,
  });
}

/**
 * An item as OpenAI lists it: a message is `type: "message"` with its text as content parts
 * (`input_text`; `output_text` for the assistant's), however the client wrote it.
 */
function asInputItem(item: unknown, id: string): unknown {
  if (!isObject(item)) return item;
  const withId = typeof item.id === "string" ? item : { id, ...item };
  if ((item.type !== undefined && item.type !== "message") || typeof item.role !== "string") {
    return withId;
  }
  const part = item.role === "assistant" ? "output_text" : "input_text";
  const content = typeof item.content === "string"
    ? [{ type: part, text: item.content }]
    : item.content;
  return { ...withId, type: "message", content };
}

/**
 * `POST /v1/responses/{id}/cancel`: only a background response can be cancelled, and the
 * gateway keeps none (it answers every response whole); else relayed.
 */
export async function cancelResponse(c: Context<AppEnv>): Promise<Response> {
  const ex: Exchange = c.get("exchange");
  ex.errorFormat = "openai_json";
  const id = responseId(c);
  if (await lookup(ex, ex.runtime.responses.get(id, ex.principal.appKey ?? null), id) !== null) {
    throw new GatewayError(
      "invalid_request",
      `Response '${id}' was not created in background mode: only background responses can be cancelled`,
      { param: "response_id" },
    );
  }
  return await relayStored(ex, "POST", id, c.req.raw.signal, queryOf(c.req.url), "/cancel");
}

/** `DELETE /v1/responses/{id}`: forget a kept response (OpenAI's deletion answer), or relay. */
export async function deleteResponse(c: Context<AppEnv>): Promise<Response> {
  const ex: Exchange = c.get("exchange");
  ex.errorFormat = "openai_json";
  const id = responseId(c);
  if (await lookup(ex, ex.runtime.responses.delete(id, ex.principal.appKey ?? null), id)) {
    return send(c, "json", { id, object: "response", deleted: true });
  }
  return await relayStored(ex, "DELETE", id, c.req.raw.signal, queryOf(c.req.url));
}

/**
 * An id the gateway did not keep: asked of each provider that keeps its own responses, in
 * config order, until one knows it. A 4xx (other than 429) means "not here" and moves on; a
 * 5xx, 429 or transport failure is kept and thrown if nobody answers (else a 404). Providers
 * use the gateway's key; the client's own credential (for a provider without keys) goes to
 * one provider at most, as routing would send it to one. An app key limited to some
 * providers reaches only those.
 */
async function relayStored(
  ex: Exchange,
  method: "GET" | "DELETE" | "POST",
  id: string,
  signal: AbortSignal,
  query: string,
  action: StoredAction = "",
): Promise<Response> {
  const rt = ex.runtime;
  let attempts = 0;
  const appKey = ex.principal.appKey;
  const record = appKey === undefined || rt.keys === null ? null : await rt.keys.get(appKey);
  // The gateway's key reaches only the caller's own native responses (see `claim`).
  const gatewayKey = await mayRelay(ex, id);
  let client = clientCredential(ex.headers);
  let failure: unknown = null;
  for (const [name, adapter] of rt.adapters) {
    if (adapter.storedResponse === undefined) continue;
    const provider = rt.config.providers[name];
    if (provider === undefined) continue;
    if (record !== null && record.allowed_providers.length > 0) {
      if (!record.allowed_providers.includes(name)) continue;
    }
    const gateways = ownKeys(provider);
    if (gateways && !gatewayKey) continue;
    const key = gateways
      ? pickKey(provider.keys, "", rt.random, rt.routing, rt.now()) ?? provider.keys[0]!
      : null;
    if (key === null && client === null) continue;
    const clientAuthorization = key === null ? client : null;
    if (key === null) client = null;
    attempts++;
    try {
      const reply = await adapter.storedResponse({
        method,
        id,
        action,
        query,
        apiKey: key?.key ?? null,
        clientAuthorization,
        signal,
        timeoutMs: provider.timeout,
      });
      ex.provider = name;
      const model = modelOf(reply.body);
      if (model !== null) ex.model = model;
      return new Response(reply.body, {
        status: reply.status,
        headers: {
          "content-type": "application/json",
          "x-pilotfish-provider": name,
          ...(model !== null ? { "x-pilotfish-model": model } : {}),
          "x-pilotfish-attempts": String(attempts),
        },
      });
    } catch (err) {
      const status = err instanceof GatewayError ? err.status : 0;
      // Not this provider's id: GET and DELETE learn it from any 4xx (providers word it
      // differently); on input_items and cancel only a 404 says so, and a 400 is the answer.
      const unknown = action === ""
        ? status >= 400 && status < 500 && status !== 429
        : status === 404;
      if (unknown) continue;
      failure ??= err;
    }
  }
  if (failure !== null) throw failure;
  throw notFound(id);
}

/** The request's query (`?include[]=...`), passed on to the provider that keeps the response. */
function queryOf(url: string): string {
  const q = url.indexOf("?");
  return q < 0 ? "" : url.slice(q);
}

/** The `model` of a stored response's JSON, when it has one. */
function modelOf(body: Uint8Array): string | null {
  try {
    const json = JSON.parse(new TextDecoder().decode(body)) as { model?: unknown };
    return typeof json?.model === "string" ? json.model : null;
  } catch {
    return null;
  }
}

export type { ResponsesRequest };
