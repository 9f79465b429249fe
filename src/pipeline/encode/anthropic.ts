/**
 * The edge encoder of `POST /v1/messages`: an Anthropic provider's own bytes go out
 * untouched (the same-schema fast path); any other answer is canonical and is translated
 * here, once: a `chat.completion` into a Messages response, typed chunks into Anthropic's
 * events (`message_start` ... `message_stop`).
 * @module
 */
import type { GatewayError } from "../../errors.ts";
import { decodeJson, decodeStream } from "../../providers/wire.ts";
import type { ChatOutcome } from "../../providers/types.ts";
import { toAnthropicError } from "../../schema/anthropic.ts";
import { encodeSseEvent, usageNow, usageReported } from "../../streaming/mod.ts";
import { encodeMessagesStream, toMessagesResponse } from "../../translate/mod.ts";
import type { Exchange } from "../exchange.ts";
import { promptEstimate } from "../../usage/mod.ts";
import { decodeContext } from "./openai.ts";
import { jsonResponse, sseResponse } from "./stream.ts";

const renderAnthropicError = (ge: GatewayError) => encodeSseEvent("error", toAnthropicError(ge));

/** `requested`: the model the client named (what a translated answer reports). */
export function encodeMessages(
  ex: Exchange,
  outcome: ChatOutcome,
  headers: Record<string, string>,
  requested: string,
): Response {
  const ctx = decodeContext(ex);
  const provider = ctx.provider;
  if (outcome.kind === "json") {
    if (outcome.format === "anthropic_json") {
      return jsonResponse(ex, outcome.body, outcome.status, headers);
    }
    const message = toMessagesResponse(decodeJson(outcome, ctx), requested, provider);
    return jsonResponse(ex, message as unknown as Record<string, unknown>, outcome.status, headers);
  }
  const bytes = outcome.format === "anthropic_sse"
    ? outcome.body
    : encodeMessagesStream(decodeStream(outcome, ctx), {
      model: requested,
      provider,
      redact: ex.runtime.redact,
      reported: () => usageReported(outcome.usage),
      estimatedInput: () => promptEstimate(ex),
      billed: () => usageNow(outcome.usage),
    });
  return sseResponse(ex, bytes, outcome.status, headers, renderAnthropicError);
}
