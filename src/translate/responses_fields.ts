/**
 * The Responses API field behind a canonical (chat) field an error names. A `/v1/responses`
 * request served through its canonical form can fail on a chat field (a provider's
 * translation, an OpenAI-compatible upstream's 400): the client must read the field it sent,
 * `input[k].content[l]` at its own index (instructions and earlier turns shift the chat's,
 * function calls merge into one assistant message), and `text.format` or `reasoning.effort`
 * rather than chat's names for them.
 * @module
 */
import type { OpenAIChatRequest } from "../schema/openai.ts";
import { fieldText } from "./messages_fields.ts";
import { originsSlot } from "./origins.ts";

/** A place in the client's request: exact, or a whole item whose fields it did not write. */
export interface ItemPlace {
  readonly at: string;
  /** False for what the gateway filled in (a resolved `item_reference`): `at` is all there is. */
  readonly exact: boolean;
}

/** Where one canonical message came from in the client's request. */
export type ResponsesOrigin =
  /** Every field of the message is this one (`instructions`, `previous_response_id`, ...). */
  | { readonly kind: "field"; readonly at: string }
  /** A `function_call_output` item, which became a `tool` message. */
  | { readonly kind: "output"; readonly item: ItemPlace }
  | {
    readonly kind: "message";
    /**
     * What the message is named by: a message item, the call that began it, or the `output`
     * of the function output whose images it carries.
     */
    readonly item: ItemPlace;
    /**
     * Per content part, its `input[k].content[l]` (or a function output's part); null when
     * the item's parts were joined into one string.
     */
    readonly parts: readonly ItemPlace[] | null;
    /** Per tool call: the `function_call` item it came from. */
    readonly calls: readonly ItemPlace[];
  };

const ORIGINS = originsSlot<ResponsesOrigin>("responsesOrigins");

/** Records, on the canonical request, where each of its messages came from. */
export const withResponsesOrigins = ORIGINS.attach;

/** Chat fields the translation fills from a differently named Responses field. */
const RESPONSES_FIELD: Readonly<Record<string, string>> = {
  reasoning_effort: "reasoning.effort",
  max_tokens: "max_output_tokens",
  max_completion_tokens: "max_output_tokens",
  response_format: "text.format",
  "response_format.type": "text.format.type",
  "response_format.json_schema": "text.format",
  "response_format.json_schema.schema": "text.format.schema",
  "response_format.json_schema.name": "text.format.name",
  "tool_choice.function.name": "tool_choice.name",
  // The translation asks for usage on a stream: the client only said `stream`.
  stream_options: "stream",
  "stream_options.include_usage": "stream",
};

/** A tool call's chat fields -> the `function_call` item's. */
const CALL_FIELD: Readonly<Record<string, string>> = {
  ".id": ".call_id",
  ".function": "",
  ".function.name": ".name",
  ".function.arguments": ".arguments",
};

const MESSAGE_PATH = /^messages\[(\d+)\](.*)$/;

/**
 * The field of the client's Responses request behind `param`, a canonical request field.
 * `canonical` is the request as translated: without its record of origins (a stage
 * rewrote it, or none was kept), a message field is named `input`.
 */
export function responsesParam(param: string, canonical: OpenAIChatRequest | null = null): string {
  const mapped = RESPONSES_FIELD[param];
  if (mapped !== undefined) return mapped;
  const tool = /^tools\[(\d+)\]\.function(\..*)?$/.exec(param);
  if (tool !== null) return `tools[${tool[1]}]${tool[2] ?? ""}`;
  if (param !== "messages" && !param.startsWith("messages[")) return param;
  const message = MESSAGE_PATH.exec(param);
  const origin = message === null ? undefined : ORIGINS.read(canonical)?.[Number(message[1])];
  return origin === undefined ? "input" : fromOrigin(origin, message![2]!);
}

/** `place` and a field of it, when the client wrote that field. */
function field(place: ItemPlace, sub: string): string {
  return place.exact ? place.at + sub : place.at;
}

/** A canonical message's field (`rest`, after `messages[c]`) at its origin. */
function fromOrigin(origin: ResponsesOrigin, rest: string): string {
  switch (origin.kind) {
    case "field":
      return origin.at;
    case "output":
      if (rest.startsWith(".tool_call_id")) return field(origin.item, `.call_id${rest.slice(13)}`);
      if (rest.startsWith(".content")) return field(origin.item, `.output${rest.slice(8)}`);
      return origin.item.at;
    case "message": {
      // A message begun by a call has no content of the client's: the call item is named.
      const content = origin.calls[0] === origin.item
        ? origin.item.at
        : field(origin.item, ".content");
      const part = /^\.content\[(\d+)\](.*)$/.exec(rest);
      if (part !== null) {
        const from = origin.parts?.[Number(part[1])];
        if (from === undefined) return content;
        // An `input_image` part holds its URL and detail itself, not in an `image_url` object.
        const sub = part[2]!.replace(/^\.image_url(?:\.url)?(?=$|\.)/, ".image_url")
          .replace(/^\.image_url\.detail/, ".detail");
        return field(from, sub);
      }
      const call = /^\.tool_calls\[(\d+)\](\.id|\.function(?:\.[a-z_]+)?)?(.*)$/.exec(rest);
      if (call !== null) {
        const from = origin.calls[Number(call[1])];
        if (from === undefined) return origin.item.at;
        const sub = call[2] === undefined ? "" : CALL_FIELD[call[2]] ?? call[2];
        return field(from, sub + call[3]);
      }
      if (rest === ".tool_calls") return origin.calls[0]?.at ?? origin.item.at;
      if (rest.startsWith(".content")) return content;
      return origin.item.at;
    }
  }
}

/** Chat field paths as they appear in error messages (ours quote them, OpenAI's too). */
const PATH_IN_TEXT = /\b(?:messages|tools)\[\d+\](?:\.[A-Za-z_]+|\[\d+\])*/g;

/**
 * An error message in the client's terms: every message or tool path it names, and `param`
 * itself where it is a chat-only field.
 */
export function responsesText(
  text: string,
  param: string,
  canonical: OpenAIChatRequest | null,
): string {
  const out = text.replace(PATH_IN_TEXT, (path) => responsesParam(path, canonical));
  const named = RESPONSES_FIELD[param];
  return named === undefined ? out : fieldText(out, param, named);
}
