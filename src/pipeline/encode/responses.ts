/**
 * The edge encoder of `POST /v1/responses`: a native provider's own bytes go out untouched
 * (the same-schema fast path); any other answer is canonical and is translated here, once:
 * a `chat.completion` into a `response` object, typed chunks into the Responses event
 * sequence. Translated answers are kept in the responses store (unless `store: false`), so
 * `previous_response_id` can continue them on any provider.
 * @module
 */
import type { GatewayError } from "../../errors.ts";
import { decodeJson, decodeStream } from "../../providers/wire.ts";
import type { ChatOutcome, Usage } from "../../providers/types.ts";
import type { ResponsesItem, ResponsesObject, ResponsesRequest } from "../../schema/responses.ts";
import { newResponseId } from "../../schema/responses.ts";
import { encodeSseEvent, usageNow } from "../../streaming/mod.ts";
import {
  createResponsesStreamTransformer,
  resolvedInput,
  type ResponsesContext,
  toResponsesObject,
} from "../../translate/mod.ts";
import type { Exchange } from "../exchange.ts";
import { promptEstimate } from "../../usage/mod.ts";
import { decodeContext } from "./openai.ts";
import { jsonResponse, sseResponse } from "./stream.ts";

/** A relayed stream that breaks without an event of its own: OpenAI's `error` event. */
const relayError = (ge: GatewayError) =>
  encodeSseEvent("error", {
    type: "error",
    code: ge.code,
    message: ge.message,
    param: null,
    sequence_number: 0,
  });

export function encodeResponses(
  ex: Exchange,
  outcome: ChatOutcome,
  headers: Record<string, string>,
  request: ResponsesRequest,
  history: readonly ResponsesItem[] | null,
  referenced: ReadonlyMap<string, ResponsesItem> | null = null,
): Response {
  // A conversation this gateway kept, continued on a native provider: the provider was given
  // the earlier turns as input, so its answer says `previous_response_id: null`. The client
  // sent one, and reads it back as OpenAI echoes it.
  const previous = history !== null && typeof request.previous_response_id === "string"
    ? request.previous_response_id
    : null;
  if (outcome.kind === "json" && outcome.format === "responses_json") {
    const body = previous === null ? outcome.body : withPrevious(outcome.body, previous);
    return jsonResponse(ex, body, outcome.status, headers);
  }
  if (outcome.kind === "stream" && outcome.format === "responses_sse") {
    return sseResponse(
      ex,
      previous === null ? outcome.body : outcome.body.pipeThrough(previousEcho(previous)),
      outcome.status,
      headers,
      outcome.failedEvent ?? relayError,
    );
  }
  const dc = decodeContext(ex);
  const ctx: ResponsesContext = {
    id: newResponseId("resp"),
    createdAt: Math.floor(ex.runtime.now() / 1000),
    model: request.model,
    request,
    provider: dc.provider,
    redact: ex.runtime.redact,
  };
  const keep = (response: ResponsesObject) => {
    if (request.store === false) return;
    // References resolved: a later turn continues from the items themselves.
    const items = [
      ...(history ?? []),
      ...resolvedInput(request, referenced).map(withMessageId),
      ...response.output,
    ];
    const owner = ex.principal.appKey;
    const failed = (error: unknown) =>
      ex.runtime.logger.warn("responses store: could not keep a response", {
        request_id: ex.id,
        response_id: response.id,
        error,
      });
    // The answer never waits for the store, nor fails with it (a record too deep to
    // serialise throws at once).
    try {
      ex.runtime.responses.put({ response, items, ...(owner ? { owner } : {}) }).catch(failed);
    } catch (error) {
      failed(error);
    }
  };
  if (outcome.kind === "json") {
    const response = toResponsesObject(decodeJson(outcome, dc), ctx);
    keep(response);
    return jsonResponse(ex, response as Record<string, unknown>, outcome.status, headers);
  }
  const encoder = createResponsesStreamTransformer(ctx, keep);
  const bytes = decodeStream(outcome, dc).pipeThrough(encoder.stream);
  return sseResponse(
    ex,
    bytes,
    outcome.status,
    headers,
    (ge) => encoder.failed(ge, withPromptEstimate(usageNow(outcome.usage), ex)),
  );
}

/**
 * The usage so far, its input estimated when the upstream has not counted it yet (OpenAI
 * counts it at the end): what the request is billed, so the failed response says the same.
 */
function withPromptEstimate(usage: Usage | null | undefined, ex: Exchange): Usage {
  if (usage && usage.prompt_tokens > 0) return usage;
  const prompt = promptEstimate(ex);
  const completion = usage?.completion_tokens ?? 0;
  return {
    ...usage,
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
  };
}

/** `"previous_response_id":null`, the key unescaped: no string's content can match it. */
const NO_PREVIOUS = /"previous_response_id":\s*null/g;

function withPrevious(body: Uint8Array<ArrayBuffer>, id: string): Uint8Array<ArrayBuffer> {
  const text = new TextDecoder().decode(body);
  const patched = text.replace(NO_PREVIOUS, `"previous_response_id":${JSON.stringify(id)}`);
  return patched === text ? body : new TextEncoder().encode(patched);
}

/** The same, on a native stream's events (whole events: a chunk may split the key). */
function previousEcho(id: string): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  const value = `"previous_response_id":${JSON.stringify(id)}`;
  let carry = "";
  return new TransformStream({
    transform(chunk, controller) {
      const text = carry + decoder.decode(chunk, { stream: true });
      const end = text.lastIndexOf("\n\n");
      if (end < 0) {
        carry = text;
        return;
      }
      carry = text.slice(end + 2);
      controller.enqueue(encoder.encode(text.slice(0, end + 2).replace(NO_PREVIOUS, value)));
    },
    flush(controller) {
      const rest = carry + decoder.decode();
      if (rest !== "") controller.enqueue(encoder.encode(rest.replace(NO_PREVIOUS, value)));
    },
  });
}

/**
 * A message the client sent without an id gets one as it is kept, as OpenAI gives its own:
 * `input_items` of every later response in the chain list it under the same `msg_` id.
 */
function withMessageId(item: ResponsesItem): ResponsesItem {
  const message = item.type === undefined || item.type === "message";
  return typeof item.id === "string" || !message || typeof item.role !== "string"
    ? item
    : { id: newResponseId("msg"), ...item };
}
